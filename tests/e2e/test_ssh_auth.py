"""test_ssh_auth.py: how flechefs's libssh2 connection decides whom to trust and
what to run, against a private sshd (sshd_fixture.py):

- an unknown host key is refused, with the key type, its SHA256 fingerprint (as
  ssh-keygen prints it) and the option that accepts it; nothing is mounted;
- StrictHostKeyChecking=accept-new accepts it, writes it to the known_hosts file in
  OpenSSH's [host]:port form, and the next mount trusts it with the default (yes);
  OpenSSH's own client accepts the line we wrote;
- a hashed known_hosts entry (ssh-keygen -H) is recognised, and so is an entry after
  lines libssh2 cannot parse (@cert-authority, sk- keys, junk);
- a changed host key is refused, even with accept-new, and the file is left alone;
- a wrong user key is refused with "permission denied for root@127.0.0.1: tried KEY";
- a key held only by ssh-agent logs in;
- an encrypted key: the passphrase is asked on the terminal (a pty), and without a
  terminal the mount is refused with a message saying a passphrase is needed;
- setup and workdir take effect (a relative workdir, a server named relative to it, a
  variable exported by setup), and a relative cache path is relative to the login
  directory;
- a missing server program fails the mount with the remote's message and status 127.
"""

import os
import shutil
import subprocess
import sys
import time

import common
import mountlib as ml
import sshd_fixture as sf

T = common.Checks("ssh_auth")


def base_opts(d, known_hosts, key=None):
    """Options naming every file; key False: no IdentityFile at all."""
    opts = ["-o", "port=%d" % d.port, "-o", "UserKnownHostsFile=" + known_hosts,
            "-o", "ssh_config=none", "-o", "server=" + ml.server(), "-o", "ConnectTimeout=10"]
    if key is not False:
        opts += ["-o", "IdentityFile=" + (key or d.user_key)]
    return opts


try_mount = ml.try_mount


def test_host_keys(d, env, root, tmp):
    kh = os.path.join(tmp, "kh", "known_hosts")  # the directory does not exist yet
    fp = sf.fingerprint(d.host_key + ".pub")
    src = "127.0.0.1:" + root

    rc, err, listing = try_mount(src, base_opts(d, kh), env)
    T.check(rc != 0 and listing is None, "unknown host: mount refused (rc %d)" % rc)
    T.check(fp in err, "unknown host: fingerprint %s shown: %r" % (fp, err))
    T.check("ED25519" in err, "unknown host: key type shown: %r" % err)
    T.check("StrictHostKeyChecking=accept-new" in err, "unknown host: option named: %r" % err)
    T.check(not os.path.exists(kh), "unknown host: known_hosts not written")

    rc, err, listing = try_mount(src, base_opts(d, kh) + ["-o", "StrictHostKeyChecking=accept-new"],
                                 env)
    T.check(rc == 0 and listing, "accept-new: mounted (rc %d): %s" % (rc, err))
    text = open(kh).read() if os.path.exists(kh) else ""
    T.check(text.startswith("[127.0.0.1]:%d ssh-ed25519 " % d.port),
            "accept-new: [host]:port line written: %r" % text)
    T.check(d.host_key_line().split()[2] in text, "accept-new: the host's key written")

    rc, err, listing = try_mount(src, base_opts(d, kh), env)
    T.check(rc == 0 and listing, "known host (strict yes): mounted (rc %d): %s" % (rc, err))

    r = common.run(["ssh"] + d.ssh_args(known_hosts=kh) + ["127.0.0.1", "echo", "ok"], timeout=30,
                   env=env, stdin=subprocess.DEVNULL)
    T.equal((r.returncode, r.stdout), (0, b"ok\n"), "OpenSSH accepts the line accept-new wrote")

    # hashed entries
    hashed = os.path.join(tmp, "hashed_known_hosts")
    d.trust_host_key(hashed)
    common.run(["ssh-keygen", "-H", "-f", hashed], timeout=30)
    T.check(open(hashed).read().startswith("|1|"), "ssh-keygen -H hashed the entry")
    rc, err, listing = try_mount(src, base_opts(d, hashed), env)
    T.check(rc == 0 and listing, "hashed known_hosts entry: mounted (rc %d): %s" % (rc, err))

    # lines libssh2 cannot parse come first: the entries after them still count
    messy = os.path.join(tmp, "messy_known_hosts")
    with open(messy, "w") as f:
        f.write("# comment\n\n@cert-authority *.example.org ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
                "example.org sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
                "this line is not a known_hosts line at all\n")
        f.write(d.host_key_line())
    rc, err, listing = try_mount(src, base_opts(d, messy), env)
    T.check(rc == 0 and listing, "known_hosts with unparsable lines first: mounted (rc %d): %s"
            % (rc, err))

    # a changed key: the file names another ed25519 key for [127.0.0.1]:port
    other = sf.keygen(os.path.join(tmp, "other_host_key"))
    changed = os.path.join(tmp, "changed_known_hosts")
    with open(other + ".pub") as f:
        kind, b64 = f.read().split()[:2]
    with open(changed, "w") as f:
        f.write("[127.0.0.1]:%d %s %s\n" % (d.port, kind, b64))
    before = open(changed).read()
    for extra in ([], ["-o", "StrictHostKeyChecking=accept-new"],
                  ["-o", "StrictHostKeyChecking=no"]):
        rc, err, listing = try_mount(src, base_opts(d, changed) + extra, env)
        what = "changed host key %s" % (extra[1] if extra else "(default)")
        T.check(rc != 0 and listing is None, what + ": refused (rc %d)" % rc)
        T.check("CHANGED" in err and fp in err, what + ": loud message with the new key: %r" % err)
    T.equal(open(changed).read(), before, "changed host key: known_hosts left alone")


