"""test_mount_prefetch.py: load_many, and the records a walk of calls/ reads ahead.

Server (files and SQL call storage, caches made with examples/make-cache.py):
- load_many answers, for keys in any order, exactly what load answers for each (a
  record, or the error: ENOENT for a key not stored, EINVAL for a malformed one),
  refuses 0 or more than 256 keys, and within a small frame (--max-frame 65536)
  answers the first keys only, the rest answered when asked again;
- with values, what it says of each result agrees with stat_value (the size of every
  view that applies, the views refused for good) and with list_record.

Mount (every request the daemon sends captured by a server wrapper, and counted):
- a walk in listing order (each call folder listed and its call.json read) shows
  every record as load answers it, and the folder's result.<view> names as the views
  that apply; it costs load_many requests, not a load, stat_value and list_record
  per call;
- a record read ahead is not shown after cache_timeout (inode.h invariant 5): a call
  whose record file is removed behind the mount's back once the walk began is gone
  when the walk reaches it after cache_timeout.
"""

import errno
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time

import msgpack

import client
import common
import mountlib as ml

T = common.Checks("mount_prefetch")
SERVER = common.binary("flechefs-server")
NCALLS = 1200
VIEWS = ("json", "npy", "txt", "bin")
DEFINITIVE = ("ENOTSUP", "EFBIG", "ELOOP")


def make_cache(root, layout, n=NCALLS):
    subprocess.run([sys.executable, os.path.join(common.SOURCE, "examples", "make-cache.py"),
                    "--layout", layout, "--calls", str(n), "-q", root],
                   check=True, timeout=600)


def all_keys(s):
    keys, after = [], None
    while True:
        page = s.call("list", "calls", after, 10000)
        keys += page["keys"]
        if page["complete"]:
            return keys
        after = keys[-1]


def load_many_all(s, keys, values=False):
    """Every entry of load_many for keys, asking again for what an answer left out:
    ({key: (error, record)}, {value key: info}, the number of requests)."""
    entries, infos, asked = {}, {}, 0
    i = 0
    while i < len(keys):
        chunk = keys[i:i + 256]
        r = s.call("load_many", chunk, values) if values else s.call("load_many", chunk)
        asked += 1
        n = len(r["records"])
        T.check(1 <= n <= len(chunk) and len(r["errors"]) == n,
                "load_many answers 1 to %d entries, as many errors: %d, %d" % (
                    len(chunk), n, len(r["errors"])))
        for k, rec, err in zip(chunk, r["records"], r["errors"]):
            T.check((rec is None) != (err is None), "one of record and error: %r" % k)
            entries[k] = (err, rec)
        infos.update(r.get("values", {}))
        i += n
    return entries, infos, asked


def check_server(layout):
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        make_cache(root, layout, 300)
        with client.Server(SERVER, ["--serve", "--root", root]) as s:
            s.hello()
            keys = all_keys(s)
            T.equal(len(keys), 300, layout + ": calls listed")
            missing = "f" * 64
            ask = list(reversed(keys[:100])) + [missing, "XYZ", keys[5][:12]]
            entries, _, _ = load_many_all(s, ask)
            for k in ask:
                err, rec = entries[k]
                try:
                    want, want_err = s.call("load", k), None
                except client.RpcError as e:
                    want, want_err = None, e.map
                if want_err is None:
                    T.check(rec == want, "%s: load_many of %s is load's record" % (layout, k))
                else:
                    T.check(err is not None and err["name"] == want_err["name"],
                            "%s: load_many of %r fails as load: %r, %r" % (
                                layout, k, err, want_err))
            T.equal(entries[missing][0]["name"], "ENOENT", layout + ": a key not stored")
            T.equal(entries["XYZ"][0]["name"], "EINVAL", layout + ": a malformed key")
            for bad in ([], ["a" * 64] * 257, "a" * 64, [1]):
                err, _ = s.try_call("load_many", bad)
                T.check(err is not None and err["name"] == "EINVAL",
                        "%s: load_many(%r...) is EINVAL: %r" % (layout, str(bad)[:20], err))

            # values: as stat_value and list_record answer
            entries, infos, _ = load_many_all(s, keys, True)
            T.check(all(e[1] for e in entries.values()), layout + ": every record answered")
            named = set(rec["result"] for _, rec in entries.values() if rec["result"])
            T.equal(set(infos), named, layout + ": values describes every result")
            for vkey, info in infos.items():
                for view in VIEWS:
                    err, st = s.try_call("stat_value", vkey, view)
                    if err is None:
                        T.equal(info["views"].get(view), st["size"],
                                "%s: %s view of %s" % (layout, view, vkey[:12]))
                    else:
                        T.equal(view in info["no_views"], err["name"] in DEFINITIVE,
                                "%s: %s view of %s refused (%s)" % (layout, view, vkey[:12],
                                                                   err["name"]))
                err, _ = s.try_call("list_record", vkey)
                T.equal(info["folder"], err is None, "%s: folder of %s" % (layout, vkey[:12]))

        # a small frame: answers cut, every key answered once asked again
        with client.Server(SERVER, ["--serve", "--root", root, "--max-frame", "65536"]) as s:
            s.hello()
            entries, _, asked = load_many_all(s, keys, True)
            T.check(asked > 2, "%s: 300 records with values take more than two 64 KiB "
                    "answers: %d" % (layout, asked))
            T.check(len(entries) == 300 and all(e[1] for e in entries.values()),
                    layout + ": every record answered across the cut answers")


