"""bench-server-mkcache.py: writes the cache bench-server measures, in a directory
given on the command line: ROOT/calls.db, a SQLite call storage with FORMAT.md's
schema (as SQLAlchemy writes it, in WAL mode) holding NCALLS calls with one argument
and a runtime metadata block each, and ROOT/values/ with one large value file (a
pickle stream of a bytes object of VALUE_MIB MiB).

usage: /usr/bin/python3 bench-server-mkcache.py ROOT NCALLS VALUE_MIB
Prints the large value's key on stdout.
"""

import hashlib
import json
import os
import sqlite3
import struct
import sys

SCHEMA = """
CREATE TABLE calls (
	"key" VARCHAR(64) NOT NULL, name VARCHAR NOT NULL, module VARCHAR,
	version VARCHAR, code_digest VARCHAR(64), result VARCHAR(64),
	PRIMARY KEY ("key"));
CREATE TABLE arguments (
	id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL, position INTEGER NOT NULL,
	name VARCHAR NOT NULL, value VARCHAR(64) NOT NULL, PRIMARY KEY (id),
	CONSTRAINT uq_arguments_call_name UNIQUE (call_key, name),
	FOREIGN KEY(call_key) REFERENCES calls ("key") ON DELETE CASCADE);
CREATE TABLE metadata (
	id INTEGER NOT NULL, call_key VARCHAR(64) NOT NULL, name VARCHAR NOT NULL,
	data JSON NOT NULL, PRIMARY KEY (id),
	CONSTRAINT uq_metadata_call_name UNIQUE (call_key, name),
	FOREIGN KEY(call_key) REFERENCES calls ("key") ON DELETE CASCADE);
CREATE INDEX ix_metadata_call_key ON metadata (call_key);
CREATE INDEX ix_metadata_name ON metadata (name);
"""


def digest(*parts):
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def write_value(path, mib):
    """A protocol-5 pickle of one bytes object: PROTO 5, BINBYTES8, MEMOIZE, STOP."""
    n = mib * 1024 * 1024
    block = hashlib.sha256(b"flechefs bench").digest() * (1024 * 1024 // 32)
    with open(path, "wb") as f:
        f.write(b"\x80\x05\x8e" + struct.pack("<Q", n))
        for _ in range(mib):
            f.write(block)
        f.write(b"\x94.")


def main():
    root, ncalls, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(os.path.join(root, "values"), exist_ok=True)
    value_key = digest("big value", mib)
    write_value(os.path.join(root, "values", value_key), mib)

    db = sqlite3.connect(os.path.join(root, "calls.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    calls, args, meta = [], [], []
    for i in range(ncalls):
        key = digest("call", i)
        calls.append((key, "func%d" % (i % 50), "__main__", None, None, value_key))
        args.append((key, 0, "x", digest("arg", i)))
        meta.append((key, "runtime", json.dumps({
            "timestart": 1.7e9 + i, "timestop": 1.7e9 + i + 0.5, "walltime": 0.5,
            "cputime": 0.25, "systime": 0.0})))
    with db:
        db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?)", calls)
        db.executemany("INSERT INTO arguments (call_key, position, name, value) "
                       "VALUES (?, ?, ?, ?)", args)
        db.executemany("INSERT INTO metadata (call_key, name, data) VALUES (?, ?, ?)", meta)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(value_key)


if __name__ == "__main__":
    main()
