"""Recommendation, fold-in of new users, explanations and item similarity, shared by every model.

Every model scores ``global_mean + user_bias + w * item_bias + x_u . q_i`` (``w`` is
``item_bias_weight``, 1 by default); this module turns those scores into top-n lists for known
users (one or many, in memory-bounded blocks), folds in new users by a ridge regression against
the fixed item factors (the same regularization the model was trained with), and explains a
folded-in user's recommendations by the rated items that contributed most.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from mfrec._flags import check_flag
from mfrec.data.idmap import plain
from mfrec.errors import DataError, FoldInError
from mfrec.kernels.predict import score_items
from mfrec.kernels.topn import rows_top_n
from mfrec.threads import kernel_threads, parallel_rows, resolve_threads, run_in_threads
from mfrec._warnings import warn_user

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


def parse_new_ratings(ratings: Mapping[Any, float] | pd.DataFrame | pd.Series | None,
                      scale: tuple[float, float] | None = None,
                      what: str = "item") -> tuple[np.ndarray, np.ndarray]:
    """Raw ids and float ratings from a {id: rating} mapping, a Series or a DataFrame with
    columns ``item`` and ``rating``. Every rating must be a finite number and, with ``scale``
    ``(lo, hi)``, inside it (DataError naming the ``what`` id and the scale)."""
    if ratings is None:
        return np.array([], dtype=object), np.array([], dtype=np.float64)
    vals: np.ndarray | None = None
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("item", "rating") if c not in ratings.columns]
        if missing:
            raise DataError(f"new-user ratings need columns 'item' and 'rating'; missing {missing}")
        if "user" in ratings.columns and ratings["user"].nunique(dropna=False) > 1:  # one new user's ratings
            raise DataError(f"new-user ratings are one user's, but the 'user' column holds "
                            f"{ratings['user'].nunique(dropna=False)} users; pass each user's rows on their own")
        items, values = ratings["item"].to_numpy(), ratings["rating"].to_numpy()
    elif isinstance(ratings, pd.Series):
        items, values = ratings.index.to_numpy(), ratings.to_numpy()
    elif isinstance(ratings, Mapping):
        items = np.empty(len(ratings), dtype=object)
        items[:] = list(ratings.keys())
        values = np.empty(len(ratings), dtype=object)  # one object per rating, even a list
        values[:] = list(ratings.values())
        if all(isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool) for v in values):
            vals = values.astype(np.float64)  # the common case: plain real numbers
            values = None
    else:
        raise TypeError(f"ratings must be a dict {{{what}: rating}}, a Series or a DataFrame, "
                        f"not {type(ratings).__name__}")
    from mfrec.data.ratings import _isna

    missing = _isna(np.asarray(items, dtype=object))
    if missing.any():
        raise DataError(f"missing {what} id in the new ratings ({int(missing.sum())} in all): None/NaN is not an id")
    if values is not None:
        values = np.asarray(values)
        if values.dtype.kind in "cbUS" or values.dtype == object:  # a rating is a real number: not a
            # bool (True would be 1.0), not text ("5" would be read one way here and another elsewhere)
            odd = [k for k, v in enumerate(values.tolist()) if isinstance(v, (bool, np.bool_)) or not (
                isinstance(v, numbers.Real) or v is None)] if values.dtype == object else [0]
            if odd:
                k = odd[0]
                raise DataError(f"rating for {what} {plain(items[k])!r} is {plain(values[k])!r} "
                                f"({type(values[k]).__name__}), not a real number")
            if values.dtype == object:  # real numbers of any kind (Fraction ...), None as missing
                vals = np.array([np.nan if v is None else float(v) for v in values.tolist()], dtype=np.float64)
    if not isinstance(ratings, Mapping) and len(pd.unique(pd.Series(items, dtype=object))) != len(items):
        raise DataError(f"new ratings rate the same {what} more than once")
    if vals is None:
        vals = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        shown = values[k] if values is not None else vals[k]
        raise DataError(f"rating for {what} {plain(items[k])!r} is {plain(shown)!r}, not a finite number")
    if scale is not None and len(vals):
        lo, hi = float(scale[0]), float(scale[1])
        out = (vals < lo) | (vals > hi)
        if out.any():
            k = int(np.flatnonzero(out)[0])
            raise DataError(f"rating {plain(vals[k])!r} for {what} {plain(items[k])!r} is outside the model's "
                            f"rating scale {lo:g}-{hi:g} ({int(out.sum())} rating(s) outside it)")
    return items, vals


def resolve_new_ratings(ratings: Any, id_map: Any, scale: tuple[float, float] | None,
                        what: str = "item") -> tuple[np.ndarray, np.ndarray, list]:
    """The one validation path of new ratings (fold-in, recommend_new, add_user, CMF's
    predict_new and fold_in_item): parsed and scale-checked by `parse_new_ratings`, looked up in
    ``id_map``; two keys that name the same known id (``1`` and ``"1"``) are a DataError, unknown
    ids are warned about and dropped, all-unknown is a DataError. Returns (indices, values,
    unknown raw ids)."""
    raw, values = parse_new_ratings(ratings, scale, what)
    if len(raw) == 0:
        return np.array([], dtype=np.int64), values, []
    idx = id_map.lookup(raw)
    known = idx >= 0
    unknown = [plain(x) for x in raw[~known]]
    if not known.any():
        raise DataError(f"none of the rated {what}s is known to the model: {unknown[:10]}")
    kidx = idx[known]
    uniq, first, counts = np.unique(kidx, return_index=True, return_counts=True)
    if (counts > 1).any():
        j = uniq[counts > 1][0]
        keys = [plain(x) for x in raw[known][kidx == j]]
        raise DataError(f"new ratings rate {what} {plain(id_map.to_raw([j])[0])!r} more than once "
                        f"(keys {keys} name the same {what})")
    if unknown:
        warn_user(f"ignored {len(unknown)} unknown {what} id(s): {unknown[:10]}")
    return kidx, values[known], unknown


def as_ids(values: Any, param: str) -> np.ndarray:
    """An ``ids`` argument (``items=``, ``filter=``, ``users=``) as a 1-D array of raw ids.

    Any iterable of ids (list, tuple, set, array, Series, Index, generator) is accepted; a
    string or a single scalar is a TypeError rather than being split into characters."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{param}= takes a list of ids, not the string {values!r} (write {param}=[{values!r}])")
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise TypeError(f"{param}= takes a 1-D list of ids, got an array of shape {values.shape}")
        out = values
    elif isinstance(values, Mapping) or not isinstance(values, abc.Iterable):
        raise TypeError(f"{param}= takes a list of ids, not {type(values).__name__} {values!r}")
    else:
        ids = list(values)
        out = np.empty(len(ids), dtype=object)
        out[:] = ids
    from mfrec.data.ratings import _isna

    missing = _isna(out)
    if missing.any():
        raise DataError(f"{param}= holds a missing id at position {int(np.flatnonzero(missing)[0])} "
                        "(None/NaN is not an id)")
    return out


