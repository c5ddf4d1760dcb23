#!/usr/bin/python3
"""bench-ssh.py: flechefs over SSH against sshfs and `ssh cat`, side by side.

Run by hand, as root (it starts a private sshd on 127.0.0.1 with tests/e2e/
sshd_fixture.py and mounts FUSE filesystems):

    /usr/bin/python3 bench/bench-ssh.py [--build DIR] [--cache DIR] [--calls N]
                                        [--size BYTES] [--no-proxy] [--windows]
                                        [--repeat N]

It writes a files-layout cache with examples/make-cache.py (N calls, default
100,000, and one bytes value of --size, default 1 GiB) unless --cache names one made
before (with its manifest.json), warms the value file into the page cache once (so
every contender reads it from memory on the "remote" side), then measures with the
same cipher (aes128-ctr) everywhere:

  - cold `cat` of the value through a fresh flechefs mount (libssh2), through a fresh
    flechefs mount with -o ssh_command (OpenSSH as the transport), through a fresh
    sshfs mount of the cache directory, and `ssh host cat` of the value file, in
    --repeat interleaved rounds on loopback (default 3; the median is reported with
    the range), one round through the proxy;
  - in the same rounds, the value's bytes through flechefs's libssh2 transport alone
    (tests/sshread reading `cat` of the file in one exec channel, no FUSE): what one
    libssh2 channel carries, the ceiling of the default transport;
  - `ls -l calls/` (N entries) through flechefs and through sshfs, fresh mounts,
    "cold" (the call records dropped from the page cache first: flechefs's server
    reads every record, sshfs only stats them), "all dropped" (every cache of the
    machine dropped: directories and inodes come from disk too) and "warm";
  - on loopback, for the record, flechefs's read of the value with O_DIRECT (dd
    iflag=direct bs=1M: one read at a time, and no page cache filled on the mount's
    side, which `ssh cat` to /dev/null does not pay for either);
  - the flechefs daemon's peak RSS (VmHWM) after both;
  - the three throughputs again through bench/delay-proxy (25 ms each way), unless
    --no-proxy;
  - with --windows, flechefs's cat with fixed receive windows of 2 and 32 MiB too
    (-o ssh_window), next to the adaptive default.

Every wait is bounded and every mount removed in a finally block.
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))

import common  # noqa: E402
import sshd_fixture as sf  # noqa: E402

CIPHER = "aes128-ctr"
MiB = 1024 * 1024


def log(msg):
    print(msg, flush=True)


def find(build, name, subs=("fusefs", "server", "bench")):
    for s in subs:
        p = os.path.join(build, s, name)
        if os.access(p, os.X_OK):
            return p
    sys.exit("bench-ssh: '%s' not found under '%s' (build it first)" % (name, build))


def is_mounted(mp):
    mp = os.path.realpath(mp)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mp for line in f)


def unmount(mp):
    for args in (["-u"], ["-uz"]):
        if not is_mounted(mp):
            return
        subprocess.run(["fusermount3"] + args + [mp], timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if not is_mounted(mp):
                return
            time.sleep(0.05)


def wait_mounted(mp, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if is_mounted(mp):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def timed(cmd, timeout=1800, **kw):
    t0 = time.monotonic()
    r = subprocess.run(cmd, timeout=timeout, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kw)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    return dt


def vmhwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def flechefs_mount(a, d, port, kh, env, extra=()):
    """flechefs -f in the background (its log captured); yields (mp, pid, logfile)."""
    mp = tempfile.mkdtemp(prefix="bench-ssh-fl-")
    logf = tempfile.TemporaryFile()
    cmd = [a.flechefs, "-f", "-o", "port=%d" % port, "-o", "IdentityFile=" + d.user_key,
           "-o", "UserKnownHostsFile=" + kh, "-o", "ssh_config=none",
           "-o", "Ciphers=" + CIPHER, "-o", "server=" + a.server, "-o", "ro",
           "-o", "timeout=120"] + list(extra) + ["127.0.0.1:" + a.cache, mp]
    p = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
    try:
        if not wait_mounted(mp, p):
            logf.seek(0)
            raise RuntimeError("flechefs did not mount: %s" % logf.read().decode(errors="replace"))
        yield mp, p.pid, logf
    finally:
        unmount(mp)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=30)
        os.rmdir(mp)


@contextlib.contextmanager
def sshfs_mount(a, d, port, kh, env):
    mp = tempfile.mkdtemp(prefix="bench-ssh-sshfs-")
    cmd = ["sshfs", "-F", "/dev/null", "-o", "ro,port=%d" % port,
           "-o", "IdentityFile=" + d.user_key, "-o", "UserKnownHostsFile=" + kh,
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
           "-o", "Ciphers=" + CIPHER, "root@127.0.0.1:" + a.cache, mp]
    try:
        r = subprocess.run(cmd, timeout=60, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0 or not is_mounted(mp):
            raise RuntimeError("sshfs did not mount: %s" % r.stdout.decode(errors="replace"))
        yield mp
    finally:
        unmount(mp)
        os.rmdir(mp)


def ssh_client_args(d, port, kh):
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-i", d.user_key, "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes", "-c", CIPHER]


def ssh_cat(a, d, port, kh, env):
    return timed(ssh_client_args(d, port, kh) + ["root@127.0.0.1", "cat", a.value_path],
                 env=env)


def libssh2_alone(a, d, port, kh, env):
    """`cat` of the value file through flechefs's libssh2 transport alone, read as
    fast as it comes and thrown away (tests/sshread): no FUSE, no flechefs-server, no
    page cache. What one libssh2 channel can carry here, the ceiling of flechefs's
    default transport."""
    cmd = [a.sshread, "-o", "port=%d" % port, "-o", "IdentityFile=" + d.user_key,
           "-o", "UserKnownHostsFile=" + kh, "-o", "ssh_config=none",
           "-o", "Ciphers=" + CIPHER, "-o", "server=sh -c 'exec cat \"$0\"' " + shlex.quote(a.value_path),
           "-c", "1", "-b", str(a.size), "-s", "0", "root@127.0.0.1:/"]
    return timed(cmd, env=env)


def evict_records(a):
    """Drops the call records' pages from the page cache (posix_fadvise DONTNEED).

    flechefs's listing reads every record (the server decodes each call's name
    and arguments) while sshfs's only stats the files: on a cold page cache the
    former is bound by the disk, not by SSH (with 100,000 small files on this
    machine's virtual disk about 8 s, the same through a local mount). Both
    contenders are measured cold and warm so that the two costs are seen apart.
    """
    calls = os.path.join(a.cache, "calls")
    if not os.path.isdir(calls):
        return  # SQL layout: calls.db
    for name in os.listdir(calls):
        try:
            fd = os.open(os.path.join(calls, name), os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_records(a):
    """Reads every call record once, so that they are in the page cache."""
    calls = os.path.join(a.cache, "calls")
    if not os.path.isdir(calls):
        return
    for name in os.listdir(calls):
        with contextlib.suppress(OSError):
            with open(os.path.join(calls, name), "rb") as f:
                f.read()


def make_cold(state, a):
    if state == "cold":
        evict_records(a)
    elif state == "all dropped":
        common.drop_caches()
    else:
        warm_records(a)  # the other contender's "all dropped" dropped them


LS_STATES = ("cold", "all dropped", "warm")


def warm_value(a):
    """Reads the value file once, so that every contender's cat reads it from memory
    on the "remote" side (again after the caches were dropped)."""
    subprocess.run(["cat", a.value_path], stdout=subprocess.DEVNULL, timeout=600, check=True)


def mbps(size, secs):
    return size / secs / 1e6


def window_lines(logf):
    logf.seek(0)
    lines = [ln for ln in logf.read().decode(errors="replace").splitlines()
             if "receive window" in ln or "connected to" in ln]
    return lines[-1] if lines else ""


def fmt_rates(rates):
    """Median MB/s of the rounds, with the range when there were several."""
    rs = sorted(rates)
    med = rs[len(rs) // 2] if len(rs) % 2 else (rs[len(rs) // 2 - 1] + rs[len(rs) // 2]) / 2
    if len(rs) == 1:
        return "%.1f MB/s" % med
    return "%.1f MB/s (median of %d, %.1f-%.1f)" % (med, len(rs), rs[0], rs[-1])


def cat_round(a, d, port, kh, env, label, rates):
    """One cold cat of the value by every contender, each through a fresh mount (so
    nothing of the value is in the mount's page cache); MB/s appended to rates."""
    size, value = a.size, a.value_key
    contenders = [("flechefs cat (adaptive window)", ())]
    if a.windows:
        contenders += [("flechefs cat (fixed window %s)" % w, ("-o", "ssh_window=" + w))
                       for w in ("2M", "32M")]
    # OpenSSH as the transport (-o ssh_command) instead of libssh2
    contenders += [("flechefs -o ssh_command cat", ("-o", "ssh_command=" + " ".join(
        ssh_client_args(d, port, kh) + ["root@127.0.0.1"])))]
    for what, extra in contenders:
        with flechefs_mount(a, d, port, kh, env, list(extra)) as (mp, pid, logf):
            dt = timed(["cat", os.path.join(mp, "values", value)])
            rates.setdefault(what, []).append(mbps(size, dt))
            log("   %s: %.1f MB/s (%.2f s)%s" % (what, mbps(size, dt), dt,
                                                 "" if extra else "; " + window_lines(logf)))
            rates.setdefault("rss", []).append(vmhwm(pid))
    with sshfs_mount(a, d, port, kh, env) as mp:
        dt = timed(["cat", os.path.join(mp, "values", value)])
        rates.setdefault("sshfs cat", []).append(mbps(size, dt))
        log("   sshfs cat: %.1f MB/s (%.2f s)" % (mbps(size, dt), dt))
    dt = ssh_cat(a, d, port, kh, env)
    rates.setdefault("ssh cat", []).append(mbps(size, dt))
    log("   ssh cat: %.1f MB/s (%.2f s)" % (mbps(size, dt), dt))
    dt = libssh2_alone(a, d, port, kh, env)
    rates.setdefault("libssh2 channel alone (no FUSE)", []).append(mbps(size, dt))
    log("   libssh2 channel alone: %.1f MB/s (%.2f s)" % (mbps(size, dt), dt))


def run_link(a, d, port, kh, env, label, results, with_ls, rounds):
    size = a.size
    log("== %s" % label)
    # The throughputs in interleaved rounds (flechefs, sshfs, ssh cat, again...), so
    # that a slow moment of the machine does not fall on one contender alone.
    rates = {}
    for r in range(rounds):
        log("  round %d of %d" % (r + 1, rounds))
        cat_round(a, d, port, kh, env, label, rates)
    rss = max(rates.pop("rss"))
    for what in rates:
        results.append((label, what, fmt_rates(rates[what])))
    if with_ls:
        with flechefs_mount(a, d, port, kh, env) as (mp, pid, logf):
            dt = timed(["dd", "if=" + os.path.join(mp, "values", a.value_key), "of=/dev/null",
                        "bs=1M", "iflag=direct"])
            results.append((label, "flechefs dd iflag=direct (no page cache)",
                            "%.1f MB/s" % mbps(size, dt)))
            log("   flechefs dd iflag=direct: %.1f MB/s" % mbps(size, dt))
            rss = max(rss, vmhwm(pid))
        # Fresh mounts, so that the kernel caches nothing: first with the call
        # records out of the page cache ("cold": the remote server reads every
        # record from disk), then with every cache of the machine dropped ("all
        # dropped": the directory and the inodes are read from disk too, for
        # both contenders), then with the records in the page cache ("warm": the
        # transport).
        for state in LS_STATES:
            with flechefs_mount(a, d, port, kh, env) as (mp, pid, logf):
                make_cold(state, a)
                dt_ls = timed(["ls", "-l", os.path.join(mp, "calls")])
                rss = max(rss, vmhwm(pid))
            results.append((label, "flechefs ls -l calls/ (%d, %s)" % (a.calls, state),
                            "%.2f s" % dt_ls))
            log("   flechefs ls -l calls/ (%s): %.2f s" % (state, dt_ls))
            with sshfs_mount(a, d, port, kh, env) as mp:
                make_cold(state, a)
                dt_ls = timed(["ls", "-l", os.path.join(mp, "calls")])
            results.append((label, "sshfs ls -l calls/ (%d, %s)" % (a.calls, state),
                            "%.2f s" % dt_ls))
            log("   sshfs ls -l calls/ (%s): %.2f s" % (state, dt_ls))
        warm_value(a)
    results.append((label, "flechefs daemon peak RSS (VmHWM)", "%.1f MiB" % (rss / MiB)))
    log("   flechefs VmHWM: %.1f MiB" % (rss / MiB))


def make_cache(a, tmp):
    if a.cache:
        with open(os.path.join(a.cache, "manifest.json")) as f:
            m = json.load(f)
    else:
        a.cache = os.path.join(tmp, "cache")
        manifest = os.path.join(tmp, "manifest.json")
        log("writing the cache (%d calls, a %d-byte value) in %s" % (a.calls, a.size, a.cache))
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE, "examples", "make-cache.py"),
                        "--calls", str(a.calls), "--big-value", str(a.size), "--manifest",
                        manifest, "-q", a.cache], check=True, timeout=3600)
        with open(manifest) as f:
            m = json.load(f)
        shutil.copy(manifest, os.path.join(a.cache, "manifest.json"))
    a.value_key = m["big_value"]
    a.value_path = os.path.join(a.cache, "values", a.value_key)
    a.size = os.path.getsize(a.value_path)
    a.calls = len(os.listdir(os.path.join(a.cache, "calls")))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.environ.get("FLECHEFS_BUILD",
                                                      os.path.join(SOURCE, "build")))
    p.add_argument("--cache", help="a cache made by an earlier run (kept)")
    p.add_argument("--calls", type=int, default=100000)
    p.add_argument("--size", type=int, default=1 << 30)
    p.add_argument("--delay", type=int, default=25, help="ms each way through the proxy")
    p.add_argument("--no-proxy", action="store_true")
    p.add_argument("--windows", action="store_true")
    p.add_argument("--repeat", type=int, default=3,
                   help="rounds of the cat throughputs on loopback (median reported)")
    a = p.parse_args()
    reason = sf.sshd_missing_reason()
    if reason:
        sys.exit("bench-ssh: " + reason)
    if not shutil.which("sshfs"):
        sys.exit("bench-ssh: sshfs is missing (apt-get install sshfs)")
    a.flechefs = find(a.build, "flechefs")
    a.server = find(a.build, "flechefs-server")
    a.sshread = find(a.build, "sshread", ("tests",))
    tmp = tempfile.mkdtemp(prefix="bench-ssh-")
    os.chmod(tmp, 0o755)
    results = []
    try:
        make_cache(a, tmp)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = sf.client_env(home)
        with sf.Sshd() as d:
            d.trust_host_key()
            warm_value(a)
            run_link(a, d, d.port, d.known_hosts, env, "loopback", results, True, a.repeat)
            if not a.no_proxy:
                with sf.delay_proxy(d, a.delay, a.build, tmp) as (pport, kh):
                    run_link(a, d, pport, kh, env, "%d ms each way" % a.delay, results,
                             False, 1)
        log("\nresults (%s, %d-byte value, %d calls):" % (CIPHER, a.size, a.calls))
        for label, what, val in results:
            log("  %-16s %-40s %s" % (label, what, val))
    finally:
        if not a.cache or a.cache.startswith(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
