"""test_make_cache.py: examples/make-cache.py writes caches that fleche would read back.

The generator is run as a program (with this interpreter, /usr/bin/python3 under
ctest) into temporary directories, and what it wrote is read back independently:
call records unpickled with stand-ins for fleche's classes registered under fleche's
module names, destructured values put back together from their parts, numpy arrays
loaded by the real numpy (Debian's python3-numpy) and compared with numpy.arange, SQL
rows checked against fleche's schema, gzip and HMAC layers unwrapped and verified.
The streamed pickles (--big-value, --big-array) must be byte for byte what
pickle.dumps writes, at the sizes where pickle's framing changes.

With the argument "server" it serves generated caches (every layout and encoding)
through the built flechefs-server and checks that what the server answers (listings,
records, metadata, value bytes read in ranges) is what the generator wrote.

With the argument "fixture" it instead compares the generator's output with the real
fleche cache in tests/fixtures/real-cache: the opcode sequences of call records
and destructured values, the SQL schema, and a numpy array value byte for byte.
"""

import collections
import gzip
import hashlib
import hmac
import importlib.util
import json
import math
import os
import pickle
import pickletools
import resource
import shutil
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

MAKE = os.path.join(common.SOURCE, "examples", "make-cache.py")
KEY_HEX = "6578616d706c652d6b6579"  # "example-key"

try:
    import numpy as np
except ImportError:  # numpy is in the Debian packages run-tests installs
    np = None


