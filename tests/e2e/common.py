"""common.py: helpers shared by every Python end-to-end test of flechefs.

Where the fixtures are (and whether to skip or fail when they are missing), where the
built programs are, temporary writable copies of fixture caches, the stored pickle
stream of a fixture file, running a command with a timeout, and a tiny check
collector so that one test script reports every failed expectation and then exits
non-zero. Tests exit 77 to say they skipped, with the reason on stdout.

Environment (set by ctest through flechefs_py_test):
  FLECHEFS_FIXTURES  the real-cache fixture directory
  FLECHEFS_SOURCE    the source tree
  FLECHEFS_BUILD     the build tree holding server/flechefs-server, fusefs/flechefs
  FLECHEFS_PYENV     the virtual environment with the real fleche from PyPI
                     (scripts/pyenv.sh; ./run-tests makes it in build/pyenv)
  CI=true            a missing fixture is a failure instead of a skip
"""

import contextlib
import gzip
import hashlib
import hmac
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FLECHEFS_SOURCE") or os.path.dirname(os.path.dirname(HERE))
CACHE_NAMES = ("files", "pickle_sql", "signed", "gzip")


def in_ci():
    return os.environ.get("CI", "").lower() == "true"


def skip(reason):
    """Ends the test as skipped (exit 77), printing why."""
    print("SKIP: " + reason, flush=True)
    sys.exit(SKIP)


def fail(reason):
    print("FAIL: " + reason, flush=True)
    sys.exit(1)


def skip_or_fail(reason):
    """Skips, except under CI=true where a missing prerequisite is a failure."""
    if in_ci():
        fail(reason + " (CI=true: a missing prerequisite is a failure)")
    skip(reason)


def fixtures_dir():
    """The real-cache fixture directory; skips (or fails under CI) when missing."""
    path = os.environ.get("FLECHEFS_FIXTURES") or os.path.join(
        SOURCE, "tests", "fixtures", "real-cache")
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "EXPECTED.json")):
        skip_or_fail("no fixture cache at '%s'" % path)
    return path


def expected():
    """EXPECTED.json of the fixture, parsed."""
    with open(os.path.join(fixtures_dir(), "EXPECTED.json"), encoding="utf-8") as f:
        return json.load(f)


def secret_key_hex():
    return expected()["secret_key_hex_for_cache_signed"]


def build_dir():
    path = os.environ.get("FLECHEFS_BUILD") or os.path.join(SOURCE, "build")
    return os.path.abspath(path)


def drop_caches():
    """Writes dirty pages back and drops the page cache and the dentry and inode
    caches, so that what runs next reads cold. Root only: OSError otherwise."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def proc_status_kib(pid, field):
    """A KiB figure of /proc/PID/status (field "VmRSS", "VmHWM", ...), or None when the
    process or the field is gone."""
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fleche_python():
    """The Python of the virtual environment holding the real fleche 0.22.2 (with
    cloudpickle, dill, numpy, msgpack, attrs); skips, or fails under CI, when it is
    missing (PyPI could not be reached when ./run-tests made it)."""
    env = os.environ.get("FLECHEFS_PYENV") or os.path.join(build_dir(), "pyenv")
    py = os.path.join(os.path.abspath(env), "bin", "python")
    if not os.access(py, os.X_OK):
        skip_or_fail("no Python environment with the real fleche at '%s' (./run-tests "
                     "makes it with pip from PyPI; was PyPI unreachable?)" % env)
    return py


def run_in_fleche_python(script):
    """Runs the test script again under fleche_python() unless it already runs there,
    and puts the source tree's Python package flechefs (python/) on sys.path."""
    if os.environ.get("FLECHEFS_TEST_IN_PYENV") != "1":
        py = fleche_python()
        env = dict(os.environ, FLECHEFS_TEST_IN_PYENV="1")
        os.execve(py, [py, os.path.abspath(script)] + sys.argv[1:], env)
    sys.path.insert(0, os.path.join(SOURCE, "python"))


