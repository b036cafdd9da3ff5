"""`ALS`: alternating least squares with biases, exact Cholesky or conjugate-gradient solves."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.als import als_half_step
from mfrec.models.base import FactorModel, Trainer, sq_norm, ridge_penalty
from mfrec.models.params import Integral, Interval, Options, Real
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
    _parameter_constraints = {
        "iterations": [Interval(Integral, 1, None)],
        "regularization": [Interval(Real, 0, None)],
        "bias_regularization": [None, Interval(Real, 0, None)],
        "weighted": [bool],
        "use_bias": [bool],
        "solver": [Options("cholesky", "cg")],
        "cg_steps": [Interval(Integral, 1, None)],
    }

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

    def _lambdas(self) -> tuple[float, float]:
        return float(self.regularization), float(self._param("bias_regularization"))

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """ALS penalizes each row once (ALS-WR: once per rating): lambda = reg (reg * n)."""
        lam, lam_b = self._lambdas()
        scale = n_ratings if self.weighted else 1.0
        return lam * scale, lam_b * scale

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_ALSTrainer":
        return _ALSTrainer(self, train, rng, dtype)


class _ALSTrainer(Trainer):
    def __init__(self, model: ALS, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().__init__(model, train)
        self.init_arrays(rng, dtype, random_users=False)

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m = self.model
        lam, lam_b = m._lambdas()
        use_cg = m.solver == "cg"
        # the first user step starts from zero factors: give CG twice the steps there
        steps = int(m.cg_steps) * (2 if epoch == 0 else 1)
        bu, bi = self.train.by_user, self.train.by_item
        als_half_step(bu.indptr, bu.indices, bu.data, self.Q, self.bi, self.mu, self.P, self.bu, lam, lam_b,
                      bool(m.use_bias), bool(m.weighted), use_cg, steps)
        return als_half_step(bi.indptr, bi.indices, bi.data, self.P, self.bu, self.mu, self.Q, self.bi, lam, lam_b,
                             bool(m.use_bias), bool(m.weighted), use_cg, int(m.cg_steps))

    def penalty(self) -> float:
        return ridge_penalty(self.model, sq_norm(self.P), sq_norm(self.Q), sq_norm(self.bu), sq_norm(self.bi))
