"""test_python_install.py: `pip install ./python` into a fresh virtual environment that
holds only fleche and msgpack from PyPI (the versions scripts/pyenv.sh pins; pip's
own cache of wheels is used when it has them), then the installed flechefs used as a
user would: run by that environment's Python in isolated mode (-I: no PYTHONPATH,
no source tree on sys.path) from a folder outside the source tree.

- flechefs is imported from the environment's site-packages;
- the stacking line of the READMEs (README.md and python/README.md, taken from them
  verbatim) puts the local cache first and the FlechefsCache behind it: a cached
  function's call is saved into the local cache only, a call only the remote holds
  is a hit (the function does not run) and is copied into the local cache;
- a call saved through FlechefsCache is read back by it.

PyPI unreachable: a skip, except under CI=true, where it is a failure.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

T = common.Checks("python_install")

USE = r'''
import os, sys
import fleche
from fleche.caches import CacheStack
from fleche.call import Call
from flechefs import FlechefsCache

import flechefs
assert os.path.realpath(flechefs.__file__).startswith(os.path.realpath(sys.prefix)), \
    flechefs.__file__
print("flechefs from", flechefs.__file__)

root, server = sys.argv[1], sys.argv[2]
runs = []

@fleche.fleche
def double(x):
    runs.append(x)
    return {"double": 2 * x}

seed = FlechefsCache(root=root, server=server, serializer="pickle")
with fleche.cache(seed):
    double(21)                       # only the remote holds double(21)
seed.close()
assert runs == [21], runs
remote = FlechefsCache(root=root, server=server, serializer="pickle")


def body():
    stack = fleche.cache()
    local = stack.stack[0]
    assert stack.stack[1] is remote, stack
    assert double(21) == {"double": 42} and runs == [21], runs   # a hit from the remote
    assert double(5) == {"double": 10} and runs == [21, 5], runs
    remote_calls = sorted(c.name + repr(sorted(c.arguments.items())) for c in remote.query())
    local_names = sorted(str(k) for k in local.calls.list())
    assert len(local_names) == 2, local_names       # double(21) copied, double(5) saved
    assert len(remote_calls) == 1, remote_calls     # saves went to the local cache only
    k = remote.save(Call(name="direct", arguments={"a": 1}, result=[1, "two"]))
    assert remote.load(k).result == [1, "two"]
    remote.close()


STACK_LINE
print("ok")
'''


def pins():
    """fleche's and msgpack's pinned requirement of scripts/pyenv.sh."""
    with open(os.path.join(common.SOURCE, "scripts", "pyenv.sh"), encoding="utf-8") as f:
        text = f.read()
    found = re.findall(r"\b(fleche==\S+|msgpack==\S+)", text)
    T.equal(len(found), 2, "scripts/pyenv.sh pins fleche and msgpack")
    return found


def stack_lines():
    """The stacking line of each README's Python example."""
    out = {}
    for readme in ("README.md", os.path.join("python", "README.md")):
        with open(os.path.join(common.SOURCE, readme), encoding="utf-8") as f:
            text = f.read()
        lines = [ln.strip() for ln in text.splitlines() if "CacheStack((" in ln]
        T.equal(len(lines), 1, "%s shows one stacking line" % readme)
        if lines:
            out[readme] = lines[0].split("#", 1)[0].strip()
    return out


def main():
    server = common.binary("flechefs-server")
    with common.temp_dir() as d:
        venv = os.path.join(d, "venv")
        r = common.run(["/usr/bin/python3", "-m", "venv", venv], timeout=120)
        if r.returncode != 0:
            common.fail("python3 -m venv: %s" % r.stderr.decode(errors="replace"))
        # a copy, so that pip's build leaves nothing in the source tree
        src = os.path.join(d, "python")
        shutil.copytree(os.path.join(common.SOURCE, "python"), src)
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]
        r = common.run(pip + pins() + [src], timeout=900)
        if r.returncode != 0:
            common.skip_or_fail("pip install ./python with %s from PyPI failed:\n%s"
                                % (" ".join(pins()), r.stderr.decode(errors="replace")))
        py = os.path.join(venv, "bin", "python")
        freeze = common.run([py, "-m", "pip", "freeze"]).stdout.decode()
        T.check(re.search(r"^flechefs\b", freeze, re.M) and "cloudpickle" not in freeze,
                "the environment holds flechefs and fleche's own requirements only:\n%s"
                % freeze)
        for readme, line in stack_lines().items():
            root = os.path.join(d, "cache-" + readme.replace("/", "-"))
            os.makedirs(os.path.join(root, "values"))
            os.makedirs(os.path.join(root, "calls"))
            script = os.path.join(d, "use.py")
            with open(script, "w", encoding="utf-8") as f:
                # the line is a statement, or a with statement whose body runs here
                f.write(USE.replace("STACK_LINE", line + ("\n    body()" if line.endswith(":")
                                                          else "\nbody()")))
            work = tempfile.mkdtemp(dir=d)
            r = common.run([py, "-I", script, root, server], timeout=120, cwd=work,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "HOME": work})
            out = r.stdout.decode() + r.stderr.decode(errors="replace")
            T.check(r.returncode == 0 and out.rstrip().endswith("ok"),
                    "%s's stacking line, run by the installed flechefs:\n%s" % (readme, out))
    sys.exit(T.report())


if __name__ == "__main__":
    main()
