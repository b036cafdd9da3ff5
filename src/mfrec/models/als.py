"""`ALS`: alternating least squares with biases, exact Cholesky or conjugate-gradient solves."""

from __future__ import annotations

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.als import als_half_step
from mfrec.models.base import FactorModel
from mfrec.models.registry import register_model


@register_model("als")
class ALS(FactorModel):
    """``mu + b_u + b_i + P[u] . Q[i]`` by alternating ridge regressions, Numba-parallel over rows.

    Each half-step solves, for every user (then item), the ridge regression of its ratings minus
    the mean and the other side's bias on ``[1, q_j]``: the bias and factors together, exactly.
    ``solver="cholesky"`` is the exact solve every iteration; ``solver="cg"`` (default) takes
    ``cg_steps`` conjugate-gradient steps per row warm-started at the previous solution (twice as
    many in the first user step, which starts from zero): O(n k) per row instead of O(n k^2 + k^3),
    the same accuracy on MovieLens, and it scales to 25M ratings. ``weighted=True`` is ALS-WR
    (Zhou et al. 2008): lambda scaled by each row's number of ratings.
    """

    epochs_param = "iterations"
    _param_choices = {"solver": ("cholesky", "cg")}

    def __init__(
        self,
        *,
        factors: int = 100,
        iterations: int = 10,
        regularization: float = 15.0,
        bias_regularization: float | None = 5.0,
        weighted: bool = False,
        use_bias: bool = True,
        solver: str = "cg",
        cg_steps: int = 3,
        init_std: float = 0.1,
        early_stopping: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    @property
    def _has_bias(self) -> bool:  # type: ignore[override]
        return bool(self.use_bias)

    def _setup(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        k = int(self.factors)
        self.user_factors_ = np.zeros((train.n_users, k), dtype=dtype)
        self.item_factors_ = self._init_factors(rng, train.n_items, k, dtype)
        self.user_bias_ = np.zeros(train.n_users, dtype=dtype)
        self.item_bias_ = np.zeros(train.n_items, dtype=dtype)

    def _lambdas(self) -> tuple[float, float]:
        lam = float(self.regularization)
        lam_b = lam if self.bias_regularization is None else float(self.bias_regularization)
        return lam, lam_b

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        lam, lam_b = self._lambdas()
        scale = n_ratings if self.weighted else 1.0
        return lam * scale, lam_b * scale

    def _epoch(self, epoch: int, train: Ratings, rng: np.random.Generator) -> float:
        lam, lam_b = self._lambdas()
        use_cg = self.solver == "cg"
        # the first user step starts from zero factors: give CG twice the steps there
        steps = int(self.cg_steps) * (2 if epoch == 0 else 1)
        bu, bi = train.by_user, train.by_item
        als_half_step(bu.indptr, bu.indices, bu.data, self.item_factors_, self.item_bias_, self.global_mean_,
                      self.user_factors_, self.user_bias_, lam, lam_b, bool(self.use_bias), bool(self.weighted),
                      use_cg, steps)
        return als_half_step(bi.indptr, bi.indices, bi.data, self.user_factors_, self.user_bias_,
                             self.global_mean_, self.item_factors_, self.item_bias_, lam, lam_b,
                             bool(self.use_bias), bool(self.weighted), use_cg, int(self.cg_steps))
