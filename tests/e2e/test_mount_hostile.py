"""test_mount_hostile.py: flechefs against a misbehaving server, on real mounts of a
copy of the "files" fixture cache. The server is the real flechefs-server behind a
small proxy (written here) that rewrites its answers: the daemon must still answer
every request of a process reading the mount within about -o timeout, never hang it.

- errno: every error the server sends carries errno 600, which the kernel refuses in a
  reply (it only takes errors below 512); the daemon must still give an error.
- stall: the answer to a read of a large value stops in the middle of its bytes; the
  reader must get EIO within seconds, spliced (the default as root) or copied
  (-o nosplice).
- replay: every page of a listing is the first one again, never complete (a server
  that ignores `after`); ls must end (with an error) rather than list forever.
- mute: the server stops answering; rmdir of a listed call fails with EIO within
  about the timeout, not one timeout per request it would have sent.
- slow: every answer comes 1 s late; digests/<prefix> of a prefix shared by 40 values
  must not wait for one answer after another. Then every answer comes 2.5 s late,
  within the 3 s timeout: a digests/ lookup, which needs two requests in a row, must
  still be answered (EIO) within one timeout, not take two answers' time.
- slowstat: the stat_value that would give a compressed value's size comes after the
  deadline: stat fails rather than caching a size of 0.
- silent hello: a server that never answers hello makes flechefs fail with a message
  within about the timeout instead of waiting forever.
- deaf: the server stops reading its requests and its input pipe fills: no sender
  may wait in write past its deadline (the connection is dropped instead); the same
  with the server stopped (SIGSTOP), which no SIGTERM ends.
"""

import contextlib
import gzip
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time

import common
import mountlib as ml

T = common.Checks("mount_hostile")

PROXY = r'''
import os, queue, select, struct, subprocess, sys, threading, time
import msgpack

mode, real = sys.argv[1], sys.argv[2]
srv = subprocess.Popen([real] + sys.argv[3:], stdout=subprocess.PIPE,
                       stdin=subprocess.PIPE if mode == "deaf" else None)
inp, out = srv.stdout, sys.stdout.buffer


def forward_requests():
    # "deaf": requests pass through here, until the test says so; then nothing more
    # is read (a server stuck in a hung file system), from an input pipe made small
    # (F_SETPIPE_SZ, one page) so that it fills after a few dozen requests
    import fcntl
    fcntl.fcntl(0, 1031, 4096)
    flag = os.path.join(os.path.dirname(sys.argv[0]), "deaf")
    while not os.path.exists(flag):
        # the flag is looked at when requests come, before they are read
        if not select.select([0], [], [], 0.05)[0] or os.path.exists(flag):
            continue
        data = os.read(0, 4096)
        if not data:
            srv.stdin.close()
            return
        srv.stdin.write(data)
        srv.stdin.flush()
    p = select.poll()
    p.register(0, 0)  # POLLHUP only: the daemon closed its end (no read, no data taken)
    p.poll()
    os._exit(0)


if mode == "deaf":
    threading.Thread(target=forward_requests, daemon=True).start()


def read_exact(n):
    b = b""
    while len(b) < n:
        k = inp.read(n - len(b))
        if not k:
            sys.exit(0)
        b += k
    return b


held = queue.Queue()


def release():
    # "slow": every answer leaves 1 s after it arrived (answers to requests sent
    # together leave together): a server that is slow but alive
    while True:
        due, data = held.get()
        time.sleep(max(0.0, due - time.monotonic()))
        out.write(data)
        out.flush()


if mode == "slow":
    threading.Thread(target=release, daemon=True).start()

while True:
    (n,) = struct.unpack(">I", read_exact(4))
    payload = read_exact(n)
    msg = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if mode == "errno" and isinstance(msg[2], dict):
        msg[2]["errno"] = 600
        payload = msgpack.packb(msg, use_bin_type=True)
    if mode == "replay" and isinstance(msg[3], dict) and msg[3].get("keys"):
        # a listing that ignores `after`: the first page again and again, never complete
        first = first if "first" in globals() else msg[3]
        msg[3] = dict(first, complete=False)
        payload = msgpack.packb(msg, use_bin_type=True)
    if mode == "mute" and os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), "mute")):
        continue  # no answer at all once the test says so
    if mode == "stall" and isinstance(msg[3], bytes) and len(msg[3]) >= 65536:
        payload = msgpack.packb(msg, use_bin_type=True)
        out.write(struct.pack(">I", len(payload)) + payload[:len(payload) // 2])
        out.flush()
        # stalled until the daemon closes its end (at most 2 minutes): no process
        # is left behind by the test
        p = select.poll()
        p.register(out.fileno(), 0)  # POLLERR and POLLHUP are always reported
        p.poll(120000)
        sys.exit(0)
    if (mode == "slowstat" and isinstance(msg[3], dict) and "view" in msg[3] and
            os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), "slowstat"))):
        os.unlink(os.path.join(os.path.dirname(sys.argv[0]), "slowstat"))
        time.sleep(3)  # one stat_value answer late, and those after it behind it
    if mode == "slow" and os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), "slow")):
        with open(os.path.join(os.path.dirname(sys.argv[0]), "slow")) as f:
            delay = float(f.read() or "1")  # seconds, written by the test
        held.put((time.monotonic() + delay, struct.pack(">I", len(payload)) + payload))
        continue
    if mode == "slow":
        held.put((0.0, struct.pack(">I", len(payload)) + payload))  # keeps the order
        continue
    out.write(struct.pack(">I", len(payload)) + payload)
    out.flush()
'''


