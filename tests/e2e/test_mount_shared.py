"""test_mount_shared.py: a cache other people can write to, mounted with -o allow_other
and read by a second local user (otheruser.py), locally and over SSH.

- symlinks: in a shared group cache, the other user plants symbolic links named like
  keys in calls/ and values/, pointing at files only the mounter can read (a secret, a
  call record). Through the mount, neither the other user nor the mounter reads them:
  the entries are listed and fail with EIO, the secret never appears. The cache's root
  and its values/ directory are themselves symbolic links, which is allowed.
- sqlite_link: calls.db a symbolic link to a database the mounter can read: the mount
  is refused, naming the link, and so is the server given the link with --calls.
- not_regular: a directory where a value file (or a call record) should be: stat fails
  with EIO (it is not an empty regular file).
- permissions: permission checks are the kernel's (default_permissions): the other user
  cannot evict (rmdir) the mounter's calls (EACCES, as the modes ls -l shows say), but
  reads; the mounter evicts.
- evict_guard: rm -r MNT/calls evicts the first EVICT_BURST calls and then fails with
  EBUSY, with a log line, until evictions pause for EVICT_WINDOW seconds; -o evict_all
  lets every one through.
- sqlite_tidy: a read-only mount of a SQLite cache leaves no calls.db-wal or -shm
  behind; a fleche writer using the database meanwhile keeps its files and its rows.

`ssh` as argument: the symlink checks over SSH (a private sshd, sshd_fixture.py).
"""

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import common
import mountlib as ml
import otheruser

T = common.Checks("mount_shared")
EVICT_BURST = 16
EVICT_WINDOW = 10


@contextlib.contextmanager
def open_dir():
    """A temporary directory others can enter (a shared cache lives in one)."""
    with common.temp_dir("flechefs-shared-") as d:
        os.chmod(d, 0o755)
        yield d


def share_with(path, user):
    """Makes path a directory user's group can write, as a shared group cache is."""
    os.chown(path, -1, user.gid)
    os.chmod(path, 0o2775)


def private_files(d, exp):
    """A directory only root can read, with a secret and a call record in it."""
    p = os.path.join(d, "private")
    os.mkdir(p, 0o700)
    secret = b"SECRET-" + os.urandom(8).hex().encode() + b"\n"
    with open(os.path.join(p, "secret"), "wb") as f:
        f.write(secret)
    os.chmod(os.path.join(p, "secret"), 0o600)
    rec = exp["calls"][0]["key"]
    shutil.copy(os.path.join(common.fixtures_dir(), "files", "calls", rec),
                os.path.join(p, "record"))
    return p, secret


def planted_cache(d, user, exp):
    """The files fixture in d with its root and values/ as symbolic links, calls/ and
    values/ writable by user's group, and user's symlinks to private files in them.
    Returns (source path, value link key, call link key, secret)."""
    real = os.path.join(d, "cache-real")
    shutil.copytree(os.path.join(common.fixtures_dir(), "files"), real)
    os.chmod(real, 0o755)
    shutil.move(os.path.join(real, "values"), os.path.join(d, "values-real"))
    os.symlink("../values-real", os.path.join(real, "values"))
    os.symlink("cache-real", os.path.join(d, "cache"))
    share_with(os.path.join(real, "calls"), user)
    share_with(os.path.join(d, "values-real"), user)
    priv, secret = private_files(d, exp)
    vkey, ckey = "5e" * 32, "c0" * 32
    for target, link in ((os.path.join(priv, "secret"), os.path.join(d, "values-real", vkey)),
                         (os.path.join(priv, "record"), os.path.join(real, "calls", ckey))):
        r = user.run(["ln", "-s", target, link])
        if r.returncode != 0:
            raise AssertionError("the other user cannot write the shared cache: %s" %
                                 r.stderr.decode(errors="replace"))
    _, e = user.read(os.path.join(priv, "secret"))
    T.equal(e, errno.EACCES, "the other user cannot read the secret directly")
    return os.path.join(d, "cache"), vkey, ckey, secret


