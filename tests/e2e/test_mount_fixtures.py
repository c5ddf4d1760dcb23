"""test_mount_fixtures.py: mounts each fixture cache (a temporary copy) with flechefs
and checks the tree against EXPECTED.json: the keys in calls/ and values/, every
call.json field (floats keep their decimal point), the one-line files, argument and
result symlinks, values' bytes (the stored pickle stream) and what pickle.loads makes
of the plain ones, digests/ and prefix lookups, by-name/, find, and rm -r eviction
(the record is gone from the cache on disk). A value whose signature is wrong stays
listed and reading it fails with EBADMSG.
"""

import errno
import os
import pickle
import subprocess
import sys

import common
import mountlib as ml

T = common.Checks("mount_fixtures")


def check_cache(name, exp, key_hex):
    env = {"FLECHE_SECRET_KEY": key_hex} if key_hex else None
    with common.temp_copy(name) as root, ml.mounted(root, env=env) as mp:
        calls = {c["key"]: c for c in exp["calls"]}
        values = {v["digest"]: v for v in exp["values"]}
        T.equal(sorted(os.listdir(os.path.join(mp, "calls"))), sorted(calls),
                "%s: keys in calls/" % name)
        T.equal(sorted(os.listdir(os.path.join(mp, "values"))), sorted(values),
                "%s: keys in values/" % name)
        T.equal(sorted(os.listdir(mp)), ["by-name", "calls", "digests", "query", "values"],
                "%s: top level" % name)
        T.equal(os.listdir(os.path.join(mp, "digests")), [], "%s: digests/ lists nothing" % name)
        # readdir(3) skips entries with inode number 0: "." and ".." must have real ones.
        for sub in ("", "calls", os.path.join("calls", sorted(calls)[0])):
            for opt in ("-a", "-la"):
                r = common.run(["ls", opt, os.path.join(mp, sub)], timeout=60)
                names = [ln.split()[-1] for ln in r.stdout.decode().splitlines() if ln and not ln.startswith("total")]
                T.check(r.returncode == 0 and "." in names and ".." in names,
                        "%s: ls %s %s shows . and .." % (name, opt, sub or "/"))
        for key, c in calls.items():
            check_call(name, mp, key, c)
        for key, v in values.items():
            check_value(name, mp, key, v, key_hex)
        check_prefixes(name, mp, exp)
        check_by_name(name, mp, exp)
        r = common.run("find %s | wc -l" % mp, shell=True, timeout=60)
        T.check(r.returncode == 0 and int(r.stdout) > len(calls) + len(values),
                "%s: find completes (%r)" % (name, r.stdout))
        check_evict(name, root, mp, exp)


VIEW_EXTS = ("json", "npy", "txt", "bin")


def is_view_of(f, stems):
    """True when f is "<stem>.<ext>", a value view's link, for a stem given."""
    stem, dot, ext = f.rpartition(".")
    return bool(dot) and ext in VIEW_EXTS and stem in stems


