"""test_fleche_files.py: files and folders that cached functions return, in caches
written at test time by the real fleche (gen_fleche_files.py: a PNG, a CSV, a large
binary file, a folder of three levels with 1,000 files, a path passed as an
argument; cloudpickle files, pickle with SQLite calls, gzip, signed), read back
through flechefs-server's protocol and compared with what fleche materialises:

- the json view of every stored file record is {"$file": {"name", "content",
  "size"}} and of every folder record {"$directory": {...}} holding exactly the
  materialised tree, children by their real names, sizes those of the materialised
  files (rpc/PROTOCOL.md section 6.1);
- the bin view of every file's content value is the materialised file, byte for byte;
- list_record, followed folder by folder from every record, lists exactly the
  materialised tree: names, kinds, sizes, and content keys whose bin view, read in
  ranges, is the materialised file;
- the calls' results and path arguments are those records;
- through the mount: `find values/<key>.d` lists exactly the materialised tree of
  every record, every file there equals the materialised one (cmp for the PNG, the
  CSV and the large file), with its size; calls/<key>/result.d and
  arguments/path.d are listed and lead there;
- through the mount, mtimes are those of the value files: values/<key>.d has its
  record's, a file in it its content value's (as values/<key> shows them);
- listing a call folder again costs no server request for its result.d or
  arguments/<param>.d: the daemon keeps list_record's answers (the requests are
  counted on the way to the server);
- the json view of a record holding a file larger than the 256 MiB the json view may
  read of referenced values (--large-size of a separate cache) tells its size;
- hostile records: names the filesystem cannot take are still shown as data in the
  json view; a folder that contains itself is ELOOP, one nested deeper than the
  documented limit EFBIG, a file record whose content is not bytes EIO (CORRUPT);
  list_record refuses every name that no file can have with EINVAL saying why, a
  folder that lists itself with ELOOP, a value that is no record with ENOTSUP; in
  the mount their values/<key>.d is absent and the log says why, folders nested
  deeper than 32 levels are ELOOP, and the rest of the cache stays browsable.
"""

import errno
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mountlib as ml  # noqa: E402
import views_common as V  # noqa: E402
from client import RpcError, Server  # noqa: E402

T = common.Checks("fleche_files")


def want_json(record):
    """The json view a record's materialised tree calls for."""
    if record["kind"] == "file":
        ((name, f),) = record["files"].items()
        return {"$file": {"name": name, "content": f["content"], "size": f["size"]}}
    root = {}
    for d in record["dirs"]:
        node = root
        for part in d.split("/"):
            node = node.setdefault(part, {"$directory": {}})["$directory"]
    for rel, f in record["files"].items():
        *parents, name = rel.split("/")
        node = root
        for part in parents:
            node = node[part]["$directory"]
        node[name] = {"$file": {"name": name, "content": f["content"], "size": f["size"]}}
    return {"$directory": root}


def check_record(s, out, name, r):
    what = "%s: %s record %s" % (name, r["kind"], r["key"][:12])
    st, text = V.read_view(s, r["key"], "json")
    T.equal(st["size"], len(text), what + " json size")
    T.equal(json.loads(text), want_json(r), what + " json")
    for rel, f in r["files"].items():
        st, data = V.read_view(s, f["content"], "bin", chunk=4 << 20)
        with open(os.path.join(out, "materialised", name, r["key"], rel), "rb") as fh:
            T.check(data == fh.read(), "%s: bin view of '%s' equals the materialised file"
                    % (what, rel))


def walk(s, key, prefix="", depth=0):
    """The files (relative path -> (size, content key)) and folders below the record
    key, as list_record lists them folder by folder."""
    files, dirs = {}, []
    r = s.call("list_record", key)
    T.check(depth < 32, "folders nest less than 32 deep")
    for name, kind, k, size in zip(r["names"], r["kinds"], r["keys"], r["size"]):
        if kind == "directory":
            dirs.append(prefix + name)
            f, d = walk(s, k, prefix + name + "/", depth + 1)
            files.update(f)
            dirs += d
        else:
            files[prefix + name] = (size, k)
    return files, dirs


