"""gen_fleche_caches.py OUTDIR: writes caches with the real fleche (run it with the
Python of scripts/pyenv.sh's environment: fleche 0.22.2, cloudpickle, dill, numpy,
attrs) and OUTDIR/EXPECTED.json, what fleche itself reads back from them.

The values are those users keep: classes, enums, namedtuples and functions defined in
this script's __main__ (which cloudpickle and dill pickle by value, pickle by
reference), nested containers fleche destructures, numpy arrays of several dtypes,
orders and sizes, numpy scalars, the standard library's value types, sets, complex
numbers, bytes and large strings. One cache per layout:

  cloudpickle   cloudpickle files for values and calls
  dill          dill files for values and calls
  pickle_sql    pickle files for values, SQLite calls
  gzip          gzip-compressed cloudpickle files
  signed        HMAC-signed cloudpickle files

EXPECTED.json holds, per cache, every call record as fleche loads it and every value
file with: the Python type and str() of the value fleche loads, its json view (the
mapping of rpc/PROTOCOL.md section 6.1, computed here from the stored objects, with
destructured parts followed as fleche follows them), its txt view (str() where the
view applies, else null), whether it is a numpy array and whether it is bytes.
"""

import base64
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import gzip
import hashlib
import hmac
import json
import math
import os
import pathlib
import pickle
import sys
import uuid
import zoneinfo

import attrs
import cloudpickle
import dill
import numpy as np

import fleche
import fleche.metadata
from fleche import digest as fdigest
from fleche.config import cache_from_config
from fleche.storage import destructuring as D

SECRET_HEX = "7465737473656372657400ff"


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass(frozen=True)
class Line:
    name: str
    points: list


@attrs.define
class Box:
    w: int
    h: int


@attrs.frozen
class Shelf:
    label: str
    boxes: list


class Color(enum.Enum):
    RED = 1
    GREEN = "g"


Pair = collections.namedtuple("Pair", "a b")


class Plain:
    """A class of no particular kind; fleche digests it through __digest__."""

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __digest__(self):
        return fdigest.digest(("Plain", self.a, self.b))


def square(x):
    return x * x


def values():
    """name -> value; every one is the result of a cached call make(name)."""
    rng = np.random.default_rng(7)
    v = {
        "point": Point(1.5, -2.0),
        "line_destructured": Line("l", [[1, 2], [3, [4, 5]]]),
        "box": Box(3, 4),
        "shelf_destructured": Shelf("top", [[Box(1, 2)], {"k": [1, [2]]}]),
        "points_list": [Point(0.0, 1.0), Point(2.0, 3.0)],
        "color": Color.GREEN,
        "color_red": Color.RED,
        "pair": Pair(1, "b"),
        "plain": Plain(1, [2.5, "c"]),
        "function": square,
        "class": Point,
        "nested": {"a": [1, [2, [3]]], "b": {"c": (4, 5)}, "d": "x"},
        "dict_int_keys": {1: "one", 2: [2.0]},
        "dict_dollar_key": {"$ref": 1, "b": 2},
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "complex": complex(1.5, -2.0),
        "bytes": bytes(range(256)),
        "bytearray": bytearray(b"\x00\x01abc"),
        "str_large": "flechefs " * 40000,
        "str_unicode": "h\u00e9llo \u2603 \U0001f600",
        "floats": [0.1, -0.0, 1e300, float("nan"), float("inf")],
        "bigint": 2**100,
        "none": None,
        "datetime": datetime.datetime(2024, 2, 29, 13, 45, 7),
        "datetime_us": datetime.datetime(1999, 12, 31, 23, 59, 59, 123456),
        "datetime_utc": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "datetime_offset": datetime.datetime(
            2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
        "datetime_negative_offset": datetime.datetime(
            2020, 6, 1, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-8), "PST")),
        "datetime_zoneinfo": datetime.datetime(2024, 7, 1, 12, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
        "time_zoneinfo": datetime.time(6, 0, tzinfo=zoneinfo.ZoneInfo("UTC")),
        "date": datetime.date(2023, 7, 14),
        "time": datetime.time(8, 30),
        "time_aware": datetime.time(8, 30, 15, 250, tzinfo=datetime.timezone.utc),
        "timedelta": datetime.timedelta(days=1, seconds=3661, microseconds=5),
        "timedelta_negative": datetime.timedelta(seconds=-1),
        "timedelta_days": datetime.timedelta(days=-3),
        "decimal": decimal.Decimal("1.10"),
        "decimal_exp": decimal.Decimal("-1.5E+10"),
        "fraction": fractions.Fraction(3, 4),
        "fraction_whole": fractions.Fraction(-6, 3),
        "uuid": uuid.UUID("12345678-9abc-4def-8123-456789abcdef"),
        "uuid_small": uuid.UUID(int=5),
        "path": pathlib.PosixPath("/data/run 1/out.csv"),
        "path_relative": pathlib.PurePosixPath("a/b"),
        "path_windows": pathlib.PureWindowsPath("C:/Users/ada/x.txt"),
        "ordereddict": collections.OrderedDict([("z", 1), ("a", 2)]),
        "defaultdict": collections.defaultdict(list, {"k": [1]}),
        "counter": collections.Counter("abracadabra"),
        "deque": collections.deque([1, "two", 3.0]),
        "deque_maxlen": collections.deque([1, 2], maxlen=5),
        "range": range(0, 10, 2),
        "range_step1": range(3, 7),
        "slice": slice(1, None, 2),
        "np_f8_c": np.arange(12, dtype=np.float64).reshape(3, 4),
        "np_f4_fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "np_i1": np.array([-128, 0, 127], dtype=np.int8),
        "np_u2": np.array([[1, 65535]], dtype=np.uint16),
        "np_bool": np.array([True, False, True]),
        "np_c16": np.array([1 + 2j, -3.5j]),
        "np_unicode": np.array(["ab", "\u00e9t\u00e9", ""]),
        "np_bytes": np.array([b"ab", b"c"]),
        "np_big_endian": np.array([1, -2, 3], dtype=">i4"),
        "np_0d": np.array(4.25),
        "np_empty": np.zeros((0, 3)),
        "np_large": rng.standard_normal(200000),
        "np_f8_scalar": np.float64(2.5),
        "np_i4_scalar": np.int32(-7),
        "np_bool_scalar": np.bool_(True),
        "np_c8_scalar": np.complex64(1 - 2j),
    }
    return v