def check_call(name, mp, key, c):
    d = os.path.join(mp, "calls", key)
    what = "%s: calls/%s" % (name, key[:8])
    st = os.stat(d)
    T.equal(oct(st.st_mode & 0o7777), oct(0o755), what + " mode (eviction allowed)")
    T.equal(st.st_uid, os.getuid(), what + " owner")
    timestop = c["metadata"].get("runtime", {}).get("timestop")
    if timestop is not None:
        T.check(abs(st.st_mtime - timestop) < 1e-3, what + " mtime is runtime.timestop")
    with open(os.path.join(d, "call.json"), "rb") as f:
        text = f.read()
    T.equal(len(text), os.stat(os.path.join(d, "call.json")).st_size, what + " call.json size exact")
    T.check(text.endswith(b"}\n"), what + " call.json ends with a newline")
    T.check(text.startswith(b"{\n  \"key\": "), what + " call.json 2-space indentation")
    doc = ml.load_json_text(text.decode("utf-8"))
    T.equal(list(doc.keys()), ["key", "name", "module", "version", "code_digest", "arguments",
                               "result", "metadata"], what + " call.json keys")
    for k in ("key", "name", "module", "version", "code_digest"):
        T.check(ml.same(doc[k], c[k]), what + " call.json %s: %r vs %r" % (k, doc[k], c[k]))
    T.equal(list(doc["arguments"].items()), list(c["argument_digests"].items()),
            what + " call.json arguments in signature order")
    T.equal(doc["result"], c["result_digest"], what + " call.json result")
    T.check(ml.same(doc["metadata"], c["metadata"]), what + " call.json metadata (types kept)")
    # one-line files, only those present; the views result.<ext> and <param>.<ext>
    # are checked by test_mount_views.py
    files = {f for f in os.listdir(d) if not is_view_of(f, {"result"})}
    for k in ("name", "module", "version", "code_digest"):
        if c[k] is None:
            T.check(k not in files, what + " has no %s file" % k)
        else:
            with open(os.path.join(d, k), encoding="utf-8") as f:
                T.equal(f.read(), "%s\n" % c[k], what + " " + k)
    want = {"call.json", "arguments", "metadata"} | {k for k in ("name", "module", "version",
                                                                 "code_digest") if c[k] is not None}
    if c["result_digest"]:
        want.add("result")
        T.equal(os.readlink(os.path.join(d, "result")), "../../values/" + c["result_digest"],
                what + " result link")
    T.equal(files, want, what + " entries")
    args = os.path.join(d, "arguments")
    T.equal(sorted(f for f in os.listdir(args) if not is_view_of(f, c["argument_digests"])),
            sorted(c["argument_digests"]), what + " arguments/")
    for a, v in c["argument_digests"].items():
        T.equal(os.readlink(os.path.join(args, a)), "../../../values/" + v, what + " argument " + a)
    meta = os.path.join(d, "metadata")
    T.equal(sorted(os.listdir(meta)), sorted(b + ".json" for b in c["metadata"]), what + " metadata/")
    for b, block in c["metadata"].items():
        with open(os.path.join(meta, b + ".json"), encoding="utf-8") as f:
            T.check(ml.same(ml.load_json_text(f.read()), block), what + " metadata/%s.json" % b)
    # as their call directory: rm -r of a call unlinks in them before it evicts
    for p in (args, meta):
        T.equal(oct(os.stat(p).st_mode & 0o7777), oct(os.stat(d).st_mode & 0o7777),
                what + " mode of " + os.path.basename(p))


def check_value(name, mp, key, v, key_hex):
    path = os.path.join(mp, "values", key)
    what = "%s: values/%s" % (name, key[:8])
    st = os.stat(path)
    T.equal(oct(st.st_mode & 0o7777), oct(0o444), what + " mode")
    stored = common.stored_value(name, key, key_hex)
    T.equal(st.st_size, len(stored), what + " size before reading")
    with open(path, "rb") as f:
        data = f.read()
    T.check(data == stored, what + " bytes are the stored pickle stream")
    # a range: the last byte alone
    with open(path, "rb") as f:
        f.seek(len(stored) - 1)
        T.equal(f.read(), stored[-1:], what + " last byte")
    if v["raw_python_type"].startswith("builtins."):
        # EXPECTED.json abbreviates long bytes as <bytes len=N sha256=H>
        prog = ("import hashlib,pickle,sys\n"
                "v = pickle.load(open(sys.argv[1], 'rb'))\n"
                "if isinstance(v, bytes) and sys.argv[2].startswith('<bytes len='):\n"
                "    print('<bytes len=%d sha256=%s>' % (len(v), hashlib.sha256(v).hexdigest()))\n"
                "else:\n"
                "    print(repr(v))\n")
        r = subprocess.run(["/usr/bin/python3", "-c", prog, path, v["value"]["repr"]],
                           capture_output=True, timeout=30, text=True)
        got = r.stdout.rstrip("\n")
        T.check(got == v["value"]["repr"], what + " pickle.loads repr: got %.200r, want %.200r"
                % (got, v["value"]["repr"]))