def check_symlinks(label, user, mp, vkey, ckey, secret, exp):
    values = os.path.join(mp, "values")
    calls = os.path.join(mp, "calls")
    for who, read in (("other user", user.read), ("mounter", read_as_mounter)):
        data, e = read(os.path.join(values, vkey))
        T.check(secret not in data, "%s: %s never reads the secret through values/" %
                (label, who))
        T.equal(e, errno.EIO, "%s: %s reading a symlinked value" % (label, who))
        data, e = read(os.path.join(calls, ckey, "name"))
        T.equal((data, e), (b"", errno.EIO), "%s: %s reading a symlinked call" % (label, who))
    T.equal(user.errno_of("stat", os.path.join(values, vkey)), errno.EIO,
            "%s: stat of a symlinked value" % label)
    # the real entries are served, through the symlinked root and values/
    v = exp["values"][0]["digest"]
    data, e = user.read(os.path.join(values, v))
    T.equal((len(data), e), (len(common.stored_value("files", v)), 0),
            "%s: the other user reads a value" % label)
    c = exp["calls"][0]
    data, e = user.read(os.path.join(calls, c["key"], "name"))
    T.equal((data, e), ((c["name"] + "\n").encode(), 0), "%s: the other user reads a call" %
            label)


def err_of(fn):
    """0 when fn() succeeds, else the errno it raised."""
    e = ml.expect_errno(fn, 0)
    return 0 if e is None else e


def read_as_mounter(path):
    try:
        with open(path, "rb") as f:
            return f.read(), 0
    except OSError as e:
        return b"", e.errno


def test_symlinks(user, exp):
    with open_dir() as d:
        source, vkey, ckey, secret = planted_cache(d, user, exp)
        with ml.mounted(source, ["-o", "allow_other"]) as mp:
            check_symlinks("local", user, mp, vkey, ckey, secret, exp)


def test_symlinks_ssh(user, exp):
    import sshd_fixture as sf
    with open_dir() as d, common.temp_dir("flechefs-ssh-home-") as home, sf.Sshd() as sshd:
        sshd.trust_host_key()
        env = sf.client_env(home)
        source, vkey, ckey, secret = planted_cache(d, user, exp)
        opts = sshd.flechefs_opts() + ["-o", "server=" + ml.server(), "-o", "allow_other"]
        with ml.mounted("127.0.0.1:" + source, opts, env=env) as mp:
            check_symlinks("ssh", user, mp, vkey, ckey, secret, exp)


def test_sqlite_link(user, exp):
    with open_dir() as d:
        root = os.path.join(d, "cache")
        shutil.copytree(os.path.join(common.fixtures_dir(), "pickle_sql"), root)
        priv = os.path.join(d, "private")
        os.mkdir(priv, 0o700)
        shutil.move(os.path.join(root, "calls.db"), os.path.join(priv, "calls.db"))
        os.symlink(os.path.join(priv, "calls.db"), os.path.join(root, "calls.db"))
        with common.temp_dir("flechefs-mnt-") as mp:
            try:
                r = ml.mount(root, mp)
                msg = r.stderr.decode(errors="replace")
                T.check(r.returncode != 0 and not ml.is_mounted(mp),
                        "a symlinked calls.db is not mounted")
                T.check("symbolic link" in msg and "calls.db" in msg,
                        "the refusal names the link: %r" % msg)
            finally:
                ml.unmount(mp)
        link = os.path.join(root, "calls.db")
        r = common.run([ml.server(), "--serve", "--calls", "sqlite:///" + link,
                        "--values", os.path.join(root, "values")], stdin=subprocess.DEVNULL)
        msg = r.stderr.decode(errors="replace")
        T.check(r.returncode == 1 and "symbolic link" in msg,
                "the server refuses --calls sqlite:///LINK: %r" % msg)
        T.equal(sorted(os.listdir(priv)), ["calls.db"], "nothing made beside the target")


