"""test_mount_errors.py: flechefs's refusals and failures, on real mounts of a copy of
the "files" fixture cache: -o ro gives EROFS for every change; on a writable mount
creating, writing, renaming and removing values are EPERM and unlinking inside a call
folder succeeds without changing anything; mount failures (bad cache directory,
missing server, a server that prints text) are a message, a non-zero exit and no
mount; 8 parallel readers of different values get the right bytes; killing the server
in the middle of a read gives the reader EIO within seconds and the daemon exits.
"""

import errno
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time

import common
import mountlib as ml

T = common.Checks("mount_errors")


errno_of = ml.errno_of


def write_file(p):
    with open(p, "wb") as f:
        f.write(b"x")


def changes(mp, key, value):
    """Every kind of change, as (description, callable)."""
    d = os.path.join(mp, "calls", key)
    return [
        ("create in calls/", lambda: write_file(os.path.join(mp, "calls", "new"))),
        ("mkdir in calls/", lambda: os.mkdir(os.path.join(mp, "calls", "newdir"))),
        ("write call.json", lambda: write_file(os.path.join(d, "call.json"))),
        ("truncate call.json", lambda: os.truncate(os.path.join(d, "call.json"), 0)),
        ("chmod call.json", lambda: os.chmod(os.path.join(d, "call.json"), 0o600)),
        ("rename a call", lambda: os.rename(d, os.path.join(mp, "calls", "renamed"))),
        ("symlink in values/", lambda: os.symlink("x", os.path.join(mp, "values", "l"))),
        ("write a value", lambda: write_file(os.path.join(mp, "values", value))),
        ("utime a value", lambda: os.utime(os.path.join(mp, "values", value), (1, 1))),
    ]


def test_read_only(root, exp):
    key = exp["calls"][0]["key"]
    value = exp["values"][0]["digest"]
    with ml.mounted(root, ["-o", "ro"]) as mp:
        T.equal(oct(os.stat(os.path.join(mp, "calls")).st_mode & 0o777), oct(0o555),
                "ro: calls/ is 0555")
        T.equal(oct(os.stat(os.path.join(mp, "calls", key)).st_mode & 0o777), oct(0o555),
                "ro: calls/<key> is 0555")
        for what, fn in changes(mp, key, value) + [
                ("rmdir calls/<key>", lambda: os.rmdir(os.path.join(mp, "calls", key))),
                ("unlink call.json", lambda: os.unlink(os.path.join(mp, "calls", key, "call.json"))),
                ("unlink a value", lambda: os.unlink(os.path.join(mp, "values", value)))]:
            T.equal(errno_of(fn), errno.EROFS, "ro: " + what)
        r = common.run(["rm", "-rf", os.path.join(mp, "calls", key)])
        T.check(r.returncode != 0, "ro: rm -r fails")
        T.check(os.path.exists(os.path.join(root, "calls", key)), "ro: record still on disk")
        T.check(key in os.listdir(os.path.join(mp, "calls")), "ro: call still listed")


def test_writable(root, exp):
    key = exp["calls"][1]["key"]
    value = exp["values"][0]["digest"]
    with ml.mounted(root) as mp:
        for what, fn in changes(mp, key, value):
            T.check(errno_of(fn) in (errno.EPERM, errno.EROFS, errno.EACCES),
                    "rw: %s refused (%s)" % (what, errno_of(fn)))
        T.equal(errno_of(lambda: os.unlink(os.path.join(mp, "values", value))), errno.EPERM,
                "rw: unlink of a value is EPERM")
        T.check(os.path.exists(os.path.join(root, "values", value)), "rw: value kept on disk")
        T.equal(errno_of(lambda: os.unlink(os.path.join(mp, "calls", key, "call.json"))), 0,
                "rw: unlink inside a call folder succeeds")
        T.check(os.path.exists(os.path.join(root, "calls", key)), "rw: ... and changes nothing")
        T.check(os.path.isfile(os.path.join(mp, "calls", key, "call.json")),
                "rw: ... the file is still there")


def test_parallel(root, exp):
    with ml.mounted(root) as mp:
        vals = sorted(exp["values"], key=lambda v: -v["file"]["size"])[:8]
        results = {}

        def reader(k):
            with open(os.path.join(mp, "values", k), "rb") as f:
                results[k] = f.read()

        threads = [threading.Thread(target=reader, args=(v["digest"],)) for v in vals]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for v in vals:
            T.check(results.get(v["digest"]) == common.stored_value("files", v["digest"]),
                    "parallel reader of %s" % v["digest"][:8])


