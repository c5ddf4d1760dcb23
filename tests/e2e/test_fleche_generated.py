"""test_fleche_generated.py: caches written at test time by the real fleche from PyPI
(gen_fleche_caches.py, run in scripts/pyenv.sh's environment) read back through
flechefs-server's protocol and through the mount, compared with what fleche itself
loads (the generator's EXPECTED.json):

- every call record: `load` over the protocol and calls/<key>/call.json in the mount
  give fleche's name, module, version, code digest, arguments, result and metadata;
- every value file: the json view (protocol, and values/<key>.json in the mount) is
  the mapping of rpc/PROTOCOL.md section 6.1 of the value fleche loads, including
  classes, enums, namedtuples and functions defined in the generating script's
  __main__ (pickled by value by cloudpickle and dill) and the standard library's
  types; the txt view is str() of the value where it applies and ENOTSUP (absent in
  the mount) elsewhere; the npy view is numpy.load-able to the array fleche loads,
  for arrays and numpy scalars only; the bin view holds the bytes of bytes values.

Five caches: cloudpickle and dill files, pickle values with SQLite calls, gzip and
signed. The counts of calls and values checked per cache are printed.
"""

import hashlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mountlib as ml  # noqa: E402
import views_common as V  # noqa: E402
from client import RpcError, Server  # noqa: E402

T = common.Checks("fleche_generated")


def normal(doc):
    """The json document with $set members in a canonical order (a set's order is
    the pickle's, which fleche's loaded set need not keep)."""
    if isinstance(doc, dict):
        out = {k: normal(v) for k, v in doc.items()}
        if isinstance(out.get("dtype"), str) and out["dtype"][:1] == ">":
            # the view keeps the byte order the pickle records, numpy's unpickling of
            # protocols 2 to 4 the native one (rpc/PROTOCOL.md 6.3): equal values
            out["dtype"] = "<" + out["dtype"][1:]
        if list(out) == ["$set"] and isinstance(out["$set"], list):
            out["$set"] = sorted(out["$set"], key=lambda x: json.dumps(x, sort_keys=True))
        return out
    if isinstance(doc, list):
        return [normal(x) for x in doc]
    return doc


def same_json(got, want):
    return ml.same(normal(got), normal(want))


def server_env(c):
    return {"FLECHE_SECRET_KEY": c["secret_key_hex"]} if c["secret_key_hex"] else None


def check_call_rpc(s, name, call):
    what = "%s: call %s (%s)" % (name, call["key"][:12], call["name"])
    got = s.call("load", call["key"])
    for field in ("name", "module", "version", "code_digest", "result"):
        T.equal(got[field], call[field], what + " " + field)
    T.equal([list(a) for a in got["arguments"]], call["arguments"], what + " arguments")
    T.check(same_json(tag_floats(got["metadata"]), call["metadata"]), what + " metadata")


def tag_floats(x):
    if isinstance(x, dict):
        return {k: tag_floats(v) for k, v in x.items()}
    if isinstance(x, list):
        return [tag_floats(v) for v in x]
    if isinstance(x, float) and x != x:
        return {"$float": "nan"}
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return {"$float": "inf" if x > 0 else "-inf"}
    return x


def check_npy_bytes(what, data, facts):
    arr = V.np.load(io.BytesIO(data))
    le = V.np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<")))
    T.equal((arr.dtype.kind, arr.dtype.itemsize, list(arr.shape)),
            (facts["kind"], facts["itemsize"], facts["shape"]), what + " dtype and shape")
    T.equal(bool(arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous),
            facts["fortran"], what + " order")
    T.equal(hashlib.sha256(le.tobytes()).hexdigest(), facts["sha256"], what + " data")


def check_value_rpc(s, name, v):
    k = v["key"]
    what = "%s: value %s (%s)" % (name, k[:12], v.get("python_type", "unreadable"))
    if "fleche_error" in v:
        # fleche cannot load it either; the stored bytes are still served
        st = s.call("stat_value", k)
        T.check(st["size"] > 0, what + ": pickle view of a value fleche cannot load")
        return
    if v["json"] is not None:
        st, text = V.read_view(s, k, "json")
        T.equal(st["size"], len(text), what + " json size")
        try:
            doc = json.loads(text)
        except ValueError as e:
            T.check(False, what + " json does not parse: %s" % e)
        else:
            T.check(same_json(doc, v["json"]), "%s json: got %s, want %s" % (
                what, json.dumps(doc)[:400], json.dumps(v["json"])[:400]))
    if v["txt"] is not None:
        st, data = V.read_view(s, k, "txt")
        T.equal(data.decode("utf-8", "surrogatepass"), v["txt"], what + " txt")
    else:
        T.equal(V.view_error(s, k, "txt"), "ENOTSUP", what + " txt does not apply")
    if v["npy"]:
        st, data = V.read_view(s, k, "npy")
        check_npy_bytes(what + " npy", data, v["npy"])
    else:
        T.equal(V.view_error(s, k, "npy"), "ENOTSUP", what + " npy does not apply")
    if v["bin"]:
        st, data = V.read_view(s, k, "bin")
        T.equal((len(data), hashlib.sha256(data).hexdigest()),
                (v["bin"]["len"], v["bin"]["sha256"]), what + " bin")


