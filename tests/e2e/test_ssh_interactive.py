"""test_ssh_interactive.py: the libssh2 connection's prompting methods, password and
keyboard-interactive, against a real OpenSSH sshd that accepts them.

The root account of this machine has no password (and must keep it), so each sshd
runs in a private mount namespace (sshd_fixture.Sshd(private_files=...), through
`unshare --mount --propagation private`) where a copy of /etc/shadow giving root a
test password, and for keyboard-interactive a small /etc/pam.d/sshd (pam_unix, no
fail delay), are bind-mounted over the real files. The real files are never written
and look the same to every other process; the test checks both.

Three servers: password only (UsePAM no: sshd checks the shadow entry itself),
keyboard-interactive through PAM (UsePAM yes), and a key followed by a second factor
(AuthenticationMethods publickey,keyboard-interactive). flechefs runs on a
pseudo-terminal, which is its controlling terminal, and the test answers its prompts
there. Checks:

- password: the prompt "root@127.0.0.1's password: " on the terminal, the answer not
  echoed; the right password mounts and the demo cache (examples/make-cache.py
  --demo) reads back; a wrong password is asked three times, then refused with
  "permission denied ... tried password" and no mount, no daemon left;
- Ctrl-C at the prompt (echo off) ends flechefs and leaves the terminal echoing;
- a signal arriving between the prompt's check for one and its wait for input (a
  preload shim sends SIGTERM at that instant) ends flechefs at once, no key needed;
- SIGHUP ignored from the start (nohup) stays ignored at the prompt: mounted;
- Ctrl-Z at the prompt (a job-control shell on the terminal): the job stops with the
  terminal echoing; fg: the prompt is asked again from the start, and the answer
  mounts; started in the background: stopped (SIGTTOU) before the prompt, the
  terminal untouched; fg: asked, mounted;
- all prompting happens before the daemon detaches: flechefs without -f returns
  (status 0) only after the answer, the mount is there at that moment, and the
  daemon has left the terminal's session;
- stdin not a terminal but a controlling terminal present: asked on the terminal,
  as ssh does;
- no terminal at all (a new session, stdin /dev/null): refused at once, saying that
  the method needs a terminal, and no empty answer reaches the server (its log shows
  no failed attempt);
- keyboard-interactive: PAM's own prompt ("Password: ") on the terminal, mounts;
  three wrong answers are three prompts, then a refusal naming the method;
- a key then a second factor: the key is accepted as a partial success, the second
  factor is asked once, and the mount works;
- after the sshd session is killed, a mount whose authentication needed a person
  (keyboard-interactive; a key and a second factor) does not prompt again nor
  reconnect: the daemon (-f, its log on standard error) logs how to remount
  (fusermount3 -u, then mount again) and the mount ends; sshd sees no new connection.
"""

import contextlib
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import time

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("ssh_interactive")
PASSWORD = "correct horse 42"
WRONG = "wrong battery"
REAL_FILES = ("/etc/shadow", "/etc/pam.d/sshd")
PAM_SSHD = ("# flechefs test: pam_unix against the private /etc/shadow, no fail delay\n"
            "auth     required pam_unix.so nodelay\n"
            "account  required pam_unix.so\n"
            "session  required pam_permit.so\n"
            "password required pam_deny.so\n")