def check_prefixes(name, mp, exp):
    calls = sorted(c["key"] for c in exp["calls"])
    values = sorted(v["digest"] for v in exp["values"])
    for e in exp["expand_examples"]:
        p = e["prefix"]
        link = os.path.join(mp, "digests", p)
        what = "%s: digests/%s" % (name, p)
        if "result" in e:
            k = e["result"]
            kind = "calls" if k in calls else "values"
            T.equal(os.readlink(link), "../%s/%s" % (kind, k), what)
        elif e["error"] == "AmbiguousDigestError":
            T.check(os.path.isdir(link) and not os.path.islink(link), what + " is a directory")
            cands = sorted(k for k in calls + values if k.startswith(p))
            T.equal(sorted(os.listdir(link)), cands, what + " candidates")
            for k in cands:
                kind = "calls" if k in calls else "values"
                T.equal(os.readlink(os.path.join(link, k)), "../../%s/%s" % (kind, k),
                        what + " candidate link")
        else:
            T.equal(ml.expect_errno(lambda: os.lstat(link), errno.ENOENT), errno.ENOENT,
                    what + " ENOENT")
    # unique prefixes in calls/ and values/
    for kind, keys in (("calls", calls), ("values", values)):
        for k in keys[:3]:
            n = 4
            while sum(1 for x in keys if x.startswith(k[:n])) > 1:
                n += 1
            T.equal(os.readlink(os.path.join(mp, kind, k[:n])), k, "%s: %s/%s" % (name, kind, k[:n]))
        T.equal(ml.expect_errno(lambda: os.lstat(os.path.join(mp, kind, keys[0][:3])), 0),
                errno.ENOENT, "%s: %s/ too short prefix" % (name, kind))
        T.equal(ml.expect_errno(lambda: os.lstat(os.path.join(mp, kind, "ffff0000")), 0),
                errno.ENOENT, "%s: %s/ unknown prefix" % (name, kind))
        T.equal(ml.expect_errno(lambda: os.lstat(os.path.join(mp, kind, "not-a-key")), 0),
                errno.ENOENT, "%s: %s/ not hex" % (name, kind))
    # an ambiguous prefix among call keys
    for i in range(len(calls) - 1):
        a, b = calls[i], calls[i + 1]
        n = 0
        while a[n] == b[n]:
            n += 1
        if n >= 4:
            T.equal(ml.expect_errno(lambda: os.lstat(os.path.join(mp, "calls", a[:4])), 0),
                    errno.ENOENT, "%s: calls/%s ambiguous is ENOENT" % (name, a[:4]))
            T.equal(os.readlink(os.path.join(mp, "calls", a[:n + 1])), a,
                    "%s: calls/%s resolves" % (name, a[:n + 1]))
            T.check(os.path.isfile(os.path.join(mp, "calls", a[:n + 1], "call.json")),
                    "%s: calls/<prefix>/call.json through the link" % name)


def check_by_name(name, mp, exp):
    by = {}
    for c in exp["calls"]:
        by.setdefault(c["name"], []).append(c["key"])
    T.equal(sorted(os.listdir(os.path.join(mp, "by-name"))), sorted(by), "%s: by-name/" % name)
    for f, keys in by.items():
        d = os.path.join(mp, "by-name", f)
        T.equal(sorted(os.listdir(d)), sorted(keys), "%s: by-name/%s" % (name, f))
        for k in keys:
            T.equal(os.readlink(os.path.join(d, k)), "../../calls/" + k, "%s: by-name link" % name)
    T.equal(ml.expect_errno(lambda: os.stat(os.path.join(mp, "by-name", "no_such_function")), 0),
            errno.ENOENT, "%s: unknown function" % name)


