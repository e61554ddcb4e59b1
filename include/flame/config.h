/*
 * config.h: the one configuration struct, declared once as X-macro tables.
 *
 * From the tables below config.c generates: the FlameConfig struct (here), defaults, the libcyaml
 * schema for YAML files (every section and key; unknown keys are errors), the typed parser shared by
 * YAML values and `--set key=value` overrides (type and range checked, errors name the key, the value
 * and the allowed range), `flame train --help-config`, the resolved-config YAML dump (which loads back
 * to an identical struct) and the HDF5 root attribute of every run.
 *
 * Keys are `section.name` (YAML: a mapping per section); `algo` and `compat` are top-level keys.
 * Value kinds: INT (int), I64 (int64_t), FLOAT (double), AFLOAT (double, or "auto" = NAN),
 * BOOL, STR (char[FLAME_CFG_STR]), ENUM (int, one of a name list).
 * "auto" values are derived from other keys by config_resolve(); the dump shows resolved values.
 *
 * defines: FlameConfig FLAME_CONFIG_SECTIONS FlameAlgo FlameCompat ... config_defaults
 *          config_load_file config_load_string config_set config_resolve config_validate
 *          config_to_yaml config_equal config_fields config_print_help config_find_field
 */
#ifndef FLAME_CONFIG_H
#define FLAME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FLAME_CFG_STR 512
/* the largest run.seed (and --seed of eval/rollout) */
#define FLAME_SEED_MAX 9200000000000000000LL

/* ------------------------------------------------------------------ enumerations */
/* Each enum's names are listed in config.c in the same order (flame_enum_<name>). */
typedef enum { ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC } FlameAlgo;
typedef enum { COMPAT_REFERENCE, COMPAT_CONSISTENT } FlameCompat;
typedef enum { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA } FlameBackendKind;
typedef enum { KERNELS_FUSED, KERNELS_CUBLAS } FlameKernels;
typedef enum { PRECISION_FP32, PRECISION_TF32 } FlamePrecision;
typedef enum { ACT_AUTO, ACT_MISH, ACT_RELU, ACT_GELU, ACT_IDENTITY } FlameActivation;
typedef enum {
    ENT_AUTO,
    ENT_REFERENCE3, /* the reference code's 3-step decoupled estimator (§8.2) */
    ENT_DECOUPLED,  /* consistent decoupled estimator (§8.3) */
    ENT_ODE,        /* FLAME-R's reverse-Euler ODE log-likelihood (§8.4) */
    ENT_BIASED1,    /* one-step first-order estimator (§8.1) */
    ENT_EXACT,      /* one-step log-det via D JVPs and an LU */
    ENT_NONE,       /* SAC: the Gaussian log-probability is exact, no estimator */
} FlameEntropyEstimator;
typedef enum { PROBE_GAUSSIAN, PROBE_RADEMACHER } FlameProbe;
typedef enum { QUIRK_AUTO, QUIRK_REFERENCE, QUIRK_CONSISTENT } FlameQuirkMode;
typedef enum { TEMP_AUTO, TEMP_EXP_ALPHA, TEMP_ALPHA } FlameSoftmaxTemp;
typedef enum { TDENT_AUTO, TDENT_MINUS, TDENT_PLUS, TDENT_OMIT } FlameTdEntropy;
typedef enum { TRI_AUTO, TRI_YES, TRI_NO } FlameTri;
typedef enum { NEXTPOL_AUTO, NEXTPOL_ONLINE, NEXTPOL_EMA } FlameNextPolicy;
typedef enum { PATH_STAGED, PATH_FUSED } FlameStagePath;
typedef enum { SMALL_TILE, SMALL_CLUSTER } FlameSmallRows;
typedef enum { REDUCE_BLOCK, REDUCE_GRID } FlameReduce;

/* ------------------------------------------------------------------ the key tables */
/* X(section, name, KIND, default, lo, hi, enum, help) */

#define FLAME_CFG_ROOT(X)                                                                          \
    X(root, algo, ENUM, "flame-m", 0, 0, algo, "variant: flame-m (one-step MeanFlow), flame-r (rectified flow), sac") \
    X(root, compat, ENUM, "reference", 0, 0, compat, "preset of every quirks.* key: reference (authors' code) or consistent (self-consistent math)")

