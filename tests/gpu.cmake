# CUDA backend tests (label gpu): each returns 77 without a device, so CTest reports it skipped.
# FLAME_GPU_TEST_SIZES=all|small|real|min picks the cases (tests/gpu/gpu_sizes.h). The GPU check
# (tests/gpu/run_gpu_checks.sh) runs every test labelled gpu directly, each under its own time cap,
# so the CTest timeouts here only bound a plain `ctest -L gpu`.
if(FLAME_HAVE_CUDA)
  flame_add_test(NAME test_mlp_cuda SOURCES gpu/test_mlp_cuda.cu LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_stages_cuda SOURCES gpu/test_stages_cuda.c LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_update_cuda SOURCES gpu/test_update_cuda.c LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_golden_cuda SOURCES gpu/test_golden_cuda.c LABELS gpu TIMEOUT 300)
  foreach(t test_mlp_cuda test_stages_cuda test_update_cuda test_golden_cuda)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/gpu)
  endforeach()
  # the check script's device probe (CUDA runtime only; not a test)
  add_executable(gpu_probe gpu/gpu_probe.cu)
  target_link_libraries(gpu_probe PRIVATE CUDA::cudart)
endif()
# the check script's own logic, with a fake build and fake tools (no GPU, no CUDA needed)
flame_add_cli_test(NAME test_gpu_check_script SCRIPT gpu/test_run_gpu_checks.sh LABELS unit TIMEOUT 120)
