"""The package's import graph, built from the source with :mod:`ast` (nothing is imported).

Every ``import symaffect...`` / ``from symaffect... import ...`` statement is an edge from
the importing module to the imported one; ``from symaffect.x import y`` where ``y`` is a
submodule of ``symaffect.x`` is an edge to ``symaffect.x.y``. Each edge records whether
it sits at module level or inside a function (a deferred import).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    deferred: bool
    lineno: int


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "symaffect").rglob("*.py"))}


def _resolve(mod: str, level: int, target: str | None, is_pkg: bool) -> str:
    if level == 0:
        return target or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def edges() -> list[Edge]:
    mods = modules()
    out: list[Edge] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_pkg = path.name == "__init__.py"

        def visit(node: ast.AST, deferred: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inner = deferred or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
                )
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        if alias.name.startswith("symaffect"):
                            out.append(Edge(mod, alias.name, deferred, child.lineno))
                elif isinstance(child, ast.ImportFrom):
                    target = _resolve(mod, child.level, child.module, is_pkg)
                    if not target.startswith("symaffect"):
                        continue
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        out.append(Edge(mod, sub if sub in mods else target, deferred, child.lineno))
                visit(child, inner)

        visit(tree, False)
    return [e for e in out if e.dst != e.src]


def cycles(es: list[Edge], *, level: str = "module") -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    def key(name: str) -> str:
        if level == "package":
            parts = name.split(".")
            return ".".join(parts[:2])
        return name

    graph: dict[str, set[str]] = {}
    for e in es:
        a, b = key(e.src), key(e.dst)
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
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
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return comps


if __name__ == "__main__":
    es = edges()
    print("edges", len(es), "deferred", sum(e.deferred for e in es))
    print("module cycles:")
    for c in cycles(es):
        print("  ", c)
    print("package cycles:")
    for c in cycles(es, level="package"):
        print("  ", c)