def test_user_keys(d, env, root, tmp):
    wrong = sf.keygen(os.path.join(tmp, "wrong_key"))
    rc, err, listing = try_mount("127.0.0.1:" + root, base_opts(d, d.known_hosts, key=wrong), env)
    T.check(rc != 0 and listing is None, "wrong user key: refused (rc %d)" % rc)
    T.check("permission denied for root@127.0.0.1" in err and wrong in err,
            "wrong user key: clear message naming the key: %r" % err)
    # no key at all (HOME is empty, no agent)
    rc, err, listing = try_mount("127.0.0.1:" + root, base_opts(d, d.known_hosts, key=False), env)
    T.check(rc != 0 and "permission denied for root@127.0.0.1" in err,
            "no user key: refused with a clear message: %r" % err)


def test_agent(d, env, root, tmp):
    """ssh-agent first: a key only the agent holds logs in."""
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        T.check(False, "ssh-agent/ssh-add missing (openssh-client)")
        return
    sock = os.path.join(tmp, "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        T.check(ml.wait_for(lambda: os.path.exists(sock), 10), "ssh-agent started")
        aenv = dict(env, SSH_AUTH_SOCK=sock)
        r = common.run(["ssh-add", d.user_key], env=aenv, timeout=30, stdin=subprocess.DEVNULL)
        T.equal(r.returncode, 0, "ssh-add: %r" % r.stderr)
        rc, err, listing = try_mount("127.0.0.1:" + root, base_opts(d, d.known_hosts, key=False),
                                     aenv)
        T.check(rc == 0 and listing, "agent key: mounted (rc %d): %s" % (rc, err))
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_passphrase(d, env, root, tmp):
    """An encrypted key: asked for on the terminal (a pty here); without a terminal
    the mount is refused with a message saying so."""
    import pty
    import select
    key = sf.keygen(os.path.join(tmp, "enc_key"), passphrase="open sesame")
    with open(d.authorized_keys, "a") as f:
        f.write(open(key + ".pub").read())
    opts = base_opts(d, d.known_hosts, key=key)
    # no terminal: start_new_session leaves flechefs without a controlling tty
    with common.temp_dir("flechefs-mnt-") as mp:
        try:
            r = common.run([ml.flechefs()] + opts + ["127.0.0.1:" + root, mp], env=env,
                           timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)
            err = r.stderr.decode(errors="replace")
            T.check(r.returncode != 0 and "needs a passphrase" in err and key in err,
                    "encrypted key without a terminal: refused, saying why: %r" % err)
        finally:
            ml.unmount(mp)
    # on a pseudo-terminal: the prompt names the key, the answer unlocks it
    with common.temp_dir("flechefs-mnt-") as mp:
        try:
            pid, fd = pty.fork()
            if pid == 0:
                os.execve(ml.flechefs(), [ml.flechefs()] + opts + ["127.0.0.1:" + root, mp], env)
            out = b""
            answered = False
            end = time.monotonic() + 60
            while time.monotonic() < end:
                ready, _, _ = select.select([fd], [], [], 1)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if not answered and b"Enter passphrase for key" in out:
                    os.write(fd, b"open sesame\n")
                    answered = True
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            T.check(answered and key.encode() in out,
                    "passphrase prompt on the terminal names the key: %r" % out)
            T.check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and ml.is_mounted(mp),
                    "encrypted key unlocked with the passphrase: mounted (%r)" % out[-300:])
            if ml.is_mounted(mp):
                T.check(len(os.listdir(os.path.join(mp, "calls"))) > 0, "passphrase: calls/")
        finally:
            ml.unmount(mp)


