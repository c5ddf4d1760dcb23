# examples: the cache generator examples/make-cache.py (used by ./demo, the tests and
# the benchmarks), all three through tests/e2e/test_make_cache.py:
#   make_cache          what it writes, read back independently (pickles with stand-in
#                       fleche classes, numpy arrays with numpy, SQL rows, gzip, HMAC)
#   make_cache_server   the generated caches (files, gzip + signed, SQL, big streamed
#                       values) as flechefs-server serves them
#   make_cache_fixture  compared with the real fleche cache in tests/fixtures
#                       (skipped when absent, failed under CI=true)
flechefs_py_test(make_cache e2e/test_make_cache.py)
flechefs_py_test(make_cache_server e2e/test_make_cache.py ARGS server)
flechefs_py_test(make_cache_fixture e2e/test_make_cache.py ARGS fixture)
