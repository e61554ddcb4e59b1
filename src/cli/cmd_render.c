/*
 * cmd_render.c: `flame render`, videos (or PNG frames) of a checkpoint's policy or of the random
 * policy, drawn by MuJoCo's renderer offscreen (include/flame/render.h). Options, the env and the
 * checkpoint are checked before any rendering; GL, ffmpeg and the output before the first frame.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/cli.h"
#include "flame/env.h"
#include "flame/render.h"
#include "flame/rollout.h"

#define CMD "render"

static volatile sig_atomic_t render_stop = 0;

static void render_on_signal(int sig) {
    (void)sig;
    render_stop = 1;
}

static void render_usage(void) {
    printf("usage: flame render (--ckpt FILE | --policy random --env ID) --out FILE.mp4|DIR\n"
           "                    [--episodes N] [--width W --height H] [--camera NAME]\n"
           "                    [--stochastic] [--seed S] [--gl auto|egl|osmesa]\n"
           "                    [--backend auto|cpu|cuda] [--force]\n\n"
           "Renders episodes of the policy with MuJoCo's renderer in an offscreen OpenGL context\n"
           "(EGL, or Mesa's OSMesa on machines without a GPU) and encodes them with ffmpeg, or\n"
           "writes PNG frames. The episodes are those `flame eval --envs 1` and `flame rollout\n"
           "--envs 1` run with the same policy and seed.\n\n"
           "options:\n"
           "  --ckpt FILE       checkpoint whose EMA policy acts (deterministic by default)\n"
           "  --policy random   uniform random actions instead (needs --env)\n"
           "  --env ID          environment id (with --ckpt: must match the checkpoint's)\n"
           "  --out PATH        a video (.mp4 .mkv .mov .webm .avi .gif; needs ffmpeg) or a\n"
           "                    directory of PNG frames (frame_000000.png, ...)\n"
           "  --episodes N      episodes to render one after the other (default 1)\n"
           "  --width W, --height H   frame size in pixels (default 480 x 480, as Gymnasium)\n"
           "  --camera NAME     track (Gymnasium's default where its model has one) or free\n"
           "                    (default: Gymnasium's default view of the env)\n"
           "  --stochastic      exploring actions (default: deterministic policy actions)\n"
           "  --seed S          seed of the env's reset noise and the policy's draws (default:\n"
           "                    the checkpoint's run.seed, 1 for the random policy)\n"
           "  --gl G            auto (EGL, then OSMesa; default), egl or osmesa\n"
           "  --backend B       backend that computes the actions: auto, cpu, cuda (default: the\n"
           "                    checkpoint's)\n"
           "  --force           replace an existing output\n");
}

typedef struct {
    const char *ckpt, *policy, *env, *out, *camera, *gl;
    long long episodes, width, height, seed;
    int backend; /* -1: the checkpoint's */
    bool have_seed, stochastic, force;
} RenderArgs;

