"""test_ssh_mount.py: flechefs over SSH against a private sshd on 127.0.0.1
(sshd_fixture.py): fixture caches (temporary copies) mounted through libssh2 and
through -o ssh_command, with the content checks of the local mount test
(test_mount_fixtures.py: keys, call.json, one-line files, symlinks, value bytes,
prefixes, by-name/, eviction); a host alias resolved through `ssh -G` with a private
ssh_config, and a ProxyJump host there (handed to the system ssh client); `-p PORT`; the signed cache with its key exported by -o setup; the server's
stderr in the daemon's log; read-only mounts. The client never sees the real ~/.ssh
(HOME is a temp dir; every file is passed explicitly).
"""

import os
import sys

import common
import mountlib as ml
import sshd_fixture as sf
import test_mount_fixtures as tmf

T = common.Checks("ssh_mount")
tmf.T = T  # the content checks report into this test


def content_checks(label, name, root, mp, exp, key_hex=None, evict=True):
    """The checks of the local mount test; name is the fixture cache's name."""
    print("content checks: %s (%s)" % (label, name), flush=True)
    calls = {c["key"]: c for c in exp["calls"]}
    values = {v["digest"]: v for v in exp["values"]}
    T.equal(sorted(os.listdir(os.path.join(mp, "calls"))), sorted(calls),
            "%s: keys in calls/" % name)
    T.equal(sorted(os.listdir(os.path.join(mp, "values"))), sorted(values),
            "%s: keys in values/" % name)
    T.equal(sorted(os.listdir(mp)), ["by-name", "calls", "digests", "query", "values"],
            "%s: top level" % name)
    for key, c in calls.items():
        tmf.check_call(name, mp, key, c)
    for key, v in values.items():
        tmf.check_value(name, mp, key, v, key_hex)
    tmf.check_prefixes(name, mp, exp)
    tmf.check_by_name(name, mp, exp)
    if evict:
        tmf.check_evict(name, root, mp, exp)


def test_libssh2(d, env, exp):
    for name in ("files", "pickle_sql"):
        with common.temp_copy(name) as root:
            opts = d.flechefs_opts() + ["-o", "server=" + ml.server()]
            with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
                content_checks("libssh2", name, root, mp, exp["caches"][name])


def test_ssh_command(d, env, exp):
    with common.temp_copy("files") as root:
        opts = ["-o", "ssh_command=" + d.ssh_command(), "-o", "server=" + ml.server()]
        # the host part of the source is not used with ssh_command
        with ml.mounted("unused-host:" + root, opts, env=env) as mp:
            content_checks("ssh_command", "files", root, mp, exp["caches"]["files"])


def processes_with(text):
    """PIDs whose command line contains text."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def test_ssh_command_unmount(d, env, exp):
    """Unmounting an ssh_command mount ends the daemon and the ssh client it ran."""
    with common.temp_copy("files") as root, common.temp_dir("flechefs-mnt-") as mp:
        opts = ["-o", "ssh_command=" + d.ssh_command(), "-o", "server=" + ml.server()]
        daemons = []
        try:
            r = ml.mount("h:" + root, mp, opts, env=env)
            T.equal(r.returncode, 0, "ssh_command mount: %r" % r.stderr)
            daemons = ml.daemon_pids(mp)
            T.check(len(processes_with(d.user_key)) > 0, "ssh_command: the ssh client runs")
            ml.unmount(mp)
            T.check(ml.wait_for(lambda: not any(os.path.exists("/proc/%d" % p)
                                                for p in daemons), 15),
                    "ssh_command: the daemon exits after unmount")
            T.check(ml.wait_for(lambda: not processes_with(d.user_key), 15),
                    "ssh_command: no ssh client left after unmount (%r)"
                    % processes_with(d.user_key))
        finally:
            ml.unmount(mp)
            for pid in daemons + processes_with(d.user_key):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass


def test_alias_and_port(d, env, exp):
    """Host alias from a private ssh_config (ssh -G), a ProxyJump host (the system ssh
    client takes over), and -p PORT on the command line."""
    with common.temp_copy("files") as root:
        opts = ["-o", "ssh_config=" + d.ssh_config, "-o", "server=" + ml.server()]
        with ml.mounted("flechefs-test-alias:" + root, opts, env=env) as mp:
            exp_files = exp["caches"]["files"]
            T.equal(sorted(os.listdir(os.path.join(mp, "calls"))),
                    sorted(c["key"] for c in exp_files["calls"]), "alias: keys in calls/")
        # a ProxyJump in the configuration: handed to the system ssh client
        with ml.mounted("flechefs-test-jump:" + root, opts, env=env) as mp:
            T.equal(sorted(os.listdir(os.path.join(mp, "calls"))),
                    sorted(c["key"] for c in exp_files["calls"]), "ProxyJump: keys in calls/")
        opts = ["-p", str(d.port), "-o", "IdentityFile=" + d.user_key,
                "-o", "UserKnownHostsFile=" + d.known_hosts, "-o", "ssh_config=none",
                "-o", "server=" + ml.server()]
        with ml.mounted("root@127.0.0.1:" + root, opts, env=env) as mp:
            T.equal(len(os.listdir(os.path.join(mp, "values"))), len(exp_files["values"]),
                    "-p PORT: keys in values/")


def test_signed_with_setup(d, env, exp):
    """The server's secret comes from -o setup (the remote environment)."""
    key_hex = common.secret_key_hex()
    with common.temp_copy("signed") as root:
        opts = d.flechefs_opts() + ["-o", "server=" + ml.server(),
                                    "-o", "setup=export FLECHE_SECRET_KEY=" + key_hex]
        with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
            content_checks("key exported by -o setup", "signed", root, mp,
                           exp["caches"]["signed"], key_hex, evict=False)


def test_read_only(d, env, exp):
    with common.temp_copy("files") as root:
        opts = d.flechefs_opts() + ["-o", "server=" + ml.server(), "-o", "ro"]
        with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
            key = exp["caches"]["files"]["calls"][0]["key"]
            r = common.run(["rmdir", os.path.join(mp, "calls", key)], timeout=30)
            T.check(r.returncode != 0, "read-only over ssh: rmdir refused")
            T.check(os.path.exists(os.path.join(root, "calls", key)),
                    "read-only over ssh: record still on disk")


def test_foreground_log(d, env, exp):
    """-f: the remote server's standard error reaches the daemon's log."""
    with common.temp_copy("files") as root:
        wrapper = os.path.join(os.path.dirname(root), "srv.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\necho 'hello from the remote side' >&2\nexec %s \"$@\"\n"
                    % ml.server())
        os.chmod(wrapper, 0o755)
        opts = d.flechefs_opts() + ["-o", "server=" + wrapper]
        with ml.foreground("127.0.0.1:" + root, opts, env=env) as (p, mp):
            T.check(len(os.listdir(os.path.join(mp, "calls"))) > 0, "foreground: calls/ listed")
        err = p.stderr.read().decode(errors="replace")
        T.check("hello from the remote side" in err,
                "foreground: remote stderr in the log: %r" % err[-500:])


def main():
    sf.require_sshd()
    ml.require_fuse()
    exp = common.expected()
    with common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as d:
        d.trust_host_key()
        env = sf.client_env(home)
        for fn in (test_libssh2, test_ssh_command, test_ssh_command_unmount, test_alias_and_port,
                   test_signed_with_setup,
                   test_read_only, test_foreground_log):
            T.run(fn, d, env, exp)
        if T.failures:
            print("sshd log (tail):\n" + d.log()[-3000:])
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
