"""test_mount_source.py: what flechefs mounts and how it says which cache it is, on
local sources: a directory holding neither call storage nor values (an empty one, one
like /etc, a fleche project's directory with only its fleche.toml) is a one-line
error naming what was looked for and mounts nothing; a cache fleche has made but not
filled yet (empty calls/ and values/, or calls.db alone) mounts. Option checks: a
readahead_kb that is not a number of KiB is refused; SSH options with a local source
are named in a warning (and the mount goes ahead). `cp -rL` of a call folder copies
its argument and result values as files, as the documentation says. /proc/mounts
names the cache as sshfs does (the directory, absolute, type fuse.flechefs; a comma
in the path survives), and statfs answers the counts of calls and values as files
and their size as blocks.
"""

import filecmp
import os
import shutil
import sys

import common
import mountlib as ml

T = common.Checks("mount_source")


def refused(source, mp, needles, what):
    r = common.run([ml.flechefs(), source, mp], timeout=30)
    err = r.stderr.decode(errors="replace")
    T.check(r.returncode != 0, "%s: non-zero exit (%d)" % (what, r.returncode))
    T.check(err.count("\n") == 1 and err.startswith("flechefs: "),
            "%s: one line (%r)" % (what, err))
    for n in needles:
        T.check(n in err, "%s: message says %r (%r)" % (what, n, err))
    T.check(not ml.is_mounted(mp), "%s: nothing mounted" % what)
    ml.unmount(mp)


def test_not_a_cache():
    looked_for = ["not a fleche cache", "calls/", "calls.db", "values/"]
    with common.temp_dir() as tmp:
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        refused(empty, mp, looked_for + ["'%s'" % empty], "empty directory")
        etc = os.path.join(tmp, "etc")
        os.mkdir(etc)
        for name in ("passwd", "hosts"):
            with open(os.path.join(etc, name), "w") as f:
                f.write("x\n")
        os.mkdir(os.path.join(etc, "ssh"))
        refused(etc, mp, looked_for, "a directory of other files")
        # a relative source: the message names it as given and where it looked
        refused(os.path.relpath(etc), mp, ["'%s'" % os.path.relpath(etc), etc],
                "relative source")
        project = os.path.join(tmp, "project")
        os.mkdir(project)
        with open(os.path.join(project, "fleche.toml"), "w") as f:
            f.write('[caches.default]\nvalues.type = "cloudpickle"\n')
        refused(project, mp, looked_for + ["fleche.toml", "-o cache=NAME", "default cache"],
                "fleche project directory")


def test_new_caches_mount():
    with common.temp_dir() as tmp:
        fresh = os.path.join(tmp, "fresh")
        for sub in ("calls", "values"):
            os.makedirs(os.path.join(fresh, sub))
        with ml.mounted(fresh) as mp:
            T.equal(os.listdir(os.path.join(mp, "calls")), [], "fresh files cache: no calls")
        only_values = os.path.join(tmp, "only-values")
        os.makedirs(os.path.join(only_values, "values"))
        with ml.mounted(only_values) as mp:
            T.equal(os.listdir(os.path.join(mp, "calls")), [], "values/ alone mounts")
    with common.temp_copy("pickle_sql") as root:
        T.check(not os.path.exists(os.path.join(root, "calls")), "sql fixture has no calls/")
        with ml.mounted(root) as mp:
            T.check(len(os.listdir(os.path.join(mp, "calls"))) > 0, "calls.db cache mounts")


def test_options(root):
    with common.temp_dir() as tmp:
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        for bad in ("-1", "abc", "12x", "", "4294967296"):
            r = common.run([ml.flechefs(), "-o", "readahead_kb=" + bad, root, mp], timeout=30)
            err = r.stderr.decode(errors="replace")
            T.check(r.returncode != 0 and "readahead_kb" in err and not ml.is_mounted(mp),
                    "readahead_kb=%s refused: %r" % (bad, err))
            ml.unmount(mp)
    r, err, listing = ml.try_mount(root, ["-o", "readahead_kb=0"])
    T.check(r == 0 and listing, "readahead_kb=0 accepted: %r" % err)
    r, err, listing = ml.try_mount(root, ["-o", "IdentityFile=/nope", "-p", "2222"])
    T.check(r == 0 and listing, "SSH options with a local source: mounts anyway (%r)" % err)
    T.check("warning" in err and "IdentityFile" in err and "local" in err,
            "SSH options with a local source: warned about: %r" % err)
    r, err, listing = ml.try_mount(root, ["-o", "ro"])
    T.check(r == 0 and "warning" not in err, "no warning without SSH options: %r" % err)


def test_copy_call(root, exp):
    call = next(c for c in exp["calls"] if c.get("result_digest"))
    with ml.mounted(root) as mp, common.temp_dir() as tmp:
        dest = os.path.join(tmp, "call")
        r = common.run(["cp", "-rL", os.path.join(mp, "calls", call["key"]), dest])
        T.equal(r.returncode, 0, "cp -rL of a call folder: %r" % r.stderr)
        res = os.path.join(dest, "result")
        T.check(os.path.isfile(res) and not os.path.islink(res), "cp -rL: result is a file")
        T.check(filecmp.cmp(res, os.path.join(mp, "calls", call["key"], "result"),
                            shallow=False), "cp -rL: result holds the value's bytes")


def mount_entry(mp):
    """(source, type) of mp in /proc/self/mountinfo, with octal escapes decoded."""
    mp = os.path.realpath(mp)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if left.split()[4] == mp:
                fstype, source = right.split()[:2]
                return (source.encode().decode("unicode_escape"), fstype)
    return None


def test_names_and_statfs(exp):
    with common.temp_dir() as tmp:
        root = os.path.join(tmp, "a cache, with a comma")
        shutil.copytree(os.path.join(common.fixtures_dir(), "files"), root)
        rel = os.path.relpath(root)
        with ml.mounted(rel) as mp:
            T.equal(mount_entry(mp), (root, "fuse.flechefs"),
                    "/proc/mounts: the absolute directory, fuse.flechefs")
            sv = os.statvfs(mp)
            T.equal(sv.f_files, len(exp["calls"]) + len(exp["values"]),
                    "statfs: files = calls + values")
            size = sum(os.stat(os.path.join(root, sub, n)).st_size
                       for sub in ("calls", "values") for n in os.listdir(os.path.join(root, sub)))
            T.check(size <= sv.f_blocks * sv.f_frsize <= 2 * size + 1024 * 1024,
                    "statfs: blocks cover the files (%d bytes in %d blocks of %d)"
                    % (size, sv.f_blocks, sv.f_frsize))
            r = common.run(["df", "-P", mp])
            T.check(root.encode() in r.stdout, "df names the cache: %r" % r.stdout)
        with ml.mounted(rel, ["-o", "fsname=mine"]) as mp:
            T.equal(mount_entry(mp)[0], "mine", "-o fsname= wins")


def main():
    ml.require_fuse()
    common.fixtures_dir()
    T.run(test_not_a_cache)
    T.run(test_new_caches_mount)
    with common.temp_copy("files") as root:
        T.run(test_options, root)
        T.run(test_copy_call, root, common.expected()["caches"]["files"])
    T.run(test_names_and_statfs, common.expected()["caches"]["files"])
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
