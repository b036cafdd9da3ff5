"""The model contract: one declaration per model, a throwaway trainer per fit, one state for files.

Every model scores ``global_mean + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]``
(a model without biases keeps them at zero; `Baseline` has zero factors), so prediction,
recommendation (`mfrec.models.recommend`), fold-in and save/load are written once, here.

A model is a class ``X(FactorModel)`` that declares, in one place:

* its parameters: the keyword-only ``__init__`` (ending in ``self._store_params(locals())``) and
  ``_parameter_constraints`` for each of them (`mfrec.models.params`; merged over the base
  classes, checked by `validate_params`, a missing entry is a TypeError when the class is made);
* ``kind`` ("rating" or "ranking") and ``epochs_param`` ("epochs" or "iterations");
* ``_array_specs``: every fitted array, name -> (kind, shape); the trainer must publish exactly
  these, and model files store and validate exactly these;
* its fold-in rule: ``_fold_in_lambdas`` (the ridge penalties of one new user) or its own
  ``_fold_in_solve``; there is no default, a class with neither is a TypeError when it is made;
* ``_trainer(train, rng, dtype, side)``: a `Trainer` that owns the scratch state of one fit.

`fit` drives the trainer's epochs, validation, early stopping and history, then publishes the
trainer's arrays on the model and drops the trainer: a fitted model holds what it predicts with
and nothing else. `get_state` / `from_state` turn a fitted model into plain data and back
(`mfrec.persist` writes and checks that data). See docs/adding-a-model.md.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from mfrec._flags import check_flag
from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings, as_ratings
from mfrec.errors import DataError, NotFittedError, TrainingDivergedError
from mfrec.kernels.predict import pair_dots
from mfrec.kernels.random import uniform_fill
from mfrec.evaluation.metrics import rmse
from mfrec.models.params import FloatDType, Integral, Interval, Real, check_params
from mfrec.models.recommend import RecommenderMixin
from mfrec.models.state import ModelState
from mfrec.threads import kernel_threads
from mfrec._warnings import warn_user

__all__ = ["EpochCallback", "Estimator", "FactorModel", "ModelState", "Trainer", "as_ratings", "check_is_fitted", "float_param",
           "ridge_penalty", "sq_norm"]

EpochCallback = Callable[[dict], None]

#: per thread, per model: the unknown counts of that thread's last predict call (see ``unknown_``)
_UNKNOWN = threading.local()


def _unknown_store() -> "weakref.WeakKeyDictionary[Any, dict]":
    store = getattr(_UNKNOWN, "store", None)
    if store is None:
        store = _UNKNOWN.store = weakref.WeakKeyDictionary()
    return store


def _refuse_missing_ids(raw: Any, codes: np.ndarray, what: str) -> None:
    """DataError for a missing id (None, NaN, NaT, pd.NA) among the ids a map did not know: it is
    a hole in the caller's data, not an unknown id to fall back on (Ratings refuses it too)."""
    unknown = np.flatnonzero(codes < 0)
    if len(unknown) == 0:
        return
    from mfrec.data.idmap import as_id_array
    from mfrec.data.ratings import _isna

    missing = _isna(as_id_array(raw)[unknown])
    if missing.any():
        raise DataError(f"missing {what} id at position {int(unknown[np.flatnonzero(missing)[0]])} "
                        f"({int(missing.sum())} in all): None/NaN is not an id")


def check_is_fitted(model: Any) -> None:
    """NotFittedError unless ``model`` was fitted (or loaded)."""
    if not getattr(model, "fitted_", False):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet: call fit() first")


