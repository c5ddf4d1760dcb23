# mount: unit tests of the daemon's connection and inode table
# (tests/unit/test_fsd_conn.c) and of the query/ tree's templates
# (tests/unit/test_querydir.c), and end-to-end tests of the flechefs daemon on real FUSE
# mounts of copies of the fixture caches (tests/e2e/test_mount*.py, helpers in
# tests/e2e/mountlib.py; test_mount_views.py: the value views;
# test_mount_sizes.py: values around page and read boundaries, spliced and copied;
# test_mount_hostile.py: a proxy that corrupts or stalls the server's answers;
# test_mount_shared.py: a cache others can write to, read by a second local user
# through -o allow_other: symlinks, permissions, the eviction guard, SQLite's files;
# test_mount_metadata.py: a call whose metadata is nested too deep to send;
# test_mount_deadline.py: a server stopped during a streaming read, locally and over SSH;
# test_mount_rewrite.py: a call recorded again under its key, files and SQLite;
# test_mount_walk.py: the daemon's memory through a walk of every call folder;
# test_mount_prefetch.py: load_many, and the records a walk of calls/ reads ahead). They
# need /dev/fuse and root or fusermount3; without them they skip (fail under CI=true).
# test_mount_config.py: caches named in fleche.toml (--cache, -o cache=), also over SSH.
# The benchmark bench/bench-mount is run by hand, not by ctest.
flechefs_unit_test(test_fsd_conn SOURCES unit/test_fsd_conn.c LIBS flechefs_fsd)
flechefs_unit_test(test_querydir SOURCES unit/test_querydir.c LIBS flechefs_fsd)
# the daemon's object files depend on each other one way (scripts/layers.py, nm)
add_test(NAME fsd_layers COMMAND ${FLECHEFS_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/layers.py
	$<TARGET_FILE:flechefs_fsd>)
set_tests_properties(fsd_layers PROPERTIES LABELS unit)
flechefs_py_test(mount_fixtures e2e/test_mount_fixtures.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_errors e2e/test_mount_errors.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_config e2e/test_mount_config.py LABELS mount)
flechefs_py_test(mount_views e2e/test_mount_views.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_sizes e2e/test_mount_sizes.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_hostile e2e/test_mount_hostile.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_shared e2e/test_mount_shared.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_metadata e2e/test_mount_metadata.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_source e2e/test_mount_source.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_log e2e/test_mount_log.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_query e2e/test_mount_query.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_deadline e2e/test_mount_deadline.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_rewrite e2e/test_mount_rewrite.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_walk e2e/test_mount_walk.py LABELS mount TIMEOUT 300 SERIAL)
flechefs_py_test(mount_prefetch e2e/test_mount_prefetch.py LABELS mount TIMEOUT 600 SERIAL)