VALUES = values()


def _repr_digest(v):
    return hashlib.sha256(("%s:%r" % (type(v).__qualname__, v)).encode()).hexdigest()


# fleche refuses to digest these types; users register hooks like these
for _t in (enum.Enum, uuid.UUID, pathlib.PurePath, slice, type):
    fdigest.add_hook((_t, _repr_digest))


@fleche.fleche
def make(name):
    return VALUES[name]


@fleche.fleche(version=2)
def norm(p: Point):
    return math.hypot(p.x, p.y)


@fleche.fleche
def scale(values: list, factor: float = 2.0):
    return [x * factor for x in values]


@fleche.fleche
def depth(nested):
    return 1 + max((depth.__wrapped__(x) for x in nested if isinstance(x, list)), default=0)


@fleche.fleche
def apply(fn, x):
    return fn(x)


LAYOUTS = {
    "cloudpickle": {"template": "cloudpickle", "root": "cloudpickle"},
    "dill": {"template": "dill", "root": "dill"},
    "pickle_sql": {"values": {"type": "pickle", "root": "pickle_sql/values"},
                   "calls": {"type": "sql", "url": "sqlite:///pickle_sql/calls.db"}},
    "gzip": {"values": {"type": "cloudpickle", "root": "gzip/values", "compress": True},
             "calls": {"type": "cloudpickle", "root": "gzip/calls", "compress": True}},
    "signed": {"values": {"type": "cloudpickle", "root": "signed/values",
                          "secret_key": [SECRET_HEX]},
               "calls": {"type": "cloudpickle", "root": "signed/calls",
                         "secret_key": [SECRET_HEX]}},
}
SERIALIZER = {"cloudpickle": cloudpickle, "dill": dill, "pickle_sql": pickle,
              "gzip": cloudpickle, "signed": cloudpickle}


# ---------------------------------------------------------------- the json view


def ftag(f):
    if math.isnan(f):
        return {"$float": "nan"}
    if math.isinf(f):
        return {"$float": "inf" if f > 0 else "-inf"}
    return f


def b64(b):
    return base64.b64encode(bytes(b)).decode("ascii")


def qualname(cls):
    return "%s.%s" % (cls.__module__, cls.__qualname__)


