"""`BayesianFM`: a Bayesian factorization machine over grouped id, implicit and attribute features,
by Gibbs sampling (Rendle 2013 "Scaling factorization machines to relational data"; Rendle et al.
2019 "On the difficulty of evaluating baselines")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.attributes import AttributeEncoder, check_attribute_table
from mfrec.data.ratings import Ratings
from mfrec.kernels import fm as K
from mfrec.models.base import FactorModel, Trainer
from mfrec.models.params import Integral, Interval
from mfrec.models.bayes import BayesianMF, PosteriorDraws
from mfrec.models.recommend import FoldIn
from mfrec.models.registry import register_model


class _Side:
    """One block of the design (user side or item side): its features per entity (CSR and CSC),
    the group of every feature, and the ratings grouped by entity."""

    def __init__(self, blocks: list[sp.csr_matrix], ent_of: np.ndarray, n_ent: int) -> None:
        B = sp.hstack(blocks, format="csr").astype(np.float64)
        B.sort_indices()
        self.B = B
        C = B.tocsc()
        C.sort_indices()
        self.colptr, self.colrows, self.colvals = C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data
        self.indptr, self.indices, self.data = B.indptr.astype(np.int64), B.indices.astype(np.int64), B.data
        self.group = np.repeat(np.arange(len(blocks)), [b.shape[1] for b in blocks]).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum([b.shape[1] for b in blocks])])
        self.n_groups = len(blocks)
        self.used = np.diff(C.indptr) > 0  # features with data (the others stay at 0)
        self.ent_of = ent_of.astype(np.int64)
        self.pos = np.argsort(ent_of, kind="stable").astype(np.int64)
        self.counts = np.bincount(ent_of, minlength=n_ent).astype(np.float64)
        self.ent_indptr = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)


def _scaled_rows(M: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of a 0/1 matrix scaled by 1/sqrt(row count) (empty rows stay empty)."""
    counts = np.diff(M.indptr)
    scale = 1.0 / np.sqrt(np.maximum(counts, 1))
    return sp.diags(scale) @ M.astype(np.float64)


