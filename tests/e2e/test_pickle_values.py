#!/usr/bin/python3
"""The pickle reader against Python's own pickler: many values, protocols 0 to 5.

Every value is pickled by this interpreter (/usr/bin/python3) with each protocol, read
by pkdump (server/pickle.c), and the printed tree must equal canon(value), the same
tagged form computed from the value itself. Bytes held verbatim must point at their
bytes in the stream. numpy arrays are rebuilt from the tree and compared with the
originals; instances, globals and Digest objects are checked for their shape.
"""
import collections
import math
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pickle_common as pc  # noqa: E402


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1
        self.b = "two"


def values():
    v = []
    v += [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, 2**32, 2**63 - 1,
          -2**63, 2**63, -2**63 - 1, 2**64, -(2**64), 2**64 - 1, 10**100, -(10**100),
          2**1000 + 12345, -(2**4000) + 1, 127, 128, -128, -129, 2**15, -2**15 - 1]
    v += [0.0, -0.0, 1.5, 0.1, 1e300, -1e-300, 5e-324, 1.7976931348623157e308,
          math.nan, math.inf, -math.inf, 2.5e-5, 123456789.125]
    v += ["", "abc", "é", "h€llo wörld", "\U0001F600", "a\\b\nc\r\x00\x1a\t'\"",
          "😀" * 10, "x" * 1000, "\\u0041", "\ud800", "line\nbreak\\", "\x7f\x80\xff"]
    v += [b"", b"abc", bytes(range(256)), b"\x00" * 300, b"\\'\"\n"]
    v += [bytearray(b""), bytearray(b"xyz\xff"), bytearray(range(256))]
    v += [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1,), ((2,),)), tuple(range(1500))]
    v += [[], [1], list(range(2500)), [[[]]], [None, True, False, "s", 1.0]]
    v += [{}, {"a": 1}, {1: "a", (1, 2): [3], None: 0, 2.5: "f", b"k": 1,
                         frozenset({1}): 2, True: "t"}]
    v += [{str(i): i for i in range(1200)}]
    v += [set(), {1, 2, 3}, frozenset(), frozenset({"a"}), {(1, 2), "x", None}]
    v += [1 + 2j, complex(0, -0.0), complex(math.inf, math.nan), -1.5j]
    v += [None, True, False]
    v += [{"a": {"b": [1, (2, {3}), {"c": frozenset([4])}]}}]
    a = []
    a.append(a)
    d = {}
    d["self"] = d
    x = [1]
    t = ([],)
    t[0].append(t)
    ab = [[]]
    ab[0].append(ab)
    v += [a, d, [x, x, [x]], t, ab, {"k": a}]
    v += [collections.defaultdict(list, {"a": [1], "b": []}), collections.defaultdict(int),
          collections.OrderedDict([("b", 1), ("a", 2)]), collections.OrderedDict()]
    return v


def check_value(value, proto, failures):
    data = pickle.dumps(value, protocol=proto)
    rc, out, err = pc.pkdump(data)
    where = f"protocol {proto} value {str(value)[:80]!r}"
    if rc != 0:
        failures.append(f"{where}: pkdump failed: {err.strip()}")
        return
    if out["end"] != len(data):
        failures.append(f"{where}: end {out['end']} != {len(data)}")
    got = pc.strip_offsets(out["root"], data)
    want = pc.canon(value)
    if got != want:
        failures.append(f"{where}: got {str(got)[:300]} want {str(want)[:300]}")


