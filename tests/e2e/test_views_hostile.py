"""test_views_hostile.py: hostile and broken values give an error for the view asked
for, and only for it: the pickle view of the same value is still served, other values
stay readable in the same session, and the server neither crashes nor hangs.

Values (written into a temporary cache under names chosen by the test): truncated
pickles, unknown opcodes, huge declared lengths, deep nesting, memo references out of
range, a list that holds itself, destructured references in a cycle (two values and a
value referring to itself), a missing part, a malformed reference, a chain of
references deeper than the limit, numpy arrays whose parts do not agree or whose
dtype has no npy view (object, structured), and an array too large for the json view
(EFBIG there, while its npy view serves it).
"""

import os
import pickle
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import views_common as V  # noqa: E402
from client import RpcError, Server  # noqa: E402

T = common.Checks("views_hostile")
SERVER = common.binary("flechefs-server")

VIEWS = ("json", "npy", "txt", "bin")
WRAP = b"\x8c\x1cfleche.storage.destructuring\x94"
DIGEST = b"\x8c\x0dfleche.digest\x94\x8c\x06Digest\x94\x93\x94"


def name(c):
    return c * 64


def iterable(*keys):
    """A DigestedIterable pickle whose items are Digest references to keys."""
    body = b"\x80\x05" + WRAP + b"\x8c\x10DigestedIterable\x94\x93\x94)\x81\x94}\x94" \
        b"\x8c\x05items\x94]\x94("
    for k in keys:
        kb = k.encode()
        body += DIGEST + b"\x8c" + bytes([len(kb)]) + kb + b"\x85\x81"
    return body + b"esb."


def frombuffer(data, shape, code=b"f8", names=None):
    """numpy _frombuffer(data, dtype(code), shape, 'C') as numpy pickles it."""
    dt = b"\x8c\x05numpy\x8c\x05dtype\x93\x8c" + bytes([len(code)]) + code + b"\x89\x88\x87R" \
        b"(K\x03\x8c\x01<NN" + (b"N" if names is None else names) + b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    shp = b"(" + b"".join(b"J" + struct.pack("<i", n) for n in shape) + b"t"
    return b"\x80\x05\x8c\x12numpy.core.numeric\x8c\x0b_frombuffer\x93(\x96" + \
        struct.pack("<Q", len(data)) + data + dt + shp + b"\x8c\x01Ct" + b"R."


