/*
 * cli.h: the `flame` subcommands and the helpers they share.
 *
 * Every command returns its exit status: 0 success, 1 runtime failure, 2 bad usage / config /
 * input. Errors go to stderr as one line "flame <cmd>: <problem>; <fix>".
 *
 * Shared pieces: config loading; a checkpoint's policy ready to act (cli_policy_open over
 * policy.h: `flame eval`, `flame rollout` and `flame render` create it the same way, so the same
 * checkpoint and seed give the same actions);
 * the env and policy description of a dataset (CliDatasetInfo: `flame rollout`,
 * `flame export-replay`).
 *
 * defines: cmd_train cmd_eval cmd_rollout cmd_export_replay cmd_render cmd_bench cmd_envs
 *          cmd_configs cmd_info cmd_debug cli_fail cli_fail_last cli_load_config
 *          cli_parse_backend cli_parse_int cli_policy_open CliDatasetInfo cli_dataset_info_init
 *          cli_dataset_info_checkpoint cli_dataset_info_free
 */
#ifndef FLAME_CLI_H
#define FLAME_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"
#include "flame/ckpt.h"
#include "flame/config.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/policy.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_export_replay(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_envs(int argc, char **argv);
int cmd_configs(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_debug(int argc, char **argv);

/* Prints "flame <cmd>: <message>" to stderr and returns `code`. */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same with the thread's last error message (flame_last_error()). */
int cli_fail_last(const char *cmd, int code);

/* Defaults, then the YAML file (if path is non-NULL), then each "key=value" override; resolves and
   validates. Returns FLAME_OK or FLAME_EINPUT (message set). */
int cli_load_config(FlameConfig *cfg, const char *path, char **sets, int nsets);

/* "auto", "cpu" or "cuda" -> FlameBackendKind; otherwise prints the error for `cmd` and returns
   FLAME_EINPUT. */
int cli_parse_backend(const char *cmd, const char *name, int *kind);

/* An option's integer value, parsed exactly as config integers are (config_parse_integer: 1e6,
   1_000; no fraction, no junk) and checked against [lo, hi]; otherwise prints the error for `cmd`
   naming the option and the range and returns FLAME_EINPUT. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
                  long long *out);

/* policy_open (policy.h: a checkpoint's policy ready to act, the same for every command and the C
   API) of ckpt_path with backend_kind (< 0: the checkpoint's) and seed (< 0: the checkpoint's),
   and, when env_id is given, the check that the checkpoint is of that env (--env). On failure
   prints the error for `cmd` and returns the exit status (2 for bad input); nothing is left open.
   Close with policy_close. */
int cli_policy_open(const char *cmd, Policy *p, const char *ckpt_path, const char *env_id,
                    int backend_kind, int64_t seed);

/* A dataset's description (dataset.h) with the memory it points to. */
typedef struct {
    DatasetInfo info;
    double *low, *high; /* (act_dim) the model's action box */
    char *config_yaml;
} CliDatasetInfo;

/* spec, nq, nv and the action box from the env's model (model_xml NULL or "": embedded), and the
   source ("rollout" or "replay"); FLAME_EINPUT with a message when the model does not load. */
int cli_dataset_info_init(CliDatasetInfo *d, const EnvSpec *spec, const char *model_xml,
                          const char *source);

/* algorithm, policy (= path), resolved config, iteration and env steps of a checkpoint. */
void cli_dataset_info_checkpoint(CliDatasetInfo *d, const Checkpoint *ck, const char *path);
void cli_dataset_info_free(CliDatasetInfo *d);

#endif
