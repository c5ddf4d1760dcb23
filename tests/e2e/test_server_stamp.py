"""test_server_stamp.py: the stamp of call records (PROTOCOL.md, load and list) on
temporary copies of every fixture layout: a nonzero integer, the same from load, a
detailed list (nil for SQL call storage) and a detailed query, unchanged while the
record is, and changed once the record is written again under its key: a record file
replaced by a copy of itself (temporary file and rename, as fleche writes), an SQL
call's metadata rewritten; the other calls keep theirs.
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from client import Server  # noqa: E402

T = common.Checks("server_stamp")
SERVER = common.binary("flechefs-server")
EXP = common.expected()
KEY = EXP["secret_key_hex_for_cache_signed"]


def stamps(s, sql):
    """{key: stamp} from load, checked against the detailed list and query."""
    keys = s.call("list", "calls")["keys"]
    loaded = {k: s.call("load", k)["stamp"] for k in keys}
    listed = s.call("list", "calls", None, None, True)
    want = [None] * len(keys) if sql else [loaded[k] for k in listed["keys"]]
    T.equal(listed["stamp"], want, "detailed list: the stamps load answers%s"
            % (" (nil: sql)" if sql else ""))
    name = s.call("load", keys[0])["name"]
    queried = s.call("query", {"name": name}, None, None, True)
    T.equal(queried["stamp"], [loaded[k] for k in queried["keys"]],
            "detailed query: the stamps load answers")
    return loaded


def rewrite(root, cache_name, key):
    if cache_name == "pickle_sql":
        db = sqlite3.connect(os.path.join(root, "calls.db"))
        with db:
            db.execute("INSERT OR REPLACE INTO metadata (call_key, name, data) "
                       "VALUES (?, 'note', '{\"round\": 1}')", (key,))
        db.close()
        return
    path = os.path.join(root, "calls", key)
    with open(path, "rb") as f:
        data = f.read()
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def test_stamp(cache_name):
    sql = cache_name == "pickle_sql"
    env = {"FLECHE_SECRET_KEY": KEY} if cache_name == "signed" else None
    with common.temp_copy(cache_name) as root:
        with Server(SERVER, ["--serve", "--root", root], extra_env=env) as s:
            s.hello()
            before = stamps(s, sql)
            T.check(all(isinstance(v, int) and 0 < v < 1 << 64 for v in before.values()),
                    "%s: stamps are nonzero integers" % cache_name)
            T.equal(stamps(s, sql), before, "%s: unchanged records keep their stamps"
                    % cache_name)
            key = sorted(before)[0]
            rewrite(root, cache_name, key)
            after = stamps(s, sql)
            T.check(after[key] != before[key], "%s: a record written again has a new stamp"
                    % cache_name)
            T.equal({k: v for k, v in after.items() if k != key},
                    {k: v for k, v in before.items() if k != key},
                    "%s: the other records keep theirs" % cache_name)
            T.equal(s.wait(), 0, cache_name + ": clean exit")


def main():
    for name in common.CACHE_NAMES:
        T.run(test_stamp, name)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
