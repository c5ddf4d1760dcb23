"""test_python_cache.py: the Python package flechefs (python/): FlechefsCache, a fleche
cache served by flechefs-server, reads what the real fleche wrote exactly as fleche
reads it.

The real fleche (scripts/pyenv.sh's environment; this script runs itself again under
that Python) writes one cache per layout with gen_fleche_caches.py: cloudpickle and
dill files, pickle values with SQLite calls, gzip, signed. Then, for each layout, with
the server started locally and through ssh to a private sshd (tests/e2e/sshd_fixture.py,
with workdir and setup_commands):

- every call record `load`s equal to what fleche loads (digests, metadata), every value
  file `load_value`s to a value equal to fleche's (destructured values reassembled);
- contains, expand and shrink answer as fleche's cache does for call keys, value keys,
  prefixes, absent and malformed keys (the same answers and exception types);
- query answers the same calls as fleche's for templates the server matches (name,
  module, version, arguments, metadata) and those filtered here (result, None values
  of metadata filters);
- evict removes the call (fleche no longer finds it); with --read-only, save and evict
  raise fleche's Rejected, as fleche's read-only cache does, and nothing changes;
- 8 threads sharing one FlechefsCache (through ssh) get the same answers;
- a server that cannot start is ConnectionLost with its exit code and stderr.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
import numpy as np  # noqa: E402
from fleche.caches import Rejected  # noqa: E402
from fleche.call import Call, QueryCall  # noqa: E402
from fleche.config import cache_from_config  # noqa: E402
from fleche.digest import Digest  # noqa: E402
from fleche.storage.base import AmbiguousDigestError  # noqa: E402

import sshd_fixture  # noqa: E402
from flechefs import ConnectionLost, FlechefsCache  # noqa: E402

T = common.Checks("python_cache")
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_HEX = "7465737473656372657400ff"  # gen_fleche_caches.SECRET_HEX
SERIALIZER = {"cloudpickle": "cloudpickle", "dill": "dill", "pickle_sql": "pickle",
              "gzip": "cloudpickle", "signed": "cloudpickle"}
LAYOUTS = None  # gen_fleche_caches.LAYOUTS, imported in the generated directory


def same(a, b):
    """Equal values, as far as Python can tell: the same type name, then numpy arrays
    by dtype, shape and elements, NaN equal to NaN, containers element by element,
    classes by name, functions by name and code, instances by their attributes
    (classes pickled by value are new classes at each load: their instances are
    compared field by field)."""
    ta, tb = type(a), type(b)
    if (ta.__module__, ta.__qualname__) != (tb.__module__, tb.__qualname__):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and (
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, type):
        return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
    if hasattr(a, "__code__"):
        return a.__qualname__ == b.__qualname__ and \
            a.__code__.co_code == b.__code__.co_code
    if ta is tb:
        try:
            if bool(a == b):
                return True
        except Exception:  # noqa: BLE001 (an __eq__ that cannot answer)
            pass
    if hasattr(a, "__dict__") and hasattr(b, "__dict__"):
        return same(vars(a), vars(b))
    slots = [n for c in ta.__mro__ for n in getattr(c, "__slots__", ())
             if n not in ("__weakref__", "__dict__")]
    if slots:
        return all(same(getattr(a, n, None), getattr(b, n, None)) for n in slots)
    return ta is tb and repr(a) == repr(b)


def outcome(fn, *args):
    """("ok", value) or ("raise", exception type) of fn(*args)."""
    try:
        return ("ok", fn(*args))
    except Exception as e:  # noqa: BLE001
        return ("raise", type(e))


def same_outcome(what, a, b):
    if a[0] == "raise" or b[0] == "raise":
        T.equal(b if b[0] == "raise" else ("ok", "a value"),
                a if a[0] == "raise" else ("ok", "a value"), what)
    else:
        T.check(same(a[1], b[1]), "%s: %r equals fleche's %r" % (what, b[1], a[1]))


def record(lc):
    d = lc.detach()
    return (d.name, d.module, d.version, d.code_digest, dict(d.arguments), d.result,
            json.dumps(d.metadata, sort_keys=True, default=repr))


def check_layout(label, ref, fc, vdir):
    call_keys = sorted(str(k) for k in ref.calls.list())
    value_keys = sorted(k for k in os.listdir(vdir) if not k.startswith("."))
    T.check(len(call_keys) > 5 and len(value_keys) > 20,
            "%s: fleche wrote %d calls and %d values" % (label, len(call_keys),
                                                          len(value_keys)))
    for k in call_keys:
        a, b = ref.load(k), fc.load(k)
        T.equal(record(b), record(a), "%s: load %s" % (label, k[:12]))
        T.equal(b.to_lookup_key(), k, "%s: lookup key of the loaded %s" % (label, k[:12]))
        T.equal(record(fc.load(k[:10])), record(a), "%s: load by prefix" % label)
    values = 0
    for k in value_keys:
        same_outcome("%s: load_value %s" % (label, k[:12]), outcome(ref.load_value, k),
                     outcome(fc.load_value, k))
        values += 1
    # a loaded call's values come through this cache
    for k in call_keys:
        same_outcome("%s: result of %s" % (label, k[:12]), outcome(lambda: ref.load(k).result),
                     outcome(lambda: fc.load(k).result))
    probes = [call_keys[0], call_keys[0][:8], value_keys[0], value_keys[0][:8],
              "0" * 64, "00000000", "abc", "xyz!", "f" * 70]
    all_keys = sorted(call_keys + value_keys)
    lcp = max(len(os.path.commonprefix([x, y])) for x, y in zip(all_keys, all_keys[1:]))
    if lcp >= 4:  # a prefix two keys share: ambiguous in both
        x, y = next((x, y) for x, y in zip(all_keys, all_keys[1:])
                    if len(os.path.commonprefix([x, y])) == lcp)
        probes.append(x[:lcp])
    for p in probes:
        for op in ("contains", "expand"):
            same_outcome("%s: %s(%r)" % (label, op, p), outcome(getattr(ref, op), p),
                         outcome(getattr(fc, op), p))
    for k in call_keys[:3] + value_keys[:3] + ["0" * 64]:
        same_outcome("%s: shrink(%s)" % (label, k[:12]), outcome(ref.shrink, k),
                     outcome(fc.shrink, k))
    T.equal(fc.shrink(*call_keys[:3]), ref.shrink(*call_keys[:3]), "%s: shrink of 3" % label)

    scale_call = ref.load(next(k for k in call_keys if ref.load(k).name == "scale"))
    templates = [
        QueryCall(),
        QueryCall(name="make"),
        QueryCall(name="norm", version=2),
        QueryCall(name="scale", module="__main__"),
        QueryCall(name="nothing-is-called-this"),
        QueryCall(arguments={"values": Digest(scale_call.detach().arguments["values"])}),
        QueryCall(arguments={"values": [1.0, 2.5]}),
        QueryCall(metadata={"tags": {"run": "generated"}}),
        QueryCall(metadata={"tags": {"ratio": None}}),
        QueryCall(metadata={"runtime": None}),
        QueryCall(result=scale_call.detach().result),
    ]
    for t in templates:
        try:
            want = sorted(str(c.to_lookup_key()) for c in ref.query(t))
        except Exception as e:  # noqa: BLE001 (fleche's SQL storage fails some)
            print("%s: fleche itself fails query %r: %s" % (label, t, type(e).__name__))
            continue
        got = sorted(str(c.to_lookup_key()) for c in fc.query(t))
        T.equal(got, want, "%s: query %r" % (label, t))
    T.check(len(list(ref.query(QueryCall()))) == len(call_keys),
            "%s: the empty template finds every call" % label)
    print("%s: %d calls, %d values, %d probes, %d templates" % (
        label, len(call_keys), values, len(probes), len(templates)), flush=True)


def check_threads(label, ref, fc, vdir):
    """8 threads share one FlechefsCache: every answer is the one fleche gives."""
    import threading
    call_keys = sorted(str(k) for k in ref.calls.list())
    value_keys = sorted(k for k in os.listdir(vdir) if not k.startswith("."))
    want_calls = {k: record(ref.load(k)) for k in call_keys}
    want_values = {k: outcome(ref.load_value, k) for k in value_keys}
    bad = []

    def work(i):
        for n in range(3):
            for k in call_keys[i % 3::3]:
                if record(fc.load(k)) != want_calls[k]:
                    bad.append(("load", k))
            for k in value_keys[(i + n) % 4::4]:
                got = outcome(fc.load_value, k)
                want = want_values[k]
                if (got[0], want[0]) != ("ok", "ok") and got != want or \
                        got[0] == "ok" and not same(got[1], want[1]):
                    bad.append(("load_value", k))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    T.equal(bad[:5], [], "%s: 8 threads sharing one cache get fleche's answers" % label)


def check_writes(label, ref, fc, fc_ro, call_keys):
    """evict through the server; read-only refusals."""
    victim = call_keys[-1]
    T.check(ref.contains(victim), "%s: %s is there before evict" % (label, victim[:12]))
    for op, fn in (("evict", lambda: fc_ro.evict(victim)),
                   ("save", lambda: fc_ro.save(Call(name="f", arguments={}, result=1)))):
        ro_ref = ref.readonly()
        want = outcome(lambda: getattr(ro_ref, op)(
            victim if op == "evict" else Call(name="f", arguments={}, result=1)))
        got = outcome(fn)
        T.equal(got, want, "%s: %s on a read-only server" % (label, op))
        T.equal(got, ("raise", Rejected), "%s: %s read-only is Rejected" % (label, op))
    T.check(ref.contains(victim), "%s: a read-only evict removed nothing" % label)
    fc.evict(victim)
    T.check(not ref.contains(victim), "%s: evicted through flechefs, fleche no longer "
                                      "finds %s" % (label, victim[:12]))
    T.equal(outcome(fc.load, victim)[:2], ("raise", KeyError),
            "%s: load of an evicted call" % label)
    fc.evict(victim)  # a full key no longer stored: nothing to do, as fleche


def make_caches(d):
    gen = os.path.join(d, "gen")
    r = subprocess.run([sys.executable, os.path.join(HERE, "gen_fleche_caches.py"), gen],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        common.fail("gen_fleche_caches.py failed:\n" + r.stdout.decode(errors="replace"))
    return gen


def fleche_cache(gen, name):
    global LAYOUTS
    if LAYOUTS is None:
        import gen_fleche_caches
        LAYOUTS = gen_fleche_caches.LAYOUTS
    os.chdir(gen)
    if name == "signed":
        os.environ["FLECHE_SECRET_KEY"] = SECRET_HEX
    else:
        os.environ.pop("FLECHE_SECRET_KEY", None)
    return cache_from_config(json.loads(json.dumps(LAYOUTS[name])))


def main():
    server = common.binary("flechefs-server")
    sshd_fixture.require_sshd()
    with common.temp_dir() as d:
        gen = make_caches(d)
        with sshd_fixture.Sshd() as sshd:
            sshd.trust_host_key()
            for name in ("cloudpickle", "dill", "pickle_sql", "gzip", "signed"):
                ref = fleche_cache(gen, name)
                vdir = os.path.join(gen, name, "values")
                # local: the server inherits FLECHE_SECRET_KEY and runs in gen
                local = FlechefsCache(root=name, server=server, workdir=gen,
                                      serializer=SERIALIZER[name])
                setup = ("export FLECHE_SECRET_KEY=%s" % SECRET_HEX,) if name == "signed" else ()
                remote = FlechefsCache(host=sshd.host, root=os.path.join(gen, name),
                                       server=server, ssh_options=sshd.ssh_args(),
                                       setup_commands=setup, serializer=SERIALIZER[name])
                ro = FlechefsCache(root=os.path.join(gen, name), server=server,
                                   server_args=("--read-only",),
                                   serializer=SERIALIZER[name])
                try:
                    keys = sorted(str(k) for k in ref.calls.list())
                    T.run(check_layout, name + " local", ref, local, vdir)
                    T.run(check_layout, name + " ssh", ref, remote, vdir)
                    T.run(check_threads, name + " ssh", ref, remote, vdir)
                    T.run(check_writes, name, ref, remote, ro, keys)
                    T.check(ro.read_only and not local.read_only, "%s: read_only" % name)
                    info = remote.info()
                    T.check(info.get("program") == "flechefs-server"
                            and isinstance(info.get("call_count"), int),
                            "%s: info() %r" % (name, info))
                finally:
                    for c in (local, remote, ro):
                        c.close()
            broken = FlechefsCache(host=sshd.host, server=server, ssh_options=sshd.ssh_args(),
                                   setup_commands=("echo cannot-set-up >&2", "exit 3"))
            got = outcome(broken.contains, "0" * 64)
            T.equal(got[0:2], ("raise", ConnectionLost), "a server that cannot start")
            try:
                broken.contains("0" * 64)
            except ConnectionLost as e:
                T.check("remote exit code: 3" in str(e) and "cannot-set-up" in str(e),
                        "the error carries the exit code and stderr: %s" % e)
            broken.close()
    sys.exit(T.report())


if __name__ == "__main__":
    main()
