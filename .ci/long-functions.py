#!/usr/bin/env python3
"""Fails on a function over 80 lines in crates/*/src that does not say why it is long.

A function's length counts from its `fn` line to its closing brace, both included. Test code is
left out: `#[cfg(test)]` items (a `mod tests { … }` block, a helper) and the files of modules
declared `#[cfg(test)] mod name;`. A long function passes when a comment right above it (its doc
comment, or `//` lines among its attributes) or the comment lines that open its body contain
"Longer than a screen:" and the reason, e.g. `// Longer than a screen: one pass over the input, …`: split it into
named steps or say why one sequence reads better.

Usage: .ci/long-functions.py [--all] [crate_src_dir ...]
  --all  list every function over the limit, with or without its comment, longest first
"""
import re
import sys
from pathlib import Path

LIMIT = 80
MARKER = re.compile(r"longer than a screen:", re.I)
FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
IMPL = re.compile(r"\bimpl\b")
CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
BRACE = re.compile(r"[{}]")
MOD_DECL = re.compile(r"\bmod\s+([a-z_][a-z0-9_]*)\s*;")


# the next comment, string or char literal (a lifetime such as `'a` matches none of them)
LITERAL = re.compile(
    r"//[^\n]*"
    r"|/\*(?:[^*]|\*(?!/))*\*/"
    r"|(?<![A-Za-z0-9_])b?r(#*)\"[\s\S]*?\"\1"
    r'|b?"(?:\\[\s\S]|[^"\\])*"'
    r"|b?'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'"
)


NOT_NEWLINE = re.compile(r"[^\n]")


def blank(text: str) -> str:
    """The code with comments, strings and char literals turned to spaces (newlines kept)"""
    return LITERAL.sub(lambda m: NOT_NEWLINE.sub(" ", m.group()), text)


def read(f: Path, cache: dict = {}) -> tuple[str, str]:
    """A file's text and its `blank` code, read once"""
    if f not in cache:
        text = f.read_text()
        cache[f] = (text, blank(text))
    return cache[f]


def braces(code: str) -> dict[int, int]:
    """Each `{` offset mapped to the offset of its `}`"""
    pairs, stack = {}, []
    for m in BRACE.finditer(code):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def item_body(code: str, start: int) -> tuple[int, str]:
    """From `start`, the offset of the item's `{` or `;` outside brackets, and which it is"""
    depth = 0
    for i in range(start, len(code)):
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth <= 0 and c in "{;":
            return i, c
    return len(code), ";"


def impl_name(header: str) -> str:
    """`Type` from `impl<T> Trait for Type<T> where …`"""
    header = re.sub(r"\bwhere\b.*", "", header, flags=re.S)
    if re.search(r"\bfor\b", header):
        header = re.split(r"\bfor\b", header)[-1]
    else:
        header = re.sub(r"^\s*impl\s*", "", header)
        # drop the impl's own generics: `<T: X<Y>>`
        if header.startswith("<"):
            depth = 0
            for k, c in enumerate(header):
                depth += {"<": 1, ">": -1}.get(c, 0)
                if depth == 0:
                    header = header[k + 1 :]
                    break
    header = re.sub(r"<.*", "", header, flags=re.S)
    names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", header)
    return names[-1] if names else "?"


def module_children_dir(src: Path, f: Path) -> Path:
    return f.parent if f.stem in ("mod", "lib", "main") else f.with_suffix("")


def test_files(src: Path) -> set[Path]:
    """Files of modules declared `#[cfg(test)] mod name;` and everything under them"""
    out = set()
    for f in src.rglob("*.rs"):
        code = read(f)[1]
        for m in CFG_TEST.finditer(code):
            at, kind = item_body(code, m.end())
            decl = MOD_DECL.search(code, m.end(), at + 1)
            if kind == ";" and decl:
                d = module_children_dir(src, f)
                name = decl.group(1)
                out.update({d / f"{name}.rs", d / name / "mod.rs"})
                out.update((d / name).rglob("*.rs"))
    return out


def why_comment(lines: list[str], fn_line: int, open_line: int) -> bool:
    """Whether the comments just above `fn` or opening the body say "Longer than a screen:"""
    said = []
    k = fn_line - 1
    while k >= 0:
        s = lines[k].strip()
        if s.startswith("//") or s.startswith("#[") or s.startswith("#!") or s.endswith(")]"):
            said.append(s)
            k -= 1
        else:
            break
    k = open_line + 1
    while k < len(lines) and lines[k].strip().startswith("//"):
        said.append(lines[k].strip())
        k += 1
    text = " ".join(re.sub(r"^/+!?\s?", "", s) for s in said)
    return bool(MARKER.search(text))


def long_functions(src: Path):
    skip = test_files(src)
    for f in sorted(src.rglob("*.rs")):
        if f in skip:
            continue
        text, code = read(f)
        lines = text.splitlines()
        pairs = braces(code)
        line_of = lambda off: code.count("\n", 0, off)  # noqa: E731
        tests = []
        for m in CFG_TEST.finditer(code):
            at, kind = item_body(code, m.end())
            if kind == "{" and at in pairs:
                tests.append((at, pairs[at]))
        impls = []
        for m in IMPL.finditer(code):
            at, kind = item_body(code, m.end())
            if kind == "{" and at in pairs:
                impls.append((at, pairs[at], impl_name(code[m.start() : at])))
        for m in FN.finditer(code):
            if any(a <= m.start() <= b for a, b in tests):
                continue
            at, kind = item_body(code, m.end())
            if kind != "{" or at not in pairs:
                continue
            first, last = line_of(m.start()), line_of(pairs[at])
            length = last - first + 1
            if length <= LIMIT:
                continue
            owner = [name for a, b, name in impls if a < m.start() < b]
            name = f"{owner[-1]}::{m.group(1)}" if owner else m.group(1)
            yield f, first + 1, name, length, why_comment(lines, first, line_of(at))


def main() -> int:
    args = sys.argv[1:]
    show_all = "--all" in args
    roots = [Path(a) for a in args if a != "--all"] or sorted(Path(".").glob("crates/*/src"))
    found = [hit for src in roots for hit in long_functions(src)]
    bad = 0
    if show_all:
        for f, line, name, length, why in sorted(found, key=lambda h: -h[3]):
            print(f"{length:4} {f}:{line}: {name}{'' if why else '  (no comment)'}")
        return 0
    for f, line, name, length, why in found:
        if not why:
            print(
                f"{f}:{line}: `{name}` is {length} lines (over {LIMIT}): split it, or say why in a"
                ' comment starting \"Longer than a screen:\"',
                file=sys.stderr,
            )
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
