"""FlechefsCache: a fleche cache whose calls and values are served by flechefs-server.

The server runs on this machine (host None) or on `host` through the OpenSSH client,
started as fleche's own SshCache starts its remote (`ssh [ssh_options] host`, then
`cd workdir && setup... && exec server ...`, or the server's argv alone when there is
nothing to run before it), so ~/.ssh/config, ControlMaster and 2FA behave as for
SshCache. Nothing is unpickled on the remote and no pickle is sent to it: the server
answers call records as msgpack and values as the stored pickle bytes, read in
ranges and unpickled here with the serializer the cache was written with.

Answers are those of fleche's own caches: a key not stored is KeyError, a prefix
matching several keys is fleche's AmbiguousDigestError, save and evict on a
read-only cache raise fleche's Rejected.
"""

import collections
import itertools
import logging
import pathlib
import random
import shlex
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from fleche import digest as _digest
from fleche.caches import BaseCache, Rejected
from fleche.call import Call, DigestedCall, LazyCall, PreparedCall, QueryCall
from fleche.digest import Digest
from fleche.storage.base import AmbiguousDigestError, SaveError, StorageBackend, ValueMixin
from fleche.storage.destructuring import Digested, DestructuringMixin

from . import __version__
from ._connection import PROTOCOL, Connection, ServerError

logger = logging.getLogger("flechefs")

SERIALIZERS = ("pickle", "cloudpickle", "dill")
# requests of one ranged value read, or of one page of query loads, in flight at once
_WINDOW = 16


def _serializer(name):
    """(dumps, loads) of a serializer fleche names."""
    if name == "cloudpickle":
        import cloudpickle
        return cloudpickle.dumps, cloudpickle.loads
    if name == "dill":
        import dill
        return dill.dumps, dill.loads
    import pickle
    return pickle.dumps, pickle.loads


def _loads_for(name):
    return _serializer(name)[1]