def generate_caches(script, out, *args):
    """Runs the generator script (in this folder) with fleche_python() to write caches
    in out; returns the EXPECTED.json it writes there. Fails with its stderr."""
    r = subprocess.run([fleche_python(), os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      script), out] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if r.returncode != 0:
        fail("%s failed:\n%s" % (script, r.stderr.decode(errors="replace")))
    with open(os.path.join(out, "EXPECTED.json"), encoding="utf-8") as f:
        return json.load(f)


def binary(name):
    """The path of a built program (flechefs-server, flechefs, ...); fails when absent."""
    b = build_dir()
    for sub in ("server", "fusefs", "bench", "tests", ""):
        p = os.path.join(b, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    for root, _dirs, files in os.walk(b):
        if name in files:
            p = os.path.join(root, name)
            if os.access(p, os.X_OK):
                return p
    fail("program '%s' not found under '%s' (build it first)" % (name, b))
    return None


def _make_writable(path):
    for root, dirs, files in os.walk(path):
        os.chmod(root, os.stat(root).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR | stat.S_IRUSR)


def rmtree(path):
    """Removes a temp tree, even one holding read-only directories."""
    if not os.path.exists(path):
        return
    with contextlib.suppress(OSError):
        _make_writable(path)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(prefix="flechefs-test-"):
    """A fresh temporary directory, removed afterwards."""
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        rmtree(d)


@contextlib.contextmanager
def temp_copy(cache_name):
    """A writable copy of one fixture cache (e.g. "signed") in a temp dir, removed
    afterwards. Yields the copy's root (holding calls/ or calls.db, and values/)."""
    src = os.path.join(fixtures_dir(), cache_name)
    with temp_dir() as d:
        dst = os.path.join(d, cache_name)
        shutil.copytree(src, dst)
        _make_writable(dst)
        yield dst


def run(cmd, timeout=30, **kw):
    """subprocess.run with a timeout, capturing output (bytes)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, timeout=timeout, **kw)


def unwrap_file(data, key_hex=None):
    """The pickle stream fleche stored in a file's bytes: gunzipped when it starts
    with the gzip magic, and without its 64-hex HMAC trailer when key_hex is given
    (the trailer is checked; a wrong one raises ValueError)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if key_hex is not None:
        payload, sig = data[:-64], data[-64:]
        want = hmac.new(bytes.fromhex(key_hex), payload, hashlib.sha256).hexdigest()
        if sig.decode("ascii", "replace") != want:
            raise ValueError("bad signature")
        data = payload
    return data


def stored_value(cache_name, key, key_hex=None):
    """The pickle stream of a fixture value file."""
    with open(os.path.join(fixtures_dir(), cache_name, "values", key), "rb") as f:
        return unwrap_file(f.read(), key_hex)


class Checks:
    """Collects failed expectations; report() prints them and gives the exit code."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.count = 0

    def check(self, cond, what):
        self.count += 1
        if not cond:
            self.failures.append(what)
            print("FAIL: " + what, flush=True)
        return cond

    def equal(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got, want))

    def run(self, fn, *args):
        """Runs one test function; an exception counts as one failure."""
        try:
            fn(*args)
        except SystemExit:
            raise
        except Exception:  # noqa: BLE001 (report and go on with the next test)
            self.count += 1
            tb = traceback.format_exc()
            self.failures.append("%s raised:\n%s" % (fn.__name__, tb))
            print("FAIL: %s raised:\n%s" % (fn.__name__, tb), flush=True)

    def report(self):
        if self.failures:
            print("%s: %d of %d checks failed" % (self.name, len(self.failures), self.count))
            return 1
        if self.count == 0:
            print("%s: no checks ran" % self.name)
            return 1
        print("%s: all %d checks passed" % (self.name, self.count))
        return 0


def write_gzip_zeros(path, size, member=64 << 20):
    """Writes size bytes of zeros, gzip-compressed as members of `member` bytes (and
    one shorter one): a value file that inflates about 1000 times, cheap to make."""
    whole = gzip.compress(b"\0" * member, 6)
    with open(path, "wb") as f:
        for _ in range(size // member):
            f.write(whole)
        if size % member:
            f.write(gzip.compress(b"\0" * (size % member), 6))
