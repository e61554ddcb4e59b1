/*
 * backend_cuda.cu: the CUDA backend (backend_cuda_ops): life cycle, device state in the
 * AgentLayout blob layout, the device replay ring, update graphs, state and replay transfer,
 * metrics, and the debug view (backend_cuda.h). The stage math is in stages.cu and
 * entropy_cuda.cu.
 *
 * One update = the ops update_step() calls, from replay_sample to end_update. replay_sample
 * writes the update's scalars to device memory (one-thread kernel), then either enqueues the
 * update's kernels as they are called (backend.graphs false, or the first update of a flag
 * combination, captured into a graph) or, once the graph of the flag combination (do_actor,
 * do_alpha, do_target) exists, turns the following ops into no-ops and end_update launches the
 * graph (the very first update of each combination runs eagerly, the second is captured).
 * Every op is asynchronous except act, get_* and sync.
 *
 * The replay ring lives in device memory; pushes go through two pinned staging buffers used in
 * turn with cudaMemcpyAsync on the backend's stream (stream order keeps them between updates, as
 * on the CPU; a push waits only for the copies of the push before the previous one), and the
 * minibatch indices and gathers run on the device from replay_sample_index().
 *
 * publish snapshots the acting parameters on the update stream (two slots in turn, an event
 * each); from then on act runs on its own stream after that event only (see backend_impl.cuh),
 * so acting and env stepping on the host overlap the queued updates.
 */
#include "backend_impl.cuh"

extern "C" {
#include "flame/train_stats.h"
}

static int g_sync_check = -1;
static int g_capturing = 0;

extern "C" void flame_cuda_fail(const char *what, const char *msg, const char *file, int line) {
    flame_fatal("%s:%d: %s failed: %s (HINT: run with FLAME_CUDA_SYNC_CHECK=1 to report "
                "asynchronous faults at the launch that caused them, or under compute-sanitizer)",
                file, line, what, msg);
}

extern "C" int flame_cuda_sync_check(void) {
    if (g_sync_check < 0) {
        const char *s = getenv("FLAME_CUDA_SYNC_CHECK");
        g_sync_check = (s && s[0] == '1') ? 1 : 0;
    }
    return g_sync_check && !g_capturing;
}

extern "C" void flame_cuda_set_capturing(int on) {
    g_capturing = on;
}

/* ------------------------------------------------------------------ helpers */
/* Zeroed device memory, counted in b->dev_bytes; in plan mode only counted (NULL). */
static void *dalloc(Backend *b, size_t bytes) {
    void *p = NULL;
    if (bytes == 0) {
        bytes = 16;
    }
    b->dev_bytes += bytes;
    if (b->plan_only) {
        return NULL;
    }
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        flame_fatal("cudaMalloc of %.1f MiB failed: %s (HINT: lower update.batch_size, "
                    "flow.sample_k or update.replay_size)",
                    bytes / 1048576.0, cudaGetErrorString(e));
    }
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}

/* Copies ordered on the backend's stream (a non-blocking stream does not wait for the legacy
   default stream that plain cudaMemcpy uses), complete when they return. */
static void copy_sync(Backend *b, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) {
        return;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, b->ctx.stream));
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
}

static void d2h(Backend *b, void *dst, const void *src, size_t bytes) {
    copy_sync(b, dst, src, bytes, cudaMemcpyDeviceToHost);
}

static void h2d(Backend *b, void *dst, const void *src, size_t bytes) {
    copy_sync(b, dst, src, bytes, cudaMemcpyHostToDevice);
}

static void dfree(void *p) {
    if (p) {
        CUDA_CHECK(cudaFree(p));
    }
}

__global__ void set_scalars_kernel(DevScalars *sc, int64_t n, int64_t size, int64_t c0, int64_t a0,
                                   int64_t al0, double lr) {
    sc->n = n;
    sc->replay_size = size;
    sc->critic_steps0 = c0;
    sc->actor_steps0 = a0;
    sc->alpha_steps0 = al0;
    sc->actor_lr = lr;
}

/* ------------------------------------------------------------------ create / destroy
   cuda_create checks the request, then builds the backend in five parts (context, state, replay,
   minibatch, work). Every device allocation goes through dalloc, so the same parts run in plan
   mode (backend_cuda_plan_bytes: sizes only, no device needed). */

/* device-capability rules of the kernel choices (only the fused path uses them) */
static int create_check(const FlameConfig *cfg) {
    if (flame_cuda_device_count() == 0) {
        return flame_errorf(FLAME_EINPUT, "the CUDA backend needs a CUDA device; use --backend cpu");
    }
    if (cfg->backend.noise_file[0]) {
        return flame_errorf(FLAME_EINPUT,
                            "backend.noise_file (noise bundles) is a CPU-backend feature; use "
                            "--backend cpu to replay a bundle");
    }
    int ndev = flame_cuda_device_count();
    if (cfg->backend.device >= ndev) {
        return flame_errorf(FLAME_EINPUT, "backend.device=%d but only %d CUDA device(s) exist",
                            cfg->backend.device, ndev);
    }
    if (cfg->backend.kernels != KERNELS_FUSED) {
        return FLAME_OK; /* the cuBLAS path uses none of the choices below */
    }
    int major = 0, minor = 0, optin = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                                      cfg->backend.device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                                      cfg->backend.device));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                      cfg->backend.device));
    struct {
        bool on;
        const char *key, *off;
    } cl[] = {
        {cfg->backend.small_rows == SMALL_CLUSTER, "backend.small_rows=cluster", "tile"},
        {cfg->backend.backward == PATH_FUSED, "backend.backward=fused", "staged"},
        {cfg->backend.entropy == PATH_FUSED, "backend.entropy=fused", "staged"},
    };
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
        if (cl[i].on && major < 9) {
            return flame_errorf(FLAME_EINPUT,
                                "%s needs thread-block clusters (compute capability 9.0); device "
                                "%d has %d.%d; set it to %s",
                                cl[i].key, cfg->backend.device, major, minor, cl[i].off);
        }
    }
    if (cfg->backend.scoring == PATH_FUSED && optin < 221 * 1024) {
        return flame_errorf(FLAME_EINPUT,
                            "backend.scoring=fused needs up to 221 KiB of shared memory per block; "
                            "device %d offers %d KiB; set backend.scoring=staged",
                            cfg->backend.device, optin / 1024);
    }
    return FLAME_OK;
}

