"""test_server_config.py: flechefs-server finds its cache in fleche.toml as the real fleche
(0.22.2, from the test environment) does.

For a corpus of configurations (three fleche.toml files on an upward walk plus the
user's file, every form: templates, explicit storages with dotted keys, inline and
sub-tables, relative, ~ and symlinked paths, sqlite:/// URLs, compress, secret keys
from the file and from FLECHE_SECRET_KEY, read_only, max_size, stacks of 2 and 3
layers, a pool, root = true, the XDG default), the server's --show-config equals what
fleche resolves for the same directory and name (its remote server's redacted
cache_to_config), hello and info carry the same; then fleche saves calls through each
configuration (into every layer of a stack) and the server serves every one of them
(list, load, load_value) through `--serve --cache NAME`. Unsupported storages and
malformed files: one line on stderr naming the file, the table and the type, a
non-zero exit, nothing on stdout.
"""

import json
import os
import pickle
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_config")
SERVER = common.binary("flechefs-server")
PY = common.fleche_python()
ENV_KEY = "5eed" * 8
FILE_KEYS = ["00ff" * 8, "abcd" * 8 + ":" + "1234" * 8]

# What fleche resolves, saves and stores, run in the fleche environment.
FLECHE_SIDE = r'''
import json, os, sys, warnings
warnings.simplefilter("ignore")
import fleche, fleche.caches as K, fleche.config as C, fleche.remote as R

def unwrap(c):
    while isinstance(c, (K.ReadOnlyCache,)):
        c = c.cache
    return c

def layers(name):
    merged = C._load_merged_config()
    if name in (None, "default"):
        d = merged["default"]["cache"]
        d = merged[d] if isinstance(d, str) else d
    else:
        d = merged[name]
    if isinstance(d, dict) and "pool" in d:
        return d["pool"]
    return d if isinstance(d, list) else [d]

def writable(cfg):
    cfg = dict(cfg)
    cfg.pop("read_only", None)
    return C.cache_from_config(cfg)

@fleche.fleche
def sample(tag, layer):
    return [tag, layer, "v" * layer]

op, name, tag = sys.argv[1], (sys.argv[2] or None), sys.argv[3]
if op == "resolve":
    cache = C.load_cache_config(name)
    files = []
    for p in C._collect_config_paths():
        files.append(str(p))
        if C._is_root_config(C._load_config(p)):
            break
    print(json.dumps({"cache": R._redact_config(C.cache_to_config(cache)),
                      "read_only": R._is_read_only(cache), "files": files}))
elif op == "save":
    out = []
    for i, cfg in enumerate(layers(name)):
        cache = writable(cfg)
        with fleche.cache(cache):
            sample(tag, i)
        out.append(sorted(str(k) for k in unwrap(cache).calls.list()))
    print(json.dumps(out))
'''


