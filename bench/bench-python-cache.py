"""bench-python-cache.py: flechefs.FlechefsCache against fleche's own SshCache, side by
side in one run, through the same private sshd (tests/e2e/sshd_fixture.py) on the same
cache, on loopback and through bench/delay-proxy (25 ms each way).

Per link and cache: N `contains`, N `load`, S `save`s of calls with 1 MiB numpy
results, the same S `save`s again (values already there; FlechefsCache also both
with save_ahead, flush() included), one `load_value` of a BIG
MiB array, and 8 threads sharing one cache object doing T `load`s each (25 ms link
only, where round trips dominate); the peak memory (VmHWM) of the remote end (the
server process) after the `load_value`. Each figure is printed next to its target.

    bench/bench-python-cache.py [--n 1000] [--saves 100] [--big 256] [--threads-loads 1000]
                                [--no-delay] [--build build]

Runs under the Python of scripts/pyenv.sh's environment (build/pyenv, re-executing
itself there), as root (the private sshd).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
sys.path.insert(0, os.path.join(SOURCE, "python"))

import common  # noqa: E402 (tests/e2e, on the path above)

# FlechefsCache's save_ahead for the "save again, ahead" figure (SshCache's figure
# beside it is its one way of saving)
SAVE_AHEAD = 32


def reexec(build):
    py = os.path.join(build, "pyenv", "bin", "python")
    if os.path.realpath(sys.executable) != os.path.realpath(py) and \
            os.environ.get("FLECHEFS_BENCH_IN_PYENV") != "1":
        os.execve(py, [py] + sys.argv, dict(os.environ, FLECHEFS_BENCH_IN_PYENV="1"))


def hwm_kib(pid):
    return common.proc_status_kib(pid, "VmHWM")


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_one(label, cache, a, np, Call, ahead=None):
    """The workload on one cache object; returns {figure: seconds or KiB}. With
    ahead (a FlechefsCache with save_ahead on the same server), saves of calls of
    their own and the saves again are also timed through it, flush() included."""
    out = {}

    def calls(tag):
        # results of their own per tag: the first saves upload every value
        salt = float(zlib.crc32(tag.encode()))
        return [Call(name="bench_save_%s" % tag, arguments={"i": i},
                     result=np.full(1 << 17, salt + i / 1000)) for i in range(a.saves)]

    saves = calls(label)
    keys = []
    out["save"] = timed(lambda: keys.extend(cache.save(c) for c in saves)) / a.saves
    out["save again"] = timed(lambda: [cache.save(c) for c in saves]) / a.saves
    if ahead is None:  # SshCache: its one way of saving beside the figures ahead
        out["save, ahead"], out["save again, ahead"] = out["save"], out["save again"]
    if ahead is not None:
        ahead.info()

        def save_all(cs):
            for c in cs:
                ahead.save(c)
            ahead.flush()
        fresh = calls(label + "-ahead")
        out["save, ahead"] = timed(lambda: save_all(fresh)) / a.saves
        out["save again, ahead"] = timed(lambda: save_all(saves)) / a.saves
    probe = [keys[i % len(keys)] for i in range(a.n)]
    out["contains"] = timed(lambda: [cache.contains(k) for k in probe]) / a.n
    out["load"] = timed(lambda: [cache.load(k) for k in probe]) / a.n
    big = Call(name="bench_big_%s" % label, arguments={}, result=np.arange(a.big << 17,
                                                                          dtype=np.float64))
    bkey = cache.save(big)
    rkey = cache.load(bkey)._result
    cache.reconnect()  # a fresh server: its peak is the load_value's alone
    cache.contains(bkey)
    out["load_value big"] = timed(lambda: cache.load_value(rkey))
    out["server peak KiB"] = hwm_kib(cache.info()["pid"])
    return out


def threads_loads(cache, keys, per_thread):
    def work():
        for i in range(per_thread):
            cache.load(keys[i % len(keys)])
    ts = [threading.Thread(target=work) for _ in range(8)]
    t = time.perf_counter()
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    return 8 * per_thread / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--saves", type=int, default=100)
    ap.add_argument("--big", type=int, default=256, help="MiB")
    ap.add_argument("--threads-loads", type=int, default=1000)
    ap.add_argument("--no-delay", action="store_true")
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    reexec(a.build)
    import numpy as np
    from fleche.call import Call
    from fleche.remote import SshCache

    import sshd_fixture
    from flechefs import FlechefsCache

    server = os.path.join(a.build, "server", "flechefs-server")
    tmp = tempfile.mkdtemp(prefix="flechefs-bench-py-")
    proxy = None
    try:
        root = os.path.join(tmp, "cache")
        os.makedirs(os.path.join(root, "values"))
        os.makedirs(os.path.join(root, "calls"))
        with open(os.path.join(tmp, "fleche.toml"), "w") as f:
            f.write('[default]\ncache = "shared"\n\n[shared]\ntemplate = "cloudpickle"\n'
                    'root = "cache"\n')
        links = [("loopback", None)]
        with sshd_fixture.Sshd() as d:
            d.trust_host_key()
            if not a.no_delay:
                proxy_bin = os.path.join(a.build, "bench", "delay-proxy")
                if not os.access(proxy_bin, os.X_OK):
                    proxy_bin = os.path.join(tmp, "delay-proxy")
                    subprocess.run(["cc", "-O2", "-pthread", "-o", proxy_bin,
                                    os.path.join(HERE, "delay-proxy.c")], check=True)
                proxy = subprocess.Popen([proxy_bin, "0", "127.0.0.1", str(d.port), "25"],
                                         stdout=subprocess.PIPE)
                port = int(proxy.stdout.readline())
                links.append(("25 ms", port))
            for link, port in links:
                opts = d.ssh_args()
                if port:  # the proxy's port; the host key is the sshd's
                    opts[opts.index("-p") + 1] = str(port)
                    opts += ["-o", "HostKeyAlias=[127.0.0.1]:%d" % d.port]
                fc = FlechefsCache(host="127.0.0.1", cache_name="shared", server=server,
                                   ssh_options=opts, workdir=tmp)
                fa = FlechefsCache(host="127.0.0.1", cache_name="shared", server=server,
                                   ssh_options=opts, workdir=tmp, save_ahead=SAVE_AHEAD)
                sc = SshCache(host="127.0.0.1", python=sys.executable, ssh_options=tuple(opts),
                              workdir=tmp)
                rows = {}
                for name, cache in (("flechefs", fc), ("SshCache", sc)):
                    rows[name] = run_one("%s-%s" % (name, link.replace(" ", "")), cache, a,
                                         np, Call, fa if cache is fc else None)
                print("\n== %s" % link)
                print("%-18s %14s %14s   target" % ("", "FlechefsCache", "SshCache"))
                targets = {"contains": "no slower", "load": "no slower", "save": "no slower",
                           "save again": ">= 5x faster",
                           "save, ahead": "no slower (save_ahead=%d)" % SAVE_AHEAD,
                           "save again, ahead": ">= 5x faster (save_ahead=%d)" % SAVE_AHEAD,
                           "load_value big": "no slower",
                           "server peak KiB": "< 65536 (flechefs)"}
                for k, target in targets.items():
                    f_ = rows["flechefs"][k]
                    s_ = rows["SshCache"][k]
                    unit = "" if k.endswith("KiB") else " s"
                    fmt = "%14d" if k.endswith("KiB") else "%14.6f"
                    print("%-18s " % k + fmt % (f_ or 0) + " " + fmt % (s_ or 0) +
                          "%s   %s" % (unit, target))
                if port:
                    keys = [k for k in (c.to_lookup_key() for c in fc.query()) ][:50]
                    tf = threads_loads(fc, keys, a.threads_loads)
                    ts = threads_loads(sc, keys, a.threads_loads)
                    print("8 threads load/s   %14.1f %14.1f   >= 5x (%.1fx)"
                          % (tf, ts, tf / ts if ts else 0))
                fc.close()
                fa.close()
                sc.close()
    finally:
        if proxy:
            proxy.kill()
            proxy.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
