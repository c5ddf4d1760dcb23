"""otheruser.py: a second local user for the end-to-end tests of shared caches and
`-o allow_other` mounts.

    with otheruser.User("flechefs-t1") as u:
        r = u.run(["cat", path])         # runs as that user (setpriv), no groups but its own
        u.errno_of("rmdir", path)        # 0 or the errno one system call gives that user

The user is created with useradd (a system account, no home, no login shell) when it
does not exist yet, and removed with userdel afterwards only when this test created
it. Each test uses its own name, so that tests running at once never share one. Needs
root; without it, or without useradd and setpriv, the test skips (fails under CI).
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import sys

import common

# Run as the other user: one system call, printing its errno (0: it succeeded).
_ONE_CALL = r"""
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "read":
        with open(path, "rb") as f:
            sys.stdout.buffer.write(f.read())
        sys.exit(0)
    getattr(os, op)(path)
    print(0)
except OSError as e:
    if op == "read":
        sys.stderr.write("errno %d\n" % e.errno)
        sys.exit(3)
    print(e.errno)
"""


def missing_reason():
    """Why no second user can be used here, or None."""
    if os.geteuid() != 0:
        return "not root: a second local user needs useradd and setpriv as root"
    for tool in ("useradd", "userdel", "setpriv"):
        if not shutil.which(tool):
            return "%s is missing" % tool
    return None


class User:
    def __init__(self, name):
        self.name = name
        self.created = False
        self.uid = self.gid = None

    def __enter__(self):
        reason = missing_reason()
        if reason:
            common.skip_or_fail(reason)
        try:
            pw = pwd.getpwnam(self.name)
        except KeyError:
            common.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", self.name], timeout=30, check=True)
            self.created = True
            pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        return self

    def __exit__(self, *exc):
        if self.created:
            with contextlib.suppress(Exception):
                common.run(["userdel", self.name], timeout=30)

    def argv(self, cmd):
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid),
                "--clear-groups", "--"] + list(cmd)

    def run(self, cmd, timeout=30):
        """Runs cmd as this user; the CompletedProcess (output as bytes)."""
        return common.run(self.argv(cmd), timeout=timeout, cwd="/")

    def errno_of(self, op, path):
        """0 when os.<op>(path) succeeds for this user, else its errno."""
        r = self.run([sys.executable, "-c", _ONE_CALL, op, path])
        return int(r.stdout.decode().strip() or "-1")

    def read(self, path):
        """(bytes, errno) of reading the whole file as this user (errno 0: read)."""
        r = self.run([sys.executable, "-c", _ONE_CALL, "read", path])
        if r.returncode == 0:
            return r.stdout, 0
        err = r.stderr.decode(errors="replace").split()
        return r.stdout, int(err[1]) if len(err) == 2 and err[0] == "errno" else -1
