"""Evaluation metrics: rating error (RMSE, MAE) and top-n ranking quality, vectorized over users.

Rating metrics compare predicted with true ratings. Ranking metrics compare ranked
recommendation lists (a DataFrame with columns ``user``, ``item`` and ``rank``, 1 = best, as
:meth:`~mfrec.models.base.FactorModel.recommend_many` returns) with held-out test ratings.

Definitions (``k`` is the cut-off, ``hits@k`` the recommended items at ranks ``<= k`` that are
relevant, ``R_u`` the user's number of relevant test items):

* relevance is binary: a test item is relevant when its test rating is ``>= relevance_threshold``
  (4.0 by default, "liked" on a 1-5 scale);
* ``precision@k = hits@k / k`` (a list shorter than ``k`` still divides by ``k``);
* ``recall@k = hits@k / R_u``;
* ``hit_rate@k = 1`` if ``hits@k > 0`` else ``0``;
* ``ndcg@k = DCG / IDCG`` with ``DCG = sum over hits at rank r <= k of 1 / log2(r + 1)`` and
  ``IDCG`` the DCG of the ideal list, ``min(k, R_u)`` relevant items at ranks ``1 ..``;
* ``map@k``: the mean over users of ``AP@k = (sum over hits at rank r <= k of precision@r) /
  min(k, R_u)``;
* ``mrr@k = 1 / rank`` of the first relevant item within the top ``k`` (0 if there is none);
* ``coverage@k``: distinct items recommended (ranks ``<= k``, over all evaluated users) divided by
  the catalogue size;
* ``novelty@k``: the mean over a user's list of the self-information ``-log2(pop(i) / N)`` of
  each recommended item, ``pop(i)`` being the number of training users who rated ``i`` and
  ``N`` the number of training users (an item nobody rated in training counts as rated by one
  user, so the value stays finite), then averaged over users;
* ``arp@k`` (average recommendation popularity, a popularity-bias measure): the mean over a
  user's list of ``pop(i)``, then averaged over users (Abdollahpouri et al. 2019).

The evaluated users are the users of the test set. Accuracy metrics (precision, recall,
hit_rate, ndcg, map, mrr) are averaged over the test users with at least one relevant test
item; users without one are left out (their per-user value is NaN). A test user with no
recommendation list at all counts as an empty list (zero hits). ``novelty`` and ``arp`` are
averaged over the evaluated users with a non-empty list; ``coverage`` is one number for all.
Recommendations for users outside the test set are ignored.

No Python loop runs per user: lists are scattered into a ``users x k`` hit matrix and every
metric is a few numpy reductions over it.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mfrec.data.idmap import as_id_array, plain
from mfrec.data.ratings import Ratings
from mfrec.errors import DataError

#: the largest cut-off k (no list is longer; larger values would not fit the arrays' integers)
MAX_K = 2**31 - 1

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "RANKING_METRICS",
    "RATING_METRICS",
    "arp_at_k",
    "coverage_at_k",
    "hit_rate_at_k",
    "item_popularity",
    "mae",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty_at_k",
    "parse_metric",
    "per_user_metrics",
    "precision_at_k",
    "ranking_metrics",
    "rating_error_by_group",
    "recall_at_k",
    "rmse",
]

#: metrics of predicted ratings
RATING_METRICS = ("rmse", "mae")
#: ranking metrics that need relevance judgements (averaged over users with a relevant item)
ACCURACY_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")
#: ranking metrics of the lists alone (need training popularity or the catalogue size)
BEYOND_ACCURACY_METRICS = ("coverage", "novelty", "arp")
RANKING_METRICS = ACCURACY_METRICS + BEYOND_ACCURACY_METRICS
_PER_USER = ACCURACY_METRICS + ("novelty", "arp")
_NAME = re.compile(r"^\s*([a-z_]+)\s*@\s*([0-9]+)\s*$", re.ASCII)  # k in ASCII digits ("@\u0663" is no 3)


# ---------------------------------------------------------------------------- rating metrics
def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    """pred and true as 1-D float64 arrays of one length, finite, non-empty (ValueError naming
    which one is bad: a NaN would silently make the metric NaN). Two pandas Series must share
    their index: values are compared by position, and a reordered Series would pair wrong rows."""
    if isinstance(pred, pd.Series) and isinstance(true, pd.Series) and not pred.index.equals(true.index):
        raise ValueError("pred and true are Series with different indexes, so their rows would be paired by "
                         "position, not by label: align them first (true = true.loc[pred.index]) or pass arrays")
    out = []
    for name, values in (("pred", pred), ("true", true)):
        raw = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
        if raw.dtype.kind not in "iuf" and not (raw.dtype == object and pd.api.types.infer_dtype(
                raw, skipna=False) in ("integer", "floating", "mixed-integer-float", "decimal")):
            raise ValueError(f"{name} must be numbers, got {raw.dtype} values"
                             f"{' (bools or text would be read as numbers)' if raw.dtype.kind in 'bOUS' else ''}")
        try:
            a = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers, got {raw.dtype} values") from None
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}[{k}] is {a[k]}: values must be finite ({int(bad.sum())} such values in all)")
        out.append(a)
    p, t = out
    if len(p) != len(t):
        raise ValueError(f"pred ({len(p)}) and true ({len(t)}) differ in length")
    if len(p) == 0:
        raise ValueError("no ratings to compare: pred and true are empty")
    return p, t


def _mean_error(metric: str, p: np.ndarray, t: np.ndarray, groups: np.ndarray | None = None,
                n_groups: int = 1) -> np.ndarray:
    """RMSE (``metric="rmse"``) or MAE (``"mae"``) per group: the one place either is computed.
    ``groups=None`` is one group of every rating; NaN for a group without ratings."""
    err = (p - t) ** 2 if metric == "rmse" else np.abs(p - t)
    if groups is None:
        mean = np.array([np.mean(err)])
    else:
        count = np.bincount(groups, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(groups, weights=err, minlength=n_groups) / count
    return np.sqrt(mean) if metric == "rmse" else mean


def rmse(pred: Any, true: Any) -> float:
    """Root mean squared error ``sqrt(mean((pred - true) ** 2))``."""
    p, t = _pair(pred, true)
    return float(_mean_error("rmse", p, t)[0])


def mae(pred: Any, true: Any) -> float:
    """Mean absolute error ``mean(|pred - true|)``."""
    p, t = _pair(pred, true)
    return float(_mean_error("mae", p, t)[0])


def rating_error_by_group(metric: str, pred: Any, true: Any, groups: Any, n_groups: int | None = None) -> np.ndarray:
    """``metric`` (``"rmse"`` or ``"mae"``) of the ratings of each group: ``groups[j]`` is the group
    (an integer ``0 .. n_groups - 1``, e.g. a user's position) of rating ``j``. Returns an array of
    ``n_groups`` values (default: the largest group + 1), NaN for a group without ratings."""
    base, k = parse_metric(metric)
    if k is not None:
        raise ValueError(f"{metric!r} is a ranking metric; rating_error_by_group takes 'rmse' or 'mae'")
    p, t = _pair(pred, true)
    g = np.asarray(groups)
    if g.shape != p.shape or g.dtype.kind not in "iu":
        raise ValueError(f"groups must be integers, one per rating ({len(p)}), got {g.dtype} values of shape {g.shape}")
    if g.min() < 0:
        raise ValueError(f"groups must be >= 0, got {int(g.min())}")
    n = int(g.max()) + 1 if n_groups is None else int(n_groups)
    if n < int(g.max()) + 1:
        raise ValueError(f"group {int(g.max())} is outside n_groups = {n}")
    return _mean_error(base, p, t, g.astype(np.int64, copy=False), n)


# ---------------------------------------------------------------------------- metric names
def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``, ``"rmse"`` -> ``("rmse", None)`` (case-insensitive).

    Raises ValueError naming the valid metrics for anything else.
    """
    if not isinstance(name, str):
        raise TypeError(f"metric names are strings such as 'rmse' or 'ndcg@10', got {name!r}")
    low = name.strip().lower()
    if low in RATING_METRICS:
        return low, None
    m = _NAME.match(low)
    if m and m.group(1) in RANKING_METRICS:
        k = int(m.group(2))
        if not 1 <= k <= MAX_K:
            raise ValueError(f"metric {name!r}: the cut-off k must be from 1 to {MAX_K}")
        return m.group(1), k
    hint = ""
    if low in RANKING_METRICS:
        hint = f" (ranking metrics need a cut-off, e.g. '{low}@10')"
    raise ValueError(
        f"unknown metric {name!r}{hint}; valid: {', '.join(RATING_METRICS)} and "
        f"{', '.join(m + '@k' for m in RANKING_METRICS)} (k a positive integer)"
    )


# ---------------------------------------------------------------------------- inputs
def _as_frame(data: Any, what: str, need_rating: bool) -> pd.DataFrame:
    """Ratings or DataFrame -> DataFrame with columns user, item (, rating)."""
    if isinstance(data, Ratings):
        return data.to_dataframe()
    if isinstance(data, pd.DataFrame):
        cols = ["user", "item"] + (["rating"] if need_rating else [])
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise ValueError(f"{what} needs columns {cols}; missing {missing}")
        return data
    raise TypeError(f"{what} must be mfrec.Ratings or a pandas DataFrame, got {type(data).__name__}")


def item_popularity(train: Ratings | pd.DataFrame) -> tuple[pd.Series, int]:
    """(number of distinct training users per item as a Series indexed by raw item id, number
    of distinct training users)."""
    df = _as_frame(train, "train", need_rating=False)
    users = as_id_array(df["user"].to_numpy())
    items = as_id_array(df["item"].to_numpy())
    pairs = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    pop = pairs.groupby("item", sort=False).size()
    pop.name = "popularity"
    return pop, int(pd.unique(pairs["user"]).size)


def _parse_ranking(metrics: Iterable[str] | str) -> list[tuple[str, str, int]]:
    if isinstance(metrics, str):
        metrics = [metrics]
    out, seen = [], set()
    for name in metrics:
        base, k = parse_metric(name)
        if k is None:
            raise ValueError(f"{name!r} is a rating metric; ranking_metrics takes names like 'ndcg@10'")
        if name not in seen:
            seen.add(name)
            out.append((name, base, k))
    if not out:
        raise ValueError("no metrics asked for")
    return out


def _concat_ids(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two raw-id arrays as one (object dtype when their kinds differ)."""
    if a.dtype != b.dtype and (a.dtype == object or b.dtype == object):
        return np.concatenate([a.astype(object), b.astype(object)])
    return np.concatenate([a, b])


def _id_kind(ids: np.ndarray) -> str:
    """"integer", "string" or another pandas kind of a raw-id array (for mismatch messages)."""
    if ids.dtype.kind in "iu":
        return "integer"
    return pd.api.types.infer_dtype(ids, skipna=False)


def _check_id_kinds(what: str, recommended: np.ndarray, matched: np.ndarray, test: np.ndarray) -> None:
    """Refuse recommendations whose ``what`` ids match none of the test's because one side has
    integer ids and the other text (``1`` against ``"1"``): every metric would silently be 0."""
    if not len(recommended) or not len(test) or matched.any():
        return
    kinds = _id_kind(recommended), _id_kind(test)
    if kinds[0] != kinds[1] and {"integer", "string"} & set(kinds):
        raise ValueError(
            f"no recommended {what} id is a test {what} id: the recommendations' {what} ids are {kinds[0]} "
            f"({plain(recommended[0])!r}, ...) and the test's {kinds[1]} ({plain(test[0])!r}, ...); "
            f"convert one side so that equal ids compare equal")


class _Lists:
    """Recommendation lists scattered into dense ``users x K`` matrices.

    ``hit[u, r-1]``: the item at rank r is relevant; ``present[u, r-1]``: there is an item at
    rank r; ``item_code[u, r-1]``: its code in ``items`` (-1 where absent).
    """

    def __init__(self, recs: pd.DataFrame, test: pd.DataFrame | None, K: int, relevance_threshold: float) -> None:
        if not isinstance(recs, pd.DataFrame):
            raise TypeError(f"recommendations must be a DataFrame with columns user, item, rank; got {type(recs).__name__}")
        missing = [c for c in ("user", "item") if c not in recs.columns]
        if missing:
            raise ValueError(f"recommendations need columns user, item (and rank); missing {missing}")
        r_users = as_id_array(recs["user"].to_numpy())
        r_items = as_id_array(recs["item"].to_numpy())
        if "rank" in recs.columns:
            rank = np.asarray(recs["rank"].to_numpy())
            if len(rank) and (rank.dtype.kind not in "iuf" or not np.all(rank == np.round(rank)) or rank.min() < 1):
                raise ValueError("recommendation ranks must be integers >= 1 (1 = best)")
            rank = rank.astype(np.int64)
        else:  # rows of a user are in rank order
            rank = pd.Series(r_users).groupby(r_users, sort=False).cumcount().to_numpy(np.int64) + 1

        if test is not None:
            t_users = as_id_array(test["user"].to_numpy())
            t_items = as_id_array(test["item"].to_numpy())
            t_rating = np.asarray(test["rating"].to_numpy(), dtype=np.float64)
            self.users = pd.Index(pd.unique(t_users))
        else:
            t_users = t_items = np.empty(0, dtype=np.int64)
            t_rating = np.empty(0)
            self.users = pd.Index(pd.unique(r_users))
        n_users = len(self.users)
        self.items = pd.Index(pd.unique(_concat_ids(t_items, r_items)))
        n_items = max(len(self.items), 1)

        # test side: number of test ratings and relevant items per user
        tu = self.users.get_indexer(t_users)
        ti = self.items.get_indexer(t_items)
        self.n_test = np.bincount(tu, minlength=n_users)
        rel = t_rating >= relevance_threshold
        rel_keys = np.unique(tu[rel].astype(np.int64) * n_items + ti[rel])
        self.n_relevant = np.bincount(rel_keys // n_items, minlength=n_users)

        # recommendation side
        ru = self.users.get_indexer(r_users)
        ri = self.items.get_indexer(r_items)
        keys = ru.astype(np.int64) * n_items + ri
        own = ru >= 0
        if test is not None:
            _check_id_kinds("user", r_users, own, t_users)
            _check_id_kinds("item", r_items, np.isin(ri, ti), t_items)
        if pd.Series(keys[own]).duplicated().any():
            raise ValueError("recommendations list an item twice for the same user")
        slot = ru.astype(np.int64) * (int(rank.max()) + 1 if len(rank) else 1) + rank
        if pd.Series(slot[own]).duplicated().any():
            raise ValueError("recommendations give two items the same rank for the same user")
        if len(rank) and int(rank.max()) > 10 * len(rank) + 1000:  # the dense users x ranks matrices
            raise ValueError(f"rank {int(rank.max())} is far beyond the lists' lengths ({len(rank)} rows in all): "
                             "ranks count 1, 2, ... within each user's list")
        keep = own & (rank <= K)
        ru, ri, rank, keys = ru[keep], ri[keep], rank[keep], keys[keep]
        self.K = K
        width = min(K, int(rank.max()) if len(rank) else 1)  # no columns past the longest list (k=10**12)
        self.hit = np.zeros((n_users, width), dtype=bool)
        self.hit[ru, rank - 1] = np.isin(keys, rel_keys)
        self.item_code = np.full((n_users, width), -1, dtype=np.int64)
        self.item_code[ru, rank - 1] = ri
        self.present = self.item_code >= 0


def _accuracy(base: str, hit: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """One accuracy metric at cut-off ``k`` for every user (NaN where n_rel = 0); ``hit`` has the
    first ``min(k, longest list)`` ranks (no list has a hit beyond)."""
    n_users, width = hit.shape
    ranks = np.arange(1, width + 1, dtype=np.float64)
    hits = hit.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if base == "precision":
            v = hits / k
        elif base == "recall":
            v = hits / n_rel
        elif base == "hit_rate":
            v = (hits > 0).astype(np.float64)
        elif base == "ndcg":
            disc = 1.0 / np.log2(ranks + 1.0)
            dcg = hit @ disc
            n_ideal = np.minimum(n_rel, k)
            ideal_disc = 1.0 / np.log2(np.arange(2, int(n_ideal.max(initial=0)) + 2, dtype=np.float64))
            ideal = np.concatenate([[0.0], np.cumsum(ideal_disc)])[n_ideal]
            v = dcg / ideal
        elif base == "map":
            prec_at_r = np.cumsum(hit, axis=1) / ranks[None, :]
            v = (prec_at_r * hit).sum(axis=1) / np.minimum(n_rel, k)
        elif base == "mrr":
            first = np.argmax(hit, axis=1)
            v = np.where(hit.any(axis=1), 1.0 / (first + 1.0), 0.0)
        else:  # pragma: no cover
            raise AssertionError(base)
    return np.where(n_rel > 0, v, np.nan)


def _popularity_arrays(lists: _Lists, popularity: pd.Series, n_train_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Training popularity and self-information of every item code of ``lists``."""
    idx = pd.Index(as_id_array(popularity.index.to_numpy()))
    pos = idx.get_indexer(lists.items) if len(lists.items) else np.empty(0, dtype=np.int64)
    vals = popularity.to_numpy(dtype=np.float64)
    pop = np.where(pos >= 0, vals[np.maximum(pos, 0)] if len(vals) else 0.0, 0.0)
    n = max(int(n_train_users), 1)
    info = -np.log2(np.maximum(pop, 1.0) / n)
    return pop, info


def _list_mean(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mean of ``values[code]`` over the non-empty slots of each row (NaN for an empty list)."""
    present = codes >= 0
    total = np.where(present, values[np.maximum(codes, 0)] if len(values) else 0.0, 0.0).sum(axis=1)
    count = present.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _compute(
    recommendations: pd.DataFrame,
    test: Ratings | pd.DataFrame | None,
    metrics: Iterable[str] | str,
    relevance_threshold: float,
    train: Ratings | pd.DataFrame | None,
    popularity: pd.Series | None,
    n_train_users: int | None,
    catalog_size: int | None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    parsed = _parse_ranking(metrics)
    bases = {b for _, b, _ in parsed}
    if test is None and bases & set(ACCURACY_METRICS):
        raise ValueError(f"{sorted(bases & set(ACCURACY_METRICS))} need the test ratings (test=...)")
    test_df = None if test is None else _as_frame(test, "test", need_rating=True)
    if isinstance(relevance_threshold, (bool, np.bool_)) or not isinstance(relevance_threshold, numbers.Real) \
            or not np.isfinite(relevance_threshold):
        raise ValueError(f"relevance_threshold must be a finite number, got {relevance_threshold!r}")
    if catalog_size is not None and (isinstance(catalog_size, (bool, np.bool_)) or not isinstance(
            catalog_size, numbers.Integral) or catalog_size < 1):
        raise ValueError(f"catalog_size must be an integer >= 1, got {catalog_size!r}")
    if test_df is not None:
        t = pd.to_numeric(test_df["rating"], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(t).all():
            r = int(np.flatnonzero(~np.isfinite(t))[0])
            raise DataError(f"test rating at row {r} is {plain(test_df['rating'].iloc[r])!r}, not a finite number")
    K = max(k for _, _, k in parsed)
    lists = _Lists(recommendations, test_df, K, relevance_threshold)

    pop = info = None
    if bases & {"novelty", "arp"} or (catalog_size is None and "coverage" in bases):
        if popularity is None:
            if train is None:
                raise ValueError("novelty, arp and coverage need the training data: pass train=... "
                                 "(or popularity= and n_train_users=, or catalog_size= for coverage)")
            popularity, n_users_train = item_popularity(train)
            n_train_users = n_users_train if n_train_users is None else n_train_users
        elif n_train_users is None and bases & {"novelty"}:
            raise ValueError("novelty with popularity= also needs n_train_users=")
        pop, info = _popularity_arrays(lists, popularity, n_train_users or 1)

    per_user = pd.DataFrame({"n_test": lists.n_test, "n_relevant": lists.n_relevant},
                            index=lists.users.rename("user"))
    means: dict[str, float] = {}
    for name, base, k in parsed:
        if base == "coverage":
            codes = lists.item_code[:, :k]
            n_distinct = len(np.unique(codes[codes >= 0]))
            size = catalog_size
            if size is None:
                # the training catalogue plus anything recommended outside it
                size = len(popularity) + int(np.sum(pop[np.unique(codes[codes >= 0])] == 0))
            if n_distinct > size:
                raise ValueError(f"catalog_size={size} is smaller than the {n_distinct} distinct items recommended")
            means[name] = float(n_distinct / size) if size > 0 else float("nan")
            continue
        if base in ACCURACY_METRICS:
            v = _accuracy(base, lists.hit[:, :k], lists.n_relevant, k)
        elif base == "novelty":
            v = _list_mean(info, lists.item_code[:, :k])
        else:  # arp
            v = _list_mean(pop, lists.item_code[:, :k])
        per_user[name] = v
        means[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return per_user, means


# ---------------------------------------------------------------------------- public API
def per_user_metrics(
    recommendations: pd.DataFrame,
    test: Ratings | pd.DataFrame | None,
    metrics: Iterable[str] | str = ("precision@10", "recall@10", "ndcg@10"),
    *,
    relevance_threshold: float = 4.0,
    train: Ratings | pd.DataFrame | None = None,
    popularity: pd.Series | None = None,
    n_train_users: int | None = None,
) -> pd.DataFrame:
    """Per-user ranking metrics: a DataFrame indexed by the test users (``user``) with columns
    ``n_test``, ``n_relevant`` and one column per metric (NaN for accuracy metrics of users
    without a relevant test item). ``coverage@k`` has no per-user value and is skipped.

    ``recommendations``: DataFrame ``user``, ``item``, ``rank`` (rows in rank order per user
    when ``rank`` is missing). ``test``: Ratings or DataFrame ``user``, ``item``, ``rating``.
    ``train`` (or ``popularity`` + ``n_train_users``) is needed for novelty and arp.
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    names = [n for n in names if parse_metric(n)[0] != "coverage"]
    if not names:
        raise ValueError("coverage has no per-user value; ask ranking_metrics() for it")
    per_user, _ = _compute(recommendations, test, names, relevance_threshold, train, popularity,
                           n_train_users, None)
    return per_user


def ranking_metrics(
    recommendations: pd.DataFrame,
    test: Ratings | pd.DataFrame | None,
    metrics: Iterable[str] | str = ("precision@10", "recall@10", "ndcg@10"),
    *,
    relevance_threshold: float = 4.0,
    train: Ratings | pd.DataFrame | None = None,
    popularity: pd.Series | None = None,
    n_train_users: int | None = None,
    catalog_size: int | None = None,
    per_user: bool = False,
) -> dict[str, Any]:
    """Mean ranking metrics, ``{name: value}`` for names like ``"ndcg@10"`` (see the module
    docstring for the definitions and which users each mean is over).

    ``recommendations``: DataFrame ``user``, ``item``, ``rank`` (1 = best; rows in rank order per
    user when ``rank`` is missing). ``test``: Ratings or DataFrame ``user``, ``item``,
    ``rating``; its users are the evaluated users (``None`` evaluates every user of the lists,
    for novelty/arp/coverage only). ``train`` gives the training popularity for novelty and arp
    (or pass ``popularity``, a Series raw item id -> number of training users, with
    ``n_train_users``). ``catalog_size`` is the denominator of coverage (default: the training
    items, plus any recommended item outside them). The result also holds
    ``n_users_relevant`` (users with a relevant test item) and, with ``per_user=True``,
    ``per_user``: the DataFrame of :func:`per_user_metrics`.
    """
    table, means = _compute(recommendations, test, metrics, relevance_threshold, train, popularity,
                            n_train_users, catalog_size)
    out: dict[str, Any] = dict(means)
    out["n_users_relevant"] = int((table["n_relevant"] > 0).sum())
    if per_user:
        out["per_user"] = table
    return out


def _one(base: str, recommendations: pd.DataFrame, test: Any, k: int, relevance_threshold: float, **kw: Any) -> float:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    name = f"{base}@{int(k)}"
    return ranking_metrics(recommendations, test, [name], relevance_threshold=relevance_threshold, **kw)[name]


def precision_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
                   relevance_threshold: float = 4.0) -> float:
    """Mean precision@k: relevant items in the top k divided by k."""
    return _one("precision", recommendations, test, k, relevance_threshold)


def recall_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
                relevance_threshold: float = 4.0) -> float:
    """Mean recall@k: relevant items in the top k divided by the user's relevant test items."""
    return _one("recall", recommendations, test, k, relevance_threshold)


def ndcg_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
              relevance_threshold: float = 4.0) -> float:
    """Mean NDCG@k: binary gains, 1/log2(rank+1) discount, ideal list of min(k, relevant) hits."""
    return _one("ndcg", recommendations, test, k, relevance_threshold)


