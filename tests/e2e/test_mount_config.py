"""test_mount_config.py: flechefs serving a cache named in fleche.toml, the drop-in
for fleche's own remote: locally `flechefs --cache NAME MOUNTPOINT` from the directory
holding fleche.toml, `flechefs -o cache=NAME DIR MOUNTPOINT`, a stack of two caches
mounted as one; over SSH (a private sshd on 127.0.0.1) `flechefs host:DIR MOUNTPOINT
-o cache=NAME` and `flechefs host: MOUNTPOINT -o workdir=DIR -o cache=NAME` (the
signed cache's key coming from fleche.toml on the remote). A cache the server cannot
serve fails the mount with the server's one-line reason and leaves no mount behind.
The configuration is the real-cache fixture's own fleche.toml (written for fleche).
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mountlib as ml  # noqa: E402
import sshd_fixture as sf  # noqa: E402

T = common.Checks("mount_config")
STACK = '''
# a stack of two of the caches above, for the test
[[both]]
template = "cloudpickle"
root = "files"
[[both]]
values = {type = "pickle", root = "gzip/values", compress = true}
calls = {type = "pickle", root = "gzip/calls", compress = true}
'''


def call_keys(exp, *names):
    return sorted(set(c["key"] for n in names for c in exp["caches"][n]["calls"]))


def mount_in(cwd, args, env=None):
    """flechefs ARGS MOUNTPOINT run in cwd; yields the mount point, always unmounts."""
    mp = tempfile.mkdtemp(prefix="flechefs-mnt-")
    e = dict(os.environ)
    e.update(env or {})
    r = common.run([ml.flechefs()] + args + [mp], timeout=60, cwd=cwd, env=e)
    return r, mp


def check_mount(what, cwd, args, want, env=None):
    r, mp = mount_in(cwd, args, env)
    try:
        if not T.check(r.returncode == 0 and ml.is_mounted(mp),
                       "%s: mounted (%d: %s)" % (what, r.returncode, r.stderr.decode())):
            return
        T.equal(sorted(os.listdir(os.path.join(mp, "calls"))), want, what + ": calls/")
        for key in want[:3]:
            with open(os.path.join(mp, "calls", key, "call.json"), "rb") as f:
                T.check(len(f.read()) > 0, what + ": calls/%s/call.json reads" % key[:8])
    finally:
        ml.unmount(mp)
        os.rmdir(mp)


def test_local(d, exp):
    check_mount("--cache files", d, ["--cache", "files"], call_keys(exp, "files"))
    check_mount("--cache=default", d, ["--cache=default"], call_keys(exp, "files"))
    check_mount("-o cache=gzip DIR", "/", ["-o", "cache=gzip", d], call_keys(exp, "gzip"))
    check_mount("a stack", d, ["--cache", "both"], call_keys(exp, "files", "gzip"))
    check_mount("sql calls", d, ["--cache", "pickle_sql"], call_keys(exp, "pickle_sql"))


def test_unservable(d, exp):
    r, mp = mount_in(d, ["--cache", "stacked"])
    try:
        err = r.stderr.decode()
        T.check(r.returncode != 0, "memory layer: the mount fails")
        T.check(not ml.is_mounted(mp), "memory layer: nothing mounted")
        T.check("[[stacked]] #1" in err and "'memory'" in err and "fleche.toml" in err,
                "memory layer: the server's reason reaches the user: %r" % err)
    finally:
        ml.unmount(mp)
        os.rmdir(mp)


def test_ssh(d, exp):
    if os.geteuid() != 0 or sf.sshd_missing_reason():
        print("note: no private sshd here; the SSH part did not run")
        return
    with common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as sshd:
        sshd.trust_host_key()
        env = sf.client_env(home)
        opts = sshd.flechefs_opts() + ["-o", "server=" + ml.server()]
        check_mount("ssh host:DIR -o cache=pickle_sql", "/",
                    opts + ["-o", "cache=pickle_sql", "127.0.0.1:" + d],
                    call_keys(exp, "pickle_sql"), env)
        check_mount("ssh host: -o workdir=DIR -o cache=signed", "/",
                    opts + ["-o", "workdir=" + d, "-o", "cache=signed", "127.0.0.1:"],
                    call_keys(exp, "signed"), env)


def main():
    ml.require_fuse()
    exp = common.expected()
    with common.temp_dir() as tmp:
        d = os.path.join(os.path.realpath(tmp), "project")
        shutil.copytree(common.fixtures_dir(), d)
        with open(os.path.join(d, "fleche.toml"), "a", encoding="utf-8") as f:
            f.write(STACK)
        for fn in (test_local, test_unservable, test_ssh):
            T.run(fn, d, exp)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