def test_not_regular(user, exp):
    with common.temp_copy("files") as root:
        vkey, ckey = "d1" * 32, "d2" * 32
        os.mkdir(os.path.join(root, "values", vkey))
        os.mkdir(os.path.join(root, "calls", ckey))
        with ml.mounted(root) as mp:
            path = os.path.join(mp, "values", vkey)
            T.check(vkey in os.listdir(os.path.join(mp, "values")), "the directory is listed")
            T.equal(err_of(lambda: os.stat(path)), errno.EIO,
                    "stat of a directory in values/")
            T.equal(err_of(lambda: open(path, "rb").read()), errno.EIO,
                    "read of a directory in values/")
            T.equal(err_of(
                lambda: open(os.path.join(mp, "calls", ckey, "call.json")).read()),
                errno.EIO, "a directory in calls/")
            # as ls -l asks: a listing, then each entry's attributes
            T.equal(err_of(lambda: [os.lstat(os.path.join(mp, "values", k))
                                    for k in os.listdir(os.path.join(mp, "values"))]),
                    errno.EIO, "ls -l of values/ reports the directory")


def test_permissions(user, exp):
    with common.temp_copy("files") as root:
        key = exp["calls"][0]["key"]
        with ml.mounted(root, ["-o", "allow_other"]) as mp:
            path = os.path.join(mp, "calls", key)
            st = os.stat(os.path.join(mp, "calls"))
            T.equal((st.st_uid, oct(st.st_mode & 0o777)), (0, "0o755"),
                    "calls/ is the mounter's, drwxr-xr-x")
            # rm -r of a call unlinks in arguments/ and metadata/ before its rmdir:
            # the mounter may, as the modes the kernel checks say
            T.equal([oct(os.stat(os.path.join(path, d)).st_mode & 0o777)
                     for d in ("", "arguments", "metadata")], ["0o755"] * 3,
                    "a call directory and its subdirectories are drwxr-xr-x")
            T.equal(user.errno_of("rmdir", path), errno.EACCES,
                    "the other user cannot evict the mounter's call")
            T.check(os.path.isfile(os.path.join(root, "calls", key)), "the call stays")
            data, e = user.read(os.path.join(path, "name"))
            T.equal(e, 0, "the other user reads the call")
            T.equal(user.errno_of("rmdir", os.path.join(mp, "values")), errno.EACCES,
                    "the other user cannot remove values/")
            T.equal(err_of(lambda: os.rmdir(path)), 0, "the mounter evicts")
            T.check(not os.path.exists(os.path.join(root, "calls", key)), "evicted")


def make_calls(root, n, layout="files"):
    r = common.run(["/usr/bin/python3", os.path.join(common.SOURCE, "examples", "make-cache.py"),
                    "--calls", str(n), "--layout", layout, "-q", root], timeout=120)
    if r.returncode != 0:
        raise AssertionError("make-cache.py failed: %s" % r.stderr.decode(errors="replace"))


def test_evict_guard(user, exp):
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        make_calls(root, 40)
        total = len(os.listdir(os.path.join(root, "calls")))
        log = open(os.path.join(d, "log"), "w+b")
        with ml.foreground(root, ["-o", "cache_timeout=0"], log=log) as (_p, mp):
            r = common.run(["rm", "-r", os.path.join(mp, "calls")], timeout=120)
            left = len(os.listdir(os.path.join(root, "calls")))
            T.equal(total - left, EVICT_BURST, "rm -r calls evicts the first %d calls only" %
                    EVICT_BURST)
            T.check(r.returncode != 0 and b"Device or resource busy" in r.stderr,
                    "the others fail with EBUSY: %r" % r.stderr[-200:])
            log.seek(0)
            text = log.read().decode(errors="replace")
            T.check("evict_all" in text, "the log says why and how: %r" % text[-400:])
            some = sorted(os.listdir(os.path.join(root, "calls")))[0]
            T.equal(err_of(lambda: os.rmdir(os.path.join(mp, "calls", some))),
                    errno.EBUSY, "still refused right after the storm")
            time.sleep(EVICT_WINDOW + 1)
            T.equal(err_of(lambda: os.rmdir(os.path.join(mp, "calls", some))), 0,
                    "evicting again after a pause of %d s" % EVICT_WINDOW)
        log.close()
        with ml.mounted(root, ["-o", "evict_all"]) as mp:
            r = common.run(["rm", "-r", os.path.join(mp, "calls")], timeout=120)
            T.equal(os.listdir(os.path.join(root, "calls")), [],
                    "-o evict_all: rm -r calls evicts every call")


