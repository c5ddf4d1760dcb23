"""test_mount_walk.py: a walk of every call folder (find calls -maxdepth 2 -name
call.json), and one that states every file (du -s calls), hold the daemon's memory to
what it keeps by design, not to a record and an inode per file of every call.

A SQLite cache of NCALLS calls is made with examples/make-cache.py and mounted in the
foreground (so the daemon's pid is known). The walk must find every call.json; the
daemon's resident memory may grow during it by at most GROWTH_MAX bytes: the inodes of
the call folders the kernel keeps, and records of the last few thousand folders only
(each call folder's files are handed to the kernel without a node of their own, and
older records are dropped, to be loaded again when asked for), and the records read
ahead of the walk (at most FSD_PREFETCH_KEPT, fusefs/prefetch.h). Holding every record and
one inode per file, as the daemon did, grows it by about 3.5 KiB a call. Records
dropped must load again: call.json of the first call folder is read after the walk.

du looks every file of every call up and the kernel keeps what it looked up: the
daemon lets it keep the last 32768 inodes of call folders and their files only
(it asks the older ones back), and a call's files hold no record, so du grows the
daemon by its fixed budgets, not by the calls: those inodes, the records of the last
4096 call folders, the records read ahead of the walk, the views of the values and the
cache of record listings (and refusals) together stay under GROWTH_MAX. A file inode
holding its call's whole record, as it did, grows it by about 7 KiB a call (over 100
MiB for NCALLS).
"""

import json
import os
import subprocess
import sys

import common
import mountlib as ml

T = common.Checks("mount_walk")
NCALLS = 16000
GROWTH_MAX = 48 << 20


def rss_kib(pid, field="VmRSS"):
    kib = common.proc_status_kib(pid, field)
    if kib is None:
        raise AssertionError("no %s in /proc/%d/status" % (field, pid))
    return kib


def make_cache(d):
    root = os.path.join(d, "cache")
    subprocess.run([sys.executable, os.path.join(common.SOURCE, "examples", "make-cache.py"),
                    "--layout", "sql", "--calls", str(NCALLS), "-q", root],
                   check=True, timeout=600)
    return root


def walk(pid, what, argv):
    """Runs the walk argv; checks the daemon's growth through it. Returns its output."""
    before = rss_kib(pid)
    r = subprocess.run(argv, stdout=subprocess.PIPE, check=True, timeout=900)
    after = rss_kib(pid)
    growth = (after - before) * 1024
    print("%s: daemon RSS %d KiB before, %d KiB after (peak %d KiB)" % (
        what, before, after, rss_kib(pid, "VmHWM")), flush=True)
    T.check(growth <= GROWTH_MAX,
            "the daemon grew by %d MiB in %s over %d calls, at most %d MiB" % (
                growth >> 20, what, NCALLS, GROWTH_MAX >> 20))
    return r.stdout.decode()


def check_first_call(found):
    first = sorted(found)[0]
    with open(first) as f:
        rec = json.load(f)
    T.check(isinstance(rec, dict) and rec.get("name"),
            "call.json of the first call, loaded again after the walk: %r" % rec)


def test_walk_sql():
    with common.temp_dir() as d:
        root = make_cache(d)
        with ml.foreground(root) as (p, mp):
            calls = os.path.join(mp, "calls")
            found = walk(p.pid, "find", ["find", calls, "-maxdepth", "2", "-name",
                                         "call.json"]).split()
            T.equal(len(found), NCALLS, "call.json files found by the walk")
            check_first_call(found)


def test_du_sql():
    with common.temp_dir() as d:
        root = make_cache(d)
        with ml.foreground(root) as (p, mp):
            calls = os.path.join(mp, "calls")
            out = walk(p.pid, "du -s", ["du", "-s", calls])
            T.check(int(out.split()[0]) > NCALLS, "du counts the files of every call: %r" % out)
            keys = [k for k in os.listdir(calls) if len(k) == 64]
            T.equal(len(keys), NCALLS, "call folders listed after du")
            check_first_call([os.path.join(calls, k, "call.json") for k in keys])


def main():
    ml.require_fuse()
    T.run(test_walk_sql)
    T.run(test_du_sql)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
