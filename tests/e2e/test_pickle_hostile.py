#!/usr/bin/python3
"""Hostile pickles through pkdump: each must be a clean error, never a crash or hang.

Truncation at every byte and a 0xff byte at every position of real pickles of every
protocol, huge declared lengths, a million MARKs, a million nested lists, memo
references out of range, stack underflow and wrong operand types. A clean error is
exit status 1 with a one-line message naming the offset; a mutated pickle may also
parse (exit 0), but must never kill pkdump with a signal. Pickles that parse but
share nodes so that printing them would take exponential time, or a long scan for
cycles at every node, end with an error after a bounded amount of printing.
"""
import collections
import os
import pickle
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pickle_common as pc  # noqa: E402


def run(data):
    p = subprocess.run([pc.PKDUMP, "-"], input=data, capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def expect_error(name, data, failures, needle="offset"):
    rc, err = run(data)
    if rc != 1 or needle not in err or err.count("\n") != 1:
        failures.append(f"{name}: exit {rc}, stderr {err[:200]!r}")


def main():
    if not os.access(pc.PKDUMP, os.X_OK):
        print(f"pkdump not built at {pc.PKDUMP}")
        return 1
    failures = []
    value = {"a": [1, 2.5, "x€", b"\xff", (None, True)], 7: {1, 2},
             "d": collections.OrderedDict(k=2**70), "c": 1 + 2j}
    ran = 0
    for proto in range(6):
        data = pickle.dumps(value, protocol=proto)
        for k in range(len(data)):
            expect_error(f"protocol {proto} cut at {k}", data[:k], failures)
            ran += 1
        for k in range(len(data)):
            mutated = data[:k] + b"\xff" + data[k + 1:]
            rc, err = run(mutated)
            if rc not in (0, 1) or (rc == 1 and "offset" not in err):
                failures.append(f"protocol {proto} 0xff at {k}: exit {rc} {err[:200]!r}")
            ran += 1

    cases = {
        "unknown opcode": b"\x80\x04\xff.",
        "protocol 6": b"\x80\x06N.",
        "BINBYTES8 of 2^60": b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b".",
        "BINUNICODE8 of 2^64-1": b"\x80\x04\x8d" + b"\xff" * 8 + b".",
        "BYTEARRAY8 of 2^62": b"\x80\x05\x96" + (1 << 62).to_bytes(8, "little") + b".",
        "BINUNICODE of 4 GiB": b"X\xff\xff\xff\xff.",
        "negative BINSTRING": b"T\xff\xff\xff\xff.",
        "negative LONG4": b"\x80\x02\x8b\xff\xff\xff\xff.",
        "a million MARKs": b"(" * 1000000 + b".",
        "memo get out of range": b"\x80\x02]q\x00h\x01.",
        "long memo get out of range": b"\x80\x02]q\x00j\x00\x00\x00\x01.",
        "memo put far out": b"\x80\x02Nr\xff\xff\xff\x7f.",
        "text memo get": b"(lp0\ng7\na.",
        "stack underflow APPEND": b"a.",
        "stack underflow SETITEM": b"}Ns.",
        "stack underflow REDUCE": b"NR.",
        "underflow across MARK": b"](a.",
        "APPENDS onto int": b"K\x01(K\x02e.",
        "SETITEMS onto list": b"](K\x01K\x02u.",
        "BUILD a str": b"X\x01\x00\x00\x00a}b.",
        "no STOP": b"\x80\x04N",
        "empty": b"",
        "out-of-band buffer": b"\x80\x05\x97.",
        "persistent id": b"\x80\x02N\x51.",
    }
    for name, data in cases.items():
        expect_error(name, data, failures)
    # a million nested lists parse (no recursion) but are too deep to print
    rc, err = run(b"]" * 1000000 + b"a" * 999999 + b".")
    if rc != 1 or "deeper" not in err:
        failures.append(f"million nested lists: exit {rc} {err[:200]!r}")
    # more nodes than the limit
    expect_error("too many nodes", b"\x80\x02]" + b"K\x01a" * 1000001 + b".", failures)
    # dicts shared into one another (the fuzz corpus's seed): 2^n nodes to print
    with open(os.path.join(pc.SOURCE, "tests", "fuzz", "corpus-pickle", "regress-shared-dag"),
              "rb") as f:
        expect_error("shared dicts", f.read(), failures, "nodes to print")
    # one empty list referenced 600,000 times 2,000 levels down: each reference
    # printed would scan the whole path for cycles
    n = 600000
    expect_error("shared node deep down",
                 b"\x80\x02" + b"]" * 1999 + b"]q\x00" + b"0" + b"(" + b"h\x00" * n + b"e"
                 + b"a" * 1998 + b".", failures, "looking for cycles")

    for f in failures:
        print("FAIL", f)
    print(f"{ran + len(cases) + 4} hostile inputs, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
