"""Synthetic ratings from a known low-rank model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import synthetic


def pair_keys(r: Ratings) -> np.ndarray:
    return r.user_indices.astype(np.int64) * r.n_items + r.item_indices


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    c = np.sort(counts)[::-1]
    return float(c[: max(1, int(len(c) * fraction))].sum() / c.sum())


@pytest.fixture(scope="module")
def generated() -> tuple[Ratings, dict]:
    return synthetic(2000, 500, 40_000, factors=8, seed=7, return_truth=True)


def test_exact_count_no_duplicates(generated) -> None:
    r, _ = generated
    assert isinstance(r, Ratings) and len(r) == 40_000
    assert len(np.unique(pair_keys(r))) == len(r)
    assert r.values.dtype == np.float32


def test_id_maps_cover_all_ids_in_order(generated) -> None:
    r, _ = generated
    assert r.n_users == 2000 and r.n_items == 500
    np.testing.assert_array_equal(r.users, np.arange(2000))
    np.testing.assert_array_equal(r.items, np.arange(500))
    assert r.users.dtype.kind == "i" and r.items.dtype.kind == "i"
    np.testing.assert_array_equal(r.raw_users, r.user_indices)


def test_scale_and_step(generated) -> None:
    r, _ = generated
    assert r.values.min() >= 1.0 and r.values.max() <= 5.0
    np.testing.assert_array_equal(np.unique(r.values), np.arange(1.0, 5.01, 0.5))
    cont = synthetic(100, 50, 1000, scale=(0.5, 5.0), step=None, noise=2.0)
    assert cont.values.min() >= 0.5 and cont.values.max() <= 5.0
    assert len(np.unique(cont.values)) > 500  # continuous values (a few clipped to the ends)
    odd = synthetic(100, 50, 1000, scale=(1.0, 5.0), step=0.75, noise=3.0)
    assert odd.values.max() == pytest.approx(4.75)  # the top of the grid within the scale
    assert np.allclose((odd.values - 1.0) / 0.75, np.round((odd.values - 1.0) / 0.75), atol=1e-5)


def test_long_tail(generated) -> None:
    r, _ = generated
    assert top_share(r.user_counts) > 0.3  # uniform activity would give ~0.1
    assert top_share(r.item_counts) > 0.5
    assert r.user_counts.min() >= 5  # every user gets a few ratings
    flat = synthetic(2000, 500, 40_000, user_activity_exponent=0.0, item_popularity_exponent=0.0)
    assert top_share(flat.user_counts) < 0.2 and top_share(flat.item_counts) < 0.2


def test_truth_consistency(generated) -> None:
    r, truth = generated
    assert truth["user_factors"].shape == (2000, 8) and truth["item_factors"].shape == (500, 8)
    assert truth["user_bias"].shape == (2000,) and truth["item_bias"].shape == (500,)
    assert truth["noise"] == 0.5
    u, i = r.user_indices, r.item_indices
    pred = (
        truth["global_mean"]
        + truth["user_bias"][u]
        + truth["item_bias"][i]
        + np.einsum("ij,ij->i", truth["user_factors"][u], truth["item_factors"][i])
    )
    assert np.corrcoef(pred, r.values)[0, 1] > 0.75
    resid = r.values - np.clip(pred, 1, 5)
    assert abs(resid.mean()) < 0.05 and 0.4 < resid.std() < 0.7  # noise 0.5 plus rounding
    # the factor term matters: the biases alone explain less
    bias_only = truth["global_mean"] + truth["user_bias"][u] + truth["item_bias"][i]
    assert np.corrcoef(bias_only, r.values)[0, 1] < np.corrcoef(pred, r.values)[0, 1] - 0.1


def test_noiseless_is_the_rounded_truth() -> None:
    r, truth = synthetic(300, 100, 3000, noise=0.0, step=None, return_truth=True)
    u, i = r.user_indices, r.item_indices
    pred = truth["global_mean"] + truth["user_bias"][u] + truth["item_bias"][i] + np.einsum(
        "ij,ij->i", truth["user_factors"][u], truth["item_factors"][i]
    )
    np.testing.assert_allclose(r.values, np.clip(pred, 1.0, 5.0), atol=1e-5)


def test_deterministic() -> None:
    a = synthetic(500, 200, 5000, seed=3, timestamps=True)
    b = synthetic(500, 200, 5000, seed=3, timestamps=True)
    c = synthetic(500, 200, 5000, seed=4, timestamps=True)
    for x, y in ((a.user_indices, b.user_indices), (a.item_indices, b.item_indices), (a.values, b.values), (a.timestamps, b.timestamps)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(pair_keys(a), pair_keys(c))


def test_dense_and_tiny_cases() -> None:
    dense = synthetic(40, 30, 600, user_activity_exponent=2.0, item_popularity_exponent=2.0)
    assert len(dense) == 600 and len(np.unique(pair_keys(dense))) == 600
    tiny = synthetic(1, 2, 1)
    assert len(tiny) == 1
    few = synthetic(10, 10, 5)  # fewer ratings than users: some users get none
    assert len(few) == 5 and few.n_users == 10
    bias_only = synthetic(50, 20, 200, factors=0, return_truth=True)[1]
    assert bias_only["user_factors"].shape == (50, 0)


def test_timestamps() -> None:
    r = synthetic(50, 20, 200, timestamps=True)
    assert r.timestamps is not None and r.timestamps.dtype == np.int64 and len(r.timestamps) == 200
    assert synthetic(50, 20, 200).timestamps is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_ratings=501), "more than half"),
        (dict(n_users=0), "n_users"),
        (dict(n_ratings=0), "n_ratings"),
        (dict(n_items=2.5), "n_items"),
        (dict(factors=-1), "factors"),
        (dict(noise=-1.0), "noise"),
        (dict(scale=(5.0, 1.0)), "scale"),
        (dict(scale="15"), "scale"),
        (dict(step=0.0), "step"),
        (dict(step=10.0), "step"),
        (dict(user_activity_exponent=-1.0), "user_activity_exponent"),
        (dict(item_popularity_exponent=float("nan")), "item_popularity_exponent"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = dict(n_users=20, n_items=50, n_ratings=100)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        synthetic(**args)


def test_the_scale_is_declared_on_the_ratings() -> None:
    """A model fitted on synthetic data clips to the generator's scale, not to the observed range."""
    r = synthetic(100, 50, 1000, scale=(0.5, 5.0), step=0.5)
    assert r.rating_scale == (0.5, 5.0)
    assert r.subset(np.arange(10)).rating_scale == (0.5, 5.0)
    odd = synthetic(100, 50, 1000, scale=(1.0, 5.0), step=0.75, noise=3.0)
    assert odd.rating_scale == (1.0, 5.0) and odd.values.max() < 5.0


def test_scale_and_step_that_float32_ratings_cannot_hold_are_refused():
    """step=1e-50 gave NaN ratings, scale=(0, 1e39) inf ones, and the fit then blamed the learning rate."""
    for kw, fragment in ((dict(step=1e-50), "more than 1e+07 steps"), (dict(step=1e-40), "finer than float32"),
                         (dict(scale=(0, 1e39)), "within +-1e+30"), (dict(scale=(-1e308, 1e308), step=None), "1e+30")):
        with pytest.raises(ValueError, match=re.escape(fragment)):
            synthetic(100, 50, 1000, **kw)
    r = synthetic(100, 50, 1000, scale=(0, 1e6), step=1.0)
    assert np.isfinite(r.values).all()


def test_memory_beyond_the_machine_is_a_memory_error_before_allocating():
    with pytest.raises(MemoryError, match=r"synthetic\(10000000 users.*needs at least"):
        synthetic(10**7, 10**7, 10, factors=200)
