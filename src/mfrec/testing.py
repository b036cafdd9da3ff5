"""The model contract: a pytest test class every mfrec model's tests inherit (as ``lenskit.testing``
or implicit's ``RecommenderBaseTestMixin``), shipped with the package so a user's own model can
be checked the same way.

Usage (one small file per model, ``tests/models/test_als.py``)::

    from mfrec import ALS
    from mfrec.testing import ModelContract

    class TestALS(ModelContract):
        model = ALS
        small = {"factors": 4, "iterations": 3}

Every check goes through the public API only (``fit``, ``predict``, ``recommend*``, ``fold_in``,
``add_user``, ``similar_items``, ``save``/``load_model``, ``get_params``/``set_params``/``clone``,
``validate_params``, ``parameter_constraints``, the registry) on tiny synthetic data with few
epochs, so the whole contract of a model runs in a few seconds. Hooks a subclass may override:
``small`` (fast parameters), `make_data` (training ratings), `fit_kwargs` (extra ``fit`` arguments,
e.g. CMF's attribute tables), ``random_init`` (whether the seed changes the fit),
``threads_reproducible`` (whether a fixed thread count > 1 is reproducible), and the opt-in
checks' parameters ``recovery`` (recovers a planted low-rank matrix), ``overfit`` (early stopping
restores the best epoch) and ``refold`` (folding a training user back in gives back their
factors). Invalid parameter values are generated from ``parameter_constraints()``
(`invalid_values`). The only private name read is the declaration ``_array_specs`` (a file holds
exactly the declared arrays). The helpers below (`planted`, `rmse`, `assert_same_fit`, ...)
serve model-specific tests too.

This module imports pytest: import it from tests only.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import synthetic
from mfrec.errors import DataError, InvalidParameterError, NotFittedError
from mfrec.split import random_split

__all__ = ["RECOVERY_NOISE", "ModelContract", "additive_ratings", "assert_same_fit", "fitted_arrays", "invalid_values", "is_allowed",
           "planted", "planted_split", "rmse", "truth_values"]


# ------------------------------------------------------------------------------ helpers
def rmse(a: Any, b: Any) -> float:
    """Root mean squared difference of two equal-length sequences (float64)."""
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)))


def planted(n_users: int, n_items: int, n_ratings: int, k: int, noise: float, seed: int,
            **kw: Any) -> tuple[Ratings, dict]:
    """(ratings, truth) from ``mu + b_u + b_i + p_u . q_i + noise``: continuous values, uniform
    activity (`mfrec.synthetic` with ``step=None``)."""
    return synthetic(n_users, n_items, n_ratings, factors=k, noise=noise, step=None, return_truth=True, seed=seed,
                     user_activity_exponent=0.0, item_popularity_exponent=0.0, **kw)


def truth_values(truth: dict, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The noiseless planted value of dense (user, item) index pairs."""
    return (truth["global_mean"] + truth["user_bias"][u] + truth["item_bias"][i]
            + np.einsum("ij,ij->i", truth["user_factors"][u], truth["item_factors"][i]))