def fleche_side(env, cwd, op, name, tag=""):
    p = common.run([PY, "-c", FLECHE_SIDE, op, name or "", tag], env=env, cwd=cwd, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("fleche %s %s failed: %s" % (op, name, p.stderr.decode()[-2000:]))
    return json.loads(p.stdout)


def server_env(home, xdg=None, key=None):
    env = dict(os.environ, HOME=home)
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("FLECHE_SECRET_KEY", None)
    if xdg:
        env["XDG_CONFIG_HOME"] = xdg
    if key:
        env["FLECHE_SECRET_KEY"] = key
    return env


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def show_config(env, cwd, name):
    args = [SERVER, "--show-config"] + (["--cache", name] if name else [])
    p = common.run(args, env=env, cwd=cwd, timeout=30)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def all_keys(s, kind):
    keys, after = [], None
    while True:
        page = s.call("list", kind, after, 2, False)
        keys += page["keys"]
        if page["complete"] or not page["keys"]:
            return keys
        after = page["keys"][-1]


def check_name(env, cwd, name, what):
    """--show-config against fleche; a save through fleche read back by the server."""
    want = fleche_side(env, cwd, "resolve", name)
    p, got = show_config(env, cwd, name)
    if not T.equal(p.returncode, 0, "%s: --show-config exits 0 (%s)" % (what, p.stderr)):
        return
    T.equal(got["cache"], want["cache"], what + ": the resolved cache is fleche's")
    T.equal(got["read_only"], want["read_only"], what + ": read_only as fleche's")
    T.equal(got["files"], want["files"], what + ": the files read are fleche's")
    T.equal(got["cache_name"], name, what + ": cache_name")
    tag = "t-" + (name or "none")
    saved = fleche_side(env, cwd, "save", name, tag)
    union = sorted(set(k for layer in saved for k in layer))
    args = ["--serve", "--config-from", cwd] + (["--cache", name] if name else [])
    with Server(SERVER, args, env=env) as s:
        hello = s.hello()
        T.equal(hello.get("config"), got, what + ": hello's config is --show-config's")
        info = s.call("info")
        T.equal(info.get("config"), got, what + ": info's config is --show-config's")
        T.equal(info["call_count"], len(union), what + ": info counts the union of the layers")
        T.equal(all_keys(s, "calls"), union, what + ": the server lists every layer's calls")
        found = set()
        for k in union:
            T.check(s.call("contains", k[:10]) is True, what + ": contains %s" % k[:10])
            T.equal(s.call("expand", k[:10]), k, what + ": expand %s" % k[:10])
            short = s.call("shrink", k)
            # (as fleche's stacks do, only the layers holding the key are asked)
            T.check(k.startswith(short) and len(short) >= 4,
                    what + ": shrink %s -> %s" % (k[:10], short))
            rec = s.call("load", k)
            blob = s.call("load_value", rec["result"], 0, 1 << 20, None)
            value = pickle.loads(blob)
            if rec["name"].endswith("sample") and value[0] == tag:
                found.add(value[1])
        T.equal(sorted(found), list(range(len(saved))),
                what + ": the call fleche saved in each layer is read through the server")
    T.equal(s.proc.returncode, 0, what + ": the server ends cleanly")


def corpus_walk(tmp):
    """Three files on the walk from cwd up to $HOME, plus $XDG_CONFIG_HOME's."""
    home = os.path.join(tmp, "home")
    cwd = os.path.join(home, "p", "a", "b")
    os.makedirs(cwd)
    os.makedirs(os.path.join(tmp, "real"))
    os.symlink(os.path.join(tmp, "real"), os.path.join(home, "p", "a", "linkdir"))
    write(os.path.join(home, "p", "fleche.toml"), '''
# the farthest file: its [default] and [shadowed] lose to nothing and to a closer file
[default]
cache = "far"
metadata = ["Runtime"]

[far]
template = "pickle"
root = "farcache"

[shadowed]
template = "pickle"
root = "far-shadow"

[[stack3]]
values.type = "pickle"
values.root = "./s3/one/../one/values"
calls.type = "pickle"
calls.root = "s3/one/calls"

[[stack3]]
template = "cloudpickle"
root = "~/s3two"

[[stack3]]
template = "sql"
values = "dill"
root = "s3three"
read_only = true
''')
    write(os.path.join(home, "p", "a", "fleche.toml"), '''
[shadowed]
template = "cloudpickle"
root = "near-shadow"

[signed]
max_size = 100
[signed.values]
type = "pickle"
root = "signed/values"
compress = true
secret_key = ["%s", "%s"]
remaining_depth = 2
[signed.calls]
type = "pickle"
root = "signed/calls"
compress = true
secret_key = ["%s", "%s"]

[dotted]
values.type = 'dill'
"values".root = """dotted/values"""
calls = { type = "dill", root = 'dotted/calls', lock_timeout = 2.5 }

[sqlurl]
values = {type = "cloudpickle", root = "sqlurl/values"}
calls = {type = "sql", url = "sqlite:///sqlurl/calls.db", echo = false}

[ro]
template = "dill"
root = "ro"
read_only = true
max_size = 5

[[stack2]]
template = "pickle"
root = "s2/first"

[[stack2]]
template = "cloudpickle"
root = "s2/second"
read_only = true

[mypool]
pool = [{template = "pickle", root = "pool/one"}, {template = "dill", root = "pool/two"}]

[linked]
template = "pickle"
root = "linkdir/c"
''' % (FILE_KEYS[0], FILE_KEYS[1], FILE_KEYS[0], FILE_KEYS[1]))
    write(os.path.join(cwd, "fleche.toml"), '''
[env]
template = "pickle"
root = "../envcache"

[inline]
values = {type = "cloudpickle", root = "~/inline/values", compress = true}
calls = {type = "cloudpickle", root = "~/inline/calls"}
''')
    xdg = os.path.join(tmp, "xdg")
    write(os.path.join(xdg, "fleche", "cache.toml"), '''
[user]
template = "sql"
values = "pickle"
root = "~/usercache"
url = "sqlite:///~/usercache/other.db"

[far]
template = "pickle"
root = "/nowhere/this/loses"
''')
    env = server_env(home, xdg=xdg, key=ENV_KEY)
    for name in (None, "default", "far", "shadowed", "stack3", "signed", "dotted", "sqlurl",
                 "ro", "stack2", "mypool", "linked", "env", "inline", "user"):
        check_name(env, cwd, name, "walk [%s]" % name)


def corpus_root_true(tmp):
    """root = true stops the walk: farther files and the user file take no part."""
    home = os.path.join(tmp, "home")
    cwd = os.path.join(home, "q", "r")
    write(os.path.join(home, "q", "fleche.toml"), '[other]\ntemplate = "pickle"\nroot = "o"\n')
    write(os.path.join(cwd, "fleche.toml"),
          '[default]\nroot = true\ncache = "local"\n[local]\ntemplate = "dill"\nroot = "c"\n')
    write(os.path.join(home, ".config", "fleche", "cache.toml"),
          '[user]\ntemplate = "pickle"\nroot = "u"\n')
    env = server_env(home)
    check_name(env, cwd, None, "root = true [default]")
    for name in ("other", "user"):
        p, _ = show_config(env, cwd, name)
        T.check(p.returncode != 0 and b"no cache '%s'" % name.encode() in p.stderr,
                "root = true: [%s] beyond it is not found: %r" % (name, p.stderr))


def corpus_xdg_default(tmp):
    """No fleche.toml on the walk: ~/.config/fleche/cache.toml (XDG_CONFIG_HOME unset)."""
    home = os.path.join(tmp, "home")
    cwd = os.path.join(home, "w")
    os.makedirs(cwd)
    write(os.path.join(home, ".config", "fleche", "cache.toml"),
          '[default]\ncache = {template = "cloudpickle", root = "rel"}\n')
    check_name(server_env(home), cwd, None, "user file, inline default")


BAD = [
    # (what, fleche.toml, name, substrings of the one line on stderr)
    ("memory template", '[m]\ntemplate = "memory"\n', "m", ["[m]", "'memory'"]),
    ("void storage", '[v]\nvalues.type = "void"\ncalls.type = "void"\n', "v",
     ["[v]", "values.type 'void'"]),
    ("hdf values", '[h]\nvalues = {type = "bagofholding_hdf", root = "x"}\n'
     'calls = {type = "pickle", root = "y"}\n', "h", ["[h]", "'bagofholding_hdf'"]),
    ("sql template's default values", '[s]\ntemplate = "sql"\nroot = "x"\n', "s",
     ["[s]", "'bagofholding_hdf'"]),
    ("nested ssh", '[[n]]\ntemplate = "pickle"\nroot = "x"\n[[n]]\ntype = "ssh"\n'
     'host = "elsewhere"\n', "n", ["[[n]] #2", "'ssh'"]),
    ("in-memory sql", '[q]\nvalues = {type = "pickle", root = "x"}\ncalls = {type = "sql"}\n',
     "q", ["[q]", "in-memory"]),
    ("postgres", '[g]\nvalues = {type = "pickle", root = "x"}\n'
     'calls = {type = "sql", url = "postgresql://u:pw@db/x"}\n', "g",
     ["[g]", "postgresql://"]),
    ("built-in memory name", '[x]\ntemplate = "pickle"\nroot = "x"\n', "memory",
     ["'memory'"]),
    ("unknown name", '[x]\ntemplate = "pickle"\nroot = "x"\n', "nosuch", ["'nosuch'"]),
    ("unknown template", '[t]\ntemplate = "zip"\nroot = "x"\n', "t", ["[t]", "'zip'"]),
    ("unexpected key", '[k]\ntemplate = "pickle"\nroot = "x"\nextra = 1\n', "k",
     ["[k]", "'extra'"]),
    ("no calls", '[c]\nvalues = {type = "pickle", root = "x"}\n', "c", ["[c]", "calls"]),
    ("malformed: duplicate key", '[d]\ntemplate = "pickle"\ntemplate = "dill"\n', "d",
     [":3:1:", "duplicate key"]),
    ("malformed: bad string", '[d]\nroot = "abc\n', "d", [":2:", "newline"]),
    ("malformed: table twice", '[a]\n[b]\n[a]\n', "a", [":3:2:", "already defined"]),
]


def test_bad(tmp):
    home = os.path.join(tmp, "home")
    for i, (what, text, name, needles) in enumerate(BAD):
        d = os.path.join(home, "bad%d" % i)
        path = os.path.join(d, "fleche.toml")
        write(path, text)
        for args in (["--serve", "--cache", name], ["--show-config", "--cache", name]):
            p = common.run([SERVER] + args, env=server_env(home), cwd=d, timeout=20,
                           stdin=subprocess.DEVNULL)
            err = p.stderr.decode()
            T.check(p.returncode != 0, "%s (%s): non-zero exit" % (what, args[0]))
            T.equal(p.stdout, b"", "%s (%s): nothing on stdout" % (what, args[0]))
            T.equal(err.count("\n"), 1, "%s (%s): one line: %r" % (what, args[0], err))
            if name not in ("memory", "nosuch"):
                T.check(path in err, "%s: the line names the file: %r" % (what, err))
            for n in needles:
                T.check(n in err, "%s: the line says %r: %r" % (what, n, err))


def test_paths_win(tmp):
    """Explicit paths are served even where fleche.toml names another cache."""
    home = os.path.join(tmp, "home")
    d = os.path.join(home, "pw")
    write(os.path.join(d, "fleche.toml"), '[default]\ncache = "m"\n[m]\ntemplate = "memory"\n')
    here = os.getcwd()
    os.chdir(d)
    try:
        with common.temp_copy("files") as root:
            with Server(SERVER, ["--serve", "--root", root], env=server_env(home)) as s:
                T.check("config" not in s.hello(), "--root: no config field")
                T.check(s.call("info")["call_count"] > 0, "--root: the cache is served")
    finally:
        os.chdir(here)


def test_fresh_layer(tmp):
    """A stack layer fleche never wrote to reads as empty; the others are served."""
    home = os.path.join(tmp, "home")
    d = os.path.join(home, "fresh")
    with common.temp_copy("files") as root:
        write(os.path.join(d, "fleche.toml"), '[[st]]\ntemplate = "pickle"\nroot = "never"\n'
              '[[st]]\ntemplate = "cloudpickle"\nroot = "%s"\n' % root)
        want = sorted(c["key"] for c in common.expected()["caches"]["files"]["calls"])
        with Server(SERVER, ["--serve", "--config-from", d, "--cache", "st"],
                    env=server_env(home)) as s:
            s.hello()
            T.equal(all_keys(s, "calls"), want, "fresh first layer: the second is served")
            T.equal(len(s.call("info")["config"]["cache"]), 2, "info describes both layers")
            err = s.stderr_text()
            T.check("[[st]] #1" in err and "read as empty" in err,
                    "fresh first layer: said on stderr: %r" % err)
        T.check(not os.path.exists(os.path.join(d, "never")), "nothing created for it")


def main():
    for fn in (corpus_walk, corpus_root_true, corpus_xdg_default, test_bad, test_paths_win,
               test_fresh_layer):
        with common.temp_dir() as tmp:
            T.run(fn, os.path.realpath(tmp))
    sys.exit(T.report())


if __name__ == "__main__":
    main()
