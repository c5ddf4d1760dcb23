#!/usr/bin/env python3
"""bench-files.py: a benchmark (by hand, not a test) of files that cached functions
return, read through a mount: a cache written by the real fleche
(tests/e2e/gen_fleche_files.py, run with scripts/pyenv.sh's Python) whose function
returns a large binary file (--size, 200 MiB by default); `cat` of
calls/<key>/result.d/large.bin against `cat` of values/<content>.bin and of
values/<content> (the content value's pickle) on the same mount, page cache dropped
before each read, runs interleaved. Target: result.d/ at the same speed as the
content value's own view.

usage: /usr/bin/python3 bench/bench-files.py [--build DIR] [--python PY] [--size BYTES]
       [--runs N] [--keep DIR]
Needs about twice SIZE bytes of free space in $TMPDIR.
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
sys.path.insert(0, HERE)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(SOURCE, "build"))
    p.add_argument("--python", help="the Python with fleche (default: BUILD/pyenv/bin/python)")
    p.add_argument("--size", type=int, default=200 << 20, help="bytes of the large file")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", help="use (and keep) this directory for the cache")
    a = p.parse_args()
    os.environ["FLECHEFS_BUILD"] = os.path.abspath(a.build)
    import mountlib as ml
    from importlib import import_module
    drop_caches = import_module("bench-views").drop_caches
    py = a.python or os.path.join(a.build, "pyenv", "bin", "python")
    d = a.keep or tempfile.mkdtemp(prefix="bench-files-")
    try:
        exp_file = os.path.join(d, "EXPECTED.json")
        if not os.path.exists(exp_file):
            t = time.monotonic()
            subprocess.run([py, os.path.join(SOURCE, "tests", "e2e", "gen_fleche_files.py"), d,
                            "--large-size", str(a.size), "--only", "cloudpickle"], check=True)
            shutil.rmtree(os.path.join(d, "materialised"))
            print("fleche wrote the cache in %.1f s" % (time.monotonic() - t))
        c = json.load(open(exp_file))["caches"]["cloudpickle"]
        call = next(x for x in c["calls"] if x["name"] == "large")
        record = next(r for r in c["records"] if r["key"] == call["result"])
        content = record["files"]["large.bin"]["content"]
        best = {}
        with ml.mounted(os.path.join(d, "cloudpickle")) as mp:
            paths = {"calls/<key>/result.d/large.bin":
                     os.path.join(mp, "calls", call["key"], "result.d", "large.bin"),
                     "values/<content>.bin": os.path.join(mp, "values", content + ".bin"),
                     "values/<content>": os.path.join(mp, "values", content)}
            for _ in range(a.runs):
                for name, path in paths.items():
                    cold = drop_caches()
                    t = time.monotonic()
                    r = subprocess.run("cat '%s' > /dev/null" % path, shell=True)
                    dt = time.monotonic() - t
                    assert r.returncode == 0, path
                    best[name] = max(best.get(name, 0), os.stat(path).st_size / dt / 1e6)
        for name in paths:
            print("  cat %-32s best %8.1f MB/s%s" % (
                name, best[name], " (page cache dropped before each)" if cold else " (warm)"))
        ratio = best["calls/<key>/result.d/large.bin"] / best["values/<content>.bin"]
        print("  result.d / content .bin = %.1f%% of the throughput (target: the same)"
              % (100 * ratio))
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
