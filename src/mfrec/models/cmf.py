"""`CMF`: collective matrix factorization of ratings with user and item side information.

Three matrices share factors (Singh & Gordon 2008; the model of cmfrec's ``CMF``)::

    ratings          X[u, j] ~ mu + b_u + b_j + A[u] . B[j]
    user attributes  U[u, c] ~ m_c + A[u] . C[c]  (+ b_u C0[c])   (observed entries only)
    item attributes  I[j, d] ~ n_d + B[j] . D[d]  (+ b_j D0[d])   (observed entries only)

minimizing ``SSE(X) + w_user SSE(U) + w_item SSE(I) + lam (|A|^2 + |B|^2) + lam_b (|b|^2)
+ lam_attr (|C|^2 + |D|^2)`` by alternating least squares: for each user one (k+1) x (k+1) ridge
(bias and factors) whose design stacks the user's rating rows and weighted attribute rows; then each
attribute column's factors by a ridge over the users where it is observed; the same for items.
``m_c`` / ``n_d`` are the attribute columns' observed means. The bracketed bias terms are
``attribute_bias=True`` (the default): the attributes then also inform the biases, which is what
lets a new item's genres and year predict how well it will be rated overall. Attribute tables are
encoded by :class:`mfrec.data.attributes.AttributeEncoder` (numeric standardized, categorical
one-hot, list-valued multi-hot, missing values not fitted).

Users or items that appear only in an attribute table are part of the model (``users_`` /
``items_`` list the training ids first, then the attribute-only ids): their factors (and, with
``attribute_bias``, their bias) come from their attributes alone, so ``predict`` / ``recommend``
work for them. How (``user_cold_start`` / ``item_cold_start``): by a ridge regression of the
trained rows' biases and factors on their attributes, fitted after training (``"regression"``,
the users' default), or by the attribute block of the factorization (``"collective"``). Brand-new users are folded in from attributes and/or a few ratings (``fold_in``,
``recommend_new``, ``predict_new``), new items from their attributes and/or a few ratings
(``fold_in_item``, ``predict_new_item``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.linalg as sla

from mfrec.data.attributes import AttributeEncoder, check_attribute_table
from mfrec.data.ratings import Ratings
from mfrec.errors import DataError
from mfrec.kernels.cmf import attribute_factor_step, cmf_half_step
from mfrec.data.ratings import as_ratings
from mfrec.models.base import EpochCallback, FactorModel, Trainer, sq_norm, ridge_penalty
from mfrec.models.params import Integral, Interval, Options, Real
from mfrec.models.recommend import FoldIn, resolve_new_ratings
from mfrec.models.registry import register_model
from mfrec._warnings import warn_user

#: how rows without ratings get their factors (and bias) from their attributes
COLD_START = ("regression", "collective")

AttributeRow = Mapping[Any, Any] | pd.Series | pd.DataFrame
NewRatings = Mapping[Any, float] | pd.DataFrame | pd.Series


@dataclass
class _WithAttributes:
    """Ratings plus attributes passed through the mixin's ``recommend_new`` / ``add_user`` to
    :meth:`CMF.fold_in` (internal)."""

    ratings: Any
    attributes: Any


@register_model("cmf")
class CMF(FactorModel):
    """Collective matrix factorization: ratings, user attributes and item attributes share the
    user and item factors; trained by ALS with Numba-parallel per-row ridge solves.

    ``fit(train, user_attributes=users_df, item_attributes=items_df, validation=None)`` where the
    attribute tables are DataFrames indexed by raw user / item id. Without attribute tables it is
    plain biased ALS.

    Parameters
    ----------
    factors, iterations, regularization, bias_regularization, solver, cg_steps, init_std,
    early_stopping, seed, threads, dtype
        As in :class:`mfrec.ALS` (``regularization`` is the factor penalty ``lam``).
    user_attribute_weight, item_attribute_weight
        Weights ``w_user``, ``w_item`` of the attribute reconstruction errors relative to the
        rating errors. 0 ignores that side's attributes.
    attribute_regularization
        Penalty ``lam_attr`` on the attribute factors ``C`` and ``D``.
    attribute_bias
        Put the biases into the attribute models too, ``U ~ m + [b_u, A] C^T`` (C gets a leading
        bias column): attributes then also predict the bias of users / items without ratings.
    user_cold_start, item_cold_start
        How a row without ratings (a new user / item, or one only in the attribute table) gets
        its bias and factors from its attributes. ``"regression"``: a ridge regression of the
        trained rows' ``[bias, factors]`` on their encoded attributes (penalty
        ``cold_start_regularization``), fitted after training; fold-in with a few ratings then
        shrinks towards that prediction instead of towards 0. ``"collective"``: the attribute
        rows of the factorization alone (``A ~ C`` through ``U ~ A C^T``), with bias 0 unless
        ``attribute_bias``. Defaults chosen on validation carve-outs of training data: the
        regression for users (on held-out ml-100k users, 5 seeds: RMSE 1.0119 vs 1.0173 for the
        attribute block alone and 1.0235 for the item-bias baseline), the collective block for
        items (0.004 better there than the regression).
    cold_start_regularization
        Ridge penalty of the cold-start regression (its intercept is not penalized).

    The defaults were tuned on ml-100k (a seeded 10% validation carve-out of u1.base, with
    user and item cold-start carve-outs of u1.base as tie-breakers), never on u1.test: k=50 is as
    accurate as k=100 there and twice as fast; a large ``attribute_regularization`` with moderate
    weights lets the attributes act as a prior on the factors without bending them.
    """

    epochs_param = "iterations"
    _parameter_constraints = {
        "iterations": [Interval(Integral, 1, None)],
        "regularization": [Interval(Real, 0, None)],
        "bias_regularization": [None, Interval(Real, 0, None)],
        "user_attribute_weight": [Interval(Real, 0, None)],
        "item_attribute_weight": [Interval(Real, 0, None)],
        "attribute_regularization": [Interval(Real, 0, None, closed="neither")],
        "attribute_bias": [bool],
        "user_cold_start": [Options(*COLD_START)],
        "item_cold_start": [Options(*COLD_START)],
        "cold_start_regularization": [Interval(Real, 0, None)],
        "solver": [Options("cholesky", "cg")],
        "cg_steps": [Interval(Integral, 1, None)],
    }
    _array_specs = {**FactorModel._array_specs,
                    "user_attribute_factors_": ("factor", ("user_features", "factors+attribute_bias")),
                    "item_attribute_factors_": ("factor", ("item_features", "factors+attribute_bias")),
                    "user_attribute_means_": ("float", ("user_features",)),
                    "item_attribute_means_": ("float", ("item_features",)),
                    "user_attribute_rows_": ("bool", ("users",)), "item_attribute_rows_": ("bool", ("items",)),
                    "user_attribute_encoder_": ("str", (1,)), "item_attribute_encoder_": ("str", (1,)),
                    # [bias, factors] from the attributes: 0 rows when unused, else 1 + features
                    "user_cold_start_map_": ("factor", ("user_map_rows", "factors+1")),
                    "item_cold_start_map_": ("factor", ("item_map_rows", "factors+1"))}

    def __init__(
        self,
        *,
        factors: int = 50,
        iterations: int = 10,
        regularization: float = 15.0,
        bias_regularization: float | None = 5.0,
        user_attribute_weight: float = 3.0,
        item_attribute_weight: float = 10.0,
        attribute_regularization: float = 200.0,
        attribute_bias: bool = True,
        user_cold_start: str = "regression",
        item_cold_start: str = "collective",
        cold_start_regularization: float = 10.0,
        solver: str = "cg",
        cg_steps: int = 3,
        init_std: float = 0.1,
        early_stopping: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    # ------------------------------------------------------------------ parameters
    def _lambdas(self) -> tuple[float, float]:
        return float(self.regularization), float(self._param("bias_regularization"))

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """As ALS: each row's ridge is penalized once."""
        return self._lambdas()

    # ------------------------------------------------------------------ fitting
    def fit(  # type: ignore[override]
        self,
        train: Ratings | pd.DataFrame,
        validation: Ratings | pd.DataFrame | None = None,
        *,
        user_attributes: pd.DataFrame | None = None,
        item_attributes: pd.DataFrame | None = None,
        user_encoder: AttributeEncoder | None = None,
        item_encoder: AttributeEncoder | None = None,
        callback: EpochCallback | None = None,
    ) -> "CMF":
        """Train on ``train`` ratings and the attribute tables (DataFrames indexed by raw id;
        ids found only there are added to the model after the training ids).

        ``user_encoder`` / ``item_encoder``: an :class:`AttributeEncoder` to use instead of the
        default one (e.g. with ``kinds=`` overrides); it is fitted on the table unless already
        fitted. ``validation`` and ``callback`` as in :meth:`FactorModel.fit`.
        """
        train = as_ratings(train, "train")
        self.validate_params()
        user_map, u_enc, U, Um = self._prepare_side(user_attributes, user_encoder, train.user_map, "user")
        item_map, i_enc, I, Im = self._prepare_side(item_attributes, item_encoder, train.item_map, "item")
        if user_map is not train.user_map or item_map is not train.item_map:
            # extend() keeps every training id at its index, so the training indices stay valid
            train = Ratings(train.user_indices, train.item_indices, train.values, user_map, item_map,
                            train.timestamps, rating_scale=train.rating_scale)
        side = {"user": _AttributeSide(U, Um, u_enc, float(self.user_attribute_weight)),
                "item": _AttributeSide(I, Im, i_enc, float(self.item_attribute_weight))}
        self._fit(train, validation, callback, side)
        self._encoders = {s: (getattr(self, f"{s}_attribute_encoder_"), side[s].encoder) for s in ("user", "item")}
        #: rows of the model without a training rating (their factors come from attributes only)
        self.n_without_ratings_ = {"users": int(np.sum(train.user_counts == 0)),
                                   "items": int(np.sum(train.item_counts == 0))}
        return self

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_CMFTrainer":
        return _CMFTrainer(self, train, rng, dtype, side)

    @staticmethod
    def _cold_start_rows(W: np.ndarray, V: np.ndarray, M: np.ndarray, means: np.ndarray) -> np.ndarray:
        """``[bias, factors]`` (rows x (1 + k), float64) predicted by the cold-start map ``W`` from
        encoded attribute rows ``V`` (observed where ``M``)."""
        Z = np.where(M, V - means, 0.0)
        return W[0].astype(np.float64) + Z @ W[1:].astype(np.float64)

    def _cold_start_map(self, side: str) -> np.ndarray | None:
        """The fitted cold-start map of ``side``, None when not available (``"collective"``, no
        attributes)."""
        W = getattr(self, f"{side}_cold_start_map_", None)
        return None if W is None or W.shape[0] == 0 else W

    def _prepare_side(self, table: pd.DataFrame | None, encoder: AttributeEncoder | None, id_map: Any, what: str):
        """(union id map, fitted encoder or None, values, observed) for one side."""
        if table is None:
            n = len(id_map)
            return id_map, None, np.zeros((n, 0)), np.zeros((n, 0), dtype=bool)
        ids = check_attribute_table(table, id_map, what)
        encoder = AttributeEncoder() if encoder is None else encoder
        if encoder.columns_ is None:
            encoder.fit(table)
        values, observed = encoder.transform(table)
        union = id_map.extend(ids)
        rows = union.lookup(ids)
        V = np.zeros((len(union), values.shape[1]))
        M = np.zeros((len(union), values.shape[1]), dtype=bool)
        V[rows] = values
        M[rows] = observed
        return union, encoder, V, M

    def _trained(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows with training ratings *or* observed attributes: both have fitted factors (the base
        treats rows without ratings like unknown ids)."""
        users, items = super()._trained()
        key = (users, items, getattr(self, "user_attribute_rows_", None), getattr(self, "item_attribute_rows_", None))
        cache = getattr(self, "_trained_or_cache", None)
        if cache is None or any(a is not b for a, b in zip(cache[0], key)):
            cache = (key, (self._or_rows(users, "user"), self._or_rows(items, "item")))
            self._trained_or_cache = cache
        return cache[1]

    def _or_rows(self, trained: np.ndarray, side: str) -> np.ndarray:
        rows = getattr(self, f"{side}_attribute_rows_", None)
        if rows is None or not rows.any():
            return trained
        n = min(len(rows), len(trained))
        out = trained.copy()
        out[:n] |= rows[:n].astype(bool)
        return out

    def _after_add_user(self, fold: FoldIn) -> None:
        # an added user has factors from their ratings and/or attributes: never "untrained"
        self.user_attribute_rows_ = np.append(self.user_attribute_rows_, True)

    # ------------------------------------------------------------------ attributes of new rows
    def attribute_encoder(self, side: str = "user") -> AttributeEncoder | None:
        """The fitted :class:`AttributeEncoder` of ``side`` ("user" or "item"), None without
        attributes (rebuilt from the saved state after :func:`mfrec.load_model`)."""
        self._require_fitted()
        if side not in ("user", "item"):
            raise ValueError(f"side must be 'user' or 'item', got {side!r}")
        state = getattr(self, f"{side}_attribute_encoder_")
        cache = self.__dict__.setdefault("_encoders", {})
        hit = cache.get(side)
        if hit is not None and hit[0] is state:
            return hit[1]
        text = str(state.reshape(-1)[0]) if state.size else ""
        encoder = AttributeEncoder.from_dict(json.loads(text)) if text else None
        cache[side] = (state, encoder)
        return encoder

    def _validate_loaded(self) -> None:
        """After load: each side's encoder state parses and has one feature per attribute factor row."""
        for side in ("user", "item"):
            try:
                enc = self.attribute_encoder(side)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"the {side} attribute encoder state is damaged ({exc!r})") from None
            rows = getattr(self, f"{side}_attribute_factors_").shape[0]
            if (0 if enc is None else enc.n_features_) != rows:
                raise ValueError(f"{side} attribute factors have {rows} rows for "
                                 f"{0 if enc is None else enc.n_features_} encoded features")

    @property
    def user_attribute_names_(self) -> list[str]:
        enc = self.attribute_encoder("user")
        return [] if enc is None else enc.feature_names_

    @property
    def item_attribute_names_(self) -> list[str]:
        enc = self.attribute_encoder("item")
        return [] if enc is None else enc.feature_names_

    def _encode_new(self, side: str, attributes: AttributeRow | None) -> tuple[np.ndarray, np.ndarray]:
        """One new row's encoded attributes (values, observed), shape (p,) each."""
        enc = self.attribute_encoder(side)
        C = getattr(self, f"{side}_attribute_factors_")
        if attributes is None or enc is None:
            if attributes is not None and len(attributes):
                warn_user(f"the model was fitted without {side} attributes; ignoring them")
            return np.zeros(C.shape[0]), np.zeros(C.shape[0], dtype=bool)
        if isinstance(attributes, pd.DataFrame):
            if len(attributes) != 1:
                raise DataError(f"new-{side} attributes must be one row, got {len(attributes)}")
        unseen = enc.unseen_labels(attributes)
        if unseen:  # encoded as no category: say so rather than answer as if it were known
            warn_user(f"new-{side} attribute value(s) the model did not learn (encoded as no category): "
                      f"{', '.join(f'{c}={v!r}' for c, v in unseen[:5])}")
        V, M = enc.transform(attributes)
        return V[0], M[0]

    # ------------------------------------------------------------------ the ridge of one new row
    def _solve_row(self, Y: np.ndarray, t: np.ndarray, side: str, values: np.ndarray, observed: np.ndarray):
        """Bias and factors of one new row from rating rows (design [1, Y], targets t) and the
        weighted attribute rows of ``side``: the training half-step's ridge. Returns
        (bias, factors, cho_factor, design of the rating rows)."""
        lam, lam_b = self._fold_in_lambdas(len(t))
        k = Y.shape[1]
        weight = float(getattr(self, f"{side}_attribute_weight"))
        C = getattr(self, f"{side}_attribute_factors_").astype(np.float64)
        means = getattr(self, f"{side}_attribute_means_").astype(np.float64)
        Xr = np.hstack([np.ones((len(t), 1)), Y.astype(np.float64)])
        G = Xr.T @ Xr
        rhs = Xr.T @ t
        use_attr = weight > 0 and observed.any()
        W = self._cold_start_map(side) if use_attr else None
        if W is not None:
            # the attributes' prediction of [bias, factors]; ratings (if any) move the row from it
            w0 = self._cold_start_rows(W, values[None, :], observed[None, :], means)[0]
            if len(t) == 0:
                return float(w0[0]), w0[1:1 + k], None, Xr
            # the ridge shrinks towards w0 instead of 0; w0 already holds what the attributes say,
            # so no attribute rows are stacked (measured: the same accuracy as stacking both)
            rhs += np.r_[lam_b, np.full(k, lam)] * w0
            use_attr = False
        if use_attr:
            Co = C[observed]
            if Co.shape[1] == k:  # no bias column in the attribute model
                Co = np.hstack([np.zeros((len(Co), 1)), Co])
            G += weight * (Co.T @ Co)
            rhs += weight * (Co.T @ (values[observed] - means[observed]))
        bias_free = len(t) > 0 or (use_attr and C.shape[1] > k)
        G[np.diag_indices_from(G)] += lam
        G[0, 0] += (lam_b if bias_free else 1.0) - lam
        factor = sla.cho_factor(G, lower=True, check_finite=False)
        w = sla.cho_solve(factor, rhs, check_finite=False)
        bias = float(w[0]) if bias_free else 0.0
        return bias, w[1:1 + k], factor, Xr

    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list,
                       attributes: tuple[np.ndarray, np.ndarray] | None = None) -> FoldIn:
        t, fixed = self._fold_in_targets(idx, values)
        p = self.user_attribute_factors_.shape[0]
        vals, obs = attributes if attributes is not None else (np.zeros(p), np.zeros(p, dtype=bool))
        bias, x, factor, _ = self._solve_row(self.item_factors_[idx], t, "user", vals, obs)
        return FoldIn(bias, (x + fixed).astype(self.item_factors_.dtype), idx, values, unknown, factor, t)

    # ------------------------------------------------------------------ new users
    def fold_in(self, ratings: NewRatings | None,  # type: ignore[override]
                user_attributes: AttributeRow | None = None) -> FoldIn:
        """A new user's bias and factors from a few ratings and/or their attributes.

        ``user_cold_start="regression"`` (default): attributes only give the cold-start
        regression's bias and factors; with ratings, the ratings' ridge against the fixed item
        factors shrinks towards that prediction instead of towards 0. ``"collective"``: the
        training objective's ridge for one user, rating rows plus the attribute rows (weight
        ``user_attribute_weight``) against the fixed attribute factors (attributes only: bias 0
        unless ``attribute_bias``). Neither ratings nor attributes: the zero user. Unknown items are reported in
        ``unknown_items`` as in the base ``fold_in``.
        """
        self._require_fitted()
        if isinstance(ratings, _WithAttributes):
            ratings, user_attributes = ratings.ratings, ratings.attributes
        idx, values, unknown = self._known_new_ratings(ratings)
        attrs = self._encode_new("user", user_attributes) if user_attributes is not None else None
        if len(idx) == 0 and (attrs is None or not attrs[1].any()):
            k = self.item_factors_.shape[1]
            return FoldIn(0.0, np.zeros(k, dtype=self.item_factors_.dtype), idx, values, unknown)
        return self._solve_new_user(idx, values, unknown, attrs)

    def recommend_new(self, ratings: NewRatings | None = None,  # type: ignore[override]
                      n: int = 10, exclude_rated: bool = True, items: Iterable[Any] | None = None,
                      filter: Iterable[Any] | None = None, item_bias_weight: float = 1.0,
                      explain: int = 0, *, user_attributes: AttributeRow | None = None) -> pd.DataFrame:
        """Recommendations for a new user from a few ratings and/or ``user_attributes`` (a dict
        or Series {attribute: value}, missing attributes allowed), without retraining. Output as
        the base :meth:`recommend_new` (``item``, ``score`` [+ ``title``, ``genres``,
        ``because``]); explanations cover the rated items (attributes add a common part)."""
        if user_attributes is not None:
            ratings = _WithAttributes(ratings, user_attributes)
        return super().recommend_new(ratings, n=n, exclude_rated=exclude_rated, items=items, filter=filter,
                                     item_bias_weight=item_bias_weight, explain=explain)

    def add_user(self, user_id: Any, ratings: NewRatings | None = None,  # type: ignore[override]
                 user_attributes: AttributeRow | None = None) -> FoldIn:
        """Fold a new user in (ratings and/or attributes) and keep them in the model."""
        if user_attributes is not None:
            ratings = _WithAttributes(ratings, user_attributes)
        return super().add_user(user_id, ratings)

    def predict_new(self, items: Any, ratings: NewRatings | None = None,
                    user_attributes: AttributeRow | None = None, *, clip: bool = True,
                    return_unknown: bool = False) -> Any:
        """Predicted ratings of a new user (folded in from ``ratings`` and/or ``user_attributes``)
        for the raw item ids ``items``. Unknown items get ``mean + user bias``; their count as in
        :meth:`predict` (``return_unknown``, ``unknown_``)."""
        fold = self.fold_in(ratings, user_attributes=user_attributes)
        i = self.item_map_.lookup(items)
        known = i >= 0
        pred = np.full(len(i), self.global_mean_ + fold.bias, dtype=np.float64)
        if known.any():
            ik = i[known]
            pred[known] += self.item_bias_[ik].astype(np.float64) + self.item_factors_[ik].astype(np.float64) @ \
                fold.factors.astype(np.float64)
        return self._with_unknown(self._clip(pred, clip), {"users": 0, "items": int((~known).sum())}, return_unknown)

    def _clip(self, pred: np.ndarray, clip: bool) -> np.ndarray:
        if clip:
            lo, hi = self.rating_scale_
            np.clip(pred, lo, hi, out=pred)
        return pred

    # ------------------------------------------------------------------ new items
    def fold_in_item(self, item_attributes: AttributeRow | None = None,
                     ratings: NewRatings | None = None) -> tuple[float, np.ndarray]:
        """A new item's (bias, factors) from its attributes and/or a few ratings ``{user: rating}``
        (the item half-step's ridge against the fixed user factors), validated as a new user's
        ratings are (`resolve_new_ratings`): unknown users are ignored with a warning."""
        self._require_fitted()
        u, values, _ = resolve_new_ratings(ratings, self.user_map_, self.rating_scale_, "user")
        vals, obs = self._encode_new("item", item_attributes)
        k = self.item_factors_.shape[1]
        if len(u) == 0 and not obs.any():
            return 0.0, np.zeros(k)
        t = values - self.global_mean_ - self.user_bias_[u].astype(np.float64)
        bias, q, _, _ = self._solve_row(self.user_factors_[u], t, "item", vals, obs)
        return bias, q

    def predict_new_item(self, users: Any, item_attributes: AttributeRow | None = None,
                         ratings: NewRatings | None = None, *,
                         clip: bool = True, return_unknown: bool = False) -> Any:
        """Predicted ratings of the raw user ids ``users`` for a new item described by
        ``item_attributes`` (e.g. ``{"genres": ["Comedy"], "year": 1999}``) and optionally a few
        ratings ``{user: rating}``. Unknown users get ``mean + item bias``."""
        bias, q = self.fold_in_item(item_attributes, ratings)
        u = self.user_map_.lookup(users)
        known = u >= 0
        pred = np.full(len(u), self.global_mean_ + bias, dtype=np.float64)
        if known.any():
            uk = u[known]
            pred[known] += self.user_bias_[uk].astype(np.float64) + self.user_factors_[uk].astype(np.float64) @ q
        return self._with_unknown(self._clip(pred, clip), {"users": int((~known).sum()), "items": 0}, return_unknown)


