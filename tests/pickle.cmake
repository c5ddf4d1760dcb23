# pickle: tests of the safe pickle reader (server/pickle.c). The reader needs only
# libc and rpc's small helpers, so these targets compile it on their own and do not
# wait for the rest of flechefs_srv. pkdump prints a pickle's tree as canonical JSON for the
# end-to-end tests (tests/e2e/test_pickle*.py).
add_library(flechefs_pickle STATIC ${PROJECT_SOURCE_DIR}/server/pickle.c)
target_include_directories(flechefs_pickle PUBLIC ${PROJECT_SOURCE_DIR}/server)
target_link_libraries(flechefs_pickle PUBLIC flechefs_rpc m)

add_executable(pkdump ${CMAKE_CURRENT_SOURCE_DIR}/pkdump.c)
target_link_libraries(pkdump PRIVATE flechefs_pickle)

flechefs_unit_test(test_pickle SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pickle.c
	LIBS flechefs_pickle PkgConfig::ZLIB)
flechefs_fuzz_test(fuzz_pickle ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_pickle.c
	LIBS flechefs_pickle CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-pickle)
flechefs_py_test(test_pickle_values e2e/test_pickle_values.py LABELS pickle)
flechefs_py_test(test_pickle_fixtures e2e/test_pickle_fixtures.py LABELS pickle)
flechefs_py_test(test_pickle_hostile e2e/test_pickle_hostile.py LABELS pickle)
