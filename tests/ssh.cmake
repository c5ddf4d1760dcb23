# ssh: flechefs over SSH. Unit tests of the option parsing, the remote
# command line and the ssh -G reader; end-to-end tests against a private sshd on
# 127.0.0.1 (tests/e2e/sshd_fixture.py; they need root, and skip without it): keys
# and host keys, password and keyboard-interactive (sshd in a private mount
# namespace where root has a test password), an sshd on ::1 (ssh_ipv6), the libssh2
# transport's receive buffer filling up (ssh_stream) and its socket refusing a
# packet (ssh_upload, in a private network namespace), both through the sshread helper;
# symbolic links planted in a shared cache by a second user (ssh_shared);
# bench/delay-proxy, the 25 ms link of bench/bench-ssh, built here and run by hand.
flechefs_unit_test(test_ssh_opts SOURCES unit/test_ssh_opts.c LIBS flechefs_sshopts)
flechefs_unit_test(test_ssh_connector SOURCES unit/test_ssh_connector.c LIBS flechefs_fsd)
if(NOT FLECHEFS_FUZZ)
	add_executable(sshread ${CMAKE_CURRENT_SOURCE_DIR}/sshread.c)
	target_link_libraries(sshread PRIVATE flechefs_fsd)
endif()
flechefs_py_test(ssh_mount e2e/test_ssh_mount.py LABELS ssh TIMEOUT 300)
flechefs_py_test(ssh_auth e2e/test_ssh_auth.py LABELS ssh TIMEOUT 300)
flechefs_py_test(ssh_reconnect e2e/test_ssh_reconnect.py LABELS ssh TIMEOUT 300)
flechefs_py_test(ssh_man e2e/test_ssh_man.py LABELS ssh)
# ssh_shared may add a system user (rewriting /etc/passwd and /etc/shadow), which
# ssh_interactive checks is left untouched by its password setup
flechefs_py_test(ssh_interactive e2e/test_ssh_interactive.py LABELS ssh TIMEOUT 300
	LOCK system_accounts)
flechefs_py_test(ssh_ipv6 e2e/test_ssh_ipv6.py LABELS ssh TIMEOUT 300)
flechefs_py_test(ssh_stream e2e/test_ssh_stream.py LABELS ssh)
flechefs_py_test(ssh_upload e2e/test_ssh_upload.py LABELS ssh)
flechefs_py_test(ssh_shared e2e/test_mount_shared.py LABELS ssh ARGS ssh LOCK system_accounts)
flechefs_py_test(ssh_source e2e/test_ssh_source.py LABELS ssh)
if(NOT FLECHEFS_FUZZ)
	add_executable(delay-proxy ${PROJECT_SOURCE_DIR}/bench/delay-proxy.c)
	target_link_libraries(delay-proxy PRIVATE Threads::Threads)
	set_target_properties(delay-proxy PROPERTIES RUNTIME_OUTPUT_DIRECTORY
		${PROJECT_BINARY_DIR}/bench)
endif()
