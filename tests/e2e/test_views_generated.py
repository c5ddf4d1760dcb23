"""test_views_generated.py: the value views of flechefs-server on generated caches,
compared with what Python itself reads from the same pickles:

- caches written by examples/make-cache.py (--demo --destructured --nan-tags
  --big-array, protocol 5 files and protocol 4 gzip sql): every value's json view
  equals the unpickled value with destructured references mended (as fleche does),
  under the mapping of rpc/PROTOCOL.md section 6; npy, txt and bin where they apply;
- numpy arrays pickled by numpy with protocols 2, 4 and 5 in many dtypes (bool, ints
  of both byte orders, float16/32/64, complex, U, S), Fortran order, 0-d and empty
  arrays, a non-contiguous slice, and numpy scalars: the npy view is byte for byte
  what numpy.save writes and numpy.load gives the array back; the json view's
  $ndarray holds the array's tolist();
- Python values with tagged forms: sets, frozensets, complex, non-finite floats,
  big ints, bytes and bytearray, dicts with int keys or '$' keys, OrderedDict and
  defaultdict, an object, and a DigestedDataclass whose field is a reference.
"""

import collections
import datetime
import hashlib
import io
import os
import pickle
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import views_common as V  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("views_generated")
SERVER = common.binary("flechefs-server")
MAKE_CACHE = os.path.join(common.SOURCE, "examples", "make-cache.py")


def check_value(s, root, key, data, loaded, label):
    """Checks every view of one value whose stored pickle is data."""
    what = "%s %s" % (label, key[:12])
    py = V.mend(V.unpickle(data), loaded)
    np = V.np
    if isinstance(py, np.ndarray) or (isinstance(py, np.generic) and py.dtype.kind in "biufcSU"):
        st, npy = V.read_view(s, key, "npy", chunk=1 << 16)
        T.equal(st["size"], len(npy), what + " npy stat size")
        got = np.load(io.BytesIO(npy))
        want = np.asarray(py)
        if (got.dtype != want.dtype and got.dtype.byteorder in "<>"
                and got.dtype.newbyteorder("=") == want.dtype.newbyteorder("=")):
            # numpy's protocol 2-4 unpickling swaps a non-native array to the native
            # byte order; the views keep the byte order the pickle records
            want = want.astype(got.dtype)
            py = want
        T.equal((got.dtype.str, got.shape), (want.dtype.str, want.shape), what + " npy dtype/shape")
        T.equal(got.flags.f_contiguous and not got.flags.c_contiguous,
                want.flags.f_contiguous and not want.flags.c_contiguous, what + " npy order")
        T.check(np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), what + " npy data")
        buf = io.BytesIO()
        np.save(buf, want)
        T.check(npy == buf.getvalue(), what + " npy bytes are numpy.save's")
    else:
        T.equal(V.view_error(s, key, "npy"), "ENOTSUP", what + " npy of a %s" % type(py).__name__)
    st, text = V.read_view(s, key, "json", chunk=1 << 16)
    T.equal(st["size"], len(text), what + " json stat size")
    doc = V.json.loads(text)
    r = V.same(doc, py)
    T.check(r is None, "%s json: %s" % (what, r))
    if isinstance(py, (str, datetime.date)):
        # str values, and str() of the standard library's types (a date here)
        T.equal(V.read_view(s, key, "txt")[1], str(py).encode("utf-8", "surrogatepass"),
                what + " txt")
    else:
        T.equal(V.view_error(s, key, "txt"), "ENOTSUP", what + " txt of a %s" % type(py).__name__)
    if isinstance(py, (bytes, bytearray)):
        T.equal(V.read_view(s, key, "bin", chunk=1 << 18)[1], bytes(py), what + " bin")
    else:
        T.equal(V.view_error(s, key, "bin"), "ENOTSUP", what + " bin of a %s" % type(py).__name__)


def check_dir(root, label, key_hex=None):
    """Every value file under root/values through a server on root."""
    vdir = os.path.join(root, "values")
    keys = sorted(k for k in os.listdir(vdir) if len(k) == 64 and not k.startswith("."))
    stored = {k: common.unwrap_file(open(os.path.join(vdir, k), "rb").read(), key_hex)
              for k in keys}

    def loaded(k):
        return V.unpickle(stored[k])

    with Server(SERVER, ["--serve", "--root", root]) as s:
        s.hello()
        for k in keys:
            T.run(check_value, s, root, k, stored[k], loaded, label)
        T.equal(s.wait(), 0, label + ": the server ends cleanly")
    return keys


def test_make_cache():
    with common.temp_dir() as d:
        for args, label in ((["--protocol", "5"], "make-cache p5 files"),
                            (["--protocol", "4", "--layout", "sql", "--gzip"],
                             "make-cache p4 sql gzip")):
            root = os.path.join(d, label.replace(" ", "_"))
            p = common.run([sys.executable, MAKE_CACHE, "--demo", "--destructured", "--nan-tags",
                            "--big-array", "3000", "-q"] + args + [root], timeout=120)
            if not T.check(p.returncode == 0, label + ": make-cache.py: " +
                           p.stderr.decode("utf-8", "replace")):
                continue
            keys = check_dir(root, label)
            T.check(len(keys) > 20, label + ": values were written")


