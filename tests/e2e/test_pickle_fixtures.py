#!/usr/bin/python3
"""The pickle reader on every file of the real fleche caches (fixtures/real-cache).

For all four caches: every call and value file is unwrapped (gzip; the 64-hex HMAC
trailer, checked with the fixture's key), read by pkdump, and
  - pk_find_end agrees with the parser on where the pickle ends;
  - every call record gives the name, module, version, code digest, argument and
    result digests and metadata that EXPECTED.json says fleche reads back;
  - every value, with destructured references resolved through other value files,
    equals EXPECTED.json's json/numpy/bytes description of it.
"""
import gzip
import hashlib
import hmac
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import pickle_common as pc  # noqa: E402

DESTRUCTURING = "fleche.storage.destructuring"


def unwrap(raw, key):
    """gunzip, then cut and check an HMAC trailer; returns the pickle bytes."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    end = find_end(raw)
    trailer = raw[end:]
    if trailer:
        assert len(trailer) == 64, f"trailer of {len(trailer)} bytes"
        want = hmac.new(key, raw[:end], hashlib.sha256).hexdigest().encode()
        assert trailer == want, "bad HMAC trailer"
    return raw[:end]


def find_end(raw):
    """pk_find_end through pkdump --find-end."""
    p = subprocess.run([pc.PKDUMP, "--find-end", "-"], input=raw, capture_output=True)
    assert p.returncode == 0, f"pk_find_end failed: {p.stderr!r}"
    return int(p.stdout)


class Cache:
    def __init__(self, root, name, key):
        self.dir = os.path.join(root, name)
        self.key = key
        self.trees = {}

    def load(self, kind, digest):
        if (kind, digest) not in self.trees:
            with open(os.path.join(self.dir, kind, digest), "rb") as f:
                data = unwrap(f.read(), self.key)
            rc, out, err = pc.pkdump(data)
            assert rc == 0, f"{kind}/{digest}: {err}"
            assert out["end"] == len(data)
            self.trees[(kind, digest)] = pc.strip_offsets(out["root"], data)
        return self.trees[(kind, digest)]


def digest_of(t):
    if isinstance(t, dict) and pc.is_object(t, "fleche.digest", "Digest"):
        assert t["digest"] == t["args"]["$tuple"][0]
        return t["digest"]
    return None


def to_py(t, cache, depth=0):
    """The Python value of a tree, resolving Digest references through value files."""
    assert depth < 100, "reference chain too deep"
    if t is None or isinstance(t, (bool, int, str)):
        return t
    if isinstance(t, list):
        return [to_py(x, cache, depth + 1) for x in t]
    if "$float" in t:
        return float(t["$float"])
    if "$tuple" in t:
        return tuple(to_py(x, cache, depth + 1) for x in t["$tuple"])
    if "$dict" in t:
        return {to_py(k, cache, depth + 1): to_py(v, cache, depth + 1) for k, v in t["$dict"]}
    if "$bytes" in t or "$bytearray" in t:
        return pc.tree_bytes(t)
    d = digest_of(t)
    if d is not None:
        return to_py(cache.load("values", d), cache, depth + 1)
    if t.get("$object") == DESTRUCTURING and t["name"] in ("DigestedIterable", "DigestedDict"):
        items = t["state"]["$dict"]
        state = {k: v for k, v in items}
        return to_py(state["items"], cache, depth + 1)
    if t.get("$object") in pc.NUMPY_MODULES:
        return pc.numpy_from_tree(t)
    raise AssertionError(f"no Python value for {str(t)[:200]}")


def to_json(v):
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    return v


def check_call(cache, call, failures):
    where = f"{cache.dir}: call {call['key'][:8]}"
    t = cache.load("calls", call["key"])
    if not (pc.is_object(t, "fleche.call", "DigestedCall") or
            pc.is_object(t, "fleche.call", "Call")):
        failures.append(f"{where}: root is not a call: {str(t)[:200]}")
        return
    state = {k: v for k, v in t["state"]["$dict"]}
    got = {
        "name": state["name"],
        "module": state.get("module"),
        "version": state.get("version"),
        # fleche writes code_digest as a Digest (a str subclass) or None
        "code_digest": digest_of(state.get("code_digest")) or state.get("code_digest"),
        "argument_digests": {k: digest_of(v) for k, v in state["arguments"]["$dict"]},
        "result_digest": digest_of(state["result"]) if state.get("result") else None,
        "metadata": to_json(to_py(state["metadata"], cache)),
    }
    if state["metadata"].get("cls") not in (None, "collections.defaultdict"):
        failures.append(f"{where}: metadata class {state['metadata'].get('cls')}")
    for field, value in got.items():
        if value != call[field]:
            failures.append(f"{where}: {field} {value!r} != {call[field]!r}")


def check_value(cache, value, failures):
    import numpy as np
    where = f"{cache.dir}: value {value['digest'][:8]}"
    t = cache.load("values", value["digest"])
    raw_type = value["raw_python_type"]
    if raw_type.startswith(DESTRUCTURING + "."):
        if not pc.is_object(t, DESTRUCTURING, raw_type.rsplit(".", 1)[1]):
            failures.append(f"{where}: not a {raw_type}: {str(t)[:200]}")
    v = to_py(t, cache)
    want = value["value"]
    if "numpy" in want:
        w = want["numpy"]
        if (str(v.dtype.str) != w["dtype"] or list(v.shape) != w["shape"] or
                not np.array_equal(v, np.array(w["data"], dtype=v.dtype))):
            failures.append(f"{where}: array {v!r} != {w}")
    elif "sha256" in want:
        if len(v) != want["len"] or hashlib.sha256(v).hexdigest() != want["sha256"]:
            failures.append(f"{where}: bytes differ")
    elif to_json(v) != want["json"] or type(to_json(v)) is not type(want["json"]):
        failures.append(f"{where}: {to_json(v)!r} != {want['json']!r}")
    pytype = want["python_type"].split(".", 1)[1]
    if pytype not in ("ndarray",) and type(v).__name__ != pytype:
        failures.append(f"{where}: type {type(v).__name__} != {pytype}")


def main():
    root = common.fixtures_dir()  # skips, or fails under CI, without the fixtures
    if not os.access(pc.PKDUMP, os.X_OK):
        print(f"pkdump not built at {pc.PKDUMP}")
        return 1
    with open(os.path.join(root, "EXPECTED.json")) as f:
        expected = json.load(f)
    key = bytes.fromhex(expected["secret_key_hex_for_cache_signed"])
    failures = []
    nfiles = ncalls = nvalues = 0
    for name, exp in expected["caches"].items():
        cache = Cache(root, name, key)
        for kind in ("calls", "values"):
            d = os.path.join(cache.dir, kind)
            if not os.path.isdir(d):
                continue
            for fn in sorted(os.listdir(d)):
                if fn.startswith(".") or fn.endswith(".lock"):
                    continue
                try:
                    cache.load(kind, fn)
                    nfiles += 1
                except AssertionError as e:
                    failures.append(f"{name}/{kind}/{fn}: {e}")
        for call in exp["calls"]:
            if "call_file" in call:
                check_call(cache, call, failures)
                ncalls += 1
        for value in exp["values"]:
            try:
                check_value(cache, value, failures)
            except AssertionError as e:
                failures.append(f"{name}: value {value['digest'][:8]}: {e}")
            nvalues += 1
    for f in failures:
        print("FAIL", f)
    print(f"{nfiles} files parsed, {ncalls} call records and {nvalues} values checked, "
          f"{len(failures)} failures")
    if ncalls == 0 or nvalues == 0:
        print("nothing checked")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
