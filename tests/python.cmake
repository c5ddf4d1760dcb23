# python: the Python package flechefs (python/), a fleche cache served by
# flechefs-server, tested against the real fleche of scripts/pyenv.sh's environment
# (the test runs itself under that environment's Python).
flechefs_py_test(test_python_cache e2e/test_python_cache.py LABELS python ssh)