static void create_context(Backend *b) {
    const FlameConfig *cfg = b->base.cfg;
    bool fused = cfg->backend.kernels == KERNELS_FUSED;
    b->ctx.tf32 = cfg->backend.precision == PRECISION_TF32;
    b->ctx.fused = fused;
    b->ctx.cluster = fused && cfg->backend.small_rows == SMALL_CLUSTER;
    b->ctx.bwd_fused = fused && cfg->backend.backward == PATH_FUSED;
    b->ctx.merge = cfg->backend.merge_launches;
    b->scoring_fused = fused && cfg->backend.scoring == PATH_FUSED;
    b->entropy_fused = fused && cfg->backend.entropy == PATH_FUSED;
    b->grid_red = cfg->backend.reductions == REDUCE_GRID;
    b->merge = cfg->backend.merge_launches;
    b->use_graphs = cfg->backend.graphs;
    size_t ws = 32u << 20;
    b->blas_ws = dalloc(b, ws);
    if (b->plan_only) {
        return;
    }
    /* stream, cuBLAS, fused-kernel limits */
    CUDA_CHECK(cudaStreamCreateWithFlags(&b->ctx.stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&b->ctx.blas));
    CUBLAS_CHECK(cublasSetStream(b->ctx.blas, b->ctx.stream));
    CUBLAS_CHECK(cublasSetWorkspace(b->ctx.blas, b->blas_ws, ws));
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, b->ctx.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                            : CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaDeviceGetAttribute(&b->cc_major, cudaDevAttrComputeCapabilityMajor,
                                      cfg->backend.device));
    CUDA_CHECK(cudaDeviceGetAttribute(&b->sm_count, cudaDevAttrMultiProcessorCount,
                                      cfg->backend.device));
    dmlp_init(&b->ctx);
    cuda_entropy_init(&b->ctx);
    cuda_qscore_init(&b->ctx);
}

/* agent state, initialised on the host exactly as the CPU backend does, then uploaded */
static void create_state(Backend *b) {
    const FlameConfig *cfg = b->base.cfg;
    AgentState st;
    agent_state_init(&st, cfg, b->S, b->D);
    b->L = st.L;
    b->np = st.L.pol_table.total;
    b->nq = st.L.q_table.total;
    b->pol = (float *)dalloc(b, 4 * b->np * sizeof(float));
    b->q1 = (float *)dalloc(b, 4 * b->nq * sizeof(float));
    b->q2 = (float *)dalloc(b, 4 * b->nq * sizeof(float));
    b->pol_ema = (float *)dalloc(b, b->np * sizeof(float));
    b->q1_targ = (float *)dalloc(b, b->nq * sizeof(float));
    b->q2_targ = (float *)dalloc(b, b->nq * sizeof(float));
    b->alpha3 = (float *)dalloc(b, 3 * sizeof(float));
    b->sc = (DevScalars *)dalloc(b, sizeof(DevScalars));
    b->met = (UpdateMetrics *)dalloc(b, sizeof(UpdateMetrics));
    b->acc = (double *)dalloc(b, 8 * sizeof(double));
    if (!b->plan_only) {
        CUDA_CHECK(cudaDeviceSynchronize()); /* the zeroing (legacy stream) precedes the upload */
        backend_cuda_ops.set_state(b, &st);
    }
    agent_state_free(&st);
}

static void create_replay(Backend *b) {
    b->cap = b->base.cfg->update.replay_size;
    size_t C = (size_t)b->cap, S = (size_t)b->S, D = (size_t)b->D;
    b->r_obs = (float *)dalloc(b, C * S * sizeof(float));
    b->r_next = (float *)dalloc(b, C * S * sizeof(float));
    b->r_act = (float *)dalloc(b, C * D * sizeof(float));
    b->r_rew = (float *)dalloc(b, C * sizeof(float));
    b->r_done = (uint8_t *)dalloc(b, C);
    if (!b->plan_only) {
        for (int k = 0; k < 2; k++) {
            CUDA_CHECK(cudaEventCreateWithFlags(&b->push_ev[k], cudaEventDisableTiming));
        }
    }
}

/* minibatch and stage outputs */
static void create_batch(Backend *b) {
    size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D, K = (size_t)b->K,
           Np = (size_t)b->Np;
    b->obs = (float *)dalloc(b, B * S * sizeof(float));
    b->next_obs = (float *)dalloc(b, B * S * sizeof(float));
    b->act = (float *)dalloc(b, B * D * sizeof(float));
    b->rew = (float *)dalloc(b, B * sizeof(float));
    b->done = (float *)dalloc(b, B * sizeof(float));
    b->y = (float *)dalloc(b, B * sizeof(float));
    b->ent = (float *)dalloc(b, B * sizeof(float));
    b->logpi = (float *)dalloc(b, B * sizeof(float));
    b->next_a = (float *)dalloc(b, B * D * sizeof(float));
    b->a_star = (float *)dalloc(b, B * D * sizeof(float));
    b->x = (float *)dalloc(b, B * D * sizeof(float));
    b->r = (float *)dalloc(b, B * sizeof(float));
    b->t = (float *)dalloc(b, B * sizeof(float));
    b->vbar = (float *)dalloc(b, B * D * sizeof(float));
    b->ess = (float *)dalloc(b, B * sizeof(float));
    b->w = (float *)dalloc(b, B * K * sizeof(float));
    b->qc = (float *)dalloc(b, B * K * sizeof(float));
    b->eps_post = (float *)dalloc(b, B * K * D * sizeof(float));
    b->pscore = (float *)dalloc(b, B * Np * sizeof(float));
    b->pbest = (int *)dalloc(b, B * sizeof(int));
}