class _AttributeSide:
    """One side's encoded attribute table for a fit: values, observed mask, column means, the
    fitted encoder (None without a table) and the side's attribute weight."""

    def __init__(self, V: np.ndarray, M: np.ndarray, encoder: AttributeEncoder | None, weight: float) -> None:
        self.V, self.M, self.encoder, self.weight = V, M, encoder, weight
        counts = M.sum(axis=0)
        sums = np.where(M, V, 0.0).sum(axis=0)
        self.means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        #: rows with at least one observed attribute (they have factors even without ratings)
        self.rows = M.any(axis=1) if weight > 0 else np.zeros(len(M), bool)
        self.state = np.array([encoder.to_json() if encoder is not None else ""])  # JSON, for model files


class _CMFTrainer(Trainer):
    """Factors, biases and attribute factors of one CMF fit, with the attribute blocks."""

    def __init__(self, model: CMF, train: Ratings, rng: np.random.Generator, dtype: np.dtype,
                 side: dict[str, _AttributeSide]) -> None:
        super().__init__(model, train)
        self.side = side
        self.init_arrays(rng, dtype, random_users=False)
        k = int(model.factors)
        off = 1 if model.attribute_bias else 0
        self.C = np.zeros((side["user"].V.shape[1], k + off), dtype=dtype)
        self.D = np.zeros((side["item"].V.shape[1], k + off), dtype=dtype)
        self.attr_sse = 0.0
        self.no_map = np.zeros((0, k + 1), dtype=dtype)  # the cold-start maps are fitted after training

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m = self.model
        lam, lam_b = m._lambdas()
        lam_c = float(m.attribute_regularization)
        use_cg = m.solver == "cg"
        steps = int(m.cg_steps)
        # as in ALS: CG from the start, twice the steps in the first user step (it starts from zero)
        first_steps = steps * (2 if epoch == 0 else 1)
        sse = np.zeros(2)
        attr_sse = 0.0
        bu, bi = self.train.by_user, self.train.by_item
        us, its = self.side["user"], self.side["item"]
        cmf_half_step(bu.indptr, bu.indices, bu.data, self.Q, self.bi, self.mu, us.V, us.M, us.means, self.C,
                      us.weight, self.P, self.bu, lam, lam_b, use_cg, first_steps, sse)
        if us.weight > 0 and us.V.shape[1]:
            attr_sse += attribute_factor_step(self.P, self.bu, us.V, us.M, us.means, us.weight, lam_c, self.C)
        cmf_half_step(bi.indptr, bi.indices, bi.data, self.P, self.bu, self.mu, its.V, its.M, its.means, self.D,
                      its.weight, self.Q, self.bi, lam, lam_b, use_cg, steps, sse)
        if its.weight > 0 and its.V.shape[1]:
            attr_sse += attribute_factor_step(self.Q, self.bi, its.V, its.M, its.means, its.weight, lam_c, self.D)
        self.attr_sse = attr_sse
        return float(sse[0])

    def penalty(self) -> float:
        """Regularization plus the weighted attribute reconstruction error (so ``loss`` in
        ``history_`` is the whole objective per rating)."""
        lam_c = float(self.model.attribute_regularization)
        return (ridge_penalty(self.model, sq_norm(self.P), sq_norm(self.Q), sq_norm(self.bu), sq_norm(self.bi))
                + self.attr_sse + lam_c * (sq_norm(self.C.astype(np.float64)) + sq_norm(self.D.astype(np.float64))))

    def arrays(self, maps: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        us, its = self.side["user"], self.side["item"]
        user_map, item_map = maps if maps is not None else (self.no_map, self.no_map)
        return {"user_factors_": self.P, "item_factors_": self.Q, "user_bias_": self.bu, "item_bias_": self.bi,
                "user_attribute_factors_": self.C, "item_attribute_factors_": self.D,
                "user_attribute_means_": us.means, "item_attribute_means_": its.means,
                "user_attribute_rows_": us.rows, "item_attribute_rows_": its.rows,
                "user_attribute_encoder_": us.state, "item_attribute_encoder_": its.state,
                "user_cold_start_map_": user_map, "item_cold_start_map_": item_map}

    def state(self) -> dict[str, np.ndarray]:
        return {"P": self.P, "Q": self.Q, "bu": self.bu, "bi": self.bi, "C": self.C, "D": self.D}

    def final(self) -> dict[str, np.ndarray]:
        maps = (self._cold_start("user", self.train.user_counts, self.P, self.bu),
                self._cold_start("item", self.train.item_counts, self.Q, self.bi))
        return {name: np.ascontiguousarray(a) for name, a in self.arrays(maps).items()}

    def _cold_start(self, side: str, counts: np.ndarray, factors: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``{side}_cold_start_map_``: the ridge regression of the trained rows' ``[bias, factors]``
        on their encoded attributes (``{side}_cold_start="regression"``); the rows that have
        attributes but no rating are given its prediction (so ``predict`` and ``fold_in`` agree).

        The map ``W`` ((1 + p) x (1 + k), intercept first) minimizes
        ``|[b, A] - [1, Z] W|^2 + cold_start_regularization |W[1:]|^2`` over the rows with ratings
        and at least one observed attribute; ``Z`` are the encoded attributes minus their means
        (0 where missing). Without ``attribute_bias`` the bias column is 0 (no bias from
        attributes). An empty (0, 1 + k) map means "not available" (no attributes, weight 0 or
        ``"collective"``).
        """
        m = self.model
        a = self.side[side]
        V, M, means = a.V, a.M, a.means
        k = factors.shape[1]
        W = np.zeros((0, k + 1))
        rows = (counts > 0) & M.any(axis=1)
        if getattr(m, f"{side}_cold_start") == "regression" and a.weight > 0 and V.shape[1] and rows.any():
            Z = np.hstack([np.ones((int(rows.sum()), 1)), np.where(M[rows], V[rows] - means, 0.0)])
            T = np.hstack([bias[rows, None], factors[rows]]).astype(np.float64)
            if not m.attribute_bias:
                T[:, 0] = 0.0
            G = Z.T @ Z
            G[np.diag_indices_from(G)] += float(m.cold_start_regularization)
            G[0, 0] -= float(m.cold_start_regularization)  # the intercept is not shrunk
            W = sla.solve(G, Z.T @ T, assume_a="pos", check_finite=False)
            cold = (counts == 0) & M.any(axis=1)
            if cold.any():
                P = CMF._cold_start_rows(W, V[cold], M[cold], means)
                factors[cold] = P[:, 1:]
                bias[cold] = P[:, 0]
        return W.astype(factors.dtype)