def map_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
             relevance_threshold: float = 4.0) -> float:
    """MAP@k: mean over users of (sum of precision@r at hit ranks r <= k) / min(k, relevant)."""
    return _one("map", recommendations, test, k, relevance_threshold)


def hit_rate_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
                  relevance_threshold: float = 4.0) -> float:
    """Share of users with at least one relevant item in the top k."""
    return _one("hit_rate", recommendations, test, k, relevance_threshold)


def mrr_at_k(recommendations: pd.DataFrame, test: Ratings | pd.DataFrame, k: int = 10,
             relevance_threshold: float = 4.0) -> float:
    """Mean reciprocal rank of the first relevant item within the top k (0 when none)."""
    return _one("mrr", recommendations, test, k, relevance_threshold)


def coverage_at_k(recommendations: pd.DataFrame, catalog_size: int, k: int = 10,
                  test: Ratings | pd.DataFrame | None = None) -> float:
    """Distinct items in the top k of all lists (of the users of ``test`` when given) divided by
    ``catalog_size``."""
    return _one("coverage", recommendations, test, k, 4.0, catalog_size=catalog_size)


def novelty_at_k(recommendations: pd.DataFrame, train: Ratings | pd.DataFrame, k: int = 10,
                 test: Ratings | pd.DataFrame | None = None) -> float:
    """Mean over users of the mean self-information ``-log2(training users who rated i / training
    users)`` of the items in their top k (over the users of ``test`` when given)."""
    return _one("novelty", recommendations, test, k, 4.0, train=train)


def arp_at_k(recommendations: pd.DataFrame, train: Ratings | pd.DataFrame, k: int = 10,
             test: Ratings | pd.DataFrame | None = None) -> float:
    """Average recommendation popularity: mean over users of the mean number of training users
    who rated the items in their top k (higher = more popularity-biased)."""
    return _one("arp", recommendations, test, k, 4.0, train=train)
