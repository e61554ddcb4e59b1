# datasets: rollouts in the D4RL and Minari layouts, replay export, their CLI errors and the
# h5py / Minari-style checks of tools/check_datasets.py
flame_add_test(NAME test_dataset SOURCES test_dataset.c LABELS unit)
flame_add_cli_test(NAME cli_dataset_errors SCRIPT cli_dataset_errors.sh LABELS unit)
flame_add_cli_test(NAME cli_dataset_python SCRIPT cli_dataset_python.sh LABELS unit)
foreach(t cli_dataset_errors cli_dataset_python)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "FLAME_DATASET_TEST_BIN=$<TARGET_FILE:test_dataset>")
endforeach()
