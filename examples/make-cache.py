#!/usr/bin/env python3
"""make-cache.py: writes a fleche cache, using only the Python standard library.

The caches it writes are laid out and encoded as fleche 0.20 writes them (see
tests/fixtures/README.md and rpc/PROTOCOL.md): one directory CACHE_DIR with
`values/` (one pickle file per value key) and either `calls/` (one pickle file per
call key, layout "files") or `calls.db` (SQLite in WAL mode with fleche's SQLAlchemy
schema, layout "sql"), plus a `fleche.toml` describing it. A real fleche 0.20 reads
them back: call records are pickles of `fleche.call.DigestedCall` built with NEWOBJ +
BUILD of the state dict (name, arguments, result, metadata, module, version,
code_digest), argument and result references are `fleche.digest.Digest` strings,
metadata is a `collections.defaultdict(dict)`, nested containers are destructured into
`fleche.storage.destructuring.DigestedIterable` / `DigestedDict` wrappers, and numpy
arrays are pickled opcode for opcode as numpy itself pickles them. fleche is not
needed: stand-in classes registered as the modules `fleche.call`, `fleche.digest` and
`fleche.storage.destructuring` make the `pickle` module write the same global names.

Keys. Every key is SHA-256 as 64 lowercase hex characters, content-addressed and
stable from run to run, but NOT computed with fleche's own digest algorithm: a value
key is the SHA-256 of a canonical, type-tagged encoding of the value (`canonical()`
below), except that a bytes value's key is the SHA-256 of the bytes themselves (so
`sha256sum` of the raw bytes gives the key); a call key is the SHA-256 of the
function name, module, version, code digest and the argument names and value keys in
signature order. Records and values are found by the keys they are stored under, so
the caches read back whole; but a call that fleche itself makes again gets fleche's
own key and does not hit these records.

Large values (--big-value, --big-array) are written streaming: the pickle header, then
the payload in 1 MiB chunks, then the trailer, with the same framing as Python's
pickler, so a 1 GiB value needs a few MiB of memory. Every file is written to a
temporary `.NAME.UUID.tmp` in its directory and renamed into place, as fleche does.

Usage: make-cache.py [options] CACHE_DIR   (see --help). Without any content option
it writes the --demo set. It refuses to write into a non-empty CACHE_DIR unless
--force is given.
"""

import argparse
import array
import collections
import copyreg
import gzip
import hashlib
import hmac
import json
import math
import os
import pickle
import random
import shutil
import sqlite3
import struct
import sys
import types
import uuid

FLECHE_VERSION = "0.20.0"
BASE_TIME = 1767225600.0  # 2026-01-01T00:00:00Z: metadata times are synthetic and fixed
GZIP_MTIME = int(BASE_TIME)
CHUNK = 1 << 20
FRAME_TARGET = 64 * 1024  # pickle's _FRAME_SIZE_TARGET
FRAME_MIN = 4  # pickle's _FRAME_SIZE_MIN
ENVIRONMENT = {
    "hostname": "flechefs-example",
    "username": "researcher",
    "cwd": "/home/researcher/project",
    "fleche_version": FLECHE_VERSION,
    "python_version": "3.11.2",
}

# -- stand-ins for fleche's classes -----------------------------------------------------
#
# Registered under fleche's module names so that pickle writes (and, in a process that
# registers them too, reads) the very GLOBALs fleche uses. __reduce_ex__ is explicit so
# that every Python version from 3.9 on writes the same opcodes: NEWOBJ of a one-tuple
# for Digest (no BUILD), NEWOBJ of () + BUILD of the state dict for the others.


class Digest(str):
    """fleche.digest.Digest: a str subclass holding a 64-hex key."""

    __slots__ = ()
    __module__ = "fleche.digest"

    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, (type(self), str(self)))


class _Stateful:
    """Base of the stand-ins pickled as NEWOBJ(cls, ()) + BUILD(state dict)."""

    FIELDS = ()

    def __init__(self, **state):
        for k in self.FIELDS:
            setattr(self, k, state[k])

    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, (type(self),), {k: getattr(self, k) for k in self.FIELDS})

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, v) for k, v in self.__dict__.items()))


class DigestedCall(_Stateful):
    """fleche.call.DigestedCall: a call record (the state dict keeps this field order)."""

    __module__ = "fleche.call"
    FIELDS = ("name", "arguments", "result", "metadata", "module", "version", "code_digest")


