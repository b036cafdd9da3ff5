"""`Baseline`: global mean + regularized user and item biases, fitted by ALS (the yardstick)."""

from __future__ import annotations

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.als import bias_als_step
from mfrec.models.base import FactorModel
from mfrec.models.registry import register_model


@register_model("baseline")
class Baseline(FactorModel):
    """``mu + b_u + b_i``, alternating closed-form updates (as Surprise's BaselineOnly with ALS).

    ``b_i = sum_u (r - mu - b_u) / (item_regularization + n_i)`` then the same for users.
    """

    epochs_param = "iterations"
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

    def _setup(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        self.user_bias_ = np.zeros(train.n_users, dtype=np.float64)
        self.item_bias_ = np.zeros(train.n_items, dtype=np.float64)
        self.user_factors_ = np.zeros((train.n_users, 0), dtype=dtype)
        self.item_factors_ = np.zeros((train.n_items, 0), dtype=dtype)

    def _epoch(self, epoch: int, train: Ratings, rng: np.random.Generator) -> float:
        bi, bu = train.by_item, train.by_user
        bias_als_step(bi.indptr, bi.indices, bi.data, self.user_bias_, self.global_mean_, self.item_bias_,
                      float(self.item_regularization))
        bias_als_step(bu.indptr, bu.indices, bu.data, self.item_bias_, self.global_mean_, self.user_bias_,
                      float(self.user_regularization))
        resid = train.values - (self.global_mean_ + self.user_bias_[train.user_indices] + self.item_bias_[train.item_indices])
        return float(resid @ resid)

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        return 0.0, float(self.user_regularization)

    def _penalty(self) -> float:
        return float(self.user_regularization * self.user_bias_ @ self.user_bias_
                     + self.item_regularization * self.item_bias_ @ self.item_bias_)