/* row capacities of the work buffers: particle chunks of whole states (at least B, K and Np
   rows) and candidate-scoring chunks */
static void work_rows(Backend *b, int *qrows) {
    long long fc = (long long)b->B * b->Np; /* 64 bits: up to 2^20 * 4096 before the clamp */
    fc = fc > 32768 ? 32768 : fc;
    fc = fc < b->B ? b->B : fc;
    fc = fc < b->K ? b->K : fc;
    fc = fc < b->Np ? b->Np : fc;
    int fcap = (int)fc;
    b->fcap = fcap;
    int per = 32768 / b->K;
    per = per < 1 ? 1 : (per > b->B ? b->B : per);
    b->qcap = per * b->K;
    *qrows = b->qcap > fcap ? b->qcap : fcap;
    /* the fused scoring's state projections: the batch, or one particle chunk's states */
    int pst = b->fcap / b->Np;
    b->pcap = b->B > pst ? b->B : pst;
}

/* one set of flow and critic work of `rows` rows (plan mode: counted only) */
static void work_caches(Backend *b, DFlowWork *fw, int frows, DQWork *q1, DQWork *q2, int qrows) {
    if (b->plan_only) {
        b->dev_bytes += dflow_work_bytes(&b->L, frows) + 2 * dqwork_bytes(&b->L, qrows);
        return;
    }
    dflow_work_alloc(fw, &b->L, frows);
    dqwork_alloc(q1, &b->L, qrows);
    dqwork_alloc(q2, &b->L, qrows);
}

static void create_work(Backend *b) {
    int qrows = 0;
    work_rows(b, &qrows);
    work_caches(b, &b->fw, b->fcap, &b->q1w, &b->q2w, qrows);
    size_t B = (size_t)b->B, D = (size_t)b->D, F = (size_t)b->fcap;
    b->z_rep = (float *)dalloc(b, F * D * sizeof(float));
    b->a_rep = (float *)dalloc(b, (size_t)qrows * D * sizeof(float));
    b->tan_rep = (float *)dalloc(b, F * D * sizeof(float));
    b->g_rep = (float *)dalloc(b, F * D * sizeof(float));
    b->mask = (float *)dalloc(b, F * D * sizeof(float));
    b->da = (float *)dalloc(b, F * D * sizeof(float));
    b->da2 = (float *)dalloc(b, F * D * sizeof(float));
    b->dq1 = (float *)dalloc(b, F * sizeof(float));
    b->dq2 = (float *)dalloc(b, F * sizeof(float));
    b->dout2 = (float *)dalloc(b, F * 2 * D * sizeof(float));
    b->xr = (float *)dalloc(b, F * D * sizeof(float));
    b->rr = (float *)dalloc(b, F * sizeof(float));
    b->tr = (float *)dalloc(b, F * sizeof(float));
    /* entropy scratch (the exact estimator's Jacobians and LU only when it runs) */
    bool exact = b->base.cfg->entropy.estimator == ENT_EXACT;
    size_t JD = exact ? D * D : 1;
    b->ez = (float *)dalloc(b, B * D * sizeof(float));
    b->etan = (float *)dalloc(b, B * D * sizeof(float));
    b->etr = (float *)dalloc(b, B * sizeof(float));
    b->ejac = (float *)dalloc(b, B * JD * sizeof(float));
    b->elu = (double *)dalloc(b, B * JD * sizeof(double));
    /* grid reductions, fused scoring */
    b->red.part = (double *)dalloc(
        b, (size_t)GRID_RED_MAX_BLOCKS * GRID_RED_MAX_VALUES * GRID_RED_MAX_ROWS * sizeof(double));
    b->red.count = (unsigned *)dalloc(b, GRID_RED_MAX_ROWS * sizeof(unsigned));
    if (b->scoring_fused) {
        b->qproj = (float *)dalloc(b, 2 * (size_t)b->pcap * b->L.q.dims[1] * sizeof(float));
    }
}

/* the backend object with the config's sizes (no device work) */
static Backend *backend_new(const FlameConfig *cfg, int obs_dim, int act_dim, bool plan_only) {
    Backend *b = (Backend *)flame_calloc(1, sizeof *b);
    backend_base_init(&b->base, cfg, obs_dim, act_dim);
    b->B = cfg->update.batch_size;
    b->S = obs_dim;
    b->D = act_dim;
    b->K = cfg->flow.sample_k;
    b->Np = cfg->flow.num_particles;
    b->NP = cfg->entropy.probes;
    b->seed = (uint64_t)cfg->run.seed;
    b->plan_only = plan_only;
    return b;
}

static void create_parts(Backend *b) {
    create_context(b);
    create_state(b);
    create_replay(b);
    create_batch(b);
    create_work(b);
}

static int cuda_create(const FlameConfig *cfg, int obs_dim, int act_dim, Backend **out) {
    int rc = create_check(cfg);
    if (rc != FLAME_OK) {
        return rc;
    }
    CUDA_CHECK(cudaSetDevice(cfg->backend.device));
    Backend *b = backend_new(cfg, obs_dim, act_dim, false);
    create_parts(b);
    size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D, K = (size_t)b->K,
           Np = (size_t)b->Np;
    size_t dbg = B * (2 * S + 5 * D + 8) + B * K * (D + 2) + B * Np + 2 * D;
    b->h_dbg = (float *)flame_calloc(dbg, sizeof(float));
    CUDA_CHECK(cudaDeviceSynchronize()); /* the zeroing of every allocation is done */
    *out = b;
    return FLAME_OK;
}

