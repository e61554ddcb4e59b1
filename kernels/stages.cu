/*
 * stages.cu: the stage operations of the CUDA backend, each the twin of the function of the same
 * name in src/algo/backend_cpu.c: the same draws (Philox addressed identically, computed in the
 * kernels), the same float arithmetic in the element-wise parts (order of operations kept), the
 * same chunking of large row counts into whole states. Reductions that the CPU does in double run
 * here in double as well, in a fixed (block) order; GEMM sums differ in order only.
 *
 * Per-update values come from DevScalars (sc): the update index n addresses the draws, the Adam
 * step counts and the actor learning rate are read on the device, so the update can be replayed
 * from a graph.
 */
#include "backend_impl.cuh"
#include "flame/flow_math.h"

#define SAC_LOG_STD_MIN (-20.0f)

static inline const FlameConfig *CFG(const Backend *b) {
    return b->base.cfg;
}

__device__ __forceinline__ float clipf_d(float x, float lo, float hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

__device__ __forceinline__ uint32_t step_of(const DevScalars *sc, uint32_t host) {
    return sc ? (uint32_t)sc->n : host;
}

__device__ __forceinline__ float log1m_tanh2_d(float p) {
    float m2p = -2.0f * p;
    float sp = m2p > 20.0f ? m2p : log1pf(expf(m2p));
    return 2.0f * (0.69314718f - p - sp);
}

/* SAC: log N(pre; mu, sigma) of one coordinate, pre = mu + sigma e, minus the tanh log-det unless
   quirks.sac_log_det = no (backend_cpu.c sac_log_prob) */
__device__ __forceinline__ double sac_log_prob_d(float e, float ls, float pre, int logdet) {
    double lp = -0.5 * e * e - 0.91893853320467274 - ls;
    return logdet ? lp - log1m_tanh2_d(pre) : lp;
}

static int grid1(long long n, int threads) {
    long long g = (n + threads - 1) / threads;
    if (g > 65535LL * 4) {
        g = 65535LL * 4;
    }
    return (int)(g < 1 ? 1 : g);
}

#define GRID_LOOP(idx, n)                                                                          \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (n);              \
         idx += (long long)gridDim.x * blockDim.x)

/* blocks of a reduction kernel over n elements: 1 (backend.reductions=block) or a grid */
static int red_grid(const Backend *b, long long n) {
    return grid_red_blocks(n, b->grid_red);
}

/* ------------------------------------------------------------------ Adam, Polyak */
/* One array of an Adam or Polyak launch (blockIdx.y selects it). */
typedef struct {
    float *p;
    const float *g; /* Polyak: the source */
    float *m, *v;
    long long n;
} ParamSet;

typedef struct {
    ParamSet s[3];
} ParamSets;

/* the set of this block row (constant indices: no local copy of the parameter struct) */
__device__ __forceinline__ ParamSet param_set(const ParamSets &sets) {
    return blockIdx.y == 0 ? sets.s[0] : (blockIdx.y == 1 ? sets.s[1] : sets.s[2]);
}

__global__ void adam_kernel(ParamSets sets, double lr, const double *lr_dev, double b1, double b2,
                            double eps, const int64_t *t_base, int t_off) {
    const ParamSet ps = param_set(sets);
    float *p = ps.p, *m = ps.m, *v = ps.v;
    const float *g = ps.g;
    const long long n = ps.n;
    int64_t t = *t_base + t_off + 1;
    float fb1 = (float)b1, fb2 = (float)b2, flr = (float)(lr_dev ? *lr_dev : lr),
          feps = (float)eps;
    float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    float bc1 = 1.0f - (float)pow((double)fb1, (double)t);
    float bc2 = 1.0f - (float)pow((double)fb2, (double)t);
    GRID_LOOP(i, n) {
        /* the CPU's float operations (params.c adam_step), without contraction into FMA */
        float gi = g[i];
        float mi = __fadd_rn(__fmul_rn(fb1, m[i]), __fmul_rn(omb1, gi));
        float vi = __fadd_rn(__fmul_rn(fb2, v[i]), __fmul_rn(omb2, __fmul_rn(gi, gi)));
        m[i] = mi;
        v[i] = vi;
        float mhat = __fdiv_rn(mi, bc1);
        float vhat = __fdiv_rn(vi, bc2);
        p[i] = __fsub_rn(p[i], __fmul_rn(flr, __fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), feps))));
    }
}

/* Adam on the arrays of `sets` (count of them) in one launch */
static void adam_sets(Backend *b, const ParamSets *sets, int count, double lr,
                      const double *lr_dev, const int64_t *t_base, int t_offset) {
    const FlameConfig *cfg = CFG(b);
    long long n = 0;
    for (int k = 0; k < count; k++) {
        n = sets->s[k].n > n ? sets->s[k].n : n;
    }
    dim3 grid(grid1(n, 256), count);
    adam_kernel<<<grid, 256, 0, b->ctx.stream>>>(*sets, lr, lr_dev, cfg->optim.beta1,
                                                 cfg->optim.beta2, cfg->optim.eps, t_base,
                                                 t_offset);
    CUDA_CHECK_LAUNCH();
}

void cuda_adam(Backend *b, float *p, const float *g, float *m, float *v, size_t n, double lr,
               const double *lr_dev, const int64_t *t_base, int t_offset) {
    ParamSets sets;
    memset(&sets, 0, sizeof sets);
    sets.s[0] = ParamSet{p, g, m, v, (long long)n};
    adam_sets(b, &sets, 1, lr, lr_dev, t_base, t_offset);
}

__global__ void polyak_kernel(ParamSets sets, float a, float bb) {
    const ParamSet ps = param_set(sets);
    float *target = ps.p;
    const float *src = ps.g;
    GRID_LOOP(i, ps.n) {
        target[i] = __fadd_rn(__fmul_rn(a, src[i]), __fmul_rn(bb, target[i]));
    }
}

void cuda_stage_polyak(Backend *b) {
    double tau = CFG(b)->update.tau;
    float a = (float)tau, bb = (float)(1.0 - tau);
    ParamSets all;
    memset(&all, 0, sizeof all);
    all.s[0] = ParamSet{b->q1_targ, b->q1, NULL, NULL, (long long)b->nq};
    all.s[1] = ParamSet{b->q2_targ, b->q2, NULL, NULL, (long long)b->nq};
    all.s[2] = ParamSet{b->pol_ema, b->pol, NULL, NULL, (long long)b->np};
    long long n = (long long)(b->np > b->nq ? b->np : b->nq);
    if (b->merge) { /* the three arrays in one launch */
        polyak_kernel<<<dim3(grid1(n, 256), 3), 256, 0, b->ctx.stream>>>(all, a, bb);
        CUDA_CHECK_LAUNCH();
        return;
    }
    for (int k = 0; k < 3; k++) {
        ParamSets one;
        memset(&one, 0, sizeof one);
        one.s[0] = all.s[k];
        polyak_kernel<<<grid1(all.s[k].n, 256), 256, 0, b->ctx.stream>>>(one, a, bb);
        CUDA_CHECK_LAUNCH();
    }
}

