"""test_server_protocol.py: flechefs-server's handling of the protocol itself
(PROTOCOL.md sections 1, 2 and 5): hello first, VERSION, unknown methods, parameter
types and counts, malformed keys, malformed frames and messages (answered with EPROTO
when a msgid is readable, otherwise the end of the session with a message on stderr
and nothing on stdout), pipelining, the frame limit, and files that appear and
vanish while a cache is listed.
"""

import os
import struct
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server, frame, pack  # noqa: E402

T = common.Checks("server_protocol")
MAX_WRITES = 20000
SERVER = common.binary("flechefs-server")
EXP = common.expected()
FILES = EXP["caches"]["files"]
CALL = FILES["calls"][0]["key"]
VALUE = FILES["values"][0]["digest"]
BAD_KEYS = ["../../etc/passwd", "ABCD" * 16, "abc", "g" * 64, "a" * 65, "", "abcd/..",
            "abcd\x00", "0123456789abcdef" * 4 + "0", " abcd", "abcd\n", "\u00e9\u00e9\u00e9\u00e9"]


def start(root, *args):
    return Server(SERVER, ["--serve", "--root", root] + list(args))


def name(err):
    return err["name"] if isinstance(err, dict) else None


def check_err(err, want, what):
    T.equal(name(err), want, what)
    if isinstance(err, dict):
        T.check(isinstance(err.get("errno"), int) and isinstance(err.get("message"), str)
                and err["message"], what + ": error map has errno and a message")


def test_hello_first(root):
    with start(root) as s:
        err, res = s.try_call("list", "calls")
        check_err(err, "EPROTO", "a request before hello")
        T.equal(res, None, "no result with an error")
        err, _ = s.try_call("no_such_method")
        check_err(err, "EPROTO", "an unknown method before hello")
        err, _ = s.try_call("hello", 2, "future client")
        check_err(err, "VERSION", "hello with protocol 2")
        T.equal(err and err["errno"], 71, "VERSION errno is EPROTO")
        T.check(err and "2" in err["message"] and "1" in err["message"],
                "VERSION message names both versions: %r" % (err and err["message"]))
        err, _ = s.try_call("hello", 0, "old client")
        check_err(err, "VERSION", "hello with protocol 0")
        err, _ = s.try_call("contains", CALL)
        check_err(err, "EPROTO", "still no hello after VERSION")
        for bad in (["1", "x"], [1], [1, 2], [1, "x", 3], [None, "x"], [1.0, "x"]):
            err, _ = s.try_call("hello", *bad)
            check_err(err, "EINVAL", "hello%r" % (bad,))
        h = s.hello()
        T.equal(h["protocol"], 1, "hello answers protocol 1")
        T.equal(s.call("contains", CALL), True, "requests work after hello")
        T.equal(s.hello()["protocol"], 1, "a second hello is answered too")
        T.equal(s.wait(), 0, "clean exit")
        T.equal(s.stderr_text(), "", "nothing on stderr")


