# environments and the env pool: model facts, Gymnasium golden data, oracle models, pool behaviour
flame_add_test(NAME test_env_oracle SOURCES test_env_oracle.c LABELS unit)