# -- hand-made values --------------------------------------------------------------

def fleche_modules():
    """Stand-ins registered as fleche's modules so that pickle writes fleche's GLOBALs."""
    for name in ("fleche", "fleche.storage", "fleche.storage.destructuring", "fleche.digest",
                 "flechefs_test_mod"):
        sys.modules.setdefault(name, types.ModuleType(name))
    d = sys.modules["fleche.storage.destructuring"]
    for cname in ("DigestedIterable", "DigestedDict", "DigestedDataclass"):
        if not hasattr(d, cname):
            setattr(d, cname, type(cname, (), {"__module__": d.__name__}))

    class Digest(str):
        def __reduce__(self):
            return (Digest, (str(self),))
    Digest.__module__ = "fleche.digest"
    Digest.__qualname__ = "Digest"
    sys.modules["fleche.digest"].Digest = Digest
    mod = sys.modules["flechefs_test_mod"]

    class Point:
        pass
    Point.__module__ = "flechefs_test_mod"
    Point.__qualname__ = "Point"
    mod.Point = Point
    return d, Digest, Point


def hand_values():
    """(pickle bytes) of values exercising the dtypes and the tagged forms."""
    np = V.np
    out = []
    arrays = [
        np.arange(12, dtype="<f8").reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4)),
        np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)),
        np.array(7.5),
        np.zeros((0, 3)),
        np.zeros((0,), dtype="<i8"),
        np.array([True, False, True]),
        np.array([-128, 0, 127], dtype="i1"),
        np.array([1, 65535], dtype=">u2"),
        np.array([-(2 ** 63), 2 ** 63 - 1], dtype="<i8"),
        np.array([2 ** 64 - 1, 0], dtype="<u8"),
        np.array([1.5, -0.0, np.nan, np.inf], dtype="<f2"),
        np.array([0.1, 1e-30, -np.inf], dtype=">f4"),
        np.array([0.1, 5e-324, 1e300, np.nan], dtype=">f8"),
        np.array([1 + 2j, -0.5j], dtype="<c16"),
        np.array([1 + 2j, 3.25 - 1j], dtype="<c8"),
        np.array(["a", "héllo", "\U0001f600x", ""], dtype="<U5"),
        np.array([b"ab", b"abc", b""], dtype="S3"),
        np.arange(20.0)[::3],
        np.arange(6, dtype="<i2").reshape(2, 3).T,
    ]
    for a in arrays:
        for proto in (2, 4, 5):
            out.append(pickle.dumps(a, protocol=proto))
    for sc in (np.float64(2.5), np.int32(-7), np.bool_(True), np.complex128(1 - 1j)):
        out.append(pickle.dumps(sc, protocol=4))
    dd = collections.defaultdict(list)
    dd["a"].append(1)
    values = [
        {1, 2, 3}, frozenset({"x"}), complex(1.5, -2), float("nan"), float("-inf"), -0.0,
        -(10 ** 40), b"\x00\xffbytes", bytearray(b"ba"), {1: "one", (2, 3): [4]},
        {"$float": "not a tag"}, collections.OrderedDict([("b", 1), ("a", 2)]), dd,
        datetime.date(2026, 1, 2), "tab\tnewline\n\u00e9\u20ac\U0001f600", "", (1, (2, (3,))),
        [None, True, False, 0, -1, 1.0, 1e16, 1.5e-7],
    ]
    for v in values:
        for proto in (2, 5):
            out.append(pickle.dumps(v, protocol=proto))
    out.append(pickle.dumps(float("inf"), protocol=0))
    out.append(pickle.dumps({"k": [1, 2.5, "s", b"b"]}, protocol=0))
    return out


def store(vdir, data):
    key = hashlib.sha256(data).hexdigest()
    with open(os.path.join(vdir, key), "wb") as f:
        f.write(data)
    return key


def test_hand_made():
    with common.temp_dir() as d:
        root = os.path.join(d, "cache")
        vdir = os.path.join(root, "values")
        os.makedirs(vdir)
        os.makedirs(os.path.join(root, "calls"))
        for data in hand_values():
            store(vdir, data)
        # a destructured dataclass with a referenced field, and a dict with a
        # referenced tuple key
        dmod, Digest, Point = fleche_modules()
        child = store(vdir, pickle.dumps([1, [2, 3]], protocol=5))
        tkey = store(vdir, pickle.dumps((1, 2), protocol=5))
        w = dmod.DigestedDataclass()
        w.cls = Point
        w.fields = {"x": 1.5, "y": Digest(child)}
        store(vdir, pickle.dumps(w, protocol=5))
        w2 = dmod.DigestedDict()
        w2.items = {Digest(tkey): "pair", "plain": Digest(child)}
        store(vdir, pickle.dumps(w2, protocol=5))
        keys = check_dir(root, "hand-made")
        T.check(len(keys) > 80, "hand-made: values were written (%d)" % len(keys))


def main():
    if V.np is None:
        common.skip("numpy is not installed for %s" % sys.executable)
    T.run(test_hand_made)
    T.run(test_make_cache)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
