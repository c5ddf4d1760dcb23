"""test_views_fixtures.py: the value views (json, npy, txt, bin) of flechefs-server for
every value of the four real fleche caches of the fixture, compared with what fleche
itself read back (EXPECTED.json):

- json: parses with Python's json, `python3 -m json.tool` and `jq`, and shows the
  value: equal to fleche's `json` field (tuples are arrays), numpy values as
  {"$ndarray": ...} equal to the `numpy` field, bytes as {"$bytes": ...} with the
  recorded length and sha256; destructured values come out whole;
- npy: numpy values only; numpy.load gives the array pickle.loads gives, and the bytes
  are those numpy.save writes;
- txt / bin: str values / bytes values only (the 2 MiB bytes value read in ranges);
- every other view of a value is ENOTSUP, and sizes from stat_value are exact.
"""

import io
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import views_common as V  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("views_fixtures")
SERVER = common.binary("flechefs-server")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]


def start(root, cache_name):
    env = {"FLECHE_SECRET_KEY": KEY} if cache_name == "signed" else None
    return Server(SERVER, ["--serve", "--root", root], extra_env=env)


def check_json(s, cache_name, v):
    k = v["digest"]
    what = "%s: value %s (%s) json" % (cache_name, k[:12], v["raw_python_type"])
    st, text = V.read_view(s, k, "json", chunk=100)  # small ranges: exercises the cache
    T.equal(st["size"], len(text), what + " stat size")
    T.equal(st["view"], "json", what + " stat view")
    try:
        doc = V.json.loads(text)
    except ValueError as e:
        T.check(False, what + " does not parse: %s" % e)
        return
    T.check(V.json_tool_ok(text), what + " parses with python3 -m json.tool")
    try:
        T.check(V.jq_equal(V.jq_parse(text), doc), what + " as jq reads it")
    except ValueError as e:
        T.check(False, what + " " + str(e))
    val = v["value"]
    if "json" in val:
        r = V.same(doc, val["json"])
        T.check(r is None, "%s: %s" % (what, r))
    elif "numpy" in val:
        nd = val["numpy"]
        T.equal(doc, {"$ndarray": {"dtype": nd["dtype"], "shape": nd["shape"],
                                   "data": nd["data"]}}, what + " $ndarray")
    elif "sha256" in val:
        raw = V.base64.b64decode(doc["$bytes"]) if isinstance(doc, dict) and "$bytes" in doc else b""
        T.equal((len(raw), V.sha256(raw)), (val["len"], val["sha256"]), what + " $bytes")
    else:
        T.check(False, what + ": EXPECTED.json has no json, numpy or sha256 field")


def check_npy(s, root, cache_name, v, key_hex):
    k = v["digest"]
    what = "%s: value %s npy" % (cache_name, k[:12])
    if v["raw_python_type"] != "numpy.ndarray":
        T.equal(V.view_error(s, k, "npy"), "ENOTSUP", what + " of a %s" % v["raw_python_type"])
        return
    if V.np is None:
        return
    st, data = V.read_view(s, k, "npy", chunk=50)
    T.equal(st["size"], len(data), what + " stat size")
    got = V.np.load(io.BytesIO(data))
    stored = common.unwrap_file(open(os.path.join(root, "values", k), "rb").read(), key_hex)
    want = pickle.loads(stored)
    T.equal((got.dtype.str, got.shape, got.flags.f_contiguous), (want.dtype.str, want.shape,
            want.flags.f_contiguous), what + " dtype, shape, order")
    T.check(V.np.array_equal(got, want), what + " data")
    buf = io.BytesIO()
    V.np.save(buf, want)
    T.equal(data, buf.getvalue(), what + " bytes as numpy.save writes them")


def check_raw(s, cache_name, v):
    k = v["digest"]
    val = v["value"]
    t = v["raw_python_type"]
    for view, applies in (("txt", t == "builtins.str"),
                          ("bin", t in ("builtins.bytes", "builtins.bytearray"))):
        what = "%s: value %s %s" % (cache_name, k[:12], view)
        if not applies:
            T.equal(V.view_error(s, k, view), "ENOTSUP", what + " of a %s" % t)
            continue
        st, data = V.read_view(s, k, view, chunk=300000)
        T.equal(st["size"], len(data), what + " stat size")
        if view == "txt":
            T.equal(data, val["json"].encode("utf-8"), what)
        else:
            T.equal((len(data), V.sha256(data)), (val["len"], val["sha256"]), what)
            # a range in the middle
            part = s.call("load_value", k, 1000001, 4096, "bin")
            T.equal(part, data[1000001:1004097], what + " range")


def check_cache(cache_name):
    cache = EXP["caches"][cache_name]
    key_hex = KEY if cache_name == "signed" else None
    with common.temp_copy(cache_name) as root, start(root, cache_name) as s:
        h = s.hello()
        T.check(all(x in h["views"] for x in ("pickle", "json", "npy", "txt", "bin")),
                "%s: hello lists the views: %r" % (cache_name, h["views"]))
        for v in cache["values"]:
            check_json(s, cache_name, v)
            check_npy(s, root, cache_name, v, key_hex)
            check_raw(s, cache_name, v)
        # the destructured values of the fixture come out whole
        destructured = [v for v in cache["values"]
                        if v["raw_python_type"].startswith("fleche.storage.destructuring")]
        if cache_name in ("files", "pickle_sql"):
            T.check(len(destructured) >= 3, "%s: the fixture has destructured values" % cache_name)
        T.equal(V.view_error(s, cache["values"][0]["digest"], "xml"), "ENOTSUP",
                "%s: an unknown view" % cache_name)
        T.equal(s.wait(), 0, "%s: the server ends cleanly" % cache_name)


def main():
    common.fixtures_dir()
    if V.np is None:
        common.skip("numpy is not installed for %s" % sys.executable)
    for name in common.CACHE_NAMES:
        T.run(check_cache, name)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
