/* cmd_pending.c: commands whose implementation is not in this build yet. */
#include "flame/check.h"
#include "flame/cli.h"

int cmd_rollout(int argc, char **argv) {
    (void)argc, (void)argv;
    return cli_fail("rollout", FLAME_ERUNTIME, "not implemented yet");
}
int cmd_export_replay(int argc, char **argv) {
    (void)argc, (void)argv;
    return cli_fail("export-replay", FLAME_ERUNTIME, "not implemented yet");
}