def check_numpy(proto, failures):
    try:
        import numpy as np
    except ImportError:
        print("numpy missing: arrays not checked")
        return
    arrays = [np.arange(5, dtype=np.float64), np.arange(12, dtype=np.int32).reshape(3, 4),
              np.array([0, 255, 7], dtype=np.uint8), np.array([True, False]),
              np.array([1 + 2j, -3j], dtype=np.complex128),
              np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
              np.arange(4, dtype=">i4"), np.array(3.5), np.arange(20, dtype=np.int16)[::3],
              np.zeros((2, 0, 3), dtype=np.float32), np.array([np.nan, -0.0, np.inf]),
              np.array(["ab", "c"]), np.arange(100000, dtype=np.float64)]
    for arr in arrays:
        data = pickle.dumps(arr, protocol=proto)
        where = f"protocol {proto} array {arr.dtype}{arr.shape}"
        rc, out, err = pc.pkdump(data)
        if rc != 0:
            failures.append(f"{where}: pkdump failed: {err.strip()}")
            continue
        try:
            pc.strip_offsets(out["root"], data)
            got = pc.numpy_from_tree(out["root"])
        except Exception as e:  # noqa: BLE001 - report and go on
            failures.append(f"{where}: {e}")
            continue
        if got.dtype != arr.dtype or got.shape != arr.shape or \
                not np.array_equal(got, arr, equal_nan=arr.dtype.kind in "fc"):
            failures.append(f"{where}: rebuilt {got.dtype}{got.shape} {got!r} != {arr!r}")
        if proto == 5 and arr.flags.c_contiguous and arr.size > 1000:
            buf = out["root"]["args"]["$tuple"][0]
            if buf.get("offset") is None:
                failures.append(f"{where}: protocol 5 buffer not served from the stream")


def check_objects(proto, failures):
    cases = [
        (Point(1, "y"), lambda r: pc.is_object(r, "__main__", "Point") and
         r["args"] == {"$tuple": []} and r["state"] == pc.canon({"x": 1, "y": "y"})),
        (Slotted(), lambda r: pc.is_object(r, "__main__", "Slotted") and
         r["state"] == {"$tuple": [None, pc.canon({"a": 1, "b": "two"})]}),
        (len, lambda r: r == {"$global": "builtins", "name": "len"}),
        (collections.OrderedDict, lambda r: r == {"$global": "collections",
                                                  "name": "OrderedDict"}),
        (os.path.join, lambda r: r == {"$global": "posixpath", "name": "join"}),
        (range(3), lambda r: pc.is_object(r, "builtins", "range") and
         r["args"] == {"$tuple": [0, 3, 1]}),
    ]
    for value, ok in cases:
        if proto < 2 and isinstance(value, Slotted):
            continue  # protocols 0 and 1 cannot pickle __slots__ without __getstate__
        data = pickle.dumps(value, protocol=proto)
        rc, out, err = pc.pkdump(data)
        where = f"protocol {proto} object {value!r}"
        if rc != 0:
            failures.append(f"{where}: pkdump failed: {err.strip()}")
        elif not ok(out["root"]):
            failures.append(f"{where}: unexpected tree {str(out['root'])[:300]}")


def check_digest(failures):
    """fleche.digest.Digest as fleche writes it: a str subclass, NEWOBJ of a 1-tuple."""
    import types
    mod = types.ModuleType("fleche.digest")

    class Digest(str):
        __module__ = "fleche.digest"
    Digest.__qualname__ = "Digest"
    mod.Digest = Digest
    pkg = types.ModuleType("fleche")
    pkg.digest = mod
    sys.modules["fleche"] = pkg
    sys.modules["fleche.digest"] = mod
    key = "ab" * 32
    for proto in range(2, 6):
        rc, out, err = pc.pkdump(pickle.dumps({"r": Digest(key)}, protocol=proto))
        if rc != 0:
            failures.append(f"digest protocol {proto}: {err}")
            continue
        node = out["root"]["$dict"][0][1]
        if node.get("digest") != key:
            failures.append(f"digest protocol {proto}: not recognised: {node}")


def main():
    if not os.access(pc.PKDUMP, os.X_OK):
        print(f"pkdump not built at {pc.PKDUMP}")
        return 1
    failures = []
    count = 0
    for proto in range(0, 6):
        for value in values():
            check_value(value, proto, failures)
            count += 1
        check_numpy(proto, failures)
        check_objects(proto, failures)
    check_digest(failures)
    for f in failures:
        print("FAIL", f)
    print(f"{count} value pickles checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