class Expect:
    """The json view of stored objects of one cache: by_value says whether classes
    defined in __main__ are pickled by value (cloudpickle, dill), load_raw(key) gives
    the stored object of a value file (a destructured wrapper stays a wrapper)."""

    def __init__(self, by_value, load_raw):
        self.by_value = by_value
        self.load_raw = load_raw

    def slot(self, x):
        if isinstance(x, fdigest.Digest):
            return self.json(self.load_raw(x))
        return self.json(x)

    def dict(self, d, slot=False):
        conv = self.slot if slot else self.json
        if all(isinstance(k, str) and not k.startswith("$") for k in d):
            return {k: conv(v) for k, v in d.items()}
        return {"$dict": [[conv(k), conv(v)] for k, v in d.items()]}

    def ndarray(self, a):
        def elem(x):
            if isinstance(x, list):
                return [elem(y) for y in x]
            return self.json(x)
        return {"$ndarray": {"dtype": a.dtype.str, "shape": list(a.shape),
                             "data": elem(a.tolist())}}

    def json(self, v):
        main = getattr(type(v), "__module__", None) == "__main__"
        if isinstance(v, fdigest.Digest):
            return str(v)
        if isinstance(v, (D.DigestedIterable,)):
            return [self.slot(x) for x in v.items]
        if isinstance(v, D.DigestedDict):
            return self.dict(v.items, slot=True)
        if isinstance(v, D.DigestedFields):
            return {"$dataclass": qualname(v.cls),
                    "fields": {k: self.slot(x) for k, x in v.fields.items()}}
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, enum.Enum):
            if self.by_value and main:
                return {"$enum": qualname(type(v)), "name": v.name, "value": self.json(v.value)}
            # pickle writes a member as getattr(cls, name): its value is not there
            return {"$enum": qualname(type(v)), "name": v.name}
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return ftag(v)
        if isinstance(v, complex):
            return {"$complex": [ftag(v.real), ftag(v.imag)]}
        if isinstance(v, (bytes, bytearray)):
            return {"$bytes": b64(v)}
        if isinstance(v, tuple) and hasattr(v, "_fields"):
            if self.by_value and main:
                return {"$namedtuple": qualname(type(v)),
                        "fields": {f: self.json(x) for f, x in zip(v._fields, v)}}
            return {"$object": qualname(type(v)), "args": [self.json(x) for x in v]}
        if isinstance(v, (list, tuple)):
            return [self.json(x) for x in v]
        if isinstance(v, (set, frozenset)):
            return {"$set": [self.json(x) for x in v]}
        if isinstance(v, collections.OrderedDict):
            return {"$ordereddict": self.dict(v)}
        if isinstance(v, collections.defaultdict):
            return {"$defaultdict": self.dict(v), "default_factory": self.json(v.default_factory)}
        if isinstance(v, collections.Counter):
            return {"$counter": self.dict(v)}
        if isinstance(v, dict):
            return self.dict(v)
        if isinstance(v, collections.deque):
            out = {"$deque": [self.json(x) for x in v]}
            if v.maxlen is not None:
                out["maxlen"] = v.maxlen
            return out
        if isinstance(v, (datetime.datetime, datetime.time)) and \
                isinstance(v.tzinfo, zoneinfo.ZoneInfo):
            # the offset needs the zone's data: the wall time and the zone's key
            tag = "$datetime" if isinstance(v, datetime.datetime) else "$time"
            return {tag: v.replace(tzinfo=None).isoformat(), "tz": v.tzinfo.key}
        if isinstance(v, datetime.datetime):
            return {"$datetime": v.isoformat()}
        if isinstance(v, datetime.date):
            return {"$date": v.isoformat()}
        if isinstance(v, datetime.time):
            return {"$time": v.isoformat()}
        if isinstance(v, datetime.timedelta):
            return {"$timedelta": [v.days, v.seconds, v.microseconds]}
        if isinstance(v, decimal.Decimal):
            return {"$decimal": str(v)}
        if isinstance(v, fractions.Fraction):
            return {"$fraction": str(v)}
        if isinstance(v, uuid.UUID):
            return {"$uuid": str(v)}
        if isinstance(v, pathlib.PurePath):
            return {"$path": str(v)}
        if isinstance(v, range):
            return {"$range": [v.start, v.stop, v.step]}
        if isinstance(v, slice):
            return {"$slice": [self.json(v.start), self.json(v.stop), self.json(v.step)]}
        if isinstance(v, np.ndarray):
            return self.ndarray(v)
        if isinstance(v, np.generic):
            return self.json(v.item())
        if isinstance(v, type) or callable(v):
            return {"$global": qualname(v)}
        if dataclasses.is_dataclass(v) or attrs.has(type(v)):
            if dataclasses.is_dataclass(v):
                fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
            else:
                fields = {a.name: getattr(v, a.name) for a in attrs.fields(type(v))}
            fields = {k: self.json(x) for k, x in fields.items()}
            if self.by_value and main:
                return {"$dataclass": qualname(type(v)), "fields": fields}
            return {"$object": qualname(type(v)), "state": fields}
        if hasattr(v, "__dict__"):
            # an instance of a class of no known kind: named by its class either way
            return {"$object": qualname(type(v)), "state": self.dict(vars(v))}
        raise TypeError("no json mapping for %r" % (v,))


def txt_view(v, by_value):
    """str(v) where the txt view applies (rpc/PROTOCOL.md section 6), else None."""
    if isinstance(v, str):
        return v
    if isinstance(v, (datetime.datetime, datetime.time)):
        tz = v.tzinfo
        return str(v) if tz is None or isinstance(tz, datetime.timezone) else None
    if isinstance(v, (datetime.date, datetime.timedelta, decimal.Decimal, fractions.Fraction,
                      uuid.UUID, pathlib.PurePath, range)):
        return str(v)
    if isinstance(v, slice):
        return str(v)
    if isinstance(v, enum.Enum) and by_value and type(v).__module__ == "__main__":
        return str(v)
    return None


