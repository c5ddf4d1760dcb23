"""bench-concurrency.py: fast requests behind a slow one, and the cold read throughput,
for flechefs-server and a baseline server side by side in one run. Run by hand, as
root (it drops the page cache), from the source tree after building:

    /usr/bin/python3 bench/bench-concurrency.py [--build build] [--baseline PATH]
        [--slow-mib 768] [--bomb-gib 2] [--fast 100] [--read-mib 1024] [--runs 3]

--baseline is another flechefs-server binary, for instance one built from main
(`git worktree add /tmp/main main && cmake -S /tmp/main -B /tmp/main/build && cmake
--build /tmp/main/build`); without it only this build's server is measured. It makes
a files-layout cache in a temporary directory with a gzip value inflating to
--slow-mib MiB, a gzip bomb inflating to --bomb-gib GiB (0: none), --fast small values
and a --read-mib MiB plain value, then for each server, in interleaved rounds, each
on a fresh server process:

  1. the slow value's first stat_value (it is inflated) sent, then --fast stat_values
     of small values pipelined right behind it: each fast request's latency (from
     sending it to its answer), and whether all were answered before the slow one;
     target: every fast request under 10 ms;
  2. the same behind the bomb's first stat_value (beyond the server's --gunzip-max
     it is EFBIG; a baseline without that limit inflates it whole);
  3. for reference, the same behind a fast request (what the machine's load alone
     costs: the latencies are measured by the Python client, scheduling included);
  4. cold `cat` of the plain value through a fresh mount using that server
     (`-o server=`), page cache dropped: target unchanged from the baseline.

Figures are the median (and range) over --runs rounds; a target is met when the
median is.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
import client  # noqa: E402  (the tests' protocol client; Debian's python3-msgpack)
import common  # noqa: E402

MIB = 1 << 20


def key_of(name):
    return hashlib.sha256(name.encode()).hexdigest()


def make_cache(root, a):
    vdir = os.path.join(root, "values")
    os.makedirs(os.path.join(root, "calls"))
    os.makedirs(vdir)
    keys = {"slow": key_of("slow"), "bomb": key_of("bomb"), "read": key_of("read"),
            "fast": [key_of("fast %d" % i) for i in range(a.fast)]}
    common.write_gzip_zeros(os.path.join(vdir, keys["slow"]), a.slow_mib * MIB)
    if a.bomb_gib:
        common.write_gzip_zeros(os.path.join(vdir, keys["bomb"]), a.bomb_gib << 30)
    for i, k in enumerate(keys["fast"]):
        with open(os.path.join(vdir, k), "wb") as f:
            f.write(b"\x80\x04K%c." % (i % 256))
    chunk = os.urandom(MIB)
    with open(os.path.join(vdir, keys["read"]), "wb") as f:
        for _ in range(a.read_mib):
            f.write(chunk)
    return keys


def behind_slow(server, root, slow, fast, tmpdir):
    """Sends stat_value(slow) and then every stat_value(fast) at once; returns the fast
    latencies (s), the slow one's time (s), how many fast answers came after it, and
    the slow answer's error name (or None)."""
    with client.Server(server, ["--serve", "--root", root],
                       extra_env={"TMPDIR": tmpdir}, timeout=600) as s:
        s.hello()
        reqs = [("stat_value", [slow, None])] + [("stat_value", [k, None]) for k in fast]
        ids = [s.new_id() for _ in reqs]
        data = b"".join(s.request_bytes(m, p, i) for i, (m, p) in zip(ids, reqs))
        t0 = time.perf_counter()
        s.send_raw(data)  # 101 small frames: far below the pipe's size
        got = {}
        order = []
        while len(got) < len(ids):
            i, e, _ = s.recv_any()
            got[i] = (time.perf_counter() - t0, e)
            order.append(i)
        lat = [got[i][0] for i in ids[1:]]
        after = len(order) - 1 - order.index(ids[0])
        err = got[ids[0]][1]
        return lat, got[ids[0]][0], after, err.get("name") if err else None


