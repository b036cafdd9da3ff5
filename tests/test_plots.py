"""mfrec.plots: every plot writes a non-empty PNG for a small fitted model (with an item table)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="plots need the plot extra (matplotlib)")

import matplotlib.pyplot as plt  # noqa: E402

import mfrec  # noqa: E402
from mfrec import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_USERS, N_ITEMS = 80, 50
GENRES = [["Children", "Animation"], ["Drama"], ["Horror"], ["Documentary"], ["Comedy"], []]


@pytest.fixture(scope="module")
def data():
    r = mfrec.synthetic(N_USERS, N_ITEMS, 1200, factors=3, seed=5)
    return mfrec.split.random_split(r, test_size=0.2, seed=0)


@pytest.fixture(scope="module")
def model(data):
    train, test = data
    items = pd.DataFrame({"title": [f"Film {k}" for k in range(N_ITEMS)],
                          "genres": [GENRES[k % len(GENRES)] for k in range(N_ITEMS)]},
                         index=pd.Index(range(N_ITEMS), name="item"))
    m = mfrec.BiasedMF(factors=4, epochs=4, threads=1).fit(train, validation=test)
    return m.attach_items(items)


def public_plot_functions() -> set[str]:
    return {name for name, fn in inspect.getmembers(plots, inspect.isfunction)
            if fn.__module__ == plots.__name__ and not name.startswith("_")}


CALLS = {
    "learning_curve": lambda m, test, path: plots.learning_curve(m, path),
    "latent_space": lambda m, test, path: plots.latent_space(m, path),
    "bias_vs_popularity": lambda m, test, path: plots.bias_vs_popularity(m, path),
    "error_by_activity": lambda m, test, path: plots.error_by_activity(m, test, path),
}


def test_every_plot_function_is_covered():
    assert public_plot_functions() == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_plot_writes_png(name, model, data, tmp_path):
    path = tmp_path / "sub" / f"{name}.png"  # missing folders are created
    before = len(plt.get_fignums())
    result = CALLS[name](model, data[1], path)
    assert result == path
    blob = path.read_bytes()
    assert len(blob) > 1000 and blob.startswith(PNG_MAGIC)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert len(plt.get_fignums()) == before  # the figure is closed


@pytest.mark.parametrize("name", sorted(CALLS))
def test_plot_of_a_loaded_model(name, model, data, tmp_path):
    model.save(tmp_path / "m.mfrec")
    loaded = mfrec.load_model(tmp_path / "m.mfrec")
    path = CALLS[name](loaded, data[1], tmp_path / "p.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_latent_space_without_item_table_and_other_models(data, tmp_path):
    train, _ = data
    for m in (mfrec.ALS(factors=3, iterations=2, regularization=2.0).fit(train),
              mfrec.ImplicitALS(factors=3, iterations=2, regularization=0.5).fit(train)):
        path = plots.latent_space(m, tmp_path / f"{type(m).__name__}.png")
        assert path.read_bytes().startswith(PNG_MAGIC)


def test_latent_space_needs_two_factors(data, tmp_path):
    train, _ = data
    with pytest.raises(ValueError, match="2 factors"):
        plots.latent_space(mfrec.Baseline(iterations=2).fit(train), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 factors"):
        plots.latent_space(mfrec.BiasedMF(factors=1, epochs=1).fit(train), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_latent_space_of_a_tiny_catalogue_plots_or_says_why(tmp_path):
    """Two items, one rated by most users: the median kept one item and the PCA had one column
    (an IndexError traceback in `mfrec plot`)."""
    two = mfrec.Ratings.from_arrays([1, 2, 3, 1], [1, 1, 1, 2], [5.0, 4.0, 3.0, 2.0])
    path = plots.latent_space(mfrec.BiasedMF(factors=2, epochs=2).fit(two), tmp_path / "two.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    one = mfrec.Ratings.from_arrays([1, 2], [1, 1], [5.0, 4.0])
    with pytest.raises(ValueError, match="at least 2 items with training ratings, the model has 1"):
        plots.latent_space(mfrec.BiasedMF(factors=2, epochs=2).fit(one), tmp_path / "one.png")
    assert not (tmp_path / "one.png").exists()


def test_error_by_activity_with_unknown_users(tmp_path):
    r = mfrec.synthetic(N_USERS, N_ITEMS, 1200, factors=3, seed=5)
    kept, held = mfrec.split.holdout_users(r, fraction=0.2, seed=0)
    m = mfrec.BiasedMF(factors=3, epochs=2, threads=1).fit(kept)
    path = plots.error_by_activity(m, held, tmp_path / "e.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def _capture_axes(monkeypatch) -> list:
    made = []
    real = plt.subplots

    def spy(*args, **kwargs):
        fig, ax = real(*args, **kwargs)
        made.append(ax)
        return fig, ax

    monkeypatch.setattr(plt, "subplots", spy)
    return made


def test_bias_vs_popularity_x_axis_is_the_rating_count(model, data, tmp_path, monkeypatch):
    train, _ = data
    axes = _capture_axes(monkeypatch)
    plots.bias_vs_popularity(model, tmp_path / "b.png")
    x = axes[-1].collections[0].get_offsets()[:, 0]
    np.testing.assert_array_equal(np.asarray(x), np.maximum(train.item_counts, 1))


def test_bias_vs_popularity_of_a_loaded_model_uses_counts(model, data, tmp_path, monkeypatch):
    train, _ = data
    model.save(tmp_path / "m.mfrec")
    loaded = mfrec.load_model(tmp_path / "m.mfrec")
    axes = _capture_axes(monkeypatch)
    plots.bias_vs_popularity(loaded, tmp_path / "b.png")
    x = axes[-1].collections[0].get_offsets()[:, 0]
    np.testing.assert_array_equal(np.asarray(x), np.maximum(train.item_counts, 1))


def test_error_by_activity_bars_are_the_bins_rmse(tmp_path, monkeypatch):
    """Users all equally active (here: all unknown, 0 training ratings) made no bin and an empty
    plot; they are one bin, whose bar is the overall RMSE."""
    r = mfrec.synthetic(N_USERS, N_ITEMS, 1200, factors=3, seed=5)
    kept, held = mfrec.split.holdout_users(r, fraction=0.2, seed=0)
    m = mfrec.BiasedMF(factors=3, epochs=2, threads=1).fit(kept)
    axes = _capture_axes(monkeypatch)
    plots.error_by_activity(m, held, tmp_path / "e.png")
    heights = [p.get_height() for p in axes[-1].patches]
    assert heights == [pytest.approx(mfrec.evaluate(m, held, metrics="rmse")["rmse"])]
