"""mountlib.py: mounting and unmounting flechefs in end-to-end tests.

Every wait is bounded and every mount is removed in a finally block (fusermount3 -u,
then the lazy -uz), so that a bug in the daemon can never leave a dead mount point
or hang the test suite. Tests need /dev/fuse and fusermount3 (or root); without them
they skip (or fail under CI=true).
"""

import atexit
import contextlib
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time

import common


def require_fuse():
    """Skips (or fails under CI) when this machine cannot mount FUSE filesystems."""
    if not os.path.exists("/dev/fuse"):
        common.skip_or_fail("no /dev/fuse: cannot mount FUSE filesystems here")
    if not shutil.which("fusermount3") and os.geteuid() != 0:
        common.skip_or_fail("neither fusermount3 nor root: cannot mount")


def flechefs():
    return common.binary("flechefs")


def server():
    return common.binary("flechefs-server")


def is_mounted(mp):
    mp = os.path.realpath(mp)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            if line.split()[4] == mp:
                return True
    return False


def unmount(mp):
    """Removes the mount, lazily when it is busy; never raises."""
    for args in (["-u"], ["-uz"]):
        if not is_mounted(mp):
            return
        with contextlib.suppress(Exception):
            subprocess.run(["fusermount3"] + args + [mp], timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if not is_mounted(mp):
                return
            time.sleep(0.05)
    if is_mounted(mp):
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", mp], timeout=10)


def pids_where(match):
    """PIDs of the processes whose command line (a list of bytes) match accepts."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and match(argv):
            pids.append(int(d))
    return pids


def daemon_pids(mp):
    """PIDs of flechefs processes whose command line names the mount point."""
    mp = os.path.realpath(mp)
    return pids_where(lambda argv: os.path.basename(argv[0]) == b"flechefs" and any(
        os.path.realpath(a.decode(errors="replace")) == mp for a in argv[1:] if a))


def children(pid):
    """Direct children of a process (all its threads)."""
    out = []
    with contextlib.suppress(OSError):
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    return out


def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


_state_home = []


def daemon_env(env=None):
    """os.environ updated with env, with XDG_STATE_HOME (where a detached daemon
    without syslog writes its log) in a temporary directory of this test run unless
    env names one: tests never write into the real home."""
    e = dict(os.environ)
    if env:
        e.update(env)
    if not (env and "XDG_STATE_HOME" in env):
        if not _state_home:
            _state_home.append(tempfile.mkdtemp(prefix="flechefs-state-"))
            atexit.register(shutil.rmtree, _state_home[0], True)
        e["XDG_STATE_HOME"] = _state_home[0]
    return e


def mount(source, mp, opts=(), env=None, timeout=30):
    """Runs flechefs (daemonizing) and returns the CompletedProcess."""
    e = daemon_env(env)
    return common.run([flechefs()] + list(opts) + [source, mp], timeout=timeout, env=e)


def errno_of(fn):
    """The errno fn() fails with (OSError), or 0 when it succeeds."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def try_mount(source, opts, env=None, timeout=60):
    """Mounts on a fresh directory, lists calls/ and unmounts; returns (exit status,
    stderr text, listing of calls/ or None when nothing was mounted)."""
    with common.temp_dir("flechefs-mnt-") as mp:
        try:
            r = mount(source, mp, opts, env=env, timeout=timeout)
            listing = None
            if r.returncode == 0 and is_mounted(mp):
                listing = os.listdir(os.path.join(mp, "calls"))
            return r.returncode, r.stderr.decode(errors="replace"), listing
        finally:
            unmount(mp)


@contextlib.contextmanager
def mounted(source, opts=(), env=None):
    """Mounts source on a fresh directory; yields the mount point; always unmounts."""
    mp = tempfile.mkdtemp(prefix="flechefs-mnt-")
    try:
        r = mount(source, mp, opts, env)
        if r.returncode != 0 or not is_mounted(mp):
            raise AssertionError("mount of '%s' failed (%d): %s" % (
                source, r.returncode, r.stderr.decode(errors="replace")))
        yield mp
    finally:
        unmount(mp)
        for pid in daemon_pids(mp):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.rmdir(mp)


@contextlib.contextmanager
def foreground(source, opts=(), env=None, log=None):
    """Runs flechefs -f in the background; yields (Popen, mount point) once mounted.
    log: an open file for the daemon's standard error (its log) instead of a pipe
    (use it with -d, whose output would fill a pipe nobody reads)."""
    mp = tempfile.mkdtemp(prefix="flechefs-mnt-")
    e = daemon_env(env)
    p = subprocess.Popen([flechefs(), "-f"] + list(opts) + [source, mp], env=e,
                         stdout=subprocess.PIPE if log is None else subprocess.DEVNULL,
                         stderr=subprocess.PIPE if log is None else log)
    try:
        if not wait_for(lambda: is_mounted(mp) or p.poll() is not None, 20):
            raise AssertionError("flechefs -f did not mount within 20 s")
        if not is_mounted(mp):
            raise AssertionError("flechefs -f exited: %s" % (
                p.stderr.read().decode(errors="replace") if p.stderr else "(see its log)"))
        yield p, mp
    finally:
        unmount(mp)
        with contextlib.suppress(Exception):
            p.wait(timeout=10)
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.rmdir(mp)


def _tag_float(d):
    if set(d) == {"$float"}:
        return float(d["$float"])
    return d


class Float(float):
    """A float read from JSON text (so that tests see 9.0 was written with a point)."""


def load_json_text(text):
    """Parses call.json: floats stay Float, ints stay int, {"$float": ...} become floats."""
    def pf(s):
        return Float(s)

    def pi(s):
        return int(s)

    return json.loads(text, parse_float=pf, parse_int=pi, object_hook=_tag_float,
                      parse_constant=lambda c: (_ for _ in ()).throw(ValueError("bare " + c)))


def same(a, b):
    """Deep equality that tells ints from floats and NaN equals NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a.keys()) == set(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def expect_errno(fn, want):
    """Runs fn; returns the errno it raised (None when it succeeded)."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


ERRNO = errno
