#!/usr/bin/env python3
"""bench-views.py: a benchmark (by hand, not a test) of flechefs-server's value views
at the server level, over pipes:

1. npy vs pickle: a float64 array of SIZE (default 1 GiB) written by
   examples/make-cache.py --big-array; both views read whole in 1 MiB ranges with
   WINDOW requests in flight; prints MB/s of each and the ratio (target: npy at least
   80% of pickle).
1b. The same through a mount, as the target states it (root, /dev/fuse): `cat` of
   values/<key>.npy against `cat` of values/<key> on the same mount, page cache
   dropped before each read, runs interleaved; skipped (with a note) without FUSE.
2. json render rate: a nested value of about 10 MB of JSON (a list of dicts holding
   ints, floats, strings and lists); stat_value renders it (a fresh server each run,
   so the json cache is cold); prints the JSON MB per second of render time (target:
   at least 50 MB/s).

usage: /usr/bin/python3 bench/bench-views.py [--build DIR] [--size BYTES] [--runs N]
       [--keep DIR]
Needs about SIZE bytes of free space in $TMPDIR.
"""

import argparse
import hashlib
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
import common  # noqa: E402
from client import Server  # noqa: E402

MIB = 1 << 20


def read_all(s, key, view, size, window):
    """Reads [0, size) in 1 MiB ranges, window requests at a time; returns bytes read."""
    off = 0
    total = 0
    while off < size:
        reqs = []
        for _ in range(window):
            if off >= size:
                break
            reqs.append(("load_value", [key, off, MIB, view]))
            off += MIB
        for err, res in s.pipeline(reqs):
            if err:
                raise RuntimeError("load_value %s: %r" % (view, err))
            total += len(res)
    return total