def check_request(n: Any = 1, item_bias_weight: Any = 1.0, explain: Any = 0, **flags: Any) -> None:
    """ValueError naming a bad request argument: ``n`` an integer >= 1, ``item_bias_weight`` a
    finite number, ``explain`` an integer >= 0, each of ``flags`` (``exclude_seen=...``) a real
    bool (a string such as ``"no"`` would be truthy)."""
    for name, value in flags.items():
        check_flag(name, value)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(item_bias_weight, (bool, np.bool_)) or not isinstance(item_bias_weight, numbers.Real) \
            or not math.isfinite(float(item_bias_weight)):
        raise ValueError(f"item_bias_weight must be a finite number, got {item_bias_weight!r}")
    if abs(float(item_bias_weight)) > 1e6:  # scores are float32: 1e300 x a bias overflows them all to one value
        raise ValueError(f"item_bias_weight must be within [-1e6, 1e6] (scores are float32), got {item_bias_weight!r}")
    if isinstance(explain, bool) or not isinstance(explain, numbers.Integral) or explain < 0:
        raise ValueError(f"explain must be an integer >= 0 (how many rated items to list), got {explain!r}")


def with_predicted_rating(model: Any, df: pd.DataFrame, item_bias_weight: float = 1.0) -> pd.DataFrame:
    """Rating models: add ``predicted_rating`` after ``score``, the model's rating estimate clipped
    to its scale (``score`` ranks, may leave the scale, and with ``item_bias_weight != 1`` is not
    a rating). Ranking models: unchanged. The CLI and the service show the same column."""
    if model.kind != "rating" or df.empty:
        return df
    idx = model.item_map_.lookup(df["item"].to_numpy())
    pred = df["score"].to_numpy(dtype=np.float64) + (1.0 - item_bias_weight) * model.item_bias_[idx].astype(np.float64)
    lo, hi = model.rating_scale_
    df.insert(list(df.columns).index("score") + 1, "predicted_rating", np.clip(pred, lo, hi))
    return df


