"""gen_fleche_files.py OUTDIR [--large-size BYTES] [--only LAYOUT]: writes caches with the real fleche
(scripts/pyenv.sh's environment) whose cached functions return files and folders as
pathlib.Path, and OUTDIR/EXPECTED.json with what fleche reads back from them.

fleche stores a returned (or passed) path to a file as a record
fleche.storage.paths.FileBlob(name, content) whose content is the Digest of the
file's bytes, stored as a bytes value of its own, and a folder as
fleche.storage.paths.DirectoryBlob({child name: Digest}), each child being the bytes
of a file or another DirectoryBlob; loading materialises the file or folder in a
temporary folder. fleche 0.22.2, the release on PyPI, predates that storage: here it
is added to the 0.22.2 cache the way fleche's path storage does it (the two record
classes, importable under their module name so that every serializer pickles them by
reference, and a value storage whose save turns a Path into them), and the records
are then written and loaded by fleche 0.22.2's own storages and serializers.

Functions return a PNG image, a CSV table, a large binary file (--large-size bytes,
8 MiB unless given), a folder of three levels with 1,000 files, and take a path as
an argument. One cache per layout of gen_fleche_caches.py but dill (cloudpickle,
pickle with SQLite calls, gzip, signed; --only writes just the one named), and "hostile": records that a filesystem
cannot show as they are (a file named '', '.', '..', with '/' or NUL, or longer than
255 bytes; a folder with such a child; a folder that contains itself; folders nested
deeper than flechefs follows).

EXPECTED.json holds, per cache, every call (key, name, result key, argument keys) and
every record: its key, "file" or "directory", and its tree as fleche materialises it
({relative path: {"size", "sha256", "content"}} for files, the list of folders);
OUTDIR/materialised/<cache>/<key>/ holds the materialised file or folder itself.
"""

import hashlib
import json
import os
import pathlib
import random
import shutil
import struct
import sys
import types
import zlib

import fleche
from fleche import digest as fdigest
from fleche.config import cache_from_config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fleche_caches import LAYOUTS, SECRET_HEX  # noqa: E402


# ------------------------------------------------- fleche's records of paths


class FileBlob:
    """A stored file: its basename and the Digest of its bytes."""

    def __init__(self, name, content):
        self.name = name
        self.content = content

    def __digest__(self):
        return fdigest.digest(("FileBlob", self.name, self.content))


class DirectoryBlob:
    """A stored folder: {child name: Digest of the child's bytes or folder record}."""

    def __init__(self, contents):
        self.contents = dict(contents)

    def __digest__(self):
        return fdigest.digest(("DirectoryBlob", self.contents))


PATHS_MODULE = types.ModuleType("fleche.storage.paths")
for _cls in (FileBlob, DirectoryBlob):
    _cls.__module__ = PATHS_MODULE.__name__
    setattr(PATHS_MODULE, _cls.__name__, _cls)
sys.modules[PATHS_MODULE.__name__] = PATHS_MODULE
fleche.storage.paths = PATHS_MODULE


def store_paths(values):
    """Makes values.save store a Path to a file or folder as the records above."""
    save = values.save

    def save_folder(p):
        contents = {}
        for child in sorted(p.iterdir()):
            if child.is_file():
                contents[child.name] = save(child.read_bytes())
            elif child.is_dir():
                contents[child.name] = save(save_folder(child))
        return DirectoryBlob(contents)

    def save_path(value, key=None):
        if isinstance(value, pathlib.Path) and value.is_file():
            return save(FileBlob(value.name, save(value.read_bytes())), key)
        if isinstance(value, pathlib.Path) and value.is_dir():
            return save(save_folder(value), key)
        return save(value, key)

    object.__setattr__(values, "save", save_path)  # a frozen dataclass


def materialise(values, key, dest):
    """Writes what loading the record key gives, as fleche's path storage does:
    dest/<name> for a file, dest itself for a folder. Returns "file" or "directory"."""
    record = values.load(key)
    if isinstance(record, FileBlob):
        os.makedirs(dest)
        with open(os.path.join(dest, record.name), "wb") as f:
            f.write(values.load(record.content))
        return "file"
    assert isinstance(record, DirectoryBlob), type(record)
    os.makedirs(dest)
    for name, ref in record.contents.items():
        child = values.load(ref)
        if isinstance(child, DirectoryBlob):
            materialise(values, ref, os.path.join(dest, name))
        else:
            with open(os.path.join(dest, name), "wb") as f:
                f.write(child)
    return "directory"


def tree_of(root, values, key):
    """The files (relative path -> size, sha256, content key) and folders under root."""
    files, dirs = {}, []
    record = values.load(key)
    if isinstance(record, FileBlob):
        refs = {record.name: record.content}
    else:
        refs = {}

        def walk(rec, prefix):
            for name, ref in rec.contents.items():
                child = values.load(ref)
                if isinstance(child, DirectoryBlob):
                    dirs.append(prefix + name)
                    walk(child, prefix + name + "/")
                else:
                    refs[prefix + name] = ref
        walk(record, "")
    for rel, ref in refs.items():
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "content": str(ref)}
    return files, sorted(dirs)


# ------------------------------------------------------- the cached functions

WORK = None  # where the functions write their files (set by main)


