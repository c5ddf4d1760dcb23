"""test_mount_views.py: the value views in the mount for every value of the
four fixture caches (temporary copies), checked against the server's own rendering
and against EXPECTED.json:

- values/<key>.json is found by lookup (not listed: `ls values` lists keys only), its
  size is exact before reading, it parses with Python's json and with `jq .`, its bytes
  are those flechefs-server renders for the json view, and it shows fleche's `json`
  field with the tagged forms of rpc/PROTOCOL.md section 6.1;
- values/<key>.npy exists for numpy arrays only and numpy.load reads it to the array
  pickle.loads makes of values/<key> (`ls -l` shows its exact size);
- values/<key>.txt / .bin exist for str / bytes values only and hold the text / the
  bytes (the 2 MiB bytes value too, also read in a range);
- a view that does not apply is ENOENT; values/<prefix>.<ext> is a symlink to
  <key>.<ext>; unknown extensions are ENOENT;
- calls/<key>/ lists result.<ext> and arguments/ lists <param>.<ext> for exactly the
  views that apply, as symlinks to ../../values/<key>.<ext> (../../../ for
  arguments), and `jq . calls/<prefix>/result.json` works;
- inode numbers of views are stable across remounts; a value over the json view's
  nesting limit, or holding itself, has no .json (ENOENT) and the log says why.
"""

import errno
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mountlib as ml  # noqa: E402
import views_common as V  # noqa: E402
from client import RpcError, Server  # noqa: E402

T = common.Checks("mount_views")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]
VIEWS = ("json", "npy", "txt", "bin")


def server_env(name):
    return {"FLECHE_SECRET_KEY": KEY} if name == "signed" else None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def applies(s, key):
    """The views the server renders for a value: {view: size}."""
    out = {}
    for view in VIEWS:
        try:
            out[view] = s.call("stat_value", key, view)["size"]
        except RpcError:
            pass
    return out


def check_json(name, mp, s, v):
    k = v["digest"]
    what = "%s: values/%s.json (%s)" % (name, k[:12], v["raw_python_type"])
    path = os.path.join(mp, "values", k + ".json")
    size = os.stat(path).st_size
    text = read(path)
    T.equal(size, len(text), what + " size exact before reading")
    st, want = V.read_view(s, k, "json")
    T.check(text == want, what + " bytes are the server's json view")
    try:
        doc = json.loads(text)
    except ValueError as e:
        T.check(False, what + " does not parse: %s" % e)
        return
    try:
        T.check(V.jq_equal(V.jq_parse(text), doc), what + " jq . reads it")
    except ValueError as e:
        T.check(False, what + " " + str(e))
    r = common.run(["jq", "."], stdin=open(path, "rb"), timeout=60)
    T.equal(r.returncode, 0, what + " jq . on the file")
    val = v["value"]
    if "json" in val:
        diff = V.same(doc, val["json"])
        T.check(diff is None, "%s equals EXPECTED json: %s" % (what, diff))
    elif "numpy" in val:
        nd = val["numpy"]
        T.equal(doc, {"$ndarray": {"dtype": nd["dtype"], "shape": nd["shape"],
                                   "data": nd["data"]}}, what + " $ndarray")
    elif "sha256" in val:
        raw = V.base64.b64decode(doc["$bytes"]) if isinstance(doc, dict) and "$bytes" in doc else b""
        T.equal((len(raw), V.sha256(raw)), (val["len"], val["sha256"]), what + " $bytes")
    else:
        T.check(False, what + ": EXPECTED.json has no json, numpy or sha256 field")


def enoent(path):
    return ml.expect_errno(lambda: os.stat(path), 0) == errno.ENOENT


