#!/usr/bin/env python3
"""toml_suite: runs the official TOML test suite (toml-test) against tomldump.

usage: toml_suite.py TOMLDUMP MODULE@VERSION WORKDIR

Installs the pinned toml-test runner with `go install` into WORKDIR (GOBIN, GOPATH
and GOCACHE all under it, so nothing is written to $HOME), then runs every TOML 1.0
case: each valid document must decode to the suite's JSON and each invalid one must
be rejected. Prints how many of each passed; fails when any case fails. Go is looked
for in $FLECHEFS_GO, on PATH and in /usr/local/go/bin; without it the test skips
(exit 77) saying why, except under CI=true, where it fails.
"""
import os
import re
import shutil
import subprocess
import sys


def find_go():
    for candidate in (os.environ.get("FLECHEFS_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def main():
    tomldump, module, workdir = sys.argv[1:4]
    go = find_go()
    if go is None:
        msg = "toml_suite: no Go toolchain (install golang-go, see scripts/deps.sh)"
        if os.environ.get("CI") == "true":
            print(msg, file=sys.stderr)
            return 1
        print(msg + "; skipping")
        return 77
    gobin = os.path.join(workdir, "bin")
    version = module.rsplit("@", 1)[1]
    runner = os.path.join(gobin, "toml-test")
    stamp = runner + ".version"
    env = dict(os.environ, GOBIN=gobin, GOPATH=os.path.join(workdir, "gopath"),
               GOCACHE=os.path.join(workdir, "gocache"), GOFLAGS="-modcacherw",
               GOTOOLCHAIN="local")
    have = open(stamp).read() if os.path.exists(stamp) else ""
    if not os.access(runner, os.X_OK) or have != version:
        print(f"toml_suite: go install {module}", flush=True)
        r = subprocess.run([go, "install", module], env=env, timeout=900)
        if r.returncode != 0:
            print(f"toml_suite: cannot install {module} (is the Go module proxy reachable?)",
                  file=sys.stderr)
            return 1
        with open(stamp, "w") as f:
            f.write(version)
    r = subprocess.run([runner, "test", "-toml", "1.0", "-timeout", "10s", "-decoder", tomldump],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900)
    out = r.stdout
    counts = {}
    for kind in ("valid", "invalid"):
        m = re.search(rf"^\s*{kind} tests:\s*(\d+) passed,\s*(\d+) failed", out, re.M)
        if not m:
            print(out)
            print(f"toml_suite: no count of {kind} tests in toml-test's output", file=sys.stderr)
            return 1
        counts[kind] = (int(m.group(1)), int(m.group(2)))
    print(f"toml-test {version}, TOML 1.0: valid {counts['valid'][0]} passed, "
          f"{counts['valid'][1]} failed; invalid {counts['invalid'][0]} passed, "
          f"{counts['invalid'][1]} failed")
    if r.returncode != 0 or counts["valid"][1] or counts["invalid"][1] or not counts["valid"][0] \
            or not counts["invalid"][0]:
        print(out)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