def cpu_seconds(pid):
    """user + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_npy(server, root, key, runs, window):
    """Wall-clock throughput (bounded by this Python client) and the server's own CPU
    time per GiB served, for both views, runs interleaved."""
    best, cpu = {}, {}
    with Server(server, ["--serve", "--root", root], timeout=600) as s:
        s.hello()
        sizes = {v: s.call("stat_value", key, v)["size"] for v in ("pickle", "npy")}
        read_all(s, key, "pickle", sizes["pickle"], window)  # warm the page cache
        for _ in range(runs):
            for view in ("pickle", "npy"):
                c = cpu_seconds(s.proc.pid)
                t = time.monotonic()
                n = read_all(s, key, view, sizes[view], window)
                dt = time.monotonic() - t
                c = cpu_seconds(s.proc.pid) - c
                assert n == sizes[view], (n, sizes[view])
                best[view] = max(best.get(view, 0), n / dt / 1e6)
                cpu[view] = min(cpu.get(view, 1e9), c / (n / (1 << 30)))
        for view in ("pickle", "npy"):
            print("  %-6s %12d bytes  best %8.1f MB/s  server CPU %.3f s per GiB"
                  % (view, sizes[view], best[view], cpu[view]), flush=True)
    ratio = best["npy"] / best["pickle"]
    print("  npy / pickle = %.1f%% of the throughput (target >= 80%%)" % (100 * ratio))
    return ratio


def drop_caches():
    """common.drop_caches; False when not permitted (the figures are then warm)."""
    try:
        common.drop_caches()
        return True
    except OSError:
        return False


def bench_mount_cat(build, root, key, runs):
    """cat of the npy view against cat of the raw value on one mount (the views' target)."""
    os.environ["FLECHEFS_BUILD"] = os.path.abspath(build)
    import mountlib as ml
    flechefs = os.path.join(build, "fusefs", "flechefs")
    if not (os.path.exists("/dev/fuse") and os.access(flechefs, os.X_OK)):
        print("  skipped: no /dev/fuse or no flechefs under the build directory")
        return None
    best = {}
    with ml.mounted(root) as mp:
        names = {"raw": os.path.join(mp, "values", key),
                 "npy": os.path.join(mp, "values", key + ".npy")}
        for _ in range(runs):
            for view, path in names.items():
                cold = drop_caches()
                t = time.monotonic()
                r = subprocess.run("cat '%s' > /dev/null" % path, shell=True)
                dt = time.monotonic() - t
                assert r.returncode == 0, path
                n = os.stat(path).st_size
                best[view] = max(best.get(view, 0), n / dt / 1e6)
        for view in names:
            print("  cat values/<key>%-5s best %8.1f MB/s%s" % (
                "" if view == "raw" else "." + view, best[view],
                " (page cache dropped before each)" if cold else " (warm: cannot drop caches)"),
                flush=True)
    ratio = best["npy"] / best["raw"]
    print("  npy / raw = %.1f%% of the throughput on the same mount (target >= 80%%)"
          % (100 * ratio))
    return ratio


def nested_value(target):
    """A list of dicts whose JSON is about target bytes."""
    rnd = random.Random(7)
    out = []
    size = 0
    i = 0
    while size < target:
        item = {"id": i, "name": "item-%d" % i, "score": rnd.random() * 100,
                "values": [rnd.randint(-1000, 1000) for _ in range(8)],
                "weights": [round(rnd.random(), 3) for _ in range(4)],
                "tags": {"even": i % 2 == 0, "group": "g%d" % (i % 17), "none": None}}
        out.append(item)
        size += 330  # about what one item takes with indent 2
        i += 1
    return out


def bench_json(server, d, runs):
    root = os.path.join(d, "json")
    os.makedirs(os.path.join(root, "values"))
    os.makedirs(os.path.join(root, "calls"))
    data = pickle.dumps(nested_value(10 * 1000 * 1000), protocol=5)
    key = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(data)
    rates = []
    for _ in range(runs):
        with Server(server, ["--serve", "--root", root], timeout=600) as s:
            s.hello()
            s.call("stat_value", key, "pickle")  # open and map the value first
            c = cpu_seconds(s.proc.pid)
            t = time.monotonic()
            size = s.call("stat_value", key, "json")["size"]
            dt = time.monotonic() - t
            c = cpu_seconds(s.proc.pid) - c
            t = time.monotonic()
            s.call("stat_value", key, "json")
            cached = time.monotonic() - t
        rates.append(size / dt / 1e6)
        print("  json %d bytes (pickle %d bytes) rendered in %.3f s: %.1f MB/s, %.1f MB per "
              "server CPU second (again from the cache: %.4f s)"
              % (size, len(data), dt, size / dt / 1e6, size / max(c, 0.01) / 1e6, cached),
              flush=True)
    print("  best %.1f MB/s (target >= 50 MB/s)" % max(rates))
    return max(rates)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(SOURCE, "build"))
    p.add_argument("--size", type=int, default=1 << 30, help="bytes of the float64 array")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--window", type=int, default=8, help="requests in flight")
    p.add_argument("--keep", help="use (and keep) this directory for the caches")
    a = p.parse_args()
    server = os.path.join(a.build, "server", "flechefs-server")
    if not os.access(server, os.X_OK):
        sys.exit("bench-views: no flechefs-server under '%s' (--build)" % a.build)
    d = a.keep or tempfile.mkdtemp(prefix="bench-views-")
    try:
        root = os.path.join(d, "array")
        key_file = os.path.join(d, "array.key")
        if not os.path.exists(key_file):
            t = time.monotonic()
            subprocess.run([sys.executable, os.path.join(SOURCE, "examples", "make-cache.py"),
                                "--big-array", str(a.size // 8), "--force", "-q",
                                "--manifest", os.path.join(d, "manifest.json"), root],
                               check=True)
            key = json.load(open(os.path.join(d, "manifest.json")))["big_array"]
            open(key_file, "w").write(key)
            print("wrote a %d-byte float64 array in %.1f s" % (a.size, time.monotonic() - t))
        key = open(key_file).read().strip()
        print("npy vs pickle, 1 MiB ranges, %d in flight:" % a.window)
        bench_npy(server, root, key, a.runs, a.window)
        print("cat through a mount:")
        bench_mount_cat(a.build, root, key, a.runs)
        print("json render rate:")
        if os.path.exists(os.path.join(d, "json")):
            shutil.rmtree(os.path.join(d, "json"))
        bench_json(server, d, a.runs)
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
