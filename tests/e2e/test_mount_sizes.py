"""test_mount_sizes.py: value bytes through a real mount for sizes around the page,
pipe and kernel-read boundaries (4 KiB, 64 KiB, 512 KiB, 1 MiB) and beyond, read
whole, in odd-sized chunks and in ranges near the end and across boundaries, on a
mount that splices values from the local server's pipe to the kernel (the default)
and on one that copies them (-o nosplice), checking with -d that the first did splice
and the second did not. The cache is made by examples/make-cache.py
in a temporary directory, plus value files written here (pickled bytes of exact
sizes), so no fixture is needed.
"""

import gzip
import hashlib
import os
import pickle
import random
import subprocess
import sys
import threading

import common
import mountlib as ml

T = common.Checks("mount_sizes")

KIB = 1024
MIB = 1024 * 1024
SIZES = [4095, 4096, 4097, 16383, 16384, 16385, 65535, 65536, 65537, 131079,
         512 * KIB - 1, 512 * KIB, 512 * KIB + 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345]


def pickled_of_size(size, rng):
    """A pickle of a bytes object whose stream is exactly size bytes long."""
    for overhead in range(0, 64):
        n = size - overhead
        if n < 0:
            break
        data = rng.randbytes(n)
        p = pickle.dumps(data, protocol=4)
        if len(p) == size:
            return data, p
    raise AssertionError("no pickle of %d bytes" % size)


