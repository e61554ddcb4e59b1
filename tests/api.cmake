# libflame.so: the C API linked as the shared library (plus the core's own modules as references),
# and the Python tests (python/tests, pytest) when tools/setup.sh test made their environment.
flame_add_test(NAME test_api SOURCES test_api.c LABELS unit)
target_link_libraries(test_api PRIVATE flame_shared)
set_property(TEST test_api APPEND PROPERTY ENVIRONMENT "FLAME_LIB=$<TARGET_FILE:flame_shared>")
