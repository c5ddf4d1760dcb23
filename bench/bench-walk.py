"""bench-walk.py: walks of the whole tree (find, grep -r, du over every call
folder) through a local flechefs mount, next to the same walk of an ordinary folder
tree of the same shape, in one run. Run by hand, as root (it drops the page cache),
from the source tree after building:

    /usr/bin/python3 bench/bench-walk.py [--build build] [--calls 100000]
        [--layouts files,sql] [--ops find,grep,du] [--links local,ssh,proxy]
        [--delay 25] [--keep DIR] [--baseline BUILD] [--no-reference]

For each layout it makes a cache of NCALLS calls with examples/make-cache.py (kept in
DIR with --keep, and reused from there), and once an ordinary tree: calls/<key>/ with
the files and folders a call folder of the mount has (call.json holding the record's
text, name, module, version, code_digest, arguments/, metadata/, a result link). Each
operation runs cold (page cache dropped, fresh mount):

  find MNT/calls -maxdepth 2 -name call.json | wc -l
  grep -r -l KEYWORD MNT/calls          (KEYWORD: a function name, in every call.json)
  du -s MNT/calls

and prints seconds, calls/s, and the peak resident memory (VmHWM) of the daemon and
of the server. --links says through what the mount reaches its server: local (a
pipe), ssh (a private sshd on 127.0.0.1, tests/e2e/sshd_fixture.py) and proxy (the
same through bench/delay-proxy, --delay ms each way). With --baseline, the same walks
run through that build's daemon and server too (rows "base-LINK"), side by side;
--no-reference leaves the ordinary tree out (making it for a million calls takes
long). Targets: at least 20,000 calls/s for the find locally and 10,000 through the
25 ms proxy, daemon peak RSS at most 128 MiB at any size.
"""

import argparse
import contextlib
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
import sshd_fixture as sf  # noqa: E402
KEYWORD = "greet"
OPS = {
    "find": lambda d: "find %s -maxdepth 2 -name call.json | wc -l" % d,
    "grep": lambda d: "grep -r -l %s %s | wc -l" % (KEYWORD, d),
    "du": lambda d: "du -s %s" % d,
}


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


def walk_mount(build, cache, op, link):
    """op through a fresh mount of cache reached through link: a dict with opts (the
    mount's options), source_prefix ("" locally, "127.0.0.1:" over SSH) and env."""
    mp = tempfile.mkdtemp(prefix="bench-walk-")
    flechefs = os.path.join(build, "fusefs", "flechefs")
    server = os.path.join(build, "server", "flechefs-server")
    source = link["source_prefix"] + cache
    cmd = [flechefs] + link["opts"] + ["-o", "server=" + server, source, mp]
    subprocess.run(cmd, check=True, env=link["env"])
    try:
        daemon = int(subprocess.run(["pgrep", "-n", "-f", "^%s .*%s %s$" % (flechefs, source, mp)],
                                    stdout=subprocess.PIPE, check=True).stdout)
        server_pid = int(subprocess.run(["pgrep", "-n", "-f", "^%s --serve .*%s" % (server, cache)],
                                        stdout=subprocess.PIPE, check=True).stdout)
        common.drop_caches()
        secs, out = timed(OPS[op](os.path.join(mp, "calls")))
        return secs, out, hwm_kib(daemon), hwm_kib(server_pid)
    finally:
        subprocess.run(["fusermount3", "-u", mp])
        os.rmdir(mp)


def links(names, delay, build, tmp, stack):
    """(label, link) for each link named, starting the sshd and proxy they need."""
    out = []
    local = {"opts": [], "source_prefix": "", "env": None}
    d = None
    for name in names:
        if name == "local":
            out.append(("local", local))
            continue
        if d is None:
            reason = sf.sshd_missing_reason()
            if reason:
                sys.exit("bench-walk: " + reason)
            d = stack.enter_context(sf.Sshd())
            d.trust_host_key()
            home = os.path.join(tmp, "home")
            os.makedirs(home, exist_ok=True)
            env = sf.client_env(home)
        if name == "ssh":
            out.append(("ssh", {"opts": d.flechefs_opts() + ["-o", "timeout=120"],
                                "source_prefix": "127.0.0.1:", "env": env}))
        elif name == "proxy":
            port, kh = stack.enter_context(sf.delay_proxy(d, delay, build, tmp))
            opts = ["-o", "port=%d" % port, "-o", "IdentityFile=" + d.user_key,
                    "-o", "UserKnownHostsFile=" + kh, "-o", "ssh_config=/dev/null",
                    "-o", "timeout=120"]
            out.append(("%dms" % delay, {"opts": opts, "source_prefix": "127.0.0.1:",
                                         "env": env}))
        else:
            sys.exit("bench-walk: unknown link %r (local, ssh, proxy)" % name)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--layouts", default="files,sql")
    ap.add_argument("--ops", default="find,grep,du")
    ap.add_argument("--links", default="local", help="local, ssh, proxy (comma-separated)")
    ap.add_argument("--delay", type=int, default=25, help="ms each way through the proxy")
    ap.add_argument("--keep", help="a directory keeping the caches and trees made")
    ap.add_argument("--baseline", help="a build to walk the same mounts with, for comparison")
    ap.add_argument("--no-reference", action="store_true", help="no ordinary tree")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    work = a.keep or tempfile.mkdtemp(prefix="bench-walk-")
    os.makedirs(work, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-walk-tmp-")
    os.chmod(tmp, 0o755)
    print("%-6s %-5s %-10s %9s %9s %12s %12s  %s" % (
        "layout", "op", "tree", "seconds", "calls/s", "daemon MiB", "server MiB", "output"))
    try:
        with contextlib.ExitStack() as stack:
            ls = links(a.links.split(","), a.delay, a.build, tmp, stack)
            for layout in a.layouts.split(","):
                cache = os.path.join(os.path.abspath(work), "%s-%d" % (layout, a.calls))
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
                        common.drop_caches()
                        secs, out = timed(OPS[op](os.path.join(ref, "calls")))
                        print("%-6s %-5s %-10s %9.1f %9.0f %12s %12s  %s" % (
                            layout, op, "ordinary", secs, a.calls / secs, "-", "-", out),
                            flush=True)
                    builds = [("base", os.path.abspath(a.baseline))] if a.baseline else []
                    for tree, build in builds + [("fs", a.build)]:
                        for label, link in ls:
                            secs, out, d, s = walk_mount(build, cache, op, link)
                            print("%-6s %-5s %-10s %9.1f %9.0f %12.0f %12.0f  %s" % (
                                layout, op, tree + "-" + label, secs, a.calls / secs,
                                d / 1024, s / 1024, out), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("targets: find at least 20000 calls/s locally, 10000 through the 25 ms proxy; "
          "daemon peak at most 128 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
