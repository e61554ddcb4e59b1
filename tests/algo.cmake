# the algorithm on the CPU backend
flame_add_test(NAME test_update SOURCES test_update.c LABELS unit)
flame_add_test(NAME test_entropy SOURCES test_entropy.c LABELS unit)
flame_add_test(NAME test_quirks SOURCES test_quirks.c LABELS unit)
flame_add_test(NAME test_reference_golden SOURCES test_reference_golden.c LABELS unit)
flame_add_test(NAME test_flow_learning SOURCES test_flow_learning.c LABELS slow TIMEOUT 600)
flame_add_test(NAME test_flow SOURCES test_flow.c LABELS unit)
flame_add_test(NAME test_actor_grad SOURCES test_actor_grad.c LABELS unit)