def check_listing(s, name, r):
    what = "%s: %s record %s" % (name, r["kind"], r["key"][:12])
    T.equal(s.call("list_record", r["key"])["kind"], r["kind"], what + " kind")
    files, dirs = walk(s, r["key"])
    T.equal(sorted(dirs), r["dirs"], what + " list_record's folders")
    T.equal(files, {rel: (f["size"], f["content"]) for rel, f in r["files"].items()},
            what + " list_record's files, sizes and contents")


def server_env(c):
    return {"FLECHE_SECRET_KEY": c["secret_key_hex"]} if c["secret_key_hex"] else None


def check_cache(out, name, c):
    records = {r["key"]: r for r in c["records"]}
    with Server(common.binary("flechefs-server"), ["--serve", "--root", os.path.join(out, name)],
                extra_env=server_env(c)) as s:
        s.hello()
        for r in c["records"]:
            T.run(check_record, s, out, name, r)
            T.run(check_listing, s, name, r)
        for call in c["calls"]:
            T.equal((list_error(s, call["key"]) or ("none",))[0], "ENOENT",
                    "%s: a call key is no value" % name)
        for call in c["calls"]:
            if call["name"] != "count_lines":
                T.check(call["result"] in records, "%s: the result of %s is a record"
                        % (name, call["name"]))
            else:
                T.check(call["arguments"]["path"] in records,
                        "%s: the path argument of count_lines is a record" % name)
        if name == "hostile":
            check_hostile(s, c["hostile"])
        T.equal(s.wait(), 0, "%s: the server ends cleanly" % name)
    kinds = [r["kind"] for r in c["records"]]
    largest = max((r for r in c["records"] if r["kind"] == "directory"),
                  key=lambda r: len(r["files"]), default=None)
    print("%s: %d calls, %d file records, %d folder records (the largest: %d files in %d "
          "folders)" % (name, len(c["calls"]), kinds.count("file"), kinds.count("directory"),
                        len(largest["files"]) if largest else 0,
                        len(largest["dirs"]) if largest else 0))


def check_hostile(s, keys):
    def doc(key):
        return json.loads(V.read_view(s, key, "json")[1])

    names = {"empty": "", "dot": ".", "dotdot": "..", "slash": "a/b", "nul": "a\0b",
             "long": "n" * 256}
    for why, bad in names.items():
        T.equal(doc(keys["file_" + why])["$file"]["name"], bad,
                "the json view shows the file name of '%s' as stored" % why)
        T.equal(sorted(doc(keys["dir_" + why])["$directory"]), sorted(["fine.txt", bad]),
                "the json view shows the child names of '%s' as stored" % why)
    T.equal(V.view_error(s, keys["dir_self"], "json"), "ELOOP",
            "a folder that contains itself is ELOOP")
    T.equal(V.view_error(s, keys["dir_deep"], "json"), "EFBIG",
            "folders nested 41 deep are EFBIG")
    T.check(V.view_error(s, keys["dir_deep_ok"], "json") is None,
            "folders nested 22 deep are shown")
    T.equal(V.view_error(s, keys["file_not_bytes"], "json"), "CORRUPT",
            "a file whose content is not bytes is CORRUPT")

    reasons = {"empty": "is empty", "dot": "is '.' or '..'", "dotdot": "is '.' or '..'",
               "slash": "contains '/'", "nul": "contains a NUL byte",
               "long": "is longer than 255 bytes"}
    for why, reason in reasons.items():
        for kind in ("file_", "dir_"):
            err = list_error(s, keys[kind + why])
            T.check(err and err[0] == "EINVAL" and reason in err[1],
                    "list_record of %s%s is EINVAL saying it %s: %r" % (kind, why, reason, err))
    T.equal(s.call("list_record", keys["file_name_max"])["names"], ["n" * 255],
            "a name of 255 bytes is listed")
    err = list_error(s, keys["dir_self"])
    T.check(err and err[0] == "ELOOP" and "itself" in err[1],
            "list_record of a folder that lists itself is ELOOP: %r" % (err,))
    err = list_error(s, keys["file_not_bytes"])
    T.check(err and err[0] == "CORRUPT" and "not the bytes of a file" in err[1],
            "list_record of a file whose content is a list is CORRUPT: %r" % (err,))
    content = s.call("list_record", keys["file_name_max"])["keys"][0]
    err = list_error(s, content)
    T.check(err and err[0] == "ENOTSUP" and "not a stored file or folder" in err[1],
            "list_record of bytes is ENOTSUP: %r" % (err,))