size_t backend_cuda_plan_bytes(const FlameConfig *cfg, int obs_dim, int act_dim) {
    Backend *b = backend_new(cfg, obs_dim, act_dim, true);
    create_parts(b);
    size_t bytes = b->dev_bytes;
    flame_free(b);
    return bytes;
}

size_t backend_cuda_device_bytes(Backend *b) {
    return b->dev_bytes;
}

static void act_work_free(Backend *b);

static void cuda_destroy(Backend *b) {
    if (!b) {
        return;
    }
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    act_work_free(b);
    for (int k = 0; k < FLAME_GRAPH_KEYS; k++) {
        if (b->exec[k]) {
            CUDA_CHECK(cudaGraphExecDestroy(b->exec[k]));
        }
    }
    dflow_work_free(&b->fw);
    dqwork_free(&b->q1w);
    dqwork_free(&b->q2w);
    void *ptrs[] = {b->pol,    b->q1,     b->q2,     b->pol_ema, b->q1_targ, b->q2_targ, b->alpha3,
                    b->sc,     b->met,    b->acc,    b->r_obs,   b->r_next,  b->r_act,   b->r_rew,
                    b->r_done, b->obs,    b->next_obs, b->act,   b->rew,     b->done,    b->y,
                    b->ent,    b->logpi,  b->next_a, b->a_star,  b->x,       b->r,       b->t,
                    b->vbar,   b->ess,    b->w,      b->qc,      b->eps_post, b->pscore, b->pbest,
                    b->z_rep,  b->a_rep,  b->tan_rep, b->g_rep,  b->mask,    b->da,      b->da2,
                    b->dq1,    b->dq2,    b->dout2,  b->xr,      b->rr,      b->tr,      b->ez,
                    b->etan,   b->etr,    b->ejac,   b->elu,     b->d_aobs,  b->d_aout,  b->d_ascore,
                    b->d_abest, b->blas_ws, b->red.part, b->red.count, b->qproj, b->stats};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
        dfree(ptrs[i]);
    }
    for (int k = 0; k < 2; k++) {
        if (b->h_stage[k]) {
            CUDA_CHECK(cudaFreeHost(b->h_stage[k]));
        }
        CUDA_CHECK(cudaEventDestroy(b->push_ev[k]));
    }
    if (b->h_aobs) {
        CUDA_CHECK(cudaFreeHost(b->h_aobs));
        CUDA_CHECK(cudaFreeHost(b->h_aout));
    }
    CUBLAS_CHECK(cublasDestroy(b->ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(b->ctx.stream));
    flame_free(b->h_dbg);
    flame_free(b->h_dbg_as);
    flame_free(b->h_dbg_i);
    flame_free(b);
}

/* ------------------------------------------------------------------ acting beside the updates */
/* floats of one published snapshot: policy, EMA policy, critic 1, critic 2 (params), alpha3;
   each part starts on a 64-byte boundary */
static size_t snap_floats(const Backend *b, size_t off[5]) {
    size_t n[5] = {b->np, b->np, b->nq, b->nq, 3}, o = 0;
    for (int k = 0; k < 5; k++) {
        off[k] = o;
        o += (n[k] + 15) / 16 * 16;
    }
    return o;
}

static void act_work_create(Backend *b) {
    ActWork *w = (ActWork *)flame_calloc(1, sizeof *w);
    w->ctx = b->ctx;
    CUDA_CHECK(cudaStreamCreateWithFlags(&w->ctx.stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&w->ctx.blas));
    CUBLAS_CHECK(cublasSetStream(w->ctx.blas, w->ctx.stream));
    size_t ws = 8u << 20;
    w->blas_ws = dalloc(b, ws);
    CUBLAS_CHECK(cublasSetWorkspace(w->ctx.blas, w->blas_ws, ws));
    CUBLAS_CHECK(cublasSetMathMode(w->ctx.blas, w->ctx.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                            : CUBLAS_DEFAULT_MATH));
    size_t off[5], nsnap = snap_floats(b, off);
    for (int k = 0; k < 2; k++) {
        w->snap[k] = (float *)dalloc(b, nsnap * sizeof(float));
        CUDA_CHECK(cudaEventCreateWithFlags(&w->ready[k], cudaEventDisableTiming));
    }
    w->slot = -1;
    w->fcap = b->fcap;
    w->pcap = b->pcap;
    int qrows = b->fcap;
    work_caches(b, &w->fw, w->fcap, &w->q1w, &w->q2w, qrows);
    w->z_rep = (float *)dalloc(b, (size_t)w->fcap * b->D * sizeof(float));
    w->a_rep = (float *)dalloc(b, (size_t)w->fcap * b->D * sizeof(float));
    if (b->scoring_fused) {
        w->qproj = (float *)dalloc(b, 2 * (size_t)w->pcap * b->L.q.dims[1] * sizeof(float));
    }
    CUDA_CHECK(cudaDeviceSynchronize()); /* the zeroing is done */
    b->aw = w;
}

static void act_work_free(Backend *b) {
    ActWork *w = b->aw;
    if (!w) {
        return;
    }
    CUDA_CHECK(cudaStreamSynchronize(w->ctx.stream));
    dflow_work_free(&w->fw);
    dqwork_free(&w->q1w);
    dqwork_free(&w->q2w);
    void *ptrs[] = {w->blas_ws, w->snap[0], w->snap[1], w->z_rep, w->a_rep, w->qproj};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
        dfree(ptrs[i]);
    }
    for (int k = 0; k < 2; k++) {
        CUDA_CHECK(cudaEventDestroy(w->ready[k]));
    }
    CUBLAS_CHECK(cublasDestroy(w->ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(w->ctx.stream));
    flame_free(w);
    b->aw = NULL;
}

/* The fields cuda_stage_act reads, exchanged between the backend and the acting work set. */
typedef struct {
    DCtx ctx;
    float *pol, *pol_ema, *q1, *q2, *alpha3;
    DFlowWork fw;
    DQWork q1w, q2w;
    float *z_rep, *a_rep, *qproj;
    int fcap, pcap;
} ActFields;