#define FLAME_CFG_RUN(X)                                                                           \
    X(run, name, STR, "", 0, 0, none, "run name: directory under run.out_dir (empty: <env>_<algo>_s<seed>)") \
    X(run, out_dir, STR, "runs", 0, 0, none, "directory that holds run directories")          \
    X(run, seed, I64, "1", 0, FLAME_SEED_MAX, none, "master seed: every random draw derives from it")   \
    X(run, total_steps, I64, "1000000", 1, 1e12, none, "env steps after warm-up")               \
    X(run, start_steps, I64, "30000", 0, 1e12, none, "warm-up env steps with uniform random actions, no updates") \
    X(run, eval_every, I64, "25000", 1, 1e12, none, "env steps between evaluations")            \
    X(run, eval_episodes, INT, "20", 0, 100000, none, "episodes per evaluation (0: no evaluation)") \
    X(run, stop_return, AFLOAT, "auto", -1e30, 1e30, none, "stop when an evaluation's mean return reaches this (auto: never)") \
    X(run, ckpt_every, I64, "100000", 1, 1e12, none, "env steps between checkpoints (and one at the end)") \
    X(run, keep_ckpts, INT, "3", 0, 1000000, none, "checkpoints kept (older ones are deleted; 0: keep all)") \
    X(run, log_every, FLOAT, "2.0", 0.05, 3600, none, "seconds between progress lines")           \
    X(run, metrics_every, I64, "1000", 1, 1e12, none, "env steps between /train rows of metrics.h5") \
    X(run, flush_every, I64, "5000", 1, 1e12, none, "env steps between metrics.h5 flushes")    \
    X(run, save_replay, BOOL, "true", 0, 0, none, "store the replay buffer in checkpoints (needed for exact resume)") \
    X(run, cpu_threads, INT, "1", 1, 1024, none, "BLAS threads of the CPU backend")

#define FLAME_CFG_ENV(X)                                                                           \
    X(env, id, STR, "HalfCheetah-v5", 0, 0, none, "environment id (flame envs lists them)")     \
    X(env, num_envs, INT, "5", 1, 65536, none, "vectorised training envs (UTD = updates_per_iter / num_envs)") \
    X(env, threads, INT, "0", 0, 1024, none, "env worker threads (0: all cores but one, at most num_envs)") \
    X(env, model_xml, STR, "", 0, 0, none, "MJCF file to load instead of the embedded model")  \
    X(env, eval_envs, INT, "0", 0, 65536, none, "parallel evaluation envs (0: run.eval_episodes)")

#define FLAME_CFG_UPDATE(X)                                                                        \
    X(update, batch_size, INT, "256", 1, 1048576, none, "minibatch size B")                      \
    X(update, replay_size, I64, "1000000", 1, 1e10, none, "replay buffer capacity (transitions)") \
    X(update, updates_per_iter, INT, "1", 0, 1024, none, "gradient updates per vectorised env step") \
    X(update, gamma, FLOAT, "0.99", 0, 1, none, "discount")                                     \
    X(update, tau, FLOAT, "0.005", 0, 1, none, "Polyak rate of target critics and the EMA policy") \
    X(update, reward_scale, FLOAT, "0.2", 0, 1e6, none, "reward multiplier in the TD target")     \
    X(update, policy_delay, INT, "0", 0, 1000000, none, "actor step every this many updates (0: 2 for FLAME, 1 for SAC)") \
    X(update, target_delay, INT, "0", 0, 1000000, none, "Polyak averaging every this many updates (0: 2 for FLAME, 1 for SAC)")

#define FLAME_CFG_NET(X)                                                                           \
    X(net, hidden, INT, "256", 1, 65536, none, "hidden width of policy and critics")            \
    X(net, layers, INT, "3", 1, 15, none, "hidden layers of policy and critics")                \
    X(net, activation, ENUM, "auto", 0, 0, activation, "hidden activation: auto (mish for FLAME, gelu for SAC), mish, relu, gelu") \
    X(net, time_embed_dim, INT, "16", 2, 1024, none, "sinusoidal time embedding size (even)")   \
    X(net, time_hidden, INT, "32", 1, 4096, none, "hidden width of each time-embedding MLP")