def proxied(tmp, mode):
    path = os.path.join(tmp, "proxy.py")
    with open(path, "w") as f:
        f.write(PROXY)
    return "server=/usr/bin/python3 %s %s %s" % (path, mode, ml.server())


def timed(code, timeout, mp):
    """Runs python code in a child; returns (seconds, stdout, or None when it was still
    waiting after timeout). A process whose request the daemon never answers cannot
    even be killed: the daemon is killed then, which fails its requests."""
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/python3", "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        out, _ = p.communicate(timeout=timeout)
        return time.monotonic() - t0, out
    except subprocess.TimeoutExpired:
        took = time.monotonic() - t0
        for pid in ml.daemon_pids(mp):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        p.kill()
        p.communicate(timeout=30)
        return took, None


def timed_call(expr, timeout, mp):
    """timed() of a child that prints the value of the Python expression expr, or
    minus the errno of the OSError it raises."""
    return timed("import os\ntry:\n    print(%s)\nexcept OSError as e:\n"
                 "    print(-e.errno)\n" % expr, timeout, mp)


def test_errno(root, exp):
    with tempfile.TemporaryDirectory() as tmp:
        with ml.mounted(root, ["-o", proxied(tmp, "errno"), "-o", "timeout=3"]) as mp:
            p = os.path.join(mp, "calls", "0000")
            took, out = timed_call("os.stat(%r) and 0" % p, 15, mp)
            T.check(out is not None, "errno 600: stat of calls/0000 hung (%.1f s)" % took)
            if out is not None:
                T.check(out.strip() not in (b"", b"0"), "errno 600: stat failed (%r)" % out)


def test_stall(root, exp, opts):
    value = "d8fd8952f84b9c0e305e6eb2f3a5e11a467d823e1d21af7aca879f7aff0f36bc"
    if not any(v["digest"] == value for v in exp["values"]):
        T.check(False, "the fixture lacks the 2 MiB value")
        return
    with tempfile.TemporaryDirectory() as tmp:
        with ml.mounted(root, ["-o", proxied(tmp, "stall"), "-o", "timeout=3"] + opts) as mp:
            p = os.path.join(mp, "values", value)
            took, out = timed_call("open(%r, 'rb').read() and 0" % p, 15, mp)
            T.check(out is not None, "stall %s: the read hung (%.1f s)" % (opts, took))
            if out is not None:
                T.check(out.strip() == b"-5", "stall %s: the read gave EIO (%r)" % (opts, out))


def test_replay(root, exp):
    with tempfile.TemporaryDirectory() as tmp:
        with ml.mounted(root, ["-o", proxied(tmp, "replay"), "-o", "timeout=3"]) as mp:
            for d in ("calls", "values", "by-name/" + exp["calls"][0]["name"]):
                p = os.path.join(mp, d)
                took, out = timed_call("len(os.listdir(%r))" % p, 15, mp)
                T.check(out is not None, "replayed pages: ls %s ended (%.1f s)" % (d, took))
                if out is None:
                    return