/* ------------------------------------------------------------------ sampling */
/* z (ns*Np rows x D) = sd * N(stream, step, row s0 + i, col p*D + d) */
__global__ void particles_z_kernel(float *z, int ns, int Np, int D, float sd, uint64_t seed,
                                   uint32_t stream, const DevScalars *sc, uint32_t step_host,
                                   int s0) {
    uint32_t step = step_of(sc, step_host);
    long long w = (long long)Np * D, n = (long long)ns * w;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / w), j = (int)(idx % w);
        z[idx] = sd * rng_normal(seed, stream, step, (uint32_t)(s0 + i), (uint32_t)j);
    }
}

/* FLAME-M: a -= c u; FLAME-R: a += u / N */
__global__ void flow_step_kernel(float *a, const float *u, long long n, int rectified, float c,
                                 float fN) {
    GRID_LOOP(i, n) {
        if (rectified) {
            a[i] += u[i] / fN;
        } else {
            a[i] -= c * u[i];
        }
    }
}

/* policy samples from base draws z (rows x D, already scaled) into a, unclipped: best-of-N scores
   the unclipped samples and clips the chosen one */
static void policy_sample(Backend *b, const float *P, DSeg s, const float *z, int rows, float *a) {
    const FlameConfig *cfg = CFG(b);
    int D = b->D, N = cfg->flow.sample_steps;
    long long n = (long long)rows * D;
    CUDA_CHECK(cudaMemcpyAsync(a, z, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice,
                               b->ctx.stream));
    DSeg xa = dseg(a, D, D, 1);
    if (cfg->algo == ALGO_FLAME_M) {
        float c = cfg->quirks.multistep_scale == QUIRK_CONSISTENT ? 1.0f / (float)N : 1.0f;
        for (int k = 0; k < N; k++) {
            float tau = (float)(1.0 - (double)k / N), rk = (float)(1.0 - (double)(k + 1) / N);
            const float *u = dflow_forward(&b->ctx, &b->L, P, s, xa, dtime_const(rk),
                                           dtime_const(tau), rows, &b->fw, false);
            flow_step_kernel<<<grid1(n, 256), 256, 0, b->ctx.stream>>>(a, u, n, 0, c, 1.0f);
            CUDA_CHECK_LAUNCH();
        }
    } else {
        for (int k = 0; k < N; k++) {
            float tk = (float)((double)k / N);
            const float *v = dflow_forward(&b->ctx, &b->L, P, s, xa, dtime_const(0.0f),
                                           dtime_const(tk), rows, &b->fw, false);
            flow_step_kernel<<<grid1(n, 256), 256, 0, b->ctx.stream>>>(a, v, n, 1, 1.0f,
                                                                        (float)N);
            CUDA_CHECK_LAUNCH();
        }
    }
}

/* per state: best particle by min(Q1, Q2) of the unclipped samples (first maximum), clipped to out */
__global__ void argmax_kernel(const float *q1, const float *q2, const float *a, int ns, int Np,
                              int D, float *out, float *score, int *best) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= ns) {
        return;
    }
    int bp = 0;
    float bq = 0.0f;
    for (int p = 0; p < Np; p++) {
        int row = i * Np + p;
        float q = q1[row] < q2[row] ? q1[row] : q2[row];
        if (score) {
            score[row] = q;
        }
        if (p == 0 || q > bq) {
            bq = q;
            bp = p;
        }
    }
    if (best) {
        best[i] = bp;
    }
    const float *ab = a + ((size_t)i * Np + bp) * D;
    for (int d = 0; d < D; d++) {
        out[(size_t)i * D + d] = clipf_d(ab[d], -1.0f, 1.0f);
    }
}

/* Best-of-Np for n states s (device, n x S) with policy P and online critics; draws at
   (stream, step, state row, p*D + d). */
static void best_of_n(Backend *b, const float *P, const float *s, int n, uint32_t stream,
                      const DevScalars *sc, uint32_t step_host, float *out, float *score,
                      int *best) {
    const FlameConfig *cfg = CFG(b);
    int S = b->S, D = b->D, Np = b->Np;
    int per = b->fcap / Np;
    float sd = (float)cfg->flow.base_std;
    const float *P1 = blob_params(b->q1, b->nq), *P2 = blob_params(b->q2, b->nq);
    for (int s0 = 0; s0 < n; s0 += per) {
        int ns = n - s0 < per ? n - s0 : per, rows = ns * Np;
        particles_z_kernel<<<grid1((long long)rows * D, 256), 256, 0, b->ctx.stream>>>(
            b->z_rep, ns, Np, D, sd, b->seed, stream, sc, step_host, s0);
        CUDA_CHECK_LAUNCH();
        DSeg ss = dseg(s + (size_t)s0 * S, S, S, Np);
        policy_sample(b, P, ss, b->z_rep, rows, b->a_rep);
        cuda_score_twin(b, P1, P2, ss, b->a_rep, rows);
        argmax_kernel<<<cdiv(ns, 128), 128, 0, b->ctx.stream>>>(
            dq_out(&b->L, &b->q1w), dq_out(&b->L, &b->q2w), b->a_rep, ns, Np, D,
            out + (size_t)s0 * D, score ? score + (size_t)s0 * Np : NULL,
            best ? best + s0 : NULL);
        CUDA_CHECK_LAUNCH();
    }
}

/* ------------------------------------------------------------------ act */
__global__ void sac_act_kernel(const float *o, int rows, int s0, int D, int explore, uint64_t seed,
                               uint32_t call, float ls_max, float *out) {
    long long n = (long long)rows * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        float mu = o[(size_t)i * 2 * D + d];
        float pre = mu;
        if (explore) {
            float ls = clipf_d(o[(size_t)i * 2 * D + D + d], SAC_LOG_STD_MIN, ls_max);
            pre += expf(ls) * rng_normal(seed, RNG_STREAM_ACT_NOISE, call, (uint32_t)(s0 + i),
                                         (uint32_t)d);
        }
        out[(size_t)(s0 + i) * D + d] = tanhf(pre);
    }
}

__global__ void act_noise_kernel(float *a, int n, int D, const float *alpha3, float noise_scale,
                                 uint64_t seed, uint32_t call) {
    float scale = expf(alpha3[0]) * noise_scale;
    long long tot = (long long)n * D;
    GRID_LOOP(idx, tot) {
        int i = (int)(idx / D), d = (int)(idx % D);
        a[idx] += scale * rng_normal(seed, RNG_STREAM_ACT_NOISE, call, (uint32_t)i, (uint32_t)d);
    }
}