def test_methods_and_params(root):
    with start(root) as s:
        s.hello()
        for m in ("nope", "", "HELLO", "load\x00", "x" * 300):
            err, _ = s.try_call(m, CALL)
            check_err(err, "ENOSYS", "unknown method %r" % m[:20])
        bad_params = {
            "info": [[1]],
            "list": [[], ["calls", None, None, None, None], [1], ["nope"], ["calls", 5],
                     ["calls", CALL[:10]], ["calls", None, 0], ["calls", None, -1],
                     ["calls", None, "3"], ["calls", None, 1.5], ["calls", None, None, 1]],
            "load": [[], [1], [CALL, 1], [b"\x00" * 64], [None]],
            "stat_value": [[], [VALUE, 1], [VALUE, "pickle", 3], [5]],
            "load_value": [[VALUE], [VALUE, 0], [VALUE, -1, 5], [VALUE, 0, -5], [VALUE, "0", 5],
                           [VALUE, 0, 5, 7], [VALUE, 0, 5, None, 1], [VALUE, 0.0, 5]],
            "contains": [[], [1], [CALL, CALL], [None]],
            "expand": [[], [1], [CALL, 1]],
            "shrink": [[], [1], [CALL, 1]],
            "evict": [[], [1], [CALL, 1]],
            "query": [[], [[]], [{"name": 1}], [{"bogus": 1}], [{}, "x"], [{}, None, 0],
                      [{"arguments": {"a": "nothex"}}], [{"metadata": {"runtime": 1}}],
                      [{"arguments": []}], [{}, None, None, "yes"], [{}, None, None, None, 1]],
            "names": [[1], [None, 0], [None, None, None], ["x", "y"]],
        }
        for method, cases in bad_params.items():
            for params in cases:
                err, res = s.try_call(method, *params)
                check_err(err, "EINVAL", "%s%r" % (method, params))
                T.equal(res, None, "%s%r has no result" % (method, params))
        # views: an unknown view is ENOTSUP, nil means pickle
        err, _ = s.try_call("stat_value", VALUE, "no-such-view")
        check_err(err, "ENOTSUP", "an unknown view")
        err, st = s.try_call("stat_value", VALUE, None)
        T.equal((err, st and st["view"]), (None, "pickle"), "a nil view is pickle")
        # optional trailing parameters may be nil
        T.check(s.call("list", "calls", None, None, None)["complete"], "list with nils")
        T.check(s.call("names", None, None)["complete"], "names with nils")
        T.equal(s.call("load_value", VALUE, 0, 3, None), s.call("load_value", VALUE, 0, 3),
                "load_value view nil")
        # limits above page_max are cut, not refused
        r = s.call("list", "calls", None, 10 ** 12)
        T.check(r["complete"] and len(r["keys"]) == len(FILES["calls"]), "a huge limit is cut")
        T.equal(s.wait(), 0, "clean exit")


def test_bad_keys(root):
    with start(root) as s:
        s.hello()
        for k in BAD_KEYS:
            for method, params in (("load", [k]), ("stat_value", [k]), ("load_value", [k, 0, 9]),
                                   ("expand", [k]), ("shrink", [k]), ("evict", [k])):
                err, _ = s.try_call(method, *params)
                check_err(err, "EINVAL", "%s(%r)" % (method, k))
            T.equal(s.try_call("contains", k), (None, False), "contains(%r) is false" % k)
            err, _ = s.try_call("list", "values", k)
            check_err(err, "EINVAL", "list after %r" % k)
        # a valid prefix that is not a full key: shrink wants a full stored key
        err, _ = s.try_call("shrink", CALL[:10])
        check_err(err, "ENOENT", "shrink of a prefix")
        err, _ = s.try_call("shrink", "0" * 64)
        check_err(err, "ENOENT", "shrink of an unknown key")
        err, _ = s.try_call("load", "0" * 64)
        check_err(err, "ENOENT", "load of an unknown key")
        err, _ = s.try_call("load", VALUE)
        check_err(err, "ENOENT", "load of a value key")
        err, _ = s.try_call("load_value", CALL, 0, 5)
        check_err(err, "ENOENT", "load_value of a call key")
        T.equal(s.try_call("contains", VALUE), (None, False), "contains of a value key")
        T.equal(s.try_call("contains", "0" * 64), (None, False), "contains of an unknown key")
        err, _ = s.try_call("contains", "7b09")
        check_err(err, "AMBIGUOUS", "contains of a prefix ambiguous among calls")
        T.equal(s.try_call("contains", "7b09a7"), (None, True), "contains of a unique prefix")
        err, _ = s.try_call("load", "7b09")
        check_err(err, "AMBIGUOUS", "load of an ambiguous prefix")
        T.check(err and len(err.get("candidates", [])) == 2 and err.get("needed") == 6,
                "load AMBIGUOUS has candidates and needed: %r" % (err,))
        T.equal(s.wait(), 0, "clean exit")
        # the bad keys never made it to the filesystem: nothing was created or removed
        T.equal(sorted(os.listdir(os.path.join(root, "calls"))),
                sorted(c["key"] for c in FILES["calls"]), "the calls are untouched")