def test_server_files():
    check_server("files")


def test_server_sql():
    check_server("sql")


def write_wrapper(d):
    """A server command that keeps a copy of every request frame (its standard input)."""
    cap = os.path.join(d, "requests.bin")
    path = os.path.join(d, "server-wrapper")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ntee '%s' | exec '%s' \"$@\"\n" % (cap, SERVER))
    os.chmod(path, 0o755)
    return path, cap


def count_methods(cap):
    counts = {}
    with open(cap, "rb") as f:
        data = f.read()
    i = 0
    while i + 4 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        if i + 4 + n > len(data):
            break
        msg = msgpack.unpackb(data[i + 4:i + 4 + n], raw=False)
        counts[msg[2]] = counts.get(msg[2], 0) + 1
        i += 4 + n
    return counts


def test_mount_walk():
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        make_cache(root, "files")
        wrapper, cap = write_wrapper(d)
        with client.Server(SERVER, ["--serve", "--root", root]) as s:
            s.hello()
            keys = all_keys(s)
            want = {k: s.call("load", k) for k in keys}
            applies = {}
            for rec in want.values():
                if rec["result"] and rec["result"] not in applies:
                    applies[rec["result"]] = set(
                        v for v in VIEWS if s.try_call("stat_value", rec["result"], v)[0] is None)
        with ml.foreground(root, ["-o", "server=" + wrapper]) as (p, mp):
            calls = os.path.join(mp, "calls")
            listed = os.listdir(calls)
            T.equal(listed, sorted(keys), "calls/ lists every call in key order")
            bad = 0
            for k in listed:
                names = set(os.listdir(os.path.join(calls, k)))
                with open(os.path.join(calls, k, "call.json")) as f:
                    got = json.load(f)
                rec = want[k]
                same = (got["key"] == k and got["name"] == rec["name"] and
                        got["result"] == rec["result"] and
                        got["arguments"] == {n: v for n, v in rec["arguments"]} and
                        ml.same(got["metadata"], rec["metadata"]))
                views = set(n[len("result."):] for n in names
                            if n.startswith("result.") and n != "result.d")
                if not same or views != applies.get(rec["result"], set()):
                    bad += 1
                    if bad <= 3:
                        T.check(False, "call %s shown as load answers it: %r, views %r, "
                                "want %r" % (k, got, views, applies.get(rec["result"])))
            T.equal(bad, 0, "call folders shown otherwise than load and stat_value say")
        counts = count_methods(cap)
        print("requests of the walk: %r" % counts, flush=True)
        per_call = sum(counts.get(m, 0) for m in ("load", "stat_value", "list_record"))
        # without records read ahead: a load, 4 stat_value and a list_record per call;
        # with them, only the folders opened before the first records arrive
        T.check(per_call <= NCALLS // 4,
                "the walk of %d calls sent %d load, stat_value and list_record requests "
                "(at most %d)" % (NCALLS, per_call, NCALLS // 4))
        T.check(0 < counts.get("load_many", 0) <= 2 * NCALLS // 256 + 8,
                "the walk read its records with load_many: %d" % counts.get("load_many", 0))


def test_mount_current():
    """A record read ahead is shown no longer than cache_timeout after it was read."""
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        make_cache(root, "files", 400)
        with ml.foreground(root, ["-o", "cache_timeout=1"]) as (p, mp):
            calls = os.path.join(mp, "calls")
            listed = os.listdir(calls)
            for k in listed[:3]:  # neighbours opened in order: the walk begins
                os.listdir(os.path.join(calls, k))
            gone = listed[200]
            time.sleep(0.9)  # its record read ahead by now, while still stored
            os.unlink(os.path.join(root, "calls", gone))
            time.sleep(1.6)  # past cache_timeout of what was read ahead
            for k in listed[3:200]:
                os.listdir(os.path.join(calls, k))
            T.equal(ml.errno_of(lambda: os.listdir(os.path.join(calls, gone))), errno.ENOENT,
                    "a call removed after its record was read ahead is gone after "
                    "cache_timeout")
            T.check(os.path.isfile(os.path.join(calls, listed[201], "call.json")),
                    "its neighbour is still there")


def main():
    T.run(test_server_files)
    T.run(test_server_sql)
    ml.require_fuse()
    T.run(test_mount_walk)
    T.run(test_mount_current)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
