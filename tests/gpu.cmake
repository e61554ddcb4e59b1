# CUDA backend tests (label gpu): each returns 77 without a device, so CTest reports it skipped.
# FLAME_GPU_TEST_SMALL=1 keeps only the awkward small sizes (compute-sanitizer runs).
if(FLAME_HAVE_CUDA)
  flame_add_test(NAME test_mlp_cuda SOURCES gpu/test_mlp_cuda.cu LABELS gpu TIMEOUT 600)
  flame_add_test(NAME test_stages_cuda SOURCES gpu/test_stages_cuda.c LABELS gpu TIMEOUT 900)
  flame_add_test(NAME test_update_cuda SOURCES gpu/test_update_cuda.c LABELS gpu TIMEOUT 900)
  flame_add_test(NAME test_golden_cuda SOURCES gpu/test_golden_cuda.c LABELS gpu)
  foreach(t test_mlp_cuda test_stages_cuda test_update_cuda test_golden_cuda)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/gpu)
  endforeach()
endif()