class Terminal:
    """flechefs started on a new pseudo-terminal, its controlling terminal (as
    test_ssh_auth.py does for a passphrase). Collects what is written there and
    answers prompts; every wait is bounded. stderr_path: the program's standard error
    goes to that file instead (the daemon's log with -f); stdin_null: its standard
    input is /dev/null (the terminal stays the controlling one); ignore: signals
    the program starts with ignored (SIGHUP, as under nohup); job: a session leader
    stays on the terminal, as a job-control shell does, running the program in a
    process group of its own, in the foreground or (job="bg") the background (see
    _shell)."""

    def __init__(self, argv, env, stderr_path=None, stdin_null=False, job=False,
                 ignore=()):
        self.out = b""
        self.pos = 0  # prompts before this offset have been answered
        self.status = None
        pid, fd = pty.fork()
        if pid == 0:  # the child: only exec or _exit
            try:
                if stderr_path:
                    lf = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    os.dup2(lf, 2)
                if stdin_null:
                    nul = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(nul, 0)
                for sig in ignore:
                    signal.signal(sig, signal.SIG_IGN)
                if job:
                    self._shell(argv, env, job == "bg")
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    @staticmethod
    def _shell(argv, env, background):
        """In the pty child: what a job-control shell does for one job, started in
        the foreground or the background. When the job stops, the shell takes the
        terminal back (leaving its modes alone), prints "stopped SIG", and on a line
        of input ("fg") gives the job the terminal and continues it (SIGCONT). When
        the job ends it prints "exit STATUS" and stays (so the terminal stays open
        after the program is gone)."""
        job_signals = (signal.SIGTTOU, signal.SIGINT, signal.SIGTSTP)
        for sig in job_signals:
            signal.signal(sig, signal.SIG_IGN)
        child = os.fork()
        if child == 0:
            os.setpgid(0, 0)
            if not background:
                os.tcsetpgrp(0, os.getpid())
            for sig in job_signals:
                signal.signal(sig, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        with contextlib.suppress(OSError):  # the child may have done both already
            os.setpgid(child, child)
            if not background:
                os.tcsetpgrp(0, child)
        while True:
            _, st = os.waitpid(child, os.WUNTRACED)
            if not os.WIFSTOPPED(st):
                break
            os.tcsetpgrp(0, os.getpgrp())
            os.write(1, b"stopped %d\n" % os.WSTOPSIG(st))
            os.read(0, 100)  # "fg"
            os.tcsetpgrp(0, child)
            os.killpg(child, signal.SIGCONT)
        os.tcsetpgrp(0, os.getpgrp())
        os.write(1, b"exit %d\n" % os.waitstatus_to_exitcode(st))
        os.read(0, 1)  # until the test closes the terminal
        os._exit(0)

    def _pump(self, timeout):
        """Reads what is there (waiting up to timeout); False at end of output."""
        if self.fd is None:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: every process left the terminal
            chunk = b""
        if not chunk:
            os.close(self.fd)
            self.fd = None
            return False
        self.out += chunk
        return True

    def expect(self, prompt, timeout=10):
        """Waits for the next unanswered occurrence of prompt (bytes)."""
        end = time.monotonic() + timeout
        while True:
            i = self.out.find(prompt, self.pos)
            if i >= 0:
                self.pos = i + len(prompt)
                return True
            if time.monotonic() >= end or not self._pump(min(0.5, end - time.monotonic())):
                return self.out.find(prompt, self.pos) >= 0

    def send(self, text):
        os.write(self.fd, text.encode() + b"\n")

    def answer(self, prompt, text, timeout=10):
        if not self.expect(prompt, timeout):
            return False
        self.send(text)
        return True

    def wait(self, timeout=30):
        """Waits for the program to exit (reading its output meanwhile); returns the
        exit status, or None when it is still running after timeout."""
        end = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() >= end:
                return None
            if not self._pump(0.1):
                time.sleep(0.05)
        while self._pump(0):  # the rest of its output
            pass
        return self.status

    def text(self):
        return self.out.decode(errors="replace")

    def close(self):
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait(10)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def mount_point():
    """A fresh mount point; afterwards unmounted, its daemon gone, removed."""
    with common.temp_dir("flechefs-mnt-") as mp:
        try:
            yield mp
        finally:
            ml.unmount(mp)
            if not ml.wait_for(lambda: not ml.daemon_pids(mp), 10):
                for pid in ml.daemon_pids(mp):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


class Setup:
    """What every test needs: the demo cache and its manifest, the client env."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cache = os.path.join(tmp, "cache")
        manifest = os.path.join(tmp, "manifest.json")
        r = common.run([sys.executable, os.path.join(common.SOURCE, "examples", "make-cache.py"),
                        "--demo", "--manifest", manifest, self.cache], timeout=60)
        if r.returncode != 0:
            common.fail("make-cache.py --demo failed: %s" % r.stderr.decode(errors="replace"))
        with open(manifest) as f:
            self.manifest = json.load(f)
        home = os.path.join(tmp, "home")  # no ~/.ssh: no key, no config of the real user
        os.makedirs(home)
        self.env = sf.client_env(home)

    def opts(self, d, key=None):
        """libssh2 options naming only test files; no key unless given."""
        opts = ["-o", "port=%d" % d.port, "-o", "UserKnownHostsFile=" + d.known_hosts,
                "-o", "ssh_config=none", "-o", "server=" + ml.server(),
                "-o", "ConnectTimeout=10",
                "-o", "IdentityFile=" + (key or os.path.join(self.tmp, "no-such-key"))]
        return opts

    def argv(self, d, mp, key=None, foreground=False):
        return [ml.flechefs()] + (["-f"] if foreground else []) + self.opts(d, key) + \
            ["%s:%s" % (d.host, self.cache), mp]

    def check_content(self, mp, what):
        """The mount shows the demo cache: every call, its name, a result's bytes."""
        calls = self.manifest["calls"]
        try:
            listed = sorted(os.listdir(os.path.join(mp, "calls")))
        except OSError as e:
            T.check(False, "%s: calls/ listed: %s" % (what, e))
            return
        T.equal(listed, sorted(c["key"] for c in calls), "%s: calls/ lists the demo calls" % what)
        c = calls[0]
        with open(os.path.join(mp, "calls", c["key"], "name")) as f:
            T.equal(f.read().strip(), c["name"], "%s: calls/%s/name" % (what, c["key"][:8]))
        if c.get("result"):
            with open(os.path.join(mp, "values", c["result"]), "rb") as f:
                got = f.read()
            with open(os.path.join(self.cache, "values", c["result"]), "rb") as f:
                want = f.read()
            T.check(got == want, "%s: a result value reads back byte for byte" % what)

    def no_terminal(self, d, key=None):
        """flechefs in a new session (no controlling terminal), stdin /dev/null:
        returns (status, stderr text, seconds, mounted)."""
        with mount_point() as mp:
            t0 = time.monotonic()
            r = common.run(self.argv(d, mp, key), env=self.env, timeout=30,
                           stdin=subprocess.DEVNULL, start_new_session=True)
            took = time.monotonic() - t0
            return r.returncode, r.stderr.decode(errors="replace"), took, ml.is_mounted(mp)


def tty_echoes(fd):
    """Whether the terminal (the pty's master side shares the modes) echoes input."""
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def session_id(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[3])  # state ppid pgrp session


def failed_logins(d):
    """Lines of the sshd log recording a refused password or PAM answer."""
    return [ln for ln in d.log().splitlines()
            if "Failed password" in ln or "Failed keyboard-interactive" in ln
            or "PAM: Authentication failure" in ln]


def test_password(s, d):
    peer = b"root@127.0.0.1's password: "
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env)
        try:
            T.check(term.answer(peer, PASSWORD), "password: prompt on the terminal: %r"
                    % term.text())
            status = term.wait(20)
            mounted_at_exit = ml.is_mounted(mp)  # no wait: flechefs returned
            T.equal(status, 0, "password: flechefs returned success (%r)" % term.text()[-300:])
            T.check(mounted_at_exit, "before detaching: the mount is there when flechefs "
                    "returns")
            T.check(PASSWORD.encode() not in term.out, "password: the answer is not echoed")
            T.equal(term.out.count(b"password: "), 1, "password: asked once")
        finally:
            term.close()
        daemons = ml.daemon_pids(mp)
        T.equal(len(daemons), 1, "password: one daemon serves the mount")
        if daemons:
            T.check(session_id(daemons[0]) == daemons[0] != term.pid,
                    "the daemon left the terminal's session (detached after the prompt)")
        if ml.is_mounted(mp):
            s.check_content(mp, "password")
        T.check("Accepted password for root" in d.log(), "password: sshd accepted a password")

    # a wrong password: three prompts, then a refusal; nothing mounted, no daemon
    refused_after_three(s, d, peer, "password", "wrong password")

    # Ctrl-C at the prompt: flechefs ends, and the terminal echoes again
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, job=True)
        try:
            T.check(term.expect(peer), "Ctrl-C: prompt: %r" % term.text())
            T.check(not tty_echoes(term.fd), "Ctrl-C: echo is off at the prompt")
            os.write(term.fd, b"\x03")  # VINTR: SIGINT to the foreground job
            T.check(term.expect(b"exit -%d" % signal.SIGINT, 20),
                    "Ctrl-C: flechefs ended by SIGINT: %r" % term.text()[-300:])
            T.check(ml.wait_for(lambda: not ml.daemon_pids(mp), 10),
                    "Ctrl-C: no flechefs process left")
            T.check(tty_echoes(term.fd), "Ctrl-C: the terminal echoes again")
        finally:
            term.close()
        T.check(not ml.is_mounted(mp), "Ctrl-C: nothing mounted")

    T.run(test_prompt_signals, s, d, peer)

    # SIGTERM to the process the shell started (which waits for the prompting child):
    # both end, and the terminal echoes
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, job=True)
        try:
            T.check(term.expect(peer), "kill: prompt: %r" % term.text())
            started = [p for p in ml.daemon_pids(mp) if parent_of(p) == term.pid]
            T.equal(len(started), 1, "kill: the process the shell started")
            for p in started:
                os.kill(p, signal.SIGTERM)
            T.check(term.expect(b"exit -%d" % signal.SIGTERM, 10),
                    "kill: flechefs ended by SIGTERM: %r" % term.text()[-300:])
            T.check(ml.wait_for(lambda: not ml.daemon_pids(mp), 10),
                    "kill: the prompting child ended too")
            T.check(tty_echoes(term.fd), "kill: the terminal echoes again")
        finally:
            term.close()
        T.check(not ml.is_mounted(mp), "kill: nothing mounted")

    # stdin is not a terminal, but there is one: asked there, as ssh does
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, stdin_null=True)
        try:
            T.check(term.answer(peer, PASSWORD), "stdin /dev/null, controlling terminal: "
                    "asked on the terminal: %r" % term.text())
            T.equal(term.wait(20), 0, "stdin /dev/null: mounted (%r)" % term.text()[-300:])
            T.check(ml.is_mounted(mp), "stdin /dev/null: the mount is there")
        finally:
            term.close()

    # no terminal at all: refused at once, and no empty password is sent
    before = failed_logins(d)
    rc, err, took, mounted = s.no_terminal(d)
    T.check(rc != 0 and not mounted, "no terminal: password mount refused (rc %d)" % rc)
    T.check("permission denied for root@127.0.0.1" in err and
            "password needs a terminal" in err, "no terminal: says why: %r" % err)
    T.check(took < 20, "no terminal: no hang (%.1f s)" % took)
    T.equal(failed_logins(d), before, "no terminal: no empty password reached the server")


