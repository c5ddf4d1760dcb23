"""test_mount_metadata.py: a call whose metadata the server cannot send, on real mounts
of copies of the "files" and "pickle_sql" fixture caches. Each gets one more call
record whose metadata nests 100,000 levels (a pickled record file, and a SQL metadata
row of JSON): the wire carries at most 64 levels, so the server may neither send it
nor cut it. Opening call.json or metadata/ of that call fails with EIO and the daemon's
log says why; its name, arguments and result are there as for any call, and the other
calls of the cache are untouched.
"""

import errno
import os
import pickle
import sqlite3
import sys
import tempfile
import types

import common
import mountlib as ml

T = common.Checks("mount_metadata")

DEPTH = 100000
DEEP_KEY = "de" * 32
MARKER = "metadata-nested-here"


def stand_ins():
    """fleche.call.DigestedCall and fleche.digest.Digest as pickle finds them (the
    server reads the class names; it never imports anything)."""
    fleche = types.ModuleType("fleche")
    call = types.ModuleType("fleche.call")
    digest = types.ModuleType("fleche.digest")
    sys.modules.update({"fleche": fleche, "fleche.call": call, "fleche.digest": digest})

    class DigestedCall:
        pass

    class Digest(str):
        pass

    DigestedCall.__module__, Digest.__module__ = "fleche.call", "fleche.digest"
    DigestedCall.__qualname__, Digest.__qualname__ = "DigestedCall", "Digest"
    call.DigestedCall, digest.Digest = DigestedCall, Digest
    return DigestedCall, Digest


def deep_record(arg_key, result_key):
    """A call record pickle whose metadata tags.deep is a list nested DEPTH deep,
    written as EMPTY_LIST DEPTH times then APPEND DEPTH - 1 times (no recursion in
    Python's pickler or in any unpickler)."""
    DigestedCall, Digest = stand_ins()
    c = DigestedCall()
    c.__dict__ = {"name": "deep", "module": "__main__", "version": None,
                  "code_digest": None, "arguments": {"x": Digest(arg_key)},
                  "result": Digest(result_key),
                  "metadata": {"runtime": {"timestop": 1.5e9}, "tags": {"deep": MARKER}}}
    data = pickle.dumps(c, protocol=2)
    text = MARKER.encode()
    op = b"X" + len(text).to_bytes(4, "little") + text
    assert data.count(op) == 1
    return data.replace(op, b"]" * DEPTH + b"a" * (DEPTH - 1))


def read_log(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def check_mount(what, root, other_key, arg_key, result_key, reason):
    with tempfile.NamedTemporaryFile(prefix="flechefs-log-") as logf:
        with ml.foreground(root, log=logf) as (_proc, mp):
            d = os.path.join(mp, "calls", DEEP_KEY)
            T.check(DEEP_KEY in os.listdir(os.path.join(mp, "calls")), what + ": listed")
            T.equal(sorted(os.listdir(d)),
                    sorted(["arguments", "call.json", "metadata", "module", "name", "result"]
                           + [n for n in os.listdir(d) if n.startswith("result.")]),
                    what + ": the call's directory")
            with open(os.path.join(d, "name"), encoding="utf-8") as f:
                T.equal(f.read(), "deep\n", what + ": name")
            T.equal(os.readlink(os.path.join(d, "result")), "../../values/" + result_key,
                    what + ": result link")
            with open(os.path.join(d, "result"), "rb") as f:
                T.check(len(f.read()) > 0, what + ": the result reads through its link")
            T.equal(os.readlink(os.path.join(d, "arguments", "x")),
                    "../../../values/" + arg_key, what + ": argument link")
            T.equal(ml.expect_errno(lambda: open(os.path.join(d, "call.json"), "rb").read(),
                                    errno.EIO), errno.EIO, what + ": call.json is EIO")
            T.equal(ml.expect_errno(lambda: os.listdir(os.path.join(d, "metadata")), errno.EIO),
                    errno.EIO, what + ": metadata/ is EIO")
            T.equal(ml.expect_errno(lambda: os.stat(os.path.join(d, "metadata", "tags.json")),
                                    errno.EIO), errno.EIO, what + ": metadata/tags.json is EIO")
            # the rest of the cache as before
            od = os.path.join(mp, "calls", other_key)
            with open(os.path.join(od, "call.json"), "rb") as f:
                doc = ml.load_json_text(f.read().decode())
            T.equal(doc.get("key"), other_key, what + ": another call's call.json")
            T.check(len(os.listdir(os.path.join(od, "metadata"))) > 0,
                    what + ": another call's metadata/")
        log = read_log(logf.name)
    T.check(reason in log and DEEP_KEY in log and "call.json" in log,
            "%s: the log says why (%r in %r)" % (what, reason, log[-600:]))


def with_result(calls):
    return next(c for c in calls if c.get("result_digest") and c["argument_digests"])


def test_files(exp):
    first = with_result(exp["caches"]["files"]["calls"])
    arg_key = next(iter(first["argument_digests"].values()))
    with common.temp_copy("files") as root:
        with open(os.path.join(root, "calls", DEEP_KEY), "wb") as f:
            f.write(deep_record(arg_key, first["result_digest"]))
        check_mount("files", root, first["key"], arg_key, first["result_digest"],
                    "nests deeper than the 60 levels")


def test_sql(exp):
    first = with_result(exp["caches"]["pickle_sql"]["calls"])
    arg_key = next(iter(first["argument_digests"].values()))
    with common.temp_copy("pickle_sql") as root:
        db = sqlite3.connect(os.path.join(root, "calls.db"))
        with db:
            db.execute("INSERT INTO calls (key, name, module, result) VALUES (?, ?, ?, ?)",
                       (DEEP_KEY, "deep", "__main__", first["result_digest"]))
            db.execute("INSERT INTO arguments (call_key, position, name, value) "
                       "VALUES (?, 0, 'x', ?)", (DEEP_KEY, arg_key))
            db.execute("INSERT INTO metadata (call_key, name, data) VALUES (?, ?, ?)",
                       (DEEP_KEY, "runtime", '{"timestop": 1.5e9}'))
            db.execute("INSERT INTO metadata (call_key, name, data) VALUES (?, ?, ?)",
                       (DEEP_KEY, "tags", '{"deep": ' + "[" * DEPTH + "]" * DEPTH + "}"))
        db.close()
        check_mount("sql", root, first["key"], arg_key, first["result_digest"],
                    "nesting deeper than 60 levels")


def main():
    ml.require_fuse()
    exp = common.expected()
    T.run(test_files, exp)
    T.run(test_sql, exp)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
