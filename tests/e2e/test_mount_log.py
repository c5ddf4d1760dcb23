"""test_mount_log.py: what flechefs tells, and where, on mounts of copies of the
fixture caches: warnings known at mount time (a signed cache read without its key,
or with a wrong key) are on the terminal before the daemon detaches; once detached,
with no syslog, the log goes to $XDG_STATE_HOME/flechefs/flechefs.log (or to
-o log=FILE), evictions are logged there, and a line relayed from the server carries
one prefix (never "flechefs-server: flechefs-server:").
"""

import os
import re
import sys

import common
import mountlib as ml

T = common.Checks("mount_log")


def read_log(path, timeout=10, want=None):
    """The log's text, waiting (bounded) until it holds want."""
    def text():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""
    if want:
        ml.wait_for(lambda: want in text(), timeout)
    return text()


def test_mount_time_warnings(key_hex):
    env = {"FLECHE_SECRET_KEY": ""}
    with common.temp_copy("signed") as root:
        r, err, listing = ml.try_mount(root, [], env=env)
        T.check(r == 0 and listing, "no key: mounts (%r)" % err)
        T.check("unverified" in err, "no key: the terminal says unverified: %r" % err)
        env = {"FLECHE_SECRET_KEY": "00" + key_hex[2:] if key_hex[:2] != "00" else "11" + key_hex[2:]}
        r, err, listing = ml.try_mount(root, [], env=env)
        T.check(r == 0, "wrong key: mounts (%r)" % err)
        T.check("HMAC check" in err and "EBADMSG" in err,
                "wrong key: the terminal says reads fail: %r" % err)
        r, err, listing = ml.try_mount(root, [], env={"FLECHE_SECRET_KEY": key_hex})
        T.check(r == 0 and "HMAC" not in err and "unverified" not in err,
                "right key: no warning: %r" % err)
    with common.temp_copy("files") as root:
        r, err, listing = ml.try_mount(root, [], env={"FLECHE_SECRET_KEY": key_hex})
        T.check(r == 0 and "HMAC check" in err,
                "a key for an unsigned cache: the terminal says it verifies nothing: %r" % err)


def evict_and_bad_read(mp, root, exp, key_hex):
    """Evicts a call and reads a value whose signature was broken on disk."""
    key = exp["calls"][0]["key"]
    r = common.run(["rm", "-r", os.path.join(mp, "calls", key)])
    T.equal(r.returncode, 0, "rm -r of a call: %r" % r.stderr)
    value = exp["values"][0]["digest"]
    path = os.path.join(root, "values", value)
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    try:
        with open(os.path.join(mp, "values", value), "rb") as f:
            f.read()
    except OSError:
        pass
    return key


def test_default_file(exp, key_hex):
    if os.path.exists("/dev/log"):
        print("(syslog listens on /dev/log here: the default file is not used; "
              "checking -o log= only)")
        return
    with common.temp_dir() as state, common.temp_copy("signed") as root:
        env = {"XDG_STATE_HOME": state, "FLECHE_SECRET_KEY": key_hex}
        log = os.path.join(state, "flechefs", "flechefs.log")
        with ml.mounted(root, env=env) as mp:
            key = evict_and_bad_read(mp, root, exp, key_hex)
            text = read_log(log, want="HMAC")
        T.check(re.search(r"^\S+Z flechefs\[\d+\]: evicted call %s" % key, text, re.M),
                "eviction in the default log file: %r" % text[-600:])
        T.check(re.search(r"flechefs\[\d+\]: flechefs-server: refusing '.*%s'"
                          % exp["values"][0]["digest"], text),
                "server line in the log, one prefix: %r" % text[-600:])
        T.check("flechefs-server: flechefs-server" not in text and
                "flechefs: flechefs" not in text, "no doubled prefixes: %r" % text[-600:])
        T.equal(oct(os.stat(log).st_mode & 0o777), oct(0o600), "log file mode")


def test_log_option(exp, key_hex):
    with common.temp_dir() as tmp, common.temp_copy("signed") as root:
        log = os.path.join(tmp, "sub", "mine.log")
        env = {"FLECHE_SECRET_KEY": key_hex}
        with ml.mounted(root, ["-o", "log=" + log], env=env) as mp:
            key = evict_and_bad_read(mp, root, exp, key_hex)
            text = read_log(log, want="HMAC")
        T.check("evicted call %s" % key in text, "-o log=FILE: eviction logged: %r" % text)
        T.check("flechefs-server: refusing" in text, "-o log=FILE: server line: %r" % text)
        blocker = os.path.join(tmp, "a-file")
        open(blocker, "w").close()
        mp = os.path.join(tmp, "mnt")
        os.mkdir(mp)
        r = common.run([ml.flechefs(), "-o", "log=" + os.path.join(blocker, "x.log"), root, mp])
        T.check(r.returncode != 0 and b"cannot open log file" in r.stderr and
                not ml.is_mounted(mp), "-o log= that cannot be written: refused (%r)" % r.stderr)
        ml.unmount(mp)


def test_foreground_relay(exp):
    with common.temp_copy("signed") as root, common.temp_dir() as tmp:
        logpath = os.path.join(tmp, "stderr")
        with open(logpath, "wb") as log:
            with ml.foreground(root, env={"FLECHE_SECRET_KEY": ""}, log=log) as (p, mp):
                os.listdir(os.path.join(mp, "by-name"))
        text = read_log(logpath)
        T.check("\nflechefs-server: serving HMAC-signed files unverified" in "\n" + text,
                "foreground: the server's line with its own prefix only: %r" % text)
        T.check("flechefs: flechefs-server" not in text and
                "flechefs-server: flechefs-server" not in text,
                "foreground: no doubled prefixes: %r" % text)


def main():
    ml.require_fuse()
    e = common.expected()
    exp = e["caches"]["signed"]
    key_hex = e["secret_key_hex_for_cache_signed"]
    T.run(test_mount_time_warnings, key_hex)
    T.run(test_default_file, exp, key_hex)
    T.run(test_log_option, exp, key_hex)
    T.run(test_foreground_relay, exp)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