def expect_end(root, data, what, exit_status=1, args=()):
    """Sends raw bytes, closes, and expects no output at all, a message on stderr and
    the exit status."""
    with start(root, *args) as s:
        try:
            s.send_raw(data)
        except BrokenPipeError:
            pass
        s.close_write()
        out = s.proc.stdout.read()
        status = s.wait()
        T.equal(out, b"", what + ": nothing on stdout")
        T.equal(status, exit_status, what + ": exit status")
        err = s.stderr_text()
        T.check(err.startswith("flechefs-server: ") and err.endswith("\n"),
                what + ": a message on stderr: %r" % err)
        return err


def test_malformed_frames(root):
    hello = frame(pack([0, 1, "hello", [1, "t"]]))
    err = expect_end(root, struct.pack(">I", 16 * 1024 * 1024 + 1), "oversize length")
    T.check("16777217" in err or "larger" in err or "limit" in err, "oversize named: %r" % err)
    expect_end(root, struct.pack(">I", 0xFFFFFFFF) + b"x" * 100, "length 2^32-1")
    expect_end(root, struct.pack(">I", 0), "zero length")
    err = expect_end(root, struct.pack(">I", 100) + b"\x94" * 10, "truncated frame")
    T.check("truncat" in err, "truncated frame named: %r" % err)
    expect_end(root, b"\x00\x00", "truncated header")
    err = expect_end(root, b"Welcome to the login node!\n", "text instead of frames")
    T.check("not a flechefs frame" in err or "Welc" in err, "text shown: %r" % err)
    expect_end(root, frame(b"\xc1"), "reserved byte 0xc1")
    expect_end(root, frame(b"\x94\x00\x01"), "truncated msgpack")
    expect_end(root, frame(pack([0, 1, "hello", [1, "t"]]) + b"\x00"), "trailing bytes")
    expect_end(root, frame(b"\xdd\xff\xff\xff\xff"), "array count above the bytes left")
    expect_end(root, frame(b"\xc7\x01\x05x"), "ext type")
    expect_end(root, frame(b"\x91" * 70 + b"\xc0"), "nesting deeper than 64")
    expect_end(root, frame(pack({"a": 1})), "a map, no msgid")
    expect_end(root, frame(pack([0, -1, "info", []])), "a negative msgid")
    expect_end(root, frame(pack([0, 1 << 32, "info", []])), "a msgid above 2^32")
    expect_end(root, frame(pack("hello")), "a str")
    # answers before the bad frame are still delivered
    with start(root) as s:
        s.send_raw(hello + frame(pack([0, 2, "contains", [CALL]])) + struct.pack(">I", 0))
        T.equal(s.recv(1)[0], None, "hello before a bad frame is answered")
        T.equal(s.recv(2), (None, True), "contains before a bad frame is answered")
        T.check(s.read_eof(), "then the session ends")
        T.equal(s.wait(), 1, "exit status 1 after a bad frame")
    # oversize against a smaller --max-frame
    expect_end(root, struct.pack(">I", 65537) + b"\x90" * 100, "above --max-frame",
               args=("--max-frame", "65536"))


def test_not_requests(root):
    with start(root) as s:
        s.hello()
        cases = [
            ([0, 5, 3, []], "method not a str"),
            ([2, 6, "info", []], "type 2"),
            ([1, 7, None, None], "a response sent to the server"),
            ([0, 8, "info", {}], "params not an array"),
            ([0, 9, "info"], "three elements"),
            ([0, 10, "info", [], 1], "five elements"),
            ([0, 11, "info", None], "params nil"),
            (["0", 12, "info", []], "type a str"),
            ([0, 13, b"info", []], "method as bin"),
        ]
        for msg, what in cases:
            s.send_frame(pack(msg))
            err, res = s.recv(msg[1])
            check_err(err, "EPROTO", what)
            T.equal(res, None, what + ": no result")
        T.equal(s.call("contains", CALL), True, "the session goes on after EPROTO answers")
        T.equal(s.wait(), 0, "clean exit")


