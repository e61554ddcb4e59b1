/*
 * backend_impl.cuh: the CUDA backend object shared by its translation units (backend_cuda.cu:
 * life cycle, state, replay, graphs; stages.cu: the stage operations; entropy_cuda.cu: the
 * entropy estimators).
 *
 * Per-update scalars live in device memory (DevScalars), written by a one-thread kernel at the
 * start of each update, so that the kernels of an update can be captured once as a CUDA graph and
 * replayed: no kernel argument depends on the update index, the replay size, the learning rate or
 * the Adam step counts. A stage that needs a step count reads the count at the start of the update
 * plus an offset fixed by the order of the stages (e.g. the re-applied critic step is +1).
 *
 * Acting alongside the updates (publish, ActWork): after the first publish, act runs on its own
 * stream with its own work buffers and reads the parameters of the last published snapshot, so it
 * never waits for queued updates. act swaps the work set into the Backend fields that
 * cuda_stage_act reads (act_swap: ctx, pol, pol_ema, q1, q2, alpha3, fw, q1w, q2w, z_rep, a_rep,
 * qproj, fcap, pcap) and back; the host thread enqueues nothing else meanwhile, and kernels
 * already enqueued keep the pointers they were launched with.
 *
 * defines: Backend DevScalars ActWork Backend stage entry points
 */
#ifndef FLAME_KERNELS_BACKEND_IMPL_CUH
#define FLAME_KERNELS_BACKEND_IMPL_CUH

#include "dflow.cuh"

extern "C" {
#include "flame/backend_cuda.h"
}

typedef struct {
    int64_t n;           /* update index */
    int64_t replay_size; /* transitions in the ring */
    int64_t critic_steps0, actor_steps0, alpha_steps0; /* counters at the start of the update */
    double actor_lr;
} DevScalars;

#define FLAME_GRAPH_KEYS 8

/* The acting work set of publish/act (allocated at the first publish). */
typedef struct {
    DCtx ctx;             /* own stream and cuBLAS handle */
    void *blas_ws;
    float *snap[2];       /* published states: policy, EMA policy, critic 1, critic 2, alpha3 */
    cudaEvent_t ready[2]; /* recorded on the update stream after each snapshot's copies */
    int slot;             /* slot of the last publish */
    DFlowWork fw;
    DQWork q1w, q2w;
    float *z_rep, *a_rep, *qproj;
    int fcap, pcap;
} ActWork;

struct Backend {
    BackendBase base;
    AgentLayout L;
    int B, S, D, K, Np, NP;
    uint64_t seed;
    DCtx ctx;
    void *blas_ws;

    /* agent state: blobs of 4 role arrays (params, grads, m, v), as ParamBlob */
    size_t np, nq;
    float *pol, *q1, *q2;
    float *pol_ema, *q1_targ, *q2_targ;
    float *alpha3; /* log alpha, Adam m, Adam v */
    DevScalars *sc;
    UpdateMetrics *met;
    double *acc; /* scratch accumulators (loss sums across chunks) */
    struct TrainStats *stats; /* BACKEND_STATS_SLOTS intervals (stats_track), allocated then */
    int stats_n;              /* intervals every update adds to */

    /* kernel choices beyond DCtx (backend.scoring, entropy, reductions, merge_launches) */
    bool scoring_fused, entropy_fused, grid_red, merge;
    int cc_major; /* compute capability of the device */
    int sm_count; /* its multiprocessors */
    GridRed red;  /* partials and counters of grid reductions */
    float *qproj; /* fused scoring: the critics' first layer on the states, 2 x pcap x hidden */
    int pcap;

    /* replay ring (device) and its pinned staging, two slots used in turn */
    int64_t cap, size, head;
    float *r_obs, *r_act, *r_rew, *r_next;
    uint8_t *r_done;
    unsigned char *h_stage[2];
    size_t h_stage_bytes[2];
    cudaEvent_t push_ev[2];
    bool push_pending[2];
    int64_t pushes;

