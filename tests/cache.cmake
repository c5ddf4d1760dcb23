# cache: unit tests of the storage layer (server/cache.c and its parts: key index,
# file codec, SQL store, record and metadata conversion, query matching). The fixture
# tests copy tests/fixtures/real-cache to a temporary directory first (SQLite
# creates -shm/-wal files next to a database even when it only reads).
flechefs_unit_test(test_cache SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cache.c
	LIBS flechefs_srv PkgConfig::ZLIB PkgConfig::SQLITE3)
flechefs_unit_test(test_cache_parts SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cache_parts.c
	LIBS flechefs_srv PkgConfig::ZLIB)
flechefs_fuzz_test(fuzz_cache_record ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_cache_record.c
	LIBS flechefs_srv CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-cache)
flechefs_unit_test(test_cache_many SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cache_many.c
	LIBS flechefs_srv PkgConfig::SQLITE3 PkgConfig::ZLIB)
# srv_serve: many requests in flight over pipes (reader, workers, writer together)
flechefs_unit_test(test_serve SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_serve.c
	LIBS flechefs_srv PkgConfig::ZLIB Threads::Threads)
