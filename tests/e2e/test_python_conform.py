"""test_python_conform.py: flechefs.FlechefsCache does what fleche's own caches do
where fleche's configuration and storages decide, checked against the real fleche
(scripts/pyenv.sh's environment; this script runs itself again under that Python):

- cache_name: with a fleche.toml naming two caches (and a default), FlechefsCache
  (cache_name=...) saves into the cache of that name and FlechefsCache() into the
  default one, as fleche's load_cache_config finds them; an unknown name is
  ConnectionLost saying so;
- max_size: a cache with `max_size` in fleche.toml (and FlechefsCache(max_size=N))
  keeps at most that many calls after saves, as fleche's SizeLimitedCache does
  (calls evicted at random, values kept), compared with fleche's own;
- SQL call storage: a call with non-ASCII names, version and metadata saved through
  FlechefsCache writes rows byte for byte equal to those fleche writes for the same
  call (version and metadata as json.dumps text: ASCII with \\uXXXX escapes), and
  both load back equal;
- stored files and folders (fleche.storage.paths FileBlob / DirectoryBlob, in caches
  written by gen_fleche_files.py): load_value and a call's result or argument give a
  path materialised as fleche's path storage does (a file at <temporary>/<name>, a
  folder at <temporary>/<key>, children by name, the same bytes), removed once
  the path is dropped.
"""

import gc
import hashlib
import math
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
import pathlib  # noqa: E402

import fleche.config  # noqa: E402
from fleche.call import Call  # noqa: E402
from fleche.config import cache_from_config  # noqa: E402

from flechefs import ConnectionLost, FlechefsCache  # noqa: E402

T = common.Checks("python_conform")
HERE = os.path.dirname(os.path.abspath(__file__))

TOML = """\
[default]
cache = "first"

[first]
template = "cloudpickle"
root = "first"

[second]
values.type = "pickle"
values.root = "second/values"
calls.type = "sql"
calls.url = "sqlite:///second/calls.db"

[limited]
template = "pickle"
root = "limited"
max_size = 3
"""


def configured(name):
    """fleche's own cache of that name in the fleche.toml of the working directory."""
    fleche.config._live_caches.clear()
    return fleche.config.load_cache_config(name)


def call_keys(cache):
    return sorted(str(k) for k in cache.calls.list())


