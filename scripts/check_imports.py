#!/usr/bin/env python3
"""Check that the project's modules import only downwards and never in a circle.

Every import counts, wherever it is written: at the top of a module, inside a function, under
``if TYPE_CHECKING:``, and a string that names a project module (``importlib.import_module("...")``,
a lazy ``"module"`` / ``"module:attr"`` table). Two rules, both over the modules of :data:`ROOTS`:

1. no cycle between modules (a module importing itself is ignored);
2. every module belongs to one unit of :data:`LAYERS` and imports only its own unit or units on a
   lower level (units that share a level do not import each other).

A module belongs to the longest unit that names it or a package above it. A *face* (:data:`FACES`,
the ``harness`` package's ``__init__``) covers only its own ``__init__``, so a new top-level module
or package is an error until it is given a place in :data:`LAYERS`: adding a package is one line.

Deliberately not counted: the implicit import of parent packages (importing ``harness.run.jobs``
runs ``harness/__init__.py`` first, which imports nothing heavy at its top level; counting it would
forbid every lazy function of the package face), and ``importlib.util.find_spec("...")``, which
locates a module without running it.

Usage: ``python scripts/check_imports.py [REPO]``. Prints each cycle and each upward import with
``file:line`` (and each module in no layer) and exits 1; exits 0 with a one-line summary otherwise.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# import name -> directory (relative to the repository), as pyproject.toml's package-dir maps them
ROOTS = {"harness": "harness", "harness_plugins": "plugins"}

# Bottom first. A unit may import units on lower levels; units on one level are independent peers.
LAYERS: list[list[str]] = [
    ["harness._version", "harness.errors", "harness.habits"],
    ["harness.params", "harness.store", "harness.stats"],
    ["harness.models", "harness.results"],
    ["harness.api"],
    ["harness.registry"],
    ["harness.hookspecs"],
    ["harness.plugins"],
    ["harness.decoding", "harness.training", "harness.report", "harness.comet"],
    ["harness.engines", "harness.report_data"],
    ["harness.experiment"],
    ["harness.run"],
    ["harness"],
    ["harness_plugins", "harness.testing", "harness.cli"],
]

# units that cover only their package's __init__, not the modules under it
FACES = {"harness"}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module
    file: str  # repository-relative path of the importing module
    line: int


def module_files(repo: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the roots."""
    out: dict[str, Path] = {}
    for name, rel in ROOTS.items():
        base = repo / rel
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([name, *parts])] = path
    return out


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def _known(modules: dict[str, Path], dotted: str) -> str | None:
    """The deepest project module that ``dotted`` names or lies in (``a.b.attr`` -> ``a.b``)."""
    parts = dotted.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (they may name modules without importing them)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path], repo: Path) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(repo))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = _docstrings(tree)
    loaders: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = getattr(node.func, "attr", getattr(node.func, "id", None))
            if called == "find_spec":  # locates a module without importing it
                skip.update(id(a) for a in node.args)
            elif called in ("import_module", "__import__"):
                loaders.update(id(a) for a in node.args[:1])
    out: list[Edge] = []

    def add(dotted: str, line: int) -> None:
        target = _known(modules, dotted)
        if target is not None and target != module:
            out.append(Edge(module, target, rel, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            for alias in node.names:
                sub = f"{stem}.{alias.name}"
                # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself
                add(sub if sub in modules else stem, node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value.partition(":")[0]  # "module:attr" placeholders name a module too
            # a bare root name ("harness") is the project's name far more often (loggers, the
            # entry-point group) than a module: it counts only where it is imported
            if text in modules and ("." in text or id(node) in loaders):
                add(text, node.lineno)
    return sorted(set(out), key=lambda e: (e.line, e.target))


def unit_of(module: str, units: set[str]) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in units and (name not in FACES or n == len(parts)):
            return name
    return None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return sorted(out)


def shortest_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One shortest circle through the first module of a component: [a, b, ..., a]."""
    start = component[0]
    members = set(component)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in prev:
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]  # pragma: no cover - a component always has a circle


def check(repo: Path) -> tuple[list[str], int, str]:
    """(problem lines, exit code, summary)."""
    modules = module_files(repo)
    edges = [e for m, p in modules.items() for e in imports_of(m, p, modules, repo)]
    level = {u: i for i, names in enumerate(LAYERS) for u in names}
    units = set(level)
    problems: list[str] = []

    orphans = sorted(m for m in modules if unit_of(m, units) is None)
    for m in orphans:
        problems.append(f"{modules[m].relative_to(repo)}: module {m} is in no layer: add its package to LAYERS "
                        f"in scripts/check_imports.py")
    stale = sorted(u for u in units if not any(unit_of(m, units) == u for m in modules))
    for u in stale:
        problems.append(f"scripts/check_imports.py: LAYERS names {u}, which has no module")

    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], Edge] = {}
    for m in modules:
        graph[m]  # every module is a node
    for e in edges:
        graph[e.source].add(e.target)
        where.setdefault((e.source, e.target), e)

    cycles = find_cycles(graph)
    for comp in cycles:
        circle = shortest_cycle(comp, graph)
        problems.append(f"cycle of {len(comp)} modules ({', '.join(comp)}); one circle: {' -> '.join(circle)}")
        for a, b in zip(circle, circle[1:]):
            e = where[(a, b)]
            problems.append(f"  {e.file}:{e.line}: {a} imports {b}")

    upward = 0
    for e in sorted(edges, key=lambda e: (e.file, e.line, e.target)):
        su, tu = unit_of(e.source, units), unit_of(e.target, units)
        if su is None or tu is None or su == tu or level[tu] < level[su]:
            continue
        upward += 1
        how = "above" if level[tu] > level[su] else "beside (same level)"
        problems.append(f"{e.file}:{e.line}: {e.source} imports {e.target}: {tu} is {how} {su} in LAYERS")

    in_cycles = sum(len(c) for c in cycles)
    if problems:
        placed = f", {len(orphans)} module(s) in no layer" if orphans else ""
        return problems, 1, (f"{len(cycles)} cycle(s) ({in_cycles} modules), {upward} upward import(s){placed} "
                             f"among {len(modules)} modules")
    return [], 0, (f"imports ok: {len(modules)} modules, {len(edges)} imports, {len(units)} units on "
                   f"{len(LAYERS)} levels, no cycle, nothing imported from above")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", default=Path(__file__).resolve().parent.parent, type=Path,
                        help="repository root (default: this script's)")
    args = parser.parse_args(argv)
    problems, code, summary = check(args.repo.resolve())
    for line in problems:
        print(line)
    print(summary if code == 0 else f"error: {summary}", file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
