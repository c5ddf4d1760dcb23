"""test_ssh_ipv6.py: a remote source naming an IPv6 address, written in brackets as
sshfs and scp accept it ("[::1]:path", "user@[::1]:path"), against a private sshd
listening on the IPv6 loopback only (sshd_fixture.Sshd(listen="::1")). Skips only
when this machine has no IPv6 loopback. Checks:

- an unknown host key is refused, naming "[::1]:PORT" and the key's fingerprint;
- StrictHostKeyChecking=accept-new mounts and writes OpenSSH's "[::1]:PORT" form,
  which OpenSSH's own client then accepts;
- a known_hosts file written by OpenSSH's client (plain, then hashed with
  ssh-keygen -H) is recognised; entries written by hand ([::1]:PORT, ::1 alone,
  another port, another address) are taken or not exactly as OpenSSH's client
  takes them;
- "root@[::1]:path" mounts, the demo cache reads back, and the log names the peer
  "root@[::1]:PORT";
- ssh -G gets the bare address: a "Host ::1" block of an ssh configuration gives the
  port, user, key and known_hosts file; an alias whose HostName is ::1 works too;
- -o ssh_command (the system ssh) reaches ::1;
- a path holding ':' and '@' after the bracketed host stays the path;
- a malformed bracketed source is refused with a message saying how to write one.
"""

import json
import os
import shutil
import subprocess
import sys

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("ssh_ipv6")


def opts_for(d, known_hosts=None, key=True, port=True):
    opts = ["-o", "ssh_config=none", "-o", "server=" + ml.server(), "-o", "ConnectTimeout=10",
            "-o", "UserKnownHostsFile=" + (known_hosts or d.known_hosts)]
    if port:
        opts += ["-o", "port=%d" % d.port]
    if key:
        opts += ["-o", "IdentityFile=" + d.user_key]
    return opts


def try_mount(source, opts, env, check=None):
    """Mounts (flechefs returns once mounted); returns (status, stderr, listing of
    calls/ or None). check(mp) runs while mounted."""
    with common.temp_dir("flechefs-mnt-") as mp:
        try:
            r = ml.mount(source, mp, opts, env=env, timeout=60)
            listing = None
            if r.returncode == 0 and ml.is_mounted(mp):
                listing = sorted(os.listdir(os.path.join(mp, "calls")))
                if check:
                    check(mp)
            return r.returncode, r.stderr.decode(errors="replace"), listing
        finally:
            ml.unmount(mp)
            ml.wait_for(lambda: not ml.daemon_pids(mp), 10)