def cases():
    """name -> (pickle bytes, {view: allowed error names})"""
    good = pickle.dumps({"a": [1, 2.5, "x"]}, protocol=5)
    selfish = []
    selfish.append(selfish)
    bad = ("CORRUPT",)
    big = ("EFBIG", "CORRUPT")
    c = {
        "truncated": (good[:len(good) // 2], {v: bad for v in VIEWS}),
        "opcode": (b"\x80\x05\xff.", {v: bad for v in VIEWS}),
        "huge_str": (b"\x80\x05\x8d" + struct.pack("<Q", 1 << 60) + b"abc.", {v: bad for v in VIEWS}),
        "huge_bytes": (b"\x80\x05\x8e" + struct.pack("<Q", 1 << 62) + b"abc.", {v: bad for v in VIEWS}),
        "deep_lists": (b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b".",
                       {"json": big, "npy": ("ENOTSUP",) + big, "txt": ("ENOTSUP",) + big,
                        "bin": ("ENOTSUP",) + big}),
        "deep_marks": (b"\x80\x02" + b"(" * 200000 + b".", {v: big for v in VIEWS}),
        "memo": (b"\x80\x05h\x05.", {v: bad for v in VIEWS}),
        "memo_long": (b"\x80\x05j\xff\xff\xff\x7f.", {v: bad for v in VIEWS}),
        "selfish": (pickle.dumps(selfish, protocol=5),
                    {"json": ("ELOOP",), "npy": ("ENOTSUP",), "txt": ("ENOTSUP",),
                     "bin": ("ENOTSUP",)}),
        "short_data": (frombuffer(b"\x00" * 8, [1000]), {"npy": bad}),
        "huge_shape": (frombuffer(b"\x00" * 8, [1 << 30, 1 << 30, 1 << 30]), {"npy": bad}),
        "json_too_big": (frombuffer(b"\x00" * 8 * 1000001, [1000001]), {"json": ("EFBIG",)}),
        "object_dtype": (frombuffer(b"\x00" * 8, [1], code=b"O8"), {"npy": ("ENOTSUP",)}),
        "structured": (frombuffer(b"\x00" * 8, [1], names=b"\x8c\x01a\x85"), {"npy": ("ENOTSUP",)}),
    }
    # destructured: a <-> b cycle, s refers to itself, m misses a part, k has a bad
    # reference, chain0 -> chain1 -> ... deeper than the limit
    c[name("a")] = (iterable(name("b")), {"json": ("ELOOP",), "npy": ("ENOTSUP",)})
    c[name("b")] = (iterable(name("a")), {"json": ("ELOOP",)})
    c[name("5")] = (iterable(name("5")), {"json": ("ELOOP",)})
    c[name("e")] = (iterable(name("f")), {"json": ("ENOENT",), "txt": ("ENOTSUP",)})
    c[name("d")] = (iterable("xyz"), {"json": ("CORRUPT",)})
    chain = ["%064x" % (0xc0de0000 + i) for i in range(70)]
    for i, k in enumerate(chain):
        c[k] = (iterable(chain[i + 1]) if i + 1 < len(chain) else pickle.dumps([i], protocol=5),
                {"json": ("EFBIG",)} if i == 0 else {})
    c["good"] = (good, {"npy": ("ENOTSUP",), "txt": ("ENOTSUP",), "bin": ("ENOTSUP",)})
    c["text"] = (pickle.dumps("hello", protocol=4), {"npy": ("ENOTSUP",), "bin": ("ENOTSUP",)})
    return c


def test_hostile():
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        os.makedirs(os.path.join(root, "values"))
        os.makedirs(os.path.join(root, "calls"))
        keys = {}
        for label, (data, _errs) in cases().items():
            key = label if len(label) == 64 else V.sha256(label.encode())
            keys[label] = key
            with open(os.path.join(root, "values", key), "wb") as f:
                f.write(data)
        with Server(SERVER, ["--serve", "--root", root], timeout=60) as s:
            s.hello()
            for label, (data, errs) in cases().items():
                key = keys[label]
                for view in VIEWS:
                    allowed = errs.get(view)
                    got = V.view_error(s, key, view)
                    if allowed is None:
                        continue
                    T.check(got in allowed, "%s: %s view: got %s, want one of %s"
                            % (label, view, got, allowed))
                    try:
                        s.call("load_value", key, 0, 100, view)
                        T.check(False, "%s: %s load_value succeeds" % (label, view))
                    except RpcError as e:
                        T.check(e.name in allowed, "%s: %s load_value: %s" % (label, view, e.name))
                        T.check(bool(e.message), "%s: %s has a message" % (label, view))
                # the pickle view is always the stored bytes
                T.equal(s.call("load_value", key, 0, len(data) + 10), data, label + ": pickle view")
                # and a good value is still fine
                st, text = V.read_view(s, keys["good"], "json")
                T.equal(V.json.loads(text), {"a": [1, 2.5, "x"]}, label + ": good value after it")
            T.equal(V.read_view(s, keys["text"], "txt")[1], b"hello", "txt after all")
            # an array too large for the json view is served by the npy view
            st = s.call("stat_value", keys["json_too_big"], "npy")
            T.equal(st["size"], 128 + 8 * 1000001, "the npy view of an array json refuses")
            T.equal(s.call("load_value", keys["json_too_big"], 128, 16, "npy"), b"\x00" * 16,
                    "its data")
            # the messages name what is wrong
            try:
                s.call("stat_value", keys[name("e")], "json")
            except RpcError as e:
                T.check(name("f") in e.message, "missing part named: %s" % e.message)
            try:
                s.call("stat_value", keys[name("a")], "json")
            except RpcError as e:
                T.check("itself" in e.message, "cycle said: %s" % e.message)
            # the end of the chain within the limit renders
            chain = ["%064x" % (0xc0de0000 + i) for i in range(70)]
            st, text = V.read_view(s, chain[10], "json")
            want = [69]
            for _ in range(59):
                want = [want]
            T.equal(V.json.loads(text), want, "a chain of 59 references")
            T.equal(s.wait(), 0, "the server ends cleanly")
            T.check("Sanitizer" not in s.stderr_text(), "no sanitizer report")


def main():
    T.run(test_hostile)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