def test_mute_rmdir(root, exp):
    key = exp["calls"][0]["key"]
    with tempfile.TemporaryDirectory() as tmp:
        opts = ["-o", proxied(tmp, "mute"), "-o", "timeout=3", "-o", "cache_timeout=60"]
        with ml.mounted(root, opts) as mp:
            T.check(key in os.listdir(os.path.join(mp, "calls")), "mute: calls/ listed")
            open(os.path.join(tmp, "mute"), "w").close()
            p = os.path.join(mp, "calls", key)
            took, out = timed_call("os.rmdir(%r) or 0" % p, 15, mp)
            T.check(out is not None and took < 5.5,
                    "mute: rmdir answered within the timeout of 3 s (%.1f s)" % took)
            if out is not None:
                T.check(out.strip() == b"-5", "mute: rmdir gave EIO (%r)" % out)


def test_slow_digests(root):
    """digests/<prefix> of a prefix shared by 40 values, from a server that answers
    every request after 1 s: the daemon asks about all of them at once, so ls ends
    in a few seconds, not one second or more per candidate."""
    # 40 candidates, one of them ending in zeros (the key just below it borrows
    # across every digit), and the all-zero key alone under its prefix
    keys = ["abcd%060x" % (i * 7919) for i in range(40)]
    zero = "0" * 64
    for k in keys + [zero]:
        with open(os.path.join(root, "values", k), "wb") as f:
            f.write(b"\x80\x04K\x01.")  # pickle of 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            opts = ["-o", proxied(tmp, "slow"), "-o", "timeout=3"]
            with ml.mounted(root, opts) as mp:
                open(os.path.join(tmp, "slow"), "w").close()
                p = os.path.join(mp, "digests", "abcd")
                took, out = timed_call("sorted(os.listdir(%r))" % p, 60, mp)
                T.check(out is not None and took < 6,
                        "slow server: ls digests/abcd within twice the timeout (%.1f s)" % took)
                if out is not None:
                    T.equal(out.decode().strip(), repr(sorted(keys)),
                            "slow server: the 40 candidates listed")
                    targets = {os.readlink(os.path.join(p, k)) for k in keys[:3]}
                    T.equal(targets, {"../../values/" + k for k in keys[:3]},
                            "slow server: candidates link to their values")
                T.equal(os.readlink(os.path.join(mp, "digests", zero[:8])),
                        "../values/" + zero, "slow server: the all-zero key found")
    finally:
        for k in keys + [zero]:
            os.unlink(os.path.join(root, "values", k))


def test_slow_lookup(root):
    """Every answer 2.5 s late with a timeout of 3 s: each request alone is answered
    in time, but a lookup in digests/ needs two in a row (expand, then whether the
    key is a call or a value). The process must not wait 5 s: the lookup shares one
    deadline and fails with EIO by 3 s."""
    key = "face" + "0" * 60
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(b"\x80\x04K\x01.")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with ml.mounted(root, ["-o", proxied(tmp, "slow"), "-o", "timeout=3"]) as mp:
                with open(os.path.join(tmp, "slow"), "w") as f:
                    f.write("2.5")
                p = os.path.join(mp, "digests", key[:8])
                took, out = timed_call("os.readlink(%r)" % p, 30, mp)
                T.check(out is not None and took < 4.2,
                        "slow lookup: digests/%s answered within the 3 s timeout "
                        "(%.1f s)" % (key[:8], took))
                T.equal(out and out.strip(), b"-5", "slow lookup: EIO")
                os.unlink(os.path.join(tmp, "slow"))
                time.sleep(2.5)  # the late answers drain
                T.equal(os.readlink(p), "../values/" + key,
                        "slow lookup: found once the server answers in time")
    finally:
        os.unlink(os.path.join(root, "values", key))


def proxy_pids(tmp):
    """The proxies whose script lives in tmp (the daemon's children)."""
    script = os.path.join(tmp, "proxy.py").encode()
    return ml.pids_where(lambda argv: script in argv)


