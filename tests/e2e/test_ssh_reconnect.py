"""test_ssh_reconnect.py: the SSH link dies in the middle of a read, and comes back.

A 64 MiB value is read through a libssh2 mount (-o timeout=5) against a private sshd
(sshd_fixture.py). Once the reader is 8 MiB in, the sshd listener is stopped and the
per-connection sshd process killed: the reader must get EIO within the deadline,
not hang. sshd is started again (same port and host key); without remounting, the
daemon reconnects by itself (the key needs no passphrase) and the same read succeeds
with the right bytes. Then only the session is killed (the listener stays): the read
succeeds again after the reconnection. Listings made before the loss keep working.
Last, the session is frozen (SIGSTOP: a silent link, no FIN or RST): the reader gets
EIO by the deadline, keepalives end the dead connection and the daemon reconnects.
"""

import errno
import hashlib
import os
import sys
import threading
import time

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("ssh_reconnect")
DEADLINE = 5
SIZE = 64 * 1024 * 1024


class Reader(threading.Thread):
    """Reads a file in 1 MiB steps (a little slowly), recording how far it got, the
    error that stopped it and when."""

    def __init__(self, path, pause=0.01):
        super().__init__(daemon=True)
        self.path = path
        self.pause = pause
        self.done_bytes = 0
        self.error = None
        self.error_time = None
        self.digest = None

    def run(self):
        h = hashlib.sha256()
        try:
            with open(self.path, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    self.done_bytes += len(b)
                    time.sleep(self.pause)
            self.digest = h.hexdigest()
        except OSError as e:
            self.error = e
            self.error_time = time.monotonic()


def read_all(path):
    """sha256 of the whole file, or the OSError."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return e


def read_until_ok(path, want, timeout):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = read_all(path)
        if last == want:
            return True, last
        time.sleep(0.5)
    return False, last


def test_reconnect(d, env, root):
    key = "ab" * 32
    data = os.urandom(SIZE)
    want = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(data)
    del data
    opts = d.flechefs_opts() + ["-o", "server=" + ml.server(), "-o", "timeout=%d" % DEADLINE,
                                "-o", "ServerAliveInterval=2"]
    with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
        path = os.path.join(mp, "values", key)
        calls_before = sorted(os.listdir(os.path.join(mp, "calls")))
        T.check(len(calls_before) > 0, "calls/ listed before the loss")
        T.equal(os.stat(path).st_size, SIZE, "64 MiB value: size")

        reader = Reader(path)
        reader.start()
        T.check(ml.wait_for(lambda: reader.done_bytes >= 8 << 20 or not reader.is_alive(), 30),
                "reader got 8 MiB in")
        sessions = d.session_pids()
        T.check(len(sessions) >= 1, "an sshd session process serves the mount")
        d.stop()  # no listener: the daemon cannot reconnect yet
        t_kill = time.monotonic()
        for pid in sessions:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        reader.join(DEADLINE + 10)
        T.check(not reader.is_alive(), "reader returned (no hang) within %d s" % (DEADLINE + 10))
        T.check(reader.error is not None and reader.error.errno == errno.EIO,
                "reader got EIO (error %r after %d bytes)" % (reader.error, reader.done_bytes))
        if reader.error_time is not None:
            took = reader.error_time - t_kill
            T.check(took <= DEADLINE + 1.5, "EIO within the deadline (%.2f s)" % took)
        T.check(ml.is_mounted(mp), "still mounted after the loss")
        T.equal(sorted(os.listdir(os.path.join(mp, "calls"))), calls_before,
                "calls/ listing from the kernel cache or an error-free retry")

        d.start()  # same port, same host key
        ok, last = read_until_ok(path, want, 60)
        T.check(ok, "after sshd is back the same read succeeds without remounting (%r)" % (last,))
        T.check(ml.is_mounted(mp), "still the same mount")

        # only the session dies; the listener stays
        reader = Reader(path, pause=0.0)
        sessions = d.session_pids()
        d.kill_sessions()
        T.check(len(sessions) >= 1, "a new session served the reconnected mount")
        ok, last = read_until_ok(path, want, 60)
        T.check(ok, "after the session was killed the read succeeds again (%r)" % (last,))


def test_silent_link(d, env, root):
    """The session stops answering without closing the connection (SIGSTOP: no FIN,
    no RST, like a dead network path): the reader gets EIO by the request deadline,
    keepalives (-o ServerAliveInterval=1,ServerAliveCountMax=2) declare the link dead,
    and the daemon reconnects by itself; the read then succeeds."""
    key = "cd" * 32
    data = os.urandom(SIZE)
    want = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "values", key), "wb") as f:
        f.write(data)
    del data
    opts = d.flechefs_opts() + ["-o", "server=" + ml.server(), "-o", "timeout=%d" % DEADLINE,
                                "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"]
    stopped = []
    try:
        with ml.mounted("127.0.0.1:" + root, opts, env=env) as mp:
            path = os.path.join(mp, "values", key)
            reader = Reader(path)
            reader.start()
            T.check(ml.wait_for(lambda: reader.done_bytes >= 8 << 20 or not reader.is_alive(),
                                30), "silent link: reader got 8 MiB in")
            stopped = d.session_pids()
            for pid in stopped:
                os.kill(pid, 19)  # SIGSTOP
            t_stop = time.monotonic()
            reader.join(DEADLINE + 10)
            T.check(not reader.is_alive(), "silent link: reader returned (no hang)")
            T.check(reader.error is not None and reader.error.errno == errno.EIO,
                    "silent link: reader got EIO (%r after %d bytes)"
                    % (reader.error, reader.done_bytes))
            if reader.error_time is not None:
                took = reader.error_time - t_stop
                T.check(took <= DEADLINE + 1.5, "silent link: EIO within the deadline (%.2f s)"
                        % took)
            ok, last = read_until_ok(path, want, 60)
            T.check(ok, "silent link: after keepalives gave up, a new connection serves the "
                    "read (%r)" % (last,))
    finally:
        for pid in stopped:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def main():
    sf.require_sshd()
    ml.require_fuse()
    with common.temp_dir("flechefs-ssh-home-") as home, common.temp_copy("files") as root, \
            sf.Sshd() as d:
        d.trust_host_key()
        T.run(test_reconnect, d, sf.client_env(home), root)
        if d.proc is None:
            d.start()
        T.run(test_silent_link, d, sf.client_env(home), root)
        if T.failures:
            print("sshd log (tail):\n" + d.log()[-3000:])
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
