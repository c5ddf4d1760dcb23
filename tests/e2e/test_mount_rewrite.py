"""test_mount_rewrite.py: a call recorded again under the same key is shown within
-o cache_timeout, for record files and for SQLite call storage.

A call is read through the mount (name, call.json, metadata/), then recorded again
under its key with other metadata, as fleche does when a call runs again: for record
files the real fleche (from the test's Python environment) writes a temporary file and
renames it over the record; for SQLite the call's rows are deleted and inserted again
in one transaction, as fleche's Sql storage does. calls/ is listed all the while, so
that a fresh listing always holds the key. The new record must be read through the
mount within cache_timeout and a margin; then again (a second rewrite); then after
an eviction through the mount (rmdir) and a new save of the call.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time

import common
import mountlib as ml

T = common.Checks("mount_rewrite")
CACHE_TIMEOUT = 2
MARGIN = 2.0  # a loaded machine: a bound, not a speed target

RESAVE = r'''
import dataclasses, sys
from fleche.storage.pickle_file import CallPickleFile
calls, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = CallPickleFile.with_cloudpickle(root=calls)
call = s.load(key)
md = dict(call.metadata)
md["note"] = {"round": n}
got = s.save(dataclasses.replace(call, metadata=md))
assert str(got) == key, (got, key)
'''


class FileRecords:
    """Record files, rewritten by the real fleche (temporary file, then rename)."""

    def __init__(self, root, py):
        self.calls = os.path.join(root, "calls")
        self.py = py
        self.saved = {}

    def keys(self):
        return sorted(os.listdir(self.calls))

    def save(self, key, n):
        path = os.path.join(self.calls, key)
        if not os.path.exists(path):  # evicted: the record as it was, then the new one
            with open(path + ".tmp", "wb") as f:
                f.write(self.saved[key])
            os.replace(path + ".tmp", path)
        subprocess.run([self.py, "-c", RESAVE, self.calls, key, str(n)], check=True,
                       timeout=60)
        with open(path, "rb") as f:
            self.saved[key] = f.read()


class SqlRecords:
    """SQLite call storage, rewritten as fleche's Sql storage does (delete the call's
    rows, insert them again, one transaction)."""

    def __init__(self, root):
        self.db = os.path.join(root, "calls.db")
        self.saved = {}

    def keys(self):
        with sqlite3.connect(self.db) as c:
            return sorted(r[0] for r in c.execute('SELECT "key" FROM calls'))

    def save(self, key, n):
        c = sqlite3.connect(self.db, isolation_level=None)
        try:
            c.execute("PRAGMA foreign_keys = ON")
            c.execute("BEGIN IMMEDIATE")
            row = c.execute('SELECT "key", name, module, version, code_digest, result FROM calls '
                            'WHERE "key" = ?', (key,)).fetchone()
            if row:
                args = c.execute("SELECT position, name, value FROM arguments WHERE call_key = ? "
                                 "ORDER BY position", (key,)).fetchall()
                meta = c.execute("SELECT name, data FROM metadata WHERE call_key = ? AND "
                                 "name != 'note' ORDER BY id", (key,)).fetchall()
                self.saved[key] = (row, args, meta)
            row, args, meta = self.saved[key]
            c.execute('DELETE FROM calls WHERE "key" = ?', (key,))
            c.execute('INSERT INTO calls ("key", name, module, version, code_digest, result) '
                      'VALUES (?, ?, ?, ?, ?, ?)', row)
            for a in args:
                c.execute("INSERT INTO arguments (call_key, position, name, value) "
                          "VALUES (?, ?, ?, ?)", (key,) + tuple(a))
            for name, data in meta + [("note", json.dumps({"round": n}))]:
                c.execute("INSERT INTO metadata (call_key, name, data) VALUES (?, ?, ?)",
                          (key, name, data))
            c.execute("COMMIT")
        finally:
            c.close()


def note_round(mp, key):
    """The round metadata/note.json and call.json of calls/<key> say, or None."""
    d = os.path.join(mp, "calls", key)
    try:
        with open(os.path.join(d, "metadata", "note.json")) as f:
            n = json.load(f)["round"]
        with open(os.path.join(d, "call.json")) as f:
            whole = json.load(f)["metadata"].get("note", {}).get("round")
        return n if whole == n else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_round(mp, key, n, t_saved):
    """Seconds from the save until the mount shows round n (listing calls/ before
    each look, so that a fresh listing holds the key), or None after a while."""
    end = t_saved + CACHE_TIMEOUT + MARGIN + 4
    while time.monotonic() < end:
        os.listdir(os.path.join(mp, "calls"))
        if note_round(mp, key) == n:
            return time.monotonic() - t_saved
        time.sleep(0.1)
    return None


def check_round(mp, store, key, n, what):
    store.save(key, n)
    took = wait_round(mp, key, n, time.monotonic())
    print("%s: round %d seen after %s" % (what, n, "never" if took is None else "%.2f s" % took),
          flush=True)
    T.check(took is not None and took <= CACHE_TIMEOUT + MARGIN,
            "%s: round %d seen within cache_timeout=%d s and a margin (%s)"
            % (what, n, CACHE_TIMEOUT, "never" if took is None else "%.2f s" % took))


def rewrites(root, store, what):
    key = store.keys()[0]
    opts = ["-o", "cache_timeout=%d" % CACHE_TIMEOUT]
    with ml.mounted(root, opts) as mp:
        call = os.path.join(mp, "calls", key)
        T.check(key in os.listdir(os.path.join(mp, "calls")), "%s: the call listed" % what)
        with open(os.path.join(call, "name")) as f:
            T.check(len(f.read()) > 1, "%s: name read" % what)
        T.check("note.json" not in os.listdir(os.path.join(call, "metadata")),
                "%s: no note before the rewrite" % what)
        T.equal(note_round(mp, key), None, "%s: no note read before the rewrite" % what)
        check_round(mp, store, key, 1, what + " rewritten")
        check_round(mp, store, key, 2, what + " rewritten again")
        os.rmdir(call)  # evicts
        T.check(key not in os.listdir(os.path.join(mp, "calls")), "%s: evicted" % what)
        check_round(mp, store, key, 3, what + " evicted and saved again")


def test_files():
    py = common.fleche_python()
    with common.temp_copy("files") as root:
        rewrites(root, FileRecords(root, py), "record files")


def test_sql():
    with common.temp_copy("pickle_sql") as root:
        rewrites(root, SqlRecords(root), "sqlite")


def main():
    ml.require_fuse()
    T.run(test_files)
    T.run(test_sql)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