def check_evict(name, root, mp, exp):
    c = exp["calls"][0]
    key = c["key"]
    r = common.run(["rm", "-r", os.path.join(mp, "calls", key)], timeout=30)
    T.equal((r.returncode, r.stderr), (0, b""), "%s: rm -r calls/<key>" % name)
    T.check(key not in os.listdir(os.path.join(mp, "calls")), "%s: evicted call gone from calls/" % name)
    T.equal(ml.expect_errno(lambda: os.stat(os.path.join(mp, "calls", key)), 0), errno.ENOENT,
            "%s: evicted call is ENOENT" % name)
    others = [x for x in exp["calls"] if x["name"] == c["name"] and x["key"] != key]
    if others:
        T.check(key not in os.listdir(os.path.join(mp, "by-name", c["name"])),
                "%s: evicted call gone from by-name/" % name)
    if os.path.isdir(os.path.join(root, "calls")):
        T.check(not os.path.exists(os.path.join(root, "calls", key)),
                "%s: record file removed from the cache" % name)
    else:
        r = subprocess.run(["/usr/bin/python3", "-c",
                            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                            "print(c.execute('select count(*) from calls where key=?',(sys.argv[2],)).fetchone()[0])",
                            os.path.join(root, "calls.db"), key], capture_output=True, text=True, timeout=30)
        T.equal(r.stdout.strip(), "0", "%s: SQL row removed" % name)
    # a second call through rmdir alone
    k2 = exp["calls"][-1]["key"]
    if k2 != key:
        r = common.run(["rmdir", os.path.join(mp, "calls", k2)], timeout=30)
        T.equal(r.returncode, 0, "%s: rmdir calls/<key> evicts" % name)
        T.check(k2 not in os.listdir(os.path.join(mp, "calls")), "%s: rmdir'd call gone" % name)


def check_bad_signature(exp, key_hex):
    """A value altered by one byte stays listed; reading it is EBADMSG."""
    with common.temp_copy("signed") as root:
        key = exp["values"][0]["digest"]
        p = os.path.join(root, "values", key)
        with open(p, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))
        ckey = exp["calls"][0]["key"]
        p = os.path.join(root, "calls", ckey)
        with open(p, "r+b") as f:
            f.seek(20)
            b = f.read(1)
            f.seek(20)
            f.write(bytes([b[0] ^ 1]))
        with ml.mounted(root, env={"FLECHE_SECRET_KEY": key_hex}) as mp:
            T.check(key in os.listdir(os.path.join(mp, "values")), "bad signature: still listed")
            T.equal(ml.expect_errno(lambda: open(os.path.join(mp, "values", key), "rb").read(), 0),
                    errno.EBADMSG, "bad signature: EBADMSG")
            T.check(ckey in os.listdir(os.path.join(mp, "calls")), "bad call signature: still listed")
            T.equal(ml.expect_errno(lambda: os.listdir(os.path.join(mp, "calls", ckey)), 0),
                    errno.EBADMSG, "bad call signature: listing it is EBADMSG")
            T.equal(ml.expect_errno(lambda: open(os.path.join(mp, "calls", ckey, "call.json")).read(), 0),
                    errno.EBADMSG, "bad call signature: call.json is EBADMSG")
            others = [c["key"] for c in exp["calls"][1:]]
            T.check(all(os.path.isfile(os.path.join(mp, "calls", k, "call.json")) for k in others),
                    "bad call signature: the other calls read")


def main():
    ml.require_fuse()
    e = common.expected()
    key_hex = e["secret_key_hex_for_cache_signed"]
    for name in common.CACHE_NAMES:
        T.run(check_cache, name, e["caches"][name], key_hex if name == "signed" else None)
    T.run(check_bad_signature, e["caches"]["signed"], key_hex)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