class Estimator:
    """scikit-learn style parameter handling: ``get_params``/``set_params`` from ``__init__``."""

    @classmethod
    def param_names(cls) -> list[str]:
        """The ``__init__`` parameters: what `get_params` returns and model files store."""
        names = cls.__dict__.get("_param_names_cache")  # per class, not inherited
        if names is None:
            sig = inspect.signature(cls.__init__)
            names = [p.name for p in sig.parameters.values()
                     if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            cls._param_names_cache = names
        return list(names)

    def _store_params(self, values: dict[str, Any]) -> None:
        """Set every ``__init__`` parameter as an attribute; models call it with ``locals()``."""
        for name in self.param_names():
            setattr(self, name, values[name])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> "Estimator":
        """Set parameters (scikit-learn's convention: checked at ``fit``)."""
        valid = set(self.param_names())
        for key in params:
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}; valid: {sorted(valid)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def clone(self) -> "Estimator":
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def ridge_penalty(model: "FactorModel", user_sq: float, item_sq: float, user_bias_sq: float,
                  item_bias_sq: float) -> float:
    """``regularization (|P|^2 + |Q|^2) + bias_regularization (|b_u|^2 + |b_i|^2)`` from the
    squared norms (the L2 term of the SGD and ALS objectives)."""
    reg = float(model.regularization)
    return reg * (user_sq + item_sq) + float(model._param("bias_regularization")) * (user_bias_sq + item_bias_sq)


def sq_norm(a: np.ndarray) -> float:
    """Sum of squares without a float64 copy (BLAS dot of the flat array)."""
    flat = np.ascontiguousarray(a).ravel()
    return float(np.dot(flat, flat))


def float_param(value: Any, dtype: np.dtype) -> Any:
    """A hyperparameter as a scalar of the factor dtype (keeps Numba loops in float32)."""
    return dtype.type(value)


class Trainer:
    """The scratch state of one fit. `FactorModel.fit` builds it with ``model._trainer(...)``,
    calls `epoch` once per epoch, reads `penalty` for the reported loss, publishes `arrays` on the
    model (for a validation RMSE, and `final` at the end), and then drops it.

    A subclass sets ``self.model``, ``self.train`` (the training Ratings) and ``self.mu`` (the
    global mean the model trains around) through ``super().__init__``, allocates its arrays, and
    implements `epoch` and `arrays`. Early stopping snapshots `state` (the arrays it updates in
    place; default: those of `arrays`)."""

    #: the thread count the fit's result follows (the SGD models' block grid), recorded in each
    #: epoch's history row as ``threads``; None: the result does not depend on it (no column)
    result_threads: int | None = None

    def __init__(self, model: "FactorModel", train: Ratings) -> None:
        self.model = model
        self.train = train
        self.mu = float(train.global_mean) if model._has_bias else 0.0

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        """Run one epoch (iteration, sweep); return the training sum of squared errors."""
        raise NotImplementedError(f"{type(self).__name__}.epoch")

    def penalty(self) -> float:
        """The regularization term of the objective, for the reported ``loss`` (0: none)."""
        return 0.0

    def init_arrays(self, rng: np.random.Generator, dtype: np.dtype, *, random_users: bool) -> None:
        """The four shared arrays ``P``, ``Q``, ``bu``, ``bi``: random item factors, random user
        factors (or zeros, for ALS-type trainers whose first half-step solves them), zero biases;
        rows of users and items without a training rating zeroed."""
        k, train = int(self.model.factors), self.train
        self.P = self.init_factors(rng, train.n_users, k, dtype) if random_users \
            else np.zeros((train.n_users, k), dtype=dtype)
        self.Q = self.init_factors(rng, train.n_items, k, dtype)
        self.bu = np.zeros(train.n_users, dtype=dtype)
        self.bi = np.zeros(train.n_items, dtype=dtype)
        self.zero_untrained(users=(self.P, self.bu), items=(self.Q, self.bi))

    def arrays(self) -> dict[str, np.ndarray]:
        """The model's declared fitted arrays from the current state (views are fine); may also
        hold ``"global_mean_"`` when the trainer learns it. Default: the four arrays of
        `init_arrays`."""
        return {"user_factors_": self.P, "item_factors_": self.Q, "user_bias_": self.bu, "item_bias_": self.bi}

    def final(self) -> dict[str, Any]:
        """What the fitted model keeps: `arrays`, as contiguous arrays of their own."""
        return {name: (np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a)
                for name, a in self.arrays().items()}

    def state(self) -> dict[str, np.ndarray]:
        """The arrays the epochs update in place (snapshot and restored by early stopping)."""
        return {name: a for name, a in self.arrays().items() if isinstance(a, np.ndarray)}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {name: a.copy() for name, a in self.state().items()}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        current = self.state()
        for name, value in saved.items():
            current[name][...] = value

    def init_factors(self, rng: np.random.Generator, n: int, k: int, dtype: np.dtype, mean: float = 0.0,
                     out: np.ndarray | None = None) -> np.ndarray:
        """Random ``(n, k)`` factors (uniform, ``init_std`` spread around ``mean``); with ``out``
        (an ``(n, >= k)`` array, e.g. padded rows) into its first ``k`` columns, the same values."""
        if out is None:
            out = np.empty((n, k), dtype=dtype)
        uniform_fill(out, k, np.uint64(rng.integers(0, 2**63)), mean, float(self.model.init_std))
        return out

    def zero_untrained(self, users: tuple[np.ndarray, ...] = (), items: tuple[np.ndarray, ...] = ()) -> None:
        """Zero the rows of users / items without a training rating in the given arrays: such ids
        then predict exactly like unknown ids (the bias/mean fallback), not from random init."""
        for arrays, counts in ((users, self.train.user_counts), (items, self.train.item_counts)):
            empty = counts == 0
            if empty.any():
                for a in arrays:
                    a[empty] = 0


def _check_held_out(train: Ratings, validation: Ratings, stopping: bool) -> None:
    """Validation (user, item) pairs that are training pairs too: early stopping on them is
    refused (it would stop on the training error), a plain validation RMSE warns."""
    shared = train.shared_pairs(validation)
    if not len(shared):
        return
    msg = (f"validation shares {len(shared)} of its {len(validation)} (user, item) pairs with the training "
           f"ratings (the first: {validation.pair_at(shared[0])}), so its RMSE measures the fit, not held-out error")
    if stopping:
        raise ValueError(msg + "; early_stopping needs held-out validation ratings")
    warn_user(msg)


#: parameters every model shares (a model declares the rest in its own ``_parameter_constraints``)
COMMON_CONSTRAINTS: dict[str, list] = {
    "factors": [Interval(Integral, 0, None)],
    "init_std": [Interval(Real, 0, None)],
    "early_stopping": [None, Interval(Integral, 1, None)],
    "seed": [None, Interval(Integral, 0, None)],
    "threads": [None, Interval(Integral, 1, None)],
    "dtype": [FloatDType()],
}


class FactorModel(RecommenderMixin, Estimator):
    """Base of every model (see the module docstring for what a model declares).

    Fitted attributes: ``global_mean_``, ``user_bias_``, ``item_bias_``, ``user_factors_``,
    ``item_factors_`` (numpy arrays in the order of ``users_`` / ``items_``, the raw ids),
    ``history_`` (a DataFrame, one row per epoch), ``rating_scale_``, ``best_epoch_``.
    """

    #: "rating": predictions are ratings (clipped to the training scale; RMSE applies);
    #: "ranking": preference scores, evaluated by ranking metrics only
    kind: ClassVar[str] = "rating"
    #: the parameter that counts passes over the data ("epochs" for SGD, "iterations" for ALS-type)
    epochs_param: ClassVar[str] = "epochs"
    #: whether predictions include the global mean and biases
    _has_bias = True
    #: per parameter, the forms it accepts (`mfrec.models.params`); merged over the base classes
    _parameter_constraints: ClassVar[dict[str, list]] = COMMON_CONSTRAINTS
    #: parameters whose ``None`` means "the value of that other parameter" (resolved by `_param`)
    _defaults_from: ClassVar[dict[str, str]] = {"bias_regularization": "regularization",
                                                 "bias_learning_rate": "learning_rate",
                                                 "implicit_regularization": "regularization"}
    #: every fitted array, name -> (kind, shape), published by the trainer and checked by save/load
    #: (mfrec.persist.check_array_headers): "factor" is the ``dtype`` parameter's float type; dims
    #: are "users", "items", int parameters, symbols shared between arrays, "a*b", "a+b"
    _array_specs: ClassVar[dict[str, tuple[str, tuple]]] = {
        "user_factors_": ("factor", ("users", "factors")), "item_factors_": ("factor", ("items", "factors")),
        "user_bias_": ("float", ("users",)), "item_bias_": ("float", ("items",))}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A model class must declare a constraint for every parameter and a fold-in rule:
        forgetting either is a TypeError here, when the class is made, not a silent default."""
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        undeclared = [name for name in cls.param_names() if name not in cls.parameter_constraints()]
        if undeclared:
            raise TypeError(f"{cls.__name__}: parameter(s) {undeclared} have no entry in _parameter_constraints")
        if cls.kind not in ("rating", "ranking"):
            raise TypeError(f"{cls.__name__}.kind must be 'rating' or 'ranking', got {cls.kind!r}")
        if cls._fold_in_solve is FactorModel._fold_in_solve and cls._fold_in_lambdas is FactorModel._fold_in_lambdas:
            raise TypeError(f"{cls.__name__} declares no fold-in rule: define _fold_in_lambdas (the ridge "
                            "penalties of one new user under the training objective) or _fold_in_solve")

    # ------------------------------------------------------------------ parameters
    @classmethod
    def parameter_constraints(cls) -> dict[str, list]:
        """Per parameter, the list of forms it accepts (merged over the base classes)."""
        merged: dict[str, list] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("_parameter_constraints", {}))
        return merged

    def validate_params(self) -> None:
        """Check every parameter against its declared constraint (then `_check_param_relations`):
        :class:`mfrec.InvalidParameterError` (a ValueError and a TypeError) naming the first bad one."""
        check_params(type(self).__name__, self.get_params(), self.parameter_constraints())
        self._check_param_relations()

    def set_params(self, **params: Any) -> "FactorModel":
        """Set parameters. A fitted model uses some of them after the fit (fold-in reads
        ``regularization``): its new values are checked at once, the old ones kept when they are
        refused, and caches derived from parameters are dropped."""
        old = {key: getattr(self, key) for key in params if hasattr(self, key)}
        super().set_params(**params)
        if getattr(self, "fitted_", False):
            try:
                self.validate_params()
            except Exception:
                for key, value in old.items():
                    setattr(self, key, value)
                raise
            self._arrays_changed()
        return self

    def _check_param_relations(self) -> None:
        """Constraints between parameters (e.g. ``burn_in < iterations``); none by default."""

    def _param(self, name: str) -> Any:
        """A parameter's value, with ``None`` resolved through ``_defaults_from``
        (``bias_regularization=None`` means ``regularization``; so does a model without the
        parameter, e.g. FunkMF)."""
        value = getattr(self, name, None)
        if value is None and name in self._defaults_from:
            return getattr(self, self._defaults_from[name])
        return value

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train: Ratings | pd.DataFrame,
        validation: Ratings | pd.DataFrame | None = None,
        *,
        callback: EpochCallback | None = None,
    ) -> "FactorModel":
        """Train on ``train``; with ``validation`` record its RMSE each epoch (and early-stop on it
        when ``early_stopping`` is set). ``callback(record)`` is called after every epoch."""
        return self._fit(train, validation, callback)

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> Trainer:
        """A fresh `Trainer` for one fit (``side``: what the model's own ``fit`` passed, e.g. CMF's
        attribute blocks; None otherwise)."""
        raise NotImplementedError(f"{type(self).__name__} must define _trainer()")

    def _fit(self, train: Any, validation: Any, callback: EpochCallback | None, side: Any = None) -> "FactorModel":
        """The one fit loop: epochs, validation RMSE, early stopping, history, publication."""
        train = as_ratings(train, "train")
        if len(train) == 0:
            raise DataError("no ratings to train on: the training data is empty")
        if validation is not None and self.kind == "ranking":
            raise ValueError(f"{type(self).__name__} scores preferences, not ratings: evaluate it with ranking "
                             "metrics (mfrec.evaluate) instead of a validation RMSE")
        validation = None if validation is None else as_ratings(validation, "validation")
        if validation is not None and len(validation) == 0:
            raise DataError("no validation ratings: the validation data is empty")
        patience = getattr(self, "early_stopping", None)
        if patience is not None and validation is None:
            raise ValueError("early_stopping needs validation data: fit(train, validation=...)")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable (called with each epoch's record), got {type(callback).__name__}")
        self.validate_params()
        if validation is not None:
            _check_held_out(train, validation, stopping=patience is not None)
            scale = train.rating_scale
            if scale is not None and len(validation) and (validation.values.min() < scale[0]
                                                          or validation.values.max() > scale[1]):
                raise DataError(f"validation ratings span [{validation.values.min():g}, {validation.values.max():g}], "
                                f"outside the training ratings' scale [{scale[0]:g}, {scale[1]:g}]: another scale's "
                                "ratings would give a meaningless validation RMSE")
        dtype = np.dtype(getattr(self, "dtype", "float32"))
        rng = np.random.default_rng(getattr(self, "seed", 0))
        n_epochs = int(getattr(self, self.epochs_param))
        before = dict(self.__dict__)  # a fit that fails (diverges, a callback raises, Ctrl-C) keeps the model it had
        try:
            with kernel_threads(getattr(self, "threads", None)):
                records, best = self._epochs(train, validation, callback, side, rng, dtype, n_epochs, patience)
        except BaseException as exc:
            self.__dict__.clear()
            self.__dict__.update(before)
            if isinstance(exc, (np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError, OverflowError)):
                # a ridge system that is not positive definite, a division by zero, an overflow: the
                # parameters are too extreme for the data (regularization 0 with the exact solver, a
                # huge confidence weight or precision); say so instead of a traceback from a kernel
                raise TrainingDivergedError(
                    f"{type(self).__name__} cannot train with these parameters ({type(exc).__name__}: {exc}); "
                    f"{self._diverged_hint}") from exc
            raise
        self._set_history(records)
        self.best_epoch_ = best[2] if best[1] is not None else len(records)
        self.fitted_ = True
        return self

    #: what the divergence error advises
    _diverged_hint = ("a learning rate or weight too large, or a regularization too small or too large for the "
                      "data: try values nearer the defaults")

    def _epochs(self, train: Ratings, validation: Ratings | None, callback: EpochCallback | None, side: Any,
                rng: np.random.Generator, dtype: np.dtype, n_epochs: int,
                patience: int | None) -> tuple[list[dict], tuple[float, Any, int]]:
        """The epochs of `_fit` (inside its thread setting): the per-epoch records and the best
        (validation RMSE, snapshot, epoch) for early stopping."""
        # an error of a rating model far outside the rating scale is divergence, though still finite
        # (minibatch steps that overshoot grow the error 1e4-fold in three epochs before any NaN)
        limit = np.inf
        if self.kind == "rating":
            lo, hi = train.rating_scale or (float(train.values.min()), float(train.values.max()))
            limit = 10.0 * max(float(hi - lo), 1.0)
        _check_memory(type(self).__name__, train, int(getattr(self, "factors", 0) or 0), dtype)
        trainer = self._trainer(train, rng, dtype, side)  # may refuse the data: the model is unchanged
        self._start_fit(train, trainer)
        val_idx = None
        if validation is not None:
            val_idx = (self.user_map_.lookup(validation.raw_users) if validation.user_map is not train.user_map
                       else validation.user_indices.astype(np.int64),
                       self.item_map_.lookup(validation.raw_items) if validation.item_map is not train.item_map
                       else validation.item_indices.astype(np.int64),
                       validation.values.astype(np.float64))
        records: list[dict] = []
        best: tuple[float, Any, int] = (np.inf, None, -1)
        since_best = 0
        for epoch in range(n_epochs):
            t0 = time.perf_counter()
            sse = trainer.epoch(epoch, rng)
            seconds = time.perf_counter() - t0
            train_rmse = float(np.sqrt(sse / len(train))) if np.isfinite(sse) and sse >= 0 else np.nan
            if not np.isfinite(sse) or train_rmse > limit:
                what = f"error is {sse}" if not np.isfinite(sse) else f"RMSE {train_rmse:.4g}, over 10x the rating range"
                raise TrainingDivergedError(f"{type(self).__name__} diverged at epoch {epoch + 1} (training {what}); "
                                            f"{self._diverged_hint}{_rating_range_note(train)}")
            rec = {"epoch": epoch + 1, "loss": (sse + trainer.penalty()) / len(train),
                   "train_rmse": train_rmse, "seconds": seconds}
            if trainer.result_threads is not None:
                rec["threads"] = int(trainer.result_threads)
            if val_idx is not None:
                self._publish(trainer.arrays())
                rec["validation_rmse"] = rmse(self._predict_indices(val_idx[0], val_idx[1]), val_idx[2])
            records.append(rec)
            if callback is not None:
                callback(rec)
            if val_idx is not None and patience is not None:
                if rec["validation_rmse"] < best[0] - 1e-6:
                    best = (rec["validation_rmse"], trainer.snapshot(), epoch + 1)
                    since_best = 0
                else:
                    since_best += 1
                    if since_best >= patience:
                        break
        if best[1] is not None:
            trainer.restore(best[1])
        self._publish(trainer.final())
        return records, best

    def _start_fit(self, train: Ratings, trainer: Trainer) -> None:
        """The fitted attributes that come from the training data itself."""
        self.fitted_ = False
        info = self.item_info_
        self.user_map_ = train.user_map
        self.item_map_ = train.item_map
        if info is not None:  # an attached table follows the new items (ones it does not list: no title)
            self.item_info_ = None
            self.attach_items(info[info.notna().any(axis=1)], fitted=False)
        # the declared scale (kept by subsets and splits), else the observed range
        self.rating_scale_ = train.rating_scale if train.rating_scale is not None else train.rating_range
        self.global_mean_ = trainer.mu
        self.train_mean_ = float(train.global_mean)
        self.n_train_ = len(train)
        self.seen_ = train.seen  # which items each user rated (0/1 CSR)

    def _publish(self, arrays: dict[str, Any]) -> None:
        """Set the trainer's arrays as the fitted attributes: exactly the declared ones (a trainer
        that forgets one, or invents one, is an error here, not a model that mispredicts later)."""
        names = set(arrays) - {"global_mean_"}
        declared = set(self._array_specs)
        if names != declared:
            raise TypeError(f"{type(self).__name__}'s trainer published {sorted(names)}; the class declares "
                            f"{sorted(declared)} (_array_specs)")
        for name, value in arrays.items():
            setattr(self, name, float(value) if name == "global_mean_" else value)
        self._arrays_changed()

    def _arrays_changed(self) -> None:
        """Drop caches derived from the fitted arrays (ImplicitALS: the fold-in Gram factor)."""

    @property
    def history_(self) -> pd.DataFrame:
        """One row per epoch: ``epoch``, ``loss``, ``train_rmse``, ``seconds``, for models whose
        result follows their thread count (the SGD models) ``threads``, the count this fit's model
        follows (fewer than asked when the fit started with the cores taken:
        `mfrec.threads.start_threads`), and ``validation_rmse`` when fitted with validation data."""
        frame = self.__dict__.get("_history")
        if frame is None:
            records = self.__dict__.get("_history_records")
            if records is None:
                raise AttributeError(f"{type(self).__name__} has no history_ before fit()")
            frame = self._history = pd.DataFrame.from_records(records)
        return frame

    @history_.setter
    def history_(self, frame: pd.DataFrame) -> None:
        self._history = frame
        self._history_records = None

    def _set_history(self, records: list[dict]) -> None:
        self._history = None
        self._history_records = records

    # ------------------------------------------------------------------ state (model files)
    def get_state(self) -> ModelState:
        """The fitted model as plain data (`ModelState`): parameters, declared arrays, ids,
        training items and the training summary."""
        self._require_fitted()
        history = self.history_.to_dict(orient="records") if self.__dict__.get("_history") is not None \
            or self.__dict__.get("_history_records") is not None else []
        meta = {"rating_scale": [float(x) for x in self.rating_scale_], "global_mean": float(self.global_mean_),
                "train_mean": float(self.train_mean_), "n_train": int(self.n_train_),
                "best_epoch": int(getattr(self, "best_epoch_", 0)), "history": history,
                "metrics": dict(getattr(self, "metrics_", {}) or {})}
        return ModelState(params=self.get_params(), arrays={name: getattr(self, name) for name in self._array_specs},
                          user_ids=self.user_map_.ids, item_ids=self.item_map_.ids, seen=self.seen_.tocsr(),
                          meta=meta, item_info=self.item_info_)

    @classmethod
    def from_state(cls, state: ModelState) -> "FactorModel":
        """A fitted model from `ModelState` (the inverse of `get_state`): parameters validated,
        only declared arrays set, then the class's own consistency check (``_validate_loaded``).
        ValueError / TypeError / KeyError when the state does not make a consistent model."""
        model = cls(**state.params)
        model.validate_params()
        missing = sorted(set(cls._array_specs) - set(state.arrays))
        extra = sorted(set(state.arrays) - set(cls._array_specs))
        if missing or extra:
            raise ValueError(f"{cls.__name__} state: missing arrays {missing}, undeclared arrays {extra}")
        model.user_map_ = IdMap(state.user_ids)
        model.item_map_ = IdMap(state.item_ids)
        seen = state.seen.tocsr()
        if seen.shape != (len(model.user_map_), len(model.item_map_)):
            raise ValueError(f"seen items are {seen.shape}, for {len(model.user_map_)} users and "
                             f"{len(model.item_map_)} items")
        model.seen_ = seen
        model.item_info_ = state.item_info
        for name in cls._array_specs:
            setattr(model, name, state.arrays[name])
        meta = state.meta
        model.rating_scale_ = tuple(float(x) for x in meta["rating_scale"])
        model.global_mean_ = float(meta["global_mean"]) if model._has_bias else 0.0  # no biases: no mean
        model.train_mean_ = float(meta["train_mean"])
        model.n_train_ = int(meta["n_train"])
        model.best_epoch_ = int(meta.get("best_epoch", 0))
        model._set_history(list(meta.get("history", [])))
        model.metrics_ = dict(meta.get("metrics", {}))
        model.fitted_ = True
        model._validate_loaded()  # may raise: the caller drops the half-made model
        model._arrays_changed()
        return model

    def _validate_loaded(self) -> None:
        """Consistency checks of a model built by `from_state` beyond the declared shapes (ValueError)."""

    def save(self, path: Any, *, metrics: dict | None = None) -> Any:
        """Write the fitted model to one file (zip of JSON + .npy, no pickle; atomic).
        Read it back with :func:`mfrec.load_model`."""
        from mfrec.persist import save_model  # persist imports nothing of the models: no cycle

        return save_model(self, path, metrics=metrics)

    # ------------------------------------------------------------------ prediction
    def _require_fitted(self) -> None:
        check_is_fitted(self)

    @property
    def users_(self) -> np.ndarray:
        """Raw user ids, in the row order of ``user_factors_``."""
        self._require_fitted()
        return self.user_map_.ids

    @property
    def items_(self) -> np.ndarray:
        self._require_fitted()
        return self.item_map_.ids

    @property
    def factors_(self) -> int:
        return int(self.item_factors_.shape[1])

    def _predict_indices(self, u: np.ndarray, i: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predictions for dense indices; -1 marks an unknown user or item (bias/mean fallback)."""
        u = np.ascontiguousarray(u, dtype=np.int64)
        i = np.ascontiguousarray(i, dtype=np.int64)
        trained_u, trained_i = self._trained()
        u = np.where((u >= 0) & trained_u[np.maximum(u, 0)], u, -1)
        i = np.where((i >= 0) & trained_i[np.maximum(i, 0)], i, -1)
        dots = np.empty(len(u), dtype=self.item_factors_.dtype)
        if self.item_factors_.shape[1] > 0:
            pair_dots(self.user_factors_, self.item_factors_, u, i, dots)
        else:
            dots[:] = 0
        known_u = u >= 0
        known_i = i >= 0
        pred = self.global_mean_ + dots.astype(np.float64)
        pred += np.where(known_u, self.user_bias_[np.where(known_u, u, 0)], 0.0)
        pred += np.where(known_i, self.item_bias_[np.where(known_i, i, 0)], 0.0)
        if not self._has_bias and not self._ranks_by_item_bias:  # no biases to fall back on: the mean
            pred = np.where(known_u & known_i, pred, self.train_mean_ if self.kind == "rating" else 0.0)
        if clip and self.kind == "rating":
            lo, hi = self.rating_scale_
            np.clip(pred, lo, hi, out=pred)
        return pred

    #: the model learns item biases without a mean and user biases (BPR: a user bias cancels in
    #: a pair): a user without information scores ``item_bias`` as the model's own formula says
    _ranks_by_item_bias: ClassVar[bool] = False

    def _trained(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the users and items that had training ratings (cached per ``seen_``)."""
        cache = getattr(self, "_trained_cache", None)
        if cache is None or cache[0] is not self.seen_:
            seen = self.seen_
            users = np.diff(seen.indptr) > 0
            items = np.bincount(seen.indices, minlength=seen.shape[1]) > 0
            self._trained_cache = cache = (seen, users, items)
        return cache[1], cache[2]

    @property
    def unknown_(self) -> dict:
        """``{"users": n, "items": n}``: how many ids of this thread's last ``predict`` /
        ``predict_ratings`` call fell back to the biases and mean. Per thread (threads calling
        ``predict`` concurrently never see each other's counts); prefer
        ``predict(..., return_unknown=True)``, which returns the counts with the predictions."""
        counts = _unknown_store().get(self)
        if counts is None:
            raise AttributeError(f"{type(self).__name__}.unknown_ is set by predict() (in this thread)")
        return dict(counts)

    @unknown_.setter
    def unknown_(self, counts: dict) -> None:
        _unknown_store()[self] = dict(counts)

    def _unknown_counts(self, u: np.ndarray, i: np.ndarray) -> dict:
        """Counts of the unknown or untrained users and items among dense indices (-1 unknown)."""
        trained_u, trained_i = self._trained()
        return {"users": int(((u < 0) | ~trained_u[np.maximum(u, 0)]).sum()),
                "items": int(((i < 0) | ~trained_i[np.maximum(i, 0)]).sum())}

    def _with_unknown(self, pred: np.ndarray, counts: dict, return_unknown: bool) -> Any:
        self.unknown_ = counts
        return (pred, dict(counts)) if return_unknown else pred

    def predict(self, users: Any, items: Any, *, clip: bool = True, return_unknown: bool = False) -> Any:
        """Predicted ratings for raw (user, item) id pairs, clipped to the training scale.

        Unknown users or items fall back to the biases and mean. With ``return_unknown=True``
        the result is ``(predictions, {"users": n, "items": n})``, how many there were; the same
        counts are readable in ``unknown_`` after the call (per thread).
        """
        self._require_fitted()
        clip, return_unknown = check_flag("clip", clip), check_flag("return_unknown", return_unknown)
        u = self.user_map_.lookup(users)
        i = self.item_map_.lookup(items)
        if len(u) != len(i):
            raise DataError(f"users ({len(u)}) and items ({len(i)}) differ in length")
        _refuse_missing_ids(users, u, "user")
        _refuse_missing_ids(items, i, "item")
        counts = self._unknown_counts(u, i)
        return self._with_unknown(self._predict_indices(u, i, clip=clip), counts, return_unknown)

    def predict_ratings(self, ratings: Ratings, *, clip: bool = True, return_unknown: bool = False) -> Any:
        """Predictions for every (user, item) pair of a Ratings set, in its order (with
        ``return_unknown=True`` also the unknown counts, as :meth:`predict`)."""
        self._require_fitted()
        clip, return_unknown = check_flag("clip", clip), check_flag("return_unknown", return_unknown)
        if ratings.user_map is self.user_map_ and ratings.item_map is self.item_map_:
            u, i = ratings.user_indices, ratings.item_indices
            counts = self._unknown_counts(u, i)
            return self._with_unknown(self._predict_indices(u, i, clip=clip), counts, return_unknown)
        return self.predict(ratings.raw_users, ratings.raw_items, clip=clip, return_unknown=return_unknown)

    def score(self, ratings: Ratings | pd.DataFrame) -> float:
        """RMSE on ``ratings`` (Ratings or a user/item/rating DataFrame; lower is better). A
        ranking model (ImplicitALS, BPR) scores preferences, not ratings: refused, as `evaluate`
        refuses its RMSE."""
        check_is_fitted(self)
        if self.kind != "rating":
            raise ValueError(f"{type(self).__name__} scores preferences, not ratings, so an RMSE would be "
                             "meaningless: use ranking metrics (mfrec.evaluate(model, test, metrics=['ndcg@10']))")
        ratings = as_ratings(ratings, "ratings")
        if len(ratings) == 0:
            raise DataError("no ratings to score: the data is empty")
        return rmse(self.predict_ratings(ratings), ratings.values.astype(np.float64))


def _check_memory(name: str, train: Ratings, factors: int, dtype: np.dtype) -> None:
    """A MemoryError before allocating factor matrices larger than the machine's memory (else
    ``factors=10**9`` gets the process killed by the operating system, with no message)."""
    from mfrec._memory import require_memory

    require_memory((train.n_users + train.n_items) * factors * dtype.itemsize, f"{name}(factors={factors})",
                   f" for its factor matrices ({train.n_users} users + {train.n_items} items)")


def _rating_range_note(train: Ratings) -> str:
    """A divergence message's note on the ratings when they span more than a rating scale does
    (a column of timestamps read as ratings, a value of 1e30)."""
    values = train.values
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 100:
        return ""
    return f". The training ratings range from {lo:g} to {hi:g}: is the rating column right, or a value wrong?"