static void act_fields_get(const Backend *b, ActFields *f) {
    f->ctx = b->ctx;
    f->pol = b->pol, f->pol_ema = b->pol_ema, f->q1 = b->q1, f->q2 = b->q2, f->alpha3 = b->alpha3;
    f->fw = b->fw, f->q1w = b->q1w, f->q2w = b->q2w;
    f->z_rep = b->z_rep, f->a_rep = b->a_rep, f->qproj = b->qproj;
    f->fcap = b->fcap, f->pcap = b->pcap;
}

static void act_fields_set(Backend *b, const ActFields *f) {
    b->ctx = f->ctx;
    b->pol = f->pol, b->pol_ema = f->pol_ema, b->q1 = f->q1, b->q2 = f->q2, b->alpha3 = f->alpha3;
    b->fw = f->fw, b->q1w = f->q1w, b->q2w = f->q2w;
    b->z_rep = f->z_rep, b->a_rep = f->a_rep, b->qproj = f->qproj;
    b->fcap = f->fcap, b->pcap = f->pcap;
}

/* the acting fields of the last published snapshot on the acting stream */
static void act_fields_published(const Backend *b, ActFields *f) {
    const ActWork *w = b->aw;
    size_t off[5];
    snap_floats(b, off);
    float *sn = w->snap[w->slot];
    f->ctx = w->ctx;
    f->pol = sn + off[0], f->pol_ema = sn + off[1], f->q1 = sn + off[2], f->q2 = sn + off[3];
    f->alpha3 = sn + off[4];
    f->fw = w->fw, f->q1w = w->q1w, f->q2w = w->q2w;
    f->z_rep = w->z_rep, f->a_rep = w->a_rep, f->qproj = w->qproj;
    f->fcap = w->fcap, f->pcap = w->pcap;
}

/* publish: the snapshot of the state all queued work reaches, for the following act calls */
static void cuda_publish(Backend *b) {
    FLAME_CHECK(!b->capturing && !b->replaying, "publish called inside an update");
    if (!b->aw) {
        act_work_create(b);
    }
    ActWork *w = b->aw;
    int slot = w->slot < 0 ? 0 : 1 - w->slot;
    size_t off[5];
    snap_floats(b, off);
    const float *src[5] = {b->pol, b->pol_ema, b->q1, b->q2, b->alpha3};
    size_t n[5] = {b->np, b->np, b->nq, b->nq, 3};
    for (int k = 0; k < 5; k++) {
        CUDA_CHECK(cudaMemcpyAsync(w->snap[slot] + off[k], src[k], n[k] * sizeof(float),
                                   cudaMemcpyDeviceToDevice, b->ctx.stream));
    }
    CUDA_CHECK(cudaEventRecord(w->ready[slot], b->ctx.stream));
    w->slot = slot;
}