void cuda_stage_act(Backend *b, const float *d_obs, int n, ActMode mode, uint32_t call,
                    float *d_out) {
    const FlameConfig *cfg = CFG(b);
    int D = b->D, S = b->S;
    const float *Ppol = blob_params(b->pol, b->np);
    if (cfg->algo == ALGO_SAC) {
        for (int s0 = 0; s0 < n; s0 += b->fcap) {
            int rows = n - s0 < b->fcap ? n - s0 : b->fcap;
            const float *o = dgauss_forward(&b->ctx, &b->L, Ppol,
                                            dseg(d_obs + (size_t)s0 * S, S, S, 1), rows, &b->fw,
                                            false);
            sac_act_kernel<<<grid1((long long)rows * D, 256), 256, 0, b->ctx.stream>>>(
                o, rows, s0, D, mode == ACT_EXPLORE, b->seed, call,
                (float)cfg->quirks.sac_log_std_max, d_out);
            CUDA_CHECK_LAUNCH();
        }
        return;
    }
    uint32_t stream = mode == ACT_EXPLORE ? RNG_STREAM_ACT_Z : RNG_STREAM_EVAL_Z;
    best_of_n(b, b->pol_ema, d_obs, n, stream, NULL, call, d_out, b->d_ascore, b->d_abest);
    if (mode == ACT_EXPLORE) {
        act_noise_kernel<<<grid1((long long)n * D, 256), 256, 0, b->ctx.stream>>>(
            d_out, n, D, b->alpha3, (float)cfg->flow.noise_scale, b->seed, call);
        CUDA_CHECK_LAUNCH();
    }
}

/* ------------------------------------------------------------------ critic target */
__global__ void next_action_kernel(const float *a_star, int B, int D, const float *alpha3,
                                   float noise_scale, uint64_t seed, const DevScalars *sc,
                                   float *next_a) {
    float alpha = expf(alpha3[0]);
    float scale = alpha * noise_scale;
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        next_a[idx] =
            a_star[idx] + scale * rng_normal(seed, RNG_STREAM_NEXT_NOISE, step, (uint32_t)i,
                                             (uint32_t)d);
    }
}

/* SAC: a' = tanh(mu + sigma eps), H = -log pi(a'|s') per row */
__global__ void sac_next_kernel(const float *o, int B, int D, uint64_t seed, const DevScalars *sc,
                                float ls_max, int logdet, float *next_a, float *ent) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B) {
        return;
    }
    uint32_t step = (uint32_t)sc->n;
    double lp = 0;
    for (int d = 0; d < D; d++) {
        float mu = o[(size_t)i * 2 * D + d];
        float ls = clipf_d(o[(size_t)i * 2 * D + D + d], SAC_LOG_STD_MIN, ls_max);
        float e = rng_normal(seed, RNG_STREAM_NEXT_Z, step, (uint32_t)i, (uint32_t)d);
        float pre = mu + expf(ls) * e;
        next_a[(size_t)i * D + d] = tanhf(pre);
        lp += sac_log_prob_d(e, ls, pre, logdet);
    }
    ent[i] = (float)-lp;
}

/* y = s r + gamma (1 - d)(min Q'(s', a') + c alpha H); metrics (grid reduction) */
__global__ void td_target_kernel(const float *q1, const float *q2, const float *rew,
                                 const float *done, const float *ent, const float *alpha3, int B,
                                 float c, float rs, float g, float *y, UpdateMetrics *met,
                                 GridRed red) {
    float alpha = expf(alpha3[0]);
    double v[2] = {0, 0}, r[2];
    GRID_LOOP(i, B) {
        float q = q1[i] < q2[i] ? q1[i] : q2[i];
        float yi = rs * rew[i] + g * (1.0f - done[i]) * (q + c * alpha * ent[i]);
        y[i] = yi;
        v[0] += yi;
        v[1] += ent[i];
    }
    const int kinds[2] = {RED_SUM, RED_SUM};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        met->target_mean = r[0] / B;
        met->entropy = r[1] / B;
        met->alpha = alpha;
    }
}

void cuda_stage_critic_target(Backend *b) {
    const FlameConfig *cfg = CFG(b);
    int B = b->B, D = b->D, S = b->S;
    const float *Ppol = blob_params(b->pol, b->np);
    if (cfg->algo == ALGO_SAC) {
        const float *o = dgauss_forward(&b->ctx, &b->L, Ppol, dseg(b->next_obs, S, S, 1), B,
                                        &b->fw, false);
        sac_next_kernel<<<cdiv(B, 128), 128, 0, b->ctx.stream>>>(
            o, B, D, b->seed, b->sc, (float)cfg->quirks.sac_log_std_max,
            cfg->quirks.sac_log_det == TRI_YES, b->next_a, b->ent);
        CUDA_CHECK_LAUNCH();
    } else {
        const float *P = cfg->quirks.next_action_policy == NEXTPOL_EMA ? b->pol_ema : Ppol;
        best_of_n(b, P, b->next_obs, B, RNG_STREAM_NEXT_Z, b->sc, 0, b->a_star, b->pscore,
                  b->pbest);
        next_action_kernel<<<grid1((long long)B * D, 256), 256, 0, b->ctx.stream>>>(
            b->a_star, B, D, b->alpha3, (float)cfg->flow.noise_scale, b->seed, b->sc, b->next_a);
        CUDA_CHECK_LAUNCH();
        cuda_entropy_estimate(b, Ppol, b->next_obs, b->a_star, b->ent);
    }
    float c = 0.0f;
    if (cfg->algo == ALGO_SAC || cfg->quirks.td_entropy == TDENT_PLUS) {
        c = 1.0f;
    } else if (cfg->quirks.td_entropy == TDENT_MINUS) {
        c = -1.0f;
    }
    dcritic_forward2(&b->ctx, &b->L, b->q1_targ, b->q2_targ, dseg(b->next_obs, S, S, 1),
                     dseg(b->next_a, D, D, 1), B, &b->q1w, &b->q2w, false);
    td_target_kernel<<<red_grid(b, B), 256, 0, b->ctx.stream>>>(
        dq_out(&b->L, &b->q1w), dq_out(&b->L, &b->q2w), b->rew, b->done, b->ent, b->alpha3, B, c,
        (float)cfg->update.reward_scale, (float)cfg->update.gamma, b->y, b->met, b->red);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------ critic step */
/* loss of critic k0 + blockIdx.y (values qv[y], gradient dq[y]); metrics (grid reduction) */
__global__ void critic_loss_kernel(const float *qv0, const float *qv1, const float *y, int B,
                                   float *dq0, float *dq1, UpdateMetrics *met, int k0,
                                   GridRed red) {
    const int k = k0 + (int)blockIdx.y;
    const float *qv = blockIdx.y ? qv1 : qv0;
    float *dq = blockIdx.y ? dq1 : dq0;
    double v[4] = {0, 0, INFINITY, -INFINITY}, r[4];
    GRID_LOOP(i, B) {
        float e = qv[i] - y[i];
        v[0] += (double)e * e;
        dq[i] = 2.0f * e / (float)B;
        v[1] += qv[i];
        v[2] = fmin(v[2], (double)qv[i]);
        v[3] = fmax(v[3], (double)qv[i]);
    }
    const int kinds[4] = {RED_SUM, RED_SUM, RED_MIN, RED_MAX};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        met->critic_loss[k] = r[0] / B;
        if (k == 0) {
            met->q_mean = r[1] / B;
            met->q_min = r[2];
            met->q_max = r[3];
        }
    }
}

