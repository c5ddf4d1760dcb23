"""test_python_fleche_suite.py: fleche's own tests of caches in general, from its
distribution on PyPI (the sdist of the fleche scripts/pyenv.sh pins, which ships
tests/), run against flechefs.FlechefsCache.

fleche's tests hand a cache to a test through the pytest fixtures `clean_cache` and
`file_cache` (tests/fixtures.py: a Cache on memory or pickle file storages); here
both are a FlechefsCache on a fresh cache directory served by flechefs-server. Only
the tests taking such a fixture that use nothing but what every BaseCache offers run
(APPLY, below); the others taking one reach into fleche's Cache itself (its values
and calls storages, its lock mixin, its digest migration) or pickle the cache into
worker processes. pytest and hypothesis (which fleche's tests import) are installed
with pip into a folder of their own. PyPI unreachable: a skip, except under
CI=true, where it is a failure.
"""

import os
import re
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

T = common.Checks("python_fleche_suite")
PYTEST = ("pytest==8.3.5", "hypothesis==6.131.0")
APPLY = (
    "tests/unit/caches/test_operation_context_cache.py::test_cache_instance_is_operation_context",
    "tests/unit/caches/test_operation_context_cache.py::test_concurrent_saves_are_thread_safe",
    "tests/unit/caches/test_operation_context_cache.py::test_concurrent_save_load_round_trip",
    "tests/unit/fleche/test_dataclass_input.py::test_dataclass_input",
)

FIXTURES = '''

# ---- flechefs: the caches fleche's tests are given are FlechefsCaches


def _flechefs_cache(tmp_path, template):
    from flechefs import FlechefsCache
    root = tmp_path / ("flechefs-" + template)
    (root / "values").mkdir(parents=True)
    (root / "calls").mkdir()
    return FlechefsCache(root=str(root), server=os.environ["FLECHEFS_TEST_SERVER"],
                         serializer=template)


@pytest.fixture
def clean_cache(tmp_path):
    cache = _flechefs_cache(tmp_path, "cloudpickle")
    yield cache
    cache.close()


@pytest.fixture
def file_cache(tmp_path):
    cache = _flechefs_cache(tmp_path, "pickle")
    yield cache
    cache.close()
'''


def fleche_pin():
    with open(os.path.join(common.SOURCE, "scripts", "pyenv.sh"), encoding="utf-8") as f:
        return re.search(r"\bfleche==(\S+)", f.read()).group(1)


def main():
    py = common.fleche_python()
    server = common.binary("flechefs-server")
    version = fleche_pin()
    with common.temp_dir() as d:
        r = common.run([py, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--no-binary", ":all:", "--no-deps", "-d", d,
                        "fleche==" + version], timeout=600)
        if r.returncode != 0:
            common.skip_or_fail("pip download of fleche %s's sdist failed:\n%s"
                                % (version, r.stderr.decode(errors="replace")))
        deps = os.path.join(d, "deps")
        r = common.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--target", deps] + list(PYTEST), timeout=600)
        if r.returncode != 0:
            common.skip_or_fail("pip install of %s failed:\n%s"
                                % (" ".join(PYTEST), r.stderr.decode(errors="replace")))
        with tarfile.open(os.path.join(d, "fleche-%s.tar.gz" % version)) as tar:
            members = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and
                       not os.path.isabs(m.name) and ".." not in m.name.split("/")]
            tar.extractall(d, members=members)
        top = os.path.join(d, "fleche-" + version)
        shipped = sorted(os.path.relpath(os.path.join(root, f), top)
                         for root, _dirs, files in os.walk(os.path.join(top, "tests"))
                         for f in files if f.startswith("test_"))
        print("fleche %s ships %d test files" % (version, len(shipped)))
        T.check(len(shipped) > 0, "the sdist ships tests")
        with open(os.path.join(top, "tests", "conftest.py"), "a", encoding="utf-8") as f:
            f.write("\nimport os\nimport pytest\n" + FIXTURES)
        # fleche itself from the environment (not the sdist's src/), flechefs from here
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [deps, os.path.join(common.SOURCE, "python"), top]),
            FLECHEFS_TEST_SERVER=server, HOME=d)
        r = common.run([py, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q",
                        "--import-mode=importlib"] + list(APPLY), timeout=600, cwd=top,
                       env=env)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        print(out)
        for test in APPLY:
            T.check(re.search(r"^PASSED %s\b" % re.escape(test), out, re.M),
                    "fleche's %s passes with FlechefsCache" % test)
        T.equal(r.returncode, 0, "pytest's exit status")
    sys.exit(T.report())


if __name__ == "__main__":
    main()
