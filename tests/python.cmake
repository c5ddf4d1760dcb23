# python: the Python package flechefs (python/), a fleche cache served by
# flechefs-server, tested against the real fleche of scripts/pyenv.sh's environment
# (the tests run themselves under that environment's Python). test_python_install
# and test_python_fleche_suite fetch from PyPI (pip's cache serves them when it can):
# fleche and msgpack into a fresh environment, fleche's sdist with its tests, pytest.
flechefs_py_test(test_python_cache e2e/test_python_cache.py LABELS python ssh)
flechefs_py_test(test_python_save e2e/test_python_save.py LABELS python server TIMEOUT 600)
flechefs_py_test(test_python_stress e2e/test_python_stress.py LABELS python server TIMEOUT 300)
flechefs_py_test(test_python_conform e2e/test_python_conform.py LABELS python server TIMEOUT 300)
flechefs_py_test(test_python_mount e2e/test_python_mount.py LABELS python mount TIMEOUT 120)
flechefs_py_test(test_python_install e2e/test_python_install.py LABELS python install TIMEOUT 900)
flechefs_py_test(test_python_fleche_suite e2e/test_python_fleche_suite.py LABELS python server TIMEOUT 900)
flechefs_py_test(test_python_rounds e2e/test_python_rounds.py LABELS python server)
