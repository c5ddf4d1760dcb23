"""sshd_fixture.py: a private OpenSSH server for the SSH tests and the SSH benchmark.

Runs the way OpenSSH's own regression tests run one: a generated ed25519 host key
and user key in a temporary directory, a private sshd_config (127.0.0.1 at a free
high port, StrictModes no, UsePAM no, an AuthorizedKeysFile in the temp dir, no
passwords), checked with `sshd -t` first, then `/usr/sbin/sshd -D -e -f CFG` in the
foreground with its log in the temp dir. Nothing under the real ~/.ssh is read or
written: clients get the known_hosts file, key and an ssh config of the temp dir
(ssh_args(), flechefs_opts()).

Options for the tests of other authentication methods and addresses (defaults keep
the server described above):

- listen="::1": listen on the IPv6 loopback instead (ipv6_missing_reason() says
  whether this machine has one); d.host is the address, d.host_key_line() writes
  OpenSSH's "[::1]:PORT" form.
- settings={"UsePAM": "yes", "KbdInteractiveAuthentication": "yes", ...}: replace
  the value of keywords of the configuration above (sshd takes the first value of a
  keyword, so extra_config, appended at the end, cannot change those).
- private_files={"/etc/shadow": COPY, "/etc/pam.d/sshd": COPY}: sshd (and `sshd
  -t`) run in a private mount namespace (`unshare --mount --propagation private`)
  where each COPY is bind-mounted over the real file, which is never modified and
  never changes for any other process; the namespace ends with the last sshd
  process. private_files_missing_reason() says whether that is possible here.

    with Sshd() as d:
        d.trust_host_key()          # write the host key into d.known_hosts
        subprocess.run(["ssh"] + d.ssh_args() + ["127.0.0.1", "true"])

Needs root (sshd must start as root to log users in) and /usr/sbin/sshd.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SSHD = "/usr/sbin/sshd"


def sshd_missing_reason():
    """Why no private sshd can run here, or None."""
    if os.geteuid() != 0:
        return "not root (a private sshd must run as root)"
    if not os.access(SSHD, os.X_OK):
        return "%s is missing (apt-get install openssh-server)" % SSHD
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen is missing (apt-get install openssh-client)"
    return None


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path, kind="ed25519", passphrase=""):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "flechefs-test",
                    "-f", path], check=True, timeout=30, stdin=subprocess.DEVNULL)
    return path


def ipv6_missing_reason():
    """Why nothing can listen on the IPv6 loopback ::1 here, or None."""
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError as e:
        return "no IPv6 sockets: %s" % e
    try:
        s.bind(("::1", 0))
    except OSError as e:
        return "cannot bind the IPv6 loopback ::1: %s" % e
    finally:
        s.close()
    return None


UNSHARE = "unshare"
# Run by unshare in the new namespace: "$1" "$2" pairs (copy, target) up to "--",
# each copy bind-mounted over its target, then exec of the command after "--".
_BIND_AND_EXEC = ('while [ "$1" != -- ]; do mount --bind -- "$1" "$2" || exit 125; shift 2; '
                  'done; shift; exec "$@"')


def private_files_missing_reason():
    """Why files cannot be replaced in a private mount namespace here, or None."""
    if os.geteuid() != 0:
        return "not root (a private mount namespace needs CAP_SYS_ADMIN)"
    if not shutil.which(UNSHARE):
        return "unshare is missing (apt-get install util-linux)"
    try:
        r = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "--", "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare --mount failed: %s" % e
    if r.returncode != 0:
        return "unshare --mount failed: %s" % r.stdout.decode(errors="replace").strip()
    return None


def _wait_port(port, proc, deadline, host="127.0.0.1"):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


class Sshd:
    """A private sshd. Attributes: port, dir, user, host_key, user_key, known_hosts,
    ssh_config, log_path, host (the listening address)."""

    def __init__(self, extra_config="", user="root", listen="127.0.0.1", settings=None,
                 private_files=None):
        self.dir = tempfile.mkdtemp(prefix="flechefs-sshd-")
        os.chmod(self.dir, 0o755)
        self.host = listen
        self.port = free_port(listen)
        self.user = user
        self.extra_config = extra_config
        self.settings = dict(settings or {})
        self.private_files = dict(private_files or {})
        self.proc = None
        self.host_key = keygen(os.path.join(self.dir, "host_ed25519"))
        self.user_key = keygen(os.path.join(self.dir, "user_ed25519"))
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.config = os.path.join(self.dir, "sshd_config")
        self.ssh_config = os.path.join(self.dir, "ssh_config")
        shutil.copy(self.user_key + ".pub", self.authorized_keys)
        os.chmod(self.authorized_keys, 0o644)
        sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server",
                                 "/usr/lib/ssh/sftp-server") if os.path.exists(p)),
                    "internal-sftp")
        self._write_config(sftp)
        # A client configuration naming this server by an alias, for ssh -F and
        # for flechefs -o ssh_config=FILE.
        with open(self.ssh_config, "w") as f:
            f.write("Host flechefs-test-alias\n"
                    "  HostName %s\n"
                    "  Port %d\n"
                    "  User %s\n"
                    "  IdentityFile %s\n"
                    "  UserKnownHostsFile %s\n"
                    "  StrictHostKeyChecking yes\n"
                    "  BatchMode yes\n" % (self.host, self.port, user, self.user_key,
                                          self.known_hosts))
            # the same server reached through itself: a hop libssh2 cannot make
            f.write("Host flechefs-test-jump\n"
                    "  HostName %s\n"
                    "  Port %d\n"
                    "  User %s\n"
                    "  IdentityFile %s\n"
                    "  UserKnownHostsFile %s\n"
                    "  BatchMode yes\n"
                    "  ProxyJump flechefs-test-alias\n" % (self.host, self.port, user,
                                                         self.user_key, self.known_hosts))

    def _write_config(self, sftp):
        lines = [("Port", str(self.port)),
                 ("ListenAddress", self.host),
                 ("HostKey", self.host_key),
                 ("PidFile", os.path.join(self.dir, "sshd.pid")),
                 ("AuthorizedKeysFile", self.authorized_keys),
                 ("StrictModes", "no"),
                 ("UsePAM", "no"),
                 ("PasswordAuthentication", "no"),
                 ("KbdInteractiveAuthentication", "no"),
                 ("PermitRootLogin", "yes"),
                 ("PubkeyAuthentication", "yes"),
                 ("AcceptEnv", "FLECHEFS_*"),
                 ("MaxStartups", "100"),
                 ("Subsystem", "sftp " + sftp),
                 ("LogLevel", "VERBOSE")]
        settings = dict(self.settings)
        with open(self.config, "w") as f:
            for key, value in lines:
                f.write("%s %s\n" % (key, settings.pop(key, value)))
            for key, value in settings.items():  # keywords the defaults do not set
                f.write("%s %s\n" % (key, value))
            f.write(self.extra_config + "\n")

    def _argv(self, *args):
        """sshd's command line, inside the private mount namespace if asked for."""
        argv = [SSHD] + list(args)
        if not self.private_files:
            return argv
        binds = []
        for target, copy in self.private_files.items():
            binds += [copy, target]
        return [UNSHARE, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                _BIND_AND_EXEC, "sh"] + binds + ["--"] + argv

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout=20):
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        t = subprocess.run(self._argv("-t", "-f", self.config), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if t.returncode != 0:
            raise RuntimeError("sshd -t rejected the test configuration: %s"
                               % t.stdout.decode(errors="replace"))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._argv("-D", "-e", "-f", self.config),
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, start_new_session=True)
        if not _wait_port(self.port, self.proc, time.monotonic() + timeout, self.host):
            self.stop()
            raise RuntimeError("the private sshd did not start: %s" % self.log())
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
            self.logf.close()

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        self.stop()
        self.kill_sessions()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ is not called when __enter__ raises
            raise

    def __exit__(self, *exc):
        self.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- sessions --------------------------------------------------------------------
    def session_pids(self):
        """The per-connection sshd processes (children of the listener)."""
        if self.proc is None:
            return self._orphan_sessions()
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    pids.append(int(p))
            except (OSError, IndexError, ValueError):
                continue
        return pids

    def _orphan_sessions(self):
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if cmd.startswith(b"sshd:") and self.config.encode() in cmd:
                pids.append(int(p))
        return pids

    def kill_sessions(self, sig=signal.SIGKILL):
        """Kills every session child (the listener stays): their connections drop."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids

    # -- client side -----------------------------------------------------------------
    def host_key_line(self, name=None):
        with open(self.host_key + ".pub") as f:
            kind, b64 = f.read().split()[:2]
        return "[%s]:%d %s %s\n" % (name or self.host, self.port, kind, b64)

    def trust_host_key(self, path=None):
        """Writes this server's host key into a known_hosts file (default ours)."""
        with open(path or self.known_hosts, "w") as f:
            f.write(self.host_key_line())

    def ssh_args(self, key=None, known_hosts=None):
        """Options for the OpenSSH client that use only the temp dir."""
        return ["-F", "/dev/null", "-p", str(self.port), "-i", key or self.user_key,
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=" + (known_hosts or self.known_hosts),
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-l", self.user]

    def ssh_command(self, key=None):
        """A string for flechefs -o ssh_command=..."""
        return "ssh " + " ".join(self.ssh_args(key)) + " " + self.host

    def flechefs_opts(self, key=None, known_hosts=None):
        """flechefs -o options for libssh2 that use only the temp dir."""
        return ["-o", "port=%d" % self.port, "-o", "IdentityFile=" + (key or self.user_key),
                "-o", "UserKnownHostsFile=" + (known_hosts or self.known_hosts),
                "-o", "ssh_config=/dev/null"]


@contextlib.contextmanager
def delay_proxy(sshd, delay_ms, build, tmp):
    """bench/delay-proxy in front of sshd, delaying every byte delay_ms each way (built
    from its source into tmp when the build has none); yields (port, a known_hosts
    file in tmp naming the proxy's port with sshd's host key)."""
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "bench", "delay-proxy.c")
    binary = os.path.join(build, "bench", "delay-proxy")
    if not os.access(binary, os.X_OK):
        binary = os.path.join(tmp, "delay-proxy")
        subprocess.run(["cc", "-O2", "-pthread", "-o", binary, source], check=True,
                       timeout=120)
    port_file = os.path.join(tmp, "proxy.port")
    proc = subprocess.Popen([binary, "0", "127.0.0.1", str(sshd.port), str(delay_ms),
                             port_file], stdout=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        port = None
        while port is None and time.monotonic() < end:
            with contextlib.suppress(OSError, ValueError):
                port = int(open(port_file).read())  # written, maybe not yet whole
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("delay-proxy wrote no port")
        kh = os.path.join(tmp, "known_hosts_proxy")
        with open(kh, "w") as f:
            f.write(sshd.host_key_line().replace(":%d " % sshd.port, ":%d " % port))
        yield port, kh
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def require_sshd():
    """Skips when not root; a missing sshd skips too, except under CI=true (fails)."""
    import common  # the e2e helpers (skip, skip_or_fail)
    if os.geteuid() != 0:
        common.skip("not root: the SSH tests run a private sshd, which needs root")
    reason = sshd_missing_reason()
    if reason:
        common.skip_or_fail(reason)


def client_env(home):
    """An environment for flechefs and ssh that cannot reach the real ~/.ssh or an agent."""
    env = dict(os.environ)
    env["HOME"] = home
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("SSH_AGENT_PID", None)
    env.pop("FLECHE_SECRET_KEY", None)
    return env


def fingerprint(pub_path):
    """ssh-keygen's SHA256 fingerprint of a public key file ("SHA256:...")."""
    r = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub_path],
                       stdout=subprocess.PIPE, timeout=30, check=True)
    return r.stdout.decode().split()[1]
