"""test_python_mount.py: a FUSE mount of a cache shows the calls flechefs.FlechefsCache
saves into it while it is mounted, once the mount's listing timeout (-o
cache_timeout=1) has passed: in calls/, each with its result's views equal to the
value saved, for file call storage (cloudpickle) and SQLite call storage (pickle
values). Also a call saved before the mount is there from the start.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
from fleche.call import Call  # noqa: E402
from fleche.config import cache_from_config  # noqa: E402

import mountlib as ml  # noqa: E402
from flechefs import FlechefsCache  # noqa: E402

T = common.Checks("python_mount")
LISTING_TIMEOUT = 1  # -o cache_timeout, seconds
LAYOUTS = {
    "cloudpickle": ("cloudpickle", lambda root: {"template": "cloudpickle", "root": root}),
    "sql": ("pickle", lambda root: {
        "values": {"type": "pickle", "root": os.path.join(root, "values")},
        "calls": {"type": "sql", "url": "sqlite:///" + os.path.join(root, "calls.db")}}),
}


def listing(mp):
    return sorted(os.listdir(os.path.join(mp, "calls")))


def check_layout(d, name, server):
    serializer, layout = LAYOUTS[name]
    root = os.path.join(d, name)
    os.makedirs(os.path.join(root, "values"))
    if name != "sql":
        os.makedirs(os.path.join(root, "calls"))
    ref = cache_from_config(layout(root))
    ref.calls.list()  # makes the SQLite database
    fc = FlechefsCache(root=root, server=server, serializer=serializer)
    try:
        before = fc.save(Call(name="before", arguments={"i": 0}, result="saved before"))
        with ml.mounted(root, opts=("-o", "cache_timeout=%d" % LISTING_TIMEOUT)) as mp:
            T.equal(listing(mp), [before], "%s: the call saved before the mount is listed"
                    % name)
            saved = {before: "saved before"}
            for i in range(1, 4):
                result = {"i": i, "text": "saved while mounted %d" % i}
                saved[fc.save(Call(name="while_mounted", arguments={"i": i},
                                   result=result))] = result
            t0 = time.monotonic()
            ml.wait_for(lambda: listing(mp) == sorted(saved), 10 * LISTING_TIMEOUT + 5)
            waited = time.monotonic() - t0
            T.equal(listing(mp), sorted(saved),
                    "%s: calls/ lists every call saved while mounted" % name)
            T.check(waited <= 3 * LISTING_TIMEOUT + 2,
                    "%s: within a few listing timeouts (%.1f s)" % (name, waited))
            for key, result in saved.items():
                d_call = os.path.join(mp, "calls", key)
                with open(os.path.join(d_call, "result.json"), encoding="utf-8") as f:
                    T.equal(json.load(f), result, "%s: %s's result.json" % (name, key[:12]))
    finally:
        fc.close()


def main():
    ml.require_fuse()
    server = common.binary("flechefs-server")
    for name in LAYOUTS:
        with common.temp_dir() as d:
            T.run(check_layout, d, name, server)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