/* both critics' loss and gradient with one launch per kind of work (backend.merge_launches):
   the twin forward (caches saved), the two losses, the twin backward */
static void critic_grads_merged(Backend *b) {
    int B = b->B, S = b->S, D = b->D;
    const float *P1 = blob_params(b->q1, b->nq), *P2 = blob_params(b->q2, b->nq);
    float *G1 = blob_grads(b->q1, b->nq), *G2 = blob_grads(b->q2, b->nq);
    cudaStream_t st = b->ctx.stream;
    dcritic_forward2(&b->ctx, &b->L, P1, P2, dseg(b->obs, S, S, 1), dseg(b->act, D, D, 1), B,
                     &b->q1w, &b->q2w, true);
    critic_loss_kernel<<<dim3(red_grid(b, B), 2), 256, 0, st>>>(
        dq_out(&b->L, &b->q1w), dq_out(&b->L, &b->q2w), b->y, B, b->dq1, b->dq2, b->met, 0,
        b->red);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemsetAsync(G1, 0, b->nq * sizeof(float), st));
    CUDA_CHECK(cudaMemsetAsync(G2, 0, b->nq * sizeof(float), st));
    dcritic_backward2(&b->ctx, &b->L, P1, P2, G1, G2, &b->q1w, &b->q2w, b->dq1, b->dq2, B, NULL,
                      NULL);
}

void cuda_stage_critic_step(Backend *b, CriticPhase phase, int t_offset) {
    const FlameConfig *cfg = CFG(b);
    int B = b->B, S = b->S, D = b->D;
    float *blob[2] = {b->q1, b->q2};
    DQWork *work[2] = {&b->q1w, &b->q2w};
    if (phase == CRITIC_GRAD_AND_STEP && b->merge) {
        critic_grads_merged(b);
    } else if (phase == CRITIC_GRAD_AND_STEP) {
        for (int k = 0; k < 2; k++) {
            const float *P = blob_params(blob[k], b->nq);
            const float *qv = dcritic_forward(&b->ctx, &b->L, P, dseg(b->obs, S, S, 1),
                                              dseg(b->act, D, D, 1), B, work[k], true);
            critic_loss_kernel<<<red_grid(b, B), 256, 0, b->ctx.stream>>>(
                qv, NULL, b->y, B, b->dq1, NULL, b->met, k, b->red);
            CUDA_CHECK_LAUNCH();
            float *G = blob_grads(blob[k], b->nq);
            CUDA_CHECK(cudaMemsetAsync(G, 0, b->nq * sizeof(float), b->ctx.stream));
            dcritic_backward(&b->ctx, &b->L, P, G, work[k], b->dq1, B, NULL);
        }
    }
    if (b->merge) { /* both critics' Adam steps in one launch */
        ParamSets sets;
        memset(&sets, 0, sizeof sets);
        for (int k = 0; k < 2; k++) {
            sets.s[k] = ParamSet{blob_params(blob[k], b->nq), blob_grads(blob[k], b->nq),
                                 blob_m(blob[k], b->nq), blob_v(blob[k], b->nq), (long long)b->nq};
        }
        adam_sets(b, &sets, 2, cfg->optim.critic_lr, NULL, &b->sc->critic_steps0, t_offset);
        return;
    }
    for (int k = 0; k < 2; k++) {
        cuda_adam(b, blob_params(blob[k], b->nq), blob_grads(blob[k], b->nq), blob_m(blob[k], b->nq),
                  blob_v(blob[k], b->nq), b->nq, cfg->optim.critic_lr, NULL,
                  &b->sc->critic_steps0, t_offset);
    }
}

/* ------------------------------------------------------------------ Q-reweighting */
__global__ void times_x_kernel(const float *act, int B, int D, uint64_t seed, const DevScalars *sc,
                               int flame_r, int consistent, int clip_x, float sd0, float tmin,
                               float tspan, float req_frac, float *x, float *r, float *t) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B) {
        return;
    }
    uint32_t step = (uint32_t)sc->n;
    float tu0 = rng_uniform(seed, RNG_STREAM_TIMES, step, (uint32_t)i, 0);
    float tu1 = rng_uniform(seed, RNG_STREAM_TIMES, step, (uint32_t)i, 1);
    float u0 = tmin + tspan * tu0, u1 = tmin + tspan * tu1;
    float ti, ri;
    if (flame_r) {
        ti = u0;
        ri = 0.0f;
    } else {
        ti = u0 > u1 ? u0 : u1;
        ri = u0 > u1 ? u1 : u0;
        if (rng_uniform(seed, RNG_STREAM_REQ_T, step, (uint32_t)i, 0) < req_frac) {
            ri = ti;
        }
    }
    t[i] = ti;
    r[i] = ri;
    for (int d = 0; d < D; d++) {
        float a = act[(size_t)i * D + d];
        float e0 = rng_normal(seed, RNG_STREAM_EPS0, step, (uint32_t)i, (uint32_t)d);
        float xv = flow_noisy_action(a, e0, ti, sd0, consistent);
        x[(size_t)i * D + d] = clip_x ? clipf_d(xv, -1.0f, 1.0f) : xv;
    }
}

/* eps_bk truncated so that a-hat lies in [-1, 1]^D (B x K x D) */
__global__ void cand_eps_kernel(const float *x, const float *t, int B, int K, int D, uint64_t seed,
                                const DevScalars *sc, int consistent, float sd0, float *eps_post) {
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * K * D;
    GRID_LOOP(idx, n) {
        int d = (int)(idx % D);
        long long ik = idx / D;
        int k = (int)(ik % K), i = (int)(ik / K);
        double lo, hi;
        flow_posterior_bounds(x[(size_t)i * D + d], t[i], sd0, consistent, &lo, &hi);
        eps_post[idx] = (float)rng_trunc_normal(seed, RNG_STREAM_TRUNC, step, (uint32_t)i,
                                                (uint32_t)(k * D + d), lo, hi);
    }
}

/* a-hat of candidate (i, k) coordinate d: flow_candidate, as the CPU's scoring loop and flow-loss
   helpers form it */
__device__ __forceinline__ float cand_score_a(const float *x, const float *t, const float *eps_post,
                                              int K, int D, int i, int k, int d, int consistent,
                                              float sd0) {
    return flow_candidate(x[(size_t)i * D + d], t[i], eps_post[((size_t)i * K + k) * D + d], sd0,
                          consistent);
}

