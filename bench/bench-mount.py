"""bench-mount.py: the speed figures of the flechefs mount, printed next to
their targets. Run by hand, as root (it drops the page cache), from the source tree
after building:

    /usr/bin/python3 bench/bench-mount.py [--build build] [--calls 100000] [--mib 1024]

It makes a SQL-layout cache with NCALLS calls and one value of MIB MiB (with
bench/bench-server-mkcache.py) and a local directory of NCALLS empty files in a
temporary directory, then measures:

  1. `ls -l calls/` through the mount (first listing, and again from the listing
     cache) against `ls -l` of the local directory: target within 3x;
  2. cold `cat` of the large value (page cache dropped, fresh mount, best of 3):
     target 1 GB/s; the same with -o nosplice (values copied through the daemon's
     memory instead of spliced from the server's pipe); with the value file already in
     the page cache (the daemon's own cost), and `cat` of the file itself for reference;
  3. reading the last byte of the value on a cold mount (ranges: only that is read);
  4. a repeated `stat` while the server is stopped (SIGSTOP): answered by the
     kernel cache, no round trip.

Everything is removed afterwards.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))

import common  # noqa: E402 (tests/e2e, on the path above)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd):
    t = time.perf_counter()
    sh(cmd + " > /dev/null")
    return time.perf_counter() - t


def mounted_pid(mp):
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(argv[0]) == b"flechefs" and mp.encode() in argv:
                return int(d)
    return None


def children(pid):
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, t)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def server_list_time(server, root):
    """Seconds flechefs-server takes to answer every page of list("calls", detail)."""
    import client  # the tests' protocol client (needs /usr/bin/python3's msgpack)
    with client.Server(server, ["--serve", "--root", root]) as s:
        s.hello()
        t = time.perf_counter()
        after = None
        while True:
            r = s.call("list", "calls", after, 10000, True)
            if r["complete"]:
                break
            after = r["keys"][-1]
        return time.perf_counter() - t


class Mount:
    def __init__(self, flechefs, root, mp, opts=()):
        self.mp = mp
        sh("%s %s %s %s" % (flechefs, " ".join(opts), root, mp))
        time.sleep(0.3)  # the readahead is raised just after the kernel's INIT

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mp])
        for _ in range(100):
            if not os.path.ismount(self.mp):
                return
            time.sleep(0.05)
        subprocess.run(["fusermount3", "-uz", self.mp])


def row(what, got, target, ok):
    print("%-58s %-22s %-22s %s" % (what, got, target, "ok" if ok else "MISSED"), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    flechefs = os.path.join(a.build, "fusefs", "flechefs")
    if os.geteuid() != 0:
        sys.exit("bench-mount: run as root (it drops the page cache)")
    if not os.access(flechefs, os.X_OK):
        sys.exit("bench-mount: no '%s': build first" % flechefs)
    tmp = tempfile.mkdtemp(prefix="bench-mount-")
    mounts = []
    try:
        root = os.path.join(tmp, "cache")
        local = os.path.join(tmp, "local")
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        print("making a cache of %d SQL calls and a %d MiB value ..." % (a.calls, a.mib), flush=True)
        key = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "bench-server-mkcache.py"),
                              root, str(a.calls), str(a.mib)], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
        os.mkdir(local)
        for i in range(a.calls):
            open(os.path.join(local, "%064x" % (i * 2654435761)), "w").close()
        size = os.path.getsize(os.path.join(root, "values", key))
        print("%-58s %-22s %-22s %s" % ("measure", "got", "target", ""))

        # 1. ls -l
        timed("ls -l " + local)
        t_local = min(timed("ls -l " + local) for _ in range(3))
        m = Mount(flechefs, root, mp)
        mounts.append(m)
        t_first = timed("ls -l %s/calls" % mp)
        t_again = min(timed("ls -l %s/calls" % mp) for _ in range(3))
        m.close()
        mounts.remove(m)
        t_list = server_list_time(os.path.join(a.build, "server", "flechefs-server"), root)
        row("ls -l of %d local files" % a.calls, "%.2f s" % t_local, "(reference)", True)
        row("the server's list with detail, all pages (no mount)", "%.2f s" % t_list,
            "(reference)", True)
        row("ls -l calls/ through flechefs, first listing", "%.2f s (%.1fx)" % (t_first, t_first / t_local),
            "within 3x", t_first <= 3 * t_local)
        row("ls -l calls/ through flechefs, listing cached", "%.2f s (%.1fx)" % (t_again, t_again / t_local),
            "within 3x", t_again <= 3 * t_local)

        # 2. cat of the value
        path = os.path.join(root, "values", key)
        common.drop_caches()
        t = timed("cat " + path)
        row("cold cat of the value file itself (%d MiB)" % a.mib, "%.0f MB/s" % (size / t / 1e6),
            "(reference)", True)
        for opts, what, target in (((), "cold cat through flechefs (caches dropped, best of 3)",
                                    ">= 1000 MB/s"),
                                   (("-o", "nosplice"), "  the same with -o nosplice (copied, 1 MiB reads)",
                                    "(reference)")):
            best = 0
            for _ in range(3):
                common.drop_caches()
                m = Mount(flechefs, root, mp, opts)
                mounts.append(m)
                t = timed("cat %s/values/%s" % (mp, key))
                best = max(best, size / t)
                m.close()
                mounts.remove(m)
            row(what, "%.0f MB/s" % (best / 1e6), target, best >= 1e9 or bool(opts))
        best = 0
        for _ in range(3):
            sh("cat %s > /dev/null" % path)
            m = Mount(flechefs, root, mp)
            mounts.append(m)
            t = timed("cat %s/values/%s" % (mp, key))
            best = max(best, size / t)
            m.close()
            mounts.remove(m)
        row("cold mount, value file in the page cache (best of 3)", "%.0f MB/s" % (best / 1e6),
            ">= 1000 MB/s", best >= 1e9)

        # 3. the last byte
        m = Mount(flechefs, root, mp)
        mounts.append(m)
        t0 = time.perf_counter()
        with open("%s/values/%s" % (mp, key), "rb") as f:
            f.seek(size - 1)
            last = f.read(1)
        t = time.perf_counter() - t0
        row("read the last byte of the value, cold", "%.1f ms" % (t * 1000), "not the whole value",
            len(last) == 1 and t < 0.5)

        # 4. repeated stat from the kernel cache, server stopped
        vpath = "%s/values/%s" % (mp, key)
        os.stat(vpath)
        os.stat("%s/calls" % mp)
        server = children(mounted_pid(mp))
        for p in server:
            os.kill(p, signal.SIGSTOP)
        try:
            n = 10000
            t0 = time.perf_counter()
            for _ in range(n):
                os.stat(vpath)
            t = time.perf_counter() - t0
        finally:
            for p in server:
                os.kill(p, signal.SIGCONT)
        row("repeated stat of a value, server stopped (%d)" % n, "%.1f us each" % (t / n * 1e6),
            "kernel cache", t / n < 0.001)
        m.close()
        mounts.remove(m)
    finally:
        for m in mounts:
            m.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
