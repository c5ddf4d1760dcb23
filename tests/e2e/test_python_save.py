"""test_python_save.py: fleche saves through flechefs.FlechefsCache into flechefs-server
(put_value and save, rpc/PROTOCOL.md), and the real fleche reads the directory as if
it had written it itself.

For each layout fleche writes (pickle, cloudpickle and dill files, SQLite calls, gzip,
signed), a fleche.toml names the cache and the server finds it with --cache (so the
serializer, compression and key come from the configuration, as for fleche's own
remote):

- "machine A" runs cached functions through FlechefsCache (numbers, strings, nested
  containers fleche destructures, numpy arrays of 1 KiB and, in one layout, 64 MiB,
  dataclasses); "machine B" (an empty local cache stacked on another FlechefsCache)
  gets every call as a hit, without running the function, with equal values;
- fleche opening the directory directly loads every call and value equal;
- saving every call again uploads no value bytes (counted by the client);
- the server refuses what is not what it says: bytes that are not one pickle, a
  record that does not hold the call described, a call whose value is missing, a
  different call under a stored key (never overwritten), and anything on a read-only
  server (fleche's Rejected, nothing written);
- kill -9 of the server in the middle of uploads, at several points: every key-named
  file fleche sees is complete, only dot-named temporary files remain, and the next
  server removes them once they are a day old.
- SQLite call storage too: the rows are written in one transaction, as fleche's own.
"""

import dataclasses
import os
import pickle
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
import fleche  # noqa: E402
import fleche.metadata  # noqa: E402
import numpy as np  # noqa: E402
from fleche.caches import CacheStack, Rejected  # noqa: E402
from fleche.call import Call, DigestedCall  # noqa: E402
from fleche.config import cache_from_config  # noqa: E402

from flechefs import FlechefsCache, ServerError  # noqa: E402

T = common.Checks("python_save")
SECRET_HEX = "7465737473656372657400ff"
RUNS = {"n": 0}


@dataclasses.dataclass
class Point:
    x: float
    y: float


