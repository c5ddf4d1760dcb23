"""test_server_cli.py: flechefs-server's command line: usage, --help, --version,
usage errors (exit 2, a message on stderr, nothing on stdout), explicit --calls and
--values layouts (directory and sqlite:///), --max-frame, --key-file errors, and the
manual page rendering without warnings.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_cli")
SERVER = common.binary("flechefs-server")
EXP = common.expected()


def run(*args, env_key=None):
    env = dict(os.environ)
    env.pop("FLECHE_SECRET_KEY", None)
    if env_key is not None:
        env["FLECHE_SECRET_KEY"] = env_key
    return common.run([SERVER] + list(args), timeout=20, stdin=subprocess.DEVNULL, env=env)


def usage_error(what, *args, env_key=None, needle=None):
    p = run(*args, env_key=env_key)
    T.equal(p.returncode, 2, what + ": exit status 2")
    T.equal(p.stdout, b"", what + ": nothing on stdout")
    err = p.stderr.decode()
    T.check(err.startswith("flechefs-server: ") or err.startswith("usage:"),
            what + ": message on stderr: %r" % err)
    if needle:
        T.check(needle in err, what + ": message mentions %r: %r" % (needle, err))


def test_usage(root):
    p = run()
    T.equal((p.returncode, p.stdout), (2, b""), "no arguments: usage, exit 2")
    T.check(b"usage:" in p.stderr and b"--serve" in p.stderr, "no arguments: usage on stderr")
    p = run("--help")
    T.equal(p.returncode, 0, "--help exits 0")
    T.check(b"usage:" in p.stdout and b"--root" in p.stdout and b"--key-file" in p.stdout,
            "--help prints the options")
    for opt in (b"--cache", b"--config-from", b"--show-config"):
        T.check(opt in p.stdout, "--help lists %s" % opt.decode())
    p = run("-h")
    T.equal(p.returncode, 0, "-h exits 0")
    p = run("--version")
    T.equal(p.returncode, 0, "--version exits 0")
    T.check(p.stdout.startswith(b"flechefs-server 0."), "--version: %r" % p.stdout)
    T.equal(run("-V").stdout, p.stdout, "-V is --version")
    usage_error("--serve alone", "--serve", needle="--root")
    usage_error("--root without --serve", "--root", root)
    usage_error("missing root", "--serve", "--root", os.path.join(root, "nope"), needle="nope")
    usage_error("root is a file", "--serve", "--root", os.path.join(root, "calls.db"))
    usage_error("unknown option", "--serve", "--root", root, "--bogus", needle="--bogus")
    usage_error("option without argument", "--serve", "--root")
    usage_error("extra argument", "--serve", "--root", root, "extra", needle="extra")
    usage_error("--calls without --values", "--serve", "--calls", os.path.join(root, "calls.db"))
    usage_error("bad --calls url", "--serve", "--calls", "sqlite:/x", "--values", root)
    for bad in ("0", "-5", "12x", "", "1023", "5G", "99999999999"):
        usage_error("--max-frame %r" % bad, "--serve", "--root", root, "--max-frame", bad)
    usage_error("missing key file", "--serve", "--root", root, "--key-file",
                os.path.join(root, "no-keys"), needle="cannot open")
    with common.temp_dir() as d:
        for content, what in (("abc\n", "odd hex"), ("zz\n", "not hex"), ("# nothing\n", "empty")):
            kf = os.path.join(d, "k")
            with open(kf, "w") as f:
                f.write(content)
            usage_error("key file " + what, "--serve", "--root", root, "--key-file", kf)
    usage_error("bad FLECHE_SECRET_KEY", "--serve", "--root", root, env_key="xyz")


def test_layouts(root):
    with Server(SERVER, ["--serve", "--calls", "sqlite:///" + os.path.join(root, "calls.db"),
                         "--values", os.path.join(root, "values"), "--max-frame", "1M"]) as s:
        h = s.hello()
        T.equal(h["layout"]["root"], None, "explicit layout: no root")
        T.equal(h["layout"]["calls"]["type"], "sql", "explicit sqlite:/// calls")
        T.equal(h["max_frame"], 1024 * 1024, "--max-frame 1M")
        calls = EXP["caches"]["pickle_sql"]["calls"]
        T.equal(s.call("list", "calls")["keys"], sorted(c["key"] for c in calls),
                "explicit sql layout lists the calls")
        T.equal(s.wait(), 0, "clean exit")
    with common.temp_copy("files") as froot:
        with Server(SERVER, ["--serve", "--calls", os.path.join(froot, "calls"), "--values",
                             os.path.join(froot, "values")]) as s:
            h = s.hello()
            T.equal(h["layout"]["calls"], {"type": "files", "path": os.path.join(froot, "calls"),
                                           "present": True, "compress": False},
                    "explicit directory calls")
            T.equal(h["layout"]["fleche_toml"], False, "explicit layout: no fleche.toml")
            info = s.call("info")
            T.check(info["size"] >= sum(os.stat(os.path.join(froot, sub, n)).st_size
                                        for sub in ("calls", "values")
                                        for n in os.listdir(os.path.join(froot, sub))
                                        if len(n) == 64),
                    "info: size covers the call and value files (%d)" % info["size"])
            k = EXP["caches"]["files"]["calls"][0]["key"]
            T.equal(s.call("load", k)["key"], k, "explicit file layout loads")
            T.equal(s.wait(), 0, "clean exit")
    # an empty directory is an empty cache (fleche creates calls/ and values/ lazily)
    with common.temp_dir() as d:
        with Server(SERVER, ["--serve", "--root", d]) as s:
            lay = s.hello()["layout"]
            T.equal((lay["calls"]["present"], lay["values"]["present"], lay["fleche_toml"]),
                    (False, False, False), "empty cache: nothing present")
            T.equal(s.call("list", "calls"), {"keys": [], "complete": True}, "empty cache: calls")
            T.equal(s.call("list", "values"), {"keys": [], "complete": True},
                    "empty cache: values")
            T.equal(s.call("contains", "abcd"), False, "empty cache: contains")
            T.equal(s.wait(), 0, "empty cache: clean exit")
        with open(os.path.join(d, "fleche.toml"), "w") as f:
            f.write("[caches.default]\n")
        os.mkdir(os.path.join(d, "values"))
        with Server(SERVER, ["--serve", "--root", d]) as s:
            info = s.call("info") if s.hello() else None
            T.equal((info["calls"]["present"], info["values"]["present"], info["fleche_toml"],
                     info["call_count"], info["value_count"], info["size"]),
                    (False, True, True, 0, 0, 0), "values/ and fleche.toml: info says so")
            T.equal(s.wait(), 0, "clean exit")


def test_eof():
    with common.temp_copy("files") as root:
        p = subprocess.run([SERVER, "--serve", "--root", root], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        T.equal((p.returncode, p.stdout, p.stderr), (0, b"", b""), "immediate end of input")


def test_man():
    page = os.path.join(common.SOURCE, "man", "flechefs-server.1")
    T.check(os.path.isfile(page), "man/flechefs-server.1 exists")
    if not shutil.which("man"):
        print("note: man(1) not installed, rendering not checked")
        return
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    p = common.run(["man", "--warnings", "-l", page], env=env, timeout=30)
    T.equal(p.returncode, 0, "man renders the page")
    T.equal(p.stderr.decode(), "", "man --warnings prints no warning")
    text = p.stdout.decode("utf-8", "replace")
    for opt in ("--serve", "--root", "--calls", "--values", "--read-only", "--key-file",
                "--max-frame", "--help", "--version", "FLECHE_SECRET_KEY", "PROTOCOL.md",
                "--cache", "--config-from", "--show-config", "fleche.toml", "XDG_CONFIG_HOME"):
        T.check(opt in text.replace("\u2010", "-"), "the manual mentions " + opt)


def main():
    with common.temp_copy("pickle_sql") as root:
        T.run(test_usage, root)
        T.run(test_layouts, root)
    T.run(test_eof)
    T.run(test_man)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
