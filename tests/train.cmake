# the training loop, metrics, checkpoints, CLI
flame_add_test(NAME test_train SOURCES test_train.c LABELS unit TIMEOUT 600)
flame_add_cli_test(NAME cli_train SCRIPT cli_train.sh LABELS unit TIMEOUT 600)
