"""The shared estimator base: parameters, fit loop, history, early stopping, predict.

Every model is ``global_mean + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]``
(a model without biases keeps them at zero; `Baseline` has zero factors), so prediction,
recommendation, fold-in and save/load are written once here and in `mfrec.recommend`.
"""

from __future__ import annotations

import inspect
import numbers
import threading
import time
import weakref
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.ratings import Ratings
from mfrec.errors import DataError, NotFittedError, TrainingDivergedError
from mfrec.kernels.predict import pair_dots
from mfrec.kernels.random import uniform_fill
from mfrec.recommend import RecommenderMixin
from mfrec.threads import kernel_threads

EpochCallback = Callable[[dict], None]

#: per thread, per model: the unknown counts of that thread's last predict call (see ``unknown_``)
_UNKNOWN = threading.local()


def _unknown_store() -> "weakref.WeakKeyDictionary[Any, dict]":
    store = getattr(_UNKNOWN, "store", None)
    if store is None:
        store = _UNKNOWN.store = weakref.WeakKeyDictionary()
    return store


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value))


def as_ratings(data: Any, what: str = "train") -> Ratings:
    """Accept Ratings, or a DataFrame with columns user/item/rating."""
    if isinstance(data, Ratings):
        return data
    if isinstance(data, pd.DataFrame):
        return Ratings.from_dataframe(data, source=f"{what} DataFrame")
    raise TypeError(f"{what} must be mfrec.Ratings or a pandas DataFrame, got {type(data).__name__}")


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