# An LD_PRELOAD shim for flechefs: its first wait for input on a terminal (read or
# ppoll, what the prompt waits in) sends the calling process (the one prompting, not
# the parent that waits for it to detach) SIGTERM just before the system call, after
# the prompt has looked for a signal: the race of a signal arriving in between, at
# the worst instant, every time.
SIGNAL_BEFORE_WAIT_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

static int fired;

static void fire(int fd)
{
	int e = errno;
	if (!fired && isatty(fd)) {
		fired = 1;
		kill(getpid(), SIGTERM);
	}
	errno = e;
}

ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t (*real)(int, void *, size_t) = dlsym(RTLD_NEXT, "read");
	fire(fd);
	return real(fd, buf, n);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ssize_t (*real)(int, void *, size_t, size_t) = dlsym(RTLD_NEXT, "__read_chk");
	fire(fd);
	return real(fd, buf, n, buflen);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m)
{
	int (*real)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *) =
	    dlsym(RTLD_NEXT, "ppoll");
	if (n > 0)
		fire(fds[0].fd);
	return real(fds, n, t, m);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m,
                size_t len)
{
	int (*real)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *,
	            size_t) = dlsym(RTLD_NEXT, "__ppoll_chk");
	if (n > 0)
		fire(fds[0].fd);
	return real(fds, n, t, m, len);
}
"""


def signal_before_wait_shim(tmp):
    """Builds SIGNAL_BEFORE_WAIT_C; its path, or None (no C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    src, lib = os.path.join(tmp, "signal-before-wait.c"), os.path.join(tmp, "signal-before-wait.so")
    with open(src, "w") as f:
        f.write(SIGNAL_BEFORE_WAIT_C)
    r = common.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl"], timeout=60)
    if r.returncode != 0:
        common.fail("cannot build the preload shim: %s" % r.stderr.decode(errors="replace"))
    return lib


def test_prompt_signals(s, d, peer):
    """Signals at the password prompt, beyond Ctrl-C: one arriving just before the
    wait for input, SIGHUP ignored (nohup), Ctrl-Z, a prompt in a background job."""
    # a signal between the prompt's check for one and its wait: still seen at once
    shim = signal_before_wait_shim(s.tmp)
    if not shim:
        T.check(not common.in_ci(), "signal before the wait: needs a C compiler (cc)")
        print("note: no C compiler, the signal-before-the-wait check is skipped")
    else:
        with mount_point() as mp:
            env = dict(s.env, LD_PRELOAD=shim)
            term = Terminal(s.argv(d, mp), env, job=True)
            try:
                T.check(term.expect(peer), "signal before the wait: prompt: %r" % term.text())
                # the parent reports the prompting child's death as a failure
                T.check(term.expect(b"exit ", 10) and b"exit 0" not in term.out,
                        "signal before the wait: flechefs ends at once, no key pressed: "
                        "%r" % term.text()[-300:])
                T.check(ml.wait_for(lambda: not ml.daemon_pids(mp), 5),
                        "signal before the wait: no flechefs process left")
                T.check(tty_echoes(term.fd), "signal before the wait: the terminal echoes")
            finally:
                term.close()
            T.check(not ml.is_mounted(mp), "signal before the wait: nothing mounted")

    # SIGHUP ignored when flechefs starts (nohup): it stays ignored at the prompt
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, ignore=(signal.SIGHUP,))
        try:
            T.check(term.expect(peer), "nohup: prompt: %r" % term.text())
            os.killpg(term.pid, signal.SIGHUP)  # the parent, and the child prompting
            term.send(PASSWORD)
            T.equal(term.wait(20), 0, "nohup: SIGHUP at the prompt ignored, mounted (%r)"
                    % term.text()[-300:])
            T.equal(term.out.count(peer), 1, "nohup: asked once")
        finally:
            term.close()
        T.check(ml.is_mounted(mp), "nohup: the mount is there")

    # Ctrl-Z: the job stops with the terminal echoing; fg: asked again from the start
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, job=True)
        try:
            T.check(term.expect(peer), "Ctrl-Z: prompt: %r" % term.text())
            os.write(term.fd, b"typed before")  # no newline: discarded by Ctrl-Z
            os.write(term.fd, b"\x1a")  # VSUSP: SIGTSTP to the foreground job
            if not T.check(term.expect(b"stopped %d" % signal.SIGTSTP, 10),
                           "Ctrl-Z: the job stops: %r" % term.text()[-300:]):
                return
            T.check(tty_echoes(term.fd), "Ctrl-Z: the terminal echoes while stopped")
            term.send("fg")
            T.check(term.expect(peer, 5), "Ctrl-Z, fg: asked again: %r" % term.text()[-300:])
            T.check(not tty_echoes(term.fd), "Ctrl-Z, fg: echo is off at the new prompt")
            term.send(PASSWORD)
            T.check(term.expect(b"exit 0", 20), "Ctrl-Z, fg: mounted with the answer to "
                    "the new prompt: %r" % term.text()[-300:])
            T.check(ml.is_mounted(mp), "Ctrl-Z, fg: the mount is there")
            T.check(PASSWORD.encode() not in term.out, "Ctrl-Z, fg: the answer is not echoed")
        finally:
            term.close()

    # started in the background: stopped by SIGTTOU before it touches the terminal's
    # modes or prints the prompt; fg: asked, mounted
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env, job="bg")
        try:
            if not T.check(term.expect(b"stopped %d" % signal.SIGTTOU, 20),
                           "background: the job stops (SIGTTOU): %r" % term.text()[-300:]):
                return
            T.check(tty_echoes(term.fd), "background: the terminal still echoes")
            T.check(peer not in term.out, "background: no prompt while in the background")
            term.send("fg")
            T.check(term.answer(peer, PASSWORD), "background, fg: asked: %r" % term.text())
            T.check(term.expect(b"exit 0", 20), "background, fg: mounted: %r"
                    % term.text()[-300:])
            T.check(ml.is_mounted(mp), "background, fg: the mount is there")
        finally:
            term.close()