    /* minibatch and stage outputs */
    float *obs, *act, *rew, *next_obs, *done;
    float *y, *ent, *next_a, *a_star, *logpi;
    float *x, *r, *t, *vbar, *w, *ess, *eps_post, *qc;
    float *pscore;
    int *pbest;

    /* work */
    int fcap; /* rows of the policy / critic work (particle chunks, B, K) */
    int qcap; /* rows of one candidate-scoring chunk (whole states) */
    DFlowWork fw;
    DQWork q1w, q2w;
    float *z_rep, *a_rep, *tan_rep, *g_rep, *mask, *da, *da2, *dq1, *dq2, *dout2;
    float *xr, *rr, *tr; /* expanded rows of the B*K flow loss */
    /* entropy scratch (B rows) */
    float *ez, *etan, *etr, *ejac;
    double *elu;

    /* acting */
    float *h_aobs, *h_aout; /* pinned */
    float *d_aobs, *d_aout, *d_ascore;
    int *d_abest;
    size_t act_cap; /* rows */
    int act_n;

    /* graphs */
    bool use_graphs, capturing, replaying;
    int key;
    cudaGraphExec_t exec[FLAME_GRAPH_KEYS];
    int seen[FLAME_GRAPH_KEYS]; /* eager updates run per key (the first one is never captured) */
    int graph_nodes[FLAME_GRAPH_KEYS]; /* nodes of each captured graph */
    int n_graphs;
    AgentCounters start; /* counters at the start of the update in flight */

    /* acting alongside the updates (NULL until the first publish) */
    ActWork *aw;

    /* device bytes allocated (create); plan_only: sizes counted, nothing allocated */
    size_t dev_bytes;
    bool plan_only;

    /* debug view host copies */
    float *h_dbg, *h_dbg_as;
    int *h_dbg_i;
};

/* stage operations (stages.cu) */
void cuda_stage_act(Backend *b, const float *d_obs, int n, ActMode mode, uint32_t call,
                    float *d_out);
void cuda_stage_critic_target(Backend *b);
void cuda_stage_critic_step(Backend *b, CriticPhase phase, int t_offset);
void cuda_stage_qweight(Backend *b);
void cuda_stage_policy_step(Backend *b, int t_offset);
void cuda_stage_alpha_step(Backend *b, int t_offset);
void cuda_stage_polyak(Backend *b);

/* entropy estimators (entropy_cuda.cu): H (B) of the online policy at s' */
void cuda_entropy_estimate(Backend *b, const float *P, const float *s, const float *a_star,
                           float *H);
/* Raises the shared-memory limit of the fused estimator's kernel. */
void cuda_entropy_init(const DCtx *ctx);

/* fused scoring (qscore.cu) */
void cuda_qscore_init(const DCtx *ctx);
/* Whether backend.scoring=fused applies to this backend's critic and device. */
bool cuda_qscore_ok(const Backend *b);
/* Q-reweighting: draws eps_post and scores qc = min(Q1, Q2) of all B*K candidates; false (and
   nothing done) when the fused scoring does not apply. */
bool cuda_qweight_score(Backend *b, bool consistent, float sd0);
/* Both critics (parameters P1, P2) on rows [s, a] (s: state rows with divisor s.div): outputs in
   the critic work outputs dq_out(q1w), dq_out(q2w); fused when it applies, else
   dcritic_forward2. */
void cuda_score_twin(Backend *b, const float *P1, const float *P2, DSeg s, const float *a_rows,
                     int rows);

/* Adam on n floats, optax semantics, bitwise the CPU's float arithmetic. The step is
   t = *t_base + t_offset + 1 (t_base in device memory); lr = *lr_dev when lr_dev != NULL. */
void cuda_adam(Backend *b, float *p, const float *g, float *m, float *v, size_t n, double lr,
               const double *lr_dev, const int64_t *t_base, int t_offset);

static inline float *blob_params(float *blob, size_t n) {
    (void)n;
    return blob;
}
static inline float *blob_grads(float *blob, size_t n) {
    return blob + n;
}
static inline float *blob_m(float *blob, size_t n) {
    return blob + 2 * n;
}
static inline float *blob_v(float *blob, size_t n) {
    return blob + 3 * n;
}

#endif
