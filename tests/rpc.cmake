# rpc: unit tests of the wire protocol library and the libFuzzer harness of its
# frame and message decoders.
flechefs_unit_test(test_rpc_msg SOURCES unit/test_rpc_msg.c LIBS flechefs_rpc)
flechefs_unit_test(test_rpc_json SOURCES unit/test_rpc_json.c LIBS flechefs_rpc m)
flechefs_fuzz_test(fuzz_msg fuzz/fuzz_msg.c LIBS flechefs_rpc m
	CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-msg)
flechefs_unit_test(test_rpc_pyjson SOURCES unit/test_rpc_pyjson.c LIBS flechefs_rpc m)
flechefs_unit_test(test_rpc_proto SOURCES unit/test_rpc_proto.c LIBS flechefs_rpc)
