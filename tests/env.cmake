# environments and the env pool: model facts, Gymnasium golden data, oracle models, pool behaviour
flame_add_test(NAME test_env_oracle SOURCES test_env_oracle.c LABELS unit)
flame_add_test(NAME test_env_golden SOURCES test_env_golden.c LABELS unit)
flame_add_test(NAME test_env SOURCES test_env.c LABELS unit)
flame_add_test(NAME test_envpool SOURCES test_envpool.c LABELS unit)
flame_add_test(NAME test_env_bench SOURCES test_env_bench.c LABELS bench)
