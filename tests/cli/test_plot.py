"""mfrec plot."""

from __future__ import annotations

import pytest

from tests.cli.helpers import run, ok, assert_clean_error, PNG_MAGIC


def test_plot_learning_curve(work, tmp_path):
    out = tmp_path / "p.png"
    ok(run("plot", work / "m.mfrec", "--kind", "learning-curve", "--out", out))
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_latent_space(titled, tmp_path):
    out = tmp_path / "latent-space.png"
    ok(run("plot", titled, "--kind", "latent-space", "--out", out))
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_plot_bias_popularity_needs_biases(work, titled, tmp_path):
    out = tmp_path / "bias-popularity.png"
    ok(run("plot", work / "m.mfrec", "--kind", "bias-popularity", "--out", out))  # BiasedMF
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert_clean_error(run("plot", titled, "--kind", "bias-popularity", "--out", tmp_path / "b.png"),
                       "ImplicitALS has no item biases")  # all zero: the plot would be a flat line
    assert not (tmp_path / "b.png").exists()


def test_plot_error_by_activity_needs_and_uses_test_file(work, tmp_path):
    assert_clean_error(run("plot", work / "m.mfrec", "--kind", "error-by-activity", "--out", tmp_path / "e.png"),
                       "--test")
    out = tmp_path / "e.png"
    ok(run("plot", work / "m.mfrec", "--kind", "error-by-activity", "--test", work / "small.csv", "--out", out))
    assert out.read_bytes()[:8] == PNG_MAGIC