def test_keyboard_interactive(s, d):
    prompt = b"Password: "  # pam_unix's, through sshd's keyboard-interactive
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env)
        try:
            T.check(term.answer(prompt, PASSWORD), "kbd-interactive: PAM's prompt on the "
                    "terminal: %r" % term.text())
            status = term.wait(20)
            mounted_at_exit = ml.is_mounted(mp)
            T.equal(status, 0, "kbd-interactive: flechefs returned success (%r)"
                    % term.text()[-300:])
            T.check(mounted_at_exit, "kbd-interactive: mounted when flechefs returns")
            T.check(b"'s password" not in term.out, "kbd-interactive: not the password method")
            T.check(PASSWORD.encode() not in term.out, "kbd-interactive: answer not echoed")
        finally:
            term.close()
        if ml.is_mounted(mp):
            s.check_content(mp, "kbd-interactive")
        T.check("Accepted keyboard-interactive/pam for root" in d.log(),
                "kbd-interactive: sshd accepted PAM's answer")

    refused_after_three(s, d, prompt, "keyboard-interactive", "kbd-interactive, wrong answers")

    before = failed_logins(d)
    rc, err, took, mounted = s.no_terminal(d)
    T.check(rc != 0 and not mounted, "no terminal: kbd-interactive mount refused (rc %d)" % rc)
    T.check("keyboard-interactive needs a terminal" in err, "no terminal: says why: %r" % err)
    T.check(took < 20, "no terminal, kbd-interactive: no hang (%.1f s)" % took)
    T.equal(failed_logins(d), before, "no terminal: no empty PAM answer reached the server")