class DigestedIterable(_Stateful):
    """fleche.storage.destructuring.DigestedIterable: a list or tuple whose container
    items are Digest references to other value files."""

    __module__ = "fleche.storage.destructuring"
    FIELDS = ("items",)


class DigestedDict(_Stateful):
    """fleche.storage.destructuring.DigestedDict: a dict whose container values are
    Digest references to other value files."""

    __module__ = "fleche.storage.destructuring"
    FIELDS = ("items",)


STANDIN_CLASSES = {
    "fleche.call": [DigestedCall],
    "fleche.digest": [Digest],
    "fleche.storage.destructuring": [DigestedIterable, DigestedDict],
}


def install_standins():
    """Registers the stand-in classes as fleche's modules in sys.modules (for pickle
    to write or read fleche's global names). Returns the stand-in module dict. A module
    already registered (the real fleche, imported by the caller) is left alone."""
    for full in ("fleche", "fleche.storage", "fleche.call", "fleche.digest",
                 "fleche.storage.destructuring"):
        if full not in sys.modules:
            sys.modules[full] = types.ModuleType(full)
    for mod, classes in STANDIN_CLASSES.items():
        m = sys.modules[mod]
        for cls in classes:
            if not hasattr(m, cls.__name__):
                setattr(m, cls.__name__, cls)
    sys.modules["fleche"].call = sys.modules["fleche.call"]
    sys.modules["fleche"].digest = sys.modules["fleche.digest"]
    sys.modules["fleche"].storage = sys.modules["fleche.storage"]
    sys.modules["fleche.storage"].destructuring = sys.modules["fleche.storage.destructuring"]
    return {m: sys.modules[m] for m in STANDIN_CLASSES}


# -- values that are not plain Python objects -------------------------------------------


class Float64Array:
    """A one-dimensional float64 array, C order, little-endian, pickled as numpy
    pickles it. `chunks()` yields the raw data; it is generated on demand so that
    a large array is never held in memory. The values are start + i * step."""

    def __init__(self, n, start=0.0, step=1.0):
        self.n = n
        self.start = start
        self.step = step

    @property
    def nbytes(self):
        return 8 * self.n

    def chunks(self):
        per = CHUNK // 8
        i = 0
        while i < self.n:
            m = min(per, self.n - i)
            if self.start == 0.0 and self.step == 1.0:
                a = array.array("d", range(i, i + m))
            else:
                a = array.array("d", (self.start + x * self.step for x in range(i, i + m)))
            if sys.byteorder == "big":
                a.byteswap()
            yield a.tobytes()
            i += m


class RandomBytes:
    """A bytes value of `size` pseudo-random bytes from a seeded generator, produced in
    chunks (never whole in memory)."""

    def __init__(self, size, seed):
        self.size = size
        self.seed = seed

    @property
    def nbytes(self):
        return self.size

    def chunks(self):
        rng = random.Random(self.seed)
        left = self.size
        while left > 0:
            m = min(CHUNK, left)
            yield rng.getrandbits(8 * m).to_bytes(m, "little")
            left -= m


# -- keys -------------------------------------------------------------------------------

VALUE_KEY_PREFIX = b"flechefs-example-value-v1\n"


def _len(n):
    return str(n).encode() + b":"