def make_cache(root):
    r = subprocess.run(["/usr/bin/python3", os.path.join(common.SOURCE, "examples", "make-cache.py"),
                        "--calls", "2", "-q", root], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("make-cache.py failed: %s" % r.stderr.decode(errors="replace"))
    rng = random.Random(3)
    values = {}
    for size in SIZES:
        data, p = pickled_of_size(size, rng)
        key = hashlib.sha256(data).hexdigest()
        with open(os.path.join(root, "values", key), "wb") as f:
            f.write(p)
        values[key] = p
    return values


def read_chunks(path, chunk):
    out = []
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(chunk)
            if not b:
                return b"".join(out)
            out.append(b)


def check_value(mp, key, stored, mode):
    path = os.path.join(mp, "values", key)
    n = len(stored)
    what = "%s: value of %d bytes" % (mode, n)
    T.equal(os.stat(path).st_size, n, what + " size")
    with open(path, "rb") as f:
        T.check(f.read() == stored, what + " read whole")
    T.check(read_chunks(path, 100003) == stored, what + " read in chunks of 100003")
    fd = os.open(path, os.O_RDONLY)
    try:
        offsets = {n - 1, n - 2, n - 4096, n - 4097, n - 65537, n - 512 * KIB - 1, n - MIB,
                   4090, 65530, 512 * KIB - 10, MIB - 10, MIB + 4090}
        for off in sorted(o for o in offsets if 0 <= o < n):
            for length in (1, 20, 8192, MIB + 3):
                got = os.pread(fd, length, off)
                T.check(got == stored[off:off + length],
                        "%s pread(%d, %d): %d bytes as stored" % (what, length, off, len(got)))
        T.equal(os.pread(fd, 10, n), b"", what + " read at the end")
        T.equal(os.pread(fd, 10, n + 12345), b"", what + " read past the end")
    finally:
        os.close(fd)


def check_mount(root, values, opts, mode):
    with ml.mounted(root, opts) as mp:
        for key, stored in sorted(values.items(), key=lambda kv: len(kv[1])):
            check_value(mp, key, stored, mode)
        # Many readers at once: answers of different sizes interleave on the pipe.
        results = {}

        def reader(k):
            with open(os.path.join(mp, "values", k), "rb") as f:
                results[k] = f.read()

        threads = [threading.Thread(target=reader, args=(k,)) for k in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for k, stored in values.items():
            T.check(results.get(k) == stored,
                    "%s: parallel reader of the value of %d bytes" % (mode, len(stored)))


def check_splice_used(root, values, tmp):
    """With -d, libfuse marks spliced replies "(splice)": the default mount splices
    the large values (when pipes of 1 MiB may be made), -o nosplice never does."""
    with open("/proc/sys/fs/pipe-max-size") as f:
        if int(f.read()) < MIB:
            print("mount_sizes: pipe-max-size below 1 MiB: splicing is off, not checked")
            return
    key = max(values, key=lambda k: len(values[k]))
    for opts, want in (((), True), (("-o", "nosplice"), False)):
        log_path = os.path.join(tmp, "daemon.log")
        with open(log_path, "w") as log:
            with ml.foreground(root, ("-d",) + opts, log=log) as (_, mp):
                with open(os.path.join(mp, "values", key), "rb") as f:
                    T.check(f.read() == values[key], "%r: the largest value read" % (opts,))
        with open(log_path, errors="replace") as f:
            spliced = "(splice)" in f.read()
        T.equal(spliced, want, "%r: replies spliced" % (opts,))


def check_gzip_listing(tmp):
    """A listing leaves large compressed values unsized (the server would have to
    inflate each whole); the mount must then ask for the size before the kernel
    believes one: after `ls` (readdirplus), `ls -l`, stat and reads are exact."""
    root = os.path.join(tmp, "gz")
    os.makedirs(os.path.join(root, "values"))
    os.makedirs(os.path.join(root, "calls"))
    rng = random.Random(5)
    values = {}
    for data in (rng.randbytes(1000),           # listed exactly
                 rng.randbytes(300 * KIB),      # more than 64 KiB compressed
                 bytes(3 * MIB)):               # inflates to more than 1 MiB
        p = pickle.dumps(data, protocol=4)
        key = hashlib.sha256(data).hexdigest()
        with open(os.path.join(root, "values", key), "wb") as f:
            f.write(gzip.compress(p))
        values[key] = p
    with ml.mounted(root, ()) as mp:
        vdir = os.path.join(mp, "values")
        T.equal(sorted(os.listdir(vdir)), sorted(values), "gzip: ls values/")
        r = subprocess.run(["ls", "-l", vdir], capture_output=True, timeout=60)
        sizes = {}
        for line in r.stdout.decode().splitlines()[1:]:
            f = line.split()
            sizes[f[-1]] = int(f[4])
        T.equal(sizes, {k: len(p) for k, p in values.items()}, "gzip: ls -l sizes exact")
        for key, p in values.items():
            path = os.path.join(vdir, key)
            T.equal(os.stat(path).st_size, len(p), "gzip: stat of %d bytes" % len(p))
            with open(path, "rb") as f:
                T.check(f.read() == p, "gzip: the value of %d bytes read whole" % len(p))
    # readdirplus then a read without any stat in between
    with ml.mounted(root, ()) as mp:
        vdir = os.path.join(mp, "values")
        os.listdir(vdir)
        for key, p in values.items():
            with open(os.path.join(vdir, key), "rb") as f:
                T.check(f.read() == p, "gzip, read after ls alone: %d bytes" % len(p))


def check_readahead(root, values):
    """The mount's kernel readahead is raised (-o readahead_kb, default 4096) before
    the first open of a file returns: a reader that starts at once must not get the
    128 KiB default, which over a slow link leaves only a few hundred KiB in flight."""
    key = min(values, key=lambda k: len(values[k]))
    for opts, want in (((), 4096), (("-o", "readahead_kb=2048"), 2048)):
        with ml.mounted(root, opts) as mp:
            with open(os.path.join(mp, "values", key), "rb") as f:
                dev = os.fstat(f.fileno()).st_dev
                with open("/sys/class/bdi/%d:%d/read_ahead_kb"
                          % (os.major(dev), os.minor(dev))) as ra:
                    got = int(ra.read())
            T.equal(got, want, "%r: readahead (KiB) when the first open returns" % (opts,))


def main():
    ml.require_fuse()
    with common.temp_dir() as tmp:
        root = os.path.join(tmp, "cache")
        values = make_cache(root)
        T.run(check_mount, root, values, (), "spliced")
        T.run(check_mount, root, values, ("-o", "nosplice"), "copied")
        T.run(check_splice_used, root, values, tmp)
        T.run(check_gzip_listing, tmp)
        T.run(check_readahead, root, values)
    return T.report()


if __name__ == "__main__":
    sys.exit(main())