def refused_after_three(s, d, prompt, method, label):
    """Three wrong answers at `prompt`: no fourth prompt, a refusal naming `method`,
    nothing mounted and no daemon left."""
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp), s.env)
        try:
            answered = sum(1 for _ in range(3) if term.answer(prompt, WRONG, 10))
            status = term.wait(20)
            T.equal(answered, 3, "%s: asked three times" % label)
            T.check(status not in (0, None), "%s: flechefs fails (%r)" % (label, status))
            T.check("permission denied for root@127.0.0.1: tried %s" % method in term.text(),
                    "%s: a clear message: %r" % (label, term.text()[-400:]))
            T.check(not term.expect(prompt, 0), "%s: no fourth prompt" % label)
        finally:
            term.close()
        T.check(not ml.is_mounted(mp), "%s: nothing mounted" % label)
        T.check(ml.wait_for(lambda: not ml.daemon_pids(mp), 5), "%s: no daemon left" % label)


def test_no_reconnect(s, d, what, key=None, prompt=b"Password: "):
    """-f (the log on standard error): mount, kill the sshd session; the daemon must
    not prompt or reconnect, but log how to remount, and end the mount."""
    log = os.path.join(s.tmp, "daemon-%s.log" % what.replace(" ", "-"))
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp, key, foreground=True), s.env, stderr_path=log)
        try:
            T.check(term.answer(prompt, PASSWORD), "%s: asked on the terminal: %r"
                    % (what, term.text()))
            if not T.check(ml.wait_for(lambda: ml.is_mounted(mp) or term.wait(0) is not None,
                                       30) and ml.is_mounted(mp), "%s: mounted" % what):
                return
            s.check_content(mp, what)
            prompts = term.out.count(prompt)
            connections = d.log().count("Connection from")
            T.check(len(d.kill_sessions()) >= 1, "%s: the sshd session killed" % what)
            status = term.wait(30)
            T.check(status is not None, "%s: the daemon ends the mount and exits" % what)
            text = open(log).read() if os.path.exists(log) else ""
            T.check("needed a person to authenticate" in text and "fusermount3 -u" in text
                    and "mount again" in text,
                    "%s: the log says how to remount: %r" % (what, text[-600:]))
            T.equal(term.out.count(prompt), prompts, "%s: no new prompt" % what)
            T.equal(d.log().count("Connection from"), connections,
                    "%s: no reconnection attempt reached sshd" % what)
            T.check(not ml.is_mounted(mp), "%s: the mount ended" % what)
        finally:
            term.close()


