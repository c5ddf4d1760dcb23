"""bench-walk.py: walks of the whole tree (find, grep -r, du over every call
folder) through a local flechefs mount, next to the same walk of an ordinary folder
tree of the same shape, in one run. Run by hand, as root (it drops the page cache),
from the source tree after building:

    /usr/bin/python3 bench/bench-walk.py [--build build] [--calls 100000]
        [--layouts files,sql] [--ops find,grep,du] [--keep DIR]
        [--baseline BUILD] [--no-reference]

For each layout it makes a cache of NCALLS calls with examples/make-cache.py (kept in
DIR with --keep, and reused from there), and once an ordinary tree: calls/<key>/ with
the files and folders a call folder of the mount has (call.json holding the record's
text, name, module, version, code_digest, arguments/, metadata/, a result link). Each
operation runs cold (page cache dropped, fresh mount):

  find MNT/calls -maxdepth 2 -name call.json | wc -l
  grep -r -l KEYWORD MNT/calls          (KEYWORD: a function name, in every call.json)
  du -s MNT/calls

and prints seconds, calls/s, and the peak resident memory (VmHWM) of the daemon and
of the server. With --baseline, the same walks run through that build's daemon too
(rows "baseline"), side by side; --no-reference leaves the ordinary tree out (making
it for a million calls takes long). Targets: at least 20,000 calls/s for the find, daemon peak RSS
at most 128 MiB at any size.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))

import common  # noqa: E402 (tests/e2e, on the path above)
KEYWORD = "greet"
OPS = {
    "find": lambda d: "find %s -maxdepth 2 -name call.json | wc -l" % d,
    "grep": lambda d: "grep -r -l %s %s | wc -l" % (KEYWORD, d),
    "du": lambda d: "du -s %s" % d,
}


def drop_caches():
    subprocess.run("sync", shell=True, check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def hwm_kib(pid):
    return common.proc_status_kib(pid, "VmHWM") or 0


def timed(cmd):
    t = time.monotonic()
    out = subprocess.run(cmd, shell=True, check=True, stdout=subprocess.PIPE).stdout
    return time.monotonic() - t, out.decode().strip()


def make_cache(root, layout, ncalls):
    if os.path.isdir(root):
        return
    subprocess.run([sys.executable, os.path.join(SOURCE, "examples", "make-cache.py"),
                    "--layout", layout, "--calls", str(ncalls), "-q", root], check=True)


def make_reference(mp, ref):
    """An ordinary tree of the mount's shape, the call.json text copied from it."""
    if os.path.isdir(ref):
        return
    calls = os.path.join(mp, "calls")
    for key in os.listdir(calls):
        if len(key) != 64:
            continue
        src, dst = os.path.join(calls, key), os.path.join(ref, "calls", key)
        os.makedirs(os.path.join(dst, "arguments"))
        os.makedirs(os.path.join(dst, "metadata"))
        for name in os.listdir(src):
            s = os.path.join(src, name)
            if os.path.islink(s):
                os.symlink(os.readlink(s), os.path.join(dst, name))
            elif os.path.isfile(s):
                shutil.copyfile(s, os.path.join(dst, name))


def walk_mount(build, cache, op):
    mp = tempfile.mkdtemp(prefix="bench-walk-")
    flechefs = os.path.join(build, "fusefs", "flechefs")
    subprocess.run([flechefs, cache, mp], check=True)
    try:
        daemon = int(subprocess.run(["pgrep", "-n", "-f", "^%s %s %s" % (flechefs, cache, mp)],
                                    stdout=subprocess.PIPE, check=True).stdout)
        server = int(subprocess.run(["pgrep", "-n", "-P", str(daemon)],
                                    stdout=subprocess.PIPE, check=True).stdout)
        drop_caches()
        secs, out = timed(OPS[op](os.path.join(mp, "calls")))
        return secs, out, hwm_kib(daemon), hwm_kib(server)
    finally:
        subprocess.run(["fusermount3", "-u", mp])
        os.rmdir(mp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--layouts", default="files,sql")
    ap.add_argument("--ops", default="find,grep,du")
    ap.add_argument("--keep", help="a directory keeping the caches and trees made")
    ap.add_argument("--baseline", help="a build to walk the same mounts with, for comparison")
    ap.add_argument("--no-reference", action="store_true", help="no ordinary tree")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="bench-walk-")
    os.makedirs(work, exist_ok=True)
    print("%-6s %-5s %-10s %9s %9s %12s %12s  %s" % (
        "layout", "op", "tree", "seconds", "calls/s", "daemon MiB", "server MiB", "output"))
    try:
        for layout in a.layouts.split(","):
            cache = os.path.join(work, "%s-%d" % (layout, a.calls))
            ref = os.path.join(work, "reference-%d" % a.calls)
            make_cache(cache, layout, a.calls)
            if not a.no_reference and not os.path.isdir(ref):
                mp = tempfile.mkdtemp(prefix="bench-walk-")
                subprocess.run([os.path.join(a.build, "fusefs", "flechefs"), cache, mp],
                               check=True)
                try:
                    make_reference(mp, ref)
                finally:
                    subprocess.run(["fusermount3", "-u", mp])
                    os.rmdir(mp)
            for op in a.ops.split(","):
                if not a.no_reference:
                    drop_caches()
                    secs, out = timed(OPS[op](os.path.join(ref, "calls")))
                    print("%-6s %-5s %-10s %9.1f %9.0f %12s %12s  %s" % (
                        layout, op, "ordinary", secs, a.calls / secs, "-", "-", out),
                        flush=True)
                builds = [("baseline", a.baseline)] if a.baseline else []
                for tree, build in builds + [("flechefs", a.build)]:
                    secs, out, d, s = walk_mount(build, cache, op)
                    print("%-6s %-5s %-10s %9.1f %9.0f %12.0f %12.0f  %s" % (
                        layout, op, tree, secs, a.calls / secs, d / 1024, s / 1024, out),
                        flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("targets: find at least 20000 calls/s; daemon peak at most 128 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
