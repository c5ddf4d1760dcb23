"""test_ssh_upload.py: the libssh2 transport when the socket will not take a packet.

libssh2 1.10 encrypts a packet before sending it; when the socket takes only part of
it (EAGAIN), the rest stays in the session, and any other packet sent before the
same call finishes it is refused (LIBSSH2_ERROR_BAD_USE). flechefs's I/O thread once
sent window adjusts and keepalives while a write of its own was half-sent, so a link
whose upstream is slower than what flechefs sends was declared lost ("lost
(keepalive)", "lost (window adjust)") and every request in flight failed.

Here the socket's send buffer is small (tcp_wmem at most 256 KiB, in a private
network namespace) and a proxy in front of a private sshd forwards the client's bytes
at 4 MB/s, so writes through the transport (tests/sshread -w) keep meeting EAGAIN:
  - 24 MiB into `cat >/dev/null` with a keepalive every second;
  - 16 MiB into `cat` (the echo comes back, so window adjusts must go out while
    writes are blocked), keepalives off;
  - 8 MiB into `cat` with a fixed 64 KiB receive window (-o ssh_window), where
    reads of 64 KiB would make libssh2 adjust the window by itself, in the middle of
    the transport's own adjusts.
All must go through whole, with the connection up.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import common
import sshd_fixture as sf

T = common.Checks("ssh_upload")
RATE = 4e6  # bytes per second, client to server


def pump(src, dst, rate):
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def slow_proxy(listener, port):
    """Forwards connections to 127.0.0.1:port, the client's bytes at RATE and from a
    small receive buffer (the client's send buffer fills at once)."""
    while True:
        try:
            c, _ = listener.accept()
        except OSError:
            return
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(c, s, RATE), daemon=True).start()
        threading.Thread(target=pump, args=(s, c, 0), daemon=True).start()


def upload(d, env, pport, server, nbytes, keepalive, echo, extra=()):
    opts = [o if not o.startswith("port=") else "port=%d" % pport for o in d.flechefs_opts()]
    cmd = [common.binary("sshread")] + opts + list(extra) + [
        "-o", "StrictHostKeyChecking=no", "-o", "ServerAliveInterval=%d" % keepalive,
        "-o", "server=" + server, "-w", str(nbytes)] + (["-e"] if echo else []) + [
        "%s@%s:/" % (d.user, d.host)]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=180)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = {}
    return r.returncode, out, r.stderr.decode(errors="replace").strip()


def test_upload(d, env, pport):
    n = 24 << 20
    rc, out, err = upload(d, env, pport, "sh -c 'exec cat >/dev/null' sh", n, 1, False)
    T.equal(rc, 0, "sink, keepalive every second: sshread's exit status (%s)" % err[-400:])
    T.equal(out.get("written"), n, "sink, keepalive every second: all written")
    n = 16 << 20
    rc, out, err = upload(d, env, pport, "sh -c 'exec cat' sh", n, 0, True)
    T.equal(rc, 0, "echo: sshread's exit status (%s)" % err[-400:])
    T.equal((out.get("written"), out.get("read")), (n, n), "echo: all written and read back")
    n = 8 << 20
    rc, out, err = upload(d, env, pport, "sh -c 'exec cat' sh", n, 0, True,
                          ["-o", "ssh_window=65536"])
    T.equal(rc, 0, "echo, 64 KiB window: sshread's exit status (%s)" % err[-400:])
    T.equal((out.get("written"), out.get("read")), (n, n),
            "echo, 64 KiB window: all written and read back")


def in_netns():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    with open("/proc/sys/net/ipv4/tcp_wmem", "w") as f:
        f.write("4096 16384 262144\n")
    with tempfile.TemporaryDirectory(prefix="flechefs-upload-home-") as home, \
            sf.Sshd() as d:
        d.trust_host_key()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        threading.Thread(target=slow_proxy, args=(listener, d.port), daemon=True).start()
        T.run(test_upload, d, sf.client_env(home), listener.getsockname()[1])
        listener.close()
    return T.report()


def main():
    sf.require_sshd()
    if sys.argv[1:] == ["--in-netns"]:
        return in_netns()
    for prog in ("unshare", "ip"):
        if not shutil.which(prog):
            common.skip_or_fail("'%s' is missing (packages util-linux, iproute2)" % prog)
    # a private network namespace: its own loopback and its own tcp_wmem
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                        "--in-netns"], timeout=600)
    return r.returncode


if __name__ == "__main__":
    raise SystemExit(main())
