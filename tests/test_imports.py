"""No circular imports in src/mfrec: every module is parsed with `ast` (nothing is imported), every
import of an mfrec module is an edge (top level and inside functions, absolute and relative;
``from mfrec.x import y`` with ``y`` a submodule is an edge to ``mfrec.x.y``), and the module
graph must have no cycle.

Importing ``mfrec.a.b`` first runs the package ``mfrec/a/__init__.py``, so an import is also an
edge to every package above its target, except the importing module's own packages (importing a
sibling runs the package being imported already; that is no cycle of ours): ``mfrec.persist``
importing ``mfrec.models.registry`` depends on ``mfrec/models/__init__.py`` and everything that
imports. Imports under ``if TYPE_CHECKING:`` never run and are not edges; dynamic imports
(``importlib.import_module("...")``, the registry's lazy entries) are not seen.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # "path:line" of the import statement


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root / package``."""
    out: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree (functions and classes included), except those under
    ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_edges(root: Path, package: str) -> list[Edge]:
    """The import edges between the modules of ``package`` (a folder under ``root``)."""
    modules = module_files(root, package)
    edges: list[Edge] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own = set(_ancestors(name)) | {name}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    sub = f"{origin}.{alias.name}"
                    targets.append(sub if sub in modules else origin)
            where = f"{path.relative_to(root)}:{node.lineno}"
            for target in targets:
                if target not in modules:
                    continue  # not one of ours (numpy, ...)
                for dep in _ancestors(target) + [target]:
                    if dep in modules and dep not in own:
                        edges.append(Edge(name, dep, where))
    return edges


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle through each module that lies on a cycle (rotations and repeats
    removed): every strongly connected part of the graph shows up with its ways round."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, {}).setdefault(e.target, e)
    found: dict[frozenset, list[Edge]] = {}
    for start in sorted(graph):
        prev: dict[str, Edge] = {}
        queue = deque([start])
        seen = {start}
        while queue:
            node = queue.popleft()
            for nxt, edge in sorted(graph.get(node, {}).items()):
                if nxt == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, prev[path[0].source])
                    key = frozenset((x.source, x.target) for x in path)
                    found.setdefault(key, path)
                    queue.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    prev[nxt] = edge
                    queue.append(nxt)
    return sorted(found.values(), key=lambda c: (len(c), [x.source for x in c]))


def describe(cycle: list[Edge]) -> str:
    return " -> ".join(f"{e.source} ({e.where})" for e in cycle) + f" -> {cycle[0].source}"


def report(found: list[list[Edge]]) -> str:
    """The cycles grouped by the tangle (strongly connected modules) they belong to."""
    groups: list[tuple[set[str], list[list[Edge]]]] = []
    for cycle in found:
        nodes = {e.source for e in cycle}
        hit = [g for g in groups if g[0] & nodes]
        merged = (nodes.union(*(g[0] for g in hit)), [c for g in hit for c in g[1]] + [cycle])
        groups = [g for g in groups if g not in hit] + [merged]
    lines = []
    for nodes, group in groups:
        lines.append(f"{len(nodes)} modules import each other: {', '.join(sorted(nodes))}")
        lines += [f"  {describe(c)}" for c in group]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the checker itself
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_absolute_relative_function_level_and_submodule_cycles(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import numpy\nfrom pkg.b import thing\n",
        "pkg/b.py": "def f():\n    from . import a\n",                  # relative, inside a function
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from pkg import d\n",                             # d is a submodule: edge to pkg.d
        "pkg/d.py": "import pkg.sub.c as c\n",
        "pkg/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.f import X\n",
        "pkg/f.py": "from pkg.e import Y\n",                                # e -> f only for the type checker
    })
    edges = import_edges(tmp_path, "pkg")
    pairs = {(e.source, e.target) for e in edges}
    assert {("pkg.a", "pkg.b"), ("pkg.b", "pkg.a"), ("pkg.sub.c", "pkg.d"), ("pkg.d", "pkg.sub.c"),
            ("pkg.d", "pkg.sub"), ("pkg.f", "pkg.e")} <= pairs
    assert ("pkg.e", "pkg.f") not in pairs
    assert not any(target == "pkg" for _, target in pairs)  # the root package is every module's parent
    found = {frozenset(e.source for e in c) for c in cycles(edges)}
    assert found == {frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg.sub.c", "pkg.d"})}


def test_checker_ignores_a_modules_own_package_but_not_a_cycle_through_another_packages_init(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.models import Model\n",
        "pkg/models/__init__.py": "from pkg.models.base import Model\nfrom pkg.models.registry import names\n",
        "pkg/models/base.py": "from pkg.models.registry import names\n\ndef save():\n    from pkg.persist import save\n",
        "pkg/models/registry.py": "NAMES = []\n",
        "pkg/persist.py": "from pkg.models.registry import names\n",  # runs pkg/models/__init__.py first
    })
    edges = import_edges(tmp_path, "pkg")
    pairs = {(e.source, e.target) for e in edges}
    assert ("pkg.models.base", "pkg.models") not in pairs  # its own package
    assert ("pkg.persist", "pkg.models") in pairs and ("pkg.persist", "pkg.models.registry") in pairs
    (cycle,) = cycles(edges)
    assert {e.source for e in cycle} == {"pkg.persist", "pkg.models", "pkg.models.base"}
    assert "pkg/models/base.py:4" in describe(cycle)


def test_checker_sees_every_mfrec_module():
    modules = module_files(SRC, "mfrec")
    assert {"mfrec", "mfrec.models", "mfrec.models.base", "mfrec.persist", "mfrec.kernels.sgd"} <= set(modules)
    targets = {e.target for e in import_edges(SRC, "mfrec")}
    assert {"mfrec.errors", "mfrec.models.registry", "mfrec.data.ratings"} <= targets


# ------------------------------------------------------------------------------ src/mfrec
def test_no_import_cycles_in_src():
    found = cycles(import_edges(SRC, "mfrec"))
    if found:
        pytest.fail(f"{len(found)} import cycle(s) in src/mfrec:\n{report(found)}")