#define FLAME_CFG_FLOW(X)                                                                          \
    X(flow, num_particles, INT, "32", 1, 4096, none, "best-of-N action particles")             \
    X(flow, sample_k, INT, "100", 1, 100000, none, "posterior candidates K per sample")        \
    X(flow, sample_steps, INT, "0", 0, 1000, none, "sampling steps (0: 1 for flame-m, 20 for flame-r)") \
    X(flow, base_std, FLOAT, "0.5", 1e-6, 1e3, none, "std of the acting base noise")            \
    X(flow, t_min, FLOAT, "0.001", 0, 1, none, "lower end of the (r, t) uniform draws")          \
    X(flow, t_max, FLOAT, "0.9946", 0, 1, none, "upper end of the (r, t) uniform draws")         \
    X(flow, r_eq_t_frac, FLOAT, "0.0", 0, 1, none, "fraction of flow-loss rows with r = t")      \
    X(flow, collapse_k, BOOL, "true", 0, 0, none, "one JVP with the weight-averaged tangent (exact gradient); false: the B*K-row form") \
    X(flow, actor_q_weight, FLOAT, "1.0", 0, 1e6, none, "weight of the -Q actor term (flame-m)") \
    X(flow, fm_weight, FLOAT, "1.0", 0, 1e6, none, "weight of the flow-matching actor loss (flame-m; ablations)") \
    X(flow, noise_scale, FLOAT, "1.0", 0, 1e3, none, "exploration noise std = alpha * noise_scale")

#define FLAME_CFG_OPTIM(X)                                                                         \
    X(optim, critic_lr, FLOAT, "3e-4", 0, 10, none, "critic Adam learning rate")                 \
    X(optim, actor_lr, FLOAT, "3e-4", 0, 10, none, "actor Adam learning rate (start)")           \
    X(optim, actor_lr_end, AFLOAT, "auto", 0, 10, none, "actor learning rate after the linear decay (auto: 3e-5 for FLAME, optim.actor_lr for SAC)") \
    X(optim, actor_lr_decay_begin, I64, "25000", 0, 1e12, none, "actor optimiser step where the decay begins") \
    X(optim, actor_lr_decay_end, I64, "75000", 0, 1e12, none, "actor optimiser step where the decay ends") \
    X(optim, beta1, FLOAT, "0.9", 0, 0.999999, none, "Adam beta1")                               \
    X(optim, beta2, FLOAT, "0.999", 0, 0.99999999, none, "Adam beta2")                           \
    X(optim, eps, FLOAT, "1e-8", 0, 1, none, "Adam epsilon")

#define FLAME_CFG_ALPHA(X)                                                                         \
    X(alpha, init, FLOAT, "1.0", 1e-12, 1e6, none, "initial temperature")                        \
    X(alpha, learn, BOOL, "true", 0, 0, none, "learn log alpha")                                 \
    X(alpha, lr, AFLOAT, "auto", 0, 10, none, "log-alpha Adam rate (auto: 0.005 for FLAME, 3e-4 for SAC)") \
    X(alpha, delay, INT, "0", 0, 1000000, none, "alpha step every this many updates (0: 100 for FLAME, 1 for SAC; SAC only on actor updates)") \
    X(alpha, target_entropy_scale, AFLOAT, "auto", 0, 1e3, none, "target entropy = -scale * act_dim (auto: 3 for FLAME, 1 for SAC)")

#define FLAME_CFG_ENTROPY(X)                                                                       \
    X(entropy, estimator, ENUM, "auto", 0, 0, estimator, "auto, reference3, decoupled, ode, biased1, exact, none") \
    X(entropy, steps, INT, "0", 0, 10000, none, "integration steps (0: 3 for reference3/decoupled, 20 for ode)") \
    X(entropy, probes, INT, "1", 1, 1024, none, "Hutchinson probes per sample")                 \
    X(entropy, probe, ENUM, "gaussian", 0, 0, probe, "Hutchinson probe distribution: gaussian or rademacher") \
    X(entropy, trace_clip, FLOAT, "10", 0, 1e30, none, "clip of each step's trace (reference3)") \
    X(entropy, base_std, AFLOAT, "auto", 1e-6, 1e3, none, "std of the estimator's base draws (auto: 1 for reference3/ode, flow.base_std otherwise)")