def top_n(scores: np.ndarray, n: int, parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the n best finite scores of each row, best first, ties by
    lower column (rows with fewer finite scores are padded with -1 / -inf).

    One Numba pass over the rows (`rows_top_n`; chunks of rows on the current thread count, or
    on the calling thread alone with ``parallel=False``) instead of argpartition + argsort +
    gathers: 2-3x faster for an all-user batch."""
    scores = np.asarray(scores)
    m, width = scores.shape
    n_eff = min(n, width)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    idx = np.empty((m, n_eff), dtype=np.int64)
    vals = np.empty((m, n_eff), dtype=scores.dtype)
    if n_eff and m:
        if parallel:
            parallel_rows(rows_top_n, m, scores, n_eff, idx, vals)
        else:
            rows_top_n(0, m, scores, n_eff, idx, vals)
    return idx, vals


class RecommenderMixin:
    """Top-n, fold-in and similarity on top of the fitted arrays of a `FactorModel`."""

    item_info_: pd.DataFrame | None = None

    # ------------------------------------------------------------------ item metadata
    def attach_items(self, items: pd.DataFrame, *, fitted: bool = True) -> "RecommenderMixin":
        """Attach an item table (indexed by raw item id, e.g. ``dataset.items``) so results show
        ``title`` and ``genres``. Only the model's items are kept; a refit keeps the table,
        aligned to the new items. (``fitted=False``: the refit's own call, before the arrays.)"""
        if fitted:
            self._require_fitted()
        if not isinstance(items, pd.DataFrame):
            raise TypeError(f"items must be a DataFrame indexed by item id (columns title, genres, year), "
                            f"got {type(items).__name__}")
        keep = [c for c in ("title", "genres", "year") if c in items.columns]
        if not keep:
            raise DataError(f"the item table has none of the columns title, genres, year (it has "
                            f"{[str(c) for c in items.columns][:8]})")
        # ids read by the lookup rule everything else uses ("51" finds item 51 of an int-id model)
        if isinstance(items.index, pd.RangeIndex) and fitted:
            id_cols = [c for c in items.columns if str(c).lower() in ("item", "item_id", "itemid", "movieid", "id")
                       and not (pd.Series(items[c].to_numpy()) == pd.Series(items.index.to_numpy())).all()]
            if id_cols:  # ds.items.reset_index(): row numbers would pass for item ids
                raise DataError(f"the item table is indexed 0..n-1 and has an id column {id_cols[0]!r}: index it by "
                                f"item id (items.set_index({id_cols[0]!r}))")
        pos = self.item_map_.lookup(items.index.to_numpy())
        found = pos >= 0
        if len(items) and not found.any() and fitted:  # (a refit's new items may share none: no titles)
            raise DataError(f"none of the item table's {len(items)} ids is an item of the model (the table has "
                            f"{plain(items.index[0])!r} ..., the model {plain(self.item_map_.ids[0])!r} ...)")
        dup = pd.Series(pos[found]).duplicated()
        if dup.any():
            k = int(np.flatnonzero(found)[np.flatnonzero(dup.to_numpy())[0]])
            raise DataError(f"the item table has two rows for item {plain(items.index[k])!r}; keep one per item")
        info = items[keep].iloc[np.flatnonzero(found)].set_axis(pd.Index(self.item_map_.ids[pos[found]]), axis=0)
        info = info.reindex(pd.Index(self.item_map_.ids, name="item"))
        missing = len(self.item_map_) - int(found.sum())
        if fitted and missing:
            warn_user(f"{missing} of the model's {len(self.item_map_)} items have no row in the item table "
                      "(they show no title)")
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
    def _candidate_mask(self, items: Iterable[Any] | None, filter: Iterable[Any] | None) -> tuple[np.ndarray, list]:
        """Mask of the candidate items and the unknown ids of ``items`` (warned about; when every
        id of a non-empty ``items`` is unknown, DataError). Unknown ``filter`` ids are moot."""
        mask = np.ones(len(self.item_map_), dtype=bool)
        unknown: list = []
        if items is not None:
            raw = as_ids(items, "items")
            idx = self.item_map_.lookup(raw)
            mask[:] = False
            mask[idx[idx >= 0]] = True
            if (idx < 0).any():
                unknown = [plain(x) for x in raw[idx < 0]]
                if len(unknown) == len(raw):
                    raise DataError(f"none of the candidate items is known to the model: {unknown[:10]}")
                warn_user(f"ignored {len(unknown)} unknown item id(s) in items=: {unknown[:10]}")
        if filter is not None:
            idx = self.item_map_.lookup(as_ids(filter, "filter"))
            mask[idx[idx >= 0]] = False
        return mask, unknown

    def _item_scores_base(self, item_bias_weight: float) -> np.ndarray:
        """``global_mean + w * item_bias`` for every item (float32)."""
        return (self.global_mean_ + item_bias_weight * self.item_bias_.astype(np.float64)).astype(np.float32)

    def _item_popularity(self) -> np.ndarray:
        """How many users rated each item (from ``seen_``, cached per ``seen_``)."""
        cache = self.__dict__.get("_popularity_cache")
        if cache is None or cache[0] is not self.seen_:
            seen = self.seen_
            cache = (seen, np.bincount(seen.indices, minlength=seen.shape[1]).astype(np.float32))
            self._popularity_cache = cache
        return cache[1]

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

    def _top_rows(self, S: np.ndarray, n: int, bias: np.ndarray, X: np.ndarray,
                  cand: np.ndarray, parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """`top_n` of every row of ``S`` (excluded items already at -inf).

        A user without information (zero bias and factors: no known rating) scores every item
        alike in a model without item biases (FunkMF, ImplicitALS, ALS without biases), so such
        rows rank by popularity (users who rated the item in training) and show the model's
        fallback prediction (the training mean for rating models, 0 for preference models), the
        same value ``predict`` gives an unknown user. Models with biases rank the zero user by
        ``mean + w * item_bias`` already, and so does BPR (``w * item_bias``)."""
        if self._has_bias or self._ranks_by_item_bias or len(S) == 0:
            return top_n(S, n, parallel)
        zero = (np.asarray(bias) == 0) & ~np.any(np.asarray(X) != 0, axis=1)
        if not zero.any():
            return top_n(S, n, parallel)
        allowed = np.isfinite(S[zero])
        key = S.copy()
        key[zero] = np.where(allowed, self._item_popularity()[cand][None, :], -np.inf)
        fallback = self.train_mean_ if self.kind == "rating" else 0.0
        S[zero] = np.where(allowed, np.float32(fallback), -np.inf)
        idx, _ = top_n(key, n, parallel)
        vals = np.take_along_axis(S, np.maximum(idx, 0), axis=1)
        vals[idx < 0] = -np.inf
        return idx, vals

    # ------------------------------------------------------------------ known users
    def recommend(self, user: Any, n: int = 10, exclude_seen: bool = True, items: Iterable[Any] | None = None,
                  filter: Iterable[Any] | None = None, item_bias_weight: float = 1.0) -> pd.DataFrame:
        """Top-``n`` items for a known user: DataFrame ``item``, ``score`` (+ ``title``, ``genres``
        when an item table is attached). ``items`` restricts the candidates, ``filter`` removes
        some; ``exclude_seen`` drops the user's training items. ``item_bias_weight`` < 1 ranks
        less by general popularity/acclaim and more by the personal part of the score. Unknown
        ids in ``items`` are warned about and listed in ``df.attrs['unknown_items']``; only an
        all-unknown ``items`` is an error (as in :meth:`recommend_new`)."""
        self._require_fitted()
        check_request(n, item_bias_weight, exclude_seen=exclude_seen)
        self.user_map_.index_of(user, "user")
        df = self.recommend_many([user], n=n, exclude_seen=exclude_seen, items=items, filter=filter,
                                 item_bias_weight=item_bias_weight)
        unknown = df.attrs.get("unknown_items", [])
        df = df.drop(columns=["user", "rank"]).reset_index(drop=True)
        df.attrs["unknown_items"] = unknown
        return df

    def recommend_many(self, users: Iterable[Any] | None = None, n: int = 10, exclude_seen: bool = True,
                       items: Iterable[Any] | None = None, filter: Iterable[Any] | None = None,
                       item_bias_weight: float = 1.0, block_size: int | None = None,
                       callback: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Top-``n`` for many users (all when ``users`` is None): a long DataFrame with columns
        ``user``, ``item``, ``score``, ``rank`` (1 = best), users in the given order (a user given
        twice gets their list twice, as the output follows ``users``).

        Users are scored in blocks of ``block_size`` (default: a block's score matrix holds at
        most 4M floats), one BLAS matrix product per block, so memory stays bounded for any
        number of users. Unknown users raise KeyError naming them; unknown ``items`` ids are
        listed in ``df.attrs['unknown_items']``. ``callback(done, total)`` is called after each
        block (progress bars).
        """
        self._require_fitted()
        check_request(n, item_bias_weight, exclude_seen=exclude_seen)
        if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral)
                                       or block_size < 1):
            raise ValueError(f"block_size must be None or an integer >= 1, got {block_size!r}")
        if users is None:
            uidx = np.arange(len(self.user_map_), dtype=np.int64)
        else:
            raw = as_ids(users, "users")
            uidx = self.user_map_.lookup(raw)
            if (uidx < 0).any():
                bad = [plain(x) for x in raw[uidx < 0]]
                raise KeyError(f"unknown user(s) {bad[:5]}{' ...' if len(bad) > 5 else ''} ({len(bad)} in all); "
                               "use recommend_new() for new users")
        cand_mask, unknown = self._candidate_mask(items, filter)
        cand = np.flatnonzero(cand_mask)
        col_of = np.full(len(self.item_map_), -1, dtype=np.int64)
        col_of[cand] = np.arange(len(cand))
        base = self._item_scores_base(item_bias_weight)
        if block_size is None:  # bounded memory, and at least one block per thread
            per_thread = -(-len(uidx) // resolve_threads(getattr(self, "threads", None)))
            block_size = max(1, min(BLOCK_ENTRIES // max(len(cand), 1), per_thread))
        seen = self._seen_matrix() if exclude_seen else None
        out_u, out_i, out_s, out_r = [], [], [], []
        # a batch scores under ONE BLAS thread (the block product is small; BLAS threads that
        # spin after it steal the cores from the parallel top-n: 2x slower measured, section 11
        # of benchmarks/RESULTS.md) and selects on the model's threads; one user needs neither
        limits = kernel_threads(getattr(self, "threads", None)) if len(uidx) > 1 else contextlib.nullcontext()
        with limits:
            self._recommend_blocks(uidx, block_size, cand, col_of, base, seen, n, callback,
                                   (out_u, out_i, out_s, out_r))
        u = np.concatenate(out_u) if out_u else np.array([], dtype=np.int64)
        i = np.concatenate(out_i) if out_i else np.array([], dtype=np.int64)
        df = pd.DataFrame({
            "user": self.user_map_.to_raw(u),
            "item": self.item_map_.to_raw(i),
            "score": np.concatenate(out_s).astype(np.float64) if out_s else np.array([]),
            "rank": np.concatenate(out_r).astype(np.int64) if out_r else np.array([], dtype=np.int64),
        })
        df = self._with_info(df)
        df.attrs["unknown_items"] = unknown
        return df

    def _recommend_blocks(self, uidx: np.ndarray, block_size: int, cand: np.ndarray, col_of: np.ndarray,
                          base: np.ndarray, seen: sp.csr_matrix | None, n: int,
                          callback: Callable[[int, int], None] | None, outs: tuple[list, ...]) -> None:
        """Score, mask and select every block of users (the loop of `recommend_many`).

        With several blocks and threads, whole blocks run at once on the threads, each on the
        calling thread's single BLAS thread and a serial top-n (at 25,000 items the score product
        is ~90% of a batch and one BLAS thread's product is the limit; two BLAS threads per
        product were slower, benchmarks/RESULTS.md 11.0); one block selects its rows in parallel.
        A thread slowed by another process just takes fewer blocks. Results keep the user order."""
        starts = range(0, len(uidx), block_size)
        threads = min(len(starts), resolve_threads(getattr(self, "threads", None))) if len(starts) > 1 else 1

        def one(start: int) -> tuple[np.ndarray, ...]:
            return self._recommend_block(uidx[start:start + block_size], cand, col_of, base, seen, n, threads == 1)

        for start, block in zip(starts, run_in_threads(one, starts, threads)):
            for out, part in zip(outs, block):
                out.append(part)
            if callback is not None:
                callback(min(start + block_size, len(uidx)), len(uidx))

    def _recommend_block(self, ub: np.ndarray, cand: np.ndarray, col_of: np.ndarray, base: np.ndarray,
                         seen: sp.csr_matrix | None, n: int, parallel: bool) -> tuple[np.ndarray, ...]:
        """One block of users: (users, items, scores, ranks) of their top-n."""
        bias, X = self.user_bias_[ub], self.user_factors_[ub]
        S = self._score_rows(bias, X, cand, base)
        if seen is not None:
            block = seen[ub]
            rows = np.repeat(np.arange(len(ub)), np.diff(block.indptr))
            cols = col_of[block.indices]
            ok = cols >= 0
            S[rows[ok], cols[ok]] = -np.inf
        idx, vals = self._top_rows(S, n, bias, X, cand, parallel)
        valid = idx >= 0
        rows = np.repeat(np.arange(len(ub)), valid.sum(axis=1))
        ranks = np.broadcast_to(np.arange(1, idx.shape[1] + 1), idx.shape)[valid]
        return ub[rows], cand[idx[valid]], vals[valid], ranks

    def _seen_matrix(self) -> sp.csr_matrix:
        return self.seen_

    # ------------------------------------------------------------------ new users
    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """Ridge penalties (factors, bias) of one new user with ``n_ratings`` ratings, equivalent to
        the training objective. Each model family declares its own (SGD: ``reg * n``, ALS: ``reg``;
        `FactorModel` refuses a class that declares neither this nor ``_fold_in_solve``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no fold-in rule")

    def _fold_in_targets(self, item_idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ridge targets and the part of the user vector that is fixed (SVD++ implicit sum)."""
        offset = self.global_mean_ + self.item_bias_[item_idx].astype(np.float64)
        return values - offset, np.zeros(self.item_factors_.shape[1])

    def _known_new_ratings(self, ratings: Any) -> tuple[np.ndarray, np.ndarray, list]:
        """A new user's ratings as (item indices, values, unknown raw ids), validated by
        `resolve_new_ratings` against the model's rating scale."""
        return resolve_new_ratings(ratings, self.item_map_, self.rating_scale_, "item")

    def fold_in(self, ratings: Mapping[Any, float] | pd.DataFrame | pd.Series) -> FoldIn:
        """Solve a new user's bias and factors against the fixed item factors.

        Minimizes ``sum_j (r_j - mu - b_j - b - x.q_j)^2 + lam |x|^2 + lam_b b^2`` with the
        penalties the model was trained with (a (k+1) x (k+1) Cholesky solve). Unknown item ids
        are reported in ``unknown_items`` (and warned about); with no known item at all it
        raises ``DataError``, as does a rating outside the model's rating scale or two keys
        naming the same item. Empty ratings give the zero user (bias 0, factors 0).
        """
        self._require_fitted()
        idx, values, unknown = self._known_new_ratings(ratings)
        k = self.item_factors_.shape[1]
        if len(idx) == 0:
            return FoldIn(0.0, np.zeros(k, dtype=self.item_factors_.dtype), idx, values, unknown)
        return self._solve_new_user(idx, values, unknown)

    def _solve_new_user(self, idx: np.ndarray, values: np.ndarray, unknown: list, *extra: Any) -> FoldIn:
        """`_fold_in_solve`, with a singular or overflowing ridge system reported as `FoldInError`
        naming the parameters behind it (never a LinAlgError from inside scipy, nor NaN factors)."""
        cause = "its solution is not finite"
        fold = None
        try:
            with np.errstate(all="ignore"):
                fold = self._fold_in_solve(idx, values, unknown, *extra)
        except np.linalg.LinAlgError as exc:  # scipy's is a subclass
            cause = f"the system is singular ({exc})"
        if fold is not None and np.isfinite(fold.bias) and np.isfinite(fold.factors).all():
            return fold
        params = self.get_params()  # type: ignore[attr-defined]
        named = ", ".join(f"{p}={params[p]!r}" for p in ("regularization", "noise_precision", "alpha", "factors")
                          if p in params)
        raise FoldInError(f"{type(self).__name__} cannot fold in a new user with {len(idx)} rating(s): {cause}. "
                          f"The parameters decide it ({named}): a regularization of 0 leaves fewer ratings than "
                          "factors without a unique solution, and a huge precision overflows; fit with a "
                          "regularization > 0 or a smaller precision")

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
        zero user is scored, i.e. items rank by ``mean + item_bias`` (by popularity for models
        without item biases, see `_top_rows`). Ratings outside the model's rating scale are a
        DataError. Unknown ids (rated or in ``items``) are listed in
        ``df.attrs['unknown_items']``; only an all-unknown list is an error.
        """
        check_request(n, item_bias_weight, explain, exclude_rated=exclude_rated)
        fold = self.fold_in(ratings if ratings is not None else {})
        cand_mask, unknown_cand = self._candidate_mask(items, filter)
        if exclude_rated:
            cand_mask[fold.item_indices] = False
        cand = np.flatnonzero(cand_mask)
        base = self._item_scores_base(item_bias_weight)
        bias, X = np.array([fold.bias]), fold.factors[None, :]
        S = self._score_rows(bias, X, cand, base)
        idx, vals = self._top_rows(S, n, bias, X, cand)
        valid = idx[0] >= 0
        chosen = cand[idx[0][valid]]
        df = pd.DataFrame({"item": self.item_map_.to_raw(chosen), "score": vals[0][valid].astype(np.float64)})
        df = self._with_info(df)
        if explain and len(fold.item_indices):
            df["because"] = self._explain(fold, chosen, int(explain))
        df.attrs["unknown_items"] = fold.unknown_items + [x for x in unknown_cand if x not in fold.unknown_items]
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
        if user_id is None or pd.isna(user_id) is True:
            raise ValueError(f"user_id is missing ({user_id!r}); a new user needs an id")
        if self.user_map_.lookup([user_id])[0] >= 0:  # by the rule of every lookup: "1" is user 1
            raise ValueError(f"user {user_id!r} is already in the model")
        _check_new_id_type(self.user_map_, user_id, "user")
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
        check_request(n)
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


def _check_new_id_type(id_map: Any, raw: Any, what: str) -> None:
    """A new id must have the model's id type (int64 or str), or the model could not be saved
    (a model file keeps one id type) and lookups would read it as another id."""
    if not id_map.foreign([raw]):
        return
    value = raw.item() if isinstance(raw, np.generic) else raw
    if id_map.ids.dtype.kind != "i":
        raise ValueError(f"{what} id {raw!r} is a {type(raw).__name__}, but this model's {what} ids are "
                         f"text: give a str")
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{what} id {raw!r} is outside int64, the type of this model's {what} ids")
    raise ValueError(f"{what} id {raw!r} is a {type(raw).__name__}, but this model's {what} ids are "
                     f"integers (int64): give an int")
