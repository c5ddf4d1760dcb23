"""test_server_concurrency.py: one slow request does not hold up the others.

A copy of the files fixture whose values/ also holds a gzip bomb (2 GiB of zeros in 2
MB of gzip members) and small values. The first stat_value of the bomb inflates it
(slow: the server's limit, --gunzip-max, default 1 GiB, is written to a temporary file
before it gives up with EFBIG); 100 requests sent right behind it must all be answered
before it is. The temporary space the server holds meanwhile stays within the limit
(TMPDIR is watched through /proc/PID/fd), asking again is EFBIG without inflating
again, two stat_values of the bomb at once inflate it once, a value under a smaller
--gunzip-max is EFBIG and under a larger one served whole, hello is still the first
request, a client that reads no answer for a while finds the server's memory bounded
and then every answer, and through a mount, other values (already looked up: the
kernel makes lookups in one directory wait for each other) and calls are read while
the bomb's first access is under way; the bomb itself stats and reads as EFBIG.
"""

import errno
import gzip
import hashlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mountlib as ml  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_concurrency")
SERVER = common.binary("flechefs-server")
MIB = 1 << 20
GUNZIP_MAX_DEFAULT = 1 << 30
BOMB_SIZE = 2 << 30
NFAST = 100


def key_of(name):
    return hashlib.sha256(name.encode()).hexdigest()


def make_cache(root):
    """Adds the bomb, NFAST small values and a 5 MiB gzip value to the cache at root."""
    vdir = os.path.join(root, "values")
    bomb = key_of("bomb")
    common.write_gzip_zeros(os.path.join(vdir, bomb), BOMB_SIZE)
    small = {}
    for i in range(NFAST):
        k = key_of("small %d" % i)
        small[k] = b"\x80\x04K%c." % (i % 256)
        with open(os.path.join(vdir, k), "wb") as f:
            f.write(small[k])
    mid = key_of("five mib")
    with open(os.path.join(vdir, mid), "wb") as f:
        f.write(gzip.compress(b"x" * (5 * MIB)))
    return bomb, small, mid


class TmpWatch:
    """Polls the bytes a process holds in files under tmpdir (open or deleted)."""

    def __init__(self, pid, tmpdir):
        self.pid = pid
        self.tmpdir = os.path.realpath(tmpdir)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def held(self):
        total = 0
        fddir = "/proc/%d/fd" % self.pid
        try:
            names = os.listdir(fddir)
        except OSError:
            return 0
        for n in names:
            p = os.path.join(fddir, n)
            try:
                if os.readlink(p).startswith(self.tmpdir + "/"):
                    total += os.stat(p).st_size
            except OSError:
                pass
        return total

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.held())
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak


def err_name(err):
    return err.get("name") if isinstance(err, dict) else None


def test_fast_answered_first(root, bomb, small, tmpdir):
    """The bomb's stat_value first, then NFAST stat_values and contains behind it."""
    with Server(SERVER, ["--serve", "--root", root], extra_env={"TMPDIR": tmpdir}) as s:
        s.hello()
        watch = TmpWatch(s.proc.pid, tmpdir)
        order = []
        slow = s.send("stat_value", bomb, None)
        fast = {}
        for i, k in enumerate(small):
            fast[s.send("stat_value", k, None)] = k
            if i % 10 == 0:
                fast[s.send("contains", k[:8])] = None
        answers = {}
        t0 = time.monotonic()
        while len(answers) < len(fast) + 1:
            i, e, r = s.recv_any()
            answers[i] = (e, r, time.monotonic() - t0)
            order.append(i)
        peak = watch.finish()
        T.check(order.index(slow) == len(order) - 1,
                "every fast request answered before the bomb's stat_value (the bomb's "
                "answer came %d of %d, after %.2f s)"
                % (order.index(slow) + 1, len(order), answers[slow][2]))
        for i, k in fast.items():
            e, r, _ = answers[i]
            if k is None:
                T.equal((e, r), (None, False), "contains of a value key's prefix")
            else:
                T.check(e is None and r["size"] == len(small[k]),
                        "stat_value of a small value: %r %r" % (e, r))
        e, r, _ = answers[slow]
        T.equal(err_name(e), "EFBIG", "the bomb's stat_value")
        T.check(e is not None and "--gunzip-max" in (e.get("message") or ""),
                "the bomb's EFBIG names the limit: %r" % (e,))
        T.check(0 < peak <= GUNZIP_MAX_DEFAULT + MIB,
                "temporary space held while inflating the bomb is within --gunzip-max: "
                "peak %d bytes" % peak)
        T.equal(TmpWatch(s.proc.pid, tmpdir).finish(), 0,
                "no temporary file held after the bomb's EFBIG")
        # the same request again: EFBIG remembered, nothing inflated again
        watch = TmpWatch(s.proc.pid, tmpdir)
        e, _ = s.try_call("stat_value", bomb, None)
        T.equal(err_name(e), "EFBIG", "the bomb's second stat_value")
        T.equal(watch.finish(), 0, "the bomb's second stat_value inflates nothing")