/* ------------------------------------------------------------------ act */
static void cuda_act(Backend *b, const float *obs, int n, ActMode mode, uint32_t call,
                     float *actions) {
    FLAME_CHECK(!b->capturing && !b->replaying, "act called inside an update");
    if (n <= 0) {
        return;
    }
    size_t S = (size_t)b->S, D = (size_t)b->D;
    if ((size_t)n > b->act_cap) {
        CUDA_CHECK(cudaDeviceSynchronize()); /* no act work in flight on any stream */
        if (b->h_aobs) {
            CUDA_CHECK(cudaFreeHost(b->h_aobs));
            CUDA_CHECK(cudaFreeHost(b->h_aout));
        }
        dfree(b->d_aobs);
        dfree(b->d_aout);
        dfree(b->d_ascore);
        dfree(b->d_abest);
        size_t cap = (size_t)n;
        CUDA_CHECK(cudaMallocHost((void **)&b->h_aobs, cap * S * sizeof(float)));
        CUDA_CHECK(cudaMallocHost((void **)&b->h_aout, cap * D * sizeof(float)));
        b->d_aobs = (float *)dalloc(b, cap * S * sizeof(float));
        b->d_aout = (float *)dalloc(b, cap * D * sizeof(float));
        b->d_ascore = (float *)dalloc(b, cap * (size_t)b->Np * sizeof(float));
        b->d_abest = (int *)dalloc(b, cap * sizeof(int));
        b->act_cap = cap;
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    /* after a publish: the published snapshot, on the acting stream (queued updates run on) */
    ActFields live;
    bool published = b->aw && b->aw->slot >= 0;
    if (published) {
        ActFields pub;
        act_fields_get(b, &live);
        act_fields_published(b, &pub);
        act_fields_set(b, &pub);
        CUDA_CHECK(cudaStreamWaitEvent(b->ctx.stream, b->aw->ready[b->aw->slot], 0));
    }
    memcpy(b->h_aobs, obs, (size_t)n * S * sizeof(float));
    CUDA_CHECK(cudaMemcpyAsync(b->d_aobs, b->h_aobs, (size_t)n * S * sizeof(float),
                               cudaMemcpyHostToDevice, b->ctx.stream));
    cuda_stage_act(b, b->d_aobs, n, mode, call, b->d_aout);
    CUDA_CHECK(cudaMemcpyAsync(b->h_aout, b->d_aout, (size_t)n * D * sizeof(float),
                               cudaMemcpyDeviceToHost, b->ctx.stream));
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    if (published) {
        act_fields_set(b, &live);
    }
    memcpy(actions, b->h_aout, (size_t)n * D * sizeof(float));
    b->act_n = n;
}

/* ------------------------------------------------------------------ replay */
static void cuda_replay_push(Backend *b, const float *obs, const float *act, const float *rew,
                             const float *next_obs, const uint8_t *done, int n) {
    FLAME_CHECK(!b->capturing && !b->replaying, "replay_push called inside an update");
    if (n <= 0) {
        return;
    }
    size_t S = (size_t)b->S, D = (size_t)b->D, N = (size_t)n;
    size_t bytes = N * (2 * S + D + 1) * sizeof(float) + N;
    /* two staging slots in turn: a slot is free once its previous copies are done */
    int k = (int)(b->pushes & 1);
    if (b->push_pending[k]) {
        CUDA_CHECK(cudaEventSynchronize(b->push_ev[k]));
        b->push_pending[k] = false;
    }
    if (bytes > b->h_stage_bytes[k]) {
        if (b->h_stage[k]) {
            CUDA_CHECK(cudaFreeHost(b->h_stage[k]));
        }
        CUDA_CHECK(cudaMallocHost((void **)&b->h_stage[k], bytes));
        b->h_stage_bytes[k] = bytes;
    }
    float *so = (float *)b->h_stage[k], *sn = so + N * S, *sa = sn + N * S, *sr = sa + N * D;
    uint8_t *sd = (uint8_t *)(sr + N);
    memcpy(so, obs, N * S * sizeof(float));
    memcpy(sn, next_obs, N * S * sizeof(float));
    memcpy(sa, act, N * D * sizeof(float));
    memcpy(sr, rew, N * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        sd[i] = done[i] ? 1 : 0;
    }
    cudaStream_t st = b->ctx.stream;
    size_t i = 0;
    while (i < N) {
        size_t h = (size_t)b->head, seg = N - i;
        if (seg > (size_t)b->cap - h) {
            seg = (size_t)b->cap - h;
        }
        CUDA_CHECK(cudaMemcpyAsync(b->r_obs + h * S, so + i * S, seg * S * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaMemcpyAsync(b->r_next + h * S, sn + i * S, seg * S * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaMemcpyAsync(b->r_act + h * D, sa + i * D, seg * D * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaMemcpyAsync(b->r_rew + h, sr + i, seg * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaMemcpyAsync(b->r_done + h, sd + i, seg, cudaMemcpyHostToDevice, st));
        b->head = (int64_t)((h + seg) % (size_t)b->cap);
        i += seg;
    }
    b->size = b->size + n > b->cap ? b->cap : b->size + n;
    CUDA_CHECK(cudaEventRecord(b->push_ev[k], st));
    b->push_pending[k] = true;
    b->pushes++;
}

static int64_t cuda_replay_size(Backend *b) {
    return b->size;
}

__global__ void gather_kernel(const DevScalars *sc, uint64_t seed, int B, int S, int D,
                              const float *r_obs, const float *r_act, const float *r_rew,
                              const float *r_next, const uint8_t *r_done, float *obs, float *act,
                              float *rew, float *next_obs, float *done) {
    int bi = blockIdx.x;
    if (bi >= B) {
        return;
    }
    int64_t i = replay_sample_index(seed, (uint32_t)sc->n, (uint32_t)bi, sc->replay_size);
    for (int c = threadIdx.x; c < S; c += blockDim.x) {
        obs[(size_t)bi * S + c] = r_obs[(size_t)i * S + c];
        next_obs[(size_t)bi * S + c] = r_next[(size_t)i * S + c];
    }
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        act[(size_t)bi * D + c] = r_act[(size_t)i * D + c];
    }
    if (threadIdx.x == 0) {
        rew[bi] = r_rew[i];
        done[bi] = r_done[i] ? 1.0f : 0.0f;
    }
}

static int graph_key(const UpdateCtx *u) {
    return (u->do_actor ? 1 : 0) | (u->do_alpha ? 2 : 0) | (u->do_target ? 4 : 0);
}

static void cuda_replay_sample(Backend *b, const UpdateCtx *u) {
    FLAME_CHECK(!b->capturing && !b->replaying, "replay_sample called twice in one update");
    FLAME_CHECK(b->size > 0, "sampling from an empty replay buffer");
    b->start = b->base.counters;
    set_scalars_kernel<<<1, 1, 0, b->ctx.stream>>>(
        b->sc, u->n, b->size, b->start.critic_steps, b->start.actor_steps, b->start.alpha_steps,
        u->actor_lr);
    CUDA_CHECK_LAUNCH();
    b->key = graph_key(u);
    if (b->use_graphs) {
        if (b->exec[b->key]) {
            b->replaying = true;
            return;
        }
        /* the first update of a flag combination runs eagerly (module loading, cuBLAS set-up
           happen outside any capture); the second is captured and replayed from then on */
        if (b->seen[b->key]++ > 0) {
            CUDA_CHECK(cudaStreamBeginCapture(b->ctx.stream, cudaStreamCaptureModeThreadLocal));
            b->capturing = true;
            flame_cuda_set_capturing(1);
        }
    }
    gather_kernel<<<b->B, 128, 0, b->ctx.stream>>>(b->sc, b->seed, b->B, b->S, b->D, b->r_obs,
                                                   b->r_act, b->r_rew, b->r_next, b->r_done,
                                                   b->obs, b->act, b->rew, b->next_obs, b->done);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------ stage ops */
static void cuda_critic_target(Backend *b, const UpdateCtx *u) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_critic_target(b);
}

static void cuda_critic_step(Backend *b, const UpdateCtx *u, CriticPhase phase) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_critic_step(b, phase, (int)(b->base.counters.critic_steps - b->start.critic_steps));
}

static void cuda_qweight(Backend *b, const UpdateCtx *u) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_qweight(b);
}

static void cuda_policy_step(Backend *b, const UpdateCtx *u) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_policy_step(b, (int)(b->base.counters.actor_steps - b->start.actor_steps));
}

static void cuda_alpha_step(Backend *b, const UpdateCtx *u) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_alpha_step(b, (int)(b->base.counters.alpha_steps - b->start.alpha_steps));
}

