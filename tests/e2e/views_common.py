"""views_common.py: helpers of the value-view tests (test_views_*.py): reading a
view through flechefs-server in ranges, decoding the json view's tags
(rpc/PROTOCOL.md section 6) and comparing a rendered json view with a Python
value strictly (an int is not a float, a bool is not an int), and a safe stand-in
unpickler for fleche's classes with the "mend" that puts destructured values back
together, as fleche does, to get the value a view must show.
"""

import base64
import collections
import datetime
import hashlib
import io
import json
import math
import os
import pickle
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import RpcError  # noqa: E402,F401

try:
    import numpy as np
except ImportError:  # the tests that need numpy skip
    np = None

CHUNK = 1 << 20


def read_view(s, key, view, chunk=CHUNK):
    """(stat result, bytes) of one view, read in ranges of chunk bytes."""
    st = s.call("stat_value", key, view)
    out = bytearray()
    while True:
        part = s.call("load_value", key, len(out), chunk, view)
        if not part:
            break
        out += part
    return st, bytes(out)


def view_error(s, key, view):
    """The error name stat_value answers for a view, or None when it succeeds."""
    try:
        s.call("stat_value", key, view)
    except RpcError as e:
        return e.name
    return None


def jq_parse(text):
    """The document as jq reads it (jq -c . then Python's json)."""
    p = subprocess.run(["jq", "-c", "."], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise ValueError("jq: " + p.stderr.decode("utf-8", "replace"))
    return json.loads(p.stdout)


def jq_equal(jq, doc):
    """jq 1.6 reads numbers as doubles (ints beyond 2**53 come back rounded, 3.0 as 3):
    numbers compare as doubles; everything else must be equal."""
    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if num(doc):
        return num(jq) and float(jq) == float(doc)
    if isinstance(doc, list):
        return isinstance(jq, list) and len(jq) == len(doc) and all(
            jq_equal(a, b) for a, b in zip(jq, doc))
    if isinstance(doc, dict):
        return isinstance(jq, dict) and list(jq) == list(doc) and all(
            jq_equal(jq[k], doc[k]) for k in doc)
    return jq == doc and type(jq) is type(doc)


def json_tool_ok(text):
    p = subprocess.run([sys.executable, "-m", "json.tool"], input=text,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    return p.returncode == 0


def b64(b):
    return base64.b64encode(bytes(b)).decode("ascii")


def _float_same(view, f):
    f = float(f)
    if math.isnan(f):
        return view == {"$float": "nan"}
    if math.isinf(f):
        return view == {"$float": "inf" if f > 0 else "-inf"}
    return type(view) is float and view == f and math.copysign(1, view) == math.copysign(1, f)


def same(view, py, path="value"):
    """None when the parsed json view `view` shows the Python value py, else a string
    saying where they differ. Tuples and lists are arrays; dict keys keep order."""
    def bad(why):
        return "%s: %s (view %s, python %r)" % (path, why, json.dumps(view)[:200],
                                               py if not isinstance(py, bytes) else py[:40])

    if py is None:
        return None if view is None else bad("not null")
    if np is not None and isinstance(py, np.generic) and not isinstance(py, np.ndarray):
        py = py.item()
    if isinstance(py, bool):
        return None if view is py else bad("not the bool")
    if isinstance(py, int):
        return None if type(view) is int and view == py else bad("not the int")
    if isinstance(py, float):
        return None if _float_same(view, py) else bad("not the float")
    if isinstance(py, complex):
        ok = (isinstance(view, dict) and list(view) == ["$complex"]
              and len(view["$complex"]) == 2 and _float_same(view["$complex"][0], py.real)
              and _float_same(view["$complex"][1], py.imag))
        return None if ok else bad("not the complex")
    if isinstance(py, str):
        return None if view == py else bad("not the str")
    if isinstance(py, (bytes, bytearray)):
        return None if view == {"$bytes": b64(py)} else bad("not the bytes")
    if isinstance(py, (list, tuple)):
        if not isinstance(view, list) or len(view) != len(py):
            return bad("not an array of the length")
        for i, (a, b) in enumerate(zip(view, py)):
            r = same(a, b, "%s[%d]" % (path, i))
            if r:
                return r
        return None
    if isinstance(py, (set, frozenset)):
        if not isinstance(view, dict) or list(view) != ["$set"] or len(view["$set"]) != len(py):
            return bad("not a $set of the length")
        left = list(py)
        for i, a in enumerate(view["$set"]):
            for j, b in enumerate(left):
                if same(a, b) is None:
                    del left[j]
                    break
            else:
                return bad("element %d of the set is not in the value" % i)
        return None
    if isinstance(py, collections.OrderedDict):
        if not isinstance(view, dict) or list(view) != ["$ordereddict"]:
            return bad("not an $ordereddict")
        return same(view["$ordereddict"], dict(py), path)
    if isinstance(py, collections.defaultdict):
        if not isinstance(view, dict) or list(view)[:1] != ["$defaultdict"]:
            return bad("not a $defaultdict")
        return (same(view["$defaultdict"], dict(py), path)
                or same(view.get("default_factory"), py.default_factory, path + ".default_factory"))
    if isinstance(py, datetime.datetime):
        return None if view == {"$datetime": py.isoformat()} else bad("not the $datetime")
    if isinstance(py, datetime.date):
        return None if view == {"$date": py.isoformat()} else bad("not the $date")
    if isinstance(py, type) and py.__module__ == "builtins":
        return None if view == {"$global": "builtins." + py.__qualname__} else bad("not the $global")
    if isinstance(py, dict):
        plain = all(isinstance(k, str) and not k.startswith("$") for k in py)
        if plain:
            if not isinstance(view, dict) or list(view) != list(py):
                return bad("not an object with the keys in order")
            for k in py:
                r = same(view[k], py[k], "%s[%r]" % (path, k))
                if r:
                    return r
            return None
        if not isinstance(view, dict) or list(view) != ["$dict"] or len(view["$dict"]) != len(py):
            return bad("not a $dict of the length")
        for i, ((vk, vv), (k, v)) in enumerate(zip(view["$dict"], py.items())):
            r = same(vk, k, "%s key %d" % (path, i)) or same(vv, v, "%s[%r]" % (path, k))
            if r:
                return r
        return None
    if np is not None and isinstance(py, np.ndarray):
        if not isinstance(view, dict) or list(view) != ["$ndarray"]:
            return bad("not an $ndarray")
        nd = view["$ndarray"]
        if nd.get("dtype") != py.dtype.str or nd.get("shape") != list(py.shape):
            return bad("dtype or shape differ")
        return same(nd.get("data"), py.tolist(), path + ".data")
    if isinstance(py, Wrapper) and py._object:
        if not isinstance(view, dict) or view.get("$dataclass") != py._object:
            return bad("not the $dataclass")
        return same(view.get("fields"), py._state, path + ".fields")
    if isinstance(view, dict) and "$object" in view:
        # any other object: its class, and its constructor arguments when it has them
        name = type(py).__module__ + "." + type(py).__qualname__
        if view["$object"] != name:
            return bad("not an $object of class %s" % name)
        if "args" in view:
            return same(view["args"], list(py.__reduce_ex__(2)[1]), path + ".args")
        return None
    return bad("no comparison for type %s" % type(py).__name__)


# -- fleche's classes, without fleche ------------------------------------------------

class Digest(str):
    """fleche.digest.Digest"""


class Wrapper:
    """fleche.storage.destructuring.* (and any object the tests pickle as a stand-in)"""
    _object = None

    def __setstate__(self, state):
        self.__dict__.update(state)


_wrappers = {}


class Unpickler(pickle.Unpickler):
    """Unpickles fleche values with stand-ins for fleche's classes."""

    def find_class(self, module, name):
        if module == "fleche.digest" and name == "Digest":
            return Digest
        if module.startswith("fleche."):
            if (module, name) not in _wrappers:
                _wrappers[(module, name)] = type(name, (Wrapper,), {"_kind": name})
            return _wrappers[(module, name)]
        return super().find_class(module, name)


def unpickle(data):
    return Unpickler(io.BytesIO(data)).load()


def mend(value, load, depth=0):
    """The value a destructured wrapper stands for; load(key) gives a stored value's
    unpickled object."""
    if depth > 64:
        raise ValueError("too deep")

    def slot(x):
        return mend(load(x), load, depth + 1) if isinstance(x, Digest) else mend(x, load, depth + 1)

    kind = getattr(value, "_kind", None)
    if kind == "DigestedIterable":
        items = value.items
        return type(items)(slot(x) for x in items)
    if kind == "DigestedDict":
        return {slot(k): slot(v) for k, v in value.items.items()}
    if kind in ("DigestedDataclass", "DigestedAttrs"):
        w = Wrapper()
        w._object = value.cls.__module__ + "." + value.cls.__qualname__
        w._state = {k: slot(v) for k, v in value.fields.items()}
        return w
    return value


def sha256(b):
    return hashlib.sha256(b).hexdigest()
