"""test_ssh_source.py: what flechefs mounts over SSH and the words it uses when the
remote side is not what was meant, against a private sshd on 127.0.0.1
(sshd_fixture.py): a remote directory holding neither call storage nor values
(`host:/etc`-like, or a fleche project's directory) is a one-line error naming the
remote path and what was looked for, and mounts nothing; an identity file given
with -o IdentityFile that cannot be read is named with the reason; a remote host
without flechefs-server (status 127) hints at -o server=; /proc/mounts names a
remote mount host:path, as sshfs does, and statfs counts the remote cache's files.
"""

import os
import sys

import common
import mountlib as ml
import sshd_fixture as sf
import test_mount_source as tms

T = common.Checks("ssh_source")


try_mount = ml.try_mount


def test_not_a_cache(d, env):
    opts = d.flechefs_opts() + ["-o", "server=" + ml.server()]
    with common.temp_dir() as tmp:
        etc = os.path.join(tmp, "etc")
        os.mkdir(etc)
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
        rc, err, listing = try_mount("127.0.0.1:" + etc, opts, env)
        T.check(rc != 0 and listing is None, "host:/etc-like: refused (rc %d)" % rc)
        T.check(err.count("not a fleche cache") == 1 and "looked in" not in err,
                "host:/etc-like: one line: %r" % err)
        for n in ("'127.0.0.1:%s'" % etc, "not a fleche cache", "calls/", "calls.db",
                  "values/"):
            T.check(n in err, "host:/etc-like: message says %r: %r" % (n, err))
        with open(os.path.join(etc, "fleche.toml"), "w") as f:
            f.write("[caches.default]\n")
        rc, err, listing = try_mount("127.0.0.1:" + etc, opts, env)
        T.check(rc != 0 and "fleche.toml" in err and "-o cache=NAME" in err,
                "remote project directory: points at its caches: %r" % err)
        os.mkdir(os.path.join(etc, "values"))
        rc, err, listing = try_mount("127.0.0.1:" + etc, opts, env)
        T.check(rc == 0 and listing == [], "remote values/ alone: mounts (%r)" % err)


def test_identity_file(d, env):
    with common.temp_copy("files") as root:
        opts = ["-o", "port=%d" % d.port, "-o", "IdentityFile=/nope/id_ed25519",
                "-o", "UserKnownHostsFile=" + d.known_hosts, "-o", "ssh_config=/dev/null"]
        rc, err, listing = try_mount("127.0.0.1:" + root, opts, env)
        T.check(rc != 0 and listing is None, "unreadable identity file: refused (rc %d)" % rc)
        T.check("'/nope/id_ed25519'" in err and "No such file or directory" in err,
                "unreadable identity file: named with the reason: %r" % err)


def test_missing_server_hint(d, env):
    with common.temp_copy("files") as root:
        opts = d.flechefs_opts() + ["-o", "server=flechefs-server-not-installed"]
        rc, err, listing = try_mount("127.0.0.1:" + root, opts, env)
        T.check(rc != 0 and "127" in err and "-o server=" in err,
                "no server on the remote: hints at -o server=: %r" % err)


def test_names_and_statfs(d, env, exp):
    with common.temp_copy("files") as root:
        opts = d.flechefs_opts() + ["-o", "server=" + ml.server()]
        with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
            T.equal(tms.mount_entry(mp), ("127.0.0.1:" + root, "fuse.flechefs"),
                    "/proc/mounts: host:path, fuse.flechefs")
            T.equal(os.statvfs(mp).f_files, len(exp["calls"]) + len(exp["values"]),
                    "statfs over SSH: files = calls + values")


def main():
    sf.require_sshd()
    ml.require_fuse()
    with common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as d:
        d.trust_host_key()
        env = sf.client_env(home)
        T.run(test_not_a_cache, d, env)
        T.run(test_identity_file, d, env)
        T.run(test_missing_server_hint, d, env)
        T.run(test_names_and_statfs, d, env, common.expected()["caches"]["files"])
        if T.failures:
            print("sshd log (tail):\n" + d.log()[-3000:])
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