def prepare_storage(d):
    """What fleche makes on first use (the server serves existing storage only)."""
    with open(os.path.join(d, "fleche.toml"), "w") as f:
        f.write(TOML)
    os.chdir(d)
    for sub in ("first/values", "first/calls", "second/values", "limited/values",
                "limited/calls"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    configured("second").calls.list()  # makes the SQLite database


def test_cache_name(d, server):
    prepare_storage(d)
    second = FlechefsCache(cache_name="second", server=server, workdir=d)
    first = FlechefsCache(cache_name="first", server=server, workdir=d)
    default = FlechefsCache(server=server, workdir=d)
    try:
        k2 = second.save(Call(name="in_second", arguments={"x": 1}, result=2))
        k1 = first.save(Call(name="in_first", arguments={"x": 1}, result=3))
        k0 = default.save(Call(name="in_default", arguments={"x": 1}, result=4))
        T.equal(second.info()["config"]["cache"]["calls"]["type"], "sql",
                "cache_name='second' serves the SQL cache")
    finally:
        for c in (first, second, default):
            c.close()
    T.equal(call_keys(configured("second")), [k2], "fleche finds in 'second' its call only")
    T.equal(call_keys(configured("first")), sorted([k1, k0]),
            "fleche finds in 'first' (the default) the calls saved by name and by default")
    T.equal(configured("second").load(k2).result, 2, "fleche loads the call saved in 'second'")
    unknown = FlechefsCache(cache_name="nosuch", server=server, workdir=d)
    try:
        unknown.info()
        T.check(False, "an unknown cache name is refused")
    except ConnectionLost as e:
        T.check("nosuch" in str(e), "an unknown cache name is ConnectionLost naming it: %s" % e)
    finally:
        unknown.close()


def test_max_size(d, server):
    prepare_storage(d)
    limited = FlechefsCache(cache_name="limited", server=server, workdir=d)
    calls = [Call(name="f", arguments={"i": i}, result=[i, "r%d" % i]) for i in range(6)]
    try:
        T.equal(limited.size_limit(), 3, "the limit is fleche.toml's max_size")
        for c in calls:
            limited.save(c)
    finally:
        limited.close()
    ref = configured("limited")
    T.equal(type(ref).__name__, "SizeLimitedCache", "fleche makes a SizeLimitedCache")
    theirs = cache_from_config({"template": "pickle", "root": os.path.join(d, "theirs"),
                                "max_size": 3})
    for c in calls:
        theirs.save(c)
    kept = call_keys(ref)
    T.equal(len(kept), len(call_keys(theirs)),
            "as many calls kept as fleche's SizeLimitedCache keeps (%d)" % len(kept))
    T.check(set(kept) <= {str(c.to_lookup_key()) for c in calls}, "only saved calls kept")
    for k in kept:
        T.equal(ref.load(k).result[0], ref.load(k).arguments["i"], "a kept call loads whole")
    T.equal(len(list(ref.values.list())), len(list(theirs.values.list())),
            "the evicted calls' values are kept, as fleche keeps them")
    # the argument wins over the configuration
    two = FlechefsCache(cache_name="first", server=server, workdir=d, max_size=2)
    try:
        for c in calls:
            two.save(c)
    finally:
        two.close()
    T.equal(len(call_keys(configured("first"))), 2, "max_size=2 keeps 2 calls")


NON_ASCII = Call(
    name="gr\u00f6\u00dfe_\u65e5\u672c",
    module="mod\u00fcl.\u03b1\u03b2",
    version="v\u20ac1 \U0001f600",
    arguments={"\u00f1ame": "caf\u00e9", "n": 1},
    result={"r\u00e9sultat": [1, 2.5, "\u2603"]},
    metadata={"tags": {"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435 \U0001f600",
                       "ascii": "tab\there \x7f del", "nested": [1, 0.1, None, True, "\u00e9"],
                       "nan": float("nan"), "big": 2 ** 70, "quote": "a\"b\\c"},
              "\u00e9tiquette": {"k": "v"}})

ROWS = ("SELECT \"key\", name, module, version, code_digest, result FROM calls "
        "ORDER BY \"key\"",
        "SELECT call_key, position, name, value FROM arguments ORDER BY call_key, position",
        "SELECT call_key, name, data FROM metadata ORDER BY call_key, name")


def sql_rows(db):
    """Every row of fleche's tables, text as the bytes stored (CAST AS BLOB)."""
    con = sqlite3.connect(db)
    try:
        out = []
        for q in ROWS:
            cols = q.split("SELECT ", 1)[1].split(" FROM", 1)[0].split(", ")
            blob = "SELECT " + ", ".join("CAST(%s AS BLOB)" % c for c in cols) + \
                " FROM" + q.split(" FROM", 1)[1]
            out.append(con.execute(blob).fetchall())
        return out
    finally:
        con.close()


def same_meta(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(
            same_meta(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            same_meta(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


def test_sql_text(d, server):
    layouts = {}
    for who in ("fleche", "flechefs"):
        root = os.path.join(d, who)
        os.makedirs(os.path.join(root, "values"))
        layouts[who] = {"values": {"type": "pickle", "root": os.path.join(root, "values")},
                        "calls": {"type": "sql",
                                  "url": "sqlite:///" + os.path.join(root, "calls.db")}}
    theirs = cache_from_config(layouts["fleche"])
    key = theirs.save(NON_ASCII)
    cache_from_config(layouts["flechefs"]).calls.list()  # makes the database
    fc = FlechefsCache(root=os.path.join(d, "flechefs"), server=server, serializer="pickle")
    try:
        T.equal(fc.save(NON_ASCII), key, "FlechefsCache saves the call under fleche's key")
        loaded = fc.load(key)
        T.check(same_meta(loaded.metadata, theirs.load(key).metadata),
                "FlechefsCache loads the metadata back equal: %r" % (loaded.metadata,))
        T.equal((loaded.name, loaded.module, loaded.version),
                (NON_ASCII.name, NON_ASCII.module, NON_ASCII.version),
                "FlechefsCache loads name, module and version back equal")
    finally:
        fc.close()
    want = sql_rows(os.path.join(d, "fleche", "calls.db"))
    got = sql_rows(os.path.join(d, "flechefs", "calls.db"))
    for table, w, g in zip(("calls", "arguments", "metadata"), want, got):
        T.equal(g, w, "the %s rows are those fleche writes, byte for byte" % table)
    mine = cache_from_config(layouts["flechefs"]).load(key)
    T.check(same_meta(mine.metadata, NON_ASCII.metadata) and mine.version == NON_ASCII.version,
            "fleche reads the call FlechefsCache saved with the same metadata and version")


def tree(path):
    """{relative path: sha256} of the files under path, and its folders."""
    files, dirs = {}, []
    for root, dnames, fnames in os.walk(path):
        rel = os.path.relpath(root, path)
        for n in dnames:
            dirs.append(os.path.normpath(os.path.join(rel, n)))
        for n in fnames:
            with open(os.path.join(root, n), "rb") as f:
                files[os.path.normpath(os.path.join(rel, n))] = hashlib.sha256(
                    f.read()).hexdigest()
    return files, sorted(dirs)


def test_paths(d, server):
    out = os.path.join(d, "files")
    for layout in ("cloudpickle", "pickle_sql"):
        expected = common.generate_caches("gen_fleche_files.py", out, "--large-size", "65536",
                                          "--only", layout)["caches"][layout]
        serializer = "pickle" if layout == "pickle_sql" else "cloudpickle"
        fc = FlechefsCache(root=os.path.join(out, layout), server=server, serializer=serializer)
        try:
            for r in expected["records"]:
                p = fc.load_value(r["key"])
                what = "%s: record %s (%s)" % (layout, r["key"][:12], r["kind"])
                if not T.check(isinstance(p, pathlib.Path), "%s is a path: %r" % (what, p)):
                    continue
                want_files = {k: v["sha256"] for k, v in r["files"].items()}
                if r["kind"] == "file":
                    (name,) = want_files
                    T.equal(p.name, name, "%s: named as stored" % what)
                    T.equal(tree(p.parent), ({name: want_files[name]}, []),
                            "%s: alone in its folder, the bytes fleche materialises" % what)
                else:
                    T.equal(p.name, r["key"], "%s: the folder is named by its key" % what)
                    T.equal(tree(p), (want_files, sorted(r["dirs"])),
                            "%s: the tree fleche materialises" % what)
                top = p.parent
                del p
                gc.collect()
                T.check(not top.exists(), "%s: the temporary folder goes with the path" % what)
            by_name = {c["name"]: c for c in expected["calls"]}
            plot = fc.load(by_name["plot"]["key"])
            T.check(isinstance(plot.result, pathlib.Path) and plot.result.name == "plot.png"
                    and plot.result.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n",
                    "%s: a call's result is the materialised file: %r" % (layout, plot.result))
            counted = fc.load(by_name["count_lines"]["key"])
            arg = counted.arguments["path"]
            T.check(isinstance(arg, pathlib.Path) and len(arg.read_text().splitlines())
                    == counted.result,
                    "%s: a path argument is the materialised file: %r" % (layout, arg))
        finally:
            fc.close()
        common.rmtree(out)


def main():
    server = common.binary("flechefs-server")
    sys.path.insert(0, HERE)
    import gen_fleche_files  # noqa: F401 (fleche.storage.paths, as a fleche storing paths has it)
    for fn in (test_cache_name, test_max_size, test_sql_text, test_paths):
        with common.temp_dir() as d:
            T.run(fn, d, server)
            os.chdir(common.SOURCE)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
