# flame render: the offscreen renderer and PNG writer (test_render), and the command end to end
# (cli_render.sh); both skip (77) on a machine without any OpenGL library.
flame_add_test(NAME test_render SOURCES test_render.c LABELS unit)
flame_add_cli_test(NAME cli_render SCRIPT cli_render.sh LABELS unit)
set_property(TEST cli_render APPEND PROPERTY ENVIRONMENT
             "FLAME_DATASET_TEST_BIN=$<TARGET_FILE:test_dataset>")
