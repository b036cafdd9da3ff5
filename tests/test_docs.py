"""Every ```python block of docs/*.md runs, in page order, in one namespace per page (so no example
can rot), and the site's pages are all in mkdocs.yml's nav. The command-line page's ```bash blocks
run too, with ``mfrec`` meaning this tree's ``python -m mfrec``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mfrec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)

#: bash blocks that run (other pages' shell blocks need a server, a cluster or pip)
RUN_BASH = {"cli.md"}


def blocks(page: str, lang: str) -> list[str]:
    return [code for kind, code in FENCE.findall((DOCS / page).read_text()) if kind == lang]


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert PAGES and all(page in nav for page in PAGES), [p for p in PAGES if p not in nav]


@pytest.mark.realdata
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")])
def test_python_examples_run(page, tmp_path, monkeypatch, capsys):
    from mfrec.models import registry

    monkeypatch.chdir(tmp_path)
    # a page may register a model of its own (adding-a-model.md): keep it out of the other tests
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    namespace: dict = {"__name__": f"docs_{page[:-3]}"}
    for k, code in enumerate(blocks(page, "python"), 1):
        try:
            exec(compile(code, f"docs/{page} (python block {k})", "exec"), namespace)
        except mfrec.DatasetNotFoundError as exc:  # pragma: no cover - depends on the machine
            if os.environ.get("MFREC_REQUIRE_DATA"):
                raise
            pytest.skip(f"MovieLens data not available: {exc}")


@pytest.mark.realdata
@pytest.mark.parametrize("page", sorted(RUN_BASH))
def test_bash_examples_run(page, tmp_path):
    shim = tmp_path / "bin" / "mfrec"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mfrec "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    for k, code in enumerate(blocks(page, "bash"), 1):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"docs/{page} bash block {k} failed:\n{code}\n{proc.stdout}\n{proc.stderr}"
