# views: the value views json, npy, txt and bin of flechefs-server
# (server/views.c, server/view_json.c, server/npy.c, the text cache
# server/textcache.c). The unit tests run in the sanitizer build too; the end-to-end
# tests drive the server through its protocol; the fuzz harness feeds arbitrary
# pickles to every emitter.
flechefs_unit_test(test_views SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_views.c
	LIBS flechefs_srv)
flechefs_unit_test(test_textcache SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_textcache.c
	LIBS flechefs_srv)
flechefs_py_test(test_views_fixtures e2e/test_views_fixtures.py LABELS views)
flechefs_py_test(test_views_generated e2e/test_views_generated.py LABELS views)
flechefs_py_test(test_views_hostile e2e/test_views_hostile.py LABELS views)
flechefs_fuzz_test(fuzz_views ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_views.c
	LIBS flechefs_srv CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-pickle)
# caches written at test time by the real fleche from PyPI (scripts/pyenv.sh), read
# back through the protocol and the mount
flechefs_py_test(test_fleche_generated e2e/test_fleche_generated.py LABELS views)
# files and folders returned by cached functions (fleche.storage.paths records)
flechefs_py_test(test_fleche_files e2e/test_fleche_files.py LABELS views)
# fleche's stored file and folder records (server/pathrec.c) and their json view
flechefs_unit_test(test_pathrec SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pathrec.c
	LIBS flechefs_srv)
