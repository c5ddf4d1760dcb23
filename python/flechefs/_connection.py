"""One connection to a flechefs-server: a child process (the server itself, or ssh
running it) speaking rpc/PROTOCOL.md on its standard input and output.

Requests are sent by any thread at any time under a write lock; one reader thread
reads the answers and hands each to the request with its msgid, so threads sharing
the connection never wait for each other's round trips. A request may name a sink
(a writable buffer) for its answer when that is one bin (load_value): the reader
reads the bytes straight into it, copying them once. When the server's output
ends or is not the protocol, every unanswered request and every later one fails
with ConnectionLost, carrying the child's exit code and the last lines of its
standard error, until reconnect() starts a new child.
"""

import collections
import itertools
import logging
import re
import struct
import subprocess
import threading

import msgpack

try:  # Linux and the BSDs; _widen_pipe is only a hint
    import fcntl
except ImportError:
    fcntl = None

try:  # the error fleche's own remote cache raises, when fleche can import it
    from fleche.remote import RemoteConnectionError as _ConnectionErrorBase
except ImportError:  # fleche.remote needs cloudpickle, which flechefs does not
    _ConnectionErrorBase = RuntimeError

logger = logging.getLogger("flechefs")

PROTOCOL = 1
DEFAULT_MAX_FRAME = 16 << 20
_HEADER = struct.Struct(">I")
_STDERR_LINES = 50
_PIPE_SIZE = 1 << 20
# Frames of at least this many bytes may be answers read into a sink: the head of
# such an answer, [1, msgid, nil, bin], is at most _SINK_HEAD_MAX bytes.
_SINK_MIN = 1 << 16
_SINK_HEAD_MAX = 16
_SINK_HEAD = re.compile(rb"\x94\x01(?:([\x00-\x7f])|\xcc(.)|\xcd(..)|\xce(....))\xc0"
                        rb"(?:\xc4(.)|\xc5(..)|\xc6(....))", re.DOTALL)


def _widen_pipe(pipe):
    """Asks for a pipe of _PIPE_SIZE bytes (Linux; the default is 64 KiB), so that a
    large answer or upload crosses it in fewer hand-offs between the processes.
    Only a hint: a kernel that refuses leaves the pipe as it is."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (AttributeError, OSError, ValueError):
        pass


class ConnectionLost(_ConnectionErrorBase):
    """The server could not be started, or its connection ended or broke."""


class ServerError(OSError):
    """An error the server answered (rpc/PROTOCOL.md section 4): errno, name and the
    server's message; `error` is the whole error map."""

    def __init__(self, error):
        self.error = error if isinstance(error, dict) else {}
        self.name = str(self.error.get("name", "EIO"))
        err = self.error.get("errno")
        super().__init__(err if isinstance(err, int) else 5,
                         "%s: %s" % (self.name, self.error.get("message", "")))


