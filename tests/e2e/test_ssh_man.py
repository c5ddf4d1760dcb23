#!/usr/bin/python3
"""test_ssh_man.py: man/flechefs.1 documents every SSH option `flechefs --help` lists.

Runs the built flechefs --help, takes the option names of its "SSH options" block
(-p and every -o KEY=...), and checks that the man page's SSH OPTIONS section, as
man renders it, names each; then that the page renders without warnings
(man --warnings), when man is installed (else that part skips).
"""

import os
import re
import shutil
import subprocess
import sys

SOURCE = os.environ.get("FLECHEFS_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FLECHEFS_BUILD") or os.path.join(SOURCE, "build")
PAGE = os.path.join(SOURCE, "man", "flechefs.1")


def help_ssh_options():
    exe = os.path.join(BUILD, "fusefs", "flechefs")
    r = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    text = r.stdout.decode(errors="replace")
    m = re.search(r"^SSH options.*?\n(.*?)(?:\n\s*\n|\Z)", text, re.S | re.M)
    if not m:
        sys.exit("FAIL: no 'SSH options' block in flechefs --help:\n" + text)
    keys = set(re.findall(r"-o ([A-Za-z_]+)=", m.group(1)))
    if re.search(r"(^|\s)-p PORT", m.group(1)):
        keys.add("-p")
    if len(keys) < 10:
        sys.exit("FAIL: too few SSH options parsed from --help: %s" % sorted(keys))
    return keys


def section(page_text):
    a = page_text.find(".SH SSH OPTIONS")
    b = page_text.find("\n.SH ", a + 1)
    if a < 0:
        sys.exit("FAIL: man/flechefs.1 has no SSH OPTIONS section")
    return page_text[a:b if b > 0 else len(page_text)]


def main():
    keys = help_ssh_options()
    with open(PAGE) as f:
        sec = section(f.read()).replace("\\-", "-").replace("\\%", "")
    missing = []
    for k in sorted(keys):
        if k == "-p":
            ok = re.search(r'"-p "', sec) or ".BI \"-p \"" in sec
        else:
            ok = re.search(r'-o %s=' % re.escape(k), sec)
        if not ok:
            missing.append(k)
    if missing:
        sys.exit("FAIL: options in --help but not in man/flechefs.1's SSH OPTIONS: %s"
                 % ", ".join(missing))
    for topic in ("The remote source", "Host keys", "Authentication", "reconnect"):
        if topic not in sec:
            sys.exit("FAIL: the SSH OPTIONS section says nothing of '%s'" % topic)
    print("ok: %d SSH options documented: %s" % (len(keys), ", ".join(sorted(keys))))
    if not shutil.which("man"):
        print("SKIP: man is not installed: rendering not checked")
        sys.exit(77 if os.environ.get("CI") != "true" else 1)
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--warnings", "-l", PAGE], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60, env=env)
    err = r.stderr.decode(errors="replace").strip()
    if r.returncode != 0 or err:
        sys.exit("FAIL: man --warnings -l man/flechefs.1 (status %d):\n%s" % (r.returncode, err))
    print("ok: man/flechefs.1 renders without warnings")


if __name__ == "__main__":
    main()
