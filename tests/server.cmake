# server: end-to-end tests of flechefs-server over pipes (tests/e2e/test_server*.py,
# using tests/e2e/client.py), a check that its object files form no cycle, and
# bench-server, the server benchmark, which is built here but run by hand
# (bench/bench-server), not by ctest.
flechefs_py_test(server_fixtures e2e/test_server_fixtures.py LABELS server)
flechefs_py_test(server_protocol e2e/test_server_protocol.py LABELS server)
flechefs_py_test(server_signed e2e/test_server_signed.py LABELS server)
flechefs_py_test(server_evict e2e/test_server_evict.py LABELS server)
flechefs_py_test(server_stamp e2e/test_server_stamp.py LABELS server)
flechefs_py_test(server_cli e2e/test_server_cli.py LABELS server)
flechefs_py_test(server_concurrency e2e/test_server_concurrency.py LABELS server mount)
flechefs_py_test(server_config e2e/test_server_config.py LABELS server)

# the server's object files depend on each other one way (scripts/layers.py, nm)
add_test(NAME server_layers COMMAND ${FLECHEFS_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/layers.py
	$<TARGET_FILE:flechefs_srv>)
set_tests_properties(server_layers PROPERTIES LABELS unit)

if(NOT FLECHEFS_FUZZ)
	add_executable(bench-server ${PROJECT_SOURCE_DIR}/bench/bench-server.c)
	target_link_libraries(bench-server PRIVATE flechefs_rpc Threads::Threads)
	target_compile_definitions(bench-server PRIVATE
		BENCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}/bench"
		BENCH_SERVER="$<TARGET_FILE:flechefs-server>")
	set_target_properties(bench-server PROPERTIES
		RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()

# the request handling of a session (srv_session_handle), fed random frames
flechefs_fuzz_test(fuzz_dispatch fuzz/fuzz_dispatch.c LIBS flechefs_srv
	CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-dispatch)
