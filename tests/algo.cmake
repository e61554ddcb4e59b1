# the algorithm on the CPU backend
flame_add_test(NAME test_update SOURCES test_update.c LABELS unit)
flame_add_test(NAME test_entropy SOURCES test_entropy.c LABELS unit)
