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


# ----------------------------------------------------------------------------- issue 13: parameter errors name the parameter
from mfrec import BPR, CMF, BayesianMF, ImplicitALS  # noqa: E402

ALL_CLASSES = [Baseline, FunkMF, BiasedMF, SVDpp, ALS, BayesianMF, ImplicitALS, CMF, BPR]


def _tiny() -> Ratings:
    rng = np.random.default_rng(0)
    return Ratings.from_arrays(np.arange(60) % 12, np.arange(60) // 12, rng.integers(1, 6, 60))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", [-5, "abc", True, 1.5, np.float64(2.0)], ids=repr)
def test_bad_seed_is_refused_naming_it(cls, seed):
    with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
        cls(seed=seed).fit(_tiny())


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_seed_none_and_numpy_ints_are_accepted(cls):
    kw = {"iterations": 3, "burn_in": 1} if cls is BayesianMF else {}
    cls(seed=None, **kw).fit(_tiny())
    cls(seed=np.int64(3), **kw).fit(_tiny())


@pytest.mark.parametrize("cls,name", [(ALS, "weighted"), (ALS, "use_bias"), (CMF, "attribute_bias")],
                         ids=lambda x: x.__name__ if isinstance(x, type) else x)
@pytest.mark.parametrize("value", ["yes", "False", 1, 0, None])
def test_flags_need_a_real_bool(cls, name, value):
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        cls(**{name: value}).fit(_tiny())
    cls(**{name: np.bool_(True)}).fit(_tiny())


@pytest.mark.parametrize("cls,name", [(ALS, "solver"), (CMF, "solver"), (ImplicitALS, "solver"),
                                      (ImplicitALS, "confidence")],
                         ids=lambda x: x.__name__ if isinstance(x, type) else x)
@pytest.mark.parametrize("value", ["lu", "", None, 3, "CG"])
def test_string_choices_are_checked(cls, name, value):
    with pytest.raises(ValueError, match=f"{name} must be one of"):
        cls(**{name: value}).fit(_tiny())


def test_every_string_parameter_of_every_model_has_declared_choices():
    """A new string parameter must be declared as ``Options`` (dtype has its own check)."""
    from mfrec.models.params import Options

    for cls in ALL_CLASSES:
        strings = {k for k, v in cls().get_params().items() if isinstance(v, str)} - {"dtype"}
        choices = {k for k, forms in cls.parameter_constraints().items() if any(isinstance(f, Options) for f in forms)}
        assert strings <= choices, (cls.__name__, strings - choices)


@pytest.mark.parametrize("cls,bad", [
    (CMF, {"user_attribute_weight": "abc"}),  # was a bare float() ValueError not naming it
    (CMF, {"item_attribute_weight": float("nan")}),
    (ALS, {"cg_steps": 2.0}),
    (ImplicitALS, {"alpha": "2"}),
    (FunkMF, {"batch_size": True}),
    (BayesianMF, {"burn_in": -1}),
    (BayesianMF, {"noise_precision": 0.0}),
    (BiasedMF, {"threads": 0}),
    (BiasedMF, {"threads": "2"}),
], ids=lambda x: x.__name__ if isinstance(x, type) else repr(x))
def test_numeric_parameter_errors_name_the_parameter(cls, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        cls(**bad).fit(_tiny())


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_bad_mfrec_threads_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("MFREC_THREADS", value)
    with pytest.raises(ValueError, match="MFREC_THREADS"):
        ALS(factors=2, iterations=1).fit(_tiny())


def test_mfrec_threads_ok_values(monkeypatch):
    from mfrec.threads import resolve_threads

    monkeypatch.setenv("MFREC_THREADS", " 1 ")
    assert resolve_threads(None) == 1
    monkeypatch.setenv("MFREC_THREADS", "")
    assert resolve_threads(None) >= 1


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("users,items,what", [([None], [1], "user"), ([float("nan")], [1], "user"),
                                              ([1, 2], [2, None], "item"), (None, 1, "user")])
def test_predict_refuses_missing_ids_instead_of_falling_back(users, items, what):
    """None/NaN ids (a hole from a join) were predicted as unknown ids: the global mean, silently."""
    from mfrec.errors import DataError

    r = Ratings.from_arrays([1, 1, 2, 2], [1, 2, 1, 2], [1.0, 2.0, 3.0, 4.0])
    m = Baseline().fit(r)
    with pytest.raises(DataError, match=f"missing {what} id"):
        m.predict(users, items)
    assert m.predict([1, 99], [1, 98]).shape == (2,)  # unknown ids still fall back