def sql_files(root):
    """The database's files, once no server reads root any more (the daemon ends its
    server after the unmount has returned)."""
    ml.wait_for(lambda: not ml.pids_where(
        lambda argv: os.path.basename(argv[0]) == b"flechefs-server" and
        root.encode() in argv), 10)
    return sorted(n for n in os.listdir(root) if n.startswith("calls.db"))


def sql_files_now(root):
    return sorted(n for n in os.listdir(root) if n.startswith("calls.db"))


def browse(mp):
    keys = os.listdir(os.path.join(mp, "calls"))
    with open(os.path.join(mp, "calls", keys[0], "call.json"), "rb") as f:
        f.read()
    return keys


def row_count(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT count(*) FROM calls").fetchone()[0]
    finally:
        c.close()


def add_row(conn, n):
    key = "%064x" % (0xabc000 + n)
    conn.execute("INSERT INTO calls (\"key\", name) VALUES (?, 'added')", (key,))
    conn.commit()


def writer(db):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.isolation_level = ""
    return c


def test_sqlite_tidy(user, exp):
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        make_calls(root, 5, "sql")
        db = os.path.join(root, "calls.db")
        T.equal(sql_files(root), ["calls.db"], "the cache starts without -wal and -shm")
        rows = row_count(db)
        T.equal(sql_files(root), ["calls.db"], "a closed reader leaves nothing")
        for opts in (["-o", "ro"], []):
            with ml.mounted(root, opts) as mp:
                browse(mp)
                T.check(len(sql_files_now(root)) > 1, "SQLite made its files while mounted")
            T.equal(sql_files(root), ["calls.db"], "%s: unmounted, the directory is as found"
                    % (opts or "rw"))

        # a writer that commits and leaves while mounted: its row is kept
        with ml.mounted(root, ["-o", "ro"]) as mp:
            browse(mp)
            w = writer(db)
            add_row(w, 1)
            w.close()
        T.equal(sql_files(root), ["calls.db"], "writer gone before the unmount: tidied")
        T.equal(row_count(db), rows + 1, "the writer's row is in the database")

        # a writer still connected at the unmount keeps its files, and loses nothing
        with ml.mounted(root, ["-o", "ro"]) as mp:
            browse(mp)
            w = writer(db)
            add_row(w, 2)
        T.check(os.path.exists(db + "-wal"), "a writer's WAL is never removed under it")
        add_row(w, 3)
        w.close()
        T.equal(row_count(db), rows + 3, "the writer's rows are all there")
        T.equal(sql_files(root), ["calls.db"], "the writer, last, removes its files")


LOCAL = (test_symlinks, test_sqlite_link, test_not_regular, test_permissions,
         test_evict_guard, test_sqlite_tidy)


def main():
    ml.require_fuse()
    exp = common.expected()["caches"]["files"]
    ssh = sys.argv[1:] == ["ssh"]
    if ssh:
        import sshd_fixture as sf
        sf.require_sshd()
    only = [a for a in sys.argv[1:] if a != "ssh"]
    with otheruser.User("flechefs-ssh" if ssh else "flechefs-local") as user:
        for fn in (test_symlinks_ssh,) if ssh else LOCAL:
            if not only or fn.__name__[5:] in only:
                print("--", fn.__name__, flush=True)
                T.run(fn, user, exp)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
