"""test_python_stress.py: several clients saving overlapping calls into one cache through
their own flechefs-server while servers are killed with SIGKILL at random points.

4 worker processes save, for FLECHEFS_STRESS_SECONDS (30 by default), calls drawn from
one small set (so that they overlap: the same values and records are uploaded by
several at once) with numpy results of up to 512 KiB, each through a FlechefsCache of
its own; every call a worker was told was saved is appended to its log. Meanwhile the
test kills one of their servers every 0.3 s (the worker reconnects and goes on).
Afterwards the real fleche, opening the directory directly, loads every call of the
logs with its right result, every record and every value file in the cache (nothing
half there), and no key-named file is anything but complete.
"""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.run_in_fleche_python(__file__)
import numpy as np  # noqa: E402
from fleche.call import Call  # noqa: E402
from fleche.config import cache_from_config  # noqa: E402

T = common.Checks("python_stress")
LAYOUT = {"template": "cloudpickle", "root": "c"}
NCALLS = 96


def result_of(j):
    return np.full((j % 8 + 1) * 8192, float(j))  # 64 KiB to 512 KiB


def worker(d, server, seconds, log):
    """Saves random calls until the time is up; logs the keys it was told were saved."""
    from flechefs import ConnectionLost, FlechefsCache, ServerError
    os.chdir(d)
    fc = FlechefsCache(cache_name="shared", server=server, workdir=d)
    fc.info()
    open(log + ".ready", "w").close()
    end = time.time() + seconds
    rng = random.Random(os.getpid())
    with open(log, "a") as f:
        while time.time() < end:
            j = rng.randrange(NCALLS)
            try:
                key = fc.save(Call(name="stress", arguments={"j": j}, result=result_of(j)))
            except (ConnectionLost, ServerError):
                fc.reconnect()
                continue
            f.write("%s %d\n" % (key, j))
            f.flush()
    fc.close()


def server_pids(workers):
    out = []
    for w in workers:
        try:
            for task in os.listdir("/proc/%d/task" % w.pid):
                with open("/proc/%d/task/%s/children" % (w.pid, task)) as f:
                    out += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return out


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], common.binary("flechefs-server"), float(sys.argv[3]), sys.argv[4])
        return
    seconds = float(os.environ.get("FLECHEFS_STRESS_SECONDS") or 30)
    server = common.binary("flechefs-server")
    with common.temp_dir() as d:
        with open(os.path.join(d, "fleche.toml"), "w") as f:
            f.write('[default]\ncache = "shared"\n\n[shared]\ntemplate = "cloudpickle"\n'
                    'root = "c"\n')
        os.makedirs(os.path.join(d, "c", "values"))
        os.makedirs(os.path.join(d, "c", "calls"))
        logs = [os.path.join(d, "log%d" % i) for i in range(4)]
        env = dict(os.environ, FLECHEFS_TEST_IN_PYENV="1")
        workers = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", d,
                                     str(seconds), log], env=env) for log in logs]
        kills = 0
        rng = random.Random(1)
        deadline = time.time() + 120
        while not all(os.path.exists(log + ".ready") for log in logs) and \
                time.time() < deadline:
            time.sleep(0.05)
        end = time.time() + seconds
        while time.time() < end:
            time.sleep(0.3)
            pids = server_pids(workers)
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except OSError:
                    pass
        for w in workers:
            T.equal(w.wait(timeout=120), 0, "worker %d ends cleanly" % w.pid)
        os.chdir(d)
        ref = cache_from_config(LAYOUT)
        told = {}
        for log in logs:
            with open(log) as f:
                for line in f:
                    key, j = line.split()
                    told[key] = int(j)
        T.check(len(told) > 0, "the workers saved calls (%d distinct)" % len(told))
        for key, j in told.items():
            try:
                c = ref.load(key)
                T.check(np.array_equal(c.result, result_of(j)) and c.arguments["j"] == j,
                        "call %s saved whole" % key[:12])
            except Exception as e:  # noqa: BLE001
                T.check(False, "call %s the client was told was saved: %s" % (key[:12], e))
        for k in ref.calls.list():
            try:
                c = ref.load(k)
                T.check(np.array_equal(c.result, result_of(c.arguments["j"])),
                        "record %s whole" % k[:12])
            except Exception as e:  # noqa: BLE001
                T.check(False, "record %s: %s" % (k[:12], e))
        nvalues = 0
        for k in ref.values.list():
            try:
                ref.load_value(k)
                nvalues += 1
            except Exception as e:  # noqa: BLE001
                T.check(False, "value %s half there: %s" % (k[:12], e))
        for sub in ("values", "calls"):
            names = os.listdir(os.path.join(d, "c", sub))
            T.equal([n for n in names if not n.startswith(".") and len(n) != 64], [],
                    "only keys and temporary files in %s" % sub)
        print("%d servers killed, %d calls told saved, %d records, %d values" % (
            kills, len(told), len(list(ref.calls.list())), nvalues), flush=True)
        T.check(kills >= 2 * seconds, "servers were killed while saving (%d)" % kills)
        os.chdir(common.SOURCE)
    sys.exit(T.report())


if __name__ == "__main__":
    main()
