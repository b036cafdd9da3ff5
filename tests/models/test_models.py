"""Model-level correctness: planted low-rank recovery, determinism, unknown ids and clipping,
history and early stopping, parameter handling. Small data, no timing."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from mfrec import ALS, Baseline, BayesianMF, BiasedMF, FunkMF, Ratings, SVDpp
from mfrec.errors import DataError, NotFittedError
from mfrec.split import random_split

try:  # the planted-model generator; fall back to a local one if it is unavailable
    from mfrec.data.synthetic import synthetic as _synthetic
except ImportError:  # pragma: no cover
    _synthetic = None

NOISE = 0.1
ALL_MODELS = ("Baseline", "FunkMF", "BiasedMF", "SVDpp", "ALS")


def planted(n_users, n_items, n_ratings, k, noise, seed, **kw):
    """(ratings, truth) from ``mu + b_u + b_i + p_u . q_i + noise``, continuous, uniform activity."""
    if _synthetic is not None:
        return _synthetic(n_users, n_items, n_ratings, factors=k, noise=noise, step=None, return_truth=True,
                          seed=seed, user_activity_exponent=0.0, item_popularity_exponent=0.0, **kw)
    rng = np.random.default_rng(seed)  # pragma: no cover
    keys = rng.choice(n_users * n_items, n_ratings, replace=False)
    u, i = keys // n_items, keys % n_items
    truth = {"global_mean": 3.4, "user_factors": rng.normal(0, 0.52, (n_users, k)),
             "item_factors": rng.normal(0, 0.52, (n_items, k)), "user_bias": rng.normal(0, 0.32, n_users),
             "item_bias": rng.normal(0, 0.48, n_items), "noise": noise}
    x = truth_values(truth, u, i) + noise * rng.standard_normal(n_ratings)
    return Ratings.from_arrays(u, i, np.clip(x, 1, 5)), truth


def truth_values(truth, u, i):
    return (truth["global_mean"] + truth["user_bias"][u] + truth["item_bias"][i]
            + np.einsum("ij,ij->i", truth["user_factors"][u], truth["item_factors"][i]))


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)))


# small, fast configurations of every model (one per name)
SMALL: dict[str, Callable[..., Any]] = {
    "Baseline": lambda **kw: Baseline(**{"iterations": 4, **kw}),
    "FunkMF": lambda **kw: FunkMF(**{"factors": 4, "epochs": 4, **kw}),
    "FunkMF-minibatch": lambda **kw: FunkMF(**{"factors": 4, "epochs": 4, "batch_size": 16, "learning_rate": 0.005,
                                               **kw}),
    "BiasedMF": lambda **kw: BiasedMF(**{"factors": 4, "epochs": 4, **kw}),
    "SVDpp": lambda **kw: SVDpp(**{"factors": 4, "epochs": 4, **kw}),
    "ALS": lambda **kw: ALS(**{"factors": 4, "iterations": 3, "regularization": 1.0, **kw}),
    "ALS-cholesky": lambda **kw: ALS(**{"factors": 4, "iterations": 3, "regularization": 1.0, "solver": "cholesky",
                                        **kw}),
    "BayesianMF": lambda **kw: BayesianMF(**{"factors": 4, "iterations": 12, "burn_in": 4, **kw}),
}
RANDOM_INIT = [name for name in SMALL if name != "Baseline"]


@pytest.fixture(scope="module")
def small():
    ratings, _ = planted(60, 40, 700, 3, 0.3, seed=11)
    return random_split(ratings, 0.2, seed=0)


def fitted_state(model) -> dict[str, np.ndarray]:
    state = dict(model.get_state().arrays)
    state["global_mean_"] = np.asarray(model.global_mean_)
    state["history"] = model.history_[["epoch", "loss", "train_rmse"]].to_numpy()
    return state


def assert_same_state(a, b) -> None:
    sa, sb = fitted_state(a), fitted_state(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert np.array_equal(sa[name], sb[name], equal_nan=True), name


# ------------------------------------------------------------------------------ planted recovery
@pytest.fixture(scope="module")
def planted_split():
    ratings, truth = planted(300, 200, 20000, 5, NOISE, seed=1)
    train, test = random_split(ratings, 0.2, seed=1)
    clean = np.clip(truth_values(truth, test.user_indices, test.item_indices), *ratings.rating_scale)  # synthetic declares it
    return train, test, clean


# Factor models get a few spare factors (SGD escapes saddles much more reliably when
# over-parametrized); FunkMF has no biases but k + 2 factors can represent them exactly:
# [p_u, mu + b_u, 1] . [q_i, 1, b_i] = mu + b_u + b_i + p_u . q_i.
RECOVERY = {
    "BiasedMF": lambda: BiasedMF(factors=8, epochs=50, learning_rate=0.03, regularization=0.01,
                                 learning_rate_decay=0.97, seed=0, threads=1),
    "SVDpp": lambda: SVDpp(factors=8, epochs=50, learning_rate=0.03, regularization=0.01, learning_rate_decay=0.97,
                           seed=0, threads=1),
    "FunkMF": lambda: FunkMF(factors=10, epochs=60, learning_rate=0.02, regularization=0.01, learning_rate_decay=1.0,
                             seed=0, threads=1),
    "FunkMF-minibatch": lambda: FunkMF(factors=7, epochs=100, learning_rate=0.005, regularization=0.01,
                                       batch_size=32, seed=0, threads=1),
    "ALS": lambda: ALS(factors=5, iterations=10, regularization=0.5, bias_regularization=0.5, seed=0, threads=1),
    "ALS-cholesky": lambda: ALS(factors=5, iterations=10, regularization=0.5, bias_regularization=0.5,
                                solver="cholesky", seed=0, threads=1),
}


@pytest.fixture(scope="module")
def baseline_rmse(planted_split):
    train, test, _ = planted_split
    return Baseline().fit(train).score(test)


@pytest.mark.parametrize("name", list(RECOVERY))
def test_factor_models_recover_planted_low_rank_matrix(name, planted_split, baseline_rmse):
    train, test, clean = planted_split
    model = RECOVERY[name]().fit(train)
    score = model.score(test)
    # held-out RMSE close to the noise floor (the oracle scores ~NOISE) ...
    assert score < 2 * NOISE + 0.05, score
    # ... because the predictions are close to the noiseless truth
    assert rmse(model.predict_ratings(test), clean) < NOISE + 0.05
    # and far better than biases alone, which cannot express the interaction term
    assert score < 0.5 * baseline_rmse


def test_baseline_recovers_biases_but_not_interactions(planted_split, baseline_rmse):
    train, test, _ = planted_split
    assert 0.3 < baseline_rmse < 1.0  # the factor term has std ~0.6: biases alone cannot fit it
    # still clearly better than predicting the global mean
    assert baseline_rmse < rmse(np.full(len(test), train.global_mean), test.values) - 0.1


def test_baseline_recovers_planted_biases_without_interactions():
    ratings, truth = planted(200, 150, 12000, 0, NOISE, seed=4)
    train, test = random_split(ratings, 0.2, seed=0)
    model = Baseline(user_regularization=1.0, item_regularization=1.0).fit(train)
    assert model.score(test) < 2 * NOISE + 0.05
    centered = truth["user_bias"] - truth["user_bias"].mean()
    fitted = model.user_bias_ - model.user_bias_.mean()
    assert np.corrcoef(centered, fitted)[0, 1] > 0.95


# ------------------------------------------------------------------------------ objective
def test_exact_als_loss_never_increases(small):
    train, _ = small
    model = ALS(factors=4, iterations=8, regularization=0.7, bias_regularization=0.3, solver="cholesky",
                threads=1).fit(train)
    loss = model.history_["loss"].to_numpy()
    assert np.all(np.diff(loss) <= 1e-6 * loss[:-1]), loss


def test_baseline_loss_never_increases(small):
    train, _ = small
    loss = Baseline(iterations=8).fit(train).history_["loss"].to_numpy()
    assert np.all(np.diff(loss) <= 1e-9 * loss[:-1]), loss


@pytest.mark.parametrize("name", ["Baseline", "ALS", "ALS-cholesky"])
def test_reported_train_rmse_is_the_fitted_models_train_rmse(name, small):
    """Baseline and ALS report the SSE after the (half-)step, i.e. of the final model."""
    train, _ = small
    model = SMALL[name]().fit(train)
    unclipped = model.predict_ratings(train, clip=False)
    assert model.history_["train_rmse"].iloc[-1] == pytest.approx(rmse(unclipped, train.values), rel=1e-4)


def test_als_cg_matches_cholesky(small):
    """solver='cg' (warm-started conjugate gradient) reaches the exact solver's accuracy, and
    with enough steps (k + 1) one iteration equals the exact solve."""
    train, test = small
    a = ALS(factors=4, iterations=10, solver="cg", threads=1).fit(train)
    b = ALS(factors=4, iterations=10, solver="cholesky", threads=1).fit(train)
    assert a.score(test) == pytest.approx(b.score(test), abs=0.01)
    c = ALS(factors=4, iterations=1, solver="cg", cg_steps=5, threads=1).fit(train)
    d = ALS(factors=4, iterations=1, solver="cholesky", threads=1).fit(train)
    np.testing.assert_allclose(c.user_factors_, d.user_factors_, atol=1e-3)


@pytest.mark.parametrize("name", list(SMALL))
def test_predictions_follow_the_model_formula(name, small):
    train, test = small
    model = SMALL[name](threads=1).fit(train)
    u, i = test.user_indices, test.item_indices
    want = (model.global_mean_ + model.user_bias_[u] + model.item_bias_[i]
            + np.einsum("ij,ij->i", model.user_factors_[u].astype(np.float64),
                        model.item_factors_[i].astype(np.float64)))
    np.testing.assert_allclose(model.predict_ratings(test, clip=False), want, rtol=1e-5, atol=1e-5)
    assert model.rating_scale_ == train.rating_scale == (1.0, 5.0)  # the generator's declared scale
    np.testing.assert_allclose(model.predict(test.raw_users, test.raw_items), np.clip(want, *model.rating_scale_),
                               rtol=1e-5, atol=1e-5)
    assert model.score(test) == pytest.approx(rmse(model.predict_ratings(test), test.values), rel=1e-12)


def test_svdpp_effective_user_vectors(small):
    train, _ = small
    model = SVDpp(factors=4, epochs=3, threads=1).fit(train)
    csr = train.by_user
    implicit = np.zeros_like(model.explicit_user_factors_, dtype=np.float64)
    for u in range(train.n_users):
        cols = csr.indices[csr.indptr[u]:csr.indptr[u + 1]]
        if len(cols):
            implicit[u] = model.implicit_factors_[cols].astype(np.float64).sum(axis=0) / np.sqrt(len(cols))
    np.testing.assert_allclose(model.user_factors_, model.explicit_user_factors_ + implicit, rtol=1e-5, atol=1e-6)
    assert np.abs(implicit).max() > 0


def test_funkmf_has_no_biases(small):
    train, _ = small
    model = FunkMF(factors=4, epochs=3).fit(train)
    assert model.global_mean_ == 0.0
    assert not model.user_bias_.any() and not model.item_bias_.any()


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", ["FunkMF", "FunkMF-minibatch", "BiasedMF", "SVDpp"])
def test_sgd_models_train_in_padded_storage_and_publish_contiguous_arrays(name, small, monkeypatch):
    """During the fit the kernels update cache-line padded rows (the trainer's storage) whose
    padding stays zero; the fitted attributes are plain contiguous (n, factors) arrays, and the
    fitted model keeps no trainer state."""
    train, _ = small
    seen = []
    model = SMALL[name](seed=0)
    trainers = []
    make = type(model)._trainer

    def capture(self, *args):
        trainers.append(make(self, *args))
        return trainers[-1]

    monkeypatch.setattr(type(model), "_trainer", capture)

    def check(record):
        published = trainers[0].arrays()
        for attr, full in trainers[0].state().items():
            if full.ndim != 2:
                continue
            k = model.factors
            seen.append(attr)
            assert full.ctypes.data % 64 == 0 and full.shape[1] % 16 == 0
            assert not full[:, k:].any(), attr
            assert any(np.shares_memory(view, full) for view in published.values()), attr

    model.fit(train, callback=check)
    assert seen
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] % 16 == 0 and v.shape[1] != 4
                   for v in vars(model).values())
    for attr, (kind, _) in model._array_specs.items():
        value = getattr(model, attr)
        if kind == "factor":
            assert value.flags.c_contiguous and value.shape[1] == 4, attr


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["FunkMF", "FunkMF-minibatch", "BiasedMF", "SVDpp"])
def test_reported_loss_has_the_fitted_parameters_penalty(name, threads, small):
    """loss = (running squared error + penalty) / n: the penalty part of the last epoch's loss
    (the SGD kernel sums the squared norms on its threads) equals the fitted parameters' penalty."""
    train, _ = small
    model = SMALL[name](seed=0, threads=threads).fit(train)
    last = model.history_.iloc[-1]
    n = len(train)
    penalty = n * (last["loss"] - last["train_rmse"] ** 2)
    reg = model.regularization
    breg = reg if getattr(model, "bias_regularization", None) is None else model.bias_regularization
    sq = lambda a: float(np.sum(np.asarray(a, dtype=np.float64) ** 2))
    user = model.explicit_user_factors_ if name == "SVDpp" else model.user_factors_
    expected = reg * (sq(user) + sq(model.item_factors_)) + breg * (sq(model.user_bias_) + sq(model.item_bias_))
    if name == "SVDpp":
        expected += reg * sq(model.implicit_factors_)
    assert penalty == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", list(SMALL))
def test_same_seed_single_thread_is_bit_identical(name, small):
    train, val = small
    a = SMALL[name](seed=7, threads=1).fit(train, val)
    b = SMALL[name](seed=7, threads=1).fit(train, val)
    assert_same_state(a, b)
    np.testing.assert_array_equal(a.history_["validation_rmse"], b.history_["validation_rmse"])


@pytest.mark.parametrize("name", RANDOM_INIT)
def test_different_seeds_differ(name, small):
    train, _ = small
    a = SMALL[name](seed=1, threads=1).fit(train)
    b = SMALL[name](seed=2, threads=1).fit(train)
    assert not np.array_equal(a.item_factors_, b.item_factors_)
    assert not np.array_equal(a.user_factors_, b.user_factors_)


def test_baseline_does_not_depend_on_the_seed(small):
    train, _ = small
    assert_same_state(Baseline(seed=1).fit(train), Baseline(seed=2, threads=2).fit(train))


@pytest.mark.parametrize("name", list(SMALL))
def test_refit_equals_fresh_fit(name, small):
    train, val = small
    model = SMALL[name](seed=3, threads=1)
    model.fit(val)  # fit something else first: nothing may leak into the second fit
    model.fit(train)
    assert_same_state(model, SMALL[name](seed=3, threads=1).fit(train))


@pytest.mark.parametrize("name", list(SMALL))
def test_fixed_thread_count_is_reproducible(name, small):
    """Strata touch disjoint rows, so a fixed thread count > 1 is reproducible too."""
    train, _ = small
    assert_same_state(SMALL[name](seed=5, threads=2).fit(train), SMALL[name](seed=5, threads=2).fit(train))


@pytest.mark.parametrize("name", ["BiasedMF", "ALS"])
def test_float64_dtype(name, small):
    train, test = small
    m64 = SMALL[name](dtype="float64", threads=1).fit(train)
    m32 = SMALL[name](dtype="float32", threads=1).fit(train)
    assert m64.user_factors_.dtype == np.float64 and m64.item_factors_.dtype == np.float64
    assert m32.user_factors_.dtype == np.float32
    assert m64.score(test) == pytest.approx(m32.score(test), rel=5e-3)


# ------------------------------------------------------------------------------ unknown ids, clipping, raw ids
@pytest.mark.parametrize("name", list(SMALL))
def test_unknown_ids_fall_back_to_biases_and_mean(name, small):
    train, _ = small
    model = SMALL[name]().fit(train)
    known_u, known_i = train.raw_users[0], train.raw_items[0]
    uidx, iidx = model.user_map_.index_of(known_u), model.item_map_.index_of(known_i)
    users = [known_u, 10_001, 10_001, known_u]
    items = [10_002, known_i, 10_002, known_i]
    pred = model.predict(users, items)
    assert np.all(np.isfinite(pred))
    assert model.unknown_ == {"users": 2, "items": 2}
    lo, hi = model.rating_scale_
    if name.startswith("FunkMF"):  # no biases to fall back on: the training mean
        want = [train.global_mean] * 3
    else:
        mu = train.global_mean
        want = [mu + model.user_bias_[uidx], mu + model.item_bias_[iidx], mu]
    np.testing.assert_allclose(pred[:3], np.clip(want, lo, hi), rtol=1e-6)
    assert pred[3] == pytest.approx(model.predict([known_u], [known_i])[0])
    assert model.unknown_ == {"users": 0, "items": 0}


@pytest.mark.parametrize("name", list(SMALL))
def test_predictions_are_clipped_to_the_training_scale(name):
    """Ratings ``2 + a_u + c_i`` (a, c in {0, 1}) with the a = c = 1 pairs held out: the training
    scale is [2, 3] and an additive fit extrapolates to ~4 on the held-out pairs."""
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    a, c = np.arange(n_users) % 2, np.arange(n_items) % 2
    all_u, all_i = (x.ravel() for x in np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij"))
    keep = (a[all_u] + c[all_i] <= 1) & (rng.random(len(all_u)) < 0.7)
    ratings = Ratings.from_arrays(all_u[keep], all_i[keep], 2.0 + a[all_u[keep]] + c[all_i[keep]])
    model = SMALL[name](**({} if name.startswith("ALS") or name in ("Baseline", "BayesianMF") else {"epochs": 20})).fit(
        ratings)
    assert model.rating_scale_ == (2.0, 3.0)
    clipped = model.predict(all_u, all_i)
    raw = model.predict(all_u, all_i, clip=False)
    assert clipped.min() >= 2.0 and clipped.max() <= 3.0
    np.testing.assert_array_equal(clipped, np.clip(raw, 2.0, 3.0))
    np.testing.assert_array_equal(model.predict_ratings(ratings), np.clip(model.predict_ratings(ratings, clip=False),
                                                                          2.0, 3.0))
    if name in ("Baseline", "BiasedMF"):
        assert raw.max() > 3.1  # the clip is doing something
    extra = model.predict([99_999, 0, 99_999], [0, 99_999, 99_999])
    assert np.all((extra >= 2.0) & (extra <= 3.0))


@pytest.mark.parametrize("name", list(SMALL))
def test_string_ids_end_to_end(name):
    ratings, _ = planted(40, 30, 400, 2, 0.2, seed=3)
    df = ratings.to_dataframe()
    df["user"] = "user-" + df["user"].astype(str)
    df["item"] = "movie/" + df["item"].astype(str)
    train_df, val_df = df.iloc[:320], df.iloc[320:].copy()
    val_df.loc[val_df.index[0], "user"] = "newcomer"  # unknown in training
    model = SMALL[name]().fit(train_df, validation=val_df)
    assert all(isinstance(x, str) for x in model.users_) and all(isinstance(x, str) for x in model.items_)
    assert np.isfinite(model.history_["validation_rmse"]).all()
    known_user, known_item = train_df["user"].iloc[0], train_df["item"].iloc[0]
    pred = model.predict([known_user, "newcomer", known_user], [known_item, known_item, "no such movie"])
    assert pred.shape == (3,) and np.all(np.isfinite(pred))
    assert model.unknown_ == {"users": 1, "items": 1}
    # the raw id order maps back to the rows of the factor matrices
    row = list(model.users_).index(known_user)
    assert model.user_map_.index_of(known_user) == row
    val = Ratings.from_dataframe(val_df)
    assert np.isfinite(model.score(val))


def test_predict_length_mismatch_raises(small):
    train, _ = small
    model = SMALL["BiasedMF"]().fit(train)
    with pytest.raises(DataError):
        model.predict([0, 1], [0])


# ------------------------------------------------------------------------------ history, early stopping
@pytest.mark.parametrize("name", list(SMALL))
def test_history_columns_and_rows(name, small):
    train, val = small
    model = SMALL[name]()
    assert not hasattr(model, "history_")  # no history before fit (an AttributeError)
    n = int(getattr(model, model.epochs_param))
    seen = []
    model.fit(train, callback=seen.append)
    h = model.history_
    assert list(h.columns) == ["epoch", "loss", "train_rmse", "seconds"]
    assert len(h) == n and h["epoch"].tolist() == list(range(1, n + 1))
    assert np.isfinite(h[["loss", "train_rmse", "seconds"]].to_numpy()).all()
    assert (h["seconds"] >= 0).all() and (h["train_rmse"] >= 0).all()
    assert [r["epoch"] for r in seen] == h["epoch"].tolist()
    assert model.best_epoch_ == n

    model.fit(train, validation=val)
    h = model.history_
    assert list(h.columns) == ["epoch", "loss", "train_rmse", "seconds", "validation_rmse"]
    assert len(h) == n
    # the last row's validation RMSE is the returned model's, up to float32 rounding: during the fit
    # the factors live in padded rows, so the dot products are summed in another (vectorized) order
    # than after it; the contract is "the same model", not "the same summation order" (float32 eps
    # is 1.2e-7, and a reordered k-term sum moves an RMSE by far less than 1e-6 relative)
    assert h["validation_rmse"].iloc[-1] == pytest.approx(model.score(val), rel=1e-6)


OVERFIT = {
    "BiasedMF": (BiasedMF, dict(factors=30, epochs=60, learning_rate=0.05, regularization=0.0,
                                bias_regularization=0.0, learning_rate_decay=1.0, threads=1)),
    "SVDpp": (SVDpp, dict(factors=30, epochs=60, learning_rate=0.05, regularization=0.0, bias_regularization=0.0,
                          learning_rate_decay=1.0, threads=1)),
    "FunkMF": (FunkMF, dict(factors=30, epochs=60, learning_rate=0.05, regularization=0.0, learning_rate_decay=1.0,
                            threads=1)),
    "ALS": (ALS, dict(factors=5, iterations=30, regularization=0.1, bias_regularization=0.1, threads=1)),
    "Baseline": (Baseline, dict(iterations=30, user_regularization=0.0, item_regularization=0.0)),
}


def overfitting(name: str, **kw: Any):
    cls, params = OVERFIT[name]
    return cls(**{**params, **kw})


@pytest.fixture(scope="module")
def overfit_split():
    ratings, _ = planted(150, 100, 3000, 3, 0.5, seed=2)
    return random_split(ratings, 0.3, seed=0)


@pytest.mark.parametrize("name", list(OVERFIT))
def test_early_stopping_restores_best_epoch(name, overfit_split):
    train, val = overfit_split
    patience = 2
    model = overfitting(name, early_stopping=patience).fit(train, val)
    h = model.history_
    n_max = int(getattr(model, model.epochs_param))
    assert len(h) < n_max  # stopped early
    assert len(h) == model.best_epoch_ + patience
    best_row = h["validation_rmse"].idxmin()
    assert h.loc[best_row, "epoch"] == model.best_epoch_
    assert (h["validation_rmse"].iloc[model.best_epoch_:] >= h.loc[best_row, "validation_rmse"] - 1e-6).all()
    assert model.score(val) == pytest.approx(h["validation_rmse"].min(), rel=1e-6)
    # the restored model is exactly the model trained for best_epoch_ epochs
    exact = overfitting(name, **{model.epochs_param: model.best_epoch_}).fit(train)
    for arr in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(model, arr), getattr(exact, arr), err_msg=arr)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_early_stopping_without_validation_raises(name, small):
    train, _ = small
    with pytest.raises(ValueError, match="validation"):
        SMALL[name](early_stopping=2).fit(train)


# ------------------------------------------------------------------------------ parameters
CLASSES = {"Baseline": Baseline, "FunkMF": FunkMF, "BiasedMF": BiasedMF, "SVDpp": SVDpp, "ALS": ALS}


@pytest.mark.parametrize("name", list(CLASSES))
def test_get_set_params_and_clone_round_trip(name, small):
    import inspect

    cls = CLASSES[name]
    model = cls()
    params = model.get_params()
    init_names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert sorted(params) == sorted(init_names)
    assert cls(**params).get_params() == params

    changed = {"seed": 42, "threads": 1, ("iterations" if "iterations" in params else "epochs"): 3}
    assert model.set_params(**changed) is model
    assert model.get_params() == {**params, **changed}
    assert repr(model).startswith(f"{name}(") and "seed=42" in repr(model)

    twin = model.clone()
    assert twin is not model and type(twin) is cls and twin.get_params() == model.get_params()
    train, _ = small
    model.fit(train)
    fresh = model.clone()  # a clone of a fitted model is unfitted
    with pytest.raises(NotFittedError):
        fresh.predict([train.raw_users[0]], [train.raw_items[0]])
    assert_same_state(model, twin.fit(train))


INVALID = [
    (FunkMF, {"factors": -1}),
    (BiasedMF, {"factors": -1}),
    (SVDpp, {"factors": -1}),
    (ALS, {"factors": -1}),
    (BiasedMF, {"epochs": 0}),
    (SVDpp, {"learning_rate": -0.1}),
    (FunkMF, {"regularization": -1.0}),
    (FunkMF, {"batch_size": 0}),
    (ALS, {"solver": "foo"}),
    (ALS, {"cg_steps": 0}),
    (ALS, {"iterations": 0}),
    (ALS, {"regularization": float("nan")}),
    (Baseline, {"iterations": 0}),
    (BiasedMF, {"threads": 0}),
]


@pytest.mark.parametrize("cls,bad", INVALID, ids=lambda x: x.__name__ if isinstance(x, type) else repr(x))
def test_invalid_parameters_raise_value_error(cls, bad, small):
    train, _ = small
    with pytest.raises(ValueError):
        cls(**bad).fit(train)


@pytest.mark.parametrize("name", list(CLASSES))
def test_unknown_parameter_name_raises(name):
    with pytest.raises(ValueError, match="no parameter"):
        CLASSES[name]().set_params(no_such_param=1)
    with pytest.raises(TypeError):
        CLASSES[name](no_such_param=1)


@pytest.mark.parametrize("name", list(CLASSES))
def test_use_before_fit_raises_not_fitted(name, small):
    _, test = small
    model = CLASSES[name]()
    with pytest.raises(NotFittedError):
        model.predict([1], [1])
    with pytest.raises(NotFittedError):
        model.predict_ratings(test)
    with pytest.raises(NotFittedError):
        model.score(test)
    with pytest.raises(NotFittedError):
        model.users_


# ------------------------------------------------------------------------------ issue 13: unknown counts per call
@pytest.mark.parametrize("name", list(SMALL))
def test_predict_return_unknown_gives_the_counts_with_the_predictions(name, small):
    train, test = small
    model = SMALL[name]().fit(train)
    known_u, known_i = train.raw_users[0], train.raw_items[0]
    users, items = [known_u, 10_001, 10_001, known_u], [10_002, known_i, 10_002, known_i]
    pred, counts = model.predict(users, items, return_unknown=True)
    assert counts == {"users": 2, "items": 2} == model.unknown_
    np.testing.assert_array_equal(pred, model.predict(users, items))
    pred, counts = model.predict_ratings(test, return_unknown=True)
    np.testing.assert_array_equal(pred, model.predict_ratings(test))
    assert counts == model.unknown_
    counts["users"] = -1  # the caller's copy: mutating it changes nothing in the model
    assert model.unknown_["users"] != -1


def test_unknown_counts_are_per_call_and_per_thread(small):
    """8 threads predicting with different numbers of unknown users: each sees its own counts,
    both in the returned counts and in ``unknown_`` (per thread), never another thread's."""
    import threading

    train, _ = small
    model = BiasedMF(factors=4, epochs=2, threads=1).fit(train)
    known_u, known_i = train.raw_users[0], train.raw_items[0]
    n_threads, rounds = 8, 200
    barrier = threading.Barrier(n_threads)
    wrong: list = []

    def work(t: int) -> None:
        users = [known_u] * 8
        users[:t] = [10_000 + j for j in range(t)]  # thread t asks about t unknown users
        barrier.wait()
        try:
            for _ in range(rounds):
                model.predict(users, [known_i] * 8)
                seen_after = model.unknown_["users"]  # the attribute, as read before issue 13
                _, counts = model.predict(users, [known_i] * 8, return_unknown=True)
                if counts["users"] != t or seen_after != t:
                    wrong.append((t, counts["users"], seen_after))
        except Exception as exc:  # an exception in a thread would otherwise not fail the test
            wrong.append((t, repr(exc)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not wrong, f"{len(wrong)} of {n_threads * rounds} reads saw another call's counts, e.g. {wrong[:3]}"
    with pytest.raises(AttributeError, match="unknown_"):  # a thread that never predicted has no counts
        result: list = []
        th = threading.Thread(target=lambda: result.append(_read_unknown(model)))
        th.start()
        th.join()
        raise result[0]


def _read_unknown(model):
    try:
        return model.unknown_
    except AttributeError as exc:
        return exc
