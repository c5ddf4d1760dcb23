"""test_python_rounds.py: the round trips FlechefsCache waits for, counted (not timed)
on a local flechefs-server, and what it reads back.

A round trip is counted where the client waits for an answer after having sent a
request since its previous wait (requests sent together are one round trip,
however many); a blocking wait is one whose answer was not there yet.

- a call saved the first time: the probes of all its values and the record in one
  round trip, the values the server lacks in a second, the record again in a third;
- the same call saved again: one round trip, no value bytes uploaded;
- with save_ahead, 100 calls saved again and 20 saved the first time: no save
  waits for the server, none is unconfirmed after flush(), and the new calls are
  there for the next operation; a save the server refuses
  is raised by the next operation (flush), naming nothing half-done;
- threads saving ahead on one cache, their calls sharing values: none waits for
  ever on another's upload, and every call reads back whole;
- load_value of a value of several ranges reads it whole and equal; a connection
  that ends in the middle of a value's bytes is ConnectionLost, not a hang.
"""

import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
import numpy as np  # noqa: E402
from fleche.call import Call  # noqa: E402

import flechefs._connection as connection  # noqa: E402
from flechefs import FlechefsCache, ServerError  # noqa: E402

T = common.Checks("python_rounds")
SERVER = common.binary("flechefs-server")


class Rounds:
    """Counts, per thread, the round trips and blocking waits of fc's connection."""

    def __init__(self, fc):
        self.local = threading.local()
        self.rounds = 0
        self.blocking = 0
        conn = fc._conn
        send, wait = conn.send, connection.Pending.wait
        counter = self

        def counted_send(*a, **k):
            counter.local.sent = True
            return send(*a, **k)

        def counted_wait(p):
            if getattr(counter.local, "sent", False):
                counter.rounds += 1
                counter.local.sent = False
            if not p.done():
                counter.blocking += 1
            return wait(p)

        conn.send = counted_send
        connection.Pending.wait = counted_wait
        self._restore = lambda: setattr(connection.Pending, "wait", wait)

    def take(self):
        """(round trips, blocking waits) since the last take."""
        got = (self.rounds, self.blocking)
        self.rounds = self.blocking = 0
        self.local.sent = False
        return got

    def close(self):
        self._restore()


def make_dir():
    d = tempfile.mkdtemp(prefix="flechefs-rounds-")
    os.makedirs(os.path.join(d, "cache", "values"))
    os.makedirs(os.path.join(d, "cache", "calls"))
    with open(os.path.join(d, "fleche.toml"), "w") as f:
        f.write('[default]\ncache = "shared"\n\n[shared]\ntemplate = "cloudpickle"\n'
                'root = "cache"\n')
    return d


def calls(n, tag):
    """n calls named after tag, with results of their own (values no other tag has)."""
    salt = float(zlib.crc32(tag.encode()))
    return [Call(name="rounds_%s" % tag, arguments={"i": i, "xs": [i, "x" * i]},
                 result=np.full(1 << 14, salt + i)) for i in range(n)]


def test_save_rounds(d):
    fc = FlechefsCache(cache_name="shared", server=SERVER, workdir=d)
    try:
        fc.info()
        r = Rounds(fc)
        c = calls(1, "sync")[0]
        key = fc.save(c)
        T.equal(r.take()[0], 3, "round trips of a first save (probes and record, values, "
                "record)")
        up = fc.bytes_uploaded
        T.check(up > 0, "a first save uploads its values")
        T.equal(fc.save(c), key, "the key of the call saved again")
        T.equal(r.take()[0], 1, "round trips of a save of a call already there")
        T.equal(fc.bytes_uploaded, up, "value bytes uploaded by a save of a call already "
                "there")
        r.close()
    finally:
        fc.close()


def test_save_ahead(d):
    first = FlechefsCache(cache_name="shared", server=SERVER, workdir=d)
    cs = calls(100, "ahead")
    keys = [first.save(c) for c in cs]
    first.close()
    fc = FlechefsCache(cache_name="shared", server=SERVER, workdir=d, save_ahead=100)
    try:
        fc.info()
        r = Rounds(fc)
        got = [fc.save(c) for c in cs]
        T.equal(got, keys, "keys of the calls saved again ahead")
        T.equal(r.take()[1], 0, "blocking waits of 100 saves made ahead")
        fc.flush()
        T.equal(len(fc._ahead.entries), 0, "saves unconfirmed after flush")
        T.equal(fc.bytes_uploaded, 0, "value bytes uploaded by saves of calls already there")
        # new calls: their values uploaded, each step sent once the one before is
        # answered, without a save waiting; then read back whole
        new = calls(20, "ahead-new")
        r.take()
        new_keys = [fc.save(c) for c in new]
        T.equal(r.take()[1], 0, "blocking waits of 20 first saves made ahead")
        T.check(fc.bytes_uploaded > 0, "the first saves made ahead upload their values")
        r.close()
        T.equal([fc.contains(k) for k in new_keys], [True] * len(new),
                "calls saved ahead are there for the next operation")
        for c, k in zip(new, new_keys):
            T.check(np.array_equal(fc.load_value(fc.load(k)._result), c.result),
                    "the result of %s saved ahead" % k[:12])
        # a call the server refuses (another call's key): raised by the next operation
        other = fc._record(fc._call("load", keys[0]))
        clash = dataclasses.replace(other, result=other.arguments["i"])
        try:
            fc.save(clash)
            fc.flush()
            T.check(False, "a save refused by the server is raised")
        except ServerError as e:
            T.check(any(keys[0] in n for n in getattr(e, "__notes__", [])),
                    "the refused save names its call: %s" % e)
        T.equal(fc.load(keys[0])._result, other.result, "the stored call is unchanged")
        fc.flush()  # raised once
    finally:
        fc.close()