def check_rpc(root, name, c):
    with Server(common.binary("flechefs-server"), ["--serve", "--root", os.path.join(root, name)],
                extra_env=server_env(c)) as s:
        s.hello()
        for call in c["calls"]:
            T.run(check_call_rpc, s, name, call)
        for v in c["values"]:
            T.run(check_value_rpc, s, name, v)
        T.equal(s.wait(), 0, "%s: the server ends cleanly" % name)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_mount(root, name, c):
    by_key = {v["key"]: v for v in c["values"]}
    with ml.mounted(os.path.join(root, name), env=server_env(c)) as mp:
        for call in c["calls"]:
            what = "%s: mount call %s" % (name, call["key"][:12])
            doc = ml.load_json_text(read(os.path.join(mp, "calls", call["key"], "call.json")))
            want = {"key": call["key"], "name": call["name"], "module": call["module"],
                    "version": call["version"], "code_digest": call["code_digest"],
                    "arguments": {a: d for a, d in call["arguments"]},
                    "result": call["result"]}
            for field, value in want.items():
                T.equal(doc.get(field), value, what + " call.json " + field)
            T.check(same_json(tag_floats(doc.get("metadata")), call["metadata"]),
                    what + " call.json metadata")
            # the arguments' and the result's json views in the call's directory
            links = [("arguments/" + a, d) for a, d in call["arguments"]]
            links += [("result", call["result"])] if call["result"] else []
            for rel, key in links:
                v = by_key.get(key)
                if v and v.get("json") is not None:
                    doc = json.loads(read(os.path.join(mp, "calls", call["key"], rel + ".json")))
                    T.check(same_json(doc, v["json"]), what + " " + rel + ".json")
        for v in c["values"]:
            if "fleche_error" not in v:
                T.run(check_value_mount, mp, name, v)


def check_value_mount(mp, name, v):
    k = v["key"]
    what = "%s: mount value %s (%s)" % (name, k[:12], v["python_type"])
    base = os.path.join(mp, "values", k)
    if v["json"] is not None:
        doc = json.loads(read(base + ".json"))
        T.check(same_json(doc, v["json"]), what + " .json")
    if v["txt"] is not None:
        T.equal(read(base + ".txt").decode("utf-8", "surrogatepass"), v["txt"],
                what + " .txt")
    else:
        T.check(not os.path.exists(base + ".txt"), what + " has no .txt")
    if v["npy"]:
        check_npy_bytes(what + " .npy", read(base + ".npy"), v["npy"])
    else:
        T.check(not os.path.exists(base + ".npy"), what + " has no .npy")
    if v["bin"]:
        T.equal(hashlib.sha256(read(base + ".bin")).hexdigest(), v["bin"]["sha256"],
                what + " .bin")


def main():
    if V.np is None:
        common.skip_or_fail("numpy is not installed for %s" % sys.executable)
    common.fleche_python()
    with common.temp_dir() as out:
        exp = common.generate_caches("gen_fleche_caches.py", out)
        print("caches written by fleche %s (numpy %s, Python %s)" % (
            exp["fleche_version"], exp["numpy_version"], exp["python"]))
        for name, c in exp["caches"].items():
            T.run(check_rpc, out, name, c)
        ml.require_fuse()
        for name, c in exp["caches"].items():
            T.run(check_mount, out, name, c)
        for name, c in exp["caches"].items():
            readable = [v for v in c["values"] if "fleche_error" not in v]
            print("%s: %d calls, %d values (%d by json, %d by txt, %d by npy, %d by bin; "
                  "%d fleche cannot load), classes of __main__ %s" % (
                      name, len(c["calls"]), len(c["values"]),
                      sum(v["json"] is not None for v in readable),
                      sum(v["txt"] is not None for v in readable),
                      sum(bool(v["npy"]) for v in readable),
                      sum(bool(v["bin"]) for v in readable),
                      len(c["values"]) - len(readable),
                      "by value" if c["by_value"] else "by reference"))
    sys.exit(T.report())


if __name__ == "__main__":
    main()
