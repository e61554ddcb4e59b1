# reliability: write errors (full disk, file size limit) in every writer, paths and file inputs,
# exact numbers and strings in configs, checkpoint validation, a closed stdout pipe
flame_add_test(NAME test_config SOURCES test_config.c LABELS unit)
flame_add_test(NAME test_fsutil SOURCES test_fsutil.c LABELS unit)
flame_add_test(NAME test_ckpt SOURCES test_ckpt.c LABELS unit)
flame_add_test(NAME test_write_errors SOURCES test_write_errors.c LABELS unit)
flame_add_cli_test(NAME cli_reliability SCRIPT cli_reliability.sh LABELS unit)
flame_add_cli_test(NAME cli_disk_full SCRIPT cli_disk_full.sh LABELS unit)
foreach(t cli_reliability cli_disk_full)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
               "FLAME_CKPT_TEST_BIN=$<TARGET_FILE:test_ckpt>"
               "FLAME_WRITE_TEST_BIN=$<TARGET_FILE:test_write_errors>")
endforeach()
