"""test_server_signed.py: flechefs-server on the HMAC-signed fixture cache: with the
right key (from FLECHE_SECRET_KEY and from --key-file, also when it is not the first
key), with no key (served unverified as fleche does, trailer removed, and one notice
on stderr), with a wrong key (EBADMSG), and on a copy whose files were altered by one
byte or lost their signature (EBADMSG for those files only).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_signed")
SERVER = common.binary("flechefs-server")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]
SIGNED = EXP["caches"]["signed"]
CALLS = [c["key"] for c in SIGNED["calls"]]
VALUES = [v["digest"] for v in SIGNED["values"]]
WRONG = "00" * 27


def start(root, env_key=None, args=()):
    env = {"FLECHE_SECRET_KEY": env_key} if env_key is not None else None
    return Server(SERVER, ["--serve", "--root", root] + list(args), extra_env=env)


def name(err):
    return err["name"] if isinstance(err, dict) else None


def payload(root, key):
    with open(os.path.join(root, "values", key), "rb") as f:
        return common.unwrap_file(f.read(), KEY)


def read_everything(s, root, what):
    """Loads every call and value; returns the (error, result) pairs."""
    reqs = [("load", [k]) for k in CALLS] + [("load_value", [k, 0, 1 << 20]) for k in VALUES] \
        + [("stat_value", [k]) for k in VALUES]
    return s.pipeline(reqs)


def expect_all_ok(s, root, what):
    answers = read_everything(s, root, what)
    n = len(CALLS)
    for c, (e, r) in zip(SIGNED["calls"], answers[:n]):
        T.check(e is None and r["key"] == c["key"] and r["result"] == c["result_digest"]
                and r["metadata"] == c["metadata"], "%s: load %s: %r" % (what, c["key"][:8], e))
    for k, (e, r) in zip(VALUES, answers[n:n + len(VALUES)]):
        T.check(e is None and r == payload(root, k),
                "%s: load_value %s is the payload without trailer: %r" % (what, k[:8], e))
    for k, (e, r) in zip(VALUES, answers[n + len(VALUES):]):
        T.check(e is None and r["size"] == len(payload(root, k)),
                "%s: stat_value %s size: %r" % (what, k[:8], e or r))


def test_right_key(root):
    with start(root, KEY) as s:
        h = s.hello()
        T.equal((h["layout"]["signed"], h["layout"]["key_count"]), (True, 1), "env key: layout")
        expect_all_ok(s, root, "env key")
        T.equal(s.wait(), 0, "env key: clean exit")
        T.equal(s.stderr_text(), "", "env key: nothing on stderr")
    # several keys: the right one second (any key verifies)
    with start(root, WRONG + ":" + KEY) as s:
        T.equal(s.hello()["layout"]["key_count"], 2, "two env keys")
        expect_all_ok(s, root, "second env key")
    with common.temp_dir() as d:
        kf = os.path.join(d, "keys")
        with open(kf, "w") as f:
            f.write("# keys of the signed cache\n%s\n%s\n" % (WRONG, KEY.upper()))
        # the key file wins over the environment
        with start(root, WRONG, ["--key-file", kf]) as s:
            T.equal(s.hello()["layout"]["key_count"], 2, "key file: two keys")
            expect_all_ok(s, root, "key file")
            T.equal(s.wait(), 0, "key file: clean exit")


def test_no_key(root):
    with start(root) as s:
        h = s.hello()
        T.equal((h["layout"]["signed"], h["layout"]["key_count"]), (False, 0), "no key: layout")
        expect_all_ok(s, root, "no key")
        expect_all_ok(s, root, "no key, again")
        T.equal(s.wait(), 0, "no key: clean exit")
        err = s.stderr_text()
        lines = [ln for ln in err.splitlines() if ln]
        T.equal(len(lines), 1, "no key: exactly one notice on stderr: %r" % err)
        T.check(lines and lines[0].startswith("flechefs-server: ")
                and "sign" in lines[0].lower(), "no key: the notice is about signatures: %r" % err)


def test_wrong_key(root):
    with start(root, WRONG) as s:
        s.hello()
        answers = read_everything(s, root, "wrong key")
        T.check(all(name(e) == "EBADMSG" and r is None for e, r in answers),
                "wrong key: everything is EBADMSG: %r" % [e and e["name"] for e, _ in answers])
        T.check(all(e["errno"] == 74 for e, _ in answers if e), "EBADMSG errno 74")
        # keys are still listed and contains still answers: only the files' contents fail
        T.equal(s.call("list", "calls")["keys"], sorted(CALLS), "wrong key: calls listed")
        T.equal(s.call("contains", CALLS[0]), True, "wrong key: contains")
        T.equal(s.wait(), 0, "wrong key: clean exit")
        T.check("flechefs-server: " in s.stderr_text(), "wrong key: refusals are logged")


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_altered(cache_name):
    with common.temp_copy(cache_name) as root:
        vals, calls = VALUES, CALLS
        flip(os.path.join(root, "values", vals[0]), 3)           # inside the pickle
        flip(os.path.join(root, "values", vals[1]), -1 + os.path.getsize(
            os.path.join(root, "values", vals[1])))              # inside the signature
        with open(os.path.join(root, "values", vals[2]), "r+b") as f:
            f.truncate(os.path.getsize(os.path.join(root, "values", vals[2])) - 64)  # no trailer
        flip(os.path.join(root, "calls", calls[0]), 40)          # a call record
        bad_values = set(vals[:3])
        with start(root, KEY) as s:
            s.hello()
            for k in VALUES:
                err, res = s.try_call("load_value", k, 0, 1 << 20)
                if k in bad_values:
                    T.equal(name(err), "EBADMSG", "altered value %s" % k[:8])
                    err, _ = s.try_call("stat_value", k)
                    T.equal(name(err), "EBADMSG", "stat_value of altered value %s" % k[:8])
                else:
                    T.check(err is None and res == payload(root, k), "intact value %s" % k[:8])
            err, _ = s.try_call("load", calls[0])
            T.equal(name(err), "EBADMSG", "altered call record")
            for k in calls[1:]:
                err, res = s.try_call("load", k)
                T.check(err is None and res["key"] == k, "intact call %s" % k[:8])
            T.equal(s.wait(), 0, "altered: clean exit")
            T.check(s.stderr_text().count("flechefs-server: ") >= 1, "altered files are logged")


def main():
    with common.temp_copy("signed") as root:
        T.run(test_right_key, root)
        T.run(test_no_key, root)
        T.run(test_wrong_key, root)
    T.run(test_altered, "signed")
    sys.exit(T.report())


if __name__ == "__main__":
    main()
