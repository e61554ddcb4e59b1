# CUDA backend tests (label gpu): each returns 77 without a device, so CTest reports it skipped.
# FLAME_GPU_TEST_SIZES=all|small|real|min picks the cases (tests/gpu/gpu_sizes.h). The GPU check
# (tests/gpu/run_gpu_checks.sh) runs every test labelled gpu directly, each under its own time cap,
# so the CTest timeouts here only bound a plain `ctest -L gpu`.
if(FLAME_HAVE_CUDA)
  flame_add_test(NAME test_mlp_cuda SOURCES gpu/test_mlp_cuda.cu LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_stages_cuda SOURCES gpu/test_stages_cuda.c LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_update_cuda SOURCES gpu/test_update_cuda.c LABELS gpu TIMEOUT 300)
  flame_add_test(NAME test_golden_cuda SOURCES gpu/test_golden_cuda.c LABELS gpu TIMEOUT 300)
  # the new CUDA kernel choices (backend.small_rows, scoring, backward, entropy, reductions,
  # merge_launches) and acting beside queued updates; label gpu_new too: the check runs them in
  # its --new call. The cluster tests exit 77 below compute capability 9.0.
  flame_add_test(NAME test_cmlp_cuda SOURCES gpu/test_cmlp_cuda.cu LABELS gpu gpu_new TIMEOUT 300)
  flame_add_test(NAME test_stages_fast_cuda SOURCES gpu/test_stages_fast_cuda.c LABELS gpu gpu_new
                 TIMEOUT 300)
  flame_add_test(NAME test_update_fast_cuda SOURCES gpu/test_update_fast_cuda.c LABELS gpu gpu_new
                 TIMEOUT 300)
  flame_add_test(NAME test_overlap_cuda SOURCES gpu/test_overlap_cuda.c LABELS gpu gpu_new
                 TIMEOUT 300)
  foreach(t test_mlp_cuda test_stages_cuda test_update_cuda test_golden_cuda test_cmlp_cuda
          test_stages_fast_cuda test_update_fast_cuda test_overlap_cuda)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/gpu)
  endforeach()
  # the memory plan needs no device
  flame_add_test(NAME test_cuda_plan SOURCES gpu/test_cuda_plan.c LABELS unit)
  # the check script's device probe (CUDA runtime only; not a test)
  add_executable(gpu_probe gpu/gpu_probe.cu)
  target_link_libraries(gpu_probe PRIVATE CUDA::cudart)
endif()
# the check script's own logic, with a fake build and fake tools (no GPU, no CUDA needed)
# (it runs the check about 20 times; 240 s leave room for a loaded machine)
flame_add_cli_test(NAME test_gpu_check_script SCRIPT gpu/test_run_gpu_checks.sh LABELS unit TIMEOUT 240)
