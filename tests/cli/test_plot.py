"""mfrec plot."""

from __future__ import annotations

import pytest

from tests.cli.helpers import run, ok, assert_clean_error, PNG_MAGIC


def test_plot_learning_curve(work, tmp_path):
    out = tmp_path / "p.png"
    ok(run("plot", work / "m.mfrec", "--kind", "learning-curve", "--out", out))
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


@pytest.mark.parametrize("kind", ["latent-space", "bias-popularity"])
def test_plot_other_kinds(titled, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    ok(run("plot", titled, "--kind", kind, "--out", out))
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_plot_error_by_activity_needs_and_uses_test_file(work, tmp_path):
    assert_clean_error(run("plot", work / "m.mfrec", "--kind", "error-by-activity", "--out", tmp_path / "e.png"),
                       "--test")
    out = tmp_path / "e.png"
    ok(run("plot", work / "m.mfrec", "--kind", "error-by-activity", "--test", work / "small.csv", "--out", out))
    assert out.read_bytes()[:8] == PNG_MAGIC