def test_kill_server(root):
    big = "ab" * 32
    with open(os.path.join(root, "values", big), "wb") as f:
        f.write(pickle.dumps(os.urandom(1 << 20) * 96, protocol=4))
    with ml.foreground(root) as (proc, mp):
        servers = ml.children(proc.pid)
        T.check(len(servers) == 1, "one server child (%r)" % servers)
        f = open(os.path.join(mp, "values", big), "rb")
        try:
            T.equal(len(f.read(1 << 20)), 1 << 20, "first MiB read")
            for pid in servers:
                os.kill(pid, signal.SIGKILL)
            t0 = time.time()
            err = None
            try:
                while f.read(1 << 20):
                    if time.time() - t0 > 20:
                        break
            except OSError as e:
                err = e.errno
            T.equal(err, errno.EIO, "reader gets EIO after the server is killed")
            T.check(time.time() - t0 < 10, "within seconds (%.1f s)" % (time.time() - t0))
        finally:
            f.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        T.check(proc.poll() is not None, "daemon exits after the server dies")
        T.check(ml.wait_for(lambda: not ml.is_mounted(mp), 10), "mount removed after the server dies")


def test_unmount_ends_daemon(root):
    mp = tempfile.mkdtemp(prefix="flechefs-mnt-")
    try:
        r = ml.mount(root, mp)
        T.equal(r.returncode, 0, "mount for the unmount test")
        pids = ml.daemon_pids(mp)
        T.equal(len(pids), 1, "one daemon process after detaching")
        servers = [c for p in pids for c in ml.children(p)]
        T.equal(len(servers), 1, "one server process")
        ml.unmount(mp)
        gone = lambda: not any(os.path.exists("/proc/%d/cmdline" % p) and
                               open("/proc/%d/cmdline" % p, "rb").read()
                               for p in pids + servers)
        T.check(ml.wait_for(gone, 10), "daemon and server exit after fusermount3 -u")
    finally:
        ml.unmount(mp)
        os.rmdir(mp)


def test_stable_inodes(root, exp):
    key = exp["calls"][2]["key"]
    paths = ["calls", "calls/" + key, "calls/%s/call.json" % key, "calls/%s/metadata" % key,
             "values/" + exp["values"][3]["digest"], "by-name"]
    seen = []
    for _ in range(2):
        with ml.mounted(root) as mp:
            seen.append([os.lstat(os.path.join(mp, p)).st_ino for p in paths])
    T.equal(seen[0], seen[1], "inode numbers are the same after a remount")
    T.equal(len(set(seen[0])), len(paths), "inode numbers differ between paths")


def test_failures(root):
    with tempfile.TemporaryDirectory() as tmp:
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        fake = os.path.join(tmp, "chatty-server")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho 'Welcome to the cluster!'\nexit 3\n")
        os.chmod(fake, 0o755)
        cases = [
            ("missing cache dir", [os.path.join(tmp, "nope"), mp], [], b"nope"),
            ("cache dir is a file", [fake, mp], [], b"not a directory"),
            ("missing server", [root, mp], ["-o", "server=" + os.path.join(tmp, "no-server")],
             b"no-server"),
            ("server printing text", [root, mp], ["-o", "server=" + fake],
             b"not a flechefs frame"),
            ("missing mount point", [root, os.path.join(tmp, "no-mnt")], [], b""),
        ]
        for what, pos, opts, needle in cases:
            try:
                r = common.run([ml.flechefs()] + opts + pos, timeout=30)
                T.check(r.returncode != 0, "%s: non-zero exit" % what)
                T.check(needle in r.stderr and r.stderr.startswith(b"flechefs: "),
                        "%s: message (%r)" % (what, r.stderr[:300]))
                T.check(not ml.is_mounted(mp), "%s: nothing mounted" % what)
            finally:
                ml.unmount(mp)
        r = common.run([ml.flechefs(), "-o", "server=" + fake, root, mp], timeout=30)
        T.check(b"status 3" in r.stderr, "server's exit status in the message (%r)" % r.stderr[:300])
    r = common.run([ml.flechefs(), "--version"])
    T.check(r.returncode == 0 and r.stdout.startswith(b"flechefs "), "--version")
    r = common.run([ml.flechefs(), "--help"])
    for opt in (b"-o ro", b"timeout=", b"cache_timeout=", b"negative_timeout=", b"server=",
                b"allow_other"):
        T.check(r.returncode == 0 and opt in r.stdout, "--help mentions %r" % opt)


def main():
    ml.require_fuse()
    e = common.expected()["caches"]["files"]
    with common.temp_copy("files") as root:
        T.run(test_read_only, root, e)
        T.run(test_writable, root, e)
        T.run(test_parallel, root, e)
        T.run(test_failures, root)
        T.run(test_unmount_ends_daemon, root)
        T.run(test_stable_inodes, root, e)
        T.run(test_kill_server, root)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
