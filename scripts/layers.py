#!/usr/bin/env python3
"""layers.py: checks that the object files of a static library depend on each other
without cycles, from their symbol tables (nm): object A depends on object B when A
uses a symbol B defines. Prints every cycle and exits 1 when there is one; with
--print, also prints each object's dependencies.

    layers.py [--print] LIBRARY.a
"""
import subprocess
import sys


def symbols(lib):
    """{object: (defined, undefined)} from `nm` of a static library."""
    out = subprocess.run(["nm", "-A", "--defined-only", lib], capture_output=True,
                         text=True, check=True).stdout
    und = subprocess.run(["nm", "-A", "--undefined-only", lib], capture_output=True,
                         text=True, check=True).stdout
    objs = {}
    for text, idx in ((out, 0), (und, 1)):
        for line in text.splitlines():
            # "lib.a:obj.o:0000000000000000 T name" or "lib.a:obj.o:                 U name"
            parts = line.split(":", 2)
            if len(parts) < 3:
                continue
            fields = parts[2].split()
            if len(fields) < 2:
                continue
            kind, name = fields[-2], fields[-1]
            entry = objs.setdefault(parts[1], (set(), set()))
            if idx == 1:
                entry[1].add(name)
            elif kind.isupper() and kind not in "U":  # external definitions only
                entry[0].add(name)
    return objs


def graph(objs):
    owner = {}
    for o, (defs, _) in objs.items():
        for s in defs:
            owner.setdefault(s, o)
    return {o: sorted({owner[s] for s in und if s in owner and owner[s] != o})
            for o, (_, und) in objs.items()}


def cycles(g):
    """The strongly connected components with more than one object (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main(argv):
    show = "--print" in argv
    libs = [a for a in argv if not a.startswith("--")]
    if len(libs) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    g = graph(symbols(libs[0]))
    if show:
        for o in sorted(g):
            print("%s -> %s" % (o, " ".join(g[o]) or "-"))
    found = cycles(g)
    for comp in found:
        print("cycle between object files: %s" % " ".join(comp))
    if not found:
        print("%d object files, no cycle" % len(g))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
