"""test_mount_query.py: the read-only query/ tree on a mount of the demo cache
(examples/make-cache.py --demo): a directory per condition `field=value`, nested for
several, lists the matching calls as symlinks into calls/ (compared with what the
calls' call.json say); names, modules, versions, argument value key prefixes and
metadata values (JSON scalars: numbers compare by value, a quoted "3" is a string);
a lookup of a key the query does not match is ENOENT; an unknown field is ENOENT; an
unusable value (a prefix no key has, a field given twice) lists nothing and the log
says why; nothing in query/ can be removed.
"""

import errno
import json
import os
import sys

import common
import mountlib as ml

T = common.Checks("mount_query")


def calls_of(mp):
    out = {}
    for k in os.listdir(os.path.join(mp, "calls")):
        with open(os.path.join(mp, "calls", k, "call.json")) as f:
            out[k] = json.load(f)
    return out


def check_listing(mp, rel, want, what):
    d = os.path.join(mp, "query", rel)
    got = sorted(os.listdir(d))
    T.equal(got, sorted(want), what)
    for k in got:
        p = os.path.join(d, k)
        T.check(os.path.islink(p) and
                os.path.realpath(p) == os.path.realpath(os.path.join(mp, "calls", k)),
                "%s: %s links to calls/%s" % (what, k[:8], k[:8]))
        T.check(os.path.isfile(os.path.join(p, "call.json")), "%s: readable through the link"
                % what)


errno_of = ml.errno_of


def test_query(mp, log):
    calls = calls_of(mp)
    T.check(os.path.isdir(os.path.join(mp, "query")), "query/ at the top")
    T.equal(os.listdir(os.path.join(mp, "query")), [], "query/ lists nothing itself")
    greet = [k for k, c in calls.items() if c["name"] == "greet"]
    T.check(len(greet) >= 2, "the demo has several greet calls")
    check_listing(mp, "name=greet", greet, "name=greet")
    check_listing(mp, "module=__main__/name=greet",
                  [k for k in greet if calls[k]["module"] == "__main__"], "module and name")
    version = calls[greet[0]]["version"]
    check_listing(mp, "version=%s" % version,
                  [k for k, c in calls.items() if c["version"] == version],
                  "version=%s (a string)" % version)
    arg, value = sorted(calls[greet[0]]["arguments"].items())[0]
    check_listing(mp, "name=greet/arguments.%s=%s" % (arg, value[:8]),
                  [k for k in greet if calls[k]["arguments"].get(arg) == value],
                  "an argument by value key prefix")
    tagged = {k: c for k, c in calls.items() if "tags" in c["metadata"]}
    T.check(tagged, "the demo has tagged calls")
    k, c = sorted(tagged.items())[0]
    exp = c["metadata"]["tags"]["experiment"]
    epochs = c["metadata"]["tags"]["epochs"]
    same = [j for j, d in tagged.items() if d["metadata"]["tags"].get("experiment") == exp]
    check_listing(mp, "metadata.tags.experiment=%s" % exp, same, "metadata string")
    check_listing(mp, "metadata.tags.experiment=\"%s\"" % exp, same, "metadata JSON string")
    for text in ("%d" % epochs, "%d.0" % epochs):
        check_listing(mp, "name=%s/metadata.tags.epochs=%s" % (c["name"], text),
                      [j for j in same if calls[j]["name"] == c["name"]],
                      "metadata number %s compares by value" % text)
    check_listing(mp, "metadata.tags.epochs=\"%d\"" % epochs, [], "a quoted number is a string")
    # lookups
    T.check(os.path.islink(os.path.join(mp, "query", "name=greet", greet[0])),
            "lookup of a matching key")
    other = next(j for j, d in calls.items() if d["name"] != "greet")
    T.equal(errno_of(lambda: os.lstat(os.path.join(mp, "query", "name=greet", other))),
            errno.ENOENT, "lookup of a key the query does not match")
    for bad in ("color=red", "metadata.tags=x", "arguments.=x", "name", "calls"):
        T.equal(errno_of(lambda: os.stat(os.path.join(mp, "query", bad))), errno.ENOENT,
                "unknown field %r: ENOENT" % bad)
    # unusable values: empty listings, the log says why
    for rel, reason in (("arguments.name=ffffffffff", "arguments.name=ffffffffff"),
                        ("arguments.name=zz", "arguments.name=zz"),
                        ("name=greet/name=add", "same field twice"),
                        ("metadata.tags.experiment=\"unterminated", "JSON string")):
        T.equal(os.listdir(os.path.join(mp, "query", rel)), [], "%s lists nothing" % rel)
        T.check(ml.wait_for(lambda: reason in open(log).read(), 5),
                "%s: the log says why (%r)" % (rel, reason))
    # read-only
    common.run(["rm", "-rf", os.path.join(mp, "query", "name=greet", greet[0])])
    T.check(os.path.isdir(os.path.join(mp, "calls", greet[0])), "rm in query/ evicts nothing")
    T.check(errno_of(lambda: os.mkdir(os.path.join(mp, "query", "name=x", "y"))) != 0,
            "mkdir in query/ refused")


def main():
    ml.require_fuse()
    with common.temp_dir() as tmp:
        cache = os.path.join(tmp, "cache")
        r = common.run(["/usr/bin/python3", os.path.join(os.environ.get(
            "FLECHEFS_SOURCE", os.path.join(os.path.dirname(__file__), "..", "..")),
            "examples", "make-cache.py"), "--demo", cache], timeout=120)
        if r.returncode != 0:
            common.fail("make-cache.py --demo: %r" % r.stderr)
        log = os.path.join(tmp, "flechefs.log")
        with ml.mounted(cache, ["-o", "log=" + log]) as mp:
            T.run(test_query, mp, log)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