def test_setup_and_workdir(d, env, root, tmp):
    home = os.path.expanduser("~" + d.user)  # the remote login directory
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    wrapper = os.path.join(work, "check-and-serve.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "[ \"$FLECHEFS_TEST_X\" = 1 ] || { echo \"setup did not run\" >&2; exit 3; }\n"
                "[ \"$(pwd -P)\" = \"%s\" ] || { echo \"workdir not applied: $(pwd -P)\" >&2; "
                "exit 4; }\n"
                "exec %s \"$@\"\n" % (os.path.realpath(work), ml.server()))
    os.chmod(wrapper, 0o755)
    rel_work = os.path.relpath(work, home)  # e.g. ../tmp/...: relative to the login dir
    rel_root = os.path.relpath(root, home)
    opts = base_opts(d, d.known_hosts) + ["-o", "workdir=" + rel_work,
                                          "-o", "setup=export FLECHEFS_TEST_X=1",
                                          "-o", "setup=true",
                                          "-o", "server=./check-and-serve.sh"]
    rc, err, listing = try_mount("127.0.0.1:" + rel_root, opts, env)
    T.check(rc == 0 and listing, "setup + relative workdir + relative path: mounted (rc %d): %s"
            % (rc, err))
    # without setup the wrapper refuses: the mount fails with its message and status
    opts = base_opts(d, d.known_hosts) + ["-o", "workdir=" + rel_work,
                                          "-o", "server=./check-and-serve.sh"]
    rc, err, listing = try_mount("127.0.0.1:" + root, opts, env)
    T.check(rc != 0 and "setup did not run" in err and "status 3" in err,
            "without setup: mount fails with the remote message and status: %r" % err)
    # a failing setup command stops before the server
    opts = base_opts(d, d.known_hosts) + ["-o", "setup=echo 'module load failed' >&2; false"]
    rc, err, listing = try_mount("127.0.0.1:" + root, opts, env)
    T.check(rc != 0 and "module load failed" in err and "status 1" in err,
            "failing setup: mount fails with its message: %r" % err)


def test_missing_server(d, env, root, tmp):
    opts = base_opts(d, d.known_hosts) + ["-o", "server=/nonexistent/flechefs-server"]
    rc, err, listing = try_mount("127.0.0.1:" + root, opts, env)
    T.check(rc != 0 and listing is None, "missing server: mount fails (rc %d)" % rc)
    T.check("127" in err and "/nonexistent/flechefs-server" in err,
            "missing server: status 127 and the remote's message: %r" % err)
    T.check(("not found" in err) or ("No such file" in err),
            "missing server: the shell's words: %r" % err)
    # and through the system ssh client
    opts = ["-o", "ssh_command=" + d.ssh_command(), "-o", "server=/nonexistent/flechefs-server"]
    rc, err, listing = try_mount("h:" + root, opts, env)
    T.check(rc != 0 and "127" in err and "/nonexistent/flechefs-server" in err,
            "missing server via ssh_command: status 127 and message: %r" % err)


def main():
    sf.require_sshd()
    ml.require_fuse()
    common.fixtures_dir()
    with common.temp_dir("flechefs-ssh-") as tmp, common.temp_copy("files") as root, \
            sf.Sshd() as d:
        os.chmod(tmp, 0o755)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        d.trust_host_key()
        env = sf.client_env(home)
        for fn in (test_host_keys, test_user_keys, test_agent, test_passphrase,
                   test_setup_and_workdir, test_missing_server):
            T.run(fn, d, env, root, tmp)
        if T.failures:
            print("sshd log (tail):\n" + d.log()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