def cold_cat(flechefs, server, root, key, size):
    mp = tempfile.mkdtemp(prefix="bench-conc-mnt-")
    try:
        subprocess.run([flechefs, "-o", "server=" + server, root, mp], check=True)
        time.sleep(0.3)  # the readahead is raised just after the kernel's INIT
        common.drop_caches()
        t = time.perf_counter()
        subprocess.run(["cat", os.path.join(mp, "values", key)], check=True,
                       stdout=subprocess.DEVNULL)
        return size / (time.perf_counter() - t)
    finally:
        subprocess.run(["fusermount3", "-u", mp])
        for _ in range(100):
            if not os.path.ismount(mp):
                break
            time.sleep(0.05)
        else:
            subprocess.run(["fusermount3", "-uz", mp])
        os.rmdir(mp)


def med(xs, fmt):
    return "%s (%s..%s)" % (fmt % statistics.median(xs), fmt % min(xs), fmt % max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--baseline", help="another flechefs-server to compare with")
    ap.add_argument("--slow-mib", type=int, default=768)
    ap.add_argument("--bomb-gib", type=int, default=2)
    ap.add_argument("--fast", type=int, default=100)
    ap.add_argument("--read-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-concurrency: run as root (it drops the page cache)")
    flechefs = os.path.join(a.build, "fusefs", "flechefs")
    servers = [("this build", os.path.join(a.build, "server", "flechefs-server"))]
    if a.baseline:
        servers.append(("baseline", os.path.abspath(a.baseline)))
    for _, p in servers + [("daemon", flechefs)]:
        if not os.access(p, os.X_OK):
            sys.exit("bench-concurrency: no '%s': build first" % p)
    tmp = tempfile.mkdtemp(prefix="bench-conc-")
    try:
        root = os.path.join(tmp, "cache")
        tmpdir = os.path.join(tmp, "tmp")
        os.makedirs(tmpdir)
        print("making the cache in %s ..." % tmp, flush=True)
        keys = make_cache(root, a)
        # the reference: behind a request as fast as the others (the machine's own
        # latency for that many pipelined requests, scheduling delays included)
        slows = [("nothing slow", keys["fast"][0]),
                 ("%d MiB gzip value" % a.slow_mib, keys["slow"])]
        if a.bomb_gib:
            slows.append(("%d GiB gzip bomb" % a.bomb_gib, keys["bomb"]))
        res = {name: {"cat": []} for name, _ in servers}
        for r in range(a.runs):
            for name, server in servers:
                for what, slow in slows:
                    lat, slow_s, after, err = behind_slow(server, root, slow, keys["fast"],
                                                          tmpdir)
                    res[name].setdefault(what, []).append((lat, slow_s, after, err))
                res[name]["cat"].append(cold_cat(flechefs, server, root, keys["read"],
                                                 a.read_mib * MIB))
            print("round %d of %d done" % (r + 1, a.runs), flush=True)
        print()
        print("%-34s %-14s %-30s %-22s %s" % ("", "server", "measured (median, range)",
                                              "target", ""))
        for what, slow in slows:
            for name, _ in servers:
                runs = res[name][what]
                worst = [max(lat) * 1e3 for lat, _, _, _ in runs]
                medl = [statistics.median(lat) * 1e3 for lat, _, _, _ in runs]
                slow_s = [s for _, s, _, _ in runs]
                after = max(x for _, _, x, _ in runs)
                errs = sorted({str(e) for _, _, _, e in runs})
                reference = slow == keys["fast"][0]
                print("%-34s %-14s %-30s %-22s %s" % (
                    "%d fast behind %s: slowest" % (a.fast, what), name,
                    med(worst, "%.1f ms"), "(reference)" if reference else "< 10 ms each",
                    "" if reference else
                    "ok" if statistics.median(worst) < 10 else "MISSED"))
                print("%-34s %-14s %-30s" % ("  median fast request", name, med(medl, "%.2f ms")))
                print("%-34s %-14s %-30s %s" % (
                    "  the slow request itself", name, med(slow_s, "%.2f s"),
                    "answer: %s; fast answers after it: %d" % ("/".join(errs), after)))
        for name, _ in servers:
            print("%-34s %-14s %-30s %-22s" % (
                "cold cat, %d MiB, through a mount" % a.read_mib, name,
                med([x / 1e6 for x in res[name]["cat"]], "%.0f MB/s"),
                "unchanged" if len(servers) > 1 else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