def list_error(s, key):
    """(error name, message) of list_record for key, or None when it succeeds."""
    try:
        s.call("list_record", key)
    except RpcError as e:
        return e.name, e.message
    return None


def find(top):
    """The relative paths find lists below top (top itself left out)."""
    r = subprocess.run(["find", top], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    T.equal(r.stderr.decode(errors="replace"), "", "find %s says nothing on stderr" % top)
    paths = r.stdout.decode("utf-8", "surrogateescape").splitlines()
    return sorted(os.path.relpath(p, top) for p in paths if p != top)


def check_record_mount(mp, out, name, r):
    what = "%s: mount %s record %s" % (name, r["kind"], r["key"][:12])
    top = os.path.join(mp, "values", r["key"] + ".d")
    T.equal(find(top), sorted(list(r["files"]) + r["dirs"]), what + ": find lists the tree")
    for rel, f in r["files"].items():
        got, want = os.path.join(top, rel), os.path.join(out, "materialised", name, r["key"], rel)
        T.equal(os.stat(got).st_size, f["size"], "%s: size of '%s'" % (what, rel))
        if rel.endswith((".png", ".csv", ".bin")):
            T.equal(subprocess.run(["cmp", got, want]).returncode, 0,
                    "%s: cmp '%s' with the materialised file" % (what, rel))
        else:
            with open(got, "rb") as g, open(want, "rb") as w:
                T.check(g.read() == w.read(), "%s: '%s' equals the materialised file"
                        % (what, rel))


def check_mtimes(mp, name, r):
    """A record folder's mtime is its record value's, a file's its content value's."""
    values = os.path.join(mp, "values")
    top = os.path.join(values, r["key"] + ".d")
    T.equal(os.stat(top).st_mtime_ns, os.stat(os.path.join(values, r["key"])).st_mtime_ns,
            "%s: values/%s.d has the mtime of its record" % (name, r["key"][:12]))
    for rel, f in sorted(r["files"].items())[:20]:
        T.equal(os.stat(os.path.join(top, rel)).st_mtime_ns,
                os.stat(os.path.join(values, f["content"])).st_mtime_ns,
                "%s: '%s' in values/%s.d has the mtime of its content" % (
                    name, rel, r["key"][:12]))


def check_mount(out, name, c):
    records = {r["key"]: r for r in c["records"]}
    with ml.mounted(os.path.join(out, name), env=server_env(c)) as mp:
        for r in c["records"]:
            T.run(check_record_mount, mp, out, name, r)
            T.run(check_mtimes, mp, name, r)
        for call in c["calls"]:
            d = os.path.join(mp, "calls", call["key"])
            if call["name"] == "count_lines":
                link, rel = os.path.join(d, "arguments", "path.d"), "arguments"
                key = call["arguments"]["path"]
                T.check("result.d" not in os.listdir(d), "%s: an int result has no result.d"
                        % name)
            else:
                link, rel, key = os.path.join(d, "result.d"), "", call["result"]
            T.check(os.path.basename(link) in os.listdir(os.path.dirname(link)),
                    "%s: %s lists %s" % (name, call["name"], os.path.basename(link)))
            T.equal(os.readlink(link), "../../%svalues/%s.d" % ("../" if rel else "", key),
                    "%s: %s's link" % (name, call["name"]))
            T.equal(sorted(os.listdir(link)), sorted(
                p for p in list(records[key]["files"]) + records[key]["dirs"] if "/" not in p),
                "%s: ls of %s's %s" % (name, call["name"], os.path.basename(link)))


def check_listings_cached(out, name, c):
    """Every call folder and arguments/ listed twice through a server whose requests
    are counted: the second round sends no list_record."""
    with common.temp_dir() as d:
        requests = os.path.join(d, "requests")
        wrapper = os.path.join(d, "counting-server")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\ntee -a '%s' | '%s' \"$@\"\n" % (
                requests, common.binary("flechefs-server")))
        os.chmod(wrapper, 0o755)
        with ml.mounted(os.path.join(out, name), opts=["-o", "server=" + wrapper],
                        env=server_env(c)) as mp:
            def list_calls():
                for call in c["calls"]:
                    d = os.path.join(mp, "calls", call["key"])
                    os.listdir(d)
                    os.listdir(os.path.join(d, "arguments"))
                with open(requests, "rb") as f:
                    return f.read().count(b"list_record")

            first = list_calls()
            second = list_calls()
        T.check(first > 0, "%s: the first listing of the call folders asks list_record "
                "(%d requests)" % (name, first))
        T.equal(second - first, 0, "%s: list_record requests sent listing the %d call "
                "folders again" % (name, len(c["calls"])))


