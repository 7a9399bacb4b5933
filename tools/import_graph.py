"""The crate's module import graph has no cycle: imports run one way (ARCHITECTURE.md, src/lib.rs).

    python tools/import_graph.py [SRC]     (scripts/check-tooling.sh runs it on src/)

A top-level module of the crate (`src/cache/`, `src/config.rs`, ...) imports another when its code
outside `#[cfg(test)]` names `crate::other` (in a `use`, a `use crate::{...}` group or a path).
Comments do not count. Prints every cycle found, with the files behind each edge, and exits 1 if
there is one; with none, prints the modules in an order in which each imports only earlier ones.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

CRATE_ROOTS = {"main", "lib"}
COMMENT = re.compile(r"//[^\n]*")
PATH_REFERENCE = re.compile(r"crate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"crate::\{([^}]*)\}", re.S)
GROUP_MEMBER = re.compile(r"(?:^|,)\s*([a-z_][a-z0-9_]*)")


def module_of(source: Path, root: Path) -> str | None:
    """The top-level module a file belongs to; None for the crate roots."""
    parts = source.relative_to(root).with_suffix("").parts
    return None if parts[0] in CRATE_ROOTS else parts[0]


def imported_modules(code: str) -> set[str]:
    """Top-level modules named by `code` outside its test module and its comments."""
    code = COMMENT.sub("", code).split("#[cfg(test)]")[0]
    named = set(PATH_REFERENCE.findall(code))
    for group in GROUP.findall(code):
        named.update(GROUP_MEMBER.findall(group))
    return named


def graph(root: Path) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Edges between top-level modules, and the files behind each edge."""
    edges: dict[str, set[str]] = defaultdict(set)
    files: dict[tuple[str, str], set[str]] = defaultdict(set)
    for source in sorted(root.rglob("*.rs")):
        module = module_of(source, root)
        if module is None:
            continue
        edges.setdefault(module, set())
        for other in imported_modules(source.read_text(encoding="utf-8")) - {module}:
            edges[module].add(other)
            files[(module, other)].add(str(source))
    return edges, files


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layers(edges: dict[str, set[str]]) -> list[str]:
    """Modules ordered so that each imports only modules before it (the graph must be acyclic)."""
    order: list[str] = []
    placed: set[str] = set()
    while len(placed) < len(edges):
        ready = sorted(m for m in edges if m not in placed and edges[m] & set(edges) <= placed)
        order.extend(ready)
        placed.update(ready)
    return order


def main(arguments: list[str]) -> int:
    root = Path(arguments[0] if arguments else "src")
    edges, files = graph(root)
    found = cycles(edges)
    for component in found:
        print(f"import-graph: a cycle among {', '.join(component)}:", file=sys.stderr)
        for module in component:
            for other in sorted(edges[module] & set(component)):
                print(f"  {module} -> {other}  ({', '.join(sorted(files[(module, other)]))})", file=sys.stderr)
    if found:
        return 1
    print(f"import-graph: no cycle; from the bottom up: {' '.join(layers(edges))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
