# toml: tests of the TOML reader (server/toml.c). The reader needs only libc, so these
# targets compile it on their own. tomldump is the decoder toml-test runs: it prints a
# document as toml-test's tagged JSON. toml_suite installs the official toml-test
# runner (a Go program, pinned below) into the build tree and runs every TOML 1.0 case
# of it against tomldump; it needs Go (scripts/deps.sh), and skips saying why when Go
# is missing, except under CI=true, where it fails.
set(FLECHEFS_TOML_TEST_MODULE github.com/toml-lang/toml-test/v2/cmd/toml-test@v2.2.0)

add_library(flechefs_toml STATIC ${PROJECT_SOURCE_DIR}/server/toml.c)
target_include_directories(flechefs_toml PUBLIC ${PROJECT_SOURCE_DIR}/server)
target_link_libraries(flechefs_toml PUBLIC flechefs_rpc m)

if(NOT FLECHEFS_FUZZ)
	add_executable(tomldump ${CMAKE_CURRENT_SOURCE_DIR}/tomldump.c)
	target_link_libraries(tomldump PRIVATE flechefs_toml)
	add_test(NAME toml_suite COMMAND ${FLECHEFS_PYTHON}
		${CMAKE_CURRENT_SOURCE_DIR}/toml_suite.py $<TARGET_FILE:tomldump>
		${FLECHEFS_TOML_TEST_MODULE} ${PROJECT_BINARY_DIR}/toml-test)
	set_tests_properties(toml_suite PROPERTIES LABELS "toml;unit" SKIP_RETURN_CODE 77)
endif()

# every harness input is parsed and walked whole
flechefs_fuzz_test(fuzz_toml ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_toml.c
	LIBS flechefs_toml CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-toml)

flechefs_unit_test(test_toml SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_toml.c
	LIBS flechefs_toml)