def png(width, height, seed):
    """A valid PNG image, RGB, 8 bits per sample."""
    rng = random.Random(seed)
    raw = b"".join(b"\0" + rng.randbytes(3 * width) for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def fresh(name):
    d = pathlib.Path(WORK, "%d" % len(os.listdir(WORK)))
    d.mkdir()
    return d / name


@fleche.fleche
def plot(seed):
    p = fresh("plot.png")
    p.write_bytes(png(64, 48, seed))
    return p


@fleche.fleche
def table(rows):
    p = fresh("table 1.csv")
    p.write_text("x,y,label\n" + "".join("%d,%g,\"r%d, ok\"\n" % (i, i * 0.5, i)
                                         for i in range(rows)))
    return p


@fleche.fleche
def large(size):
    p = fresh("large.bin")
    rng = random.Random(size)
    with open(p, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
    return p


@fleche.fleche
def outputs(nfiles):
    """A folder of three levels holding nfiles files: two at the top (one with a
    non-ASCII name), a README in each of 10 runs, a summary in each of their 10
    stages, and the rest spread over the stages; one stage left empty."""
    root = fresh("outputs")
    root.mkdir()
    (root / "index.csv").write_text("run,stages\n" + "".join("%d,10\n" % a for a in range(10)))
    (root / "caf\u00e9 \u00e9t\u00e9.txt").write_text("unicode name\n")
    stages = []
    for a in range(10):
        run = root / ("run %02d" % a)
        run.mkdir()
        (run / "README").write_text("run %d\n" % a)
        for b in range(10):
            (run / ("stage-%d" % b)).mkdir()
            (run / ("stage-%d" % b) / "summary.txt").write_text("stage %d of run %d\n" % (b, a))
            stages.append(run / ("stage-%d" % b))
    (root / "empty").mkdir()
    for i in range(nfiles - 2 - 10 - 100):
        (stages[i % 100] / ("r%d.dat" % i)).write_bytes(b"%d\n" % i * (i % 7 + 1))
    return root


@fleche.fleche
def count_lines(path):
    return len(pathlib.Path(path).read_text().splitlines())


# ------------------------------------------------------------ hostile records


def write_hostile(values):
    """Records fleche could not write from a real filesystem; returns their keys by
    what is wrong with them."""
    data = values.save(b"hostile content\n")
    keys = {}
    for why, name in (("empty", ""), ("dot", "."), ("dotdot", ".."), ("slash", "a/b"),
                      ("nul", "a\0b"), ("long", "n" * 256)):
        keys["file_" + why] = str(values.save(FileBlob(name, data)))
        keys["dir_" + why] = str(values.save(DirectoryBlob({"fine.txt": data, name: data})))
    keys["file_name_max"] = str(values.save(FileBlob("n" * 255, data)))
    # a folder that lists itself as a child: saved under the key it refers to
    me = fdigest.Digest("5e1f" * 16)
    keys["dir_self"] = str(values.save(DirectoryBlob({"me": me, "fine.txt": data}), me))
    # folders nested deeper than flechefs follows (PROTOCOL.md section 6.1)
    child = values.save(DirectoryBlob({"leaf.txt": data}))
    for depth in range(40):
        child = values.save(DirectoryBlob({"d%d" % depth: child}))
        if depth == 20:
            keys["dir_deep_ok"] = str(child)
    keys["dir_deep"] = str(child)
    # a file record whose content is not bytes
    keys["file_not_bytes"] = str(values.save(FileBlob("x.txt", values.save([1, 2]))))
    return keys


# ------------------------------------------------------------------- writing

FILE_LAYOUTS = {name: LAYOUTS[name] for name in ("cloudpickle", "pickle_sql", "gzip", "signed")}
FILE_LAYOUTS["hostile"] = {"template": "cloudpickle", "root": "hostile"}


def write_cache(out, name, large_size):
    global WORK
    os.chdir(out)
    cache = cache_from_config(json.loads(json.dumps(FILE_LAYOUTS[name])))
    store_paths(cache.values)
    WORK = os.path.join(out, "work", name)
    os.makedirs(WORK)
    result = {"secret_key_hex": SECRET_HEX if name == "signed" else None,
              "calls": [], "records": [], "hostile": {}}
    with fleche.cache(cache):
        if name == "hostile":
            result["hostile"] = write_hostile(cache.values)
        else:
            plot(1)
            table(20)
            large(large_size)
            outputs(1000)
            count_lines(table(5))
    shutil.rmtree(WORK)
    # of the hostile records, those a filesystem can show
    showable = {result["hostile"].get(k) for k in ("file_name_max", "dir_deep_ok")}
    for key in sorted(str(k) for k in cache.calls.list()):
        c = cache.calls.load(key)
        result["calls"].append({"key": key, "name": c.name, "result": str(c.result),
                                "arguments": {a: str(d) for a, d in c.arguments.items()}})
    for key in sorted(str(k) for k in cache.values.list()):
        if isinstance(cache.values.load(key), (FileBlob, DirectoryBlob)) and (
                name != "hostile" or key in showable):
            dest = os.path.join(out, "materialised", name, key)
            kind = materialise(cache.values, key, dest)
            files, dirs = tree_of(dest, cache.values, key)
            result["records"].append({"key": key, "kind": kind, "files": files, "dirs": dirs})
    return result


def main():
    out = os.path.abspath(sys.argv[1])
    large_size = 8 << 20
    if "--large-size" in sys.argv:
        large_size = int(sys.argv[sys.argv.index("--large-size") + 1])
    os.makedirs(out, exist_ok=True)
    result = {"fleche_version": fleche.__version__, "python": sys.version.split()[0],
              "large_size": large_size, "caches": {}}
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    for name in FILE_LAYOUTS:
        if only in (None, name):
            result["caches"][name] = write_cache(out, name, large_size)
    with open(os.path.join(out, "EXPECTED.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