def test_bomb_inflated_once(root, bomb, tmpdir):
    """Two stat_values of the bomb at once share one inflation."""
    with Server(SERVER, ["--serve", "--root", root], extra_env={"TMPDIR": tmpdir}) as s:
        s.hello()
        watch = TmpWatch(s.proc.pid, tmpdir)
        answers = s.pipeline([("stat_value", [bomb, None]), ("stat_value", [bomb, "pickle"])])
        peak = watch.finish()
        T.equal([err_name(e) for e, _ in answers], ["EFBIG", "EFBIG"],
                "two stat_values of the bomb at once")
        T.check(peak <= GUNZIP_MAX_DEFAULT + MIB,
                "two stat_values of the bomb at once inflate it once: peak %d bytes"
                % peak)


def test_gunzip_max(root, mid):
    with Server(SERVER, ["--serve", "--root", root, "--gunzip-max", "4M"]) as s:
        s.hello()
        e, _ = s.try_call("stat_value", mid, None)
        T.equal(err_name(e), "EFBIG", "a 5 MiB gzip value under --gunzip-max 4M")
    with Server(SERVER, ["--serve", "--root", root, "--gunzip-max", "8MiB"]) as s:
        s.hello()
        T.equal(s.call("stat_value", mid, None)["size"], 5 * MIB,
                "a 5 MiB gzip value under --gunzip-max 8MiB")
        data = s.call("load_value", mid, 5 * MIB - 3, 10, None)
        T.equal(data, b"xxx", "the end of that value")


def test_hello_first(root, small):
    """Pipelined requests around hello: those before it are EPROTO, those after it
    answered, whatever order the answers come in."""
    k = next(iter(small))
    with Server(SERVER, ["--serve", "--root", root]) as s:
        answers = s.pipeline([("stat_value", [k, None]), ("hello", [1, "tests"])]
                             + [("stat_value", [k, None])] * 20)
        T.equal(err_name(answers[0][0]), "EPROTO", "a request before hello")
        T.check(answers[1][0] is None, "hello: %r" % (answers[1][0],))
        T.check(all(e is None and r["size"] == len(small[k]) for e, r in answers[2:]),
                "requests pipelined behind hello answered")


def rss_bytes(pid):
    return (common.proc_status_kib(pid, "VmRSS") or 0) * 1024


