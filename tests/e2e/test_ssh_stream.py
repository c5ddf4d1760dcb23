"""test_ssh_stream.py: the libssh2 transport's receive buffer filling up.

flechefs's libssh2 transport has an I/O thread that reads the channel into a 4 MiB
buffer while the daemon's reader takes bytes out. When the reader falls behind, the
buffer fills, the I/O thread stops reading the socket and sleeps until the reader
makes room. Once it failed to ask for that wake-up when the buffer filled in the
middle of its reading pass (the usual case), so it slept its whole poll timeout
(1 s) with the buffer long drained: on a busy machine a 1 GiB `cat` through the
mount stalled for a second again and again (90-370 MB/s from one run to the next).

tests/sshread drives the transport directly against a private sshd: the remote
command writes zeros, and each of several cycles sleeps 100 ms (the buffer fills)
and then reads 8 MiB as fast as it can, recording the longest wait of one read.
With the lost wake-up every cycle has a wait of about 900 ms; without it the reader
never waits for more than a few milliseconds. The bound below (500 ms) is the
difference between the two, not a speed target.

Keepalives on an idle link: libssh2's keepalive@ global requests get answers that
libssh2 1.10 keeps in its packet list for the session's life (8,640 a day at the
default interval), where every channel read walks past them. The transport pings
with a channel request instead, whose answer libssh2 hands back. With
ServerAliveInterval=1 and sshd logging at DEBUG1, an idle transport for 5 s must
have sent channel "env" requests and no global request, and still carry an echo.
"""

import json
import subprocess
import tempfile

import common
import sshd_fixture as sf

T = common.Checks("ssh_stream")
CYCLES = 6
CHUNK = 8 << 20
SLEEP_MS = 100
MAX_WAIT_MS = 500


def test_full_buffer(d, env):
    total = CYCLES * CHUNK
    server = "sh -c 'head -c %d /dev/zero' sh" % total
    cmd = [common.binary("sshread")] + d.flechefs_opts() + [
        "-o", "server=" + server, "-c", str(CYCLES), "-b", str(CHUNK),
        "-s", str(SLEEP_MS), "%s@%s:/" % (d.user, d.host)]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    T.equal(r.returncode, 0, "sshread exit status (stderr: %s)"
            % r.stderr.decode(errors="replace").strip())
    try:
        out = json.loads(r.stdout)
    except ValueError:
        T.check(False, "sshread printed JSON: %r" % r.stdout)
        return
    T.equal(out["bytes"], total, "bytes read through the transport")
    T.equal(out["cycles"], CYCLES, "cycles done")
    T.check(out["max_wait_ms"] < MAX_WAIT_MS,
            "no read waited for the I/O thread's poll timeout after the buffer "
            "filled (longest wait %.1f ms, bound %d ms)" % (out["max_wait_ms"], MAX_WAIT_MS))


def test_idle_pings(env):
    with sf.Sshd(settings={"LogLevel": "DEBUG1"}) as d:
        d.trust_host_key()
        cmd = [common.binary("sshread")] + d.flechefs_opts() + [
            "-o", "ServerAliveInterval=1", "-o", "server=sh -c 'exec cat' sh",
            "-i", "5", "-w", "4096", "-e", "%s@%s:/" % (d.user, d.host)]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        T.equal(r.returncode, 0, "idle 5 s, then an echo: sshread's exit status (%s)"
                % r.stderr.decode(errors="replace").strip()[-400:])
        log = d.log()
        after = log[log.find("req exec"):] if "req exec" in log else ""
        pings = after.count("req env")  # the RTT probes before exec are env requests too
        globals_ = after.count("server_input_global_request")
        T.check(pings >= 3 and globals_ == 0,
                "idle link: pings are channel requests (%d 'env' requests, %d global "
                "requests in sshd's log after exec)" % (pings, globals_))


def main():
    sf.require_sshd()
    with tempfile.TemporaryDirectory(prefix="flechefs-stream-home-") as home, \
            sf.Sshd() as d:
        d.trust_host_key()
        T.run(test_full_buffer, d, sf.client_env(home))
        T.run(test_idle_pings, sf.client_env(home))
    return T.report()


if __name__ == "__main__":
    raise SystemExit(main())
