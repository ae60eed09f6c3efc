#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle.

Reads every `crate::a::b` path in crates/*/src and proto/src (use lines and inline paths), maps
each file to its module (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`), and draws an edge from a
module to the deepest module that the path names. A module may use its own children and
siblings, but never in a circle. Usage: .ci/module-cycles.py [crate_src_dir ...]
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*)\{([^}]*)\}", re.S)


def module_of(src: Path, f: Path) -> str:
    parts = list(f.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts)


def strip_tests(text: str) -> str:
    """The code of a file without its test module and comments (doc links are not imports)"""
    i = text.find("#[cfg(test)]")
    text = text if i < 0 else text[:i]
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


def cycles(src: Path) -> list[list[str]]:
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    mods = set(files)
    graph = {m: set() for m in mods}
    for m, f in files.items():
        text = strip_tests(f.read_text())
        paths = [p for p in PATH.findall(text)]
        for prefix, inner in GROUP.findall(text):
            for item in inner.split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    paths.append(prefix + item.split("::{")[0])
                elif item == "self":
                    paths.append(prefix.rstrip(":"))
        for p in paths:
            segs = p.split("::")
            target = None
            for n in range(len(segs), 0, -1):
                cand = "::".join(segs[:n])
                if cand in mods:
                    target = cand
                    break
            if target is None or target == m or not target:
                continue
            # a module using its own descendants or ancestors is nesting, not a sibling edge
            if target.startswith(m + "::") or m.startswith(target + "::"):
                continue
            graph[m].add(target)
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def main() -> int:
    roots = [Path(a) for a in sys.argv[1:]] or sorted(Path(".").glob("crates/*/src")) + [Path("proto/src")]
    bad = 0
    for src in roots:
        for c in cycles(src):
            print(f"{src}: module cycle: {' -> '.join(c)}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
