"""test_install.py: the install story, end to end.

1. `cmake --install BUILD --prefix TMP` puts flechefs, flechefs-server, both man
   pages and the mount helper sbin/mount.fuse.flechefs (a link to flechefs) there;
   the installed flechefs mounts the demo cache with the flechefs-server next to it;
   the uninstall target removes every file the install wrote.
2. `cpack` makes a Debian package; `apt-get install ./flechefs_*.deb` installs it
   (its Depends met by the machine), `man -w flechefs` finds the page, the installed
   programs mount the demo cache, `mount -t fuse.flechefs SRC MNT -o ro` mounts
   through the helper, an fstab line of a remote cache over SSH (with _netdev,
   port=, IdentityFile=, ro) mounts with `mount -T FSTAB MNT` and with
   `mount -a -T FSTAB`, and `apt-get remove` takes everything away again.

Part 2 changes the machine (it installs a package), so it runs only as root on
Debian (dpkg, apt-get), holds a lock against another run of itself, never touches
a flechefs package it did not install (it skips, saying so), and removes the package
in a finally block: running it twice leaves the machine as it found it.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import sys

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("install")
SOURCE = os.environ.get("FLECHEFS_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
LOCK = "/run/lock/flechefs-install-test.lock"
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]


def make_demo_cache(path):
    r = common.run(["/usr/bin/python3", os.path.join(SOURCE, "examples", "make-cache.py"),
                    "--demo", path], timeout=120)
    if r.returncode != 0:
        raise AssertionError("make-cache.py --demo failed: %r" % r.stderr)
    return sorted(os.listdir(os.path.join(path, "calls")))


def server_exe_of(mp):
    """The executable of the server process under the daemon mounted on mp."""
    for pid in ml.daemon_pids(mp) or []:
        for child in ml.children(pid):
            with contextlib.suppress(OSError):
                return os.readlink("/proc/%d/exe" % child)
    return None


def daemon_pids_any(mp):
    """PIDs of flechefs daemons (under any name) serving mp, from /proc/*/cmdline."""
    mp = os.path.realpath(mp)
    return ml.pids_where(lambda argv: any(
        os.path.realpath(a.decode(errors="replace")) == mp for a in argv[1:] if a)
        and os.path.basename(argv[0]).decode(errors="replace") in
        ("flechefs", "mount.fuse.flechefs"))


def mount_options(mp):
    mp = os.path.realpath(mp)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mp:
                return fields[5].split(",")
    return []


@contextlib.contextmanager
def kept_manifest(build):
    """Restores BUILD/install_manifest.txt afterwards (or removes it when there was
    none): a developer's own install must stay uninstallable after this test."""
    path = os.path.join(build, "install_manifest.txt")
    before = None
    with contextlib.suppress(FileNotFoundError):
        with open(path, "rb") as f:
            before = f.read()
    try:
        yield
    finally:
        if before is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            with open(path, "wb") as f:
                f.write(before)


def test_prefix_install(build, calls):
    with common.temp_dir("flechefs-prefix-") as prefix, common.temp_dir() as tmp, \
            kept_manifest(build):
        r = common.run(["cmake", "--install", build, "--prefix", prefix], timeout=120)
        T.equal(r.returncode, 0, "cmake --install: %r" % r.stderr)
        for rel in ("bin/flechefs", "bin/flechefs-server", "share/man/man1/flechefs.1",
                    "share/man/man1/flechefs-server.1"):
            T.check(os.path.isfile(os.path.join(prefix, rel)), "installed %s" % rel)
        helper = os.path.join(prefix, "sbin", "mount.fuse.flechefs")
        T.check(os.path.islink(helper) and
                os.path.realpath(helper) == os.path.join(os.path.realpath(prefix), "bin",
                                                         "flechefs"),
                "sbin/mount.fuse.flechefs links to bin/flechefs")
        if shutil.which("man"):
            r = common.run(["man", "-M", os.path.join(prefix, "share", "man"), "-w", "flechefs"])
            T.check(r.returncode == 0 and b"flechefs.1" in r.stdout, "man -M finds the page")
        cache = os.path.join(tmp, "cache")
        make_demo_cache(cache)
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        try:
            r = common.run([os.path.join(prefix, "bin", "flechefs"), cache, mp], timeout=60,
                           env=ml.daemon_env())
            T.check(r.returncode == 0 and sorted(os.listdir(os.path.join(mp, "calls"))) == calls,
                    "the installed flechefs mounts the demo cache: %r" % r.stderr)
            T.equal(server_exe_of(mp), os.path.join(prefix, "bin", "flechefs-server"),
                    "it runs the flechefs-server installed next to it")
        finally:
            ml.unmount(mp)
        r = common.run(["cmake", "--build", build, "--target", "uninstall"], timeout=120)
        T.equal(r.returncode, 0, "uninstall target: %r" % r.stderr[-500:])
        left = [os.path.join(d, f) for d, _, fs in os.walk(prefix) for f in fs]
        T.equal(left, [], "uninstall removes every installed file")


def dpkg_installed(name):
    r = common.run(["dpkg-query", "-W", "-f=${Status}", name])
    return r.returncode == 0 and b"install ok installed" in r.stdout


def deb_missing_reason():
    if os.geteuid() != 0:
        return "not root: installing a Debian package needs root"
    for tool in ("dpkg-query", "apt-get", "cpack", "dpkg-shlibdeps"):
        if not shutil.which(tool):
            return "no %s: not a Debian system with the packaging tools" % tool
    return None


def test_fstab_ssh(cache, calls, tmp):
    with common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as d:
        d.trust_host_key()
        env = sf.client_env(home)
        mp = os.path.join(tmp, "ssh-mnt")
        os.mkdir(mp)
        fstab = os.path.join(tmp, "fstab")
        opts = ",".join(["_netdev", "port=%d" % d.port, "IdentityFile=" + d.user_key,
                         "UserKnownHostsFile=" + d.known_hosts, "ssh_config=none",
                         "server=/usr/bin/flechefs-server", "ro"])
        with open(fstab, "w") as f:
            f.write("# a remote fleche cache\n127.0.0.1:%s %s fuse.flechefs %s 0 0\n"
                    % (cache, mp, opts))
        for what, argv in (("mount -T FSTAB MNT", ["mount", "-T", fstab, mp]),
                           ("mount -a -T FSTAB", ["mount", "-a", "-T", fstab])):
            try:
                r = common.run(argv, timeout=60, env=env)
                T.check(r.returncode == 0 and ml.is_mounted(mp),
                        "%s: mounted (%r)" % (what, r.stderr))
                if ml.is_mounted(mp):
                    T.equal(sorted(os.listdir(os.path.join(mp, "calls"))), calls,
                            "%s: the calls" % what)
                    T.check("ro" in mount_options(mp), "%s: read-only" % what)
            finally:
                ml.unmount(mp)


def test_deb(build, calls):
    reason = deb_missing_reason()
    if reason:
        print("part 2 skipped: " + reason)
        if common.in_ci():
            T.check(False, "the .deb test runs under CI: " + reason)
        return
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dpkg_installed("flechefs"):
            print("part 2 skipped: a flechefs package is installed already, and this test "
                  "removes only what it installed (apt-get remove flechefs to run it)")
            T.check(not common.in_ci(), "no flechefs package installed before the test")
            return
        # cpack installs into its staging directory and rewrites the manifest too
        with common.temp_dir("flechefs-deb-") as tmp, kept_manifest(build):
            installed = False
            try:
                r = common.run(["cpack", "-B", tmp], timeout=600, cwd=build)
                debs = glob.glob(os.path.join(tmp, "flechefs_*.deb"))
                T.check(r.returncode == 0 and len(debs) == 1, "cpack makes one .deb: %r"
                        % r.stderr[-500:])
                if len(debs) != 1:
                    return
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                r = common.run(APT + ["install", debs[0]], timeout=600, env=env)
                installed = dpkg_installed("flechefs")
                T.check(r.returncode == 0 and installed, "apt-get install ./flechefs_*.deb: %r"
                        % r.stderr[-800:])
                if not installed:
                    return
                for path in ("/usr/bin/flechefs", "/usr/bin/flechefs-server",
                             "/usr/sbin/mount.fuse.flechefs"):
                    T.check(os.path.exists(path), "the package installs %s" % path)
                if shutil.which("man"):
                    r = common.run(["man", "-w", "flechefs"])
                    T.check(r.returncode == 0 and
                            b"/usr/share/man/man1/flechefs.1" in r.stdout,
                            "man -w flechefs: %r" % r.stdout)
                cache = os.path.join(tmp, "cache")
                os.mkdir(cache)
                cache = os.path.join(cache, "demo")
                make_demo_cache(cache)
                mp = os.path.join(tmp, "mnt")
                os.mkdir(mp)
                try:
                    r = common.run(["/usr/bin/flechefs", cache, mp], timeout=60,
                                   env=ml.daemon_env())
                    T.check(r.returncode == 0 and
                            sorted(os.listdir(os.path.join(mp, "calls"))) == calls,
                            "installed flechefs mounts the demo cache: %r" % r.stderr)
                    T.equal(server_exe_of(mp), "/usr/bin/flechefs-server",
                            "with the installed server")
                finally:
                    ml.unmount(mp)
                try:
                    r = common.run(["mount", "-t", "fuse.flechefs", "-o", "ro", cache, mp],
                                   timeout=60, env=ml.daemon_env())
                    T.check(r.returncode == 0 and ml.is_mounted(mp) and
                            sorted(os.listdir(os.path.join(mp, "calls"))) == calls,
                            "mount -t fuse.flechefs: %r" % r.stderr)
                    T.check("ro" in mount_options(mp), "mount -t ... -o ro: read-only")
                    r = common.run(["umount", mp], timeout=30)
                    T.check(r.returncode == 0 and not ml.is_mounted(mp), "umount")
                    T.check(ml.wait_for(lambda: not daemon_pids_any(mp), 10),
                            "the daemon ends after umount")
                finally:
                    ml.unmount(mp)
                if sf.sshd_missing_reason():
                    print("fstab over SSH skipped: " + sf.sshd_missing_reason())
                else:
                    test_fstab_ssh(cache, calls, tmp)
                r = common.run(APT + ["remove", "flechefs"], timeout=600, env=env)
                installed = dpkg_installed("flechefs")
                T.check(r.returncode == 0 and not installed, "apt-get remove flechefs: %r"
                        % r.stderr[-500:])
                for path in ("/usr/bin/flechefs", "/usr/bin/flechefs-server",
                             "/usr/sbin/mount.fuse.flechefs",
                             "/usr/share/man/man1/flechefs.1"):
                    T.check(not os.path.lexists(path), "removed: %s" % path)
            finally:
                if installed or dpkg_installed("flechefs"):
                    common.run(APT + ["purge", "flechefs"], timeout=600,
                               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def main():
    ml.require_fuse()
    build = common.build_dir()
    with common.temp_dir() as tmp:
        calls = make_demo_cache(os.path.join(tmp, "probe"))
    T.run(test_prefix_install, build, calls)
    T.run(test_deb, build, calls)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