class Pending:
    """One request's answer, set by the reader thread. With a sink (a writable
    memoryview), an answer that is one bin of at most len(sink) bytes is read into
    the sink and the result is its length instead of the bytes."""

    __slots__ = ("method", "sink", "_done", "_result", "_error")

    def __init__(self, method, sink=None):
        self.method = method
        self.sink = sink
        self._done = threading.Event()
        self._result = None
        self._error = None

    def _set(self, result=None, error=None):
        self._result, self._error = result, error
        self._done.set()

    def done(self):
        """Whether the answer (or the failure) is there."""
        return self._done.is_set()

    def wait(self):
        """The result; raises ServerError or ConnectionLost."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


class Connection:
    """Lazily starts `argv` (a list for subprocess.Popen) on first use."""

    def __init__(self, argv, label, client_name):
        self._argv = list(argv)
        self._label = label
        self._client_name = client_name
        self._lock = threading.Lock()       # state: _proc, _pending, _dead
        self._open_lock = threading.Lock()  # one thread starts the child and says hello
        self._write_lock = threading.Lock()  # one frame at a time on the pipe
        self._ids = itertools.count(1)
        self._proc = None
        self._reader = None
        self._stderr_thread = None
        self._stderr = collections.deque(maxlen=_STDERR_LINES)
        self._pending = {}
        self._dead = None
        self.hello = None
        self._max_frame = DEFAULT_MAX_FRAME

    # -- lifecycle

    def ensure_open(self):
        """Starts the child and says hello unless already done; returns hello's
        answer."""
        hello, dead = self.hello, self._dead
        if dead is not None:
            raise dead
        if hello is not None:
            return hello
        with self._open_lock:
            with self._lock:
                if self._dead is not None:
                    raise self._dead
                if self.hello is not None:
                    return self.hello
                if self._proc is None:
                    self._start_locked()
            try:
                hello = self.call("hello", PROTOCOL, self._client_name)
            except ServerError as e:
                self.close()
                raise ConnectionLost("%s refused the connection: %s"
                                     % (self._label, e)) from e
            if not isinstance(hello, dict):
                self.close()
                raise ConnectionLost("%s answered hello with %r" % (self._label, hello))
            mf = hello.get("max_frame")
            if isinstance(mf, int) and mf > 0:
                self._max_frame = max(mf, DEFAULT_MAX_FRAME)
            self.hello = hello
        return hello

    def _start_locked(self):
        logger.info("starting %s: %s", self._label, " ".join(self._argv))
        try:
            proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    bufsize=0)
        except OSError as e:
            raise ConnectionLost("cannot start %s (%s): %s"
                                 % (self._label, self._argv[0], e)) from e
        for pipe in (proc.stdin, proc.stdout):
            _widen_pipe(pipe)
        self._proc = proc
        self._stderr.clear()
        self._stderr_thread = threading.Thread(target=self._drain_stderr,
                                               args=(proc.stderr,), daemon=True)
        self._stderr_thread.start()
        self._reader = threading.Thread(target=self._read_loop, args=(proc,), daemon=True)
        self._reader.start()

    def close(self):
        """Ends the child (closing its input, then waiting a little, then killing
        it). The next request starts a new one."""
        with self._lock:
            proc, self._proc = self._proc, None
            reader, self._reader = self._reader, None
            self._fail_all_locked(ConnectionLost("the connection to %s was closed"
                                                 % self._label))
            self._dead = None
            self.hello = None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if reader is not None:
            reader.join(timeout=2)
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1)
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    reconnect = close

    # -- requests

    def send(self, method, *params, sink=None):
        """Sends one request; returns its Pending (see Pending for sink). Opens the
        connection first."""
        if method != "hello":
            self.ensure_open()
        p = Pending(method, sink)
        with self._lock:
            if self._dead is not None:
                raise self._dead
            proc = self._proc
            if proc is None:
                raise ConnectionLost("the connection to %s was closed" % self._label)
            msgid = next(self._ids) & 0xFFFFFFFF
            self._pending[msgid] = p
        data = msgpack.packb([0, msgid, method, list(params)], use_bin_type=True)
        if len(data) > self._max_frame:
            with self._lock:
                self._pending.pop(msgid, None)
            raise ServerError({"errno": 90, "name": "EMSGSIZE",
                               "message": "a %s request of %d bytes is larger than the "
                                          "frame limit" % (method, len(data))})
        try:
            with self._write_lock:
                proc.stdin.write(_HEADER.pack(len(data)) + data)
        except (OSError, ValueError) as e:
            self._lost(proc, "writing %s: %s" % (method, e))
        return p

    def call(self, method, *params):
        return self.send(method, *params).wait()

    # -- the reader

    @staticmethod
    def _read_into(stream, view):
        """Fills view from stream; False when the stream ends first."""
        while len(view):
            got = stream.readinto(view)
            if not got:
                return False
            view = view[got:]
        return True

    def _read_exact(self, stream, n):
        buf = bytearray(n)
        return buf if self._read_into(stream, memoryview(buf)) else None

    def _read_to_sink(self, stream, n):
        """Reads a frame of n bytes whose answer may go to a request's sink.
        Returns (frame body or None, pending answered or None); (None, None) at
        the end of the stream."""
        head = self._read_exact(stream, min(n, _SINK_HEAD_MAX))
        if head is None:
            return None, None
        m = _SINK_HEAD.match(head)
        if m:
            msgid = int.from_bytes(next(g for g in m.group(1, 2, 3, 4) if g), "big")
            size = int.from_bytes(next(g for g in m.group(5, 6, 7) if g), "big")
            with self._lock:
                p = self._pending.get(msgid)
                if (p is not None and p.sink is not None and size <= len(p.sink)
                        and m.end() + size == n):
                    del self._pending[msgid]
                else:
                    p = None
            if p is not None:
                have = len(head) - m.end()
                p.sink[:have] = memoryview(head)[m.end():]
                ok = False
                try:
                    ok = self._read_into(stream, p.sink[have:size])
                finally:
                    if not ok:  # pending again, so that _lost fails it
                        with self._lock:
                            self._pending[msgid] = p
                if not ok:
                    return None, None
                return None, (p, size)
        rest = self._read_exact(stream, n - len(head))
        if rest is None:
            return None, None
        return head + rest, None

    def _read_loop(self, proc):
        why = "the server's output ended"
        try:
            while True:
                head = self._read_exact(proc.stdout, 4)
                if head is None:
                    break
                (n,) = _HEADER.unpack(head)
                if n == 0 or n > self._max_frame:
                    why = ("the server's output is not a flechefs frame: it starts with %r"
                           % head)
                    break
                if n >= _SINK_MIN:
                    body, sunk = self._read_to_sink(proc.stdout, n)
                    if sunk is not None:
                        sunk[0]._set(result=sunk[1])
                        continue
                else:
                    body = self._read_exact(proc.stdout, n)
                if body is None:
                    why = "the server's output ended inside a frame"
                    break
                try:
                    msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
                except Exception as e:  # noqa: BLE001 (any malformed frame)
                    why = "the server sent a frame that is not msgpack: %s" % e
                    break
                if (not isinstance(msg, list) or len(msg) != 4 or msg[0] != 1
                        or not isinstance(msg[1], int)):
                    why = "the server sent a frame that is not a response"
                    break
                with self._lock:
                    p = self._pending.pop(msg[1], None)
                if p is None:
                    continue
                if msg[2] is not None:
                    p._set(error=ServerError(msg[2]))
                else:
                    p._set(result=msg[3])
        except (OSError, ValueError) as e:
            why = "reading the server's output: %s" % e
        self._lost(proc, why)

    def _lost(self, proc, why):
        """Fails every unanswered request, and later ones, with the diagnosis."""
        with self._lock:
            if proc is not self._proc or self._dead is not None:
                return
        diag = self._diagnose(proc)
        msg = ("the connection to %s was lost: %s.\nCall reconnect() to start a new one."
               % (self._label, why))
        if diag:
            msg += "\n" + diag
        err = ConnectionLost(msg)
        logger.error("%s", msg)
        with self._lock:
            if proc is self._proc and self._dead is None:
                self._dead = err
                self._fail_all_locked(err)

    def _fail_all_locked(self, err):
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p._set(error=err)

    def _diagnose(self, proc):
        try:
            rc = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            rc = None
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=0.5)
        parts = []
        if rc is not None:
            parts.append("remote exit code: %d" % rc)
        if self._stderr:
            tail = "".join(self._stderr).rstrip()
            parts.append("remote stderr (last %d lines):\n%s" % (len(self._stderr), tail))
        return "\n".join(parts)

    def _drain_stderr(self, stream):
        log = logging.getLogger("flechefs.server")
        try:
            for line in iter(stream.readline, b""):
                text = line.decode("utf-8", "replace")
                log.info("%s", text.rstrip("\n"))
                self._stderr.append(text)
        except (OSError, ValueError):
            pass