class Estimator:
    """scikit-learn style parameter handling: ``get_params``/``set_params`` from ``__init__``."""

    @classmethod
    def param_names(cls) -> list[str]:
        names = cls.__dict__.get("_param_names_cache")  # per class, not inherited
        if names is None:
            sig = inspect.signature(cls.__init__)
            names = [p.name for p in sig.parameters.values()
                     if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            cls._param_names_cache = names
        return list(names)

    @classmethod
    def _param_spec(cls) -> dict[str, tuple[Any, bool]]:
        """Per ``__init__`` parameter: (default, whether None is allowed). A bool default makes
        the parameter a real-bool flag; None is allowed when the type hint says ``| None`` or
        the default is None (and for ``seed``: fresh randomness)."""
        spec = cls.__dict__.get("_param_spec_cache")
        if spec is None:
            sig = inspect.signature(cls.__init__)
            spec = {p.name: (p.default, p.default is None or p.name == "seed" or "None" in str(p.annotation))
                    for p in sig.parameters.values() if p.name != "self" and p.default is not inspect.Parameter.empty}
            cls._param_spec_cache = spec
        return spec

    def _store_params(self, values: dict[str, Any]) -> None:
        """Set every ``__init__`` parameter as an attribute; models call it with ``locals()``."""
        for name in self.param_names():
            setattr(self, name, values[name])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> "Estimator":
        valid = set(self.param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def clone(self) -> "Estimator":
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class FactorModel(RecommenderMixin, Estimator):
    """Base of every rating model. Subclasses implement ``_setup`` and ``_epoch``.

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
    #: extra fitted arrays (beyond the five shared ones) that define the model, for save/load
    _extra_arrays: tuple[str, ...] = ()
    #: every fitted array, name -> (kind, shape), checked by save/load (mfrec.persist.check_array_headers):
    #: "factor" is the ``dtype`` parameter's float type; dims are "users", "items", int parameters,
    #: symbols shared between arrays, "a*b", "a+b"
    _array_specs: dict[str, tuple[str, tuple]] = {
        "user_factors_": ("factor", ("users", "factors")), "item_factors_": ("factor", ("items", "factors")),
        "user_bias_": ("float", ("users",)), "item_bias_": ("float", ("items",))}

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
        train = as_ratings(train, "train")
        if len(train) == 0:
            raise DataError("no ratings to train on: the training data is empty")
        validation = None if validation is None else as_ratings(validation, "validation")
        if validation is not None and len(validation) == 0:
            raise DataError("no validation ratings: the validation data is empty")
        patience = getattr(self, "early_stopping", None)
        if patience is not None and validation is None:
            raise ValueError("early_stopping needs validation data: fit(train, validation=...)")
        self.validate_params()
        self.user_map_ = train.user_map
        self.item_map_ = train.item_map
        # the declared scale (kept by subsets and splits), else the observed range
        self.rating_scale_ = train.rating_scale if train.rating_scale is not None else train.rating_range
        self.global_mean_ = float(train.global_mean) if self._has_bias else 0.0
        self.train_mean_ = float(train.global_mean)
        self.n_train_ = len(train)
        self.seen_ = train.seen  # which items each user rated (0/1 CSR)
        dtype = np.dtype(getattr(self, "dtype", "float32"))
        rng = np.random.default_rng(getattr(self, "seed", 0))
        val_idx = None
        if validation is not None:
            val_idx = (self.user_map_.lookup(validation.raw_users) if validation.user_map is not train.user_map
                       else validation.user_indices.astype(np.int64),
                       self.item_map_.lookup(validation.raw_items) if validation.item_map is not train.item_map
                       else validation.item_indices.astype(np.int64),
                       validation.values.astype(np.float64))
        records: list[dict] = []
        best = (np.inf, None, -1)
        since_best = 0
        n_epochs = int(getattr(self, self.epochs_param))
        with kernel_threads(getattr(self, "threads", None)):
            self._setup(train, rng, dtype)
            self._zero_untrained_rows(train)
            for epoch in range(n_epochs):
                t0 = time.perf_counter()
                sse = self._epoch(epoch, train, rng)
                seconds = time.perf_counter() - t0
                if not np.isfinite(sse):
                    raise TrainingDivergedError(
                        f"{type(self).__name__} diverged at epoch {epoch + 1} (training error is {sse}); "
                        "lower the learning rate or raise the regularization")
                rec = {
                    "epoch": epoch + 1,
                    "loss": (sse + self._penalty()) / len(train),
                    "train_rmse": float(np.sqrt(sse / len(train))),
                    "seconds": seconds,
                }
                if val_idx is not None:
                    self._finalize(train)
                    pred = self._predict_indices(val_idx[0], val_idx[1])
                    rec["validation_rmse"] = float(np.sqrt(np.mean((pred - val_idx[2]) ** 2)))
                records.append(rec)
                if callback is not None:
                    callback(rec)
                if val_idx is not None and patience is not None:
                    if rec["validation_rmse"] < best[0] - 1e-6:
                        best = (rec["validation_rmse"], self._snapshot(), epoch + 1)
                        since_best = 0
                    else:
                        since_best += 1
                        if since_best >= patience:
                            break
            if best[1] is not None:
                self._restore(best[1])
            self._finalize(train)
            self._end_fit()
        self._set_history(records)
        self.best_epoch_ = best[2] if best[1] is not None else len(records)
        self.fitted_ = True
        return self

    @property
    def history_(self) -> pd.DataFrame:
        """One row per epoch: ``epoch``, ``loss``, ``train_rmse``, ``seconds`` (and
        ``validation_rmse`` when fitted with validation data). Built from the records ``fit`` keeps
        on first access (a DataFrame costs ~0.3 ms, 1% of a small fit)."""
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

    #: string-choice parameters of the class and their allowed values (merged over the MRO)
    _param_choices: dict[str, tuple[str, ...]] = {}
    #: integer parameters and their lower bounds (None allowed when the default is None, and
    #: for ``seed``: fresh randomness)
    _int_params: dict[str, int] = {"factors": 0, "epochs": 1, "iterations": 1, "cg_steps": 1, "batch_size": 1,
                                   "burn_in": 0, "early_stopping": 1, "threads": 1, "seed": 0}

    @classmethod
    def _choices(cls) -> dict[str, tuple[str, ...]]:
        merged: dict[str, tuple[str, ...]] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("_param_choices", {}))
        return merged

    def validate_params(self) -> None:
        """Validate hyperparameters before fitting: ValueError naming the bad one.

        One table-driven pass over every model's parameters: integers (``_int_params``: real
        ints, not bools or floats, at least the bound; ``None`` where `_param_spec` allows it),
        flags (a ``bool`` default requires a real bool: ``weighted="yes"`` is refused), string
        choices (``_param_choices``), and by naming convention ``*regularization`` / ``*weight``
        / ``alpha`` / ``init_std`` (finite >= 0), ``*learning_rate`` (finite > 0),
        ``learning_rate_decay`` (in (0, 1]) and ``dtype`` (float32 or float64)."""
        spec = self._param_spec()
        choices = self._choices()
        for name, value in self.get_params().items():
            default, nullable = spec.get(name, (inspect.Parameter.empty, False))
            if value is None and nullable:
                continue
            if name in self._int_params:
                low = self._int_params[name]
                if not _is_int(value) or value < low:
                    none = "None or " if nullable else ""
                    raise ValueError(f"{name} must be {none}an integer >= {low}, got {value!r}")
            elif isinstance(default, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"{name} must be True or False, got {value!r}")
            elif name in choices:
                if not isinstance(value, str) or value not in choices[name]:
                    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices[name]))}, got {value!r}")
            elif name.endswith("regularization") or name.endswith("_weight") or name in ("alpha", "init_std"):
                if not (_is_real(value) and value >= 0):
                    raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            elif name.endswith("learning_rate") or name == "noise_precision":
                if not (_is_real(value) and value > 0):
                    raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
            elif name == "learning_rate_decay":
                if not (_is_real(value) and 0 < value <= 1):
                    raise ValueError(f"learning_rate_decay must be in (0, 1], got {value!r}")
            elif name == "dtype":
                try:
                    ok = np.dtype(value) in (np.dtype(np.float32), np.dtype(np.float64))
                except TypeError:
                    ok = False
                if not ok:
                    raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")

    def _setup(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        raise NotImplementedError

    def _zero_untrained_rows(self, train: Ratings) -> None:
        """Users/items in the id maps without a training rating keep zero factors and biases, so
        they predict exactly like unknown ids (the bias/mean fallback), not from random init."""
        for counts, names in ((train.user_counts, ("user_factors_", "user_bias_", "explicit_user_factors_")),
                              (train.item_counts, ("item_factors_", "item_bias_", "implicit_factors_"))):
            empty = counts == 0
            if empty.any():
                for name in names:
                    if hasattr(self, name):
                        getattr(self, name)[empty] = 0

    def _epoch(self, epoch: int, train: Ratings, rng: np.random.Generator) -> float:
        """Run one epoch/iteration; return the training sum of squared errors."""
        raise NotImplementedError

    def _penalty(self) -> float:
        """The regularization term of the training objective (for the reported loss)."""
        return self._penalty_of(_sq_norm(self._storage("user_factors_")), _sq_norm(self._storage("item_factors_")),
                                _sq_norm(self.user_bias_), _sq_norm(self.item_bias_))

    def _penalty_of(self, user_sq: float, item_sq: float, user_bias_sq: float, item_bias_sq: float) -> float:
        """``regularization (|P|^2 + |Q|^2) + bias_regularization (|b_u|^2 + |b_i|^2)`` from the
        squared norms."""
        reg = float(getattr(self, "regularization", 0.0))
        breg = getattr(self, "bias_regularization", None)
        breg = reg if breg is None else float(breg)
        return reg * (user_sq + item_sq) + breg * (user_bias_sq + item_bias_sq)

    def _storage(self, name: str) -> np.ndarray:
        """The array the kernels update for the fitted attribute ``name`` (models that train in
        other storage than they publish override this)."""
        return getattr(self, name)

    def _end_fit(self) -> None:
        """Called once training is over, after the last `_finalize`."""

    def _finalize(self, train: Ratings) -> None:
        """Derive prediction arrays from the training state (SVD++ overrides)."""

    def _state_names(self) -> tuple[str, ...]:
        return ("user_factors_", "item_factors_", "user_bias_", "item_bias_") + self._extra_arrays

    def _snapshot(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in self._state_names()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _init_factors(self, rng: np.random.Generator, n: int, k: int, dtype: np.dtype, mean: float = 0.0,
                      out: np.ndarray | None = None) -> np.ndarray:
        """Random ``(n, k)`` factors (uniform, ``init_std`` spread around ``mean``); with ``out``
        (an ``(n, >= k)`` array, e.g. padded rows) into its first ``k`` columns, the same values."""
        std = float(getattr(self, "init_std", 0.1))
        if out is None:
            out = np.empty((n, k), dtype=dtype)
        uniform_fill(out, k, np.uint64(rng.integers(0, 2**63)), mean, std)
        return out

    # ------------------------------------------------------------------ prediction
    def _require_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")

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
        if not self._has_bias:  # no biases to fall back on: an unknown side predicts the mean
            pred = np.where(known_u & known_i, pred, self.train_mean_ if self.kind == "rating" else 0.0)
        if clip and self.kind == "rating":
            lo, hi = self.rating_scale_
            np.clip(pred, lo, hi, out=pred)
        return pred

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
        if ratings.user_map is self.user_map_ and ratings.item_map is self.item_map_:
            u, i = ratings.user_indices, ratings.item_indices
            counts = self._unknown_counts(u, i)
            return self._with_unknown(self._predict_indices(u, i, clip=clip), counts, return_unknown)
        return self.predict(ratings.raw_users, ratings.raw_items, clip=clip, return_unknown=return_unknown)

    def score(self, ratings: Ratings | pd.DataFrame) -> float:
        """RMSE on ``ratings`` (Ratings or a user/item/rating DataFrame; lower is better)."""
        ratings = as_ratings(ratings, "ratings")
        if len(ratings) == 0:
            raise DataError("no ratings to score: the data is empty")
        pred = self.predict_ratings(ratings)
        return float(np.sqrt(np.mean((pred - ratings.values.astype(np.float64)) ** 2)))

    def save(self, path: Any, *, metrics: dict | None = None) -> Any:
        """Write the fitted model to one file (zip of JSON + .npy, no pickle; atomic).
        Read it back with :func:`mfrec.load_model`."""
        from mfrec.persist import save_model

        return save_model(self, path, metrics=metrics)

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        """Every array that defines the fitted model (for save/load)."""
        return {name: getattr(self, name) for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_")
                + self._extra_arrays}


def _sq_norm(a: np.ndarray) -> float:
    """Sum of squares without a float64 copy (BLAS dot of the flat array)."""
    flat = np.ascontiguousarray(a).ravel()
    return float(np.dot(flat, flat))


def float_param(value: Any, dtype: np.dtype) -> Any:
    """A hyperparameter as a scalar of the factor dtype (keeps Numba loops in float32)."""
    return dtype.type(value)
