"""Edge cases once found as defects: rows without training ratings, hyperparameter validation,
divergence."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import ALS, Baseline, BiasedMF, FunkMF, Ratings, SVDpp


@pytest.fixture(scope="module")
def data_with_unrated_item() -> Ratings:
    """Ratings whose shared item map holds item 7, which has no training rating (as with
    ``Ratings.subset`` or ``Dataset.official_split``)."""
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)
    with pytest.warns(UserWarning, match="merged"):
        full = Ratings.from_arrays(u, i, rng.integers(1, 6, 2000), duplicates="last")
    return full.subset(full.item_indices != 7)


def _cold_item_prediction(model, train: Ratings) -> tuple[np.ndarray, np.ndarray]:
    users = train.raw_users[:5]
    got = model.predict(users, np.full(5, 7))
    fallback = model.predict(users, np.full(5, 10_000))  # an id the model has never heard of
    return got, fallback


@pytest.mark.parametrize("cls", [ALS, Baseline])
def test_rows_without_ratings_predict_like_unknown_ids(cls, data_with_unrated_item):
    model = cls(seed=0).fit(data_with_unrated_item)
    got, fallback = _cold_item_prediction(model, data_with_unrated_item)
    np.testing.assert_allclose(got, fallback, rtol=1e-6)


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp, FunkMF])
def test_sgd_rows_without_ratings_predict_like_unknown_ids(cls, data_with_unrated_item):
    model = cls(seed=0).fit(data_with_unrated_item)
    got, fallback = _cold_item_prediction(model, data_with_unrated_item)
    np.testing.assert_allclose(got, fallback, rtol=1e-6)


@pytest.mark.parametrize("cls,bad", [
    (BiasedMF, {"dtype": "int32"}),           # trains silently with all-zero integer factors
    (BiasedMF, {"dtype": "float16"}),         # NotImplementedError from Numba, not ValueError
    (ALS, {"bias_regularization": -100.0}),   # SystemError out of the Numba Cholesky
    (Baseline, {"user_regularization": -1.0}),
    (BiasedMF, {"early_stopping": 0}),        # accepted, behaves like 1
    (BiasedMF, {"learning_rate": float("inf")}),  # accepted, model is all NaN
    (BiasedMF, {"bias_learning_rate": -1.0}),     # accepted, model is all NaN
    (BiasedMF, {"factors": 2.5}),             # silently truncated to 2
], ids=lambda x: x.__name__ if isinstance(x, type) else repr(x))
def test_more_invalid_parameters_raise_value_error(cls, bad):
    rng = np.random.default_rng(0)
    train = Ratings.from_arrays(np.arange(60) % 12, np.arange(60) // 12, rng.integers(1, 6, 60))
    with pytest.raises(ValueError):
        cls(**{**({} if cls is Baseline else {"factors": 3}), **bad}).fit(train, validation=train if "early_stopping" in bad else None)


def test_divergence_raises_a_clear_error():
    from mfrec import TrainingDivergedError

    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(30), 10)
    i = np.tile(np.arange(10), 30)
    r = Ratings.from_arrays(u, i, rng.integers(1, 6, 300))
    with pytest.raises(TrainingDivergedError, match="diverged at epoch"):
        BiasedMF(factors=3, learning_rate=5.0, learning_rate_decay=1.0, regularization=0.0).fit(r)