def check_large_json():
    """The json view of a stored file larger than the json view's budget for the values
    it reads, and of a folder holding it, tells its size."""
    size = 300 << 20
    with common.temp_dir() as d:
        exp = common.generate_caches("gen_fleche_files.py", d, "--large-size", str(size),
                                     "--only", "cloudpickle")
        c = exp["caches"]["cloudpickle"]
        large = [r for r in c["records"]
                 if any(f["size"] == size for f in r["files"].values())]
        T.check(large, "a record holds the file of %d bytes" % size)
        with Server(common.binary("flechefs-server"),
                    ["--serve", "--root", os.path.join(d, "cloudpickle")]) as s:
            s.hello()
            for r in large:
                err = V.view_error(s, r["key"], "json")
                T.check(err is None, "the json view of the record of a 300 MiB file: %s" % err)
                if err is None:
                    T.equal(json.loads(V.read_view(s, r["key"], "json")[1]), want_json(r),
                            "the json view of the record of a 300 MiB file")
            T.equal(s.wait(), 0, "the server ends cleanly")


def check_hostile_mount(out, c):
    keys = c["hostile"]
    with tempfile.TemporaryFile() as log:
        with ml.foreground(os.path.join(out, "hostile"), log=log) as (_p, mp):
            for k in ("file_empty", "dir_dot", "file_dotdot", "dir_slash", "file_nul",
                      "dir_long", "dir_self", "file_not_bytes"):
                T.check(not os.path.exists(os.path.join(mp, "values", keys[k] + ".d")),
                        "hostile: values/<%s>.d is absent" % k)
                T.check(os.path.exists(os.path.join(mp, "values", keys[k] + ".json")) or
                        k in ("dir_self", "file_not_bytes"),
                        "hostile: values/<%s>.json is still there" % k)
            T.equal(find(os.path.join(mp, "values", keys["dir_deep_ok"] + ".d"))[-1],
                    "/".join("d%d" % i for i in range(20, -1, -1)) + "/leaf.txt",
                    "hostile: folders nested 22 deep are shown")
            deep = os.path.join(mp, "values", keys["dir_deep"] + ".d",
                                *("d%d" % i for i in range(39, 5, -1)))
            try:
                os.stat(deep)
                T.check(False, "hostile: folders nested 34 deep are ELOOP")
            except OSError as e:
                T.equal(e.errno, errno.ELOOP, "hostile: folders nested 34 deep are ELOOP")
        log.seek(0)
        text = log.read().decode(errors="replace")
    for phrase in ("which is '.' or '..'", "which contains '/'", "which contains a NUL byte",
                   "which is longer than 255 bytes", "which is empty", "lists itself",
                   "deeper than 32 levels"):
        T.check(phrase in text, "hostile: the log says %r" % phrase)


def main():
    common.fleche_python()
    with common.temp_dir() as out:
        exp = common.generate_caches("gen_fleche_files.py", out)
        print("caches written by fleche %s (Python %s), large file of %d bytes" % (
            exp["fleche_version"], exp["python"], exp["large_size"]))
        for name, c in exp["caches"].items():
            T.run(check_cache, out, name, c)
        ml.require_fuse()
        for name, c in exp["caches"].items():
            if name != "hostile":
                T.run(check_mount, out, name, c)
        T.run(check_hostile_mount, out, exp["caches"]["hostile"])
        T.run(check_listings_cached, out, "cloudpickle", exp["caches"]["cloudpickle"])
    T.run(check_large_json)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