def load_generator():
    spec = importlib.util.spec_from_file_location("make_cache", MAKE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.install_standins()
    return mod


mc = load_generator()
T = common.Checks("test_make_cache")


class Buf:
    def __init__(self):
        self.data = bytearray()

    def write(self, b):
        self.data += b


def generate(d, *args):
    """Runs make-cache.py into d; returns the manifest it wrote."""
    mf = d.rstrip("/") + ".manifest.json"
    r = common.run([sys.executable, MAKE, d, "--manifest", mf] + list(args), timeout=300)
    if r.returncode != 0:
        raise RuntimeError("make-cache.py %s failed (%d): %s"
                           % (" ".join(args), r.returncode, r.stderr.decode()))
    with open(mf, encoding="utf-8") as f:
        return json.load(f)


def stream(path, key_hex=None):
    with open(path, "rb") as f:
        return common.unwrap_file(f.read(), key_hex)


def ops(data):
    return [op.name for op, _arg, _pos in pickletools.genops(data)]


def globals_of(data):
    """The (module, name) pairs a protocol 4+ pickle names with STACK_GLOBAL."""
    out, strings = [], []
    for op, arg, _pos in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            out.append((strings[-2], strings[-1]))
    return out


def resolve(v, values_dir, key_hex, depth=0):
    """A stored value with its Digest references replaced by the referenced values."""
    if depth > 32:
        raise ValueError("destructured value nested too deep")
    if isinstance(v, mc.Digest):
        return resolve(pickle.loads(stream(os.path.join(values_dir, v), key_hex)),
                       values_dir, key_hex, depth + 1)
    if isinstance(v, mc.DigestedIterable):
        items = [resolve(x, values_dir, key_hex, depth + 1) for x in v.items]
        return tuple(items) if isinstance(v.items, tuple) else items
    if isinstance(v, mc.DigestedDict):
        return {k: resolve(x, values_dir, key_hex, depth + 1) for k, x in v.items.items()}
    return v


def load_value(root, key, key_hex=None):
    data = stream(os.path.join(root, "values", key), key_hex)
    return data, resolve(pickle.loads(data), os.path.join(root, "values"), key_hex)


def same(a, b):
    """Equality that treats nan as equal to nan and compares arrays by content."""
    if np is not None and isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return (isinstance(b, dict) and list(a) == list(b)
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


def check_values(root, manifest, key_hex=None):
    """Every value file: unwraps, unpickles, and its key is the documented digest."""
    for key, info in manifest["values"].items():
        data, v = load_value(root, key, key_hex)
        T.equal(len(data), info["size"], "%s: size of value %s" % (root, key[:8]))
        if isinstance(v, (bytes, bytearray)):
            T.equal(hashlib.sha256(v).hexdigest(), key, "bytes value key = sha256(bytes)")
        elif np is not None and isinstance(v, np.ndarray):
            T.check(v.dtype == np.float64 and v.ndim == 1 and v.flags.c_contiguous,
                    "value %s is a 1-d float64 array" % key[:8])
            h = hashlib.sha256(b"flechefs-example-value-v1\nndarray:<f8:(%d,):C:" % v.size)
            h.update(v.astype("<f8").tobytes())
            T.equal(h.hexdigest(), key, "array value key")
        else:
            T.equal(mc.value_key(v), key, "value key of %r" % (v,))
        if info["destructured"]:
            raw = pickle.loads(data)
            T.check(isinstance(raw, (mc.DigestedDict, mc.DigestedIterable)),
                    "value %s is stored destructured" % key[:8])
    T.equal(sorted(n for n in os.listdir(os.path.join(root, "values"))),
            sorted(manifest["values"]), "%s: values/ holds exactly the values" % root)


def records(root, manifest, key_hex=None):
    """The call records as dicts, read from calls/ or calls.db (not via the manifest)."""
    out = {}
    db = os.path.join(root, "calls.db")
    if manifest["layout"] == "sql":
        con = sqlite3.connect(db)
        try:
            for key, name, module, version, code, result in con.execute(
                    'SELECT "key", name, module, version, code_digest, result FROM calls'):
                out[key] = {"name": name, "module": module,
                            "version": None if version is None else json.loads(version),
                            "code_digest": code, "result": result, "arguments": {},
                            "metadata": {}}
            for key, pos, name, value in con.execute(
                    "SELECT call_key, position, name, value FROM arguments "
                    "ORDER BY call_key, position"):
                T.equal(pos, len(out[key]["arguments"]), "argument positions count up")
                out[key]["arguments"][name] = value
            for key, name, data in con.execute("SELECT call_key, name, data FROM metadata"):
                out[key]["metadata"][name] = json.loads(data)
        finally:
            con.close()
        return out
    for key in os.listdir(os.path.join(root, "calls")):
        data = stream(os.path.join(root, "calls", key), key_hex)
        T.equal(globals_of(data)[0], ("fleche.call", "DigestedCall"),
                "call %s is a fleche.call.DigestedCall" % key[:8])
        c = pickle.loads(data)
        T.check(isinstance(c, mc.DigestedCall), "call %s unpickles" % key[:8])
        T.equal(list(c.__dict__), list(mc.DigestedCall.FIELDS), "state dict fields in order")
        T.check(all(type(d) is mc.Digest for d in c.arguments.values())
                and (c.result is None or type(c.result) is mc.Digest),
                "argument and result references are Digests")
        T.check(isinstance(c.metadata, collections.defaultdict)
                and c.metadata.default_factory is dict, "metadata is a defaultdict(dict)")
        out[key] = {"name": c.name, "module": c.module, "version": c.version,
                    "code_digest": c.code_digest,
                    "result": None if c.result is None else str(c.result),
                    "arguments": {k: str(v) for k, v in c.arguments.items()},
                    "metadata": dict(c.metadata)}
    return out


def check_calls(root, manifest, key_hex=None):
    recs = records(root, manifest, key_hex)
    T.equal(sorted(recs), sorted(c["key"] for c in manifest["calls"]),
            "%s: the stored call keys are the manifest's" % root)
    for c in manifest["calls"]:
        r = recs.get(c["key"])
        if r is None:
            continue
        for field in ("name", "module", "version", "code_digest", "result", "arguments"):
            T.equal(r[field], c[field], "call %s %s" % (c["key"][:8], field))
        T.equal(list(r["arguments"]), list(c["arguments"]), "argument order")
        want = mc.call_key(r["name"], r["module"], r["version"], r["code_digest"],
                           list(r["arguments"].items()))
        T.equal(c["key"], want, "call key is the documented digest")
        for k in list(r["arguments"].values()) + ([r["result"]] if r["result"] else []):
            T.check(k in manifest["values"], "call %s refers to stored value %s"
                    % (c["key"][:8], k[:8]))
        if r["metadata"]:
            rt = r["metadata"]["runtime"]
            T.equal(sorted(rt), ["cputime", "systime", "timestart", "timestop", "walltime"],
                    "runtime block fields")
            T.check(rt["timestop"] >= rt["timestart"], "timestop after timestart")
            T.equal(sorted(r["metadata"]["environment"]),
                    ["cwd", "fleche_version", "hostname", "python_version", "username"],
                    "environment block fields")
    return recs


def freeze(v):
    """v with lists made tuples (hashable, to index results by arguments)."""
    return tuple(freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


def by_name(manifest, recs, root, name, key_hex=None):
    """{tuple of argument values: resolved result} for the calls of one function."""
    out = {}
    for c in manifest["calls"]:
        if c["name"] != name:
            continue
        args = tuple(freeze(load_value(root, k, key_hex)[1]) for k in c["arguments"].values())
        res = None if c["result"] is None else load_value(root, c["result"], key_hex)[1]
        out[args] = (res, recs[c["key"]])
    return out


def no_leftovers(root):
    left = [os.path.join(dp, f) for dp, _dn, fn in os.walk(root) for f in fn
            if f.startswith(".") or f.endswith(("-wal", "-shm", ".tmp"))]
    T.equal(left, [], "%s: no temporary, -wal or -shm files left" % root)


# -- the tests ---------------------------------------------------------------------


def test_demo(d, args, key_hex=None):
    root = os.path.join(d, "demo-" + "-".join(a.strip("-") for a in args if a.startswith("-")))
    m = generate(root, "--demo", *args)
    check_values(root, m, key_hex)
    recs = check_calls(root, m, key_hex)
    no_leftovers(root)
    T.equal(sorted({c["name"] for c in m["calls"]}),
            ["add", "blob", "fit", "greet", "make_array", "nested", "nothing", "stats"],
            "the demo's functions")
    add = by_name(m, recs, root, "add", key_hex)
    T.equal(add.get((2, 3), (None,))[0], 5, "add(2, 3) = 5")
    greet = by_name(m, recs, root, "greet", key_hex)
    T.equal(greet.get(("Ada", "!", False), (None,))[0], "Hello, Ada!", "greet Ada")
    T.equal(greet.get(("Grace", "?", True), (None,))[0], "HELLO, GRACE?", "greet shout")
    T.equal([r["version"] for _res, r in greet.values()], ["1.0", "1.0"], "greet version")
    nested = by_name(m, recs, root, "nested", key_hex)
    want = {"depth": 3, "tree": [[0, [0, 0]], [1, [10, 100]], [2, [20, 200]]],
            "label": ("leaf", 3)}
    T.check(same(nested.get((3,), (None,))[0], want), "nested(3) resolves whole")
    nothing = by_name(m, recs, root, "nothing", key_hex)
    T.check(list(nothing.values())[0][0] is None and not list(nothing.values())[0][1]["metadata"],
            "nothing(42) has no result and no metadata")
    fit = list(by_name(m, recs, root, "fit", key_hex).values())[0][1]
    tags = fit["metadata"].get("tags", {})
    T.check(math.isnan(tags.get("loss", 0.0)) and tags.get("best") == math.inf
            and tags.get("worst") == -math.inf, "fit's tags hold nan, inf and -inf")
    blob = by_name(m, recs, root, "blob", key_hex)
    T.equal(blob.get((64,), (None,))[0], bytes(range(64)), "blob(64)")
    if np is not None:
        arr = by_name(m, recs, root, "make_array", key_hex).get((5, 0.5), (None,))[0]
        T.check(same(arr, np.arange(5, dtype=np.float64) * 0.5), "make_array(5, 0.5)")
    return root, m


def test_files_p5(d):
    root, m = test_demo(d, [])
    for key in os.listdir(os.path.join(root, "calls")):
        with open(os.path.join(root, "calls", key), "rb") as f:
            T.equal(f.read(2), b"\x80\x05", "protocol 5 call record")
    with open(os.path.join(root, "fleche.toml"), encoding="utf-8") as f:
        toml = f.read()
    T.check('values.type = "cloudpickle"' in toml and 'calls.root = "calls"' in toml,
            "fleche.toml describes the cache")


def test_files_p4_gzip_signed(d):
    root, m = test_demo(d, ["--protocol", "4", "--gzip", "--sign-key", KEY_HEX], KEY_HEX)
    for sub in ("calls", "values"):
        for key in os.listdir(os.path.join(root, sub)):
            with open(os.path.join(root, sub, key), "rb") as f:
                raw = f.read()
            T.check(raw[:4] == b"\x1f\x8b\x08\x00" and raw[9:10] == b"\xff",
                    "%s/%s: gzip header without a file name, OS 255" % (sub, key[:8]))
            inner = gzip.decompress(raw)
            body, sig = inner[:-64], inner[-64:]
            T.equal(sig.decode(), hmac.new(bytes.fromhex(KEY_HEX), body,
                                           hashlib.sha256).hexdigest(),
                    "%s/%s: HMAC trailer" % (sub, key[:8]))
            T.equal(body[:2], b"\x80\x04", "protocol 4")
            T.equal(body[-1:], b".", "the pickle ends at STOP, then the trailer")


def test_sql(d):
    root = os.path.join(d, "sql")
    m = generate(root, "--layout", "sql", "--calls", "40", "--destructured", "--nan-tags")
    T.check(not os.path.exists(os.path.join(root, "calls")), "sql layout has no calls/")
    con = sqlite3.connect(os.path.join(root, "calls.db"))
    try:
        schema = [r[0] for r in con.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
        T.equal(schema, mc.SQL_SCHEMA, "fleche's schema, statement by statement")
        T.equal(con.execute("PRAGMA journal_mode").fetchone()[0], "wal", "WAL mode")
        versions = dict(con.execute(
            "SELECT name, version FROM calls WHERE name IN ('greet', 'stats', 'add')"))
        T.equal(versions, {"greet": '"1.0"', "stats": "2", "add": None},
                "version as JSON text or NULL")
        tags = con.execute("SELECT data FROM metadata WHERE name = 'tags'").fetchone()[0]
        T.check("NaN" in tags and "-Infinity" in tags,
                "tags written by json.dumps with bare NaN/Infinity: %s" % tags)
        T.equal(con.execute("SELECT count(*) FROM calls").fetchone()[0], 42, "42 calls")
    finally:
        con.close()
    for f in ("calls.db-wal", "calls.db-shm"):
        p = os.path.join(root, f)
        if os.path.exists(p):
            os.unlink(p)  # left by our own reading connection
    check_values(root, m)
    recs = check_calls(root, m)
    T.equal(sorted({c["name"] for c in m["calls"]}),
            ["add", "fit", "greet", "make_array", "nested", "stats"], "synthetic functions")
    stats = by_name(m, recs, root, "stats")
    T.check(all(r["n"] == 4 and r["sum"] == sum(a[0]) for a, (r, _rec) in stats.items()),
            "stats results")
    arrays = by_name(m, recs, root, "make_array")
    if np is not None:
        T.check(all(same(r, np.arange(n, dtype=np.float64) * s)
                    for (n, s), (r, _rec) in arrays.items()), "make_array results")


def test_streamed_identity():
    """Streamed pickles equal pickle.dumps around every framing threshold."""
    bad = []
    for p in (4, 5):
        for n in (0, 1, 3, 255, 65000, 65523, 65524, 65525, 65535, 65536, 65537, 200000):
            v = mc.RandomBytes(n, 7)
            b = Buf()
            mc.stream_bytes_pickle(b, v, p)
            if bytes(b.data) != pickle.dumps(b"".join(v.chunks()), protocol=p):
                bad.append(("bytes", p, n))
        if np is None:
            continue
        for n in [0, 1, 3, 33, 100000] + list(range(8176, 8196)):
            for scale in (1.0, 0.25):
                b = Buf()
                mc.stream_array_pickle(b, mc.Float64Array(n, 0.0, scale), p)
                if bytes(b.data) != pickle.dumps(np.arange(n, dtype=np.float64) * scale,
                                                 protocol=p):
                    bad.append(("array", p, n, scale))
    T.equal(bad, [], "streamed pickles byte-identical to pickle.dumps")


def test_big(d, protocol, extra=(), key_hex=None):
    root = os.path.join(d, "big%d" % protocol)
    m = generate(root, "--big-value", "3M", "--big-array", "300000", "--protocol",
                 str(protocol), *extra)
    bv, ba = m.get("big_value"), m.get("big_array")
    T.check(bv in m["values"] and ba in m["values"], "manifest names the big values")
    data, v = load_value(root, bv, key_hex)
    T.check(isinstance(v, bytes) and len(v) == 3 << 20, "big value: 3 MiB of bytes")
    T.equal(hashlib.sha256(v).hexdigest(), bv, "big value key = sha256(bytes)")
    T.equal(data, pickle.dumps(v, protocol=protocol), "big value pickled as pickle does")
    if np is not None:
        data, a = load_value(root, ba, key_hex)
        T.check(same(a, np.arange(300000, dtype=np.float64)), "big array loads with numpy")
        T.equal(data, pickle.dumps(np.arange(300000, dtype=np.float64), protocol=protocol),
                "big array pickled as numpy does")
    check_calls(root, m, key_hex)
    no_leftovers(root)


def test_big_memory(d):
    """A value much larger than the memory the generator may use."""
    root = os.path.join(d, "mem")
    r = common.run([sys.executable, MAKE, root, "--big-value", "160M", "-q"], timeout=300)
    T.equal(r.returncode, 0, "big value written: %s" % r.stderr.decode())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    T.check(peak < 96 * 1024, "peak RSS %d KiB while writing a 160 MiB value" % peak)
    sizes = [os.path.getsize(os.path.join(root, "values", k))
             for k in os.listdir(os.path.join(root, "values"))]
    T.check(max(sizes) == (160 << 20) + 9, "a 160 MiB bytes value: header 7, trailer 2")
    shutil.rmtree(root)


def test_refuse_and_force(d):
    root = os.path.join(d, "busy")
    os.makedirs(root)
    with open(os.path.join(root, "keep.txt"), "w") as f:
        f.write("mine")
    r = common.run([sys.executable, MAKE, root, "--demo"])
    T.equal(r.returncode, 2, "non-empty directory refused")
    T.check(b"refusing" in r.stderr and os.listdir(root) == ["keep.txt"],
            "nothing written into it: %s" % r.stderr.decode())
    r = common.run([sys.executable, MAKE, root, "--demo", "--force", "-q"])
    T.equal(r.returncode, 0, "--force writes")
    T.check(os.path.isdir(os.path.join(root, "calls")) and
            os.path.exists(os.path.join(root, "keep.txt")), "--force keeps foreign files")


def test_deterministic(d):
    trees = []
    for n in ("det1", "det2"):
        root = os.path.join(d, n)
        r = common.run([sys.executable, MAKE, root, "--calls", "20", "--demo", "--gzip", "-q"])
        T.equal(r.returncode, 0, "generate %s" % n)
        tree = {}
        for dp, _dn, fn in os.walk(root):
            for f in fn:
                with open(os.path.join(dp, f), "rb") as fh:
                    tree[os.path.relpath(os.path.join(dp, f), root)] = fh.read()
        trees.append(tree)
    T.check(trees[0] == trees[1], "two runs write identical files")


# -- against the real fleche fixture -------------------------------------------------

def test_fixture(d):
    fx = common.fixtures_dir()
    root = os.path.join(d, "cmp")
    m = generate(root, "--demo")
    by = {c["name"]: c for c in m["calls"]}

    def fx_file(cache, kind, key, key_hex=None):
        return stream(os.path.join(fx, cache, kind, key), key_hex)

    exp = common.expected()

    def fx_call(cache, name, want_tags=False):
        for c in exp["caches"][cache]["calls"]:
            if c["name"] == name and ("tags" in c["metadata"]) == want_tags:
                return c
        return None

    # call records: the same opcodes, in the same order, as fleche's
    for cache, name, key_hex in (("files", "add", None), ("files", "make_array", None),
                                 ("signed", "greet", exp["secret_key_hex_for_cache_signed"])):
        theirs = fx_call(cache, name)
        ours = stream(os.path.join(root, "calls", by[name]["key"]))
        T.equal(ops(ours), ops(fx_file(cache, "calls", theirs["key"], key_hex)),
                "opcodes of a %s call record equal fleche's (%s)" % (name, cache))
    # tags block (files cache 'add' with tags) against our fit(): same block layout
    theirs = fx_call("files", "add", want_tags=True)
    T.check(theirs is not None and "tags" in theirs["metadata"], "fixture has a tagged call")
    # protocol 4 gzip record vs the gzip cache
    root4 = os.path.join(d, "cmp4")
    m4 = generate(root4, "--demo", "--protocol", "4", "--gzip")
    by4 = {c["name"]: c for c in m4["calls"]}
    theirs = fx_call("gzip", "make_array")
    T.equal(ops(stream(os.path.join(root4, "calls", by4["make_array"]["key"]))),
            ops(fx_file("gzip", "calls", theirs["key"])),
            "opcodes of a protocol 4 gzip call record equal fleche's")
    with open(os.path.join(fx, "gzip", "calls", theirs["key"]), "rb") as f:
        fx_head = f.read(10)
    with open(os.path.join(root4, "calls", by4["make_array"]["key"]), "rb") as f:
        our_head = f.read(10)
    T.equal(our_head[:4] + our_head[8:], fx_head[:4] + fx_head[8:],
            "gzip header as fleche's (but the time)")
    # destructured values: DigestedDict and DigestedIterable as fleche writes them
    theirs = fx_call("files", "nested")
    fx_nested = fx_file("files", "values", theirs["result_digest"])
    our_nested = stream(os.path.join(root, "values", by["nested"]["result"]))
    T.equal(ops(our_nested), ops(fx_nested), "opcodes of a DigestedDict equal fleche's")
    T.equal(globals_of(our_nested), globals_of(fx_nested), "DigestedDict globals")
    our_tree = pickle.loads(our_nested).items["tree"]
    fx_tree = pickle.loads(fx_nested).items["tree"]
    T.equal(ops(stream(os.path.join(root, "values", our_tree))),
            ops(fx_file("files", "values", fx_tree)), "opcodes of a DigestedIterable")
    # a numpy array: make_array(3, 0.5) byte for byte
    fx_arr = fx_file("files", "values", "63903d296e3bd06997a0b46782de0df700a6f6636823d3cd8dcc800c08a36657")
    b = Buf()
    mc.stream_array_pickle(b, mc.Float64Array(3, 0.0, 0.5), 5)
    T.equal(bytes(b.data), fx_arr, "array([0, 0.5, 1]) pickled byte for byte as in the fixture")
    # a 2 MiB bytes value (fleche's blob): the same framing
    blob = fx_call("files", "blob")
    with open(os.path.join(fx, "files", "values", blob["result_digest"]), "rb") as f:
        fx_blob = f.read()
    rb = mc.RandomBytes(len(fx_blob) - 9, 1)
    b = Buf()
    mc.stream_bytes_pickle(b, rb, 5)
    T.equal((bytes(b.data[:7]), bytes(b.data[-2:]), len(b.data)),
            (fx_blob[:7], fx_blob[-2:], len(fx_blob)), "2 MiB bytes value framed as fleche's")
    # the SQL schema, from a copy of the fixture database (never opened in place)
    copy = os.path.join(d, "fixture-calls.db")
    shutil.copyfile(os.path.join(fx, "pickle_sql", "calls.db"), copy)
    con = sqlite3.connect(copy)
    try:
        fx_schema = [r[0] for r in con.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
    finally:
        con.close()
    T.equal(mc.SQL_SCHEMA, fx_schema, "the SQL schema is the fixture's")


# -- through flechefs-server -----------------------------------------------------------

def test_server(d):
    from client import Server

    server = common.binary("flechefs-server")
    cases = (("srv-files", [], None),
             ("srv-p4-gzip-signed", ["--protocol", "4", "--gzip", "--sign-key", KEY_HEX],
              KEY_HEX),
             ("srv-sql", ["--layout", "sql", "--calls", "30"], None))
    for name, args, key_hex in cases:
        root = os.path.join(d, name)
        m = generate(root, "--demo", "--big-value", "1500K", "--big-array", "70000", *args)
        recs = records(root, m, key_hex)
        env = {"FLECHE_SECRET_KEY": key_hex} if key_hex else None
        with Server(server, ["--serve", "--root", root, "--read-only"], extra_env=env) as s:
            s.hello()
            for kind, want in (("calls", [c["key"] for c in m["calls"]]),
                               ("values", list(m["values"]))):
                got, after = [], None
                while True:
                    page = s.call("list", kind, after, 7)
                    got += page["keys"]
                    if page["complete"] or not page["keys"]:
                        break
                    after = page["keys"][-1]
                T.equal(got, sorted(want), "%s: list %s" % (name, kind))
            for c in m["calls"]:
                r = s.call("load", c["key"])
                T.equal([r["name"], r["module"], r["version"], r["code_digest"], r["result"],
                         [list(a) for a in r["arguments"]]],
                        [c["name"], c["module"], c["version"], c["code_digest"], c["result"],
                         [[k, v] for k, v in c["arguments"].items()]],
                        "%s: load %s" % (name, c["key"][:8]))
                T.check(same(r["metadata"], recs[c["key"]]["metadata"]),
                        "%s: metadata of %s: %r" % (name, c["key"][:8], r["metadata"]))
            for key, info in m["values"].items():
                st = s.call("stat_value", key, None)
                T.equal(st["size"], info["size"], "%s: stat_value %s" % (name, key[:8]))
                want = stream(os.path.join(root, "values", key), key_hex)
                got = bytearray()
                while len(got) < st["size"]:
                    chunk = s.call("load_value", key, len(got), 1 << 20, None)
                    if not chunk:
                        break
                    got += chunk
                T.check(bytes(got) == want, "%s: load_value %s: the stored pickle stream"
                        % (name, key[:8]))


def main():
    fixture = "fixture" in sys.argv[1:]
    if "server" in sys.argv[1:]:
        if np is None:
            common.skip("numpy is not importable by '%s'" % sys.executable)
        with common.temp_dir("flechefs-make-cache-") as d:
            T.run(test_server, d)
        return T.report()
    if fixture:
        common.fixtures_dir()  # skips (or fails under CI) without the fixtures
    if np is None:
        common.skip("numpy is not importable by '%s' (Debian: python3-numpy)" % sys.executable)
    with common.temp_dir("flechefs-make-cache-") as d:
        if fixture:
            T.run(test_fixture, d)
        else:
            T.run(test_files_p5, d)
            T.run(test_files_p4_gzip_signed, d)
            T.run(test_sql, d)
            T.run(test_streamed_identity)
            T.run(test_big, d, 5)
            T.run(test_big, d, 4, ("--gzip", "--sign-key", KEY_HEX), KEY_HEX)
            T.run(test_big_memory, d)
            T.run(test_refuse_and_force, d)
            T.run(test_deterministic, d)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
