# python: the Python package flechefs (python/), a fleche cache served by
# flechefs-server, tested against the real fleche of scripts/pyenv.sh's environment
# (the tests run themselves under that environment's Python).
flechefs_py_test(test_python_cache e2e/test_python_cache.py LABELS python ssh)
flechefs_py_test(test_python_save e2e/test_python_save.py LABELS python server)
if(TEST test_python_save)
	set_tests_properties(test_python_save PROPERTIES TIMEOUT 600)
endif()