def additive_ratings(n_users: int = 40, n_items: int = 30, seed: int = 0) -> tuple[Ratings, np.ndarray, np.ndarray]:
    """Ratings ``2 + a_u + c_i`` (a, c in {0, 1}) with every a = c = 1 pair held out: the training
    scale is [2, 3] and an additive fit extrapolates to ~4 on the held-out pairs. Returns
    (ratings, all users, all items) of the full grid."""
    rng = np.random.default_rng(seed)
    a, c = np.arange(n_users) % 2, np.arange(n_items) % 2
    all_u, all_i = (x.ravel() for x in np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij"))
    keep = (a[all_u] + c[all_i] <= 1) & (rng.random(len(all_u)) < 0.7)
    return Ratings.from_arrays(all_u[keep], all_i[keep], 2.0 + a[all_u[keep]] + c[all_i[keep]]), all_u, all_i


#: the planted data's noise level for the recovery check (the oracle's RMSE)
RECOVERY_NOISE = 0.1


@functools.lru_cache(maxsize=None)
def planted_split() -> tuple[Ratings, Ratings, np.ndarray, float]:
    """(train, test, noiseless truth of the test pairs, Baseline's test RMSE) of a rank-5 planted
    matrix with biases and noise `RECOVERY_NOISE` (generated once per session)."""
    from mfrec.models.baseline import Baseline

    ratings, truth = planted(300, 200, 20000, 5, RECOVERY_NOISE, seed=1)
    train, test = random_split(ratings, 0.2, seed=1)
    clean = np.clip(truth_values(truth, test.user_indices, test.item_indices), *ratings.rating_scale)
    return train, test, clean, Baseline().fit(train).score(test)


def fitted_arrays(model: Any) -> dict[str, np.ndarray]:
    """Every array that defines a fitted model (``model.get_state().arrays``: what a model file
    holds)."""
    return {k: np.asarray(v) for k, v in model.get_state().arrays.items()}


def assert_same_fit(a: Any, b: Any) -> None:
    """Two fitted models are bit-identical: every fitted array, the global mean and the history."""
    sa, sb = fitted_arrays(a), fitted_arrays(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert np.array_equal(sa[name], sb[name], equal_nan=sa[name].dtype.kind in "fc"), name
    assert np.array_equal(np.asarray(a.global_mean_), np.asarray(b.global_mean_))
    cols = [c for c in ("epoch", "loss", "train_rmse") if c in a.history_.columns]
    assert np.array_equal(a.history_[cols].to_numpy(), b.history_[cols].to_numpy(), equal_nan=True)


# ------------------------------------------------------------------------------ invalid parameter values
def _attr(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def _interval_parts(form: Any) -> tuple[type, Any, Any, str] | None:
    """(type, low, high, closed) of an `Interval` form, None for other forms."""
    if type(form).__name__ != "Interval":
        return None
    kind = _attr(form, "type", "kind", "number_type")
    low = _attr(form, "low", "left")
    high = _attr(form, "high", "right")
    closed = _attr(form, "closed", default="left")
    return kind, low, high, closed


def _option_values(form: Any) -> tuple | None:
    """The allowed values of an `Options` form, None for other forms."""
    if type(form).__name__ != "Options":
        return None
    values = _attr(form, "values", "options", "choices")
    if values is None:
        values = tuple(form)
    return tuple(values)


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def is_allowed(value: Any, forms: Any) -> bool:
    """Whether ``value`` fits one of a parameter's declared forms (`Interval`, `Options`, ``bool``,
    ``None``, or any form with an ``accepts(value)`` method, which then decides). Without
    ``accepts``, the contract's reading: bools are not numbers, NaN is in no interval, an integral
    interval takes no floats, options match by type and value."""
    for form in forms:
        if form is None:
            if value is None:
                return True
        elif form is bool:
            if _is_bool(value):
                return True
        elif callable(getattr(form, "accepts", None)):
            if form.accepts(value):
                return True
        elif (parts := _interval_parts(form)) is not None:
            kind, low, high, closed = parts
            if _is_bool(value) or not isinstance(value, numbers.Real):
                continue
            if issubclass(kind, numbers.Integral) and not isinstance(value, numbers.Integral):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            left = closed in ("left", "both")
            right = closed in ("right", "both")
            if low is not None and (value < low or (value == low and not left)):
                continue
            if high is not None and (value > high or (value == high and not right)):
                continue
            return True
        elif (options := _option_values(form)) is not None:
            if any(type(value) is type(o) and value == o for o in options):
                return True
    return False


def invalid_values(constraints: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(parameter, value) pairs that no declared form of the parameter allows: per `Interval`
    a value just outside each finite bound, NaN and infinities for real intervals, a float for
    integral ones; a wrong type (the string ``"3"``, ``True`` where bools are not allowed); an
    unknown string and a wrong-case one for `Options`; other dtypes for `FloatDType`; None where
    None is not allowed. Candidates a form accepts are dropped (`is_allowed`)."""
    for name, forms in constraints.items():
        forms = list(forms) if isinstance(forms, (list, tuple)) else [forms]
        candidates: list[Any] = ["3", True, None]
        for form in forms:
            if (parts := _interval_parts(form)) is not None:
                kind, low, high, closed = parts
                integral = issubclass(kind, numbers.Integral)
                for bound, sign in ((low, -1), (high, 1)):
                    if bound is None or not math.isfinite(bound):
                        continue
                    step = 1 if integral else max(1e-3, abs(bound) * 1e-3)
                    candidates += [bound, bound + sign * step]
                candidates += [2.5] if integral else [float("nan"), float("inf"), -float("inf")]
            elif (options := _option_values(form)) is not None:
                candidates += ["no-such-option", ""]
                candidates += [o.upper() for o in options if isinstance(o, str) and o.upper() != o]
            elif form is bool:
                candidates += ["yes", 1, 0]
            elif type(form).__name__ == "FloatDType":
                candidates += ["float16", "int32", "complex64", "no-such-dtype"]
        seen: list[Any] = []
        for value in candidates:
            if any(type(value) is type(s) and (value == s or value != value and s != s) for s in seen):
                continue
            seen.append(value)
            if not is_allowed(value, forms):
                yield name, value


# ------------------------------------------------------------------------------ data helpers
def _unknown_id(ids: np.ndarray, k: int = 1) -> Any:
    """An id of the same kind as ``ids`` that is not among them."""
    if ids.dtype.kind in "iu":
        return int(ids.max()) + 10_000 + k
    return f"no-such-id-{k}"


def _items_table(items: np.ndarray) -> pd.DataFrame:
    genres = [["Children", "Animation"], ["Drama"], [], ["Comedy", "Drama"]]
    n = len(items)
    return pd.DataFrame(
        {"title": [f"Film {k} (19{k % 100:02d})" for k in range(n)],
         "genres": [genres[k % 4] for k in range(n)],
         "year": pd.array([None if k % 7 == 0 else 1900 + k for k in range(n)], dtype="Int64")},
        index=pd.Index(list(items), name="item"))


def _string_ids(r: Ratings) -> Ratings:
    df = r.to_dataframe()
    return Ratings.from_arrays([f"u{u}" for u in df["user"]], [f"i{i}" for i in df["item"]], df["rating"],
                               rating_scale=r.rating_scale)


def _assert_same_frames(a: pd.DataFrame, b: pd.DataFrame, exact: bool = True) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if col in ("score", "similarity"):
            if exact:
                np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
            else:
                np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-5, atol=1e-5)
        else:
            assert list(a[col]) == list(b[col]), col


# ------------------------------------------------------------------------------ the contract
class ModelContract:
    """Checks every model passes; subclass it as ``TestX`` with ``model = X`` and ``small = {...}``."""

    #: the model class under test
    model: ClassVar[type]
    #: fast parameters (few factors and epochs) used by every check
    small: ClassVar[dict[str, Any]] = {}
    #: whether the seed changes the fitted model (False for a model without random initialization)
    random_init: ClassVar[bool] = True
    #: whether two fits at the same fixed thread count > 1 are identical
    threads_reproducible: ClassVar[bool] = True
    #: parameters that recover a planted low-rank matrix (rating models; None skips the check)
    recovery: ClassVar[dict[str, Any] | None] = None
    #: parameters that overfit small planted data within their epoch budget (None skips the
    #: early-stopping check)
    overfit: ClassVar[dict[str, Any] | None] = None
    #: parameters of a converged fit for which folding a training user's own ratings back in
    #: gives back that user's trained bias and factors (within ``refold_atol``): the fold-in rule
    #: is the training objective's (None skips the check, e.g. for SGD, which is not an exact solve)
    refold: ClassVar[dict[str, Any] | None] = None
    refold_atol: ClassVar[float] = 0.01

    # ---------------------------------------------------------------- hooks
    def make_data(self) -> Ratings:
        """Training ratings for this model (ranking models read them as interactions)."""
        return synthetic(50, 30, 600, factors=3, seed=3)

    def fit_kwargs(self, train: Ratings) -> dict[str, Any]:
        """Extra keyword arguments of ``fit`` for ``train`` (e.g. attribute tables)."""
        return {}

    def make(self, **params: Any) -> Any:
        """An unfitted model with the ``small`` parameters updated by ``params``."""
        return self.model(**{**self.small, **params})

    def fit(self, model: Any, train: Ratings, validation: Ratings | None = None, **kw: Any) -> Any:
        """``model.fit`` with `fit_kwargs` (the validation set only where given)."""
        if validation is not None:
            kw["validation"] = validation
        ratings = train if isinstance(train, Ratings) else Ratings.from_dataframe(train)
        return model.fit(train, **{**self.fit_kwargs(ratings), **kw})

    @property
    def rating(self) -> bool:
        return self.model.kind == "rating"

    # ---------------------------------------------------------------- fixtures (one fit per class)
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Ratings:
        return cls().make_data()

    @pytest.fixture(scope="class")
    @classmethod
    def split(cls, data: Ratings) -> tuple[Ratings, Ratings]:
        return random_split(data, 0.2, seed=0)

    @pytest.fixture(scope="class")
    @classmethod
    def train(cls, split: tuple[Ratings, Ratings]) -> Ratings:
        return split[0]

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, train: Ratings) -> Any:
        self = cls()
        return self.fit(self.make(threads=1), train)

    def _fresh(self, train: Ratings, **params: Any) -> Any:
        return self.fit(self.make(**{"threads": 1, **params}), train)

    # ---------------------------------------------------------------- declaration
    def test_kind_epochs_param_and_param_names(self) -> None:
        cls = self.model
        assert cls.kind in ("rating", "ranking")
        init = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert sorted(cls.param_names()) == sorted(init)
        assert cls.epochs_param in init
        assert sorted(cls().get_params()) == sorted(init)

    def test_registered_by_name_and_class_name(self) -> None:
        from mfrec.models import registry

        cls = self.model
        names = [n for n in registry.names() if registry.MODEL_NAMES[n] is cls]
        assert names, f"{cls.__name__} is not registered (decorate it with @register_model)"
        assert registry.model_class(names[0]) is cls
        assert registry.model_class(cls.__name__) is cls

    def test_every_parameter_has_a_declared_constraint(self) -> None:
        cls = self.model
        if not hasattr(cls, "parameter_constraints"):
            pytest.skip(f"{cls.__name__} has no parameter_constraints()")
        constraints = cls.parameter_constraints()
        missing = sorted(set(cls.param_names()) - set(constraints))
        assert not missing, f"parameters without a declared constraint: {missing}"
        for name, value in cls().get_params().items():
            assert is_allowed(value, constraints[name]), f"the default {name}={value!r} breaks its own constraint"

    def test_defaults_and_small_parameters_are_valid(self) -> None:
        self.model().validate_params()
        self.make().validate_params()

    def test_invalid_parameters_raise_naming_the_parameter(self, train: Ratings) -> None:
        cls = self.model
        if not hasattr(cls, "parameter_constraints"):
            pytest.skip(f"{cls.__name__} has no parameter_constraints(): no invalid values to generate")
        names = set(cls.param_names())
        cases = list(invalid_values({k: v for k, v in cls.parameter_constraints().items() if k in names}))
        assert cases
        wrong = []
        for name, value in cases:
            try:
                self.make(**{name: value}).validate_params()
            except InvalidParameterError as exc:
                if name not in str(exc):
                    wrong.append(f"{name}={value!r}: the message does not name it: {exc}")
            except Exception as exc:  # noqa: BLE001 - the report lists every wrong kind of error
                wrong.append(f"{name}={value!r}: {type(exc).__name__} instead of InvalidParameterError: {exc}")
            else:
                wrong.append(f"{name}={value!r}: accepted")
        assert not wrong, "\n".join(wrong)

    def test_fit_refuses_invalid_parameters_naming_them(self, split: tuple[Ratings, Ratings]) -> None:
        """fit checks the parameters before it trains (with validation data for a rating model,
        so that ``early_stopping`` has what it needs)."""
        cls = self.model
        if not hasattr(cls, "parameter_constraints"):
            pytest.skip(f"{cls.__name__} has no parameter_constraints(): no invalid values to generate")
        train, val = split
        names = set(cls.param_names())
        wrong = []
        for name, value in invalid_values({k: v for k, v in cls.parameter_constraints().items() if k in names}):
            try:
                self.fit(self.make(**{name: value}), train, val if self.rating else None)
            except InvalidParameterError as exc:
                if name not in str(exc):
                    wrong.append(f"{name}={value!r}: the message does not name it: {exc}")
            except Exception as exc:  # noqa: BLE001
                wrong.append(f"{name}={value!r}: {type(exc).__name__} instead of InvalidParameterError: {exc}")
            else:
                wrong.append(f"{name}={value!r}: fit accepted it")
        assert not wrong, "\n".join(wrong)

    @pytest.mark.parametrize("seed", [-5, "abc", True, 1.5, np.float64(2.0)], ids=repr)
    def test_bad_seed_is_refused_naming_it(self, seed: Any, train: Ratings) -> None:
        with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
            self.fit(self.make(seed=seed), train)

    def test_seed_none_and_numpy_ints_are_accepted(self, train: Ratings) -> None:
        self._fresh(train, seed=None)
        self._fresh(train, seed=np.int64(3))

    def test_flags_need_a_real_bool(self, train: Ratings) -> None:
        flags = [n for n, v in self.model().get_params().items() if isinstance(v, bool)]
        for name in flags:
            for value in ["yes", "False", 1, 0, None]:
                with pytest.raises(ValueError, match=f"{name} must be True or False"):
                    self.fit(self.make(**{name: value}), train)
            self._fresh(train, **{name: np.bool_(True)})

    # ---------------------------------------------------------------- parameters
    def test_get_set_params_round_trip(self) -> None:
        cls = self.model
        model = cls()
        params = model.get_params()
        assert cls(**params).get_params() == params
        changed = {k: v for k, v in {"seed": 42, "threads": 1, cls.epochs_param: 3}.items() if k in params}
        assert model.set_params(**changed) is model
        assert model.get_params() == {**params, **changed}
        assert repr(model).startswith(f"{cls.__name__}(") and "seed=42" in repr(model)
        for name, value in model.get_params().items():
            assert f"{name}={value!r}" in repr(model)

    def test_unknown_parameter_name_raises(self) -> None:
        with pytest.raises(ValueError, match="no parameter"):
            self.model().set_params(no_such_param=1)
        with pytest.raises(TypeError):
            self.model(no_such_param=1)

    def test_clone_is_an_unfitted_copy(self, train: Ratings) -> None:
        model = self.make(seed=42, threads=1)
        twin = model.clone()
        assert twin is not model and type(twin) is self.model and twin.get_params() == model.get_params()
        self.fit(model, train)
        fresh = model.clone()  # a clone of a fitted model is unfitted
        with pytest.raises(NotFittedError):
            fresh.predict([train.raw_users[0]], [train.raw_items[0]])
        assert_same_fit(model, self.fit(twin, train))

    def test_use_before_fit_raises_not_fitted(self, split: tuple[Ratings, Ratings], tmp_path: Path) -> None:
        train, test = split
        model = self.make()
        u, i = train.raw_users[0], train.raw_items[0]
        assert not hasattr(model, "history_")  # no history before fit (an AttributeError)
        calls = {
            "predict": lambda: model.predict([u], [i]),
            "predict_ratings": lambda: model.predict_ratings(test),
            "score": lambda: model.score(test),
            "recommend": lambda: model.recommend(u),
            "recommend_many": lambda: model.recommend_many([u]),
            "recommend_new": lambda: model.recommend_new({i: float(train.values[0])}),
            "fold_in": lambda: model.fold_in({i: float(train.values[0])}),
            "add_user": lambda: model.add_user(_unknown_id(train.users), {i: float(train.values[0])}),
            "similar_items": lambda: model.similar_items(i),
            "save": lambda: model.save(tmp_path / "unfitted.mfrec"),
            "users_": lambda: model.users_,
            "items_": lambda: model.items_,
        }
        try:
            from mfrec.models.base import check_is_fitted
        except ImportError:
            pass
        else:
            calls["check_is_fitted"] = lambda: check_is_fitted(model)
        for what, call in calls.items():
            with pytest.raises(NotFittedError):
                call()
        assert list(tmp_path.iterdir()) == []

    # ---------------------------------------------------------------- fitting
    def test_fit_on_empty_data_raises_data_error(self, data: Ratings) -> None:
        with pytest.raises(DataError):
            self.fit(self.make(), data.subset(np.zeros(len(data), dtype=bool)))
        with pytest.raises(DataError):
            self.make().fit(pd.DataFrame({"user": [], "item": [], "rating": []}))

    def test_history_has_one_row_per_epoch(self, split: tuple[Ratings, Ratings]) -> None:
        train, val = split
        model = self.make(threads=1)
        n = int(getattr(model, model.epochs_param))
        seen: list = []
        self.fit(model, train, callback=seen.append)
        h = model.history_
        assert list(h.columns)[:1] == ["epoch"] and {"loss", "seconds"} <= set(h.columns)
        # "threads": the thread count the result follows, where it follows one (the SGD grid)
        extra = ["threads"] if "threads" in h.columns else []
        if extra:
            assert (h["threads"] == 1).all()  # the fit asked for one thread
        if self.rating:
            assert list(h.columns) == ["epoch", "loss", "train_rmse", "seconds"] + extra
            assert (h["train_rmse"] >= 0).all()
        assert len(h) == n and h["epoch"].tolist() == list(range(1, n + 1))
        assert np.isfinite(h[["loss", "seconds"]].to_numpy()).all()
        assert (h["seconds"] >= 0).all()
        assert [r["epoch"] for r in seen] == h["epoch"].tolist()
        assert model.best_epoch_ == n
        if not self.rating:
            return
        self.fit(model, train, val)
        h = model.history_
        assert list(h.columns) == ["epoch", "loss", "train_rmse", "seconds"] + extra + ["validation_rmse"]
        assert len(h) == n
        # the last row's validation RMSE is the returned model's, up to float32 rounding (the
        # kernels may sum the dot products in another order during the fit than after it)
        assert h["validation_rmse"].iloc[-1] == pytest.approx(model.score(val), rel=1e-6)

    def test_early_stopping_without_validation_raises(self, train: Ratings) -> None:
        if "early_stopping" not in self.model.param_names():
            pytest.skip(f"{self.model.__name__} has no early_stopping")
        with pytest.raises(ValueError, match="validation"):
            self.fit(self.make(early_stopping=2), train)

    def test_early_stopping_restores_best_epoch(self) -> None:
        if self.overfit is None:
            pytest.skip(f"no overfitting parameters given for {self.model.__name__} (set `overfit`)")
        ratings, _ = planted(150, 100, 3000, 3, 0.5, seed=2)
        train, val = random_split(ratings, 0.3, seed=0)
        patience = 2
        model = self.fit(self.model(**{**self.overfit, "early_stopping": patience}), train, val)
        h = model.history_
        n_max = int(getattr(model, model.epochs_param))
        assert len(h) < n_max  # stopped early
        assert len(h) == model.best_epoch_ + patience
        best_row = h["validation_rmse"].idxmin()
        assert h.loc[best_row, "epoch"] == model.best_epoch_
        assert (h["validation_rmse"].iloc[model.best_epoch_:] >= h.loc[best_row, "validation_rmse"] - 1e-6).all()
        assert model.score(val) == pytest.approx(h["validation_rmse"].min(), rel=1e-6)
        # the restored model is exactly the model trained for best_epoch_ epochs
        exact = self.fit(self.model(**{**self.overfit, model.epochs_param: model.best_epoch_}), train)
        for arr in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            np.testing.assert_array_equal(getattr(model, arr), getattr(exact, arr), err_msg=arr)

    def test_recovers_a_planted_low_rank_matrix(self) -> None:
        if self.recovery is None:
            pytest.skip(f"no recovery parameters given for {self.model.__name__} (set `recovery`)")
        train, test, clean, baseline_rmse = planted_split()
        model = self.fit(self.model(**self.recovery), train)
        score = model.score(test)
        # held-out RMSE close to the noise floor (the oracle scores ~RECOVERY_NOISE) ...
        assert score < 2 * RECOVERY_NOISE + 0.05, score
        # ... because the predictions are close to the noiseless truth
        assert rmse(model.predict_ratings(test), clean) < RECOVERY_NOISE + 0.05
        # and far better than biases alone, which cannot express the interaction term
        assert score < 0.5 * baseline_rmse

    def test_same_seed_single_thread_is_bit_identical(self, split: tuple[Ratings, Ratings]) -> None:
        train, val = split
        val = val if self.rating else None
        a = self.fit(self.make(seed=7, threads=1), train, val)
        b = self.fit(self.make(seed=7, threads=1), train, val)
        assert_same_fit(a, b)
        if val is not None:
            np.testing.assert_array_equal(a.history_["validation_rmse"], b.history_["validation_rmse"])

    def test_different_seeds_differ(self, train: Ratings) -> None:
        a = self._fresh(train, seed=1)
        b = self._fresh(train, seed=2)
        if not self.random_init:
            assert_same_fit(a, b)
            return
        assert not np.array_equal(a.item_factors_, b.item_factors_)
        assert not np.array_equal(a.user_factors_, b.user_factors_)

    def test_fixed_thread_count_is_reproducible(self, train: Ratings) -> None:
        if not self.threads_reproducible:
            pytest.skip(f"{self.model.__name__} is not reproducible on more than one thread")
        from mfrec.threads import fixed_threads

        with fixed_threads():  # whatever else the machine runs (mfrec.threads.start_threads)
            assert_same_fit(self._fresh(train, seed=5, threads=2), self._fresh(train, seed=5, threads=2))

    def test_refit_equals_fresh_fit(self, split: tuple[Ratings, Ratings]) -> None:
        train, val = split
        model = self.make(seed=3, threads=1)
        self.fit(model, val)  # fit something else first: nothing may leak into the second fit
        self.fit(model, train)
        assert_same_fit(model, self._fresh(train, seed=3))

    def test_a_failed_refit_keeps_the_fitted_model(self, split: tuple[Ratings, Ratings]) -> None:
        """A refit that failed (diverged, a callback that raised) lost the model it had and left
        new data attributes (n_train_, global_mean_) beside the old factors and history."""
        train, val = split
        model = self.make(seed=3, threads=1)
        self.fit(model, train)
        users, items = train.raw_users[:20], train.raw_items[:20]
        before = (model.predict(users, items), len(model.history_), model.n_train_, model.global_mean_)

        def boom(record: dict) -> None:
            raise KeyboardInterrupt  # the user stops a refit
        with pytest.raises(KeyboardInterrupt):
            self.fit(model, val, callback=boom)
        assert model.fitted_ and model.n_train_ == before[2] and model.global_mean_ == before[3]
        np.testing.assert_array_equal(model.predict(users, items), before[0])
        assert len(model.history_) == before[1]
        with pytest.raises(TypeError, match="callback must be callable"):
            self.fit(model, val, callback=5)
        np.testing.assert_array_equal(model.predict(users, items), before[0])

    # ---------------------------------------------------------------- prediction
    def test_predict_shapes_and_finite_values(self, fitted: Any, split: tuple[Ratings, Ratings]) -> None:
        _, test = split
        pred = fitted.predict(test.raw_users, test.raw_items)
        assert isinstance(pred, np.ndarray) and pred.shape == (len(test),) and pred.dtype == np.float64
        assert np.isfinite(pred).all()
        np.testing.assert_array_equal(fitted.predict_ratings(test), pred)
        if self.rating:
            lo, hi = fitted.rating_scale_
            assert pred.min() >= lo and pred.max() <= hi
        assert fitted.predict([], []).shape == (0,)

    def test_predictions_follow_the_factor_formula(self, fitted: Any, split: tuple[Ratings, Ratings]) -> None:
        """``global_mean_ + user_bias_ + item_bias_ + user_factors_ . item_factors_`` for trained pairs."""
        train, test = split
        model = fitted
        trained = (train.user_counts[test.user_indices] > 0) & (train.item_counts[test.item_indices] > 0)
        u, i = test.user_indices[trained], test.item_indices[trained]
        assert len(u)
        want = (model.global_mean_ + model.user_bias_[u].astype(np.float64) + model.item_bias_[i].astype(np.float64)
                + np.einsum("ij,ij->i", model.user_factors_[u].astype(np.float64),
                            model.item_factors_[i].astype(np.float64)))
        raw_u, raw_i = test.raw_users[trained], test.raw_items[trained]
        np.testing.assert_allclose(model.predict(raw_u, raw_i, clip=False), want, rtol=1e-5, atol=1e-5)
        if self.rating:
            assert model.rating_scale_ == train.rating_scale
            np.testing.assert_allclose(model.predict(raw_u, raw_i), np.clip(want, *model.rating_scale_),
                                       rtol=1e-5, atol=1e-5)

    def test_unknown_ids_fall_back_to_biases_and_mean(self, fitted: Any, split: tuple[Ratings, Ratings]) -> None:
        train, test = split
        model = fitted
        known_u, known_i = train.raw_users[0], train.raw_items[0]
        new_u, new_i = _unknown_id(train.users, 1), _unknown_id(train.items, 2)
        uidx, iidx = model.user_map_.index_of(known_u), model.item_map_.index_of(known_i)
        users, items = [known_u, new_u, new_u, known_u], [new_i, known_i, new_i, known_i]
        pred = model.predict(users, items)
        assert np.all(np.isfinite(pred))
        assert model.unknown_ == {"users": 2, "items": 2}
        if not self.rating:  # preference scores: an unknown side adds 0 (BPR keeps its item bias)
            want = [float(model.user_bias_[uidx]), float(model.item_bias_[iidx]), 0.0]
        elif model.global_mean_ == 0 and not model.user_bias_.any() and not model.item_bias_.any():
            want = [train.global_mean] * 3  # no biases to fall back on: the training mean
        else:
            mu = model.global_mean_
            want = [mu + model.user_bias_[uidx], mu + model.item_bias_[iidx], mu]
            want = np.clip(want, *model.rating_scale_)
        np.testing.assert_allclose(pred[:3], want, rtol=1e-6)
        assert pred[3] == pytest.approx(model.predict([known_u], [known_i])[0])
        assert model.unknown_ == {"users": 0, "items": 0}
        # the counts come with the predictions too (and the caller's copy is its own)
        pred, counts = model.predict(users, items, return_unknown=True)
        assert counts == {"users": 2, "items": 2} == model.unknown_
        np.testing.assert_array_equal(pred, model.predict(users, items))
        pred, counts = model.predict_ratings(test, return_unknown=True)
        np.testing.assert_array_equal(pred, model.predict_ratings(test))
        assert counts == model.unknown_
        counts["users"] = -1
        assert model.unknown_["users"] != -1

    def test_missing_ids_and_length_mismatch_are_data_errors(self, fitted: Any, train: Ratings) -> None:
        u, i = train.raw_users[0], train.raw_items[0]
        with pytest.raises(DataError, match="missing user id"):
            fitted.predict([None], [i])
        with pytest.raises(DataError, match="missing item id"):
            fitted.predict([u, u], [i, float("nan")])
        with pytest.raises(DataError):
            fitted.predict([u, u], [i])

    def test_rows_without_ratings_predict_like_unknown_ids(self, data: Ratings) -> None:
        """An item in the id map without a training rating (as after ``Ratings.subset``) keeps
        zero factors and biases: it predicts exactly like an id the model never heard of."""
        cold = int(data.item_indices[0])
        part = data.subset(data.item_indices != cold)
        model = self._fresh(part, seed=0)
        users = part.raw_users[:5]
        got = model.predict(users, np.full(5, data.items[cold], dtype=data.items.dtype))
        fallback = model.predict(users, [_unknown_id(data.items)] * 5)
        np.testing.assert_allclose(got, fallback, rtol=1e-6)

    def test_string_ids_end_to_end(self, data: Ratings) -> None:
        df = data.to_dataframe()
        df["user"] = "user-" + df["user"].astype(str)
        df["item"] = "movie/" + df["item"].astype(str)
        cut = int(len(df) * 0.8)
        train_df, val_df = df.iloc[:cut], df.iloc[cut:].copy()
        val_df.loc[val_df.index[0], "user"] = "newcomer"  # unknown in training
        model = self.fit(self.make(threads=1), train_df, val_df if self.rating else None)
        assert all(isinstance(x, str) for x in model.users_) and all(isinstance(x, str) for x in model.items_)
        if self.rating:
            assert np.isfinite(model.history_["validation_rmse"]).all()
        known_user, known_item = train_df["user"].iloc[0], train_df["item"].iloc[0]
        pred = model.predict([known_user, "newcomer", known_user], [known_item, known_item, "no such movie"])
        assert pred.shape == (3,) and np.all(np.isfinite(pred))
        assert model.unknown_ == {"users": 1, "items": 1}
        row = list(model.users_).index(known_user)  # the raw id order maps to the factor rows
        assert model.user_map_.index_of(known_user) == row
        if self.rating:
            assert np.isfinite(model.score(Ratings.from_dataframe(val_df)))

    # ---------------------------------------------------------------- kind-specific
    def test_rating_score_is_rmse(self, fitted: Any, split: tuple[Ratings, Ratings]) -> None:
        _, test = split
        if not self.rating:  # a ranking model has no RMSE: refused (it returned a number)
            with pytest.raises(ValueError, match="scores preferences, not ratings"):
                fitted.score(test)
            return
        assert fitted.score(test) == pytest.approx(rmse(fitted.predict_ratings(test), test.values), rel=1e-12)
        assert fitted.score(test.to_dataframe()) == pytest.approx(fitted.score(test), rel=1e-12)
        with pytest.raises(DataError):
            fitted.score(test.subset(np.zeros(len(test), dtype=bool)))

    def test_rating_predictions_are_clipped_to_the_training_scale(self) -> None:
        if not self.rating:
            pytest.skip("a ranking model's scores are not ratings")
        ratings, all_u, all_i = additive_ratings()
        model = self._fresh(ratings)
        assert model.rating_scale_ == (2.0, 3.0)
        clipped = model.predict(all_u, all_i)
        raw = model.predict(all_u, all_i, clip=False)
        assert clipped.min() >= 2.0 and clipped.max() <= 3.0
        np.testing.assert_array_equal(clipped, np.clip(raw, 2.0, 3.0))
        np.testing.assert_array_equal(model.predict_ratings(ratings),
                                      np.clip(model.predict_ratings(ratings, clip=False), 2.0, 3.0))
        extra = model.predict([99_999, 0, 99_999], [0, 99_999, 99_999])
        assert np.all((extra >= 2.0) & (extra <= 3.0))

    def test_ranking_model_refuses_validation(self, split: tuple[Ratings, Ratings]) -> None:
        if self.rating:
            pytest.skip("a rating model takes validation data")
        train, val = split
        with pytest.raises(ValueError):
            self.fit(self.make(), train, val)

    # ---------------------------------------------------------------- recommendation
    def test_recommend_excludes_seen_items(self, fitted: Any, train: Ratings) -> None:
        user = train.raw_users[0]
        seen = set(train.raw_items[train.raw_users == user])
        df = fitted.recommend(user, n=5)
        assert list(df.columns) == ["item", "score"]
        assert len(df) == min(5, len(train.items) - len(seen))
        assert not seen & set(df["item"])
        assert np.all(np.diff(df["score"].to_numpy()) <= 0)
        everything = fitted.recommend(user, n=len(train.items), exclude_seen=False)
        assert len(everything) == len(train.items) and seen <= set(everything["item"])
        with pytest.raises(KeyError):
            fitted.recommend(_unknown_id(train.users))

    def test_recommend_scores_are_the_predictions(self, fitted: Any, train: Ratings) -> None:
        user = train.raw_users[0]
        df = fitted.recommend(user, n=len(train.items), exclude_seen=False)
        trained = train.item_counts[fitted.item_map_.lookup(df["item"].to_numpy())] > 0
        items = df["item"].to_numpy()[trained]
        np.testing.assert_allclose(df["score"].to_numpy()[trained],
                                   fitted.predict([user] * len(items), items, clip=False), rtol=1e-5, atol=1e-5)

    def test_recommend_many_excludes_seen_items(self, fitted: Any, train: Ratings) -> None:
        users = list(pd.unique(train.raw_users))[:4][::-1]
        df = fitted.recommend_many(users, n=3)
        assert list(df.columns) == ["user", "item", "score", "rank"]
        assert list(pd.unique(df["user"])) == users
        pairs = set(zip(train.raw_users.tolist(), train.raw_items.tolist()))
        assert not pairs & set(zip(df["user"].tolist(), df["item"].tolist()))
        for user, group in df.groupby("user", sort=False):
            assert group["rank"].tolist() == list(range(1, len(group) + 1))
            one = fitted.recommend(user, n=3)
            assert group["item"].tolist() == one["item"].tolist()
            np.testing.assert_allclose(group["score"].to_numpy(), one["score"].to_numpy(), rtol=1e-5, atol=1e-5)
        every = fitted.recommend_many(None, n=2)
        assert set(every["user"]) == set(train.users)
        with pytest.raises(KeyError):
            fitted.recommend_many([users[0], _unknown_id(train.users)])

    # ---------------------------------------------------------------- new users
    def _new_ratings(self, model: Any, train: Ratings) -> dict:
        lo, hi = model.rating_scale_
        items = list(pd.unique(train.raw_items))[:3]
        return dict(zip(items, [float(hi), float(lo), float(lo + hi) / 2]))

    def test_fold_in_shapes(self, fitted: Any, train: Ratings) -> None:
        rated = self._new_ratings(fitted, train)
        fold = fitted.fold_in(rated)
        k = fitted.item_factors_.shape[1]
        assert fold.factors.shape == (k,) and fold.factors.dtype == fitted.item_factors_.dtype
        assert np.isfinite(fold.factors).all() and np.isfinite(fold.bias)
        assert sorted(fold.item_indices.tolist()) == sorted(fitted.item_map_.lookup(list(rated)).tolist())
        assert fold.unknown_items == []
        again = fitted.fold_in(rated)
        np.testing.assert_array_equal(fold.factors, again.factors)  # deterministic
        unknown = _unknown_id(train.items)
        with pytest.warns(UserWarning, match="unknown"):
            partial = fitted.fold_in({**rated, unknown: float(fitted.rating_scale_[1])})
        assert partial.unknown_items == [unknown]
        np.testing.assert_allclose(partial.factors, fold.factors, rtol=1e-6, atol=1e-7)
        with pytest.raises(DataError):
            fitted.fold_in({unknown: float(fitted.rating_scale_[1])})
        zero = fitted.fold_in({})
        assert zero.bias == 0 and not np.any(zero.factors)

    def test_fold_in_of_a_training_user_gives_back_their_factors(self, train: Ratings) -> None:
        if self.refold is None:
            pytest.skip(f"no converged parameters given for {self.model.__name__} (set `refold`)")
        model = self.fit(self.model(**self.refold), train)
        csr = train.by_user
        users = np.flatnonzero(np.diff(csr.indptr) > 0)[:8]
        for u in users:
            row = csr[u]
            fold = model.fold_in(dict(zip(train.items[row.indices], row.data)))
            np.testing.assert_allclose(fold.factors, model.user_factors_[u], atol=self.refold_atol, err_msg=str(u))
            assert abs(fold.bias - model.user_bias_[u]) <= self.refold_atol, u

    def test_add_user_equals_recommend_new(self, train: Ratings) -> None:
        model = self._fresh(train)
        rated = self._new_ratings(model, train)
        new = model.recommend_new(rated, n=5)
        assert list(new.columns) == ["item", "score"]
        assert not set(rated) & set(new["item"])
        user = _unknown_id(train.users)
        model.add_user(user, rated)
        assert user in list(model.users_)
        rec = model.recommend(user, n=5)
        _assert_same_frames(rec, new, exact=False)
        items = rec["item"].to_numpy()
        np.testing.assert_allclose(model.predict([user] * len(items), items, clip=False), rec["score"],
                                   rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="already"):
            model.add_user(user, rated)

    def test_similar_items(self, fitted: Any, train: Ratings) -> None:
        item = train.raw_items[0]
        if fitted.item_factors_.shape[1] == 0:
            with pytest.raises(ValueError):
                fitted.similar_items(item)
            return
        df = fitted.similar_items(item, n=5)
        assert list(df.columns) == ["item", "similarity"]
        assert len(df) == 5 and item not in set(df["item"])
        sims = df["similarity"].to_numpy()
        assert np.all(np.diff(sims) <= 0) and np.all(np.abs(sims) <= 1 + 1e-6)
        with pytest.raises(KeyError):
            fitted.similar_items(_unknown_id(train.items))

    # ---------------------------------------------------------------- save / load
    @pytest.mark.parametrize("ids", ["int", "str"])
    def test_save_load_round_trip(self, ids: str, data: Ratings, tmp_path: Path) -> None:
        import mfrec

        r = data if ids == "int" else _string_ids(data)
        m = self.fit(self.make(threads=1), r)
        m.attach_items(_items_table(r.items))
        path = tmp_path / "model.mfrec"
        assert m.save(path, metrics={"note": 1.5}) == path
        m2 = mfrec.load_model(path)
        assert type(m2) is type(m)
        assert m2.get_params() == m.get_params()
        pd.testing.assert_frame_equal(m2.history_, m.history_)
        assert m2.best_epoch_ == m.best_epoch_
        assert m2.metrics_ == {"note": 1.5}
        assert m2.rating_scale_ == tuple(m.rating_scale_)
        assert list(m2.users_) == list(m.users_) and list(m2.items_) == list(m.items_)
        a1, a2 = fitted_arrays(m), fitted_arrays(m2)
        assert a1.keys() == a2.keys()
        for attr in a1:
            np.testing.assert_array_equal(a2[attr], a1[attr], err_msg=attr)

        users = list(r.users) + [_unknown_id(r.users)]
        items = [r.items[k % len(r.items)] for k in range(len(users))]
        np.testing.assert_array_equal(m2.predict(users, items), m.predict(users, items))
        for u in (r.users[0], r.users[len(r.users) // 2], r.users[-1]):
            _assert_same_frames(m2.recommend(u, n=8), m.recommend(u, n=8))
        _assert_same_frames(m2.recommend_many(None, n=4), m.recommend_many(None, n=4))
        rated = self._new_ratings(m, r)
        _assert_same_frames(m2.recommend_new(rated, n=6, explain=2), m.recommend_new(rated, n=6, explain=2))
        _assert_same_frames(m2.recommend_new({}, n=6), m.recommend_new({}, n=6))
        if m.item_factors_.shape[1]:
            _assert_same_frames(m2.similar_items(r.items[3], n=5), m.similar_items(r.items[3], n=5))
        else:
            with pytest.raises(ValueError):
                m2.similar_items(r.items[3])
        # the item table survives (titles, genre lists, years with gaps)
        assert list(m2.item_info_["title"]) == list(m.item_info_["title"])
        assert list(m2.item_info_["genres"]) == list(m.item_info_["genres"])
        assert m2.item_info_["year"].isna().tolist() == m.item_info_["year"].isna().tolist()
        assert m2.item_info_["year"].dropna().tolist() == m.item_info_["year"].dropna().tolist()
        # a loaded model saves again to an equivalent file
        m2.save(tmp_path / "again.mfrec")
        np.testing.assert_array_equal(mfrec.load_model(tmp_path / "again.mfrec").predict(users, items),
                                      m.predict(users, items))

    def test_every_fitted_array_is_declared(self, fitted: Any) -> None:
        """The state a model file holds is exactly the class's declared fitted arrays."""
        specs = getattr(type(fitted), "_array_specs", None)
        if specs is None:
            pytest.skip(f"{type(fitted).__name__} declares no _array_specs")
        assert set(specs) == set(fitted_arrays(fitted))

    def test_loaded_model_folds_in_like_the_original(self, fitted: Any, train: Ratings, tmp_path: Path) -> None:
        import mfrec

        loaded = mfrec.load_model(fitted.save(tmp_path / "m.mfrec"))
        rated = self._new_ratings(fitted, train)
        a, b = fitted.fold_in(rated), loaded.fold_in(rated)
        assert a.bias == pytest.approx(b.bias, rel=1e-6, abs=1e-7)
        np.testing.assert_allclose(a.factors, b.factors, rtol=1e-6, atol=1e-7)
        user = _unknown_id(train.users)
        loaded.add_user(user, rated)
        _assert_same_frames(loaded.recommend(user, n=5), fitted.recommend_new(rated, n=5), exact=False)