/* a-hat rows of states [s0, s0 + ns) */
__global__ void cand_a_kernel(const float *x, const float *t, const float *eps_post, int s0, int ns,
                              int K, int D, int consistent, float sd0, float *a_rep) {
    long long n = (long long)ns * K * D;
    GRID_LOOP(idx, n) {
        int d = (int)(idx % D);
        long long ik = idx / D;
        int k = (int)(ik % K), i = s0 + (int)(ik / K);
        a_rep[idx] = cand_score_a(x, t, eps_post, K, D, i, k, d, consistent, sd0);
    }
}

__global__ void min2_kernel(const float *q1, const float *q2, long long n, float *out) {
    GRID_LOOP(i, n) {
        out[i] = q1[i] < q2[i] ? q1[i] : q2[i];
    }
}

/* one block per batch row: softmax over k of q / T, ESS, v-bar = sum_k w_k (sd0 eps_k - a-hat_k) */
__global__ void softmax_vbar_kernel(const float *qc, const float *x, const float *t,
                                    const float *eps_post, int K, int D, const float *alpha3,
                                    int temp_exp, float tfloor, int consistent, float sd0, float *w,
                                    float *ess, float *vbar) {
    __shared__ double sh[32];
    int i = blockIdx.x;
    float alpha = expf(alpha3[0]);
    float T = temp_exp ? expf(fmaxf(alpha, 1e-5f)) : fmaxf(alpha, tfloor);
    const float *q = qc + (size_t)i * K;
    float *wi = w + (size_t)i * K;
    double qm = -FLT_MAX;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        qm = fmax(qm, (double)q[k]);
    }
    float qmax = (float)block_max_d(qm, sh);
    double z = 0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float e = expf((q[k] - qmax) / T);
        wi[k] = e;
        z += e;
    }
    z = block_sum_d(z, sh);
    double sw2 = 0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float wk = (float)(wi[k] / z);
        wi[k] = wk;
        sw2 += (double)wk * wk;
    }
    sw2 = block_sum_d(sw2, sh);
    if (threadIdx.x == 0) {
        ess[i] = (float)(1.0 / sw2);
    }
    for (int d = 0; d < D; d++) {
        double v = 0;
        for (int k = threadIdx.x; k < K; k += blockDim.x) {
            float e = sd0 * eps_post[((size_t)i * K + k) * D + d];
            float a = cand_score_a(x, t, eps_post, K, D, i, k, d, consistent, sd0);
            v += (double)wi[k] * (e - a);
        }
        v = block_sum_d(v, sh);
        if (threadIdx.x == 0) {
            vbar[(size_t)i * D + d] = (float)v;
        }
    }
}

__global__ void ess_metrics_kernel(const float *ess, int B, UpdateMetrics *met, GridRed red) {
    double v[2] = {0, INFINITY}, r[2];
    GRID_LOOP(i, B) {
        v[0] += ess[i];
        v[1] = fmin(v[1], (double)ess[i]);
    }
    const int kinds[2] = {RED_SUM, RED_MIN};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        met->ess_mean = r[0] / B;
        met->ess_min = r[1];
    }
}

void cuda_stage_qweight(Backend *b) {
    const FlameConfig *cfg = CFG(b);
    if (cfg->algo == ALGO_SAC) {
        return;
    }
    int B = b->B, D = b->D, K = b->K, S = b->S;
    bool flame_r = cfg->algo == ALGO_FLAME_R;
    bool consistent = !flame_r && cfg->quirks.time_convention == QUIRK_CONSISTENT;
    bool clip_x = cfg->quirks.clip_noisy_action == TRI_YES;
    float sd0 = consistent ? (float)cfg->flow.base_std : 1.0f;
    float tmin = (float)cfg->flow.t_min, tspan = (float)(cfg->flow.t_max - cfg->flow.t_min);
    cudaStream_t st = b->ctx.stream;

    times_x_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->act, B, D, b->seed, b->sc, flame_r, consistent,
                                                clip_x, sd0, tmin, tspan,
                                                (float)cfg->flow.r_eq_t_frac, b->x, b->r, b->t);
    CUDA_CHECK_LAUNCH();
    /* draws and twin-critic scores of the B*K candidates: one tensor-core kernel, or staged in
       chunks of whole states */
    const float *P1 = blob_params(b->q1, b->nq), *P2 = blob_params(b->q2, b->nq);
    bool scored = cuda_qweight_score(b, consistent, sd0);
    if (!scored) {
        cand_eps_kernel<<<grid1((long long)B * K * D, 256), 256, 0, st>>>(
            b->x, b->t, B, K, D, b->seed, b->sc, consistent, sd0, b->eps_post);
        CUDA_CHECK_LAUNCH();
    }
    int per = b->qcap / K;
    for (int s0 = 0; s0 < B && !scored; s0 += per) {
        int ns = B - s0 < per ? B - s0 : per, rows = ns * K;
        cand_a_kernel<<<grid1((long long)rows * D, 256), 256, 0, st>>>(
            b->x, b->t, b->eps_post, s0, ns, K, D, consistent, sd0, b->a_rep);
        CUDA_CHECK_LAUNCH();
        dcritic_forward2(&b->ctx, &b->L, P1, P2, dseg(b->obs + (size_t)s0 * S, S, S, K),
                         dseg(b->a_rep, D, D, 1), rows, &b->q1w, &b->q2w, false);
        min2_kernel<<<grid1(rows, 256), 256, 0, st>>>(dq_out(&b->L, &b->q1w),
                                                     dq_out(&b->L, &b->q2w), rows,
                                                     b->qc + (size_t)s0 * K);
        CUDA_CHECK_LAUNCH();
    }
    int temp_exp = cfg->quirks.softmax_temp == TEMP_EXP_ALPHA;
    softmax_vbar_kernel<<<B, 256, 0, st>>>(b->qc, b->x, b->t, b->eps_post, K, D, b->alpha3,
                                          temp_exp, flame_r ? 1e-3f : 1e-5f, consistent, sd0,
                                          b->w, b->ess, b->vbar);
    CUDA_CHECK_LAUNCH();
    ess_metrics_kernel<<<red_grid(b, B), 256, 0, st>>>(b->ess, B, b->met, b->red);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------ policy step */
/* collapsed MeanFlow loss: y-bar = v-bar - (t - r) du; g = 2 scale (u - y-bar); acc += loss, max */
__global__ void fm_collapsed_kernel(const float *u, const float *du, const float *vbar,
                                    const float *r, const float *t, int B, int D, double gscale,
                                    float *g, double *acc, GridRed red) {
    double v[2] = {0, 0}, res[2];
    long long n = (long long)B * D;
    GRID_LOOP(j, n) {
        int i = (int)(j / D);
        float h = t[i] - r[i];
        float ybar = vbar[j] - h * du[j];
        float e = u[j] - ybar;
        v[0] += (double)e * e;
        g[j] = (float)gscale * e;
        v[1] = fmax(v[1], (double)fabsf(du[j]));
    }
    const int kinds[2] = {RED_SUM, RED_MAX};
    if (grid_reduce(v, kinds, red, res) && threadIdx.x == 0) {
        acc[0] += res[0];
        acc[1] = fmax(acc[1], res[1]);
    }
}