def check_other_views(name, mp, v):
    k = v["digest"]
    t = v["raw_python_type"]
    base = os.path.join(mp, "values", k)
    pick = read(base)
    # npy
    what = "%s: values/%s.npy (%s)" % (name, k[:12], t)
    if t == "numpy.ndarray":
        data = read(base + ".npy")
        T.equal(os.stat(base + ".npy").st_size, len(data), what + " size exact")
        got = V.np.load(io.BytesIO(data))
        want = pickle.loads(pick)
        T.equal((got.dtype.str, got.shape), (want.dtype.str, want.shape), what + " dtype, shape")
        T.check(V.np.array_equal(got, want), what + " data equals pickle.loads of values/<key>")
        got2 = V.np.load(base + ".npy")
        T.check(V.np.array_equal(got2, want), what + " numpy.load of the path")
        r = common.run(["ls", "-l", base + ".npy"])
        T.equal(int(r.stdout.split()[4]) if r.returncode == 0 else -1, len(data),
                what + " ls -l shows the exact size")
    else:
        T.check(enoent(base + ".npy"), what + " is ENOENT")
    # txt
    what = "%s: values/%s.txt (%s)" % (name, k[:12], t)
    if t == "builtins.str":
        data = read(base + ".txt")
        T.equal(data, v["value"]["json"].encode("utf-8"), what + " is the str")
        T.equal(data, pickle.loads(pick).encode("utf-8"), what + " equals the pickled str")
        T.equal(os.stat(base + ".txt").st_size, len(data), what + " size exact")
    else:
        T.check(enoent(base + ".txt"), what + " is ENOENT")
    # bin
    what = "%s: values/%s.bin (%s)" % (name, k[:12], t)
    if t in ("builtins.bytes", "builtins.bytearray"):
        data = read(base + ".bin")
        T.equal(os.stat(base + ".bin").st_size, len(data), what + " size exact")
        T.check(data == bytes(pickle.loads(pick)), what + " equals the pickled bytes")
        T.equal((len(data), hashlib.sha256(data).hexdigest()),
                (v["value"]["len"], v["value"]["sha256"]), what + " length and sha256")
        with open(base + ".bin", "rb") as f:
            f.seek(len(data) // 2 + 1)
            T.check(f.read(4096) == data[len(data) // 2 + 1:len(data) // 2 + 4097],
                    what + " a range in the middle")
    else:
        T.check(enoent(base + ".bin"), what + " is ENOENT")
    T.check(enoent(base + ".xml") and enoent(base + ".pickle") and enoent(base + "."),
            "%s: values/%s with an unknown extension is ENOENT" % (name, k[:12]))


def check_call(name, mp, c, views_of):
    key = c["key"]
    d = os.path.join(mp, "calls", key)
    what = "%s: calls/%s" % (name, key[:8])
    listed = set(os.listdir(d))
    r = c["result_digest"]
    want = {"result." + x for x in views_of[r]} if r else set()
    T.equal({x for x in listed if x.startswith("result.")}, want, what + " lists result.<ext>")
    T.check(not r or "result.json" in want, what + " has a result.json")
    for x in VIEWS:
        p = os.path.join(d, "result." + x)
        if r and x in views_of[r]:
            T.equal(os.readlink(p), "../../values/%s.%s" % (r, x), what + " result.%s link" % x)
            T.check(read(p) == read(os.path.join(mp, "values", "%s.%s" % (r, x))),
                    what + " result.%s reads the view" % x)
        else:
            T.check(ml.expect_errno(lambda: os.lstat(p), 0) == errno.ENOENT,
                    what + " result.%s is ENOENT" % x)
    args = os.path.join(d, "arguments")
    listed = set(os.listdir(args))
    want = set(c["argument_digests"])
    for a, v in c["argument_digests"].items():
        want |= {"%s.%s" % (a, x) for x in views_of[v]}
    T.equal(listed, want, what + " arguments/ lists <param> and <param>.<ext>")
    for a, v in c["argument_digests"].items():
        for x in VIEWS:
            p = os.path.join(args, "%s.%s" % (a, x))
            if x in views_of[v]:
                T.equal(os.readlink(p), "../../../values/%s.%s" % (v, x),
                        what + " arguments/%s.%s link" % (a, x))
                T.equal(os.stat(p).st_size, views_of[v][x], what + " arguments/%s.%s size" % (a, x))
            else:
                T.check(ml.expect_errno(lambda: os.lstat(p), 0) == errno.ENOENT,
                        what + " arguments/%s.%s is ENOENT" % (a, x))


def unique_prefix(keys, k):
    n = 4
    while sum(1 for x in keys if x.startswith(k[:n])) > 1:
        n += 1
    return k[:n]


def check_prefixes(name, mp, exp, views_of):
    values = sorted(v["digest"] for v in exp["values"])
    calls = sorted(c["key"] for c in exp["calls"])
    for k in values[:4]:
        p = unique_prefix(values, k)
        for x in VIEWS:
            link = os.path.join(mp, "values", "%s.%s" % (p, x))
            if x in views_of[k]:
                T.equal(os.readlink(link), "%s.%s" % (k, x), "%s: values/%s.%s" % (name, p, x))
                T.equal(os.stat(link).st_size, views_of[k][x],
                        "%s: values/%s.%s through the link" % (name, p, x))
            else:
                T.check(enoent(link), "%s: values/%s.%s is ENOENT" % (name, p, x))
    T.check(enoent(os.path.join(mp, "values", values[0][:3] + ".json")),
            "%s: values/<3 hex>.json is ENOENT" % name)
    # an ambiguous prefix with an extension
    for i in range(len(values) - 1):
        a, b = values[i], values[i + 1]
        if a[:4] == b[:4]:
            T.check(enoent(os.path.join(mp, "values", a[:4] + ".json")),
                    "%s: ambiguous values/%s.json is ENOENT" % (name, a[:4]))
            break
    # jq . calls/<prefix>/result.json
    with_result = [c for c in exp["calls"] if c["result_digest"]]
    c = with_result[0]
    p = unique_prefix(calls, c["key"])
    r = common.run(["jq", ".", os.path.join(mp, "calls", p, "result.json")], timeout=60)
    T.equal((r.returncode, r.stderr), (0, b""), "%s: jq . calls/%s/result.json" % (name, p))
    if r.returncode == 0:
        T.check(json.loads(r.stdout) == json.loads(read(os.path.join(
            mp, "values", c["result_digest"] + ".json"))), "%s: jq output is the result" % name)


def check_cache(name):
    exp = EXP["caches"][name]
    env = server_env(name)
    with common.temp_copy(name) as root, ml.mounted(root, env=env) as mp, \
            Server(common.binary("flechefs-server"), ["--serve", "--root", root],
                   extra_env=env) as s:
        s.hello()
        values = sorted(v["digest"] for v in exp["values"])
        T.equal(sorted(os.listdir(os.path.join(mp, "values"))), values,
                "%s: ls values lists only the keys" % name)
        views_of = {k: applies(s, k) for k in values}
        for v in exp["values"]:
            T.check("json" in views_of[v["digest"]], "%s: %s has a json view" % (name, v["digest"][:12]))
            check_json(name, mp, s, v)
            check_other_views(name, mp, v)
        for c in exp["calls"]:
            check_call(name, mp, c, views_of)
        check_prefixes(name, mp, exp, views_of)
        T.equal(sorted(os.listdir(os.path.join(mp, "values"))), values,
                "%s: ls values still lists only the keys after the lookups" % name)


def check_inodes():
    """Inode numbers of views are the same after a remount."""
    exp = EXP["caches"]["files"]
    with common.temp_copy("files") as root:
        v = exp["values"][0]["digest"]
        c = [x for x in exp["calls"] if x["result_digest"]][0]["key"]
        paths = ["values/%s.json" % v, "calls/%s/result.json" % c]
        seen = []
        for _ in range(2):
            with ml.mounted(root) as mp:
                seen.append([os.lstat(os.path.join(mp, p)).st_ino for p in paths])
        T.equal(seen[0], seen[1], "inode numbers of views stable across remounts")
        T.check(len(set(seen[0])) == len(seen[0]), "views have their own inode numbers")


def check_limits():
    """A value nested deeper than the json view's limit and one holding itself: the
    value reads, its .json is ENOENT and the log gives the server's reason."""
    # 600 lists inside one another, written by hand (pickle.dumps would recurse):
    # EMPTY_LIST x 600, then APPEND x 599 folds each into the one below it.
    deep = b"\x80\x02" + b"]" * 600 + b"a" * 599 + b"."
    loop = []
    loop.append(loop)
    with common.temp_copy("files") as root, common.temp_dir() as tmp:
        keys = {}
        for what, data in (("deep", deep), ("loop", pickle.dumps(loop, protocol=4))):
            k = hashlib.sha256(what.encode() + data).hexdigest()
            with open(os.path.join(root, "values", k), "wb") as f:
                f.write(data)
            keys[what] = (k, data)
        logp = os.path.join(tmp, "log")
        with open(logp, "wb") as log, ml.foreground(root, ["-d"], log=log) as (_p, mp):
            for what, (k, data) in keys.items():
                base = os.path.join(mp, "values", k)
                T.check(read(base) == data, "%s value: values/<key> reads" % what)
                T.check(enoent(base + ".json"), "%s value: .json is ENOENT" % what)
                T.check(enoent(base + ".npy"), "%s value: .npy is ENOENT" % what)
        with open(logp, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for what, (k, _d) in keys.items():
            lines = [x for x in text.splitlines() if k + ".json is absent" in x]
            T.check(lines != [], "%s value: the log says why .json is absent" % what)
            print("%s: %s" % (what, lines[0] if lines else "(no log line)"))


def main():
    ml.require_fuse()
    if V.np is None:
        common.skip("numpy is not installed for %s" % sys.executable)
    for name in common.CACHE_NAMES:
        T.run(check_cache, name)
    T.run(check_inodes)
    T.run(check_limits)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
