/* checkpoint.c: writing, checking and restoring a run's checkpoints (see include/flame/train.h). */
#include "flame/train.h"

#include <string.h>

#include "flame/check.h"
#include "flame/run_dir.h"

int train_checkpoint_save(const char *run_dir, const FlameConfig *cfg, const BackendOps *ops,
                          Backend *b, EnvPool *pool, const TrainCounters *tc) {
    char path[RUN_DIR_PATH_MAX];
    run_dir_ckpt_path(path, sizeof path, run_dir, tc->env_steps);
    const BackendBase *base = backend_base(b);
    AgentState st;
    agent_state_init(&st, cfg, base->obs_dim, base->act_dim);
    ops->get_state(b, &st);
    Replay rep;
    bool with_replay = cfg->run.save_replay;
    if (with_replay) {
        replay_init(&rep, cfg->update.replay_size, base->obs_dim, base->act_dim);
        ops->get_replay(b, &rep);
    }
    size_t es = envpool_state_size(pool);
    void *ebuf = flame_malloc(es ? es : 1);
    envpool_state_save(pool, ebuf);
    int rc = ckpt_write(path, cfg, &st, tc, with_replay ? &rep : NULL, ebuf, es, ops->name);
    flame_free(ebuf);
    if (rc == FLAME_OK) {
        run_dir_prune_checkpoints(run_dir, cfg->run.keep_ckpts);
    }
    if (with_replay) {
        replay_free(&rep);
    }
    agent_state_free(&st);
    return rc;
}

int train_checkpoint_check(const Checkpoint *ck, const FlameConfig *cfg, const char *path) {
    if (strcmp(ck->env_id, cfg->env.id) != 0 || ck->cfg.algo != cfg->algo ||
        ck->cfg.net.hidden != cfg->net.hidden || ck->cfg.net.layers != cfg->net.layers) {
        return flame_errorf(FLAME_EINPUT,
                            "%s is a %s checkpoint of %s (%dx%d), not of the configured %s %s "
                            "(%dx%d); resume with the run's own config",
                            path, config_algo_name(ck->cfg.algo), ck->env_id, ck->cfg.net.layers,
                            ck->cfg.net.hidden, config_algo_name(cfg->algo), cfg->env.id,
                            cfg->net.layers, cfg->net.hidden);
    }
    if (cfg->run.save_replay && !ck->has_replay) {
        return flame_errorf(
            FLAME_EINPUT,
            "%s holds no replay buffer; resume needs one (set run.save_replay=false "
            "to resume with an empty buffer)",
            path);
    }
    return FLAME_OK;
}

int train_checkpoint_restore(const Checkpoint *ck, const FlameConfig *cfg, const BackendOps *ops,
                             Backend *b, EnvPool *pool, const char *path) {
    ops->set_state(b, &ck->st);
    if (ck->has_replay) {
        if (ck->replay.capacity != cfg->update.replay_size) {
            return flame_errorf(FLAME_EINPUT,
                                "%s: replay capacity %lld differs from "
                                "update.replay_size %lld",
                                path, (long long)ck->replay.capacity,
                                (long long)cfg->update.replay_size);
        }
        ops->set_replay(b, &ck->replay);
    }
    return envpool_state_load(pool, ck->env_state, ck->env_state_size);
}