static void cuda_polyak(Backend *b, const UpdateCtx *u) {
    (void)u;
    if (b->replaying) {
        return;
    }
    cuda_stage_polyak(b);
}

/* ------------------------------------------------------------------ interval statistics */
/* one update's diagnostics into every tracked interval, in update order (train_stats_add, the
   host's code); alpha as cuda_get_metrics forms it */
__global__ void stats_add_kernel(TrainStats *s, int n, const UpdateMetrics *met,
                                 const float *alpha3, int actor) {
    UpdateMetrics m = *met;
    m.alpha = (double)expf(alpha3[0]);
    for (int k = 0; k < n; k++) {
        train_stats_add(&s[k], &m, actor != 0);
    }
}

static void cuda_stats_track(Backend *b, int n) {
    FLAME_CHECK(n >= 0 && n <= BACKEND_STATS_SLOTS, "stats_track of %d intervals", n);
    FLAME_CHECK(!b->capturing && !b->replaying, "stats_track called inside an update");
    if (n > 0 && !b->stats) {
        b->stats = (TrainStats *)dalloc(b, BACKEND_STATS_SLOTS * sizeof(TrainStats));
    }
    if (b->stats) {
        TrainStats empty[BACKEND_STATS_SLOTS];
        for (int k = 0; k < BACKEND_STATS_SLOTS; k++) {
            train_stats_reset(&empty[k]);
        }
        h2d(b, b->stats, empty, sizeof empty);
    }
    b->stats_n = n;
}

static void cuda_stats_take(Backend *b, int k, TrainStats *out) {
    FLAME_CHECK(k >= 0 && k < b->stats_n, "stats_take of interval %d, %d tracked", k, b->stats_n);
    FLAME_CHECK(!b->capturing && !b->replaying, "stats_take called inside an update");
    d2h(b, out, b->stats + k, sizeof *out); /* after the queued updates (stream order) */
    TrainStats empty;
    train_stats_reset(&empty);
    h2d(b, b->stats + k, &empty, sizeof empty);
}

/* the update's graph (captured now or replayed) or its eager kernels are queued; then its
   diagnostics go to the tracked intervals, outside the graph */
static void cuda_end_update(Backend *b, const UpdateCtx *u) {
    if (b->capturing) {
        cudaGraph_t g = NULL;
        CUDA_CHECK(cudaStreamEndCapture(b->ctx.stream, &g));
        b->capturing = false;
        flame_cuda_set_capturing(0);
        CUDA_CHECK(cudaGraphInstantiate(&b->exec[b->key], g, 0));
        size_t nodes = 0;
        CUDA_CHECK(cudaGraphGetNodes(g, NULL, &nodes));
        b->graph_nodes[b->key] = (int)nodes;
        CUDA_CHECK(cudaGraphDestroy(g));
        b->n_graphs++;
        CUDA_CHECK(cudaGraphLaunch(b->exec[b->key], b->ctx.stream));
    } else if (b->replaying) {
        CUDA_CHECK(cudaGraphLaunch(b->exec[b->key], b->ctx.stream));
        b->replaying = false;
    }
    if (b->stats_n > 0) {
        stats_add_kernel<<<1, 1, 0, b->ctx.stream>>>(b->stats, b->stats_n, b->met, b->alpha3,
                                                     u && u->do_actor);
        CUDA_CHECK_LAUNCH();
    }
}

static void cuda_sync(Backend *b) {
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
}

/* ------------------------------------------------------------------ state transfer */
static void cuda_get_state(Backend *b, AgentState *dst) {
    FLAME_CHECK(dst->L.pol_table.total == b->np && dst->L.q_table.total == b->nq,
                "get_state into a state of another layout");
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    d2h(b, dst->pol.base, b->pol, 4 * b->np * sizeof(float));
    d2h(b, dst->q1.base, b->q1, 4 * b->nq * sizeof(float));
    d2h(b, dst->q2.base, b->q2, 4 * b->nq * sizeof(float));
    d2h(b, dst->pol_ema, b->pol_ema, b->np * sizeof(float));
    d2h(b, dst->q1_targ, b->q1_targ, b->nq * sizeof(float));
    d2h(b, dst->q2_targ, b->q2_targ, b->nq * sizeof(float));
    float a3[3];
    d2h(b, a3, b->alpha3, sizeof a3);
    dst->log_alpha = a3[0];
    dst->alpha_m = a3[1];
    dst->alpha_v = a3[2];
    backend_counters_to_state(&b->base, dst);
}

static void cuda_set_state(Backend *b, const AgentState *src) {
    FLAME_CHECK(!b->capturing && !b->replaying, "set_state called inside an update");
    FLAME_CHECK(src->L.pol_table.total == b->np && src->L.q_table.total == b->nq,
                "set_state from a state of another layout");
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    h2d(b, b->pol, src->pol.base, 4 * b->np * sizeof(float));
    h2d(b, b->q1, src->q1.base, 4 * b->nq * sizeof(float));
    h2d(b, b->q2, src->q2.base, 4 * b->nq * sizeof(float));
    h2d(b, b->pol_ema, src->pol_ema, b->np * sizeof(float));
    h2d(b, b->q1_targ, src->q1_targ, b->nq * sizeof(float));
    h2d(b, b->q2_targ, src->q2_targ, b->nq * sizeof(float));
    float a3[3] = {src->log_alpha, src->alpha_m, src->alpha_v};
    h2d(b, b->alpha3, a3, sizeof a3);
    backend_counters_from_state(&b->base, src);
}

static void cuda_get_replay(Backend *b, Replay *dst) {
    FLAME_CHECK(dst->capacity == b->cap && dst->obs_dim == b->S && dst->act_dim == b->D,
                "replay shapes differ");
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    size_t c = (size_t)b->cap, S = (size_t)b->S, D = (size_t)b->D;
    d2h(b, dst->obs, b->r_obs, c * S * sizeof(float));
    d2h(b, dst->next_obs, b->r_next, c * S * sizeof(float));
    d2h(b, dst->act, b->r_act, c * D * sizeof(float));
    d2h(b, dst->rew, b->r_rew, c * sizeof(float));
    d2h(b, dst->done, b->r_done, c);
    dst->size = b->size;
    dst->head = b->head;
}