/* noise of candidate (i, k) as the CPU's flow-loss helpers form it */
__device__ __forceinline__ float cand_noise_d(const float *eps_post, int K, int D, int i, int k,
                                              int d, float sd0) {
    return sd0 * eps_post[((size_t)i * K + k) * D + d];
}

/* rows of the B*K form for states [s0, s0+ns): x, r, t repeated, tangent v_k = noise - a-hat */
__global__ void fm_expand_kernel(const float *x, const float *r, const float *t,
                                 const float *eps_post, int s0, int ns, int K, int D,
                                 int consistent, float sd0, float *xr, float *rr, float *tr,
                                 float *tan) {
    long long n = (long long)ns * K * D;
    GRID_LOOP(idx, n) {
        int d = (int)(idx % D);
        long long row = idx / D;
        int k = (int)(row % K), bi = s0 + (int)(row / K);
        xr[idx] = x[(size_t)bi * D + d];
        if (d == 0) {
            rr[row] = r[bi];
            tr[row] = t[bi];
        }
        tan[idx] = cand_noise_d(eps_post, K, D, bi, k, d, sd0) -
                   cand_score_a(x, t, eps_post, K, D, bi, k, d, consistent, sd0);
    }
}

__global__ void fm_bk_kernel(const float *u, const float *du, const float *tan, const float *w,
                             const float *r, const float *t, int s0, int ns, int K, int D,
                             double gscale, float *g, double *acc, GridRed red) {
    double v[2] = {0, 0}, res[2];
    long long n = (long long)ns * K * D;
    GRID_LOOP(j, n) {
        long long row = j / D;
        int k = (int)(row % K), bi = s0 + (int)(row / K);
        float h = t[bi] - r[bi];
        float wk = w[(size_t)bi * K + k];
        float yk = tan[j] - h * du[j];
        float e = u[j] - yk;
        v[0] += (double)wk * e * e;
        g[j] = (float)gscale * wk * e;
        v[1] = fmax(v[1], (double)fabsf(du[j]));
    }
    const int kinds[2] = {RED_SUM, RED_MAX};
    if (grid_reduce(v, kinds, red, res) && threadIdx.x == 0) {
        acc[0] += res[0];
        acc[1] = fmax(acc[1], res[1]);
    }
}

__global__ void fm_finish_kernel(const double *acc, float weight, double scale, int with_jmax,
                                 UpdateMetrics *met) {
    met->fm_loss = weight * acc[0] * scale;
    if (with_jmax) {
        met->jvp_max = acc[1];
    }
}

static void fm_loss_meanflow(Backend *b, float *G, bool consistent, float weight) {
    const FlameConfig *cfg = CFG(b);
    const float *P = blob_params(b->pol, b->np);
    int B = b->B, D = b->D, K = b->K, S = b->S;
    double scale = 1.0 / ((double)B * D);
    double gscale = 2.0 * scale * weight; /* d(weight * loss)/du = 2 weight (u - y) / (B D) */
    float sd0 = consistent ? (float)cfg->flow.base_std : 1.0f;
    cudaStream_t st = b->ctx.stream;
    CUDA_CHECK(cudaMemsetAsync(b->acc, 0, 2 * sizeof(double), st));
    DTime one = dtime_const(1.0f);
    if (cfg->flow.collapse_k) {
        const float *du;
        const float *uu = dflow_jvp(&b->ctx, &b->L, P, dseg(b->obs, S, S, 1), dseg(b->x, D, D, 1),
                                    dtime_rows(b->r), dtime_rows(b->t), dseg(b->vbar, D, D, 1),
                                    &one, B, &b->fw, true, &du);
        fm_collapsed_kernel<<<red_grid(b, (long long)B * D), 256, 0, st>>>(
            uu, du, b->vbar, b->r, b->t, B, D, gscale, b->g_rep, b->acc, b->red);
        CUDA_CHECK_LAUNCH();
        dflow_backward(&b->ctx, &b->L, P, G, &b->fw, b->g_rep, B, NULL);
    } else {
        int per = b->fcap / K;
        for (int s0 = 0; s0 < B; s0 += per) {
            int ns = B - s0 < per ? B - s0 : per, rows = ns * K;
            fm_expand_kernel<<<grid1((long long)rows * D, 256), 256, 0, st>>>(
                b->x, b->r, b->t, b->eps_post, s0, ns, K, D, consistent, sd0, b->xr, b->rr, b->tr,
                b->tan_rep);
            CUDA_CHECK_LAUNCH();
            const float *du;
            const float *uu =
                dflow_jvp(&b->ctx, &b->L, P, dseg(b->obs + (size_t)s0 * S, S, S, K),
                          dseg(b->xr, D, D, 1), dtime_rows(b->rr), dtime_rows(b->tr),
                          dseg(b->tan_rep, D, D, 1), &one, rows, &b->fw, true, &du);
            fm_bk_kernel<<<red_grid(b, (long long)rows * D), 256, 0, st>>>(
                uu, du, b->tan_rep, b->w, b->r, b->t, s0, ns, K, D, gscale, b->g_rep, b->acc,
                b->red);
            CUDA_CHECK_LAUNCH();
            dflow_backward(&b->ctx, &b->L, P, G, &b->fw, b->g_rep, rows, NULL);
        }
    }
    fm_finish_kernel<<<1, 1, 0, st>>>(b->acc, weight, scale, 1, b->met);
    CUDA_CHECK_LAUNCH();
}

/* FLAME-R: weighted regression of v on u_k = a-hat_k - eps_k (mean over B*K*D) */
__global__ void rect_kernel(const float *v, const float *vbar, const float *w, const float *x,
                            const float *t, const float *eps_post, int B, int K, int D,
                            int collapse, double scale, float *g, double *acc, GridRed red) {
    double loss = 0;
    long long n = (long long)B * D;
    GRID_LOOP(j, n) {
        int i = (int)(j / D), d = (int)(j % D);
        double gg = 0;
        if (collapse) {
            float ubar = -vbar[j];
            float e = v[j] - ubar;
            loss += (double)e * e;
            gg = 2.0 * e;
        } else {
            for (int k = 0; k < K; k++) {
                float wk = w[(size_t)i * K + k];
                float uk = cand_score_a(x, t, eps_post, K, D, i, k, d, 0, 1.0f) -
                           eps_post[((size_t)i * K + k) * D + d];
                float e = v[j] - uk;
                loss += (double)wk * e * e;
                gg += 2.0 * wk * e;
            }
        }
        g[j] = (float)(gg * scale);
    }
    double part[1] = {loss}, res[1];
    const int kinds[1] = {RED_SUM};
    if (grid_reduce(part, kinds, red, res) && threadIdx.x == 0) {
        acc[0] = res[0];
    }
}