def test_pipelining(root):
    calls = [c["key"] for c in FILES["calls"]]
    values = [v["digest"] for v in FILES["values"]]
    with start(root) as s:
        s.hello()
        reqs, want = [], []
        for i in range(1000):
            k = i % 5
            if k == 0:
                reqs.append(("contains", [calls[i % len(calls)]]))
                want.append(lambda e, r: e is None and r is True)
            elif k == 1:
                key = calls[i % len(calls)]
                reqs.append(("load", [key]))
                want.append(lambda e, r, key=key: e is None and r["key"] == key)
            elif k == 2:
                key = values[i % len(values)]
                reqs.append(("stat_value", [key]))
                want.append(lambda e, r, key=key: e is None and r["key"] == key)
            elif k == 3:
                reqs.append(("load", ["0" * 64]))
                want.append(lambda e, r: name(e) == "ENOENT")
            else:
                key = values[i % len(values)]
                reqs.append(("load_value", [key, 0, 2]))
                want.append(lambda e, r: e is None and r == b"\x80\x05")
        answers = s.pipeline(reqs)
        bad = [i for i, ((e, r), w) in enumerate(zip(answers, want)) if not w(e, r)]
        T.equal(bad, [], "1000 pipelined requests answered by msgid")
        # raw pipelining: everything written before anything is read, msgids not in order
        ids = [(7919 * i) % 100003 + 1 for i in range(1000)]
        data = b"".join(frame(pack([0, m, "contains", [calls[m % len(calls)]]])) for m in ids)
        s.send_raw(data)
        got = {}
        for _ in ids:
            m, e, r = s.recv_any()
            got[m] = (e, r)
        T.equal(sorted(got), sorted(ids), "every msgid answered once")
        T.check(all(v == (None, True) for v in got.values()), "all answers true")
        T.equal(s.wait(), 0, "clean exit")


def test_max_frame(root):
    big = next(v for v in FILES["values"] if v["file"]["size"] > 1024 * 1024)
    data = common.stored_value("files", big["digest"])
    with start(root, "--max-frame", "64K") as s:
        h = s.hello()
        T.equal(h["max_frame"], 65536, "--max-frame 64K")
        T.equal(h["max_read"], 65536 - 256, "max_read")
        r = s.call("load_value", big["digest"], 1000, 1024 * 1024)
        T.equal(r, data[1000:1000 + h["max_read"]], "load_value answers at most max_read")
        T.equal(s.wait(), 0, "clean exit")
    # an answer larger than the frame: EMSGSIZE, and the session goes on
    with common.temp_dir() as d:
        os.mkdir(os.path.join(d, "calls"))
        os.mkdir(os.path.join(d, "values"))
        keys = sorted("%064x" % (i * 0x9E3779B97F4A7C15 % (1 << 256)) for i in range(1, 1201))
        for k in keys:
            open(os.path.join(d, "calls", k), "wb").close()
        with start(d, "--max-frame", "65536") as s:
            s.hello()
            err, _ = s.try_call("list", "calls", None, 1200)
            check_err(err, "EMSGSIZE", "a list page larger than the frame")
            r = s.call("list", "calls", None, 500)
            T.equal(r["keys"], keys[:500], "a smaller page fits")
            T.equal(s.wait(), 0, "clean exit")


