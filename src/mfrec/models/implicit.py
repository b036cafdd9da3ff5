"""`ImplicitALS`: which items a person chose, not how they rated them (Hu, Koren & Volinsky 2008).

Rating models predict ratings well but rank universally acclaimed films first for everybody: the
taste is in *which* items a person rates. ImplicitALS factorizes the binary "rated" matrix with
confidence weights (``1 + alpha * rating``, or ``1 + alpha`` with ``confidence="binary"``) and
ranks by the predicted preference. It is the model mfrec recommends for recommending to people
(`mfrec demo` uses it); its scores are preferences, not ratings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from mfrec.data.ratings import Ratings
from mfrec.kernels.als import implicit_half_step
from mfrec.errors import DataError
from mfrec.models.base import float_param, FactorModel, Trainer
from mfrec.models.params import Integral, Interval, Options, Real
from mfrec.models.recommend import FoldIn
from mfrec.models.registry import register_model


@register_model("implicit-als")
class ImplicitALS(FactorModel):
    """Implicit-feedback ALS: preference ``x_u . y_i`` with confidence-weighted squared loss over
    all (user, item) pairs, using the shared ``Y^T Y`` trick; each row is solved by a few
    warm-started conjugate-gradient steps (``solver="cg"``, default) or exactly (``"cholesky"``).

    Fold-in of a new user caches the Cholesky factor of ``Y^T Y + lam I`` (the item-side Gram
    term shared by every user), so a request with ``m`` ratings costs an ``m x m`` solve
    (Woodbury) plus one matrix-vector product over the items.
    """

    epochs_param = "iterations"
    _has_bias = False
    kind = "ranking"
    _parameter_constraints = {
        "factors": [Interval(Integral, 1, None)],  # no biases: with no factors every score would be 0
        "iterations": [Interval(Integral, 1, None)],
        "regularization": [Interval(Real, 0, None)],
        "alpha": [Interval(Real, 0, None)],
        "confidence": [Options("rating", "binary")],
        "solver": [Options("cholesky", "cg")],
        "cg_steps": [Interval(Integral, 1, None)],
    }

    def __init__(
        self,
        *,
        factors: int = 100,
        iterations: int = 15,
        regularization: float = 10.0,
        alpha: float = 2.0,
        confidence: str = "binary",
        solver: str = "cg",
        cg_steps: int = 3,
        init_std: float = 0.01,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _confidences(self, values: np.ndarray, what: str = "ratings") -> np.ndarray:
        """Confidence weights ``1 + alpha * r`` (``1 + alpha`` with ``confidence="binary"``).
        With ``confidence="rating"`` every rating must be > 0 (a zero or negative rating would
        give a weight of at most 1, i.e. not more confident than an unrated item, or negative):
        DataError otherwise."""
        if self.confidence == "binary":
            return np.full(len(values), 1.0 + float(self.alpha))
        v = np.asarray(values, dtype=np.float64)
        bad = ~(v > 0)
        if bad.any():
            raise DataError(f"ImplicitALS(confidence='rating') needs ratings > 0 (they are confidence weights "
                            f"1 + alpha * rating); {what} has {int(bad.sum())} rating(s) <= 0, e.g. {float(v[bad][0]):g}. "
                            "Use confidence='binary', or shift the ratings")
        return 1.0 + float(self.alpha) * v

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_ImplicitTrainer":
        return _ImplicitTrainer(self, train, rng, dtype)

    def _arrays_changed(self) -> None:
        self._gram_factor = None  # the fold-in cache depends on the item factors

    # ---------------------------------------------------------------- fold-in with a cached Gram
    def _gram(self):
        """Cholesky factor of ``Y^T Y + lam I`` (cached until the next fit, or another ``lam``)."""
        lam = float(self.regularization)
        cached = getattr(self, "_gram_factor", None)
        if cached is None or cached[0] != lam:
            Q = self.item_factors_.astype(np.float64)
            G = Q.T @ Q
            G[np.diag_indices_from(G)] += lam
            cached = self._gram_factor = (lam, sla.cho_factor(G, lower=True, check_finite=False))
        return cached[1]

    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        c = self._confidences(values, "the new user's ratings")
        U = self.item_factors_[idx].astype(np.float64)  # m x k
        G = self._gram()
        b = U.T @ c
        Ginv_b = sla.cho_solve(G, b, check_finite=False)
        Ginv_Ut = sla.cho_solve(G, U.T, check_finite=False)  # k x m
        # Woodbury: (G + U^T D U)^-1 b with D = diag(c - 1)
        small = np.diag(1.0 / np.maximum(c - 1.0, 1e-12)) + U @ Ginv_Ut
        x = Ginv_b - Ginv_Ut @ np.linalg.solve(small, U @ Ginv_b)
        return FoldIn(0.0, x.astype(self.item_factors_.dtype), idx, values, unknown, None, c)

    def _contributions(self, fold: FoldIn, chosen: np.ndarray) -> np.ndarray:
        """contrib[r, j] = c_j * y_r^T A^-1 y_j: the score of item r is linear in the c_j y_j terms."""
        U = self.item_factors_[fold.item_indices].astype(np.float64)
        G = self._gram()
        c = fold.targets
        Ginv_Ut = sla.cho_solve(G, U.T, check_finite=False)
        small = np.diag(1.0 / np.maximum(c - 1.0, 1e-12)) + U @ Ginv_Ut
        Ainv_Ut = Ginv_Ut - Ginv_Ut @ np.linalg.solve(small, U @ Ginv_Ut)  # A^-1 U^T
        Yc = self.item_factors_[chosen].astype(np.float64)
        return (Yc @ Ainv_Ut) * c[None, :]


class _ImplicitTrainer(Trainer):
    """Both sides' factors and the confidence weights of the training entries."""

    def __init__(self, model: ImplicitALS, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().__init__(model, train)
        bu, bi = train.by_user, train.by_item
        # the confidences first: bad ratings are refused before anything is allocated or changed
        self.conf_user = model._confidences(bu.data, "the training data")
        self.conf_item = model._confidences(bi.data, "the training data")
        if model.solver == "cg":  # the CG works in the factors' dtype (mfrec.kernels.als._implicit_cg_row)
            self.conf_user, self.conf_item = self.conf_user.astype(dtype), self.conf_item.astype(dtype)
        self.init_arrays(rng, dtype, random_users=True)

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m = self.model
        lam = float(m.regularization)
        bu, bi = self.train.by_user, self.train.by_item
        steps = int(m.cg_steps)

        cg = m.solver == "cg"

        def half(csr, conf, other, out, want_loss):
            G = other.astype(np.float64)
            G = G.T @ G  # summed in float64; the CG then works in the factors' dtype
            reg = float_param(lam, other.dtype) if cg else lam
            return implicit_half_step(csr.indptr, csr.indices, conf, other, G.astype(other.dtype) if cg else G, out,
                                      reg, cg, steps, want_loss)

        # the epoch's training error is the one after its item half-step: the user half skips it
        half(bu, self.conf_user, self.Q, self.P, False)
        return half(bi, self.conf_item, self.P, self.Q, True)
