# foundation: RNG, config, MLP core, CLI
flame_add_test(NAME test_rng SOURCES test_rng.c LABELS unit)
flame_add_test(NAME test_mlp SOURCES test_mlp.c LABELS unit)
flame_add_cli_test(NAME cli_config SCRIPT cli_config.sh LABELS unit)
# machine queries and the OpenBLAS core choice (`flame info`)
flame_add_test(NAME test_host SOURCES test_host.c LABELS unit)