def test_churn(root):
    """Files written through .tmp + rename and removed while the cache is listed: a
    listed value is whole or gone, never half-written; dot files and .lock files are
    never listed."""
    vdir = os.path.join(root, "values")
    payload = b"\x80\x05\x8e" + struct.pack("<Q", 4000) + bytes(range(250)) * 16 + b"\x94."
    stop = threading.Event()
    written = set()
    open(os.path.join(vdir, "a" * 64 + ".lock"), "wb").close()
    open(os.path.join(vdir, "." + "b" * 64), "wb").close()

    def writer():
        # bounded: at most MAX_WRITES files in all, at most 30 alive at a time
        i = 0
        while not stop.is_set() and i < MAX_WRITES:
            key = "%064x" % (0xC0FFEE0000 + i)
            tmp = os.path.join(vdir, ".%s.%s.tmp" % (key, uuid.uuid4().hex))
            with open(tmp, "wb") as f:
                f.write(payload[:len(payload) // 2])
                f.flush()
                f.write(payload[len(payload) // 2:])
            os.rename(tmp, os.path.join(vdir, key))
            written.add(key)
            if i >= 30:
                os.unlink(os.path.join(vdir, "%064x" % (0xC0FFEE0000 + i - 30)))
            i += 1

    fixture_values = sorted(v["digest"] for v in FILES["values"])
    with start(root) as s:
        s.hello()
        t = threading.Thread(target=writer)
        t.start()
        try:
            rounds = 0
            problems = []
            deadline = time.monotonic() + 20
            while rounds < 40 and time.monotonic() < deadline:
                rounds += 1
                keys, after = [], None
                while True:
                    r = s.call("list", "values", after, 50, True)
                    for k, size in zip(r["keys"], r["size"]):
                        if size is not None and k not in fixture_values and size != len(payload):
                            problems.append("listed %s with size %r" % (k, size))
                    keys += r["keys"]
                    if r["complete"]:
                        break
                    after = r["keys"][-1]
                if keys != sorted(set(keys)):
                    problems.append("keys not ascending or repeated")
                for k in keys:
                    if len(k) != 64 or k.startswith(".") or k.endswith(".lock"):
                        problems.append("listed %r" % k)
                if not set(fixture_values) <= set(keys):
                    problems.append("a fixture value was not listed")
                new = [k for k in keys if k not in fixture_values]
                for k, (e, b) in zip(new, s.pipeline([("load_value", [k, 0, 1 << 20])
                                                      for k in new])):
                    if e is None and b != payload:
                        problems.append("read %s half-written (%d bytes)" % (k, len(b)))
                    elif e is not None and name(e) != "ENOENT":
                        problems.append("load_value %s: %r" % (k, e))
            T.equal(problems[:5], [], "listing while files come and go")
        finally:
            stop.set()
            t.join()
        T.check(len(written) > 10, "the writer wrote files (%d)" % len(written))
        T.equal(s.wait(), 0, "clean exit")


def test_special_files(root):
    """A FIFO named like a key in values/ or calls/ (anyone who can write the cache
    directory can make one) is not a stored file: opening it must not block the
    single-threaded server waiting for a writer. Each request gets an answer."""
    vkey, ckey = "ab" * 32, "cd" * 32
    os.mkfifo(os.path.join(root, "values", vkey))
    os.mkfifo(os.path.join(root, "calls", ckey))
    s = Server(SERVER, ["--serve", "--root", root], timeout=10)
    try:
        s.hello()
        for method, params in (("stat_value", (vkey,)), ("load_value", (vkey, 0, 10)),
                               ("load", (ckey,)), ("evict", ("ffff" * 16,)),
                               ("list", ("values", None, None, True)),
                               ("list", ("calls", None, None, True)),
                               ("names", ()), ("query", ({"name": "x"},))):
            try:
                err, _ = s.try_call(method, *params)
            except TimeoutError:
                T.check(False, "%s with a FIFO in the cache answers" % method)
                return
            if method in ("stat_value", "load_value", "load"):
                check_err(err, "CORRUPT", "%s of a FIFO" % method)
        T.equal(s.call("contains", ckey), False, "a FIFO is not a stored call")
    finally:
        s.close()
        os.unlink(os.path.join(root, "values", vkey))
        os.unlink(os.path.join(root, "calls", ckey))


def main():
    with common.temp_copy("files") as root:
        for fn in (test_hello_first, test_methods_and_params, test_bad_keys,
                   test_malformed_frames, test_not_requests, test_pipelining, test_max_frame):
            T.run(fn, root)
    with common.temp_copy("files") as root:
        T.run(test_churn, root)
    with common.temp_copy("files") as root:
        T.run(test_special_files, root)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
