"""`BayesianMF`: Bayesian probabilistic matrix factorization with biases, by Gibbs sampling."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.errors import InvalidParameterError
from mfrec.kernels.bayes import gibbs_half_step
from mfrec.models.base import FactorModel, Trainer
from mfrec.models.params import Integral, Interval, Real
from mfrec.models.recommend import FoldIn
from mfrec.models.registry import register_model


def sample_wishart(scale: np.ndarray, dof: float, rng: np.random.Generator) -> np.ndarray:
    """One draw from Wishart(scale, dof) by the Bartlett decomposition."""
    d = scale.shape[0]
    L = np.linalg.cholesky(scale)
    A = np.tril(rng.standard_normal((d, d)), -1)
    A[np.diag_indices(d)] = np.sqrt(rng.chisquare(dof - np.arange(d)))
    LA = L @ A
    return LA @ LA.T


def sample_normal_wishart(X: np.ndarray, rng: np.random.Generator, beta0: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw the factor prior (mean, precision) given the rows ``X`` (n x k): the conjugate
    Normal-Wishart posterior with prior mean 0, ``beta0``, ``W0 = I``, ``nu0 = k`` (BPMF)."""
    n, k = X.shape
    xbar = X.mean(axis=0)
    centered = X - xbar
    beta = beta0 + n
    w_inv = np.eye(k) + centered.T @ centered + (beta0 * n / beta) * np.outer(xbar, xbar)
    w = np.linalg.inv(w_inv)
    precision = sample_wishart(0.5 * (w + w.T), k + n, rng)
    chol = np.linalg.cholesky(beta * precision)
    mean = n * xbar / beta + np.linalg.solve(chol.T, rng.standard_normal(k))
    return mean, precision


#: the largest precision a loaded model may hold (a trained one stays far below: noise ~1.5,
#: priors of factors ~1-100)
MAX_PRECISION = 1e12


class PosteriorDraws:
    """Shared by the Gibbs-sampled models, whose fitted arrays hold stored posterior draws side by
    side (one ``sample_noise_precision_`` entry per draw, plus the precision arrays named in
    ``_precision_arrays``)."""

    _precision_arrays: tuple[str, ...] = ()
    sample_noise_precision_: np.ndarray

    _parameter_constraints = {
        "factors": [Interval(Integral, 1, None)],
        "iterations": [Interval(Integral, 1, None)],
        "burn_in": [Interval(Integral, 0, None)],
        "noise_precision": [None, Interval(Real, 0, None, closed="neither")],
    }

    def _check_param_relations(self) -> None:
        if self.burn_in >= int(self.iterations):
            raise InvalidParameterError(f"burn_in ({self.burn_in}) must be smaller than iterations "
                                        f"({self.iterations}): no draw would be kept")

    def _validate_loaded(self) -> None:
        """After load (mfrec.persist): at least one stored draw, positive precisions no larger
        than `MAX_PRECISION`, and precision matrices symmetric positive definite (a crafted file
        with a precision of 1e300 loaded, then broke every fold-in)."""
        names = ("sample_noise_precision_", *self._precision_arrays)
        if self.n_draws_ < 1 or any((getattr(self, name) <= 0).any() for name in names if getattr(self, name).ndim < 3):
            raise ValueError(f"{type(self).__name__} needs at least one kept draw with positive precisions")
        for name in names:
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if not (np.abs(a) <= MAX_PRECISION).all():
                raise ValueError(f"{type(self).__name__}: {name} holds a precision beyond {MAX_PRECISION:g}")
            if a.ndim == 3:
                if not np.allclose(a, np.transpose(a, (0, 2, 1)), rtol=1e-6, atol=1e-8):
                    raise ValueError(f"{type(self).__name__}: {name} holds a precision matrix that is not symmetric")
                try:
                    np.linalg.cholesky(a)
                except np.linalg.LinAlgError:
                    raise ValueError(f"{type(self).__name__}: {name} holds a precision matrix that is not "
                                     "positive definite") from None

    @property
    def n_draws_(self) -> int:
        """How many stored posterior draws the predictor averages."""
        return int(self.sample_noise_precision_.shape[0])