#define FLAME_CFG_QUIRKS(X)                                                                        \
    X(quirks, time_convention, ENUM, "auto", 0, 0, quirk, "flame-m training path: reference (x = t a + (1-t) eps) or consistent (noise at t = 1)") \
    X(quirks, softmax_temp, ENUM, "auto", 0, 0, softmax_temp, "candidate softmax temperature: exp_alpha (code) or alpha") \
    X(quirks, td_entropy, ENUM, "auto", 0, 0, td_entropy, "entropy term of the TD target: minus (-alpha H), plus, omit") \
    X(quirks, critic_double_step, ENUM, "auto", 0, 0, tri, "flame-m: a second critic Adam step with the same gradient") \
    X(quirks, clip_noisy_action, ENUM, "auto", 0, 0, tri, "clip the noisy action x to [-1,1] before the posterior (flame-r: yes)") \
    X(quirks, multistep_scale, ENUM, "auto", 0, 0, quirk, "few-step MeanFlow sampler: reference (no 1/N factor) or consistent") \
    X(quirks, next_action_policy, ENUM, "auto", 0, 0, next_policy, "policy of the TD target's next action: online (code) or ema") \
    X(quirks, weights_after_critic_step, ENUM, "auto", 0, 0, tri, "score candidates with the once-updated critics (flame-m code)") \
    X(quirks, sac_log_det, ENUM, "auto", 0, 0, tri, "sac: log pi with the tanh log-det correction (reference code: no)") \
    X(quirks, sac_log_std_max, AFLOAT, "auto", -19, 20, none, "sac: upper clip of the policy's log std (auto: 0.5 reference code, 2 consistent)") \
    X(quirks, sac_alpha_init, ENUM, "auto", 0, 0, quirk, "sac: initial log alpha: reference (1, i.e. alpha = e) or consistent (log alpha.init)")

#define FLAME_CFG_BACKEND(X)                                                                       \
    X(backend, type, ENUM, "auto", 0, 0, backend, "auto (cuda when a device exists), cpu, cuda") \
    X(backend, device, INT, "0", 0, 64, none, "CUDA device index")                             \
    X(backend, kernels, ENUM, "fused", 0, 0, kernels, "CUDA stage implementation: fused or cublas") \
    X(backend, precision, ENUM, "fp32", 0, 0, precision, "CUDA GEMM precision: fp32 or tf32")    \
    X(backend, graphs, BOOL, "true", 0, 0, none, "capture the CUDA update as a graph")          \
    X(backend, small_rows, ENUM, "tile", 0, 0, small_rows, "CUDA passes of at most 4096 rows: tile (one block per row tile) or cluster (sm_90: 8 blocks share a row tile, one eighth of every layer each)") \
    X(backend, scoring, ENUM, "staged", 0, 0, stage_path, "CUDA twin-critic scoring of candidates and particles: staged (fp32 kernels in turn) or fused (tensor cores; draws and twin minimum in the kernel; 3xTF32 at fp32)") \
    X(backend, backward, ENUM, "staged", 0, 0, stage_path, "CUDA backward passes of at most 4096 rows: staged (cuBLAS per layer) or fused (sm_90: a row-chain and a weight-gradient kernel)") \
    X(backend, entropy, ENUM, "staged", 0, 0, stage_path, "CUDA reference3/decoupled entropy estimator: staged (kernels per step) or fused (sm_90: one kernel for every step)") \
    X(backend, reductions, ENUM, "block", 0, 0, reductions, "CUDA reductions over the batch: block (one block) or grid (every block, deterministic)") \
    X(backend, merge_launches, BOOL, "false", 0, 0, none, "CUDA: time features in one kernel per pass, both critics' loss, backward and Adam in one launch each") \
    X(backend, overlap, BOOL, "false", 0, 0, none, "act and step the envs while the device runs the previous iteration's updates (the policy acts one iteration late; false: strictly sequential)") \
    X(backend, noise_file, STR, "", 0, 0, none, "HDF5 noise bundle: take the update's random draws from it (CPU)")

#define FLAME_CONFIG_SECTIONS(S)                                                                   \
    S(root, FLAME_CFG_ROOT)                                                                        \
    S(run, FLAME_CFG_RUN)                                                                          \
    S(env, FLAME_CFG_ENV)                                                                          \
    S(update, FLAME_CFG_UPDATE)                                                                    \
    S(net, FLAME_CFG_NET)                                                                          \
    S(flow, FLAME_CFG_FLOW)                                                                        \
    S(optim, FLAME_CFG_OPTIM)                                                                      \
    S(alpha, FLAME_CFG_ALPHA)                                                                      \
    S(entropy, FLAME_CFG_ENTROPY)                                                                  \
    S(quirks, FLAME_CFG_QUIRKS)                                                                    \
    S(backend, FLAME_CFG_BACKEND)

