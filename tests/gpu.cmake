# CUDA backend tests (label gpu): each returns 77 without a device, so CTest reports it skipped.
# FLAME_GPU_TEST_SMALL=1 keeps only the awkward small sizes (compute-sanitizer runs).
if(FLAME_HAVE_CUDA)
  flame_add_test(NAME test_mlp_cuda SOURCES gpu/test_mlp_cuda.cu LABELS gpu TIMEOUT 600)
  flame_add_test(NAME test_stages_cuda SOURCES gpu/test_stages_cuda.c LABELS gpu TIMEOUT 900)
  flame_add_test(NAME test_update_cuda SOURCES gpu/test_update_cuda.c LABELS gpu TIMEOUT 900)
  # the new CUDA kernel choices (backend.small_rows, scoring, backward, entropy, reductions,
  # merge_launches) and acting beside queued updates (label gpu_new too: run_gpu_checks.sh new);
  # the cluster tests exit 77 below compute capability 9.0
  flame_add_test(NAME test_cmlp_cuda SOURCES gpu/test_cmlp_cuda.cu LABELS gpu gpu_new TIMEOUT 600)
  flame_add_test(NAME test_stages_fast_cuda SOURCES gpu/test_stages_fast_cuda.c LABELS gpu gpu_new
                 TIMEOUT 900)
  flame_add_test(NAME test_update_fast_cuda SOURCES gpu/test_update_fast_cuda.c LABELS gpu gpu_new
                 TIMEOUT 900)
  flame_add_test(NAME test_overlap_cuda SOURCES gpu/test_overlap_cuda.c LABELS gpu gpu_new
                 TIMEOUT 300)
  # the memory plan needs no device
  flame_add_test(NAME test_cuda_plan SOURCES gpu/test_cuda_plan.c LABELS unit)
  foreach(t test_mlp_cuda test_stages_cuda test_update_cuda test_cmlp_cuda test_stages_fast_cuda
          test_update_fast_cuda test_overlap_cuda)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/gpu)
  endforeach()
endif()
