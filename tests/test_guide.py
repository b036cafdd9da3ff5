"""docs/adding-a-model.md: its model file, used as a user would, from outside the package.

The guide's first python block is written to ``nnmf.py`` in a temporary folder (nothing in
``src/`` knows about it), then: the contract suite runs on it (the guide's own test class), and
the command line trains it by ``module:Class``, recommends from the file and evaluates it. The
page's other blocks (fit, predict, recommend, fold in, add_user, save, load, evaluate) run in
tests/test_docs.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adding-a-model.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", GUIDE.read_text(), re.S | re.M)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "nnmf.py").write_text(_blocks("python")[0])
    return tmp_path


def _env(folder: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}


def test_the_guide_model_is_one_file_outside_the_package():
    first = _blocks("python")[0]
    assert first.lstrip().startswith('"""nnmf.py') and "@register_model(" in first
    assert "nnmf" not in (ROOT / "src" / "mfrec" / "models" / "registry.py").read_text()


def test_the_guide_model_passes_the_contract_suite(model_dir: Path):
    contract = next(b for b in _blocks("python") if "ModelContract" in b)
    (model_dir / "test_nnmf_contract.py").write_text("from nnmf import NonNegativeMF\n\n" + contract)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_nnmf_contract.py"],
                          cwd=model_dir, env=_env(model_dir), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_the_guide_model_trains_and_recommends_from_the_command_line(model_dir: Path):
    rng = np.random.default_rng(0)
    users, items = rng.integers(1, 40, 600), rng.integers(1, 30, 600)
    df = pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, 600)})
    df.drop_duplicates(["user", "item"]).to_csv(model_dir / "ratings.csv", index=False)
    run = lambda *args: subprocess.run([sys.executable, "-m", "mfrec", *args], cwd=model_dir, env=_env(model_dir),
                                       capture_output=True, text=True, timeout=600)
    proc = run("train", "--ratings", "ratings.csv", "--model", "nnmf:NonNegativeMF", "--param", "factors=3",
               "--iterations", "5", "--out", "nnmf.mfrec", "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (model_dir / "nnmf.mfrec").exists()
    # a process that only loads the file finds the class once its module is named (never from the file)
    proc = run("recommend", "nnmf.mfrec", "--user", str(int(users[0])), "-n", "3")
    assert proc.returncode != 0 and "MFREC_MODELS" in proc.stdout + proc.stderr
    env = {**_env(model_dir), "MFREC_MODELS": "nnmf"}
    proc = subprocess.run([sys.executable, "-m", "mfrec", "recommend", "nnmf.mfrec", "--user", str(int(users[0])),
                           "-n", "3", "--json"], cwd=model_dir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count('"item"') == 3