/* ------------------------------------------------------------------ the struct */
#define FLAME_CFG_CTYPE_INT int
#define FLAME_CFG_CTYPE_I64 int64_t
#define FLAME_CFG_CTYPE_FLOAT double
#define FLAME_CFG_CTYPE_AFLOAT double
#define FLAME_CFG_CTYPE_BOOL bool
#define FLAME_CFG_CTYPE_ENUM int
#define FLAME_CFG_DECL_STR(name) char name[FLAME_CFG_STR];
#define FLAME_CFG_DECL_INT(name) int name;
#define FLAME_CFG_DECL_I64(name) int64_t name;
#define FLAME_CFG_DECL_FLOAT(name) double name;
#define FLAME_CFG_DECL_AFLOAT(name) double name;
#define FLAME_CFG_DECL_BOOL(name) bool name;
#define FLAME_CFG_DECL_ENUM(name) int name;
#define FLAME_CFG_DECL(sec, name, kind, def, lo, hi, en, help) FLAME_CFG_DECL_##kind(name)
#define FLAME_CFG_SECTION_STRUCT(sec, table)                                                       \
    struct {                                                                                       \
        table(FLAME_CFG_DECL)                                                                      \
    } sec;

typedef struct FlameConfig {
    FLAME_CFG_ROOT(FLAME_CFG_DECL)
    FLAME_CFG_SECTION_STRUCT(run, FLAME_CFG_RUN)
    FLAME_CFG_SECTION_STRUCT(env, FLAME_CFG_ENV)
    FLAME_CFG_SECTION_STRUCT(update, FLAME_CFG_UPDATE)
    FLAME_CFG_SECTION_STRUCT(net, FLAME_CFG_NET)
    FLAME_CFG_SECTION_STRUCT(flow, FLAME_CFG_FLOW)
    FLAME_CFG_SECTION_STRUCT(optim, FLAME_CFG_OPTIM)
    FLAME_CFG_SECTION_STRUCT(alpha, FLAME_CFG_ALPHA)
    FLAME_CFG_SECTION_STRUCT(entropy, FLAME_CFG_ENTROPY)
    FLAME_CFG_SECTION_STRUCT(quirks, FLAME_CFG_QUIRKS)
    FLAME_CFG_SECTION_STRUCT(backend, FLAME_CFG_BACKEND)
} FlameConfig;

/* ------------------------------------------------------------------ field table */
typedef enum { CFG_INT, CFG_I64, CFG_FLOAT, CFG_AFLOAT, CFG_BOOL, CFG_STR, CFG_ENUM } ConfigKind;

typedef struct {
    const char *section; /* "" for top-level keys */
    const char *name;
    const char *key; /* "section.name" or "name" */
    ConfigKind kind;
    size_t offset;
    const char *def;
    double lo, hi;
    const char *const *enum_names; /* NULL-terminated, for CFG_ENUM */
    const char *help;
} ConfigField;

/* All fields in declaration order. */
const ConfigField *config_fields(int *count);

/* The field with key "section.name" (or a top-level "name"); NULL when unknown. */
const ConfigField *config_find_field(const char *key);

/* Fills every key with its default. */
void config_defaults(FlameConfig *cfg);

/* Loads a YAML file over `cfg` (keys absent from the file keep their current value).
   Returns FLAME_OK, or FLAME_EINPUT with a one-line message naming the file, the key and the fix. */
int config_load_file(FlameConfig *cfg, const char *path);

/* The same from YAML text; `origin` names it in messages. */
int config_load_string(FlameConfig *cfg, const char *yaml, size_t len, const char *origin);

/* Applies one "key=value" override with the same validation as the YAML loader. */
int config_set(FlameConfig *cfg, const char *assignment);

/* Parses an integer exactly (no rounding through a double): decimal digits with an optional
   sign and YAML-style underscores between digits, with an optional fraction or exponent as long
   as the value is whole (1e6, 2.5e3). Returns 0 when s is anything else or does not fit in
   int64_t. */
int config_parse_integer(const char *s, int64_t *out);

/* Sets one key from its text value; `origin` names the source in messages. */
int config_set_value(FlameConfig *cfg, const ConfigField *f, const char *value, const char *origin);

/* Replaces "auto" values by what they derive from (algo, compat, ...). Idempotent. */
void config_resolve(FlameConfig *cfg);

/* Cross-field rules (on a resolved config); FLAME_EINPUT with a message that states the fix. */
int config_validate(const FlameConfig *cfg);

/* The resolved config as YAML (caller frees with free()). Loading it back gives an equal struct. */
char *config_to_yaml(const FlameConfig *cfg);

/* Field-by-field equality (strings by content, floats bitwise-equal or both NaN). */
bool config_equal(const FlameConfig *a, const FlameConfig *b);

/* Prints every key with its kind, default, range and help (flame train --help-config). */
void config_print_help(FILE *f);

/* The name of an enum value of the field with key `key` (for messages and metadata). */
const char *config_enum_name(const char *key, int value);

/* Convenience names for the common enums. */
const char *config_algo_name(int algo);

#endif