@register_model("bayesian-mf")
class BayesianMF(PosteriorDraws, FactorModel):
    """``mu + b_u + b_i + P[u] . Q[i]`` with the posterior averaged over Gibbs samples (BPMF,
    Salakhutdinov & Mnih 2008, plus biases).

    Normal priors on factors and biases, Normal-Wishart hyperpriors on the factor priors and Gamma
    hyperpriors on the bias precisions: no regularization to tune. The noise precision
    ``noise_precision`` (1 / noise variance of a rating) is fixed at 1.5: chosen on validation
    carve-outs of ml-100k u1 and ml-latest-small (both picked 1.5 of 1.0-2.0; see
    benchmarks/tune_best.py). ``None`` samples it from its Gamma posterior, the textbook choice,
    which settles near 1 / training MSE (~2.5), is overconfident and was 0.004-0.009 RMSE worse
    on both carve-outs. Each sweep draws the hyperparameters, then every
    user (bias and factors jointly, a (k+1) x (k+1) Cholesky per row, Numba-parallel), then the
    same for items. After ``burn_in`` sweeps every sweep's draw is kept; the prediction is the
    posterior mean over the kept draws, ``mu + mean(b_u) + mean(b_i) + mean_s(P_s[u] . Q_s[i])``.

    To serve through the shared factor-model machinery, the kept draws are stored side by side:
    ``user_factors_`` and ``item_factors_`` have ``factors * n_draws`` columns (each draw
    scaled by ``1/sqrt(n_draws)``), so one dot product is the average over draws. Averaging
    draws is what gives the accuracy (lower RMSE than the point-estimate models on MovieLens);
    the price is memory and scoring time proportional to the number of kept draws.
    Fold-in (`recommend_new`) takes, per kept draw, the posterior mean of the new user under that
    draw's item factors and hyperparameters, and averages the same way.
    """

    epochs_param = "iterations"
    _precision_arrays = ("sample_bias_precision_", "sample_prior_precision_")
    _array_specs = {**FactorModel._array_specs,  # the kept draws side by side: factors * draws columns
                    "user_factors_": ("factor", ("users", "factors*draws")),
                    "item_factors_": ("factor", ("items", "factors*draws")),
                    "sample_noise_precision_": ("float", ("draws",)), "sample_bias_precision_": ("float", ("draws",)),
                    "sample_item_bias_": ("float", ("draws", "items")), "sample_prior_mean_": ("float", ("draws", "factors")),
                    "sample_prior_precision_": ("float", ("draws", "factors", "factors"))}

    def __init__(
        self,
        *,
        factors: int = 10,
        iterations: int = 100,
        burn_in: int = 20,
        noise_precision: float | None = 1.5,
        init_std: float = 0.1,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_GibbsTrainer":
        return _GibbsTrainer(self, train, rng, dtype)

    # ------------------------------------------------------------------ new users
    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        """Per kept draw, the posterior mean of the new user's bias and factors given that draw's
        item factors, item biases and priors; averaged (factors stacked) like the training users."""
        S = self.n_draws_
        k = self.item_factors_.shape[1] // S  # the fitted arrays', whatever factors says now
        scale = np.sqrt(S)
        Q = self.item_factors_[idx].astype(np.float64).reshape(len(idx), S, k).transpose(1, 0, 2) * scale
        X = np.concatenate([np.ones((S, len(idx), 1)), Q], axis=2)  # S x m x (k+1)
        t = values[None, :] - self.global_mean_ - self.sample_item_bias_[:, idx].astype(np.float64)
        alpha = self.sample_noise_precision_[:, None, None]
        A = alpha * np.einsum("smi,smj->sij", X, X)
        A[:, 0, 0] += self.sample_bias_precision_
        A[:, 1:, 1:] += self.sample_prior_precision_
        rhs = alpha[:, :, 0] * np.einsum("smi,sm->si", X, t)
        rhs[:, 1:] += np.einsum("sij,sj->si", self.sample_prior_precision_, self.sample_prior_mean_)
        w = np.linalg.solve(A, rhs[:, :, None])[:, :, 0]
        factors = (w[:, 1:] / scale).reshape(-1).astype(self.item_factors_.dtype)
        return FoldIn(float(w[:, 0].mean()), factors, idx, values, unknown, solve=(A, alpha[:, 0, 0], X), targets=t)

    def _contributions(self, fold: FoldIn, chosen: np.ndarray) -> np.ndarray:
        """contrib[r, j]: part of item r's personal score ``mean_s p_s . q_r^s`` due to rated item j
        (each draw's posterior mean is linear in its targets; the prior-mean part belongs to no
        rated item, so the parts sum to the score minus that part)."""
        A, alpha, X = fold.solve
        S = self.n_draws_
        k = self.item_factors_.shape[1] // S
        Qc = self.item_factors_[chosen].astype(np.float64).reshape(len(chosen), S, k).transpose(1, 0, 2)
        Xc = np.concatenate([np.zeros((S, len(chosen), 1)), Qc * np.sqrt(S)], axis=2)  # no bias: not a reason
        H = np.einsum("sri,sij->srj", Xc, np.linalg.solve(A, np.transpose(X, (0, 2, 1))))  # S x chosen x rated
        return np.mean(alpha[:, None, None] * H * fold.targets[:, None, :], axis=0)


class _GibbsTrainer(Trainer):
    """The current draw (float64) and the kept draws of one BPMF Gibbs run."""

    def __init__(self, model: BayesianMF, train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().__init__(model, train)
        k = int(model.factors)
        self.dtype = dtype
        self.P = np.zeros((train.n_users, k), dtype=np.float64)
        self.Q = self.init_factors(rng, train.n_items, k, np.dtype(np.float64))
        self.bu = np.zeros(train.n_users)
        self.bi = np.zeros(train.n_items)
        self.zero_untrained(users=(self.P, self.bu), items=(self.Q, self.bi))
        self.alpha = 2.0 if model.noise_precision is None else float(model.noise_precision)
        self.users_rated = train.user_counts > 0
        self.items_rated = train.item_counts > 0
        self.draws: list[tuple] = []

    def _side_prior(self, X: np.ndarray, b: np.ndarray, rated: np.ndarray, rng: np.random.Generator):
        mean, precision = sample_normal_wishart(X[rated], rng)
        n = int(rated.sum())
        bias_precision = rng.gamma(1.0 + 0.5 * n, 1.0 / (1.0 + 0.5 * float(b[rated] @ b[rated])))
        return mean, precision, bias_precision

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m, train = self.model, self.train
        k = int(m.factors)
        mu = self.mu
        bu, bi = train.by_user, train.by_item
        if epoch == 0:  # the users' first draw: no user factors yet to learn a prior from
            u_mean, u_prec, u_bprec = np.zeros(k), np.eye(k), 1.0
        else:
            u_mean, u_prec, u_bprec = self._side_prior(self.P, self.bu, self.users_rated, rng)
        gibbs_half_step(bu.indptr, bu.indices, bu.data, self.Q, self.bi, mu, self.alpha, u_bprec, u_mean, u_prec,
                        rng.standard_normal((train.n_users, k + 1)), self.P, self.bu)
        i_mean, i_prec, i_bprec = self._side_prior(self.Q, self.bi, self.items_rated, rng)
        sse = gibbs_half_step(bi.indptr, bi.indices, bi.data, self.P, self.bu, mu, self.alpha, i_bprec, i_mean,
                              i_prec, rng.standard_normal((train.n_items, k + 1)), self.Q, self.bi)
        if m.noise_precision is None:
            self.alpha = rng.gamma(1.0 + 0.5 * len(train), 1.0 / (1.0 + 0.5 * sse))
        if epoch >= int(m.burn_in):
            self.draws.append((self.P.copy(), self.Q.copy(), self.bu.copy(), self.bi.copy(),
                               u_mean, u_prec, u_bprec, self.alpha))
        return sse

    def arrays(self) -> dict[str, np.ndarray]:
        """The posterior-mean predictor from the kept draws (the current draw while burning in:
        the draw arrays then hold that one draw with its hyperparameters unknown, as 1s)."""
        dt = self.dtype
        k = int(self.model.factors)
        draws = self.draws or [(self.P, self.Q, self.bu, self.bi, np.zeros(k), np.eye(k), 1.0, self.alpha)]
        scale = 1.0 / np.sqrt(len(draws))
        return {"user_factors_": (np.hstack([d[0] for d in draws]) * scale).astype(dt),
                "item_factors_": (np.hstack([d[1] for d in draws]) * scale).astype(dt),
                "user_bias_": np.mean([d[2] for d in draws], axis=0).astype(dt),
                "item_bias_": np.mean([d[3] for d in draws], axis=0).astype(dt),
                "sample_item_bias_": np.stack([d[3] for d in draws]).astype(dt),
                "sample_prior_mean_": np.stack([d[4] for d in draws]),
                "sample_prior_precision_": np.stack([d[5] for d in draws]),
                "sample_bias_precision_": np.array([d[6] for d in draws], dtype=np.float64),
                "sample_noise_precision_": np.array([d[7] for d in draws], dtype=np.float64)}
