#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle,
or when a part reaches back into the composition root.

Reads every `crate::` path in every `.rs` file under SRC (in `use` lines,
grouped `use crate::{a::x, b::y}` imports and inline paths), maps each file
to its top-level module (`src/deploy/record.rs` -> `deploy`, `src/error.rs`
-> `error`), and reports every strongly connected component of two or more
modules. The composition root (`--root host`) may import everything, so
it is left out of the graph; only the modules named `--client` (those
built on top of the root, like the admin API) may import it. Code under
`#[cfg(test)]` is skipped with `--skip-tests` (tests may reach anywhere).

Usage: check-module-cycles.py SRC [--root MODULE [--client MODULE]...]
       [--skip-tests] [--items]
"""

import argparse
import pathlib
import re
import sys

CRATE_PATH = re.compile(r"\bcrate::(\{[^;]*?\}|[a-z_][a-z0-9_]*)", re.S)
WORD = re.compile(r"^\s*([a-z_][a-z0-9_]*)")


def top_module(src: pathlib.Path, file: pathlib.Path) -> str:
    relative = file.relative_to(src)
    first = relative.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments_and_tests(text: str, skip_tests: bool) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    if not skip_tests:
        return text
    out, i = [], 0
    marker = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def targets(text: str):
    for m in CRATE_PATH.finditer(text):
        path = m.group(1)
        if path.startswith("{"):
            depth, start = 0, 1
            inner = path[1:-1]
            # Split the group on top-level commas only.
            parts, current = [], []
            for ch in inner:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    parts.append("".join(current))
                    current = []
                else:
                    current.append(ch)
            parts.append("".join(current))
            for part in parts:
                w = WORD.match(part)
                if w and w.group(1) != "self":
                    yield w.group(1)
        else:
            yield path


def strongly_connected(graph):
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=pathlib.Path)
    parser.add_argument("--root", help="the composition root, which may import every module")
    parser.add_argument("--client", action="append", default=[], help="a module that may import the root")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--items", action="store_true", help="list the imports behind each edge of a cycle")
    args = parser.parse_args()

    modules = {top_module(args.src, f) for f in args.src.rglob("*.rs")}
    graph, evidence, reach_back = {}, {}, {}
    for file in sorted(args.src.rglob("*.rs")):
        source = top_module(args.src, file)
        if source == args.root or source == "lib":
            continue
        text = strip_comments_and_tests(file.read_text(), args.skip_tests)
        for target in targets(text):
            if target == args.root and source not in args.client:
                reach_back.setdefault(source, set()).add(str(file.relative_to(args.src)))
            if target == source or target == args.root or target not in modules or target == "lib":
                continue
            graph.setdefault(source, set()).add(target)
            evidence.setdefault((source, target), set()).add(str(file.relative_to(args.src)))

    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    for source, files in sorted(reach_back.items()):
        print(f"error: `{source}` reaches back into the composition root `{args.root}` ({', '.join(sorted(files))}); hand it the part it needs instead")
    if not cycles and not reach_back:
        note = f"; only {', '.join(args.client) or 'the crate root'} import `{args.root}`" if args.root else ""
        print(f"check-module-cycles: no import cycle between the top-level modules of {args.src}{note}")
        return 0
    for cycle in cycles:
        print(f"error: the top-level modules {', '.join(cycle)} of {args.src} import each other in a cycle")
        for a in cycle:
            for b in cycle:
                if b in graph.get(a, ()):
                    files = sorted(evidence[(a, b)])
                    detail = f" ({', '.join(files)})" if args.items else ""
                    print(f"  {a} -> {b}{detail}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