def canonical(v):
    """A canonical, type-tagged byte encoding of a value (the input of its key)."""
    if v is None:
        return b"N"
    if v is True:
        return b"T"
    if v is False:
        return b"F"
    if isinstance(v, int):
        return b"i" + str(v).encode() + b";"
    if isinstance(v, float):
        if math.isnan(v):
            return b"fnan"
        return b"f" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        return b"s" + _len(len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return b"b" + _len(len(v)) + bytes(v)
    if isinstance(v, list):
        return b"l" + _len(len(v)) + b"".join(canonical(x) for x in v)
    if isinstance(v, tuple):
        return b"t" + _len(len(v)) + b"".join(canonical(x) for x in v)
    if isinstance(v, dict):
        return b"d" + _len(len(v)) + b"".join(canonical(k) + canonical(x) for k, x in v.items())
    if isinstance(v, (Float64Array, RandomBytes)):
        h = hashlib.sha256()
        for c in v.chunks():
            h.update(c)
        return b"x" + type(v).__name__.encode() + b":" + h.hexdigest().encode()
    raise TypeError("cannot encode %r" % type(v).__name__)


def _array_key_header(a):
    return VALUE_KEY_PREFIX + b"ndarray:<f8:(" + str(a.n).encode() + b",):C:"


def value_key(v):
    """The value key: SHA-256 of VALUE_KEY_PREFIX + canonical(v); for bytes, of the
    bytes; for arrays, of a header naming dtype and shape followed by the raw data."""
    if isinstance(v, (bytes, bytearray)):
        return hashlib.sha256(v).hexdigest()
    if isinstance(v, RandomBytes):
        h = hashlib.sha256()
        for c in v.chunks():
            h.update(c)
        return h.hexdigest()
    if isinstance(v, Float64Array):
        h = hashlib.sha256(_array_key_header(v))
        for c in v.chunks():
            h.update(c)
        return h.hexdigest()
    return hashlib.sha256(VALUE_KEY_PREFIX + canonical(v)).hexdigest()


def call_key(name, module, version, code_digest, arg_keys):
    """The call key: SHA-256 over name, module, version, code digest and the
    (argument name, value key) pairs in signature order (metadata and result do not
    enter it, as in fleche)."""
    doc = json.dumps(["flechefs-example-call-v1", name, module, version, code_digest,
                      [[n, k] for n, k in arg_keys]], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


# -- output: temporary file, optional HMAC trailer, optional gzip, rename ---------------


class AtomicSink:
    """Writes one cache file: bytes go through the HMAC (of the pickle stream) and
    gzip (of pickle + trailer), into `.NAME.UUID.tmp` in the target directory;
    commit() appends the 64-hex trailer, closes and renames to the final name."""

    def __init__(self, directory, tmp_name, gz, sign_key, level=9):
        self.directory = directory
        self.tmp = os.path.join(directory, ".%s.%s.tmp" % (tmp_name, uuid.uuid4().hex))
        self.file = open(self.tmp, "xb")
        # filename="" keeps the temporary name out of the gzip header (fleche's
        # gzip.compress writes none); a fixed mtime makes the files reproducible.
        self.out = (gzip.GzipFile(filename="", mode="wb", fileobj=self.file,
                                  compresslevel=level, mtime=GZIP_MTIME)
                    if gz else self.file)
        self.mac = hmac.new(sign_key, digestmod=hashlib.sha256) if sign_key else None
        self.written = 0

    def write(self, data):
        if self.mac:
            self.mac.update(data)
        self.out.write(data)
        self.written += len(data)

    def commit(self, name):
        if self.mac:
            self.out.write(self.mac.hexdigest().encode("ascii"))
        if self.out is not self.file:
            self.out.close()
        self.file.close()
        final = os.path.join(self.directory, name)
        os.replace(self.tmp, final)
        return final

    def abort(self):
        try:
            self.file.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def write_file(directory, name, data, gz, sign_key):
    """Writes one small cache file atomically."""
    if sign_key:
        data = data + hmac.new(sign_key, data, hashlib.sha256).hexdigest().encode("ascii")
    if gz:
        data = gzip.compress(data, compresslevel=9, mtime=GZIP_MTIME)
    tmp = os.path.join(directory, ".%s.%s.tmp" % (name, uuid.uuid4().hex))
    with open(tmp, "xb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(directory, name))


# -- streamed pickles, framed exactly like Python's pickler ------------------------------


def _uint8(n):
    return struct.pack("<Q", n)


def _pickle_int(n):
    """BININT1 / BININT2 / BININT / LONG1, as the pickler chooses."""
    return pickle.dumps(n, protocol=2)[2:-1]  # protocol 2: same int opcodes, no FRAME


def _short_str(s):
    b = s.encode("utf-8")
    assert len(b) < 256
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


MEMOIZE = b"\x94"


class Framer:
    """Emits a protocol 4/5 pickle the way Python's pickler frames it: opcodes gather
    in a frame that is committed (FRAME + 8-byte length, or bare when under 4 bytes)
    at the start of an object's save once it holds 64 KiB or more; a payload of 64 KiB
    or more is written outside any frame, after committing the current one."""

    def __init__(self, sink, protocol):
        self.sink = sink
        sink.write(b"\x80" + bytes([protocol]))
        self.frame = bytearray()

    def save(self, *ops):
        """One object's save: the boundary check, then its opcodes."""
        if len(self.frame) >= FRAME_TARGET:
            self.commit()
        for op in ops:
            self.frame += op

    def op(self, *ops):
        """Opcodes that continue the current save (no boundary check)."""
        for op in ops:
            self.frame += op

    def commit(self):
        if not self.frame:
            return
        if len(self.frame) >= FRAME_MIN:
            self.sink.write(b"\x95" + _uint8(len(self.frame)))
        self.sink.write(bytes(self.frame))
        self.frame = bytearray()

    def payload(self, header, size, chunks):
        """A bytes-like payload after its opcode header (the object's save has begun)."""
        if size < FRAME_TARGET:
            self.frame += header
            for c in chunks:
                self.frame += c
            return
        self.commit()
        self.sink.write(header)
        for c in chunks:
            self.sink.write(c)

    def stop(self):
        self.op(b".")
        self.commit()


def _bytes_header(n):
    if n < 256:
        return b"C" + bytes([n])  # SHORT_BINBYTES
    if n > 0xFFFFFFFF:
        return b"\x8e" + _uint8(n)  # BINBYTES8
    return b"B" + struct.pack("<I", n)  # BINBYTES


def stream_bytes_pickle(sink, value, protocol):
    """A bytes value, as pickle.dumps(bytes, protocol) writes it."""
    fr = Framer(sink, protocol)
    fr.save()
    fr.payload(_bytes_header(value.nbytes), value.nbytes, value.chunks())
    fr.op(MEMOIZE)
    fr.stop()


def stream_array_pickle(sink, a, protocol):
    """A 1-d float64 C-order array as numpy 1.x pickles it: protocol 5 as
    numpy.core.numeric._frombuffer(bytearray, dtype, shape, order), protocol 4 as
    numpy.core.multiarray._reconstruct(ndarray, (0,), b'b') + BUILD of
    (1, shape, dtype, False, bytes). Same opcodes, memo and framing as pickle.dumps."""
    fr = Framer(sink, protocol)
    shape = _pickle_int(a.n)

    # Python's pickler checks the frame size at the start of every save(), strings
    # of a global's module and name included: one fr.save() per such save.
    def global_(module, name):
        fr.save(module if isinstance(module, bytes) else _short_str(module))
        if not isinstance(module, bytes):
            fr.op(MEMOIZE)
        fr.save(_short_str(name), MEMOIZE)
        fr.op(b"\x93", MEMOIZE)  # STACK_GLOBAL

    def dtype_f8(numpy_ref):
        # numpy.dtype('f8', False, True) + BUILD (3, '<', None, None, None, -1, -1, 0)
        global_(numpy_ref, "dtype")
        fr.save(_short_str("f8"), MEMOIZE)
        fr.save(b"\x89")  # NEWFALSE
        fr.save(b"\x88")  # NEWTRUE
        fr.op(b"\x87", MEMOIZE, b"R", MEMOIZE)  # TUPLE3, REDUCE
        fr.save(b"(")
        fr.save(b"K\x03")
        fr.save(_short_str("<"), MEMOIZE)
        fr.save(b"N")
        fr.save(b"N")
        fr.save(b"N")
        fr.save(b"J\xff\xff\xff\xff")
        fr.save(b"J\xff\xff\xff\xff")
        fr.save(b"K\x00")
        fr.op(b"t", MEMOIZE, b"b")  # TUPLE, BUILD

    if protocol >= 5:
        global_("numpy.core.numeric", "_frombuffer")
        fr.save(b"(")
        fr.save()
        fr.payload(b"\x96" + _uint8(a.nbytes), a.nbytes, a.chunks())  # BYTEARRAY8
        fr.op(MEMOIZE)
        dtype_f8("numpy")
        fr.save()
        fr.save(shape)
        fr.op(b"\x85", MEMOIZE)  # TUPLE1
        fr.save(_short_str("C"), MEMOIZE)
        fr.op(b"t", MEMOIZE, b"R", MEMOIZE)
    else:
        global_("numpy.core.multiarray", "_reconstruct")
        global_("numpy", "ndarray")
        fr.save()
        fr.save(b"K\x00")
        fr.op(b"\x85", MEMOIZE)
        fr.save(b"C\x01b", MEMOIZE)
        fr.op(b"\x87", MEMOIZE, b"R", MEMOIZE)
        fr.save(b"(")
        fr.save(b"K\x01")
        fr.save()
        fr.save(shape)
        fr.op(b"\x85", MEMOIZE)
        dtype_f8(b"h\x03")  # BINGET 3: the memoized 'numpy'
        fr.save(b"\x89")
        fr.save()
        fr.payload(_bytes_header(a.nbytes), a.nbytes, a.chunks())
        fr.op(MEMOIZE)
        fr.op(b"t", MEMOIZE, b"b")
    fr.stop()


# -- the cache writer -------------------------------------------------------------------

SQL_SCHEMA = [
    # fleche's SQLAlchemy DDL, byte for byte as in the fixture's sqlite_master
    'CREATE TABLE calls (\n\t"key" VARCHAR(64) NOT NULL, \n\tname VARCHAR NOT NULL, \n'
    '\tmodule VARCHAR, \n\tversion VARCHAR, \n\tcode_digest VARCHAR(64), \n'
    '\tresult VARCHAR(64), \n\tPRIMARY KEY ("key")\n)',
    'CREATE TABLE arguments (\n\tid INTEGER NOT NULL, \n\tcall_key VARCHAR(64) NOT NULL, \n'
    '\tposition INTEGER NOT NULL, \n\tname VARCHAR NOT NULL, \n'
    '\tvalue VARCHAR(64) NOT NULL, \n\tPRIMARY KEY (id), \n'
    '\tCONSTRAINT uq_arguments_call_name UNIQUE (call_key, name), \n'
    '\tFOREIGN KEY(call_key) REFERENCES calls ("key") ON DELETE CASCADE\n)',
    'CREATE TABLE metadata (\n\tid INTEGER NOT NULL, \n\tcall_key VARCHAR(64) NOT NULL, \n'
    '\tname VARCHAR NOT NULL, \n\tdata JSON NOT NULL, \n\tPRIMARY KEY (id), \n'
    '\tCONSTRAINT uq_metadata_call_name UNIQUE (call_key, name), \n'
    '\tFOREIGN KEY(call_key) REFERENCES calls ("key") ON DELETE CASCADE\n)',
    "CREATE INDEX ix_metadata_name ON metadata (name)",
    "CREATE INDEX ix_metadata_call_key ON metadata (call_key)",
]

CONTAINERS = (list, tuple, dict)


def _is_deep(v):
    """fleche destructures a container that holds containers."""
    if isinstance(v, dict):
        return any(isinstance(x, CONTAINERS) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(isinstance(x, CONTAINERS) for x in v)
    return False


class CacheWriter:
    """Writes values and call records into CACHE_DIR. Values are written before the
    calls that refer to them; each value file is written once (content-addressed)."""

    def __init__(self, root, layout="files", protocol=5, gz=False, sign_key=None):
        self.root = root
        self.layout = layout
        self.protocol = protocol
        self.gz = gz
        self.sign_key = sign_key
        self.values_dir = os.path.join(root, "values")
        self.calls_dir = os.path.join(root, "calls")
        os.makedirs(self.values_dir, exist_ok=True)
        self.values = {}  # key -> {"type": ..., "size": bytes of the pickle stream}
        self.calls = []  # manifest entries
        self.db = None
        if layout == "files":
            os.makedirs(self.calls_dir, exist_ok=True)
        else:
            self.db_tmp = os.path.join(root, ".calls.db.%s.tmp" % uuid.uuid4().hex)
            self.db = sqlite3.connect(self.db_tmp)
            self.db.execute("PRAGMA journal_mode=WAL")
            for stmt in SQL_SCHEMA:
                self.db.execute(stmt)
            self.db.commit()
            self.rows_calls, self.rows_args, self.rows_meta = [], [], []

    # values
    def _pickled(self, obj):
        return pickle.dumps(obj, protocol=self.protocol)

    def put_value(self, v):
        """Stores v (destructured when deep); returns its key."""
        if isinstance(v, (Float64Array, RandomBytes)):
            return self._put_streamed(v)
        key = value_key(v)
        if key in self.values:
            return key
        if _is_deep(v):
            if isinstance(v, dict):
                items = {k: (Digest(self.put_value(x)) if isinstance(x, CONTAINERS) else x)
                         for k, x in v.items()}
                stored = DigestedDict(items=items)
            else:
                items = [Digest(self.put_value(x)) if isinstance(x, CONTAINERS) else x
                         for x in v]
                stored = DigestedIterable(items=tuple(items) if isinstance(v, tuple) else items)
        else:
            stored = v
        data = self._pickled(stored)
        write_file(self.values_dir, key, data, self.gz, self.sign_key)
        self.values[key] = {"type": type(v).__name__, "size": len(data),
                            "destructured": stored is not v}
        return key

    def _put_streamed(self, v):
        """A large value, written in chunks; its key (see value_key) is computed from
        the same chunks while they are written, so the data is generated once."""
        h = hashlib.sha256(_array_key_header(v) if isinstance(v, Float64Array) else b"")

        class Hashed:
            nbytes = v.nbytes

            @staticmethod
            def chunks():
                for c in v.chunks():
                    h.update(c)
                    yield c

        sink = AtomicSink(self.values_dir, "value", self.gz, self.sign_key,
                          level=9 if v.nbytes < (64 << 20) else 6)
        try:
            if isinstance(v, Float64Array):
                Hashed.n = v.n
                stream_array_pickle(sink, Hashed, self.protocol)
                kind = "ndarray"
            else:
                stream_bytes_pickle(sink, Hashed, self.protocol)
                kind = "bytes"
            key = h.hexdigest()
            if key in self.values:
                sink.abort()
                return key
            sink.commit(key)
        except BaseException:
            sink.abort()
            raise
        self.values[key] = {"type": kind, "size": sink.written, "destructured": False}
        return key

    # calls
    def put_call(self, name, args, result, metadata, module="__main__", version=None,
                 code_digest=None):
        """Stores one call record; args is a list of (name, value) in signature order,
        result a value or None (no result), metadata a dict of block -> dict."""
        arg_keys = [(n, self.put_value(v)) for n, v in args]
        result_key = None if result is None else self.put_value(result)
        key = call_key(name, module, version, code_digest, arg_keys)
        if self.layout == "files":
            md = collections.defaultdict(dict)
            for block, d in metadata.items():
                md[block] = dict(d)
            rec = DigestedCall(name=name,
                               arguments={n: Digest(k) for n, k in arg_keys},
                               result=None if result_key is None else Digest(result_key),
                               metadata=md, module=module, version=version,
                               code_digest=code_digest)
            write_file(self.calls_dir, key, self._pickled(rec), self.gz, self.sign_key)
        else:
            self.rows_calls.append((key, name, module,
                                    None if version is None else json.dumps(version),
                                    code_digest, result_key))
            for pos, (n, k) in enumerate(arg_keys):
                self.rows_args.append((key, pos, n, k))
            for block, d in metadata.items():
                self.rows_meta.append((key, block, json.dumps(d)))
            if len(self.rows_calls) >= 10000:
                self._flush_sql()
        self.calls.append({"key": key, "name": name, "module": module, "version": version,
                           "code_digest": code_digest, "arguments": dict(arg_keys),
                           "result": result_key})
        return key

    def _flush_sql(self):
        with self.db:
            self.db.executemany("INSERT INTO calls (\"key\", name, module, version, "
                                "code_digest, result) VALUES (?, ?, ?, ?, ?, ?)",
                                self.rows_calls)
            self.db.executemany("INSERT INTO arguments (call_key, position, name, value) "
                                "VALUES (?, ?, ?, ?)", self.rows_args)
            self.db.executemany("INSERT INTO metadata (call_key, name, data) "
                                "VALUES (?, ?, ?)", self.rows_meta)
        self.rows_calls, self.rows_args, self.rows_meta = [], [], []

    def close(self):
        """Finishes the SQL database (checkpointed, then renamed into place)."""
        if self.db is not None:
            self._flush_sql()
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.close()
            self.db = None
            for suffix in ("-wal", "-shm"):
                if os.path.exists(self.db_tmp + suffix):
                    os.unlink(self.db_tmp + suffix)
            os.replace(self.db_tmp, os.path.join(self.root, "calls.db"))

    def abort(self):
        if self.db is not None:
            self.db.close()
            self.db = None
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db_tmp + suffix):
                    os.unlink(self.db_tmp + suffix)

    def write_toml(self, name="example"):
        """fleche.toml naming this cache (relative paths: relative to this file)."""
        kind = "cloudpickle" if self.protocol >= 5 else "pickle"
        lines = ["# written by flechefs examples/make-cache.py",
                 "[default]", 'cache = "%s"' % name, "root = true", "",
                 "[%s]" % name,
                 'values.type = "%s"' % kind, 'values.root = "values"']
        if self.gz:
            lines.append("values.compress = true")
        if self.sign_key:
            lines.append('values.secret_key = ["%s"]' % self.sign_key.hex())
        if self.layout == "files":
            lines += ['calls.type = "%s"' % kind, 'calls.root = "calls"']
            if self.gz:
                lines.append("calls.compress = true")
            if self.sign_key:
                lines.append('calls.secret_key = ["%s"]' % self.sign_key.hex())
        else:
            lines += ['calls.type = "sql"', 'calls.url = "sqlite:///calls.db"']
        write_file(self.root, "fleche.toml", ("\n".join(lines) + "\n").encode(), False, None)


# -- what goes in: functions, metadata, presets -----------------------------------------


def code_digest_of(src):
    return hashlib.sha256(src.encode()).hexdigest()


STATS_DIGEST = code_digest_of("def stats(values): ...")


def runtime(i, walltime=None):
    start = BASE_TIME + i * 1.5
    wall = walltime if walltime is not None else 0.0005 + (i % 10) * 0.0001
    return {"timestart": start, "cputime": wall * 0.9, "systime": wall * 0.05,
            "timestop": start + wall, "walltime": wall}


def metadata(i, tags=None, walltime=None):
    md = {"runtime": runtime(i, walltime), "environment": dict(ENVIRONMENT)}
    if tags is not None:
        md["tags"] = tags
    return md


def f_add(w, i, a, b):
    return w.put_call("add", [("a", a), ("b", b)], a + b, metadata(i))


def f_greet(w, i, name, punctuation="!", shout=False):
    text = "Hello, %s%s" % (name, punctuation)
    return w.put_call("greet", [("name", name), ("punctuation", punctuation),
                                ("shout", shout)], text.upper() if shout else text,
                      metadata(i), version="1.0")


def f_stats(w, i, values):
    res = {"n": len(values), "sum": sum(values), "min": min(values), "max": max(values),
           "mean": sum(values) / len(values)}
    return w.put_call("stats", [("values", values)], res, metadata(i), version=2,
                      code_digest=STATS_DIGEST)


def f_make_array(w, i, n, scale, walltime=None):
    return w.put_call("make_array", [("n", n), ("scale", scale)],
                      Float64Array(n, 0.0, scale), metadata(i, walltime=walltime))


def f_nested(w, i, depth):
    tree = [[k, [10 * k, 100 * k]] for k in range(depth)]
    value = {"depth": depth, "tree": tree, "label": ("leaf", depth)}
    return w.put_call("nested", [("depth", depth)], value, metadata(i))


def f_fit(w, i):
    tags = {"experiment": "nan-tags", "loss": float("nan"), "best": float("inf"),
            "worst": float("-inf"), "epochs": 3}
    return w.put_call("fit", [("lr", 0.1), ("epochs", 3)], [0.9, 0.5, 0.25],
                      metadata(i, tags=tags))


NAMES = ["Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Radia"]


def synthetic(w, n):
    """n deterministic calls of add, greet, stats and make_array, all distinct."""
    for i in range(n):
        j = i // 4
        f = i % 4
        if f == 0:
            f_add(w, i, j, (i * 7919) % 1000)
        elif f == 1:
            f_greet(w, i, "%s %d" % (NAMES[j % len(NAMES)], j), "!?."[j % 3], j % 2 == 1)
        elif f == 2:
            f_stats(w, i, [i % 17, i % 13, i % 11, j])
        else:
            f_make_array(w, i, j % 64 + 1, 0.25 * (j + 1))


def demo(w):
    """A handful of friendly calls, one of each kind the format has."""
    f_add(w, 0, 2, 3)
    f_add(w, 1, 40, 2)
    f_greet(w, 2, "Ada")
    f_greet(w, 3, "Grace", "?", True)
    f_stats(w, 4, [3, 1, 4, 1, 5, 9, 2, 6])
    f_make_array(w, 5, 5, 0.5)
    f_nested(w, 6, 3)
    w.put_call("blob", [("size", 64)], bytes(range(64)), metadata(7))
    w.put_call("nothing", [("x", 42)], None, {}, code_digest=code_digest_of("def nothing(x): ..."))
    f_fit(w, 9)


# -- command line -----------------------------------------------------------------------


def parse_size(text):
    """An integer byte count, optionally with a K/M/G/T suffix (powers of 1024;
    "1G", "1GiB" and "1073741824" are the same)."""
    t = text.strip().lower().rstrip("b").rstrip("i")
    mult = 1
    if t and t[-1] in "kmgt":
        mult = 1024 ** ("kmgt".index(t[-1]) + 1)
        t = t[:-1]
    try:
        n = int(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError("not a size: '%s'" % text) from None
    if n < 0:
        raise argparse.ArgumentTypeError("negative size: '%s'" % text)
    return n


def parse_key(text):
    try:
        b = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a hex key: '%s'" % text) from None
    if not b:
        raise argparse.ArgumentTypeError("empty key")
    return b


def main(argv=None):
    if sys.version_info < (3, 8):
        sys.exit("make-cache.py: needs Python 3.8 or newer (pickle protocol 5)")
    p = argparse.ArgumentParser(
        prog="make-cache.py",
        description="Write a fleche 0.20 cache (readable by fleche itself) using only "
                    "the Python standard library.")
    p.add_argument("cache_dir", metavar="CACHE_DIR")
    p.add_argument("--layout", choices=("files", "sql"), default="files",
                   help="call records as files in calls/ (default) or rows in calls.db")
    p.add_argument("--protocol", type=int, choices=(4, 5), default=5,
                   help="pickle protocol: 5 as cloudpickle (default), 4 as pickle")
    p.add_argument("--gzip", action="store_true", help="gzip every file (compress = true)")
    p.add_argument("--sign-key", type=parse_key, metavar="HEX",
                   help="append HMAC-SHA256(key, pickle) as 64 hex characters to every file")
    p.add_argument("--demo", action="store_true",
                   help="a handful of friendly calls (the default without other content)")
    p.add_argument("--calls", type=int, default=0, metavar="N",
                   help="N synthetic calls of add, greet, stats and make_array")
    p.add_argument("--big-value", type=parse_size, metavar="BYTES",
                   help="one call blob(size) whose result is a bytes value of BYTES bytes "
                        "(K/M/G suffixes allowed), written streaming")
    p.add_argument("--big-array", type=parse_size, metavar="N",
                   help="one call make_array(n=N, scale=1.0) whose result is a float64 "
                        "array of N elements (0.0, 1.0, ...), written streaming")
    p.add_argument("--destructured", action="store_true",
                   help="a call nested(depth) whose result is a nested dict, destructured")
    p.add_argument("--nan-tags", action="store_true",
                   help="a call fit() whose metadata tags hold nan, inf and -inf")
    p.add_argument("--seed", type=int, default=1, help="seed of --big-value's bytes")
    p.add_argument("--manifest", metavar="FILE",
                   help="write the keys written, as JSON, to FILE ('-': stdout)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty CACHE_DIR, replacing calls/, calls.db, "
                        "values/ and fleche.toml there")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    a = p.parse_args(argv)
    if a.calls < 0:
        p.error("--calls must not be negative")
    if not (a.calls or a.big_value is not None or a.big_array is not None
            or a.destructured or a.nan_tags):
        a.demo = True

    root = os.path.abspath(a.cache_dir)
    if os.path.exists(root) and not os.path.isdir(root):
        p.error("'%s' exists and is not a directory" % a.cache_dir)
    if os.path.isdir(root) and os.listdir(root):
        if not a.force:
            print("make-cache.py: refusing to write into non-empty '%s' (use --force)"
                  % a.cache_dir, file=sys.stderr)
            return 2
        for name in ("calls", "values"):
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
        for name in ("calls.db", "calls.db-wal", "calls.db-shm", "fleche.toml"):
            path = os.path.join(root, name)
            if os.path.lexists(path):
                os.unlink(path)
    os.makedirs(root, exist_ok=True)

    install_standins()
    w = CacheWriter(root, a.layout, a.protocol, a.gzip, a.sign_key)
    extra = {}
    try:
        i = 1000000  # metadata times of the extras come after the synthetic ones
        if a.demo:
            demo(w)
        if a.destructured and not a.demo:
            f_nested(w, i, 3)
        if a.nan_tags and not a.demo:
            f_fit(w, i + 1)
        if a.big_value is not None:
            v = RandomBytes(a.big_value, a.seed)
            w.put_call("blob", [("size", a.big_value)], v, metadata(i + 2, walltime=1.0))
            extra["big_value"] = w.calls[-1]["result"]
        if a.big_array is not None:
            f_make_array(w, i + 3, a.big_array, 1.0, walltime=1.0)
            extra["big_array"] = w.calls[-1]["result"]
        synthetic(w, a.calls)
        w.close()
        w.write_toml()
    except BaseException:
        w.abort()
        raise

    manifest = {"cache_dir": root, "layout": a.layout, "protocol": a.protocol,
                "gzip": a.gzip, "signed": bool(a.sign_key), "calls": w.calls,
                "values": w.values}
    manifest.update(extra)
    if a.manifest == "-":
        json.dump(manifest, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif a.manifest:
        with open(a.manifest, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
    if not a.quiet and a.manifest != "-":
        print("make-cache.py: wrote %d calls and %d values to '%s' (layout %s, protocol %d%s%s)"
              % (len(w.calls), len(w.values), a.cache_dir, a.layout, a.protocol,
                 ", gzip" if a.gzip else "", ", signed" if a.sign_key else ""))
        for k, v in extra.items():
            print("%s: %s" % (k.replace("_", " "), v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