def layouts():
    return {
        "pickle": {"values": {"type": "pickle", "root": "c/values"},
                   "calls": {"type": "pickle", "root": "c/calls"}},
        "cloudpickle": {"template": "cloudpickle", "root": "c"},
        "dill": {"template": "dill", "root": "c"},
        "gzip": {"values": {"type": "cloudpickle", "root": "c/values", "compress": True},
                 "calls": {"type": "cloudpickle", "root": "c/calls", "compress": True}},
        "signed": {"values": {"type": "cloudpickle", "root": "c/values",
                              "secret_key": [SECRET_HEX]},
                   "calls": {"type": "cloudpickle", "root": "c/calls",
                             "secret_key": [SECRET_HEX]}},
        "sql": {"values": {"type": "pickle", "root": "c/values"},
                "calls": {"type": "sql", "url": "sqlite:///c/calls.db"}},
    }


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def write_toml(d, layout):
    lines = ['[default]', 'cache = "shared"', '', '[shared]']
    for k, v in layout.items():
        if isinstance(v, dict):
            lines += ["%s.%s = %s" % (k, kk, toml_value(vv)) for kk, vv in v.items()]
        else:
            lines.append("%s = %s" % (k, toml_value(v)))
    with open(os.path.join(d, "fleche.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def values(big):
    out = {
        "int": 42, "float": 2.5, "str": "hello", "bytes": b"\x00\x01",
        "nested": [1, [2.0, {"k": "v"}], (3, 4)],
        "dict": {"a": [1, 2], "b": {"c": 3}},
        "small_array": np.arange(128, dtype=np.float64),
        "point": Point(1.0, -2.0),
        "points": [Point(0.0, 1.0), Point(2.0, 3.0)],
    }
    if big:
        out["big_array"] = np.arange(8 << 20, dtype=np.float64)  # 64 MiB
    return out


VALUES = {}


@fleche.fleche
def make(name):
    RUNS["n"] += 1
    return VALUES[name]


@fleche.fleche(version=2)
def norm(p, scale=1.0):
    RUNS["n"] += 1
    return (p.x ** 2 + p.y ** 2) ** 0.5 * scale


def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def run_all():
    out = {}
    for name in VALUES:
        out[("make", name)] = make(name)
    out[("norm", 1)] = norm(Point(3.0, 4.0))
    out[("norm", 2)] = norm(Point(3.0, 4.0), scale=2.0)
    return out


def make_storage(layout):
    """What fleche makes on first use (the server serves existing storage only)."""
    if layout.get("template"):
        os.makedirs(os.path.join(layout["root"], "values"), exist_ok=True)
        os.makedirs(os.path.join(layout["root"], "calls"), exist_ok=True)
    else:
        os.makedirs(layout["values"]["root"], exist_ok=True)
        if layout["calls"].get("root"):
            os.makedirs(layout["calls"]["root"], exist_ok=True)
    ref = cache_from_config(layout)
    list(ref.calls.list())  # makes the SQLite database
    return ref


def listing(root):
    out = []
    for sub in ("values", "calls"):
        p = os.path.join(root, sub)
        if os.path.isdir(p):
            out += sorted(os.path.join(sub, f) for f in os.listdir(p))
    if os.path.exists(os.path.join(root, "calls.db")):
        out.append("calls.db")
    return out


def check_layout(name, d, server):
    layout = layouts()[name]
    write_toml(d, layout)
    os.chdir(d)
    os.environ.pop("FLECHE_SECRET_KEY", None)
    make_storage(layout)
    a = FlechefsCache(cache_name="shared", server=server, workdir=d)
    b = FlechefsCache(cache_name="shared", server=server, workdir=d)
    ro = FlechefsCache(cache_name="shared", server=server, workdir=d,
                       server_args=("--read-only",))
    try:
        hello = a.info()
        T.equal(hello["layout"]["values"].get("serializer"),
                layout.get("template") or layout["values"]["type"],
                "%s: hello reports the serializer" % name)
        T.equal(hello["layout"]["signed"], name == "signed", "%s: hello says signed" % name)
        T.equal(hello["layout"]["values"].get("compress"), name == "gzip",
                "%s: hello says compressed" % name)
        RUNS["n"] = 0
        with fleche.cache(a), fleche.meta(fleche.metadata.Runtime()), \
                fleche.tags(run="machine-a", ratio=0.5, missing=float("nan"), big=2 ** 70):
            results = run_all()
        T.equal(RUNS["n"], len(results), "%s: machine A ran every call" % name)
        local_b = cache_from_config({"template": "cloudpickle",
                                     "root": os.path.join(d, "machine-b")})
        RUNS["n"] = 0
        with fleche.cache(CacheStack((local_b, b))):
            again = run_all()
        T.equal(RUNS["n"], 0, "%s: machine B ran nothing (all hits)" % name)
        for k in results:
            T.check(same(again[k], results[k]), "%s: machine B's %s equal" % (name, k))
        # fleche itself, on the directory
        if name == "signed":
            os.environ["FLECHE_SECRET_KEY"] = SECRET_HEX
        ref = cache_from_config(layout)
        keys = sorted(str(k) for k in ref.calls.list())
        T.equal(len(keys), len(results), "%s: fleche finds every call" % name)
        loaded = {}
        for k in keys:
            c = ref.load(k)
            arg = dict(c.arguments)
            loaded[("make", arg["name"]) if c.name == "make" else
                   ("norm", 1 if arg.get("scale", 1.0) == 1.0 else 2)] = c.result
            T.equal(c.version, 2 if c.name == "norm" else None, "%s: version" % name)
            tags = c.metadata.get("tags", {})
            T.check(tags.get("run") == "machine-a" and tags.get("ratio") == 0.5
                    and tags.get("missing") != tags.get("missing") and tags.get("big") == 2 ** 70
                    and isinstance(c.metadata.get("runtime", {}).get("timestop"), float),
                    "%s: fleche reads the metadata saved: %r" % (name, c.metadata))
        for k in results:
            T.check(k in loaded and same(loaded[k], results[k]),
                    "%s: fleche loads %s equal" % (name, k))
        for k in ref.values.list():
            try:
                ref.load_value(k)
            except Exception as e:  # noqa: BLE001
                T.check(False, "%s: fleche cannot load value %s: %s" % (name, k, e))
        # again: nothing uploaded
        c = FlechefsCache(cache_name="shared", server=server, workdir=d)
        for k in keys:
            c.save(ref.load(k).fetch())
        T.equal(c.bytes_uploaded, 0, "%s: saving every call again uploads no value bytes"
                % name)
        T.equal(sorted(str(x) for x in ref.calls.list()), keys, "%s: no new call" % name)
        c.close()
        # read-only: refused, nothing written
        before = listing(os.path.join(d, "c"))
        T.equal(common_outcome(lambda: ro.save(Call(name="f", arguments={}, result=7)))[:2],
                ("raise", Rejected), "%s: save on a read-only server" % name)
        T.equal(common_outcome(lambda: ro.evict(keys[0]))[:2], ("raise", Rejected),
                "%s: evict on a read-only server" % name)
        T.equal(common_outcome(lambda: ro._conn.call("put_value", "ab" * 32, 0, b"x", True))[2],
                "EROFS", "%s: put_value on a read-only server" % name)
        T.equal(listing(os.path.join(d, "c")), before, "%s: read-only wrote nothing" % name)
        refusals(name, a, ref, keys, d)
        interleaved_uploads(name, a, d)
    finally:
        for c in (a, b, ro):
            c.close()


def common_outcome(fn):
    try:
        return ("ok", fn(), None)
    except ServerError as e:
        return ("raise", type(e), e.name)
    except Exception as e:  # noqa: BLE001
        return ("raise", type(e), None)


def refusals(name, fc, ref, keys, d):
    before = listing(os.path.join(d, "c"))
    key = "0123" * 16
    got = common_outcome(lambda: fc._conn.call("put_value", key, 0, b"not a pickle", True))
    T.equal(got[2], "CORRUPT", "%s: put_value of bytes that are not a pickle" % name)
    stored = ref.calls.load(keys[0])
    pickled = fc._stored_forms().dumps
    dumps = (lambda c: None) if name == "sql" else pickled  # SQL: the record's fields only
    call_map = fc._record_map(stored, keys[0])
    other = DigestedCall(name=stored.name, arguments=dict(stored.arguments),
                         result=stored.result, metadata={"x": {"y": 1}},
                         module=stored.module, version=stored.version,
                         code_digest=stored.code_digest)
    got = common_outcome(lambda: fc._conn.call("save", call_map, pickled(other)))
    T.equal(got[2], "EINVAL", "%s: a record that is not the call described" % name)
    other_map = fc._record_map(other, keys[0])
    got = common_outcome(lambda: fc._conn.call("save", other_map, dumps(other)))
    T.equal(got[2], "EEXIST", "%s: another call under a stored key" % name)
    missing = DigestedCall(name="m", arguments={"x": "ab" * 32}, result=None)
    mkey = str(missing.to_lookup_key())
    got = common_outcome(lambda: fc._conn.call("save", fc._record_map(missing, mkey),
                                               dumps(missing)))
    T.equal(got[2], "ENOENT", "%s: a call whose value is missing" % name)
    got = common_outcome(lambda: fc._conn.call("save", call_map, dumps(stored)))
    T.equal(got[:2], ("ok", {"existed": True}), "%s: the same call again" % name)
    T.equal(listing(os.path.join(d, "c")), before, "%s: refusals wrote nothing" % name)
    T.equal(repr(ref.calls.load(keys[0])), repr(stored),  # repr: NaN in the metadata
            "%s: the stored record unchanged" % name)


def interleaved_uploads(name, fc, d):
    """Uploads of one key interleaved on one connection (a client's mistake; the
    server runs a connection's requests on several threads): every request is
    answered, the server lives on, and the value is whole or absent."""
    data = pickle.dumps(bytes(range(256)) * 16384)  # 4 MiB: a final check takes a while
    key, half = "5a" * 32, len(data) // 2
    pending = []
    for _ in range(40):
        pending.append(fc._conn.send("put_value", key, 0, data[:half], False))
        pending.append(fc._conn.send("put_value", key, half, data[half:], True))
    outcomes = [common_outcome(p.wait) for p in pending]
    T.equal(sorted({o[2] for o in outcomes if o[0] != "ok"} - {"EINVAL"}), [],
            "%s: interleaved uploads of one key answer success or EINVAL" % name)
    T.equal(common_outcome(lambda: fc._conn.call("contains", "ab" * 32))[:2], ("ok", False),
            "%s: the server answers after interleaved uploads" % name)
    try:
        T.check(bytes(fc.load_value_bytes(key)) == data,
                "%s: the value uploaded interleaved is whole" % name)
    except KeyError:
        T.check(not any(o[0] == "ok" for o in outcomes[1::2]),
                "%s: a value told stored is there" % name)


def check_kill(d, server):
    """kill -9 of the server while it receives a 64 MiB value, at several points."""
    write_toml(d, layouts()["cloudpickle"])
    os.chdir(d)
    ref = make_storage(layouts()["cloudpickle"])
    vdir = os.path.join(d, "c", "values")
    for i, delay in enumerate((0.05, 0.2, 0.4, 0.8, 1.5)):
        fc = FlechefsCache(cache_name="shared", server=server, workdir=d)
        pid = fc.info()["pid"]
        big = np.full(8 << 20, float(i + 1))
        done = {}

        def save(fc=fc, big=big, done=done):
            try:
                done["key"] = fc.save(Call(name="big", arguments={"i": i}, result=big))
            except Exception as e:  # noqa: BLE001 (the server was killed)
                done["error"] = e
        t = threading.Thread(target=save)
        t.start()
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        t.join(60)
        T.check(not t.is_alive(), "kill at %.2f s: the client's save returns" % delay)
        fc.close()
        for k in ref.values.list():
            try:
                ref.load_value(k)
            except Exception as e:  # noqa: BLE001
                T.check(False, "kill at %.2f s: value %s is half there: %s" % (delay, k, e))
        for k in ref.calls.list():
            c = ref.load(k)
            T.check(same(c.result, np.full(8 << 20, float(c.arguments["i"] + 1))),
                    "kill at %.2f s: call %s whole" % (delay, k))
        if "key" in done:
            T.check(ref.contains(done["key"]), "kill at %.2f s: the saved call is there"
                    % delay)
        stray = [f for f in os.listdir(vdir)
                 if not f.startswith(".") and len(f) != 64] if os.path.isdir(vdir) else []
        T.equal(stray, [], "kill at %.2f s: no other file" % delay)
        print("kill at %.2f s: %s" % (delay, "saved" if "key" in done else
                                      type(done.get("error")).__name__), flush=True)
    temps = [f for f in os.listdir(vdir) if f.startswith(".flechefs-")]
    old = time.time() - 2 * 86400
    for f in temps:
        os.utime(os.path.join(vdir, f), (old, old))
    fc = FlechefsCache(cache_name="shared", server=server, workdir=d)
    fc.info()
    fc.close()
    T.equal([f for f in os.listdir(vdir) if f.startswith(".flechefs-")], [],
            "the next server removes temporary files a day old (%d were left)" % len(temps))


def main():
    server = common.binary("flechefs-server")
    for name in ("pickle", "cloudpickle", "dill", "gzip", "signed", "sql"):
        VALUES.clear()
        VALUES.update(values(big=name == "cloudpickle"))
        with common.temp_dir() as d:
            T.run(check_layout, name, d, server)
            print("%s: done" % name, flush=True)
    with common.temp_dir() as d:
        T.run(check_kill, d, server)
    os.chdir(common.SOURCE)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