@register_model("bayesian-fm")
class BayesianFM(PosteriorDraws, FactorModel):
    """A factorization machine ``w0 + sum_l w_l x_l + sum_{l<m} <v_l, v_m> x_l x_m`` over, per
    rating of user ``u`` and item ``i``: the user id, the item id, and with ``implicit=True`` the
    items ``u`` rated (each ``1/sqrt|N(u)|``) and the users who rated ``i`` (each
    ``1/sqrt|R(i)|``), both built from the training ratings only; with
    ``fit(train, user_attributes=..., item_attributes=...)`` also the attribute tables, encoded
    by :class:`mfrec.data.attributes.AttributeEncoder` (the encoder `CMF` uses).

    Gibbs sampling as in libFM's MCMC and myFM: every weight and factor coordinate is drawn from
    its normal conditional (kernels in ``mfrec.kernels.fm``, O(nnz k + N k) per sweep), a
    Normal-Gamma hyperprior per feature group (user id, item id, rated set, rater set, user
    attributes, item attributes) and factor dimension, and the noise precision drawn from its
    Gamma posterior (``noise_precision=None``, the default) or fixed.

    Serving: the FM splits exactly into ``w0 + b_U(u) + b_I(i) + s_U(u) . s_I(i)``, where
    ``s_U(u) = sum_{l in user side} x_l v_l`` and ``b_U(u)`` holds the user side's linear terms
    plus its within-side pairs ``0.5 (|s_U|^2 - sum_l x_l^2 |v_l|^2)`` (the rated-set x rated-set
    and user-id x rated-set pairs); likewise for items. So a fitted model publishes
    ``user_factors_``/``item_factors_``/biases and every shared method (predict, recommend,
    save/load, evaluate, tune) works unchanged.

    What is stored (bounded memory): the biases and ``global_mean_`` are exact running means over
    all ``iterations - burn_in`` kept sweeps; the kept sweeps are cut into at most ``max_draws``
    groups of ``ceil(kept / max_draws)`` consecutive sweeps and each group is stored as one draw,
    the mean of its sweeps (running sums: fit memory holds one open group, not every sweep). The
    draws sit side by side (``factors * n_draws`` columns, each scaled by ``1/sqrt(n_draws)``, as
    `BayesianMF`), so the score is ``mean_g mean_g(s_U) . mean_g(s_I)``. For new users the stored
    draws also keep the rated-set factors and weights, the item biases, the user-id prior and the
    noise precision (group means likewise).

    Group means rather than every ``thin``-th sweep alone: on validation carve-outs of the
    training data (``random_split(train, 0.1, seed=0)``; 180 kept sweeps) the 45 group means of
    4 sweeps gave RMSE 0.8827 (ml-100k u1.base with the attribute tables) and 0.8259
    (ml-latest-small 80/20 train), the same as keeping all 180 sweeps (0.8827 / 0.8259), where
    every 4th sweep alone gave 0.8839 / 0.8276. So ``max_draws=50`` (default) loses no accuracy
    to the bound; scoring cost, fold-in latency and memory grow linearly with it.

    ``threads`` is accepted like every model's, but the kernels are serial (the Gibbs sweep is
    sequential over features; per-rating passes are cheap), so fits are reproducible on any
    thread count.

    A guest (`fold_in`, `recommend_new`) has no user-id feature of their own: per stored draw
    their rated set gives the implicit part of ``s_U`` and ``b_U`` exactly, and their user-id
    weight and factors are the posterior mean (a (k+1) ridge under that draw's user-id prior and
    noise precision) given their ratings; the draws are averaged like the training users.
    Attributes of a guest are not used (treated as unobserved).
    """

    epochs_param = "iterations"
    _precision_arrays = ("sample_prior_precision_",)
    _parameter_constraints = {"implicit": [bool], "max_draws": [Interval(Integral, 1, None)]}
    _array_specs = {**FactorModel._array_specs,
                    "user_factors_": ("factor", ("users", "factors*draws")),
                    "item_factors_": ("factor", ("items", "factors*draws")),
                    "sample_item_bias_": ("float", ("draws", "items")),
                    "sample_implicit_factors_": ("factor", ("draws", "items", "factors")),
                    "sample_implicit_weights_": ("float", ("draws", "items")),
                    "sample_global_": ("float", ("draws",)),
                    "sample_prior_mean_": ("float", ("draws", "factors+1")),
                    "sample_prior_precision_": ("float", ("draws", "factors+1")),
                    "sample_noise_precision_": ("float", ("draws",))}

    def __init__(
        self,
        *,
        factors: int = 10,
        iterations: int = 200,
        burn_in: int = 20,
        implicit: bool = True,
        max_draws: int = 50,
        noise_precision: float | None = None,
        init_std: float = 0.1,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    # ------------------------------------------------------------------ fitting
    def fit(self, train: Any, validation: Any = None, *, user_attributes: pd.DataFrame | None = None,
            item_attributes: pd.DataFrame | None = None, callback: Any = None) -> "BayesianFM":
        """Sample the posterior on ``train`` (``validation``: RMSE per sweep in ``history_``).
        ``user_attributes`` / ``item_attributes``: DataFrames indexed by raw id (as `CMF`);
        rows of ids without training ratings are ignored."""
        return self._fit(train, validation, callback, (user_attributes, item_attributes))  # type: ignore[return-value]

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_FMTrainer":
        return _FMTrainer(self, train, rng, dtype, side if side is not None else (None, None))

    def _attribute_block(self, table: Any, id_map: Any, rated: np.ndarray, what: str) -> sp.csr_matrix | None:
        if table is None:
            return None
        ids = check_attribute_table(table, id_map, what)  # the checks CMF makes, in one place
        values, observed = AttributeEncoder().fit_transform(table)
        rows = id_map.lookup(ids)
        keep = rows >= 0
        X = np.zeros((len(id_map), values.shape[1]))
        X[rows[keep]] = np.where(observed[keep], values[keep], 0.0)
        X[~rated] = 0.0
        return sp.csr_matrix(X)

    # ------------------------------------------------------------------ new users
    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        """Per stored draw: the guest's rated-set part of the user side exactly, their user-id
        weight and factors by the posterior mean given their ratings; averaged over the draws."""
        S, m = self.n_draws_, len(idx)
        k = self.item_factors_.shape[1] // S  # the fitted arrays', whatever factors says now
        root = np.sqrt(S)
        QI = self.item_factors_[idx].astype(np.float64).reshape(m, S, k).transpose(1, 0, 2) * root  # S x m x k
        if self.implicit:
            x = 1.0 / np.sqrt(m)
            Vn = self.sample_implicit_factors_[:, idx, :].astype(np.float64)
            z = x * Vn.sum(axis=1)  # S x k
            b_imp = x * self.sample_implicit_weights_[:, idx].sum(axis=1) + 0.5 * (
                (z * z).sum(axis=1) - x * x * (Vn * Vn).sum(axis=(1, 2)))
        else:
            z, b_imp = np.zeros((S, k)), np.zeros(S)
        X = np.concatenate([np.ones((S, m, 1)), QI + z[:, None, :]], axis=2)  # S x m x (k+1)
        t = (values[None, :] - self.sample_global_[:, None] - self.sample_item_bias_[:, idx] - b_imp[:, None]
             - np.einsum("smk,sk->sm", QI, z))
        alpha = self.sample_noise_precision_[:, None, None]
        A = alpha * np.einsum("smi,smj->sij", X, X)
        A[:, np.arange(k + 1), np.arange(k + 1)] += self.sample_prior_precision_
        rhs = alpha[:, :, 0] * np.einsum("smi,sm->si", X, t) + self.sample_prior_precision_ * self.sample_prior_mean_
        w = np.linalg.solve(A, rhs[:, :, None])[:, :, 0]
        s_u = w[:, 1:] + z
        bias = self.sample_global_ + w[:, 0] + (w[:, 1:] * z).sum(axis=1) + b_imp
        factors = (s_u / root).reshape(-1).astype(self.item_factors_.dtype)
        return FoldIn(float(bias.mean() - self.global_mean_), factors, idx, values, unknown,
                      solve=(A, alpha[:, 0, 0], X), targets=t)

    #: explanations: the part of each score due to the user-id ridge, per rated item (as BayesianMF)
    _contributions = BayesianMF._contributions


class _FMTrainer(Trainer):
    """The design blocks, current parameters, hyperparameters and the running draw sums of one
    BayesianFM Gibbs run."""

    def __init__(self, model: "BayesianFM", train: Ratings, rng: np.random.Generator, dtype: np.dtype,
                 attributes: tuple) -> None:
        super().__init__(model, train)
        self.dtype = dtype
        k = int(self.model.factors)
        n_u, n_i = train.n_users, train.n_items
        users = train.user_indices.astype(np.int64)
        items = train.item_indices.astype(np.int64)
        self._y = train.values.astype(np.float64)
        self._users, self._items = users, items
        u_rated, i_rated = train.user_counts > 0, train.item_counts > 0
        seen = train.seen.astype(np.float64).tocsr()
        u_blocks = [sp.diags(u_rated.astype(np.float64), format="csr")]
        i_blocks = [sp.diags(i_rated.astype(np.float64), format="csr")]
        if self.model.implicit:
            u_blocks.append(_scaled_rows(seen).tocsr())
            i_blocks.append(_scaled_rows(seen.T.tocsr()).tocsr())
        ua, ia = attributes
        for blocks, table, id_map, rated, what in ((u_blocks, ua, train.user_map, u_rated, "user"),
                                                    (i_blocks, ia, train.item_map, i_rated, "item")):
            block = self.model._attribute_block(table, id_map, rated, what)
            if block is not None and block.shape[1]:
                blocks.append(block)
        self._U = _Side(u_blocks, users, n_u)
        self._I = _Side(i_blocks, items, n_i)
        self._state = {}
        st = self._state
        for name, side in (("U", self._U), ("I", self._I)):
            D = side.B.shape[1]
            V = self.init_factors(rng, D, k, np.dtype(np.float64))
            V[~side.used] = 0.0
            st["V" + name], st["w" + name] = V, np.zeros(D)
            st["q" + name], st["b" + name] = np.zeros((side.B.shape[0], k)), np.zeros(side.B.shape[0])
        st["w0"] = float(train.global_mean)
        st["alpha"] = 1.0 if self.model.noise_precision is None else float(self.model.noise_precision)
        self._hyper = {name: (np.zeros(side.n_groups), np.ones(side.n_groups), np.zeros((side.n_groups, k)),
                              np.ones((side.n_groups, k))) for name, side in (("U", self._U), ("I", self._I))}
        self._e = np.empty(len(train))
        self._refresh()
        kept = int(self.model.iterations) - int(self.model.burn_in)
        self._thin = max(1, math.ceil(kept / int(self.model.max_draws)))
        self._draws: list[tuple] = []
        self._group: list | None = None
        self._sums = [0.0, np.zeros(n_u), np.zeros(n_i), 0]

    def _refresh(self) -> float:
        """Recompute both sides' ``q``/bias from the parameters and the residuals (no drift)."""
        st = self._state
        for name, side in (("U", self._U), ("I", self._I)):
            K.side_state(side.indptr, side.indices, side.data, st["V" + name], st["w" + name], st["q" + name],
                         st["b" + name])
        return float(K.residuals(self._users, self._items, self._y, st["w0"], st["bU"], st["bI"], st["qU"],
                                 st["qI"], self._e))

    def _sample_hyper(self, rng: np.random.Generator) -> None:
        """Normal-Gamma hyperposterior per group and dimension, as libFM / myFM (``mu0 = 0``,
        ``gamma0 = alpha0 = beta0 = 1``): ``lam ~ Gamma((n + 2) / 2, rate (1 + mu^2 + sum (theta -
        mu)^2) / 2)``, then ``mu ~ N(sum theta / (n + 1), 1 / ((n + 1) lam))``, over the group's
        features that have data."""
        st = self._state
        for name, side in (("U", self._U), ("I", self._I)):
            mu_w, lam_w, mu_v, lam_v = self._hyper[name]
            for g in range(side.n_groups):
                sel = side.used & (side.group == g)
                n = int(sel.sum())
                if n == 0:
                    continue
                for theta, mu, lam, vector in ((st["w" + name][sel][:, None], mu_w, lam_w, False),
                                               (st["V" + name][sel], mu_v, lam_v, True)):
                    m = mu[g]
                    ss = ((theta - m) ** 2).sum(axis=0) + np.asarray(m) ** 2 + 1.0
                    new_lam = rng.gamma(0.5 * (n + 2), 2.0 / ss)
                    new_mu = theta.sum(axis=0) / (n + 1) + rng.standard_normal(theta.shape[1]) / np.sqrt(
                        (n + 1) * new_lam)
                    lam[g], mu[g] = (new_lam, new_mu) if vector else (new_lam[0], new_mu[0])

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        st = self._state
        k = int(self.model.factors)
        alpha = st["alpha"]
        e = self._e
        N = len(e)
        self._sample_hyper(rng)
        # global bias (flat prior)
        new = st["w0"] + e.sum() / N + rng.standard_normal() / math.sqrt(alpha * N)
        e -= new - st["w0"]
        st["w0"] = new
        sides = (("U", self._U), ("I", self._I))
        for name, side in sides:  # linear weights
            mu_w, lam_w, _, _ = self._hyper[name]
            n_ent = len(side.counts)
            E0 = np.empty(n_ent)
            K.residual_sums(side.ent_indptr, side.pos, e, E0)
            lin_old = side.B @ st["w" + name]
            lin = lin_old.copy()
            K.sample_side_linear(side.colptr, side.colrows, side.colvals, side.group, st["w" + name], mu_w, lam_w,
                                 alpha, side.counts, E0, lin, rng.standard_normal(side.B.shape[1]))
            K.update_residual_linear(side.ent_of, lin_old, lin, e)
        U, I = self._U, self._I
        _, _, mu_vU, lam_vU = self._hyper["U"]
        _, _, mu_vI, lam_vI = self._hyper["I"]
        K.factor_sweep(U.colptr, U.colrows, U.colvals, U.group, st["VU"], mu_vU, lam_vU, U.counts, U.ent_indptr, U.pos,
                       self._users, I.colptr, I.colrows, I.colvals, I.group, st["VI"], mu_vI, lam_vI, I.counts,
                       I.ent_indptr, I.pos, self._items, alpha, st["qU"], st["qI"], e,
                       rng.standard_normal((k, U.B.shape[1])), rng.standard_normal((k, I.B.shape[1])))
        sse = self._refresh()
        if self.model.noise_precision is None:
            st["alpha"] = rng.gamma(0.5 * (1.0 + N), 2.0 / (1.0 + sse))
        if epoch >= int(self.model.burn_in):
            self._keep(epoch)
        return sse

    def _keep(self, epoch: int) -> None:
        """Add the current sweep to the running bias means and to its thinning group's running
        sums; a full group (``_thin`` consecutive kept sweeps) becomes one stored draw, its mean."""
        st = self._state
        sums = self._sums
        sums[0] += st["w0"]
        sums[1] += st["bU"]
        sums[2] += st["bI"]
        sums[3] += 1
        n_i = len(st["bI"])
        if self.model.implicit:
            s = slice(int(self._U.offsets[1]), int(self._U.offsets[2]))
            Vn, wn = st["VU"][s], st["wU"][s]
        else:
            Vn, wn = np.zeros((n_i, int(self.model.factors))), np.zeros(n_i)
        mu_w, lam_w, mu_v, lam_v = self._hyper["U"]
        parts = (st["qU"], st["qI"], st["bI"], Vn, wn, st["w0"], np.concatenate([[mu_w[0]], mu_v[0]]),
                 np.concatenate([[lam_w[0]], lam_v[0]]), st["alpha"])
        if self._group is None:
            self._group = [np.array(x, dtype=np.float64, copy=True) for x in parts] + [1]
        else:
            for acc, x in zip(self._group, parts):
                acc += x
            self._group[-1] += 1
        if self._group[-1] == self._thin or epoch == int(self.model.iterations) - 1:
            self._flush_group()

    def _flush_group(self) -> None:
        """Store the open thinning group's mean as one draw."""
        if self._group is not None:
            n = self._group[-1]
            self._draws.append(tuple(x / n for x in self._group[:-1]))
            self._group = None

    def arrays(self) -> dict[str, Any]:
        """The posterior-mean predictor from the kept draws (and the open thinning group); while
        burning in, the current sweep as the one draw."""
        dt = np.dtype(self.dtype)
        st = self._state
        k = int(self.model.factors)
        draws = list(self._draws)
        if self._group is not None:  # during a fit with validation, or one stopped early: the open group
            draws.append(tuple(x / self._group[-1] for x in self._group[:-1]))
        if not draws:  # burning in: the current sweep, with the guest-side hyperparameters unset (neutral)
            n_i = len(st["bI"])
            draws = [(st["qU"], st["qI"], st["bI"], np.zeros((n_i, k)), np.zeros(n_i), st["w0"], np.zeros(k + 1),
                      np.ones(k + 1), st["alpha"])]
            w0, bU, bI, count = st["w0"], st["bU"], st["bI"], 1
        else:
            w0, bU, bI, count = self._sums
        scale = 1.0 / np.sqrt(len(draws))
        return {"user_factors_": (np.hstack([d[0] for d in draws]) * scale).astype(dt),
                "item_factors_": (np.hstack([d[1] for d in draws]) * scale).astype(dt),
                "global_mean_": float(w0 / count),
                "user_bias_": (bU / count).astype(dt),
                "item_bias_": (bI / count).astype(dt),
                "sample_item_bias_": np.stack([d[2] for d in draws]),
                "sample_implicit_factors_": np.stack([d[3] for d in draws]).astype(dt),
                "sample_implicit_weights_": np.stack([d[4] for d in draws]),
                "sample_global_": np.array([float(d[5]) for d in draws]),
                "sample_prior_mean_": np.stack([d[6] for d in draws]),
                "sample_prior_precision_": np.stack([d[7] for d in draws]),
                "sample_noise_precision_": np.array([float(d[8]) for d in draws], dtype=np.float64)}