def _to_wire(v):
    """A metadata value as the server answers it for the pickled record
    (rpc/PROTOCOL.md section 3): ints beyond 64 bits as {"$int": digits}, other
    objects as {"$object": "module.qualname"}."""
    if isinstance(v, dict):
        return {k: _to_wire(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_wire(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and not -(1 << 63) <= v < (1 << 64):
        return {"$int": str(v)}
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return v
    return {"$object": "%s.%s" % (type(v).__module__, type(v).__qualname__)}


@dataclass(frozen=True)
class _StoredForms(DestructuringMixin, ValueMixin, StorageBackend):
    """A value storage that keeps the stored form of every value fleche's value
    storage would write (destructured as fleche destructures, before gzip and
    signing), by key, for uploading."""

    dumps: Callable = None
    forms: dict = field(default_factory=dict)
    __hash__ = object.__hash__

    def put(self, value, key):
        if str(key) not in self.forms:
            self.forms[str(key)] = self.dumps(value)
        return key

    def get(self, key):
        raise KeyError(key)

    def list(self):
        return [Digest(k) for k in self.forms]

    def _evict(self, key):
        self.forms.pop(str(key), None)

    def _contains(self, key):
        return str(key) in self.forms


def _from_wire(v):
    """A metadata value as the server sends it (rpc/PROTOCOL.md section 3) back to
    the Python value: {"$int": digits} is the int; other values are kept."""
    if isinstance(v, dict):
        if len(v) == 1 and isinstance(v.get("$int"), str):
            try:
                return int(v["$int"])
            except ValueError:
                return v
        return {k: _from_wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_wire(x) for x in v]
    return v


def _key_error(e, key):
    """The exception fleche raises where the server answered `e` for `key`."""
    if e.name == "AMBIGUOUS":
        return AmbiguousDigestError(e.error.get("message", str(e)))
    if e.name in ("ENOENT", "EINVAL", "EBADMSG"):
        # fleche: KeyError for a missing key, a malformed or too short prefix and a
        # value whose signature fails
        return KeyError(key, e.error.get("message", str(e)))
    return e


class _TempPath(type(pathlib.Path())):
    """A path whose temporary folder is removed once the path object is gone (for
    a fleche without its own TempPath; paths derived from it do not keep the folder:
    _temp_child hands the folder on to the one path it answers)."""

    @classmethod
    def mkdtemp(cls):
        root = tempfile.TemporaryDirectory(suffix="fleche", ignore_cleanup_errors=True)
        path = cls(root.name)
        path._temp_root = root
        return path


def _temp_child(temp_path, name):
    """<a new temporary folder>/name, the path keeping the folder alive."""
    root = temp_path.mkdtemp()
    child = root / name
    if getattr(child, "_temp_root", None) is None:
        object.__setattr__(child, "_temp_root", root._temp_root)
    return child


def _path_records():
    """fleche's stored file and folder records (fleche.storage.paths FileBlob,
    DirectoryBlob) and its temporary path class, when that module is loaded (a
    fleche that stores paths has imported it); else None."""
    paths = sys.modules.get("fleche.storage.paths")
    if paths is None or not hasattr(paths, "FileBlob") or not hasattr(paths, "DirectoryBlob"):
        return None
    return paths.FileBlob, paths.DirectoryBlob, getattr(paths, "TempPath", _TempPath)


class _ValueLoader:
    """What a destructured value's mend() reads its parts through."""

    def __init__(self, cache):
        self._cache = cache

    def load(self, key):
        return self._cache.load_value(key)


@dataclass(frozen=True)
class FlechefsCache(BaseCache):
    """A fleche cache served by flechefs-server.

    Args:
        host: None to run the server on this machine, else an ssh destination
            (`user@host` or a ~/.ssh/config alias).
        root: the cache directory (`--root`), or None for the cache named in the
            server's fleche.toml.
        cache_name: the cache's name in the server's fleche.toml (`--cache`).
        server: the server program (on the remote's PATH, or a path).
        ssh_options: arguments between `ssh` and host.
        setup_commands: shell snippets run before the server, joined with `&&`.
        workdir: the directory to `cd` into before the server starts (fleche.toml is
            searched from there, a relative root is relative to it).
        server_args: more arguments for the server (`--read-only`, `--key-file F`).
        serializer: the serializer values were written with ("pickle",
            "cloudpickle" or "dill") when the server does not report it.
        max_size: the most calls the cache keeps, as fleche's SizeLimitedCache: once
            a save makes more, calls picked at random (_pick_eviction_target) are
            evicted, their values left. None: the cache's `max_size` in the
            server's fleche.toml, if any.
        save_ahead: how many saves may be unconfirmed at once. 0 (the default):
            save returns once the server has stored the call. N > 0: save returns
            once its requests are sent, while at most N saves are unanswered, so
            saves on a slow link overlap instead of taking a round trip each; a
            save that failed is raised (naming its key) by the next operation on
            this cache, by flush() or by close(), and every other operation waits
            for the saves before it (a load sees what was saved).
    """

    host: "str | None" = None
    root: "str | None" = None
    cache_name: "str | None" = None
    server: str = "flechefs-server"
    ssh_options: "tuple[str, ...]" = ()
    setup_commands: "tuple[str, ...]" = ()
    workdir: "str | None" = None
    server_args: "tuple[str, ...]" = ()
    serializer: "str | None" = None
    max_size: "int | None" = None
    save_ahead: int = 0
    _conn: Connection = field(init=False, repr=False, compare=False, hash=False)
    _info_cache: "dict | None" = field(init=False, default=None, repr=False,
                                       compare=False, hash=False)
    _uploaded: list = field(init=False, default_factory=lambda: [0], repr=False,
                            compare=False, hash=False)
    # the call keys a size limit counts (SizeLimitedMixin's _keys): [None] until the
    # first save under a limit lists the cache's calls
    _size_keys: list = field(init=False, default_factory=lambda: [None], repr=False,
                             compare=False, hash=False)
    # guards _size_keys and _uploading
    _lock: Any = field(init=False, default_factory=threading.RLock, repr=False,
                            compare=False, hash=False)
    # value key -> Event set when the one thread uploading it is done: the server
    # keeps one temporary file per key and connection, so two uploads of a key at
    # once on the one connection would spoil each other
    _uploading: dict = field(init=False, default_factory=dict, repr=False,
                             compare=False, hash=False)
    _ahead: "_SavesAhead" = field(init=False, default_factory=lambda: _SavesAhead(),
                                  repr=False, compare=False, hash=False)

    def __post_init__(self):
        for name in ("ssh_options", "setup_commands", "server_args"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.serializer is not None and self.serializer not in SERIALIZERS:
            raise ValueError("unknown serializer %r: one of %s"
                             % (self.serializer, ", ".join(SERIALIZERS)))
        label = "flechefs-server" if self.host is None else "flechefs-server on " + self.host
        object.__setattr__(self, "_conn", Connection(self.command(), label,
                                                     "flechefs-python " + __version__))

    # -- the command

    def command(self) -> "list[str]":
        """The argv that starts the server (ssh's, for a remote host)."""
        server_argv = [self.server, "--serve"]
        if self.root is not None:
            server_argv += ["--root", self.root]
        if self.cache_name is not None:
            server_argv += ["--cache", self.cache_name]
        server_argv += list(self.server_args)
        prefix = []
        if self.workdir is not None:
            prefix.append("cd %s" % shlex.quote(self.workdir))
        prefix.extend(self.setup_commands)
        if prefix:
            line = " && ".join(prefix + ["exec " + " ".join(shlex.quote(a) for a in server_argv)])
            remote = [line] if self.host is not None else ["/bin/sh", "-c", line]
        else:
            remote = server_argv
        if self.host is None:
            return remote
        return ["ssh", *self.ssh_options, self.host, *remote]

    # -- lifecycle

    def _hello(self) -> dict:
        fresh = self._conn.hello is None
        hello = self._conn.ensure_open()
        if fresh:
            _warn_on_skew(hello)
        return hello

    def _call(self, method, *params):
        self._hello()
        if self._ahead.entries:
            self.flush()
        return self._conn.call(method, *params)

    def flush(self) -> None:
        """Waits for every save made with save_ahead; raises the first that failed
        (a later operation is not told again)."""
        self._ahead.settle(self._advance_save, 0)

    def reconnect(self) -> None:
        """Ends the server (or ssh); the next operation starts a new one. Never done
        automatically: that could prompt for a password or 2FA again. Saves still
        unconfirmed are waited for first; their failures are logged."""
        self._flush_logged()
        object.__setattr__(self, "_info_cache", None)
        self._conn.reconnect()

    def close(self) -> None:
        """Waits for unconfirmed saves (raising the first that failed, once the
        server has ended), then ends the server (or ssh) if it runs."""
        try:
            self.flush()
        finally:
            self._conn.close()

    def _flush_logged(self):
        try:
            self.flush()
        except Exception as e:  # noqa: BLE001 (reported here, not raised)
            logger.error("a save made ahead failed: %s", e)

    def info(self, *, refresh: bool = True) -> "dict[str, Any]":
        """The server's `hello` answer (program, version, hostname, pid, cwd,
        layout, config) updated with a fresh `info` (counts, size, read_only)."""
        info = self._info_cache
        if refresh or info is None:
            info = dict(self._hello())
            info.update(self._call("info"))
            object.__setattr__(self, "_info_cache", info)
        return info

    @property
    def read_only(self) -> bool:
        """Whether the server refuses save and evict."""
        return bool(self._hello().get("read_only", False))

    def _first_layer(self) -> dict:
        """The configuration of the cache (of a stack: its first layer, the one
        saves go to) as hello reports it; {} when not reported."""
        cache = (self._hello().get("config") or {}).get("cache")
        if isinstance(cache, list) and cache:
            cache = cache[0]
        return cache if isinstance(cache, dict) else {}

    def serializer_name(self) -> str:
        """The serializer values are read with: the server's report, else the
        `serializer` argument, else pickle."""
        hello = self._hello()
        layout = hello.get("layout") or {}
        values = layout.get("values") or {}
        name = values.get("serializer")
        if name is None:
            name = (self._first_layer().get("values") or {}).get("type")
        if name not in SERIALIZERS:
            name = self.serializer or "pickle"
        return name

    # -- reads

    def _record(self, r) -> DigestedCall:
        if r.get("metadata_error"):
            logger.warning("call %s: the server cannot send its metadata: %s",
                           r.get("key"), r["metadata_error"].get("message"))
        return DigestedCall(
            name=r["name"],
            arguments={a: Digest(k) for a, k in r.get("arguments") or []},
            result=None if r.get("result") is None else Digest(r["result"]),
            metadata=_from_wire(r.get("metadata") or {}),
            module=r.get("module"),
            version=r.get("version"),
            code_digest=r.get("code_digest"),
        )

    def load(self, key: str) -> LazyCall:
        try:
            r = self._call("load", str(key))
        except ServerError as e:
            raise _key_error(e, key) from None
        return self._record(r).fetch(self)

    def contains(self, key: str) -> bool:
        try:
            return bool(self._call("contains", str(key)))
        except ServerError as e:
            raise _key_error(e, key) from None

    def expand(self, key: "Digest | str") -> Digest:
        if len(key) >= _digest.DIGEST_LENGTH:  # as fleche: a full key, unlooked at
            return Digest(str(key))
        try:
            return Digest(self._call("expand", str(key)))
        except ServerError as e:
            raise _key_error(e, key) from None

    def _shrink(self, *keys: "Digest | str") -> "tuple[Digest, ...]":
        self._hello()
        if self._ahead.entries:
            self.flush()
        pending = [(k, self._conn.send("shrink", str(k))) for k in keys]
        out = []
        for k, p in pending:
            try:
                out.append(Digest(p.wait()))
            except ServerError as e:
                raise _key_error(e, k) from None
        return tuple(out)

    def load_value(self, key: str) -> Any:
        data = self.load_value_bytes(key)
        value = _loads_for(self.serializer_name())(data)
        if isinstance(value, Digested):
            return value.mend(_ValueLoader(self))
        return self._materialised(value, key)

    def _materialised(self, value, key):
        """A stored file or folder record as fleche's path storage loads it: a file
        at <new temporary folder>/<its name>, a folder at <new temporary
        folder>/<key> with its children by their names; any other value as it is."""
        records = _path_records()
        if records is None:
            return value
        file_blob, directory_blob, temp_path = records
        if isinstance(value, file_blob):
            target = _temp_child(temp_path, value.name)
            target.write_bytes(self.load_value(value.content))
            return target
        if isinstance(value, directory_blob):
            target = _temp_child(temp_path, str(key))
            self._materialise_folder(target, value, directory_blob)
            return target
        return value

    def _materialise_folder(self, path, blob, directory_blob):
        path.mkdir()
        for name, ref in blob.contents.items():
            child = _loads_for(self.serializer_name())(self.load_value_bytes(ref))
            if isinstance(child, directory_blob):
                self._materialise_folder(path / name, child, directory_blob)
            elif isinstance(child, (bytes, bytearray)):
                (path / name).write_bytes(child)
            else:
                raise TypeError("directory entry %r resolved to unexpected type %s"
                                % (name, type(child).__name__))

    def load_value_bytes(self, key: str) -> bytearray:
        """The stored pickle of a value (after gunzip and the signature check), read
        in ranges of the server's max_read, several in flight."""
        try:
            st = self._call("stat_value", str(key), None)
        except ServerError as e:
            raise _key_error(e, key) from None
        full, size = st["key"], st["size"]
        step = int(self._hello().get("max_read") or (1 << 20))
        data = bytearray(size)
        view = memoryview(data)
        pending = collections.deque()
        try:
            for off in range(0, size, step):
                n = min(step, size - off)
                pending.append((off, n, self._conn.send("load_value", full, off, step, None,
                                                        sink=view[off:off + n])))
                while len(pending) >= _WINDOW:
                    self._range_done(full, *pending.popleft(), view)
            while pending:
                self._range_done(full, *pending.popleft(), view)
        except ServerError as e:
            raise _key_error(e, key) from None
        return data

    @staticmethod
    def _range_done(full, off, n, p, view):
        """Waits for one range of load_value_bytes: read into its place by the
        connection, or (a small answer) copied there."""
        got = p.wait()
        if isinstance(got, (bytes, bytearray)):
            take = got[:n]
            view[off:off + len(take)] = take
            got = len(got)
        if got != n:
            raise ServerError({"errno": 5, "name": "EIO",
                               "message": "value %s: read %d bytes of %d at %d"
                                          % (full, got, n, off)})

    def _query(self, call: QueryCall) -> Iterable[LazyCall]:
        template, exact = self._server_template(call)
        after = None
        while True:
            try:
                page = self._call("query", template, after, None, False)
            except ServerError as e:
                raise _key_error(e, None) from None
            keys = page.get("keys") or []
            for i in range(0, len(keys), _WINDOW):
                batch = [(k, self._conn.send("load", k)) for k in keys[i:i + _WINDOW]]
                for k, p in batch:
                    try:
                        dc = self._record(p.wait())
                    except ServerError as e:
                        if e.name != "ENOENT":  # evicted since the query: not a match
                            logger.error("Failed to load matching call %s with %s! "
                                         "Indicates corrupt cache.", k, e)
                        continue
                    # as fleche's call storages: values compared by digest, unloaded
                    if exact or call.matches(dc):
                        yield dc.fetch(self)
            if page.get("complete") or not keys:
                return
            after = keys[-1]

    def _server_template(self, call: QueryCall):
        """The part of `call` the server's query template matches, and whether it is
        all of it (else the calls it answers are filtered with call.matches)."""
        t = {}
        exact = call.code_digest is None and call.result is None
        if call.name is not None:
            if isinstance(call.name, str):
                t["name"] = str(call.name)
            else:
                exact = False
        if call.module is not None:
            t["module"] = call.module
        if call.version is not None:
            t["version"] = call.version
        if call.arguments:
            args = {}
            for k, v in call.arguments.items():
                if v is None:
                    continue
                if isinstance(v, Digest):
                    args[k] = str(self.expand(v))
                else:
                    args[k] = str(_digest.digest(v))
            if args:
                t["arguments"] = args
        if call.metadata:
            meta = {}
            for block, filters in call.metadata.items():
                sent = {}
                for kk, vv in (filters or {}).items():
                    if isinstance(vv, (str, float)) or (isinstance(vv, int)
                                                         and not isinstance(vv, bool)):
                        sent[kk] = vv
                    else:
                        exact = False
                meta[block] = sent
            t["metadata"] = meta
        return t, exact

    # -- writes

    def evict(self, key: "str | Digest") -> None:
        if self.read_only:
            raise Rejected("Cannot evict from a read-only remote cache", self, key)
        try:
            self._call("evict", str(key))
        except ServerError as e:
            if e.name == "EROFS":
                raise Rejected("Cannot evict from a read-only remote cache", self, key) from None
            raise _key_error(e, key) from None
        with self._lock:
            if self._size_keys[0] is not None:
                self._size_keys[0].discard(str(key))

    @property
    def bytes_uploaded(self) -> int:
        """The bytes of values this object has sent to the server (put_value data)."""
        return self._uploaded[0]

    def _stored_forms(self) -> _StoredForms:
        hello = self._hello()
        depth = 1
        cache = (hello.get("config") or {}).get("cache")
        if isinstance(cache, list) and cache:
            cache = cache[0]
        if isinstance(cache, dict):
            d = (cache.get("values") or {}).get("remaining_depth")
            if isinstance(d, int) and not isinstance(d, bool):
                depth = d
        return _StoredForms(remaining_depth=depth,
                            dumps=_serializer(self.serializer_name())[0])

    def _probe(self, keys: "Iterable[str]") -> list:
        """Asks, all at once, which of these values the server holds: an empty first
        chunk of each answers "exists" (see _upload). It starts the value's upload
        on this connection afresh, so only the save that claims a key probes it."""
        self._hello()
        return [(k, self._conn.send("put_value", k, 0, b"", False)) for k in keys]

    def _upload(self, forms: "dict[str, bytes]") -> None:
        """Uploads the values the server lacks, waiting for each step of _Upload in
        turn."""
        claims = _Claims(self, forms)
        try:
            upload = _Upload(self, forms, self._probe(claims.mine), claims)
            while not upload.advance():
                pass
        except ServerError as e:
            if e.name == "EROFS":
                raise Rejected(str(e), self) from None
            raise
        finally:
            claims.release()

    def _wait_upload_elsewhere(self, done: threading.Event) -> None:
        """Waits for another save's upload of a value. Its save may be one made
        ahead that nobody is moving on: the saves ahead are moved on meanwhile, when
        no other thread is doing so."""
        while not done.wait(0.05):
            self._ahead.poke(self._advance_save)

    def _record_map(self, digested: DigestedCall, key: str) -> dict:
        return {
            "key": str(key), "name": digested.name, "module": digested.module,
            "version": digested.version,
            "code_digest": None if digested.code_digest is None else str(digested.code_digest),
            "arguments": [[a, str(d)] for a, d in digested.arguments.items()],
            "result": None if digested.result is None else str(digested.result),
            "metadata": _to_wire(dict(digested.metadata or {})),
        }

    def prepare(self, call: Call) -> PreparedCall:
        """Stores the argument values now (as fleche's Cache does, before the body
        runs); a read-only server gets fleche's digest-only admission."""
        if self.read_only:
            return super().prepare(call)
        forms = self._stored_forms()
        digested = call.stash(forms)
        self._upload(forms.forms)
        return PreparedCall(digested=digested, cache=self)

    def save(self, call: "PreparedCall | Call | DigestedCall") -> str:
        """Stores the call's values the server lacks, then its record; answers the
        call's key. Rejected when the server is read-only or refuses a value. With
        save_ahead, returns once the requests are sent (see the class)."""
        if self.read_only:
            raise Rejected(self, call)
        forms = self._stored_forms()
        try:
            if isinstance(call, PreparedCall):
                digested = call.resolve(forms)
            elif isinstance(call, Call):
                digested = call.stash(forms)
            else:
                digested = call
        except SaveError as e:
            raise Rejected(e) from None
        key = digested.to_lookup_key()
        record = None
        if ((self._hello().get("layout") or {}).get("calls") or {}).get("type") != "sql":
            # the record as fleche's file call storage pickles it
            record = forms.dumps(DigestedCall(
                name=digested.name, arguments=dict(digested.arguments),
                result=digested.result, metadata=digested.metadata, module=digested.module,
                version=digested.version, code_digest=digested.code_digest))
        # Sent with the probes: when every value is there already (a call saved
        # again), the record is stored in the same round trip; else it is ENOENT and
        # sent again once the values are.
        record_map = self._record_map(digested, key)
        with self._lock:
            # claimed and queued at once, so that a save ahead waiting for another's
            # upload is always queued after it (settle finishes the oldest first)
            claims = _Claims(self, forms.forms)
            probes = self._probe(k for k in forms.forms if k in claims.mine)
            saving = self._conn.send("save", record_map, record)
            entry = _SaveAhead(key, forms.forms, probes, saving, record_map, record, claims)
            if self.save_ahead > 0:
                self._ahead.add(entry)
        if self.save_ahead <= 0:
            self._advance_save(entry)
        else:
            self._ahead.settle(self._advance_save, self.save_ahead)
        self._keep_size_limit(key)
        return key

    def _advance_save(self, e: "_SaveAhead", block: bool = True) -> bool:
        """Moves save e on: once its record is stored, True. Each step waits for
        the answers of the one before (the record sent with the probes; when that
        is ENOENT, the values' upload, _Upload; then the record again); with block
        False it returns False instead of waiting for an answer not there yet."""
        try:
            while True:
                if not block and not e.answered():
                    return False
                if e.resave is not None:
                    e.resave.wait()
                    e.claims.release()
                    return True
                if e.upload is not None:
                    if e.upload.advance():
                        e.resave = self._conn.send("save", e.record_map, e.record)
                    continue
                try:
                    e.saving.wait()
                    e.claims.release()
                    return True
                except ServerError as err:
                    if err.name != "ENOENT":
                        raise
                e.upload = _Upload(self, e.forms, e.probes, e.claims)
        except ServerError as err:
            e.claims.release()
            if err.name == "EROFS":
                raise Rejected(str(err), self, e.key) from None
            raise
        except BaseException:
            e.claims.release()
            raise

    # -- the size limit, as fleche's SizeLimitedMixin

    def size_limit(self) -> "int | None":
        """The `max_size` argument, else the first layer's `max_size` in the server's
        fleche.toml (hello's config), else None."""
        if self.max_size is not None:
            return self.max_size
        limit = self._first_layer().get("max_size")
        return limit if isinstance(limit, int) and not isinstance(limit, bool) else None

    def _all_call_keys(self) -> "set[str]":
        keys, after = set(), None
        while True:
            page = self._call("query", {}, after, None, False)
            got = page.get("keys") or []
            keys.update(got)
            if page.get("complete") or not got:
                return keys
            after = got[-1]

    def _pick_eviction_target(self, keys: "list[str]") -> str:
        """The call to evict (fleche's default policy: uniformly at random)."""
        return random.choice(keys)

    def _keep_size_limit(self, key: str) -> None:
        limit = self.size_limit()
        if limit is None:
            return
        with self._lock:
            keys = self._size_keys[0]
            if keys is None:
                keys = self._size_keys[0] = self._all_call_keys()
            keys.add(str(key))
            while len(keys) > limit:
                target = self._pick_eviction_target(sorted(keys))
                try:
                    self.evict(target)
                except KeyError:  # evicted by another client meanwhile
                    pass
                keys.discard(target)


class _Claims:
    """Which values of a save this one uploads and which another save is uploading
    on the same connection: the server keeps one temporary file per value key and
    connection, so two uploads of one key at once would spoil each other. A key is
    claimed by one save at a time, until it releases it (once its values are
    stored, or it failed); the others wait for it before saving their record."""

    def __init__(self, cache, keys):
        self._cache = cache
        self.mine, self.theirs = set(), {}
        with cache._lock:
            for k in keys:
                if k in cache._uploading:
                    self.theirs[k] = cache._uploading[k]
                else:
                    cache._uploading[k] = threading.Event()
                    self.mine.add(k)

    def release(self):
        with self._cache._lock:
            for k in self.mine:
                self._cache._uploading.pop(k).set()
            self.mine = set()


class _Done:
    """An upload claimed by another save, waited on as an answer is."""

    def __init__(self, cache, event):
        self._cache, self._event = cache, event

    def done(self):
        return self._event.is_set()

    def wait(self):
        self._cache._wait_upload_elsewhere(self._event)


class _Upload:
    """The upload of the values of forms the server lacks, as steps that each send
    requests without waiting (advance): the probes' answers tell which values are
    missing among those this save claims (the only ones it probes); their chunks go
    in flight together, and each value's final chunk once the others of all values
    are answered (the server checks the value whole then); the values another save
    claims are waited for."""

    def __init__(self, cache, forms, probes, claims):
        self._cache = cache
        self._forms = forms
        self._probes = probes
        self._claims = claims
        self._finals = None
        self.waiting = [p for _, p in probes]

    def _send(self, key, off, data, final):
        self._cache._uploaded[0] += len(data)
        return self._cache._conn.send("put_value", key, off, data, final)

    def advance(self) -> bool:
        """Waits for the answers the upload waits on and sends its next requests;
        True once every value is there."""
        for p in self.waiting:
            p.wait()
        self.waiting = []
        if self._probes is not None:
            hello = self._cache._hello()
            step = max(1 << 16, min(int(hello.get("max_frame") or (16 << 20)) - (1 << 16),
                                    8 << 20))
            missing = [k for k, p in self._probes if not p.wait().get("exists")]
            self._probes, self._finals = None, []
            self.waiting += [_Done(self._cache, done) for done in self._claims.theirs.values()]
            for k in missing:
                data = self._forms[k]
                offs = list(range(0, len(data), step)) or [0]
                self.waiting += [self._send(k, off, data[off:off + step], False)
                                 for off in offs[:-1]]
                self._finals.append((k, offs[-1]))
            if self.waiting:
                return False
        if self._finals:
            self.waiting = [self._send(k, off, self._forms[k][off:], True)
                            for k, off in self._finals]
            self._finals = None
            return False
        return True


@dataclass
class _SaveAhead:
    """One save's requests in flight: its values' stored forms and probes, the
    record sent with them, and (when that came before the values) the upload and
    the record sent again."""

    key: str
    forms: dict
    probes: list
    saving: Any
    record_map: dict
    record: "bytes | None"
    claims: _Claims
    upload: "_Upload | None" = None
    resave: Any = None
    error: "Exception | None" = None  # a failure met by poke, for settle to raise

    def answered(self) -> bool:
        """Whether every answer its next step needs is there."""
        if self.error is not None:
            return True
        if self.resave is not None:
            waiting = [self.resave]
        elif self.upload is not None:
            waiting = self.upload.waiting
        else:
            waiting = [self.saving] + [p for _, p in self.probes]
        return all(p.done() for p in waiting)


class _SavesAhead:
    """The saves of one FlechefsCache not yet confirmed (save_ahead), oldest first.
    One thread at a time moves them on (settle: nothing it calls may settle again),
    so that a flush that returns has seen every save made before it finished."""

    def __init__(self):
        self._lock = threading.Lock()
        self._settling = threading.Lock()
        self.entries = collections.deque()

    def add(self, entry):
        with self._lock:
            self.entries.append(entry)

    def settle(self, advance, keep):
        """Moves every save on as far as its answers allow without waiting, then
        finishes the oldest until at most keep remain; raises the first failure
        (naming its key) once all those are done."""
        first = None
        with self._settling:
            for e, block in itertools.chain(((e, False) for e in list(self.entries)),
                                            self._oldest_beyond(keep)):
                try:
                    if e.error is not None:
                        raise e.error
                    done = advance(e, block)
                except Exception as err:  # noqa: BLE001 (raised below, once)
                    done = True
                    if first is None:
                        first = (e.key, err)
                    else:
                        logger.error("saving call %s failed: %s", e.key, err)
                if done:
                    with self._lock:
                        self.entries.remove(e)
        if first is not None:
            key, err = first
            if hasattr(err, "add_note"):
                err.add_note("raised for the save of call %s made ahead" % key)
            raise err

    def poke(self, advance):
        """Moves every save on as far as its answers allow, without waiting, unless
        a thread is settling them already; failures are kept for settle to raise."""
        if not self._settling.acquire(blocking=False):
            return
        try:
            for e in list(self.entries):
                if e.error is None and e.answered():
                    try:
                        done = advance(e, False)
                    except Exception as err:  # noqa: BLE001 (raised by settle)
                        done, e.error = False, err
                    if done:
                        with self._lock:
                            self.entries.remove(e)
        finally:
            self._settling.release()

    def _oldest_beyond(self, keep):
        while True:
            with self._lock:
                if len(self.entries) <= keep:
                    return
                e = self.entries[0]
            yield e, True

def _warn_on_skew(hello):
    """Warns when the server speaks a newer protocol or is another version."""
    proto = hello.get("protocol")
    if proto != PROTOCOL:
        logger.warning("flechefs protocol skew: client speaks %d, server %r", PROTOCOL, proto)
    version = hello.get("version")
    if version and version != __version__:
        logger.warning("flechefs version skew: local=%s remote=%s", __version__, version)
