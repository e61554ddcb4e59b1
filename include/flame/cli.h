/*
 * cli.h: the `flame` subcommands and the helpers they share.
 *
 * Every command returns its exit status: 0 success, 1 runtime failure, 2 bad usage / config /
 * input. Errors go to stderr as one line "flame <cmd>: <problem>; <fix>".
 *
 * defines: cmd_train cmd_eval cmd_rollout cmd_export_replay cmd_bench cmd_envs cmd_info cmd_debug
 *          cli_fail cli_fail_last cli_load_config cli_resolve_threads cli_is_tty
 */
#ifndef FLAME_CLI_H
#define FLAME_CLI_H

#include <stdbool.h>

#include "flame/config.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_export_replay(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_envs(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_debug(int argc, char **argv);

/* Prints "flame <cmd>: <message>" to stderr and returns `code`. */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same with the thread's last error message (flame_last_error()). */
int cli_fail_last(const char *cmd, int code);

/* Defaults, then the YAML file (if path is non-NULL), then each "key=value" override; resolves and
   validates. Returns FLAME_OK or FLAME_EINPUT (message set). */
int cli_load_config(FlameConfig *cfg, const char *path, char **sets, int nsets);

/* env.threads resolved: 0 means all cores but one (at least 1), never more than num_envs. */
int cli_resolve_threads(int requested, int num_envs);

/* Whether stdout is a terminal (progress line vs periodic plain lines). */
bool cli_is_tty(void);

#endif
