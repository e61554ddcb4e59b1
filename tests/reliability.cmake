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
# one writer per run (a lock naming its holder), signals in every phase, failed starts
flame_add_cli_test(NAME cli_run_lock SCRIPT cli_run_lock.sh LABELS unit)
flame_add_cli_test(NAME cli_signals SCRIPT cli_signals.sh LABELS unit TIMEOUT 600)
flame_add_cli_test(NAME cli_failed_start SCRIPT cli_failed_start.sh LABELS unit)