def test_second_factor(s, d):
    """AuthenticationMethods publickey,keyboard-interactive: a key, then a code."""
    with mount_point() as mp:
        term = Terminal(s.argv(d, mp, d.user_key), s.env)
        try:
            T.check(term.answer(b"Password: ", PASSWORD), "key + second factor: the second "
                    "factor is asked on the terminal: %r" % term.text())
            status = term.wait(20)
            T.equal(status, 0, "key + second factor: mounted (%r)" % term.text()[-400:])
            T.equal(term.out.count(b"Password: "), 1, "key + second factor: asked once")
        finally:
            term.close()
        if ml.is_mounted(mp):
            s.check_content(mp, "key + second factor")
        log = d.log()
        T.check("Partial publickey for root" in log and
                "Accepted keyboard-interactive/pam for root" in log,
                "key + second factor: sshd saw the key, then the second factor")
    rc, err, took, mounted = s.no_terminal(d, d.user_key)
    T.check(rc != 0 and not mounted and d.user_key in err and
            "keyboard-interactive needs a terminal" in err,
            "key + second factor without a terminal: refused, saying why: %r" % err)


def file_state(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), st.st_mtime_ns, st.st_ino


def mounted_over(path, pid="self"):
    with open("/proc/%s/mountinfo" % pid) as f:
        return any(line.split()[4] == path for line in f)