def test_save_ahead_threads(d):
    """Threads saving ahead on one cache, their calls sharing values: each value is
    uploaded by one save at a time, a save waiting for another's upload finishes,
    and every call reads back whole."""
    shared = [np.full(1 << 15, float(v)) for v in range(6)]
    fc = FlechefsCache(cache_name="shared", server=SERVER, workdir=d, save_ahead=4)
    saved, failures = [], []

    def work(t):
        try:
            for i in range(30):
                c = Call(name="rounds_threads", arguments={"t": t, "i": i},
                         result=shared[(t + i) % len(shared)])
                saved.append((fc.save(c), (t + i) % len(shared)))
            fc.flush()
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(e)

    try:
        threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        T.check(not any(t.is_alive() for t in threads),
                "threads saving ahead with shared values finish")
        T.equal(failures, [], "failures of threads saving ahead with shared values")
        fc.flush()
        T.equal(len(saved), 120, "calls saved by 4 threads")
        for key, v in saved:
            T.check(np.array_equal(fc.load_value(fc.load(key)._result), shared[v]),
                    "the shared result of %s" % key[:12])
        T.equal(fc._uploading, {}, "uploads still claimed after the saves")
    finally:
        fc.close()


def test_load_value_ranges(d):
    fc = FlechefsCache(cache_name="shared", server=SERVER, workdir=d)
    try:
        big = np.arange(5 << 18, dtype=np.float64)  # 10 MiB: several ranges of 1 MiB
        key = fc.save(Call(name="rounds_big", arguments={}, result=big))
        rkey = fc.load(key)._result
        fc.close()
        small = FlechefsCache(cache_name="shared", server=SERVER, workdir=d,
                              server_args=("--max-frame", "1M"))
        try:
            T.check(np.array_equal(small.load_value(rkey), big),
                    "a value read in ranges written into place")
            data = small.load_value_bytes(rkey)
            T.equal(len(data), small._call("stat_value", str(rkey), None)["size"],
                    "the stored bytes read whole")
        finally:
            small.close()
    finally:
        fc.close()


# A server that answers hello and stat_value, then cuts its answer to load_value off
# in the middle of the value's bytes and exits.
CUT_SERVER = r"""
import struct, sys
import msgpack
out, inp = sys.stdout.buffer, sys.stdin.buffer
def frame(msg):
    body = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(body)) + body
while True:
    head = inp.read(4)
    if len(head) < 4:
        sys.exit(0)
    req = msgpack.unpackb(inp.read(struct.unpack(">I", head)[0]), raw=False)
    msgid, method = req[1], req[2]
    if method == "hello":
        out.write(frame([1, msgid, None, {"protocol": 1, "max_read": 1 << 20}]))
    elif method == "stat_value":
        out.write(frame([1, msgid, None, {"key": "ab" * 32, "size": 1 << 20}]))
    else:
        whole = frame([1, msgid, None, b"x" * (1 << 20)])
        out.write(whole[:len(whole) // 2])
        out.flush()
        sys.exit(3)
    out.flush()
"""


def test_cut_in_a_value(d):
    """The connection ends in the middle of a value's bytes: load_value raises
    ConnectionLost (with the server's exit code), it does not wait forever."""
    prog = os.path.join(d, "cut-server")
    with open(prog, "w") as f:
        f.write("#!%s\n%s" % (sys.executable, CUT_SERVER))
    os.chmod(prog, 0o755)
    fc = FlechefsCache(server=prog)
    got = []
    t = threading.Thread(target=lambda: got.append(
        common_outcome(lambda: fc.load_value_bytes("ab" * 32))), daemon=True)
    t.start()
    t.join(30)
    T.check(not t.is_alive(), "load_value returns when the connection ends in a value")
    if got:
        T.equal(type(got[0]).__name__, "ConnectionLost", "what load_value raises: %s"
                % got[0])
        T.check("exit code: 3" in str(got[0]), "the server's exit code is told")
    fc.close()


def common_outcome(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 (the outcome is checked)
        return e


def main():
    d = make_dir()
    try:
        T.run(test_save_rounds, d)
        T.run(test_save_ahead, d)
        T.run(test_save_ahead_threads, d)
        T.run(test_load_value_ranges, d)
        T.run(test_cut_in_a_value, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