static void fm_loss_rectified(Backend *b, float *G) {
    const FlameConfig *cfg = CFG(b);
    const float *P = blob_params(b->pol, b->np);
    int B = b->B, D = b->D, K = b->K, S = b->S;
    double scale = 1.0 / ((double)B * K * D);
    const float *v = dflow_forward(&b->ctx, &b->L, P, dseg(b->obs, S, S, 1), dseg(b->x, D, D, 1),
                                   dtime_const(0.0f), dtime_rows(b->t), B, &b->fw, true);
    rect_kernel<<<red_grid(b, (long long)B * D), 256, 0, b->ctx.stream>>>(
        v, b->vbar, b->w, b->x, b->t, b->eps_post, B, K, D, cfg->flow.collapse_k ? 1 : 0, scale,
        b->g_rep, b->acc, b->red);
    CUDA_CHECK_LAUNCH();
    dflow_backward(&b->ctx, &b->L, P, G, &b->fw, b->g_rep, B, NULL);
    fm_finish_kernel<<<1, 1, 0, b->ctx.stream>>>(b->acc, 1.0f, scale, 0, b->met);
    CUDA_CHECK_LAUNCH();
}

/* -Q term */
__global__ void qterm_z_kernel(float *z, int B, int D, float sd, uint64_t seed,
                               const DevScalars *sc) {
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        z[idx] = sd * rng_normal(seed, RNG_STREAM_QTERM_Z, step, (uint32_t)i, (uint32_t)d);
    }
}

__global__ void qterm_clip_kernel(const float *z, const float *u, long long n, float *a,
                                  float *mask) {
    GRID_LOOP(i, n) {
        float araw = z[i] - u[i];
        a[i] = clipf_d(araw, -1.0f, 1.0f);
        mask[i] = (araw >= -1.0f && araw <= 1.0f) ? 1.0f : 0.0f;
    }
}

/* min over the twin (first when q1 <= q2): dL/dq = -weight / B on the chosen one */
__global__ void qterm_choose_kernel(const float *q1, const float *q2, int B, float weight,
                                    float *dq1, float *dq2, UpdateMetrics *met, GridRed red) {
    double v[1] = {0}, r[1];
    GRID_LOOP(i, B) {
        bool first = q1[i] <= q2[i];
        v[0] += first ? q1[i] : q2[i];
        dq1[i] = first ? -weight / (float)B : 0.0f;
        dq2[i] = first ? 0.0f : -weight / (float)B;
    }
    const int kinds[1] = {RED_SUM};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        met->qterm_loss = -weight * r[0] / B;
    }
}

__global__ void qterm_grad_kernel(const float *da, const float *da2, const float *mask, long long n,
                                  float *g) {
    GRID_LOOP(i, n) {
        g[i] = -(da[i] + da2[i]) * mask[i];
    }
}

static void q_term(Backend *b, float *G, float weight) {
    const FlameConfig *cfg = CFG(b);
    const float *P = blob_params(b->pol, b->np);
    int B = b->B, D = b->D, S = b->S;
    long long n = (long long)B * D;
    cudaStream_t st = b->ctx.stream;
    qterm_z_kernel<<<grid1(n, 256), 256, 0, st>>>(b->z_rep, B, D, (float)cfg->flow.base_std,
                                                  b->seed, b->sc);
    CUDA_CHECK_LAUNCH();
    const float *u = dflow_forward(&b->ctx, &b->L, P, dseg(b->obs, S, S, 1),
                                   dseg(b->z_rep, D, D, 1), dtime_const(0.0f), dtime_const(1.0f),
                                   B, &b->fw, true);
    qterm_clip_kernel<<<grid1(n, 256), 256, 0, st>>>(b->z_rep, u, n, b->a_rep, b->mask);
    CUDA_CHECK_LAUNCH();
    dcritic_forward2(&b->ctx, &b->L, b->q1_targ, b->q2_targ, dseg(b->obs, S, S, 1),
                     dseg(b->a_rep, D, D, 1), B, &b->q1w, &b->q2w, true);
    qterm_choose_kernel<<<red_grid(b, B), 256, 0, st>>>(dq_out(&b->L, &b->q1w),
                                                        dq_out(&b->L, &b->q2w), B, weight, b->dq1,
                                                        b->dq2, b->met, b->red);
    CUDA_CHECK_LAUNCH();
    dcritic_backward2(&b->ctx, &b->L, b->q1_targ, b->q2_targ, NULL, NULL, &b->q1w, &b->q2w,
                      b->dq1, b->dq2, B, b->da, b->da2);
    qterm_grad_kernel<<<grid1(n, 256), 256, 0, st>>>(b->da, b->da2, b->mask, n, b->g_rep);
    CUDA_CHECK_LAUNCH();
    dflow_backward(&b->ctx, &b->L, P, G, &b->fw, b->g_rep, B, NULL);
}

/* SAC actor */
__global__ void sac_actor_prep_kernel(const float *o, int B, int D, uint64_t seed,
                                      const DevScalars *sc, float ls_max, int logdet, float *a,
                                      float *sig_e, float *logpi, double *acc, GridRed red) {
    uint32_t step = (uint32_t)sc->n;
    double lp_sum = 0;
    GRID_LOOP(i, B) {
        double lp = 0;
        for (int d = 0; d < D; d++) {
            size_t j = (size_t)i * D + d;
            float mu = o[(size_t)i * 2 * D + d];
            float ls = clipf_d(o[(size_t)i * 2 * D + D + d], SAC_LOG_STD_MIN, ls_max);
            float e = rng_normal(seed, RNG_STREAM_SAC_EPS, step, (uint32_t)i, (uint32_t)d);
            sig_e[j] = expf(ls) * e;
            float pre = mu + sig_e[j];
            a[j] = tanhf(pre);
            lp += sac_log_prob_d(e, ls, pre, logdet);
        }
        logpi[i] = (float)lp;
        lp_sum += lp;
    }
    double v[1] = {lp_sum}, r[1];
    const int kinds[1] = {RED_SUM};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        acc[2] = r[0];
    }
}

__global__ void sac_choose_kernel(const float *q1, const float *q2, int B, float *dq1, float *dq2,
                                  double *acc, GridRed red) {
    double v[1] = {0}, r[1];
    GRID_LOOP(i, B) {
        bool first = q1[i] <= q2[i];
        v[0] += first ? q1[i] : q2[i];
        dq1[i] = first ? 1.0f : 0.0f;
        dq2[i] = first ? 0.0f : 1.0f;
    }
    const int kinds[1] = {RED_SUM};
    if (grid_reduce(v, kinds, red, r) && threadIdx.x == 0) {
        acc[3] = r[0];
    }
}

__global__ void sac_dout_kernel(const float *o, const float *a, const float *sig_e, const float *da,
                                const float *da2, int B, int D, const float *alpha3, float ls_max,
                                float c_ld, float *dout) {
    float alpha = expf(alpha3[0]);
    long long n = (long long)B * D;
    GRID_LOOP(j, n) {
        int i = (int)(j / D), d = (int)(j % D);
        float av = a[j], dqa = da[j] + da2[j];
        float dpre = (c_ld * alpha * av - dqa * (1.0f - av * av)) / (float)B;
        float raw = o[(size_t)i * 2 * D + D + d];
        bool inside = raw >= SAC_LOG_STD_MIN && raw <= ls_max;
        dout[(size_t)i * 2 * D + d] = dpre;
        dout[(size_t)i * 2 * D + D + d] = inside ? (-alpha / (float)B + dpre * sig_e[j]) : 0.0f;
    }
}

