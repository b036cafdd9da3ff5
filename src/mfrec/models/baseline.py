"""`Baseline`: global mean + regularized user and item biases, fitted by ALS (the yardstick)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.als import bias_als_step
from mfrec.models.base import FactorModel, Trainer
from mfrec.models.params import Integral, Interval, Real
from mfrec.models.registry import register_model


@register_model("baseline")
class Baseline(FactorModel):
    """``mu + b_u + b_i``, alternating closed-form updates (as Surprise's BaselineOnly with ALS).

    ``b_i = sum_u (r - mu - b_u) / (item_regularization + n_i)`` then the same for users.
    """

    epochs_param = "iterations"
    _parameter_constraints = {
        "iterations": [Interval(Integral, 1, None)],
        "user_regularization": [Interval(Real, 0, None)],
        "item_regularization": [Interval(Real, 0, None)],
    }
    _array_specs = {**FactorModel._array_specs, "user_factors_": ("factor", ("users", 0)),
                    "item_factors_": ("factor", ("items", 0))}

    def __init__(
        self,
        *,
        iterations: int = 10,
        user_regularization: float = 15.0,
        item_regularization: float = 10.0,
        early_stopping: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """No factors; the bias is the user half-step's: (sum of residuals) / (user_regularization + n)."""
        return 0.0, float(self.user_regularization)

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_BaselineTrainer":
        return _BaselineTrainer(self, train, dtype)


class _BaselineTrainer(Trainer):
    def __init__(self, model: Baseline, train: Ratings, dtype: np.dtype) -> None:
        super().__init__(model, train)
        self.bu = np.zeros(train.n_users, dtype=np.float64)
        self.bi = np.zeros(train.n_items, dtype=np.float64)
        self.P = np.zeros((train.n_users, 0), dtype=dtype)
        self.Q = np.zeros((train.n_items, 0), dtype=dtype)

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m, train = self.model, self.train
        bi, bu = train.by_item, train.by_user
        bias_als_step(bi.indptr, bi.indices, bi.data, self.bu, self.mu, self.bi, float(m.item_regularization))
        bias_als_step(bu.indptr, bu.indices, bu.data, self.bi, self.mu, self.bu, float(m.user_regularization))
        resid = train.values - (self.mu + self.bu[train.user_indices] + self.bi[train.item_indices])
        return float(resid @ resid)

    def penalty(self) -> float:
        m = self.model
        return float(m.user_regularization * self.bu @ self.bu + m.item_regularization * self.bi @ self.bi)
