"""test_mount_deadline.py: -o timeout bounds every system call, a streaming read's too.

A 64 MiB value is read through a mount with -o timeout=4, locally and over SSH (a
private sshd, sshd_fixture.py; skipped without one). Once the reader is 8 MiB in, the
server process is stopped (SIGSTOP: it neither answers nor dies). The kernel has
read-ahead requests in flight; when they fail it sends the reader's own read, and
then another: each would wait a deadline of its own, so that one read(2) took two or
three timeouts. Every read(2) must return (EIO) within the timeout and a margin,
with reads of 128 KiB (cat) and of 4 KiB (dd bs=4k). Once the server runs again
(SIGCONT), the same mount reads the value whole.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("mount_deadline")
TIMEOUT = 4
MARGIN = 2.5  # the timer's tick, a loaded machine: a bound, not a speed target (two
#               waits of the timeout, the failure it guards against, take 8 s)
SIZE = 64 << 20

READER = r'''
import json, os, sys, time
path, bs = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
got = 0
while got < (8 << 20):
    got += len(os.read(fd, 1 << 20))
print("ready", flush=True)
sys.stdin.readline()
longest, err = 0.0, None
t_go = time.monotonic()
while True:
    t0 = time.monotonic()
    try:
        b = os.read(fd, bs)
    except OSError as e:
        err = e.errno
        longest = max(longest, time.monotonic() - t0)
        break
    longest = max(longest, time.monotonic() - t0)
    if not b:
        break
    got += len(b)
print(json.dumps({"longest": longest, "errno": err, "bytes": got,
                  "total": time.monotonic() - t_go}), flush=True)
'''


def server_pids(root):
    """The flechefs-server processes serving root (local child or SSH remote)."""
    return ml.pids_where(lambda argv: os.path.basename(argv[0]) == b"flechefs-server" and
                         root.encode() in b" ".join(argv))


def stopped_read(mp, root, key, bs, what):
    """Reads values/key in steps of bs, stopping the server once 8 MiB are in; checks
    that no read(2) waited longer than the timeout and that the read failed."""
    path = os.path.join(mp, "values", key)
    p = subprocess.Popen([sys.executable, "-c", READER, path, str(bs)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stopped = []
    try:
        line = p.stdout.readline()
        T.equal(line.strip(), b"ready", "%s bs=%d: 8 MiB read before the stop" % (what, bs))
        stopped = server_pids(root)
        T.check(len(stopped) >= 1, "%s: the server process found" % what)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        p.stdin.write(b"go\n")
        p.stdin.flush()
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            T.check(False, "%s bs=%d: the reader still waits after 60 s" % (what, bs))
            return
        res = json.loads(out.decode().strip().splitlines()[-1])
        print("%s bs=%d: longest read(2) %.2f s, errno %r" % (what, bs, res["longest"],
                                                           res["errno"]), flush=True)
        T.equal(res["errno"], 5, "%s bs=%d: the read fails with EIO (%r)" % (what, bs, res))
        T.check(res["longest"] <= TIMEOUT + MARGIN,
                "%s bs=%d: no read(2) waits longer than the timeout of %d s "
                "(longest %.2f s, all %.2f s)" % (what, bs, TIMEOUT, res["longest"],
                                                  res["total"]))
    finally:
        for pid in stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        if p.poll() is None:
            p.kill()
            p.communicate()


def read_whole(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return e


def make_value(root, key):
    data = os.urandom(SIZE)
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def stop_and_recover(source, opts, root, keys, what, env=None):
    """For each read size, a fresh value and mount: the stopped read, then the whole
    value read once the server runs again (its late answers end the stall)."""
    for bs, key in zip((128 << 10, 4096), keys):
        want = make_value(root, key)
        with ml.mounted(source, opts + ["-o", "timeout=%d" % TIMEOUT], env=env) as mp:
            stopped_read(mp, root, key, bs, what)
            path = os.path.join(mp, "values", key)
            got = None
            for _ in range(20):
                got = read_whole(path)
                if got == want:
                    break
                time.sleep(0.5)
            T.equal(got, want, "%s bs=%d: read whole once the server runs again" % (what, bs))


def test_local(root):
    stop_and_recover(root, [], root, ["5109" * 16, "5110" * 16], "local")


def test_ssh(d, env, root):
    stop_and_recover("127.0.0.1:" + root, d.flechefs_opts() + ["-o", "server=" + ml.server()],
                     root, ["5111" * 16, "5112" * 16], "ssh", env)


def main():
    ml.require_fuse()
    with common.temp_copy("files") as root:
        T.run(test_local, root)
        if os.geteuid() == 0 and not sf.sshd_missing_reason():
            with common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as d:
                d.trust_host_key()
                T.run(test_ssh, d, sf.client_env(home), root)
        else:
            print("ssh part skipped: no sshd or not root")
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