__global__ void sac_finish_kernel(const double *acc, int B, const float *alpha3,
                                  UpdateMetrics *met) {
    float alpha = expf(alpha3[0]);
    double lp_sum = acc[2], qsum = acc[3];
    met->entropy = -lp_sum / B;
    met->fm_loss = (alpha * lp_sum - qsum) / B;
}

static void sac_actor(Backend *b, float *G) {
    const FlameConfig *cfg = CFG(b);
    const float *P = blob_params(b->pol, b->np);
    int B = b->B, D = b->D, S = b->S;
    cudaStream_t st = b->ctx.stream;
    float ls_max = (float)cfg->quirks.sac_log_std_max;
    int logdet = cfg->quirks.sac_log_det == TRI_YES;
    const float *o = dgauss_forward(&b->ctx, &b->L, P, dseg(b->obs, S, S, 1), B, &b->fw, true);
    sac_actor_prep_kernel<<<red_grid(b, B), 256, 0, st>>>(o, B, D, b->seed, b->sc, ls_max, logdet,
                                                          b->a_rep, b->tan_rep, b->logpi, b->acc,
                                                          b->red);
    CUDA_CHECK_LAUNCH();
    dcritic_forward2(&b->ctx, &b->L, blob_params(b->q1, b->nq), blob_params(b->q2, b->nq),
                     dseg(b->obs, S, S, 1), dseg(b->a_rep, D, D, 1), B, &b->q1w, &b->q2w, true);
    sac_choose_kernel<<<red_grid(b, B), 256, 0, st>>>(dq_out(&b->L, &b->q1w),
                                                      dq_out(&b->L, &b->q2w), B, b->dq1, b->dq2,
                                                      b->acc, b->red);
    CUDA_CHECK_LAUNCH();
    dcritic_backward2(&b->ctx, &b->L, blob_params(b->q1, b->nq), blob_params(b->q2, b->nq), NULL,
                      NULL, &b->q1w, &b->q2w, b->dq1, b->dq2, B, b->da, b->da2);
    sac_dout_kernel<<<grid1((long long)B * D, 256), 256, 0, st>>>(
        o, b->a_rep, b->tan_rep, b->da, b->da2, B, D, b->alpha3, ls_max, logdet ? 2.0f : 0.0f,
        b->dout2);
    CUDA_CHECK_LAUNCH();
    dgauss_backward(&b->ctx, &b->L, P, G, &b->fw, b->dout2, B);
    sac_finish_kernel<<<1, 1, 0, st>>>(b->acc, B, b->alpha3, b->met);
    CUDA_CHECK_LAUNCH();
}

__global__ void actor_metrics_kernel(int with_fm, int with_qterm, UpdateMetrics *met) {
    if (!with_fm) {
        met->fm_loss = 0.0;
    }
    if (!with_qterm) {
        met->qterm_loss = 0.0;
    }
    met->actor_loss = met->fm_loss + met->qterm_loss;
}

void cuda_stage_policy_step(Backend *b, int t_offset) {
    const FlameConfig *cfg = CFG(b);
    float *G = blob_grads(b->pol, b->np);
    cudaStream_t st = b->ctx.stream;
    CUDA_CHECK(cudaMemsetAsync(G, 0, b->np * sizeof(float), st));
    int with_fm = 1, with_qterm = 0;
    if (cfg->algo == ALGO_SAC) {
        sac_actor(b, G);
    } else if (cfg->algo == ALGO_FLAME_R) {
        fm_loss_rectified(b, G);
    } else {
        with_fm = cfg->flow.fm_weight > 0;
        if (with_fm) {
            fm_loss_meanflow(b, G, cfg->quirks.time_convention == QUIRK_CONSISTENT,
                             (float)cfg->flow.fm_weight);
        }
        if (cfg->flow.actor_q_weight > 0) {
            q_term(b, G, (float)cfg->flow.actor_q_weight);
            with_qterm = 1;
        }
    }
    actor_metrics_kernel<<<1, 1, 0, st>>>(with_fm, with_qterm, b->met);
    CUDA_CHECK_LAUNCH();
    cuda_adam(b, blob_params(b->pol, b->np), G, blob_m(b->pol, b->np), blob_v(b->pol, b->np),
              b->np, 0.0, &b->sc->actor_lr, &b->sc->actor_steps0, t_offset);
}

/* ------------------------------------------------------------------ alpha */
__global__ void alpha_kernel(float *alpha3, const float *ent, const float *logpi, int B, int sac,
                             double target, double lr, double b1, double b2, double eps,
                             const int64_t *t_base, int t_off, GridRed red) {
    /* mean of log pi (SAC) or of H over the batch, then one Adam step by one thread */
    const float *src = sac ? logpi : ent;
    double v[1] = {0}, r[1];
    GRID_LOOP(i, B) {
        v[0] += src[i];
    }
    const int kinds[1] = {RED_SUM};
    if (!grid_reduce(v, kinds, red, r) || threadIdx.x != 0) {
        return;
    }
    double g = sac ? -(r[0] / B + target) : r[0] / B - target;
    float gf = (float)g;
    int64_t t = *t_base + t_off + 1;
    float fb1 = (float)b1, fb2 = (float)b2, flr = (float)lr, feps = (float)eps;
    float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    float bc1 = 1.0f - (float)pow((double)fb1, (double)t);
    float bc2 = 1.0f - (float)pow((double)fb2, (double)t);
    float mi = __fadd_rn(__fmul_rn(fb1, alpha3[1]), __fmul_rn(omb1, gf));
    float vi = __fadd_rn(__fmul_rn(fb2, alpha3[2]), __fmul_rn(omb2, __fmul_rn(gf, gf)));
    alpha3[1] = mi;
    alpha3[2] = vi;
    float mhat = __fdiv_rn(mi, bc1), vhat = __fdiv_rn(vi, bc2);
    alpha3[0] =
        __fsub_rn(alpha3[0], __fmul_rn(flr, __fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), feps))));
}

void cuda_stage_alpha_step(Backend *b, int t_offset) {
    const FlameConfig *cfg = CFG(b);
    double target = -cfg->alpha.target_entropy_scale * b->D;
    alpha_kernel<<<red_grid(b, b->B), 256, 0, b->ctx.stream>>>(
        b->alpha3, b->ent, b->logpi, b->B, cfg->algo == ALGO_SAC, target, cfg->alpha.lr,
        cfg->optim.beta1, cfg->optim.beta2, cfg->optim.eps, &b->sc->alpha_steps0, t_offset,
        b->red);
    CUDA_CHECK_LAUNCH();
}