static int parse_args(int argc, char **argv, RenderArgs *a) {
    static const struct option longopts[] = {
        {"ckpt", required_argument, 0, 'k'},    {"policy", required_argument, 0, 'p'},
        {"env", required_argument, 0, 'e'},     {"out", required_argument, 0, 'o'},
        {"camera", required_argument, 0, 'c'},  {"gl", required_argument, 0, 'g'},
        {"backend", required_argument, 0, 'b'}, {"episodes", required_argument, 0, 'n'},
        {"width", required_argument, 0, 'W'},   {"height", required_argument, 0, 'H'},
        {"seed", required_argument, 0, 's'},    {"stochastic", no_argument, 0, 'S'},
        {"force", no_argument, 0, 'f'},         {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->episodes = 1;
    a->width = a->height = 480;
    a->backend = -1;
    optind = 1;
    opterr = 0;
    int c, rc = FLAME_OK;
    while (rc == FLAME_OK && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
            case 'k':
                a->ckpt = optarg;
                break;
            case 'p':
                a->policy = optarg;
                break;
            case 'e':
                a->env = optarg;
                break;
            case 'o':
                a->out = optarg;
                break;
            case 'c':
                a->camera = optarg;
                break;
            case 'g':
                a->gl = optarg;
                break;
            case 'b':
                rc = cli_parse_backend(CMD, optarg, &a->backend);
                break;
            case 'n':
                rc = cli_parse_int(CMD, "--episodes", optarg, 1, 100000, &a->episodes);
                break;
            case 'W':
                rc = cli_parse_int(CMD, "--width", optarg, 16, 8192, &a->width);
                break;
            case 'H':
                rc = cli_parse_int(CMD, "--height", optarg, 16, 8192, &a->height);
                break;
            case 's':
                rc = cli_parse_int(CMD, "--seed", optarg, 0, FLAME_SEED_MAX, &a->seed);
                a->have_seed = true;
                break;
            case 'S':
                a->stochastic = true;
                break;
            case 'f':
                a->force = true;
                break;
            default:
                return cli_fail(CMD, FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame render --help`",
                                argv[optind - 1]);
        }
    }
    if (rc == FLAME_OK && optind < argc) {
        rc = cli_fail(CMD, FLAME_EINPUT, "unexpected argument '%s'; see `flame render --help`",
                      argv[optind]);
    }
    return rc;
}

int cmd_render(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            render_usage();
            return FLAME_OK;
        }
    }
    RenderArgs a;
    if (parse_args(argc, argv, &a) != FLAME_OK) {
        return FLAME_EINPUT;
    }
    if (!a.out) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--out FILE.mp4 (a video) or --out DIR (PNG frames) "
                        "is required");
    }
    if (a.policy && strcmp(a.policy, "random") != 0) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "unknown --policy '%s'; use --policy random or --ckpt "
                        "FILE",
                        a.policy);
    }
    if ((a.policy != NULL) == (a.ckpt != NULL)) {
        return cli_fail(CMD, FLAME_EINPUT, "give exactly one of --ckpt FILE and --policy random");
    }
    if (a.policy && !a.env) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--policy random needs --env ID (`flame envs` lists "
                        "them)");
    }
    RenderGl gl = RENDER_GL_AUTO;
    const char *gl_name = a.gl ? a.gl : getenv("MUJOCO_GL"); /* Gymnasium's variable */
    if (gl_name && gl_name[0] && render_gl_parse(gl_name, &gl) != FLAME_OK) {
        if (a.gl) {
            return cli_fail_last(CMD, FLAME_EINPUT);
        }
        gl = RENDER_GL_AUTO; /* MUJOCO_GL=glfw and the like mean nothing offscreen */
    }
    const EnvSpec *spec = NULL;
    if (a.env && !(spec = env_spec_find(a.env))) {
        return cli_fail(CMD, FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists the ids",
                        a.env);
    }
    /* the policy: a checkpoint's (as `flame eval` and `flame rollout` open it), or random */
    Policy pol;
    RolloutPolicy policy;
    if (a.ckpt) {
        int rc = cli_policy_open(CMD, &pol, a.ckpt, a.env, a.backend, a.have_seed ? a.seed : -1);
        if (rc != FLAME_OK) {
            return rc;
        }
        spec = pol.spec;
        policy =
            rollout_policy_agent(pol.ops, pol.b, a.stochastic ? ACT_EXPLORE : ACT_DETERMINISTIC);
    } else {
        policy = rollout_policy_random(a.have_seed ? (uint64_t)a.seed : 1);
    }
    uint64_t seed = a.ckpt ? (uint64_t)pol.cfg.run.seed : policy.seed;
    RenderEpisodesOptions o = {.policy = policy,
                               .spec = spec,
                               .model_xml = a.ckpt ? pol.cfg.env.model_xml : NULL,
                               .episodes = (int)a.episodes,
                               .seed = seed,
                               .width = (int)a.width,
                               .height = (int)a.height,
                               .gl = gl,
                               .camera = a.camera,
                               .out = a.out,
                               .force = a.force,
                               .stop = &render_stop};
    void (*old_int)(int) = signal(SIGINT, render_on_signal);
    void (*old_term)(int) = signal(SIGTERM, render_on_signal);
    RenderStats st;
    int rc = render_episodes(&o, &st);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (rc == FLAME_OK) {
        printf("render: %s, %s policy%s, seed %llu, %d x %d at %d fps, %s\n", spec->id,
               a.ckpt ? config_algo_name(pol.cfg.algo) : "random",
               a.ckpt ? (a.stochastic ? " (stochastic)" : " (deterministic)") : "",
               (unsigned long long)seed, (int)a.width, (int)a.height, st.fps, st.gl);
        for (int e = 0; e < st.episodes; e++) {
            printf("episode %d: return %.2f, length %d\n", e + 1, st.returns[e], st.lengths[e]);
        }
        if (st.unstable > 0) {
            printf("MuJoCo went unstable in %lld episodes; they were replaced (their frames are "
                   "kept)\n",
                   (long long)st.unstable);
        }
        printf("wrote %s (%ld frames)\n", a.out, st.frames);
        render_stats_free(&st);
    } else {
        rc = cli_fail_last(CMD, rc);
    }
    if (a.ckpt) {
        policy_close(&pol);
    }
    return rc;
}
