# `flame bench`: the library (FLOPs vs flame-algorithm.md §13, statistics, JSON lines), bad usage
# (exit 2), and every suite at --quick size with its JSON lines checked; the kernels suite skips
# (77) without a GPU. Speeds are printed, never asserted.
flame_add_test(NAME test_bench SOURCES test_bench.c LABELS bench)
add_dependencies(test_bench flame)
foreach(mode usage update act env e2e kernels)
  add_test(NAME test_bench_${mode} COMMAND test_bench ${mode}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test_bench_${mode} PROPERTIES LABELS bench SKIP_RETURN_CODE 77 TIMEOUT 300
                       ENVIRONMENT "${FLAME_TEST_ENV}")
endforeach()
