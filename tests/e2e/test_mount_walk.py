"""test_mount_walk.py: a walk of every call folder (find calls -maxdepth 2 -name
call.json) holds the daemon's memory to what it keeps by design, not to a record and
an inode per file of every call.

A SQLite cache of NCALLS calls is made with examples/make-cache.py and mounted in the
foreground (so the daemon's pid is known). The walk must find every call.json; the
daemon's resident memory may grow during it by at most GROWTH_MAX bytes: the inodes of
the call folders the kernel keeps, and records of the last few thousand folders only
(each call folder's files are handed to the kernel without a node of their own, and
older records are dropped, to be loaded again when asked for), and the records read
ahead of the walk (at most FSD_PREFETCH_KEPT, fusefs/prefetch.h). Holding every record and
one inode per file, as the daemon did, grows it by about 3.5 KiB a call. Records
dropped must load again: call.json of the first call folder is read after the walk.
"""

import json
import os
import subprocess
import sys

import common
import mountlib as ml

T = common.Checks("mount_walk")
NCALLS = 16000
GROWTH_MAX = 32 << 20


def rss_kib(pid, field="VmRSS"):
    kib = common.proc_status_kib(pid, field)
    if kib is None:
        raise AssertionError("no %s in /proc/%d/status" % (field, pid))
    return kib


def test_walk_sql():
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        subprocess.run([sys.executable, os.path.join(common.SOURCE, "examples", "make-cache.py"),
                        "--layout", "sql", "--calls", str(NCALLS), "-q", root],
                       check=True, timeout=600)
        with ml.foreground(root) as (p, mp):
            calls = os.path.join(mp, "calls")
            before = rss_kib(p.pid)
            r = subprocess.run(["find", calls, "-maxdepth", "2", "-name", "call.json"],
                               stdout=subprocess.PIPE, check=True, timeout=900)
            found = r.stdout.decode().split()
            after = rss_kib(p.pid)
            T.equal(len(found), NCALLS, "call.json files found by the walk")
            growth = (after - before) * 1024
            print("daemon RSS %d KiB before the walk, %d KiB after (peak %d KiB)" % (
                before, after, rss_kib(p.pid, "VmHWM")), flush=True)
            T.check(growth <= GROWTH_MAX,
                    "the daemon grew by %d MiB walking %d calls, at most %d MiB" % (
                        growth >> 20, NCALLS, GROWTH_MAX >> 20))
            first = sorted(found)[0]
            with open(first) as f:
                rec = json.load(f)
            T.check(isinstance(rec, dict) and rec.get("name"),
                    "call.json of the first call, loaded again after the walk: %r" % rec)


def main():
    ml.require_fuse()
    T.run(test_walk_sql)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