def test_deaf(root, stop):
    """A server that stops reading its requests, with an input pipe of one page: once
    the pipe is full, a sender would wait in write for good, holding the write lock
    every other sender needs. A write is bounded by its request's deadline: the
    connection is dropped (a local mount then ends) and every reader is answered.
    With stop, the server process is stopped (SIGSTOP) rather than deaf: the SIGTERM
    that dropping the connection sends cannot end it (as for a process stuck in a
    hung file system), and the blocked write must return all the same.
    Reads make the requests: the kernel sends many at once (lookups in one directory
    it sends one at a time with libfuse 3.14)."""
    what = "stopped server" if stop else "deaf server"
    keys = ["deaf%060x" % i for i in range(40)]
    data = pickle.dumps(bytes(1 << 20), protocol=4)
    for k in keys:
        with open(os.path.join(root, "values", k), "wb") as f:
            f.write(data)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with ml.mounted(root, ["-o", proxied(tmp, "deaf"), "-o", "timeout=1"]) as mp:
                paths = [os.path.join(mp, "values", k) for k in keys]
                for p in paths:
                    os.stat(p)  # looked up while the server still reads
                if stop:
                    for pid in proxy_pids(tmp):
                        os.kill(pid, signal.SIGSTOP)
                else:
                    open(os.path.join(tmp, "deaf"), "w").close()
                code = ("import os, threading\nerrs = []\n"
                        "def work(p):\n"
                        "    try:\n"
                        "        with open(p, 'rb') as f:\n"
                        "            f.read()\n"
                        "    except OSError as e:\n"
                        "        errs.append(e.errno)\n"
                        "ts = [threading.Thread(target=work, args=(p,)) for p in %r]\n"
                        "for t in ts:\n    t.start()\nfor t in ts:\n    t.join()\n"
                        "print(len(errs))\n" % (paths,))
                took, out = timed(code, 30, mp)
                T.check(out is not None,
                        "%s: 40 parallel reads all answered (%.1f s)" % (what, took))
                if out is not None:
                    T.equal(out.strip(), b"40", "%s: every read failed" % what)
                for pid in proxy_pids(tmp):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
    finally:
        for k in keys:
            os.unlink(os.path.join(root, "values", k))


def test_late_size(tmp_root):
    """A compressed value whose size the listing leaves out, and the stat_value that
    would tell it answered after the deadline: stat fails (EIO) rather than give a
    size of 0 that the kernel would keep for a day; once the server answers again,
    stat and read are whole."""
    root = os.path.join(tmp_root, "gz-late")
    os.makedirs(os.path.join(root, "values"))
    os.makedirs(os.path.join(root, "calls"))
    data = pickle.dumps(bytes(3 << 20), protocol=4)
    key = "ee" * 32
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(gzip.compress(data))
    with tempfile.TemporaryDirectory() as tmp:
        with ml.mounted(root, ["-o", proxied(tmp, "slowstat"), "-o", "timeout=1"]) as mp:
            path = os.path.join(mp, "values", key)
            T.equal(os.listdir(os.path.join(mp, "values")), [key], "late size: listed")
            open(os.path.join(tmp, "slowstat"), "w").close()
            took, out = timed_call("os.stat(%r).st_size" % path, 15, mp)
            T.equal(out and out.strip(), b"-5", "late size: the first stat fails with EIO")
            time.sleep(3)
            T.equal(os.stat(path).st_size, len(data), "late size: a later stat is exact")
            with open(path, "rb") as f:
                T.check(f.read() == data, "late size: the value reads whole")


def test_silent_hello(root):
    """A server that starts and never answers hello: a message and a non-zero exit
    within about the timeout, nothing mounted."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "silent-server")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nexec sleep 40\n")
        os.chmod(fake, 0o755)
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        t0 = time.monotonic()
        p = subprocess.Popen([ml.flechefs(), "-f", "-o", "server=" + fake, "-o", "timeout=2",
                              root, mp], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=15)
            T.check(p.returncode != 0 and err.startswith(b"flechefs: "),
                    "silent server: message and non-zero exit (%d, %r)" % (p.returncode, err[:200]))
            T.check(time.monotonic() - t0 < 10, "silent server: gave up within the timeout")
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            T.check(False, "silent server: flechefs still waiting for hello after 15 s")
        finally:
            ml.unmount(mp)
        T.check(not ml.is_mounted(mp), "silent server: nothing mounted")


def main():
    ml.require_fuse()
    e = common.expected()["caches"]["files"]
    with common.temp_copy("files") as root:
        T.run(test_errno, root, e)
        T.run(test_stall, root, e, [])
        T.run(test_stall, root, e, ["-o", "nosplice"])
        T.run(test_replay, root, e)
        T.run(test_mute_rmdir, root, e)
        T.run(test_slow_digests, root)
        T.run(test_slow_lookup, root)
        T.run(test_deaf, root, False)
        T.run(test_deaf, root, True)
        with tempfile.TemporaryDirectory() as tmp:
            T.run(test_late_size, tmp)
        T.run(test_silent_hello, root)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