# ---------------------------------------------------------------- the caches


def unwrap(data, key_hex):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if key_hex:
        payload, sig = data[:-64], data[-64:]
        want = hmac.new(bytes.fromhex(key_hex), payload, hashlib.sha256).hexdigest()
        assert sig.decode("ascii") == want, "bad signature"
        data = payload
    return data


def jsonable_meta(m):
    """Metadata as JSON text writes it (non-finite floats as $float tags)."""
    if isinstance(m, dict):
        return {k: jsonable_meta(x) for k, x in m.items()}
    if isinstance(m, (list, tuple)):
        return [jsonable_meta(x) for x in m]
    if isinstance(m, float):
        return ftag(m)
    return m


def npy_facts(v):
    """For a numpy array or scalar: its dtype's kind and size, shape and the sha256 of
    its elements in C order as little-endian bytes (numpy's own unpickling may turn a
    recorded byte order into the native one; the values stay equal); else None."""
    if not isinstance(v, (np.ndarray, np.generic)):
        return None
    a = np.asarray(v)
    le = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return {"kind": a.dtype.kind, "itemsize": a.dtype.itemsize, "shape": list(a.shape),
            "fortran": bool(a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous),
            "sha256": hashlib.sha256(le.tobytes()).hexdigest()}


def bin_facts(v):
    if not isinstance(v, (bytes, bytearray)):
        return None
    return {"len": len(v), "sha256": hashlib.sha256(v).hexdigest()}


def write_cache(out, name):
    os.chdir(out)
    cache = cache_from_config(json.loads(json.dumps(LAYOUTS[name])))
    refused = []
    with fleche.cache(cache):
        for k in VALUES:
            try:
                make(k)
            except Exception as e:  # noqa: BLE001 (a value this serializer refuses)
                refused.append("%s: %s" % (k, e))
        with fleche.meta(fleche.metadata.Runtime(), fleche.metadata.Environment()), \
                fleche.tags(run="generated", ratio=0.5, missing=float("nan")):
            norm(Point(3.0, 4.0))
            scale([1.0, 2.5], factor=3.0)
            depth([1, [2, [3]]])
            apply(square, 7)
    return cache, refused


def describe(cache_name, cache, out):
    key_hex = SECRET_HEX if cache_name == "signed" else None
    ser = SERIALIZER[cache_name]
    vdir = os.path.join(out, cache_name, "values")

    def load_raw(key):
        with open(os.path.join(vdir, key), "rb") as f:
            return ser.loads(unwrap(f.read(), key_hex))

    exp = Expect(cache_name != "pickle_sql", load_raw)
    calls = []
    for key in sorted(str(k) for k in cache.calls.list()):
        c = cache.calls.load(key)
        calls.append({
            "key": key, "name": c.name, "module": c.module, "version": c.version,
            "code_digest": None if c.code_digest is None else str(c.code_digest),
            "arguments": [[a, str(d)] for a, d in c.arguments.items()],
            "result": None if c.result is None else str(c.result),
            "metadata": jsonable_meta(c.metadata),
        })
    values_out = []
    for key in sorted(k for k in os.listdir(vdir) if not k.startswith(".")):
        try:
            loaded = cache.load_value(key)
            raw = load_raw(key)
        except Exception as e:  # noqa: BLE001 (fleche cannot read what it wrote)
            values_out.append({"key": key, "fleche_error": "%s: %s" % (type(e).__name__, e)})
            continue
        values_out.append({
            "key": key,
            "python_type": "%s.%s" % (type(loaded).__module__, type(loaded).__qualname__),
            "str": str(loaded)[:200],
            "destructured": isinstance(raw, D.Digested),
            "json": exp.json(raw) if not (isinstance(loaded, np.ndarray)
                                          and loaded.size > 1000000) else None,
            "txt": txt_view(loaded, exp.by_value),
            "npy": npy_facts(loaded),
            "bin": bin_facts(loaded),
        })
    return {"calls": calls, "values": values_out, "by_value": exp.by_value,
            "secret_key_hex": key_hex}


def main():
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    result = {"fleche_version": fleche.__version__, "numpy_version": np.__version__,
              "python": sys.version.split()[0], "caches": {}}
    for name in LAYOUTS:
        cache, refused = write_cache(out, name)
        result["caches"][name] = describe(name, cache, out)
        result["caches"][name]["refused"] = refused
    with open(os.path.join(out, "EXPECTED.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, allow_nan=False)


if __name__ == "__main__":
    main()
