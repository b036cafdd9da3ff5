"""Recommendation, fold-in of new users, explanations and item similarity, shared by every model.

Every model scores ``global_mean + user_bias + w * item_bias + x_u . q_i`` (``w`` is
``item_bias_weight``, 1 by default); this module turns those scores into top-n lists for known
users (one or many, in memory-bounded blocks), folds in new users by a ridge regression against
the fixed item factors (the same regularization the model was trained with), and explains a
folded-in user's recommendations by the rated items that contributed most.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from mfrec.errors import DataError
from mfrec.kernels.predict import score_items

#: upper bound on the scores matrix of one block in recommend_many (floats)
BLOCK_ENTRIES = 1 << 22


@dataclass
class FoldIn:
    """A folded-in user: bias, factor vector, and which rated items were used / unknown."""

    bias: float
    factors: np.ndarray
    item_indices: np.ndarray
    ratings: np.ndarray
    unknown_items: list = field(default_factory=list)
    #: (k+1) x (k+1) inverse-normal-matrix factor for explanations (None for implicit models)
    solve: Any = None
    targets: np.ndarray | None = None


def parse_new_ratings(ratings: Mapping[Any, float] | pd.DataFrame | pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """Raw item ids and float ratings from a {item: rating} mapping, a Series or a DataFrame
    with columns ``item`` and ``rating``."""
    if ratings is None:
        return np.array([], dtype=object), np.array([], dtype=np.float64)
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("item", "rating") if c not in ratings.columns]
        if missing:
            raise DataError(f"new-user ratings need columns 'item' and 'rating'; missing {missing}")
        items, values = ratings["item"].to_numpy(), ratings["rating"].to_numpy()
    elif isinstance(ratings, pd.Series):
        items, values = ratings.index.to_numpy(), ratings.to_numpy()
    elif isinstance(ratings, Mapping):
        items = np.empty(len(ratings), dtype=object)
        items[:] = list(ratings.keys())
        try:  # the common case: plain numbers
            vals = np.fromiter(ratings.values(), dtype=np.float64, count=len(ratings))
            if np.isfinite(vals).all():
                return items, vals
        except (TypeError, ValueError):
            pass
        values = np.array(list(ratings.values()), dtype=object)
    else:
        raise TypeError(f"ratings must be a dict {{item: rating}}, a Series or a DataFrame, not {type(ratings).__name__}")
    if not isinstance(ratings, Mapping) and len(pd.unique(pd.Series(items, dtype=object))) != len(items):
        raise DataError("new-user ratings rate the same item more than once")
    vals = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"rating for item {items[k]!r} is {values[k]!r}, not a finite number")
    return items, vals


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the n best finite scores of each row, best first
    (rows with fewer finite scores are padded with -1 / -inf)."""
    m, width = scores.shape
    n_eff = min(n, width)
    if n_eff == 0:
        return np.empty((m, 0), dtype=np.int64), np.empty((m, 0), dtype=scores.dtype)
    if n_eff < width:
        part = np.argpartition(-scores, n_eff - 1, axis=1)[:, :n_eff]
    else:
        part = np.tile(np.arange(width), (m, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isfinite(vals), idx, -1)
    return idx, vals


class RecommenderMixin:
    """Top-n, fold-in and similarity on top of the fitted arrays of a `FactorModel`."""

    item_info_: pd.DataFrame | None = None

    # ------------------------------------------------------------------ item metadata
    def attach_items(self, items: pd.DataFrame) -> "RecommenderMixin":
        """Attach an item table (indexed by raw item id, e.g. ``dataset.items``) so results show
        ``title`` and ``genres``. Only the model's items are kept."""
        self._require_fitted()
        keep = [c for c in ("title", "genres", "year") if c in items.columns]
        info = items.reindex(pd.Index(self.item_map_.ids))[keep]
        info.index.name = "item"
        self.item_info_ = info
        return self

    def _with_info(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.item_info_ is None or len(df) == 0:
            return df
        extra = self.item_info_[[c for c in ("title", "genres") if c in self.item_info_.columns]]
        idx = self.item_map_.lookup(df["item"].to_numpy())
        for col in extra.columns:
            df[col] = extra[col].to_numpy()[idx]
        return df

    # ------------------------------------------------------------------ candidates
    def _candidate_mask(self, items: Iterable[Any] | None, filter: Iterable[Any] | None) -> np.ndarray:
        mask = np.ones(len(self.item_map_), dtype=bool)
        if items is not None:
            idx = self.item_map_.lookup(np.asarray(list(items), dtype=object) if not isinstance(items, np.ndarray) else items)
            mask[:] = False
            mask[idx[idx >= 0]] = True
        if filter is not None:
            idx = self.item_map_.lookup(np.asarray(list(filter), dtype=object) if not isinstance(filter, np.ndarray) else filter)
            mask[idx[idx >= 0]] = False
        return mask

    def _item_scores_base(self, item_bias_weight: float) -> np.ndarray:
        """``global_mean + w * item_bias`` for every item (float32)."""
        return (self.global_mean_ + item_bias_weight * self.item_bias_.astype(np.float64)).astype(np.float32)

    def _score_rows(self, bias: np.ndarray, X: np.ndarray, cand: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Scores of users given by (bias, factor rows) against the candidate items."""
        Q = self.item_factors_
        if len(X) == 1:  # one user: a serial Numba kernel, no BLAS thread pool to wake
            S = np.empty((1, Q.shape[0]), dtype=np.float32)
            score_items(Q, X[0].astype(Q.dtype), base, np.float32(bias[0]), S[0])
        else:
            # all items (no copy of the factor matrix), then the candidate columns
            S = X.astype(Q.dtype, copy=False) @ Q.T if Q.shape[1] else np.zeros((len(X), Q.shape[0]), np.float32)
            S += base[None, :]
            S += bias.astype(S.dtype)[:, None]
        return S if len(cand) == Q.shape[0] else S[:, cand]

    # ------------------------------------------------------------------ known users
    def recommend(self, user: Any, n: int = 10, exclude_seen: bool = True, items: Iterable[Any] | None = None,
                  filter: Iterable[Any] | None = None, item_bias_weight: float = 1.0) -> pd.DataFrame:
        """Top-``n`` items for a known user: DataFrame ``item``, ``score`` (+ ``title``, ``genres``
        when an item table is attached). ``items`` restricts the candidates, ``filter`` removes
        some; ``exclude_seen`` drops the user's training items. ``item_bias_weight`` < 1 ranks
        less by general popularity/acclaim and more by the personal part of the score."""
        self._require_fitted()
        self.user_map_.index_of(user, "user")
        df = self.recommend_many([user], n=n, exclude_seen=exclude_seen, items=items, filter=filter,
                                 item_bias_weight=item_bias_weight)
        return df.drop(columns=["user", "rank"]).reset_index(drop=True)

    def recommend_many(self, users: Iterable[Any] | None = None, n: int = 10, exclude_seen: bool = True,
                       items: Iterable[Any] | None = None, filter: Iterable[Any] | None = None,
                       item_bias_weight: float = 1.0, block_size: int | None = None,
                       callback: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Top-``n`` for many users (all when ``users`` is None): a long DataFrame with columns
        ``user``, ``item``, ``score``, ``rank`` (1 = best), users in the given order.

        Users are scored in blocks of ``block_size`` (default: a block's score matrix holds at
        most 4M floats), one BLAS matrix product per block, so memory stays bounded for any
        number of users. Unknown users raise KeyError naming them. ``callback(done, total)`` is
        called after each block (progress bars).
        """
        self._require_fitted()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if users is None:
            uidx = np.arange(len(self.user_map_), dtype=np.int64)
        else:
            raw = np.asarray(list(users), dtype=object) if not isinstance(users, np.ndarray) else users
            uidx = self.user_map_.lookup(raw)
            if (uidx < 0).any():
                bad = raw[uidx < 0]
                raise KeyError(f"unknown user(s) {list(bad[:5])}{' ...' if len(bad) > 5 else ''} ({len(bad)} in all); "
                               "use recommend_new() for new users")
        cand = np.flatnonzero(self._candidate_mask(items, filter))
        col_of = np.full(len(self.item_map_), -1, dtype=np.int64)
        col_of[cand] = np.arange(len(cand))
        base = self._item_scores_base(item_bias_weight)
        if block_size is None:
            block_size = max(1, BLOCK_ENTRIES // max(len(cand), 1))
        seen = self._seen_matrix() if exclude_seen else None
        out_u, out_i, out_s, out_r = [], [], [], []
        for start in range(0, len(uidx), block_size):
            ub = uidx[start:start + block_size]
            S = self._score_rows(self.user_bias_[ub], self.user_factors_[ub], cand, base)
            if seen is not None:
                block = seen[ub]
                rows = np.repeat(np.arange(len(ub)), np.diff(block.indptr))
                cols = col_of[block.indices]
                ok = cols >= 0
                S[rows[ok], cols[ok]] = -np.inf
            idx, vals = top_n(S, n)
            valid = idx >= 0
            rows = np.repeat(np.arange(len(ub)), valid.sum(axis=1))
            out_u.append(ub[rows])
            out_i.append(cand[idx[valid]])
            out_s.append(vals[valid])
            out_r.append(np.broadcast_to(np.arange(1, idx.shape[1] + 1), idx.shape)[valid])
            if callback is not None:
                callback(min(start + block_size, len(uidx)), len(uidx))
        u = np.concatenate(out_u) if out_u else np.array([], dtype=np.int64)
        i = np.concatenate(out_i) if out_i else np.array([], dtype=np.int64)
        df = pd.DataFrame({
            "user": self.user_map_.to_raw(u),
            "item": self.item_map_.to_raw(i),
            "score": np.concatenate(out_s).astype(np.float64) if out_s else np.array([]),
            "rank": np.concatenate(out_r).astype(np.int64) if out_r else np.array([], dtype=np.int64),
        })
        return self._with_info(df)

    def _seen_matrix(self) -> sp.csr_matrix:
        return self.seen_

    # ------------------------------------------------------------------ new users
    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """Ridge penalties (factors, bias) equivalent to the training objective for a user with
        ``n_ratings`` ratings. SGD objectives count regularization per rating: lambda = reg * n."""
        reg = float(getattr(self, "regularization", 0.0))
        breg = getattr(self, "bias_regularization", None)
        breg = reg if breg is None else float(breg)
        return reg * n_ratings, breg * n_ratings

    def _fold_in_targets(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ridge targets and the part of the user vector that is fixed (SVD++ implicit sum)."""
        offset = self.global_mean_ + self.item_bias_[item_idx].astype(np.float64)
        return values - offset, np.zeros(self.item_factors_.shape[1])

    def _known_new_ratings(self, ratings: Any) -> tuple[np.ndarray, np.ndarray, list]:
        """A new user's ratings as (item indices, values, unknown raw ids): unknown items are
        warned about and dropped; all-unknown is a DataError."""
        raw, values = parse_new_ratings(ratings)
        idx = self.item_map_.lookup(raw) if len(raw) else np.array([], dtype=np.int64)
        unknown = [x.item() if hasattr(x, "item") else x for x in raw[idx < 0]] if len(raw) else []
        if len(raw) and len(unknown) == len(raw):
            raise DataError(f"none of the rated items is known to the model: {unknown[:10]}")
        if unknown:
            warnings.warn(f"ignored {len(unknown)} unknown item id(s): {unknown[:10]}", stacklevel=3)
        keep = idx >= 0
        return idx[keep], values[keep], unknown

    def fold_in(self, ratings: Mapping[Any, float] | pd.DataFrame | pd.Series) -> FoldIn:
        """Solve a new user's bias and factors against the fixed item factors.

        Minimizes ``sum_j (r_j - mu - b_j - b - x.q_j)^2 + lam |x|^2 + lam_b b^2`` with the
        penalties the model was trained with (a (k+1) x (k+1) Cholesky solve). Unknown item ids
        are reported in ``unknown_items`` (and warned about); with no known item at all it
        raises ``DataError``. Empty ratings give the zero user (bias 0, factors 0).
        """
        self._require_fitted()
        idx, values, unknown = self._known_new_ratings(ratings)
        k = self.item_factors_.shape[1]
        if len(idx) == 0:
            return FoldIn(0.0, np.zeros(k, dtype=self.item_factors_.dtype), idx, values, unknown)
        return self._fold_in_solve(idx, values, unknown)

    def _fold_in_solve(self, idx: np.ndarray, values: np.ndarray, unknown: list) -> FoldIn:
        t, fixed = self._fold_in_targets(idx, values)
        use_bias = bool(self._has_bias)
        Q = self.item_factors_[idx].astype(np.float64)
        X = np.hstack([np.ones((len(idx), 1)), Q]) if use_bias else Q
        lam, lam_b = self._fold_in_lambdas(len(idx))
        A = X.T @ X
        A[np.diag_indices_from(A)] += lam
        if use_bias:
            A[0, 0] += lam_b - lam
        t_eff = t - Q @ fixed
        factor = sla.cho_factor(A, lower=True, check_finite=False)
        w = sla.cho_solve(factor, X.T @ t_eff, check_finite=False)
        bias = float(w[0]) if use_bias else 0.0
        x = (w[1:] if use_bias else w) + fixed
        return FoldIn(bias, x.astype(self.item_factors_.dtype), idx, values, unknown, factor, t_eff)

    def recommend_new(self, ratings: Mapping[Any, float] | pd.DataFrame | pd.Series | None, n: int = 10,
                      exclude_rated: bool = True, items: Iterable[Any] | None = None,
                      filter: Iterable[Any] | None = None, item_bias_weight: float = 1.0,
                      explain: int = 0) -> pd.DataFrame:
        """Recommendations for a new user from a few ratings, without retraining.

        Same DataFrame shape as :meth:`recommend`. With ``explain=m`` a column ``because``
        lists, for each recommendation, the ``m`` rated items that contributed most to its
        personal score (exact: the ridge solution is linear in the ratings). With no ratings the
        zero user is scored, i.e. items rank by ``mean + item_bias`` (popularity for implicit
        models). Unknown rated items are listed in ``df.attrs['unknown_items']``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        fold = self.fold_in(ratings if ratings is not None else {})
        cand_mask = self._candidate_mask(items, filter)
        if exclude_rated:
            cand_mask[fold.item_indices] = False
        cand = np.flatnonzero(cand_mask)
        base = self._item_scores_base(item_bias_weight)
        S = self._score_rows(np.array([fold.bias]), fold.factors[None, :], cand, base)
        idx, vals = top_n(S, n)
        valid = idx[0] >= 0
        chosen = cand[idx[0][valid]]
        df = pd.DataFrame({"item": self.item_map_.to_raw(chosen), "score": vals[0][valid].astype(np.float64)})
        df = self._with_info(df)
        if explain and len(fold.item_indices):
            df["because"] = self._explain(fold, chosen, int(explain))
        df.attrs["unknown_items"] = fold.unknown_items
        return df

    def _contributions(self, fold: FoldIn, chosen: np.ndarray) -> np.ndarray:
        """contrib[r, j]: part of recommended item r's personal score ``x . q_r`` due to rated item j
        (exact: the ridge solution is linear in the targets, so the parts sum to ``x . q_r``)."""
        use_bias = bool(self._has_bias)
        Q = self.item_factors_[fold.item_indices].astype(np.float64)
        X = np.hstack([np.ones((len(Q), 1)), Q]) if use_bias else Q
        Qc = self.item_factors_[chosen].astype(np.float64)
        # the personal part x.q_r only: the new user's bias is common to every item, not a reason
        Xc = np.hstack([np.zeros((len(Qc), 1)), Qc]) if use_bias else Qc
        H = Xc @ sla.cho_solve(fold.solve, X.T, check_finite=False)  # chosen x rated "hat" weights
        return H * fold.targets[None, :]

    def _explain(self, fold: FoldIn, chosen: np.ndarray, m: int) -> list[list]:
        contrib = self._contributions(fold, chosen)
        rated_raw = self.item_map_.to_raw(fold.item_indices)
        names = rated_raw
        if self.item_info_ is not None and "title" in self.item_info_.columns:
            names = self.item_info_["title"].to_numpy()[fold.item_indices]
        order = np.argsort(-contrib, axis=1)[:, :m]
        return [[names[j] for j in row if contrib[r, j] > 0] for r, row in enumerate(order)]

    def add_user(self, user_id: Any, ratings: Mapping[Any, float] | pd.DataFrame | pd.Series) -> FoldIn:
        """Fold a new user in and keep them in the model (recommend/predict know them after)."""
        self._require_fitted()
        if user_id in self.user_map_:
            raise ValueError(f"user {user_id!r} is already in the model")
        fold = self.fold_in(ratings)
        self.user_map_ = self.user_map_.extend([user_id])
        self.user_factors_ = np.vstack([self.user_factors_, fold.factors[None, :].astype(self.user_factors_.dtype)])
        self.user_bias_ = np.append(self.user_bias_, np.asarray(fold.bias, dtype=self.user_bias_.dtype))
        row = sp.csr_matrix((np.ones(len(fold.item_indices), dtype=np.float32),
                             (np.zeros(len(fold.item_indices), dtype=np.int64), fold.item_indices)),
                            shape=(1, len(self.item_map_)))
        self.seen_ = sp.vstack([self.seen_, row], format="csr")
        self._after_add_user(fold)
        return fold

    def _after_add_user(self, fold: FoldIn) -> None:
        """Hook for models with more per-user state (SVD++)."""

    # ------------------------------------------------------------------ items
    def similar_items(self, item: Any, n: int = 10) -> pd.DataFrame:
        """The ``n`` nearest items to ``item`` by cosine similarity of the item factors:
        DataFrame ``item``, ``similarity`` (+ ``title``, ``genres``)."""
        self._require_fitted()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        j = self.item_map_.index_of(item, "item")
        Q = self.item_factors_.astype(np.float32)
        if Q.shape[1] == 0:
            raise ValueError(f"{type(self).__name__} has no item factors to compare")
        norms = np.linalg.norm(Q, axis=1)
        norms[norms == 0] = 1.0
        sims = (Q @ Q[j]) / (norms * norms[j])
        sims[j] = -np.inf
        idx, vals = top_n(sims[None, :], n)
        valid = idx[0] >= 0
        df = pd.DataFrame({"item": self.item_map_.to_raw(idx[0][valid]), "similarity": vals[0][valid].astype(np.float64)})
        return self._with_info(df)
