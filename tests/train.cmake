# the training loop, metrics, checkpoints, CLI
flame_add_test(NAME test_train SOURCES test_train.c LABELS unit TIMEOUT 600)
