"""client.py: a small client of the flechefs protocol (rpc/PROTOCOL.md), written from
the specification alone, for the end-to-end tests.

Frames are a 4-byte big-endian length and one msgpack object; requests are
[0, msgid, method, params], responses [1, msgid, error, result]. A Connection talks
over a pair of file descriptors, synchronously (call) or with many requests in flight
(pipeline, send/recv); a Server also starts flechefs-server and keeps its standard
error in a temporary file for the test to read.

    with Server(["--serve", "--root", path]) as s:
        s.hello()
        print(s.call("load", key)["name"])
"""

import os
import select
import struct
import subprocess
import tempfile
import time

import msgpack

PROTOCOL = 1
MAX_FRAME = 16 * 1024 * 1024


class RpcError(Exception):
    """An error answer: .name ("ENOENT", "AMBIGUOUS", ...), .errno, .message, .map."""

    def __init__(self, err):
        self.map = err if isinstance(err, dict) else {"name": repr(err)}
        self.name = self.map.get("name")
        self.errno = self.map.get("errno")
        self.message = self.map.get("message")
        super().__init__("%s (errno %s): %s" % (self.name, self.errno, self.message))


class ProtocolError(Exception):
    """The peer's bytes are not the protocol (not a frame, not a response, EOF)."""


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def unpack(payload):
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