static void cuda_set_replay(Backend *b, const Replay *src) {
    FLAME_CHECK(!b->capturing && !b->replaying, "set_replay called inside an update");
    FLAME_CHECK(src->capacity == b->cap && src->obs_dim == b->S && src->act_dim == b->D,
                "replay shapes differ");
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    size_t c = (size_t)b->cap, S = (size_t)b->S, D = (size_t)b->D;
    h2d(b, b->r_obs, src->obs, c * S * sizeof(float));
    h2d(b, b->r_next, src->next_obs, c * S * sizeof(float));
    h2d(b, b->r_act, src->act, c * D * sizeof(float));
    h2d(b, b->r_rew, src->rew, c * sizeof(float));
    h2d(b, b->r_done, src->done, c);
    b->size = src->size;
    b->head = src->head;
}

static void cuda_get_metrics(Backend *b, UpdateMetrics *m) {
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    d2h(b, m, b->met, sizeof *m);
    float la = 0;
    d2h(b, &la, b->alpha3, sizeof la);
    m->alpha = expf(la);
}

/* ------------------------------------------------------------------ debug view */
void backend_cuda_debug(Backend *b, CudaDebugView *v) {
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D, K = (size_t)b->K,
           Np = (size_t)b->Np;
    float *p = b->h_dbg;
    struct {
        const float **dst;
        const float *src;
        size_t n;
    } f[] = {
        {&v->obs, b->obs, B * S},     {&v->act, b->act, B * D},
        {&v->rew, b->rew, B},         {&v->next_obs, b->next_obs, B * S},
        {&v->done, b->done, B},       {&v->y, b->y, B},
        {&v->ent, b->ent, B},         {&v->next_a, b->next_a, B * D},
        {&v->a_star, b->a_star, B * D}, {&v->pscore, b->pscore, B * Np},
        {&v->x, b->x, B * D},         {&v->r, b->r, B},
        {&v->t, b->t, B},             {&v->eps_post, b->eps_post, B * K * D},
        {&v->qc, b->qc, B * K},       {&v->w, b->w, B * K},
        {&v->vbar, b->vbar, B * D},   {&v->ess, b->ess, B},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        d2h(b, p, f[i].src, f[i].n * sizeof(float));
        *f[i].dst = p;
        p += f[i].n;
    }
    size_t an = b->act_n > 0 ? (size_t)b->act_n : 0;
    size_t ni = B + an;
    flame_free(b->h_dbg_i);
    b->h_dbg_i = (int *)flame_calloc(ni + 1, sizeof(int));
    d2h(b, b->h_dbg_i, b->pbest, B * sizeof(int));
    v->pbest = b->h_dbg_i;
    v->act_n = (int)an;
    v->act_score = NULL;
    v->act_best = NULL;
    if (an) {
        d2h(b, b->h_dbg_i + B, b->d_abest, an * sizeof(int));
        v->act_best = b->h_dbg_i + B;
        flame_free(b->h_dbg_as);
        b->h_dbg_as = (float *)flame_calloc(an * Np, sizeof(float));
        d2h(b, b->h_dbg_as, b->d_ascore, an * Np * sizeof(float));
        v->act_score = b->h_dbg_as;
    }
    v->B = b->B, v->S = b->S, v->D = b->D, v->K = b->K, v->Np = b->Np;
}

void backend_cuda_debug_set(Backend *b, CudaDebugField f, const float *host) {
    FLAME_CHECK(!b->capturing && !b->replaying, "debug_set inside a captured update");
    size_t B = (size_t)b->B, D = (size_t)b->D, K = (size_t)b->K;
    float *dst = NULL;
    size_t n = 0;
    switch (f) {
        case CUDA_DBG_Y: dst = b->y, n = B; break;
        case CUDA_DBG_ENT: dst = b->ent, n = B; break;
        case CUDA_DBG_NEXT_A: dst = b->next_a, n = B * D; break;
        case CUDA_DBG_X: dst = b->x, n = B * D; break;
        case CUDA_DBG_R: dst = b->r, n = B; break;
        case CUDA_DBG_T: dst = b->t, n = B; break;
        case CUDA_DBG_EPS_POST: dst = b->eps_post, n = B * K * D; break;
        case CUDA_DBG_W: dst = b->w, n = B * K; break;
        case CUDA_DBG_VBAR: dst = b->vbar, n = B * D; break;
    }
    FLAME_CHECK(dst != NULL, "unknown debug field %d", (int)f);
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    h2d(b, dst, host, n * sizeof(float));
}

int backend_cuda_graph_count(Backend *b) {
    return b->n_graphs;
}

int backend_cuda_graph_nodes(Backend *b, bool actor) {
    /* the captured graph of an update of this kind, any alpha/target flags */
    for (int key = 0; key < FLAME_GRAPH_KEYS; key++) {
        if (b->exec[key] && ((key & 1) != 0) == actor) {
            return b->graph_nodes[key];
        }
    }
    return -1;
}

extern "C" const BackendOps backend_cuda_ops = {
    "cuda",
    cuda_create,
    cuda_destroy,
    cuda_act,
    cuda_replay_push,
    cuda_replay_size,
    cuda_replay_sample,
    cuda_critic_target,
    cuda_critic_step,
    cuda_qweight,
    cuda_policy_step,
    cuda_alpha_step,
    cuda_polyak,
    cuda_get_state,
    cuda_set_state,
    cuda_get_replay,
    cuda_set_replay,
    cuda_get_metrics,
    cuda_end_update,
    cuda_sync,
    cuda_publish,
    cuda_stats_track,
    cuda_stats_take,
};
