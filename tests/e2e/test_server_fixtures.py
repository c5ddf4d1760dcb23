"""test_server_fixtures.py: flechefs-server against the four real fleche caches of
the fixture (files, pickle_sql, signed with its key, gzip), compared with what
fleche itself read back (EXPECTED.json): every call record, every value's bytes
(whole and in ranges), expand/shrink/contains, list paging and detail, query, names,
info and hello. Each cache is served from a temporary copy (SQLite may create -shm
files next to a database it opens).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import RpcError, Server  # noqa: E402

T = common.Checks("server_fixtures")
SERVER = common.binary("flechefs-server")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]
MIB = 1024 * 1024


def start(root, cache_name):
    env = {"FLECHE_SECRET_KEY": KEY} if cache_name == "signed" else None
    return Server(SERVER, ["--serve", "--root", root], extra_env=env)


def shortest_unique(key, keys):
    for n in range(4, 65):
        if sum(1 for k in keys if k.startswith(key[:n])) == 1:
            return key[:n]
    return key


def err_name(e):
    return e["name"] if isinstance(e, dict) else None


def check_hello(s, root, cache_name):
    h = s.hello()
    T.equal(h["protocol"], 1, "%s: hello protocol" % cache_name)
    T.equal(h["program"], "flechefs-server", "%s: hello program" % cache_name)
    T.check(isinstance(h["version"], str) and h["version"], "%s: hello version" % cache_name)
    T.equal(h["read_only"], False, "%s: hello read_only" % cache_name)
    T.equal(h["pid"], s.proc.pid, "%s: hello pid" % cache_name)
    T.equal(h["cwd"], os.getcwd(), "%s: hello cwd" % cache_name)
    T.equal(h["hostname"], os.uname().nodename, "%s: hello hostname" % cache_name)
    T.equal(h["max_frame"], 16 * MIB, "%s: hello max_frame" % cache_name)
    T.check(0 < h["max_read"] < h["max_frame"], "%s: hello max_read" % cache_name)
    T.equal((h["page_default"], h["page_max"]), (1000, 10000), "%s: pages" % cache_name)
    T.check("pickle" in h["views"], "%s: hello views has pickle" % cache_name)
    lay = h["layout"]
    T.equal(lay["root"], os.path.abspath(root), "%s: layout root" % cache_name)
    if cache_name == "pickle_sql":
        T.equal(lay["calls"]["type"], "sql", "%s: calls type" % cache_name)
        T.equal(lay["calls"]["path"], os.path.join(os.path.abspath(root), "calls.db"),
                "%s: calls path" % cache_name)
        T.check(lay["calls"].get("url", "").startswith("sqlite:///"), "%s: calls url" % cache_name)
    else:
        T.equal(lay["calls"]["type"], "files", "%s: calls type" % cache_name)
        T.equal(lay["calls"]["path"], os.path.join(os.path.abspath(root), "calls"),
                "%s: calls path" % cache_name)
    T.equal(lay["values"], {"type": "files", "path": os.path.join(os.path.abspath(root), "values"),
                            "present": True, "compress": False, "serializer": None},
            "%s: values layout" % cache_name)
    T.equal((lay["calls"]["present"], lay["fleche_toml"]), (True, False),
            "%s: call storage present, no fleche.toml" % cache_name)
    signed = cache_name == "signed"
    T.equal(lay["signed"], signed, "%s: layout signed" % cache_name)
    T.equal(lay["key_count"], 1 if signed else 0, "%s: layout key_count" % cache_name)
    T.check(KEY not in repr(h), "%s: hello does not send the key" % cache_name)
    return h


def record_mtime(root, cache_name, call):
    rt = call["metadata"].get("runtime", {})
    if "timestop" in rt:
        return rt["timestop"], True
    if cache_name == "pickle_sql":
        return os.stat(os.path.join(root, "calls.db")).st_mtime, False
    return os.stat(os.path.join(root, "calls", call["key"])).st_mtime, False


def check_calls(s, root, cache_name, calls):
    keys = [c["key"] for c in calls]
    reqs = []
    for c in calls:
        reqs += [("load", [c["key"]]), ("load", [c["key_shrunk_by_fleche"]]),
                 ("contains", [c["key"]]), ("shrink", [c["key"]]),
                 ("contains", [c["key_shrunk_by_fleche"]])]
    answers = s.pipeline(reqs)
    for i, c in enumerate(calls):
        what = "%s: call %s (%s)" % (cache_name, c["key"][:12], c["name"])
        (e1, rec), (e2, rec2), (e3, cont), (e4, shr), (e5, cont2) = answers[5 * i:5 * i + 5]
        if not T.check(e1 is None, "%s: load failed: %r" % (what, e1)):
            continue
        T.equal(rec["key"], c["key"], what + " key")
        T.equal(rec["name"], c["name"], what + " name")
        T.equal(rec["module"], c["module"], what + " module")
        T.equal(rec["version"], c["version"], what + " version")
        T.equal(type(rec["version"]), type(c["version"]), what + " version type")
        T.equal(rec["code_digest"], c["code_digest"], what + " code_digest")
        T.equal([tuple(a) for a in rec["arguments"]], list(c["argument_digests"].items()),
                what + " arguments in order")
        T.equal(rec["result"], c["result_digest"], what + " result")
        T.equal(rec["metadata"], c["metadata"], what + " metadata")
        want, exact = record_mtime(root, cache_name, c)
        if exact:
            T.equal(rec["mtime"], want, what + " mtime == runtime.timestop")
        else:
            T.check(abs(rec["mtime"] - want) < 1e-5, "%s mtime %r vs file %r"
                    % (what, rec["mtime"], want))
        T.check(isinstance(rec["mtime"], float), what + " mtime is a float")
        T.equal(e2, None, what + " load by fleche's short prefix")
        if e2 is None:
            T.equal(rec2, rec, what + " load by prefix gives the same record")
        T.equal((e3, cont), (None, c["contains"]), what + " contains")
        T.equal((e5, cont2), (None, True), what + " contains of the short prefix")
        T.equal((e4, shr), (None, c["key_shrunk_by_fleche"]), what + " shrink")
        T.equal(shr, shortest_unique(c["key"], keys), what + " shrink (computed)")


def check_values(s, root, cache_name, values, key_hex):
    vkeys = [v["digest"] for v in values]
    reqs = []
    stored = {}
    for v in values:
        k = v["digest"]
        stored[k] = common.unwrap_file(
            open(os.path.join(root, "values", k), "rb").read(), key_hex)
        reqs += [("stat_value", [k]), ("stat_value", [k, "pickle"]),
                 ("load_value", [k, 0, 1 << 30]), ("shrink", [k]),
                 ("load_value", [k[:12], 0, 4, None])]
    answers = s.pipeline(reqs)
    for i, v in enumerate(values):
        k = v["digest"]
        data = stored[k]
        what = "%s: value %s" % (cache_name, k[:12])
        (e1, st), (e2, st2), (e3, body), (e4, shr), (e5, head) = answers[5 * i:5 * i + 5]
        if not T.check(e1 is None, "%s: stat_value failed: %r" % (what, e1)):
            continue
        T.equal(st["key"], k, what + " stat key")
        T.equal(st["size"], len(data), what + " stat size")
        T.equal(st["view"], "pickle", what + " stat view")
        T.check(abs(st["mtime"] - os.stat(os.path.join(root, "values", k)).st_mtime) < 1e-5,
                what + " stat mtime")
        T.equal((e2, st2), (None, st), what + " stat_value with view pickle")
        T.equal(e3, None, what + " load_value")
        T.check(body == data, "%s: load_value bytes (%d) == stored pickle (%d)"
                % (what, len(body or b""), len(data)))
        T.check(data.endswith(b"."), what + " the stored stream ends with STOP")
        T.equal((e4, shr), (None, shortest_unique(k, vkeys)), what + " shrink")
        T.equal((e5, head), (None, data[:4]), what + " load_value by prefix")
        # ranges: 7 bytes for small values, 1 MiB for large ones
        step = MIB if len(data) > MIB else 7
        offs = list(range(0, len(data) + step, step))
        parts = s.pipeline([("load_value", [k, o, step]) for o in offs])
        T.check(all(e is None for e, _ in parts), what + " range reads succeed")
        T.check(b"".join(p for _, p in parts if p is not None) == data,
                "%s: %d-byte ranges reassemble the stream" % (what, step))
        T.equal(parts[-1][1], b"", what + " a range at the end is empty")
        err, past = s.try_call("load_value", k, len(data) + 1000, 10)
        T.equal((err, past), (None, b""), what + " a range past the end is empty")
        err, zero = s.try_call("load_value", k, 0, 0)
        T.equal((err, zero), (None, b""), what + " a zero-length range")


def check_expand(s, cache_name, examples):
    for ex in examples:
        p = ex["prefix"]
        what = "%s: expand %r" % (cache_name, p)
        err, res = s.try_call("expand", p)
        if "result" in ex:
            T.equal((err, res), (None, ex["result"]), what)
        elif ex["error"] == "KeyError":
            want = "EINVAL" if len(p) < 4 else "ENOENT"
            T.equal(err_name(err), want, what + " (fleche: KeyError)")
            T.equal(err and err["errno"], 22 if want == "EINVAL" else 2, what + " errno")
        elif ex["error"] == "AmbiguousDigestError":
            T.equal(err_name(err), "AMBIGUOUS", what)
            if err:
                T.equal(err["errno"], 2, what + " errno")
                cands = re.findall(r"[0-9a-f]{64}", ex["message"])
                T.equal(sorted(err.get("candidates", [])), sorted(cands), what + " candidates")
                need = int(re.search(r"need at least (\d+)", ex["message"]).group(1))
                T.equal(err.get("needed"), need, what + " needed")
                T.check(isinstance(err["message"], str) and p in err["message"],
                        what + " message names the prefix")
        else:
            T.check(False, what + ": unknown fleche error " + ex["error"])


def list_all(s, kind, limit, detail=False):
    keys, extra, after, pages = [], {}, None, 0
    while True:
        r = s.call("list", kind, after, limit, detail)
        pages += 1
        T.check(limit is None or len(r["keys"]) <= limit,
                "list %s: never more than limit %r" % (kind, limit))
        keys += r["keys"]
        for f in ("mtime", "size", "name"):
            if f in r:
                T.equal(len(r[f]), len(r["keys"]), "list detail %s parallel to keys" % f)
                extra.setdefault(f, []).extend(r[f])
        if r["complete"]:
            break
        T.check(r["keys"], "list %s: an incomplete page is not empty" % kind)
        after = r["keys"][-1]
        if pages > 10000:
            T.check(False, "list does not end")
            break
    return keys, extra


def check_list(s, root, cache_name, calls, values):
    ckeys = sorted(c["key"] for c in calls)
    vkeys = sorted(v["digest"] for v in values)
    for limit in (1, 3, None, 10000, 20000):
        got, _ = list_all(s, "calls", limit)
        T.equal(got, ckeys, "%s: list calls limit %r" % (cache_name, limit))
        got, _ = list_all(s, "values", limit)
        T.equal(got, vkeys, "%s: list values limit %r" % (cache_name, limit))
    r = s.call("list", "calls", None, 2)
    T.equal((r["keys"], r["complete"]), (ckeys[:2], False), "%s: first page" % cache_name)
    r = s.call("list", "calls", ckeys[-1])
    T.equal((r["keys"], r["complete"]), ([], True), "%s: after the last key" % cache_name)
    r = s.call("list", "calls", "0" * 64, 1)
    T.equal(r["keys"], ckeys[:1], "%s: after a key that does not exist" % cache_name)
    r = s.call("list", "calls", ckeys[0][:-1] + "f" if ckeys[0][-1] != "f" else ckeys[0])
    T.check(ckeys[0] not in r["keys"], "%s: list is strictly after" % cache_name)
    # detail
    got, extra = list_all(s, "calls", 4, True)
    T.equal(got, ckeys, "%s: list calls detail keys" % cache_name)
    by_key = {c["key"]: c for c in calls}
    loads = dict(zip(ckeys, [r for _, r in s.pipeline([("load", [k]) for k in ckeys])]))
    T.equal(extra.get("name"), [by_key[k]["name"] for k in ckeys], "%s: detail names" % cache_name)
    T.equal(extra.get("mtime"), [loads[k]["mtime"] for k in ckeys],
            "%s: detail mtime == load's mtime" % cache_name)
    T.check("size" not in extra, "%s: no size for calls" % cache_name)
    got, extra = list_all(s, "values", 5, True)
    key_hex = KEY if cache_name == "signed" else None
    sizes = [len(common.unwrap_file(open(os.path.join(root, "values", k), "rb").read(), key_hex))
             for k in vkeys]
    T.equal(extra.get("size"), sizes, "%s: detail sizes == stored stream sizes" % cache_name)
    mt = [os.stat(os.path.join(root, "values", k)).st_mtime for k in vkeys]
    T.check(extra.get("mtime") and all(abs(a - b) < 1e-5 for a, b in zip(extra["mtime"], mt)),
            "%s: detail value mtimes" % cache_name)
    T.check("name" not in extra, "%s: no name for values" % cache_name)
    # info counts
    info = s.call("info")
    T.equal(info.get("call_count"), len(calls), "%s: info call_count" % cache_name)
    T.equal(info.get("value_count"), len(os.listdir(os.path.join(root, "values"))),
            "%s: info value_count" % cache_name)
    T.equal(info.get("read_only"), False, "%s: info read_only" % cache_name)


def query_all(s, template, limit=None):
    keys, after = [], None
    while True:
        r = s.call("query", template, after, limit)
        keys += r["keys"]
        if r["complete"] or not r["keys"]:
            return keys
        after = r["keys"][-1]


def check_query(s, cache_name, calls):
    def want(pred):
        return sorted(c["key"] for c in calls if pred(c))

    what = cache_name + ": query "
    T.equal(query_all(s, {}), want(lambda c: True), what + "{} gives every call")
    for name in sorted({c["name"] for c in calls}):
        T.equal(query_all(s, {"name": name}), want(lambda c: c["name"] == name), what + name)
        T.equal(query_all(s, {"name": name}, 1), want(lambda c: c["name"] == name),
                what + name + " (pages of 1)")
    T.equal(query_all(s, {"module": "__main__"}), want(lambda c: c["module"] == "__main__"),
            what + "module")
    T.equal(query_all(s, {"module": "nope"}), [], what + "unknown module")
    for ver in (None, "1.0", 2, "2"):
        T.equal(query_all(s, {"version": ver}),
                want(lambda c: c["version"] == ver and type(c["version"]) is type(ver)),
                what + "version %r" % (ver,))
    for c in calls[:6]:
        for an, av in c["argument_digests"].items():
            T.equal(query_all(s, {"arguments": {an: av}}),
                    want(lambda x: x["argument_digests"].get(an) == av),
                    what + "argument %s=%s" % (an, av[:8]))
        T.equal(query_all(s, {"name": c["name"], "arguments": c["argument_digests"]}),
                want(lambda x: x["name"] == c["name"]
                     and all(x["argument_digests"].get(a) == v
                             for a, v in c["argument_digests"].items())),
                what + "name and all arguments of " + c["key"][:8])
        rt = c["metadata"].get("runtime")
        if rt:
            T.equal(query_all(s, {"metadata": {"runtime": {"timestop": rt["timestop"]}}}),
                    want(lambda x: x["metadata"].get("runtime", {}).get("timestop")
                         == rt["timestop"]), what + "metadata runtime.timestop exact")
    T.equal(query_all(s, {"metadata": {"tags": {}}}), want(lambda c: "tags" in c["metadata"]),
            what + "metadata block present")
    tagged = [c for c in calls if "tags" in c["metadata"]]
    for c in tagged:
        for tk, tv in c["metadata"]["tags"].items():
            T.equal(query_all(s, {"metadata": {"tags": {tk: tv}}}),
                    want(lambda x: x["metadata"].get("tags", {}).get(tk) == tv),
                    what + "tag %s=%r" % (tk, tv))
    T.equal(query_all(s, {"metadata": {"environment": {"hostname": "no-such-host"}}}), [],
            what + "metadata mismatch")
    err, _ = s.try_call("query", {"bogus": 1})
    T.equal(err_name(err), "EINVAL", what + "unknown field")
    err, _ = s.try_call("query", [])
    T.equal(err_name(err), "EINVAL", what + "template not a map")
    # names
    names = sorted({c["name"] for c in calls}, key=lambda n: n.encode())
    r = s.call("names")
    T.equal((r["names"], r["complete"]), (names, True), cache_name + ": names")
    got, after = [], None
    while True:
        r = s.call("names", after, 1)
        got += r["names"]
        if r["complete"]:
            break
        after = r["names"][-1]
    T.equal(got, names, cache_name + ": names in pages of 1")


def check_cache(cache_name):
    c = EXP["caches"][cache_name]
    with common.temp_copy(cache_name) as root:
        with start(root, cache_name) as s:
            check_hello(s, root, cache_name)
            T.run(check_calls, s, root, cache_name, c["calls"])
            T.run(check_values, s, root, cache_name, c["values"],
                  KEY if cache_name == "signed" else None)
            T.run(check_expand, s, cache_name, c["expand_examples"])
            T.run(check_list, s, root, cache_name, c["calls"], c["values"])
            T.run(check_query, s, cache_name, c["calls"])
            status = s.wait()
            T.equal(status, 0, cache_name + ": exit status after end of input")
            T.equal(s.stderr_text(), "", cache_name + ": nothing on stderr")


def main():
    for name in common.CACHE_NAMES:
        T.run(check_cache, name)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
