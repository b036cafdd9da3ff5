"""`BPR`: Bayesian personalized ranking (Rendle et al. 2009), pairwise ranking of chosen items.

Every training rating is a positive (filter the ratings first, e.g. keep ratings >= 4): BPR
learns that a user prefers each item they chose over a random item they did not, maximizing
``sum log sigmoid(x_u . (q_i - q_j) + b_i - b_j) - reg/2 (|x_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2)``
by SGD on uniformly sampled triples (one epoch = as many triples as positives), in parallel
(Hogwild) on a seeded Numba kernel (`mfrec.kernels.bpr`). Scores are preferences, not ratings;
recommend, fold-in, save/load and `mfrec.evaluate` (ranking metrics) are the shared ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.bpr import bpr_epoch
from mfrec.models.base import FactorModel, Trainer, float_param
from mfrec.models.params import Integral, Interval, Real
from mfrec.models.recommend import FoldIn
from mfrec.threads import blas_threads
from mfrec.models.registry import register_model

#: largest (rated x unrated) pair matrix a fold-in uses whole; past it the negatives are a seeded sample
FOLD_IN_PAIRS = 1 << 22


@register_model("bpr")
class BPR(FactorModel):
    """Pairwise ranking by SGD: preference ``b_i + x_u . q_i`` (no user bias: it cancels in a pair).

    Parameters: ``factors``, ``iterations`` (epochs; each draws as many triples as there are
    positives), ``learning_rate``, ``regularization`` (L2 applied at every update, as in
    implicit), ``init_std``, ``seed``, ``threads``, ``dtype``. With ``threads=1`` a fit is
    reproducible for a given seed; with more, the lock-free updates make it reproducible only
    statistically.

    Fold-in of a new user (``recommend_new``, ``fold_in``, ``add_user``) keeps the item factors
    fixed and maximizes the same objective over the user's vector, averaged over every pair (rated
    item, unrated item), by damped Newton steps (the objective is concave): no sampling noise,
    the same answer on every call (past `FOLD_IN_PAIRS` pairs the unrated items are a sample
    seeded by ``seed``). ``explain`` is exact: at the optimum ``reg * x`` is a sum of one term
    per rated item.
    """

    epochs_param = "iterations"
    _has_bias = False
    _ranks_by_item_bias = True  # a user without positives (zero vector) scores b_i, what BPR learned
    kind = "ranking"
    _parameter_constraints = {
        "iterations": [Interval(Integral, 1, None)],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        # > 0: the L2 term bounds the factors (and makes the fold-in objective strictly concave)
        "regularization": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        factors: int = 64,
        iterations: int = 50,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        init_std: float = 0.1,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_BPRTrainer":
        return _BPRTrainer(self, train, rng, dtype)

    # ---------------------------------------------------------------- fold-in
    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        # one user's products are small: one BLAS thread (more only wake threads, and on a busy
        # machine made a fold-in 15x slower, benchmarks/RESULTS.md section 9)
        with blas_threads(1):
            return self._fold_in_newton(idx, values, unknown)

    def _fold_in_newton(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        Q = self.item_factors_.astype(np.float64)
        b = self.item_bias_.astype(np.float64)
        trained = self._trained()[1]
        neg_mask = trained.copy()
        neg_mask[idx] = False
        neg = np.flatnonzero(neg_mask)
        k = Q.shape[1]
        if len(neg) == 0 or k == 0:
            return FoldIn(0.0, np.zeros(k, dtype=self.item_factors_.dtype), idx, values, unknown,
                          np.zeros((len(idx), k)), None)
        cap = max(1, FOLD_IN_PAIRS // len(idx))
        if len(neg) > cap:
            neg = np.sort(np.random.default_rng(self.seed).choice(neg, cap, replace=False))
        Qp, Qn = Q[idx], Q[neg]
        db = b[idx][:, None] - b[neg][None, :]  # m x N
        reg = float(self.regularization)
        n_pairs = float(len(idx) * len(neg))

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            D = (Qp @ x)[:, None] - (Qn @ x)[None, :] + db
            return float(-np.logaddexp(0.0, -D).sum() / n_pairs - 0.5 * reg * x @ x), D

        x = np.zeros(k)
        f, D = objective(x)
        for _ in range(25):
            sig = 0.5 * (1.0 + np.tanh(0.5 * D))  # sigmoid(D), stable
            Z = 1.0 - sig  # d log sigmoid / dD
            W = sig * Z
            grad = (Qp.T @ Z.sum(axis=1) - Qn.T @ Z.sum(axis=0)) / n_pairs - reg * x
            cross = Qp.T @ W @ Qn
            H = ((Qp.T * W.sum(axis=1)) @ Qp + (Qn.T * W.sum(axis=0)) @ Qn - cross - cross.T) / n_pairs
            H[np.diag_indices_from(H)] += reg
            step = np.linalg.solve(H, grad)  # Newton ascent direction (H is minus the Hessian)
            t = 1.0
            while True:  # backtracking: the objective must not drop
                f_new, D_new = objective(x + t * step)
                if f_new >= f - 1e-12 or t < 1e-4:
                    break
                t *= 0.5
            x, D, gain, f = x + t * step, D_new, f_new - f, f_new
            if abs(gain) < 1e-10 * max(1.0, abs(f)):
                break
        Z = 1.0 - 0.5 * (1.0 + np.tanh(0.5 * D))
        # reg * x = mean of z_ij (q_i - q_j): one term per rated item i (for explain)
        parts = (Z.sum(axis=1)[:, None] * Qp - Z @ Qn) / (n_pairs * reg)
        return FoldIn(0.0, x.astype(self.item_factors_.dtype), idx, values, unknown, parts, None)

    def _contributions(self, fold: FoldIn, chosen: np.ndarray) -> np.ndarray:
        """contrib[r, j] = q_r . part_j, the rated item j's share of ``x`` (the shares sum to ``x``
        at the optimum), so the contributions sum to the personal score ``x . q_r``."""
        return self.item_factors_[chosen].astype(np.float64) @ np.asarray(fold.solve).T


class _BPRTrainer(Trainer):
    """Factors, item biases and the positives (user-major CSR) of one BPR fit."""

    def __init__(self, model: BPR, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().__init__(model, train)
        self.init_arrays(rng, dtype, random_users=True)
        bu = train.by_user
        self.indptr = bu.indptr.astype(np.int64)
        self.indices = bu.indices.astype(np.int64)
        self.rows = np.repeat(np.arange(train.n_users, dtype=np.int64), np.diff(self.indptr))
        self.seed = int(rng.integers(0, 2**62))

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m = self.model
        dt = self.Q.dtype
        n = len(self.indices)
        loss, correct, skipped = bpr_epoch(self.indptr, self.indices, self.rows, self.P, self.Q, self.bi,
                                           float_param(m.learning_rate, dt), float_param(m.regularization, dt),
                                           np.uint64((self.seed + epoch * 0x9E3779B9) % 2**63), n, 32)
        return float(loss)  # the reported loss is the mean log loss of the epoch's triples (no penalty)

    def final(self) -> dict[str, np.ndarray]:
        # items drawn only as negatives (no positive: untrained) rank like unknown items
        self.zero_untrained(items=(self.Q, self.bi))
        return super().final()