def openssh(d, known_hosts, extra=()):
    """OpenSSH's client to ::1 with only test files; returns (status, stdout, stderr)."""
    argv = ["ssh", "-F", "/dev/null", "-p", str(d.port), "-i", d.user_key,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=" + known_hosts, "-o", "GlobalKnownHostsFile=/dev/null",
            "-l", d.user] + list(extra) + ["::1", "echo", "ok"]
    r = common.run(argv, timeout=30, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def test_known_hosts(d, env, cache, keys, tmp):
    src = "[::1]:" + cache
    fp = sf.fingerprint(d.host_key + ".pub")
    shown = "[::1]:%d" % d.port

    kh = os.path.join(tmp, "kh-new")
    rc, err, listing = try_mount(src, opts_for(d, kh), env)
    T.check(rc != 0 and listing is None, "unknown host [::1]: refused (rc %d)" % rc)
    T.check(shown in err and fp in err, "unknown host: names %s and %s: %r" % (shown, fp, err))

    rc, err, listing = try_mount(src, opts_for(d, kh) + ["-o", "StrictHostKeyChecking=accept-new"],
                                 env)
    T.equal(listing, keys, "accept-new on [::1]: mounted (rc %d): %s" % (rc, err))
    text = open(kh).read() if os.path.exists(kh) else ""
    T.check(text.startswith("[::1]:%d ssh-ed25519 " % d.port),
            "accept-new: OpenSSH's [::1]:port form written: %r" % text)
    rc, out, err = openssh(d, kh, ["-o", "StrictHostKeyChecking=yes"])
    T.equal((rc, out), (0, b"ok\n"), "OpenSSH accepts the line flechefs wrote (%s)" % err)

    # a file OpenSSH wrote, plain then hashed
    ossh = os.path.join(tmp, "kh-openssh")
    rc, out, err = openssh(d, ossh, ["-o", "StrictHostKeyChecking=accept-new"])
    T.equal((rc, out), (0, b"ok\n"), "OpenSSH to ::1 with accept-new (%s)" % err)
    line = open(ossh).read() if os.path.exists(ossh) else ""
    T.check(line.startswith("[::1]:%d " % d.port), "OpenSSH wrote [::1]:port: %r" % line)
    rc, err, listing = try_mount(src, opts_for(d, ossh), env)
    T.equal(listing, keys, "known_hosts written by OpenSSH: mounted (rc %d): %s" % (rc, err))
    common.run(["ssh-keygen", "-H", "-f", ossh], timeout=30)
    T.check(open(ossh).read().startswith("|1|"), "ssh-keygen -H hashed the entry")
    rc, err, listing = try_mount(src, opts_for(d, ossh), env)
    T.equal(listing, keys, "hashed [::1]:port entry: mounted (rc %d): %s" % (rc, err))

    # entries written by hand: flechefs decides as OpenSSH's client does. An entry
    # for another port does not vouch for this one; one without a port does (OpenSSH
    # 9.2 accepts it too).
    kind, b64 = open(d.host_key + ".pub").read().split()[:2]
    other_port = d.port + 1 if d.port < 65535 else d.port - 1
    for name, want in (("::1", True), ("[::1]:%d" % other_port, False),
                       ("[::1]:%d" % d.port, True), ("[::2]:%d" % d.port, False)):
        hand = os.path.join(tmp, "kh-hand")
        with open(hand, "w") as f:
            f.write("%s %s %s\n" % (name, kind, b64))
        rc, err, listing = try_mount(src, opts_for(d, hand), env)
        orc, _, oerr = openssh(d, hand, ["-o", "StrictHostKeyChecking=yes"])
        T.equal(orc == 0, want, "OpenSSH with an entry for %s: %s" % (name, oerr.strip()))
        if want:
            T.equal(listing, keys, "an entry for %s: mounted like OpenSSH (rc %d): %s"
                    % (name, rc, err))
        else:
            T.check(rc != 0 and listing is None and "StrictHostKeyChecking=accept-new" in err,
                    "an entry for %s: unknown host, as for OpenSSH: %r" % (name, err))


def test_sources(d, env, cache, keys, tmp):
    def content(mp):
        T.check(len(os.listdir(os.path.join(mp, "values"))) > 0, "[::1]: values/ listed")

    rc, err, listing = try_mount("root@[::1]:" + cache, opts_for(d), env, content)
    T.equal(listing, keys, "root@[::1]:path: mounted (rc %d): %s" % (rc, err))
    T.check("connected to root@[::1]:%d " % d.port in err,
            "the log names the peer root@[::1]:PORT: %r" % err)

    # ssh -G sees the bare address: a "Host ::1" block applies
    cfg = os.path.join(tmp, "ssh_config_v6")
    with open(cfg, "w") as f:
        f.write("Host ::1\n  Port %d\n  User %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n"
                % (d.port, d.user, d.user_key, d.known_hosts))
    opts = ["-o", "ssh_config=" + cfg, "-o", "server=" + ml.server()]
    rc, err, listing = try_mount("[::1]:" + cache, opts, env)
    T.equal(listing, keys, "ssh -G: a Host ::1 block gives port, user, key (rc %d): %s"
            % (rc, err))
    # an alias whose HostName is ::1 (the fixture's client configuration)
    opts = ["-o", "ssh_config=" + d.ssh_config, "-o", "server=" + ml.server()]
    rc, err, listing = try_mount("flechefs-test-alias:" + cache, opts, env)
    T.equal(listing, keys, "ssh -G: an alias with HostName ::1 (rc %d): %s" % (rc, err))

    # the system ssh client
    opts = ["-o", "ssh_command=" + d.ssh_command(), "-o", "server=" + ml.server()]
    rc, err, listing = try_mount("h:" + cache, opts, env)
    T.equal(listing, keys, "ssh_command to ::1 (rc %d): %s" % (rc, err))

    # ':' and '@' in the path after the bracketed host
    odd = os.path.join(tmp, "v1:cache@x")
    shutil.copytree(cache, odd)
    rc, err, listing = try_mount("root@[::1]:" + odd, opts_for(d), env)
    T.equal(listing, keys, "a path with ':' and '@' after [::1] (rc %d): %s" % (rc, err))

    # malformed
    for bad in ("[::1]x:" + cache, "root@[::1:" + cache):
        rc, err, listing = try_mount(bad, opts_for(d), env)
        T.check(rc != 0 and listing is None and "bad remote source" in err and
                "[user@][::1]:[path]" in err, "'%s' refused, saying how: %r" % (bad[:12], err))


def main():
    sf.require_sshd()
    ml.require_fuse()
    reason = sf.ipv6_missing_reason()
    if reason:
        # not a missing package: a machine (or container) without IPv6 at all
        common.skip("no IPv6 loopback here: " + reason)
    with common.temp_dir("flechefs-ssh-ipv6-") as tmp:
        os.chmod(tmp, 0o755)
        cache = os.path.join(tmp, "cache")
        manifest = os.path.join(tmp, "manifest.json")
        r = common.run([sys.executable, os.path.join(common.SOURCE, "examples", "make-cache.py"),
                        "--demo", "--manifest", manifest, cache], timeout=60)
        if r.returncode != 0:
            common.fail("make-cache.py --demo failed: %s" % r.stderr.decode(errors="replace"))
        with open(manifest) as f:
            keys = sorted(c["key"] for c in json.load(f)["calls"])
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = sf.client_env(home)
        with sf.Sshd(listen="::1") as d:
            d.trust_host_key()
            T.check(d.host_key_line().startswith("[::1]:%d " % d.port),
                    "the fixture writes [::1]:port")
            T.run(test_known_hosts, d, env, cache, keys, tmp)
            T.run(test_sources, d, env, cache, keys, tmp)
            if T.failures:
                print("sshd log (tail):\n" + d.log()[-3000:])
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