def test_memory_bounded(root):
    """3000 load_values of 100 KiB sent while the client reads nothing for a second:
    the server stops reading its input (at most 256 requests in flight) and holds a
    bounded amount of answers, then answers every one of them."""
    key = key_of("eight mib")
    data = bytes(range(256)) * (32 * 1024)
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(data)
    n, size = 3000, 100 * 1024
    with Server(SERVER, ["--serve", "--root", root]) as s:
        s.hello()
        ids = [s.new_id() for _ in range(n)]
        out = b"".join(s.request_bytes("load_value", [key, (i * 4096) % (len(data) - size),
                                                      size, None], i) for i in ids)
        sender = threading.Thread(target=s.send_raw, args=(out,))
        sender.start()
        time.sleep(1.0)
        rss = rss_bytes(s.proc.pid)
        T.check(rss < 160 * MIB, "the server's memory while its answers are not read: "
                "%d MiB" % (rss // MIB))
        got = 0
        for _ in range(n):
            i, e, r = s.recv_any()
            off = ((i * 4096) % (len(data) - size))
            got += e is None and r == data[off:off + size]
        sender.join()
        T.equal(got, n, "answers to the load_values, with the right bytes")


def test_value_read_bounded(root):
    """A value of 128 MiB read whole, in the largest ranges (written from the value
    file itself) and in ranges too small for that (copied): the server's peak
    memory stays below a bound that does not grow with the value, as it lets go
    of the pages it has served."""
    key = key_of("one hundred twenty-eight mib")
    block = hashlib.sha256(b"block").digest() * (MIB // 32)
    size = 128 * MIB
    with open(os.path.join(root, "values", key), "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    want = hashlib.sha256(block * (size // len(block))).hexdigest()
    for label, step in (("ranges written from the file", None),
                        ("copied ranges", 64 * 1024)):
        with Server(SERVER, ["--serve", "--root", root]) as s:
            hello = s.hello()
            step = step or hello["max_read"]
            requests = [("load_value", [key, off, step, None])
                        for off in range(0, size, step)]
            h = hashlib.sha256()
            for i in range(0, len(requests), 64):
                for err, data in s.pipeline(requests[i:i + 64]):
                    T.check(err is None, "load_value: %r" % (err,))
                    h.update(data or b"")
            T.equal(h.hexdigest(), want, "the value's bytes, %s" % label)
            peak = common.proc_status_kib(s.proc.pid, "VmHWM") * 1024
            T.check(peak < 48 * MIB, "the server's peak memory after reading 128 MiB in "
                    "%s: %d MiB" % (label, peak // MIB))


def test_mount(root, bomb, small, tmpdir):
    """Through a mount: other values and calls are read while the bomb's first access
    runs; the bomb reads as EFBIG."""
    ml.require_fuse()
    others = list(small.items())[:30]
    with ml.mounted(root, ["-o", "cache_timeout=60"], env={"TMPDIR": tmpdir}) as mp:
        vdir = os.path.join(mp, "values")
        for k, want in others:
            T.equal(os.stat(os.path.join(vdir, k)).st_size, len(want), "stat of a value")
        done = {}

        def first_access():
            t0 = time.monotonic()
            try:
                with open(os.path.join(vdir, bomb), "rb") as f:
                    f.read(1)
                done["bomb"] = None
            except OSError as e:
                done["bomb"] = e.errno
            done["bomb_s"] = time.monotonic() - t0

        th = threading.Thread(target=first_access)
        th.start()
        time.sleep(0.2)  # the bomb's lookup and first stat_value are under way
        failures = []
        n = 0
        for k, want in others:
            try:
                with open(os.path.join(vdir, k), "rb") as f:
                    if f.read() != want:
                        failures.append("%s: wrong bytes" % k)
                n += 1
            except OSError as e:
                failures.append("%s: %s" % (k, e))
        calls = os.listdir(os.path.join(mp, "calls"))
        for c in calls:
            try:
                with open(os.path.join(mp, "calls", c, "call.json"), "rb") as f:
                    f.read()
                n += 1
            except OSError as e:
                failures.append("calls/%s/call.json: %s" % (c, e))
        others_done = "bomb" not in done
        th.join(timeout=120)
        T.equal(failures, [], "reads of other values and calls during the bomb's first access")
        T.check(calls and n == len(others) + len(calls) and others_done,
                "%d other values and %d calls read before the bomb's first access ended "
                "(it took %.2f s)" % (len(others), len(calls), done.get("bomb_s", -1)))
        T.equal(done.get("bomb"), errno.EFBIG, "reading the bomb through the mount")
        try:
            os.stat(os.path.join(vdir, bomb))
            got = None
        except OSError as e:
            got = e.errno
        T.equal(got, errno.EFBIG, "stat of the bomb through the mount")


def main():
    with common.temp_copy("files") as root:
        tmpdir = os.path.join(os.path.dirname(root), "tmp")
        os.makedirs(tmpdir)
        bomb, small, mid = make_cache(root)
        T.run(test_fast_answered_first, root, bomb, small, tmpdir)
        T.run(test_bomb_inflated_once, root, bomb, tmpdir)
        T.run(test_gunzip_max, root, mid)
        T.run(test_hello_first, root, small)
        T.run(test_memory_bounded, root)
        T.run(test_value_read_bounded, root)
        T.run(test_mount, root, bomb, small, tmpdir)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