class Connection:
    def __init__(self, rfd, wfd, timeout=60.0, max_frame=MAX_FRAME):
        self.rfd = rfd
        self.wfd = wfd
        self.timeout = timeout
        self.max_frame = max_frame
        self.next_id = 1
        self.rbuf = bytearray()
        self.pending = {}  # responses read while waiting for another msgid

    # -- raw bytes -------------------------------------------------------------------
    def send_raw(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    def send_frame(self, payload):
        self.send_raw(frame(payload))

    def close_write(self):
        if self.wfd is not None:
            os.close(self.wfd)
            self.wfd = None

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the server within %.0f s" % self.timeout)
        r, _, _ = select.select([self.rfd], [], [], left)
        if not r:
            raise TimeoutError("no answer from the server within %.0f s" % self.timeout)
        data = os.read(self.rfd, 1 << 20)
        if not data:
            return False
        self.rbuf += data
        return True

    def read_frame(self):
        """The next frame's payload, or None at a clean end of file."""
        deadline = time.monotonic() + self.timeout
        while len(self.rbuf) < 4:
            if not self._fill(deadline):
                if self.rbuf:
                    raise ProtocolError("end of file inside a frame header")
                return None
        (n,) = struct.unpack(">I", bytes(self.rbuf[:4]))
        if n == 0 or n > self.max_frame:
            raise ProtocolError("the server's output is not a flechefs frame: it starts "
                                "with %r" % bytes(self.rbuf[:4]))
        while len(self.rbuf) < 4 + n:
            if not self._fill(deadline):
                raise ProtocolError("end of file inside a frame (%d of %d bytes)"
                                    % (len(self.rbuf) - 4, n))
        payload = bytes(self.rbuf[4:4 + n])
        del self.rbuf[:4 + n]
        return payload

    def read_eof(self):
        """True when the server closed its output (after any pending bytes)."""
        deadline = time.monotonic() + self.timeout
        while True:
            if self.rbuf:
                return False
            if not self._fill(deadline):
                return True

    # -- messages --------------------------------------------------------------------
    def new_id(self):
        i = self.next_id
        self.next_id = (self.next_id + 1) % (1 << 32) or 1
        return i

    def request_bytes(self, method, params, msgid):
        return frame(pack([0, msgid, method, list(params)]))

    def send(self, method, *params, msgid=None):
        """Sends one request; returns its msgid."""
        if msgid is None:
            msgid = self.new_id()
        self.send_raw(self.request_bytes(method, params, msgid))
        return msgid

    def recv_any(self):
        """The next response as (msgid, error, result)."""
        payload = self.read_frame()
        if payload is None:
            raise ProtocolError("the server closed the connection")
        msg = unpack(payload)
        if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 1
                and isinstance(msg[1], int)):
            raise ProtocolError("not a response: %r" % (msg,))
        return msg[1], msg[2], msg[3]

    def recv(self, msgid):
        """The response to msgid as (error, result), keeping others for later."""
        while msgid not in self.pending:
            i, e, r = self.recv_any()
            if i in self.pending:
                raise ProtocolError("msgid %d answered twice" % i)
            self.pending[i] = (e, r)
        return self.pending.pop(msgid)

    def call(self, method, *params):
        """Sends a request and waits: the result, or raises RpcError."""
        err, res = self.recv(self.send(method, *params))
        if err is not None:
            raise RpcError(err)
        return res

    def try_call(self, method, *params):
        """(error map or None, result)."""
        return self.recv(self.send(method, *params))

    def pipeline(self, requests):
        """Sends every (method, params) without waiting, reading answers as they come
        (so that neither side blocks on a full pipe); returns [(error, result)] in
        request order, matched by msgid."""
        ids = [self.new_id() for _ in requests]
        out = bytearray()
        for i, (method, params) in zip(ids, requests):
            out += self.request_bytes(method, params, i)
        view = memoryview(bytes(out))
        want = set(ids)
        got = {}
        deadline = time.monotonic() + self.timeout
        os.set_blocking(self.wfd, False)
        try:
            while len(got) < len(ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("pipeline: %d of %d answers" % (len(got), len(ids)))
                r, w, _ = select.select([self.rfd], [self.wfd] if view else [], [], left)
                if w:
                    try:
                        n = os.write(self.wfd, view[:1 << 20])
                        view = view[n:]
                    except BlockingIOError:
                        pass
                if r:
                    data = os.read(self.rfd, 1 << 20)
                    if not data:
                        raise ProtocolError("the server closed the connection")
                    self.rbuf += data
                    while len(self.rbuf) >= 4:
                        (n,) = struct.unpack(">I", bytes(self.rbuf[:4]))
                        if n == 0 or n > self.max_frame:
                            raise ProtocolError("not a flechefs frame: %r"
                                                % bytes(self.rbuf[:4]))
                        if len(self.rbuf) < 4 + n:
                            break
                        msg = unpack(bytes(self.rbuf[4:4 + n]))
                        del self.rbuf[:4 + n]
                        if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 1):
                            raise ProtocolError("not a response: %r" % (msg,))
                        if msg[1] not in want or msg[1] in got:
                            raise ProtocolError("unexpected msgid %r" % (msg[1],))
                        got[msg[1]] = (msg[2], msg[3])
        finally:
            os.set_blocking(self.wfd, True)
        return [got[i] for i in ids]

    def hello(self, name="flechefs-tests"):
        return self.call("hello", PROTOCOL, name)


class Server(Connection):
    """flechefs-server started with args, talking over pipes. stderr goes to a
    temporary file: read it with stderr_text() (after close() for all of it)."""

    def __init__(self, program, args, env=None, timeout=60.0, max_frame=MAX_FRAME,
                 extra_env=None, unset_env=("FLECHE_SECRET_KEY",)):
        if env is None:
            env = dict(os.environ)
            for k in unset_env:
                env.pop(k, None)
        if extra_env:
            env.update(extra_env)
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([program] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errfile, env=env)
        super().__init__(self.proc.stdout.fileno(), self.proc.stdin.fileno(),
                         timeout=timeout, max_frame=max_frame)

    def close_write(self):
        if self.wfd is not None:
            self.proc.stdin.close()
            self.wfd = None

    def wait(self, timeout=None):
        """Closes our end of the server's input and waits: its exit status."""
        self.close_write()
        try:
            return self.proc.wait(timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self):
        if self.proc.poll() is None:
            try:
                self.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stdout.close()
        return self.proc.returncode

    def stderr_text(self):
        self.errfile.seek(0)
        return self.errfile.read().decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        self.errfile.close()
