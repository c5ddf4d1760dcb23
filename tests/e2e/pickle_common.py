"""Shared helpers of the pickle reader's end-to-end tests (test_pickle_*.py).

pkdump (tests/pkdump.c) prints the tree that server/pickle.c builds as tagged JSON;
canon() below writes a Python value in the same form, so that a test compares the C
reader with Python's own view of the value. numpy_from_tree() rebuilds an array from
the two pickle forms numpy writes, the way the value views will.
"""
import json
import math
import os
import subprocess
import sys

sys.set_int_max_str_digits(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SOURCE, build_dir  # noqa: E402,F401 (SOURCE: for the tests)

PKDUMP = os.path.join(build_dir(), "tests", "pkdump")


def pkdump(data, *args):
    """Runs pkdump on data; returns (returncode, parsed JSON or None, stderr)."""
    p = subprocess.run([PKDUMP, *args, "-"], input=data, capture_output=True, timeout=60)
    if p.returncode < 0:
        raise AssertionError(f"pkdump died of signal {-p.returncode}: {p.stderr!r}")
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.startswith(b"{") else None
    return p.returncode, out, p.stderr.decode("utf-8", "replace")


def fmt_float(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "%.17g" % x


def canon(o, path=None):
    """A Python value in pkdump's tagged JSON form."""
    if path is None:
        path = []
    if o is None or isinstance(o, bool):
        return o
    if type(o) is int:
        return o
    if type(o) is float:
        return {"$float": fmt_float(o)}
    if type(o) is complex:
        return {"$complex": [fmt_float(o.real), fmt_float(o.imag)]}
    if type(o) is str:
        return o
    if type(o) is bytes:
        return {"$bytes": o.hex()}
    if type(o) is bytearray:
        return {"$bytearray": bytes(o).hex()}
    for i, x in enumerate(path):
        if x is o:
            return {"$cycle": len(path) - i}
    path.append(o)
    try:
        import collections
        if type(o) is list:
            return [canon(x, path) for x in o]
        if type(o) is tuple:
            return {"$tuple": [canon(x, path) for x in o]}
        if type(o) is set:
            return {"$set": [canon(x, path) for x in o]}
        if type(o) is frozenset:
            return {"$frozenset": [canon(x, path) for x in o]}
        if type(o) in (dict, collections.defaultdict, collections.OrderedDict):
            r = {"$dict": [[canon(k, path), canon(v, path)] for k, v in o.items()]}
            if type(o) is not dict:
                r["cls"] = "collections." + type(o).__name__
            return r
        raise TypeError(f"canon: no form for {type(o)}")
    finally:
        path.pop()


def strip_offsets(tree, data):
    """Checks every bytes node's offset against the pickle data and removes it."""
    if isinstance(tree, list):
        return [strip_offsets(x, data) for x in tree]
    if isinstance(tree, dict):
        for tag in ("$bytes", "$bytearray"):
            if tag in tree:
                off = tree.get("offset")
                raw = bytes.fromhex(tree[tag])
                if off is not None:
                    assert data[off:off + len(raw)] == raw, f"offset {off} does not hold the bytes"
                return {tag: tree[tag]}
        return {k: strip_offsets(v, data) for k, v in tree.items()}
    return tree


def tree_bytes(t):
    for tag in ("$bytes", "$bytearray"):
        if isinstance(t, dict) and tag in t:
            return bytes.fromhex(t[tag])
    raise AssertionError(f"not bytes: {str(t)[:200]}")


def is_object(t, module, name):
    return isinstance(t, dict) and t.get("$object") == module and t.get("name") == name


def numpy_dtype(t):
    import numpy
    assert is_object(t, "numpy", "dtype"), str(t)[:200]
    args = t["args"]["$tuple"]
    dt = numpy.dtype(args[0])
    state = t.get("state")
    if state is not None:
        byteorder = state["$tuple"][1]
        if byteorder in "<>" and dt.byteorder != "|":
            dt = dt.newbyteorder(byteorder)
    return dt


NUMPY_MODULES = ("numpy.core.numeric", "numpy._core.numeric", "numpy.core.multiarray",
                 "numpy._core.multiarray")


def numpy_from_tree(t):
    """Rebuilds an ndarray from pkdump's tree of either numpy pickle form."""
    import numpy
    if isinstance(t, dict) and t.get("$object") in NUMPY_MODULES and t["name"] == "_frombuffer":
        buf, dtype, shape, order = t["args"]["$tuple"]
        dt = numpy_dtype(dtype)
        shape = tuple(shape["$tuple"])
        return numpy.frombuffer(tree_bytes(buf), dt).reshape(shape, order=order)
    if isinstance(t, dict) and t.get("$object") in NUMPY_MODULES and t["name"] == "_reconstruct":
        state = t["state"]["$tuple"]
        _version, shape, dtype, fortran, raw = state
        dt = numpy_dtype(dtype)
        shape = tuple(shape["$tuple"])
        return numpy.frombuffer(tree_bytes(raw), dt).reshape(shape, order="F" if fortran else "C")
    raise AssertionError(f"not a numpy array: {str(t)[:300]}")
