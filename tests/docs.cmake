# docs: the man pages lint clean and the README and --help agree (tests/e2e/test_docs.py).
flechefs_py_test(docs e2e/test_docs.py LABELS docs)
