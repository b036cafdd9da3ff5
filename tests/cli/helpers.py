"""Helpers of the command-line tests (typer CliRunner on mfrec.cli.app, plus real subprocesses):
commands work end to end, --json output parses, and every expected failure is one "error:" line
on stderr with a non-zero exit code and no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mfrec.cli import app
from tests.conftest import dataset_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: this tree's sources, for subprocesses
SRC = Path(__file__).resolve().parents[2] / "src"
runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok(res) -> str:
    assert res.exit_code == 0, f"exit {res.exit_code}: {res.output}\n{res.exception!r}"
    return res.stdout


def assert_clean_error(res, *fragments: str) -> str:
    """Non-zero exit, exactly one 'error:' line on stderr, nothing else, no traceback."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def data_env(name: str) -> dict:
    return {"MFREC_DATA_DIR": str(dataset_dir(name).parent)}


def src_env(*paths: Path | str) -> dict:
    """The environment for a subprocess that imports this tree's mfrec (and modules in ``paths``)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *map(str, paths), os.environ.get("PYTHONPATH", "")])}


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        pytest.skip(f"{module} is not importable yet (being written in parallel): {exc}")


def _no_fit(monkeypatch):
    """Make any model fit fail the test: proves a check ran before training."""
    from mfrec.models.base import FactorModel

    def fit(*args, **kwargs):
        raise AssertionError("training started before the bad argument was reported")

    monkeypatch.setattr(FactorModel, "fit", fit)


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (which json.loads accepts by default)."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _custom_columns(work: Path, tmp_path: Path) -> Path:
    import pandas as pd

    df = pd.read_csv(work / "small.csv")
    df = df.rename(columns={"user": "who", "item": "film", "rating": "stars"})[["stars", "film", "who"]]
    path = tmp_path / "custom.txt"
    df.to_csv(path, sep=";", index=False)
    return path
