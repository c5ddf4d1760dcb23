"""test_mount_source.py: what flechefs mounts and how it says which cache it is, on
local sources: a directory holding neither call storage nor values (an empty one, one
like /etc, a fleche project's directory with only its fleche.toml) is a one-line
error naming what was looked for and mounts nothing; a cache fleche has made but not
filled yet (empty calls/ and values/, or calls.db alone) mounts.
"""

import os
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


def main():
    ml.require_fuse()
    common.fixtures_dir()
    T.run(test_not_a_cache)
    T.run(test_new_caches_mount)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
