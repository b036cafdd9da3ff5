"""Models trained once by the CLI for all of tests/cli (package scope)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mfrec
from tests.cli.helpers import data_env, ok, run


@pytest.fixture(scope="package")
def work(tmp_path_factory) -> Path:
    """A folder with small.csv (synthetic, items 0..29) and m.mfrec trained on it by the CLI."""
    d = tmp_path_factory.mktemp("cli")
    mfrec.synthetic(40, 30, 500, seed=0).to_dataframe().to_csv(d / "small.csv", index=False)
    ok(run("train", "--ratings", d / "small.csv", "--model", "biased-mf", "--epochs", "2", "--factors", "4",
           "--out", d / "m.mfrec", "--quiet"))
    return d


@pytest.fixture(scope="package")
def titled(tmp_path_factory) -> Path:
    """implicit-als trained on ml-latest-small by the CLI (has titles and genres)."""
    out = tmp_path_factory.mktemp("cli-real") / "x.mfrec"
    res = run("train", "--dataset", "ml-latest-small", "--model", "implicit-als", "--param", "iterations=2",
              "--out", out, "--quiet", env=data_env("ml-latest-small"))
    ok(res)
    return out


@pytest.fixture(scope="package")
def rated(tmp_path_factory) -> Path:
    """biased-mf on ml-latest-small (0.5-5): top scores of well-rated users exceed 5."""
    out = tmp_path_factory.mktemp("cli-rated") / "b.mfrec"
    ok(run("train", "--dataset", "ml-latest-small", "--model", "biased-mf", "--out", out, "--quiet",
           env=data_env("ml-latest-small")))
    return out
