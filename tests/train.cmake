# the training loop, metrics, checkpoints, CLI
flame_add_test(NAME test_train SOURCES test_train.c LABELS unit TIMEOUT 600)
flame_add_cli_test(NAME cli_train SCRIPT cli_train.sh LABELS unit TIMEOUT 600)
# the run directory and the progress display
flame_add_test(NAME test_train_parts SOURCES test_train_parts.c LABELS unit)
# learning: FLAME-M and the SAC baseline on InvertedPendulum-v5 (slow)
flame_add_test(NAME test_learning_flame_m SOURCES test_learning.c LABELS slow TIMEOUT 900
               ARGS inverted_pendulum_small.yaml)
flame_add_test(NAME test_learning_sac SOURCES test_learning.c LABELS slow TIMEOUT 900
               ARGS inverted_pendulum_small_sac.yaml)
# the rollout engine: evaluation == dataset episodes, unstable episodes, `flame eval` == `flame rollout`
flame_add_test(NAME test_rollout SOURCES test_rollout.c LABELS unit)