def shadow_copy(tmp):
    """/etc/shadow with root's password set to PASSWORD (openssl passwd -6), changed
    today and never expiring (so that neither sshd nor pam_unix asks for a new one)."""
    r = common.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD.encode() + b"\n",
                   timeout=30)
    if r.returncode != 0:
        common.fail("openssl passwd -6 failed: %s" % r.stderr.decode(errors="replace"))
    root = "root:%s:%d:0:99999:7:::\n" % (r.stdout.decode().strip(), time.time() // 86400)
    with open("/etc/shadow") as f:
        lines = [line for line in f if not line.startswith("root:")]
    lines.insert(0, root)
    path = os.path.join(tmp, "shadow")
    with open(path, "w") as f:
        f.writelines(lines)
    os.chmod(path, 0o640)
    return path


def main():
    sf.require_sshd()
    ml.require_fuse()
    reason = sf.private_files_missing_reason()
    if reason:
        common.skip_or_fail("cannot give root a test password in a private mount namespace: "
                            + reason)
    for p in REAL_FILES:
        if not os.path.isfile(p):
            common.skip_or_fail("%s is missing (openssh-server installs /etc/pam.d/sshd)" % p)
    if not shutil.which("openssl"):
        common.skip_or_fail("openssl is missing (apt-get install openssl)")
    before = {p: file_state(p) for p in REAL_FILES}
    with common.temp_dir("flechefs-ssh-interactive-") as tmp:
        os.chmod(tmp, 0o755)
        s = Setup(tmp)
        shadow = shadow_copy(tmp)
        pam = os.path.join(tmp, "pam-sshd")
        with open(pam, "w") as f:
            f.write(PAM_SSHD)
        # (name, test, sshd options, the key for the no-reconnect test: None to skip
        # it, "" for none)
        servers = [
            ("password", test_password, dict(
                settings={"PasswordAuthentication": "yes"},
                private_files={"/etc/shadow": shadow}), None),
            ("keyboard-interactive", test_keyboard_interactive, dict(
                settings={"UsePAM": "yes", "KbdInteractiveAuthentication": "yes"},
                private_files={"/etc/shadow": shadow, "/etc/pam.d/sshd": pam}), ""),
            ("key + second factor", test_second_factor, dict(
                settings={"UsePAM": "yes", "KbdInteractiveAuthentication": "yes",
                          "AuthenticationMethods": "publickey,keyboard-interactive"},
                private_files={"/etc/shadow": shadow, "/etc/pam.d/sshd": pam}), "user"),
        ]
        for name, fn, kw, reconnect_key in servers:
            failures = len(T.failures)
            with sf.Sshd(**kw) as d:
                d.trust_host_key()
                T.check(mounted_over("/etc/shadow", d.proc.pid),
                        "%s: sshd sees its private /etc/shadow" % name)
                T.check(not mounted_over("/etc/shadow"),
                        "%s: this process still sees the real /etc/shadow" % name)
                T.run(fn, s, d)
                if reconnect_key is not None:
                    T.run(test_no_reconnect, s, d, name,
                          d.user_key if reconnect_key else None)
                if len(T.failures) > failures:
                    print("sshd log (%s, tail):\n%s" % (name, d.log()[-3000:]))
    for p in REAL_FILES:
        T.equal(file_state(p), before[p], "%s left alone (content, mtime, inode)" % p)
        T.check(not mounted_over(p), "nothing mounted over %s here" % p)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
