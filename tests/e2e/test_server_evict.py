"""test_server_evict.py: evict on temporary copies of every fixture layout (files,
SQL, signed, gzip): the record file or the SQL rows (calls, arguments, metadata) are
gone, value files are untouched, fleche's rules for unknown keys and prefixes hold,
and a --read-only server refuses with EROFS.
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_evict")
SERVER = common.binary("flechefs-server")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]


def start(root, cache_name, *args):
    env = {"FLECHE_SECRET_KEY": KEY} if cache_name == "signed" else None
    return Server(SERVER, ["--serve", "--root", root] + list(args), extra_env=env)


def name(err):
    return err["name"] if isinstance(err, dict) else None


def snapshot_values(root):
    d = os.path.join(root, "values")
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        with open(p, "rb") as f:
            out[n] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def sql_rows(root, key):
    db = sqlite3.connect(os.path.join(root, "calls.db"))
    try:
        return tuple(db.execute(q, (key,)).fetchone()[0] for q in (
            'SELECT count(*) FROM calls WHERE "key" = ?',
            "SELECT count(*) FROM arguments WHERE call_key = ?",
            "SELECT count(*) FROM metadata WHERE call_key = ?"))
    finally:
        db.close()


def sql_total(root):
    db = sqlite3.connect(os.path.join(root, "calls.db"))
    try:
        return tuple(db.execute("SELECT count(*) FROM " + t).fetchone()[0]
                     for t in ("calls", "arguments", "metadata"))
    finally:
        db.close()


def stored(root, cache_name, key):
    if cache_name == "pickle_sql":
        return sql_rows(root, key)[0] == 1
    return os.path.exists(os.path.join(root, "calls", key))


def test_evict(cache_name):
    calls = EXP["caches"][cache_name]["calls"]
    keys = sorted(c["key"] for c in calls)
    with common.temp_copy(cache_name) as root:
        values_before = snapshot_values(root)
        victim = next(c for c in calls if c["metadata"]) if cache_name == "pickle_sql" else calls[0]
        vk = victim["key"]
        if cache_name == "pickle_sql":
            rows = sql_rows(root, vk)
            T.check(rows[0] == 1 and rows[1] >= 1 and rows[2] >= 1,
                    "%s: the victim has rows in all tables %r" % (cache_name, rows))
            totals = sql_total(root)
        with start(root, cache_name) as s:
            s.hello()
            T.equal(s.try_call("evict", vk), (None, None), cache_name + ": evict a full key")
            T.check(not stored(root, cache_name, vk), cache_name + ": the record is gone")
            err, _ = s.try_call("load", vk)
            T.equal(name(err), "ENOENT", cache_name + ": load after evict")
            T.equal(s.call("contains", vk), False, cache_name + ": contains after evict")
            T.equal(s.call("list", "calls")["keys"], [k for k in keys if k != vk],
                    cache_name + ": list after evict")
            T.equal(s.try_call("evict", vk), (None, None), cache_name + ": evict it again")
            T.equal(s.try_call("evict", "0" * 64), (None, None),
                    cache_name + ": evict an unknown full key")
            err, _ = s.try_call("evict", "ffff0000")
            T.equal(name(err), "ENOENT", cache_name + ": evict an unknown prefix")
            err, _ = s.try_call("evict", "../" + vk)
            T.equal(name(err), "EINVAL", cache_name + ": evict a malformed key")
            # by unique prefix
            other = next(c for c in calls if c["key"] != vk)
            short = other["key_shrunk_by_fleche"]
            T.equal(s.try_call("evict", short), (None, None), cache_name + ": evict by prefix")
            T.check(not stored(root, cache_name, other["key"]),
                    cache_name + ": the record evicted by prefix is gone")
            T.equal(s.call("contains", other["key"]), False, cache_name + ": contains after")
            # the rest still loads
            rest = [c for c in calls if c["key"] not in (vk, other["key"])]
            for c in rest:
                err, r = s.try_call("load", c["key"])
                T.check(err is None and r["key"] == c["key"], cache_name + ": others still load")
            T.equal(s.wait(), 0, cache_name + ": clean exit")
            T.equal(s.stderr_text(), "", cache_name + ": nothing on stderr")
        T.equal(snapshot_values(root), values_before, cache_name + ": value files untouched")
        if cache_name == "pickle_sql":
            for k in (vk, other["key"]):
                T.equal(sql_rows(root, k), (0, 0, 0),
                        cache_name + ": calls, arguments and metadata rows gone")
            after = sql_total(root)
            T.equal(after[0], totals[0] - 2, cache_name + ": exactly two calls rows gone")
        else:
            T.equal(sorted(os.listdir(os.path.join(root, "calls"))),
                    sorted(c["key"] for c in rest), cache_name + ": exactly two files gone")


def test_ambiguous():
    with common.temp_copy("files") as root:
        with start(root, "files") as s:
            s.hello()
            err, _ = s.try_call("evict", "7b09")
            T.equal(name(err), "AMBIGUOUS", "evict of a prefix ambiguous among calls")
            T.equal(len(os.listdir(os.path.join(root, "calls"))), 21, "nothing evicted")


def test_read_only(cache_name):
    calls = EXP["caches"][cache_name]["calls"]
    with common.temp_copy(cache_name) as root:
        with start(root, cache_name, "--read-only") as s:
            h = s.hello()
            T.equal(h["read_only"], True, cache_name + ": hello read_only")
            T.equal(s.call("info")["read_only"], True, cache_name + ": info read_only")
            for k in (calls[0]["key"], "0" * 64, "ffff0000"):
                err, _ = s.try_call("evict", k)
                T.equal(name(err), "EROFS", cache_name + ": evict on a read-only server")
                T.equal(err and err["errno"], 30, cache_name + ": EROFS errno")
            T.check(stored(root, cache_name, calls[0]["key"]), cache_name + ": still stored")
            T.equal(s.call("contains", calls[0]["key"]), True, cache_name + ": still contained")
            T.equal(s.wait(), 0, cache_name + ": clean exit")


def main():
    for c in common.CACHE_NAMES:
        T.run(test_evict, c)
        T.run(test_read_only, c)
    T.run(test_ambiguous)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
