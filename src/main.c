/*
 * main.c: the `flame` command line. Dispatches to one command per pipeline stage a user runs:
 *
 *   train          envpool -> replay -> update -> metrics.h5 / checkpoints (src/cli/cmd_train.c)
 *   eval           mean +- std return of a checkpoint's policy
 *   rollout        datasets of rollouts in the D4RL or Minari layouts
 *   export-replay  a run's replay buffer as a D4RL-layout dataset
 *   bench          kernel, update, act, env and end-to-end benchmarks
 *   envs, configs, info  what is available on this build and machine
 *
 * Before anything else, blas_core_select() may re-execute the program once with OPENBLAS_CORETYPE
 * set, when OpenBLAS picked kernels narrower than this CPU's SIMD (include/flame/blas_core.h).
 */
#include <stdio.h>
#include <string.h>

#include "flame/blas_core.h"
#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/cli.h"
#include "flame/h5util.h"
#include "flame/proc.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} Command;

static const Command commands[] = {
    {"train", cmd_train, "train an agent (FLAME-M, FLAME-R or SAC) on a MuJoCo task"},
    {"eval", cmd_eval, "evaluate a checkpoint: mean +- std return and episode lengths"},
    {"rollout", cmd_rollout, "write rollouts of a policy as a D4RL or Minari dataset"},
    {"export-replay", cmd_export_replay, "write a run's replay buffer as a D4RL dataset"},
    {"render", cmd_render, "render a policy's episodes as a video or PNG frames"},
    {"bench", cmd_bench, "benchmarks: kernels, update, act, env, e2e"},
    {"debug", cmd_debug, "replay one update from a checkpoint with every intermediate"},
    {"envs", cmd_envs, "list the environment ids with their dimensions"},
    {"configs", cmd_configs, "list the shipped training configs: env, algorithm, budget"},
    {"info", cmd_info, "version, commit, backends, CUDA devices, CPU, BLAS and its core"},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "flame %s: maximum-entropy RL with one-step MeanFlow policies (FLAME), on CPU and "
            "CUDA\n\nusage: flame <command> [options]   (flame <command> --help for its "
            "options)\n\ncommands:\n",
            FLAME_VERSION);
    for (int i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(f, "\nexit status: 0 success, 1 runtime failure, 2 bad usage or config\n");
}

int main(int argc, char **argv) {
    blas_core_select(argv); /* may re-execute with a better OpenBLAS core: before anything else */
    proc_init(); /* a closed pipe or a file size limit fails a write, never kills the process */
    h5_silence();
    if (argc < 2) {
        usage(stderr);
        return FLAME_EINPUT;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return FLAME_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("flame %s (%s)\n", FLAME_VERSION, FLAME_GIT_COMMIT);
        return FLAME_OK;
    }
    for (int i = 0; i < NCOMMANDS; i++) {
        if (!strcmp(cmd, commands[i].name)) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "flame: unknown command '%s'; run `flame --help` for the list of commands\n",
            cmd);
    return FLAME_EINPUT;
}
