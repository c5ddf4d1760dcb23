# python: the Python package flechefs (python/), a fleche cache served by
# flechefs-server, tested against the real fleche of scripts/pyenv.sh's environment
# (the tests run themselves under that environment's Python).
flechefs_py_test(test_python_cache e2e/test_python_cache.py LABELS python ssh)
flechefs_py_test(test_python_save e2e/test_python_save.py LABELS python server TIMEOUT 600)
flechefs_py_test(test_python_stress e2e/test_python_stress.py LABELS python server TIMEOUT 300)
flechefs_py_test(test_python_rounds e2e/test_python_rounds.py LABELS python server)
