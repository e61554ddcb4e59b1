/*
 * eval.c: evaluation of a policy on its own env pool: `episodes` complete
 * episodes, deterministic (EMA policy, best-of-N, no exploration noise) unless stochastic.
 * Env i of the pool runs episodes i, i + E, i + 2E, ... so the result does not depend on threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/cli.h"
#include "flame/envpool.h"
#include "flame/train.h"

/* env indices of evaluation pools start here, one block per round, away from training envs */
#define EVAL_ENV_BASE 0x100000u
#define EVAL_ENV_BLOCK 0x1000u

int eval_policy(const BackendOps *ops, Backend *b, const FlameConfig *cfg, int episodes,
                bool stochastic, uint32_t round, EvalResult *out) {
    memset(out, 0, sizeof *out);
    if (episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "evaluation needs at least one episode");
    }
    const EnvSpec *spec = env_spec_find(cfg->env.id);
    if (!spec) {
        return flame_errorf(FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists them",
                            cfg->env.id);
    }
    int E = cfg->env.eval_envs < episodes ? cfg->env.eval_envs : episodes;
    E = E < 1 ? 1 : E;
    int threads = cli_resolve_threads(cfg->env.threads, E);
    EnvPool *pool = NULL;
    uint32_t offset = EVAL_ENV_BASE + (round % 256u) * EVAL_ENV_BLOCK;
    int rc = envpool_create(spec, cfg->env.model_xml, E, threads,
                            (uint64_t)cfg->run.seed + 0x9e3779b97f4a7c15ull * (round / 256u + 1),
                            offset, &pool);
    if (rc != FLAME_OK) {
        return rc;
    }
    int S = envpool_obs_dim(pool), D = envpool_act_dim(pool);
    double *obs = flame_malloc((size_t)E * S * sizeof(double));
    float *obsf = flame_malloc((size_t)E * S * sizeof(float));
    float *act = flame_malloc((size_t)E * D * sizeof(float));
    double *nobs = flame_malloc((size_t)E * S * sizeof(double));
    double *rew = flame_malloc((size_t)E * sizeof(double));
    uint8_t *term = flame_malloc((size_t)E), *trunc = flame_malloc((size_t)E);
    double *ep_ret = flame_malloc((size_t)E * sizeof(double));
    int *ep_len = flame_malloc((size_t)E * sizeof(int));
    int *todo = flame_calloc((size_t)E, sizeof(int)); /* episodes still to run per env */
    int *next_ep = flame_calloc((size_t)E, sizeof(int));
    out->returns = calloc((size_t)episodes, sizeof(double));
    out->lengths = calloc((size_t)episodes, sizeof(int));
    out->episodes = episodes;
    for (int e = 0; e < episodes; e++) {
        todo[e % E]++;
    }
    for (int i = 0; i < E; i++) {
        next_ep[i] = i;
    }
    envpool_reset(pool, obs);
    EnvPoolStep st = {nobs, NULL, rew, term, trunc, NULL, ep_ret, ep_len, NULL, NULL};
    int remaining = episodes;
    uint32_t call = 0;
    while (remaining > 0) {
        for (size_t i = 0; i < (size_t)E * S; i++) {
            obsf[i] = (float)obs[i];
        }
        ops->act(b, obsf, E, stochastic ? ACT_EXPLORE : ACT_DETERMINISTIC,
                 round * 1000003u + call++, act);
        envpool_step(pool, act, &st);
        for (int i = 0; i < E; i++) {
            if ((term[i] || trunc[i]) && todo[i] > 0) {
                out->returns[next_ep[i]] = ep_ret[i];
                out->lengths[next_ep[i]] = ep_len[i];
                next_ep[i] += E;
                todo[i]--;
                remaining--;
            }
        }
        memcpy(obs, nobs, (size_t)E * S * sizeof(double));
    }
    double s = 0, s2 = 0, mn = INFINITY, mx = -INFINITY, ls = 0;
    for (int e = 0; e < episodes; e++) {
        s += out->returns[e];
        s2 += out->returns[e] * out->returns[e];
        mn = fmin(mn, out->returns[e]);
        mx = fmax(mx, out->returns[e]);
        ls += out->lengths[e];
    }
    out->return_mean = s / episodes;
    out->return_std = sqrt(fmax(s2 / episodes - out->return_mean * out->return_mean, 0));
    out->return_min = mn;
    out->return_max = mx;
    out->length_mean = ls / episodes;
    envpool_free(pool);
    flame_free(obs), flame_free(obsf), flame_free(act), flame_free(nobs), flame_free(rew);
    flame_free(term), flame_free(trunc), flame_free(ep_ret), flame_free(ep_len);
    flame_free(todo), flame_free(next_ep);
    return FLAME_OK;
}
