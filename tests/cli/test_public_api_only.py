"""The command line is written against mfrec's public API only: no ``obj._private`` attribute of
another object (a model's ``_predicts_ratings``, ``_param_names``...) and no ``_private`` name
imported from another mfrec module (``from mfrec.evaluate import _metric_names``). Checked
statically with `ast` over every module of ``src/mfrec/cli``."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "src" / "mfrec" / "cli"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, filename: str = "<string>") -> list[str]:
    """Each private attribute access (other than on self/cls) and private mfrec import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{filename}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mfrec":
            found += [f"{filename}:{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if _private(a.name)]
    return found


def test_the_checker_finds_private_uses():
    code = ("from mfrec.evaluate import _metric_names, evaluate\n"
            "def f(model, cls, self):\n"
            "    return model._predicts_ratings, type(model)._param_names(), cls._x, self._y, model.__class__\n")
    assert private_uses(code) == ["<string>:1: from mfrec.evaluate import _metric_names",
                                  "<string>:3: ._predicts_ratings", "<string>:3: ._param_names"]


def test_the_cli_uses_only_public_names():
    files = sorted(CLI.rglob("*.py"))
    assert len(files) >= 10, files  # the package: __init__, _common and one module per command
    found = [use for path in files for use in private_uses(path.read_text(), str(path.relative_to(CLI.parent)))]
    assert found == []


def test_ids_typed_on_the_command_line_have_one_conversion():
    """Command-line ids go through `_common.model_ids` (IdMap.conform) only: there were 3 copies of
    "int(x) if the map is int and x.isdigit()" in cli.py."""
    copies = [str(p.relative_to(CLI.parent)) for p in CLI.rglob("*.py") if "isdigit" in p.read_text()]
    assert copies == []
