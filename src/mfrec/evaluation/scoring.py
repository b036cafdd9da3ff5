"""Honest evaluation of a fitted model on held-out ratings.

:func:`evaluate` scores rating predictions (RMSE, MAE) with ``model.predict`` and top-n lists
(precision@k, recall@k, ndcg@k, map@k, hit_rate@k, mrr@k, coverage@k, novelty@k, arp@k; see
:mod:`mfrec.evaluation.metrics` for the definitions) made by the model's own ``recommend_many``
with the training items excluded. Fitting and scoring together (cross-validation folds, tuning
trials) is :func:`mfrec.evaluation.validation.fit_and_score`.

Only the public model API is used (``predict``, ``recommend_many``, ``kind`` and the fitted
``user_map_``, ``item_map_``, ``seen_``); this module imports nothing from :mod:`mfrec.models` at
import time, so the models can import :mod:`mfrec.evaluation.metrics` without a cycle.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mfrec._flags import check_flag
from mfrec.data.ratings import Ratings, as_ratings, pairs_in
from mfrec.evaluation.metrics import item_popularity, mae, parse_metric, ranking_metrics, rating_error_by_group, rmse
from mfrec._warnings import warn_user

__all__ = ["check_evaluation", "check_metrics", "evaluate", "rank_test_users"]


def _check_model(model: Any, fitted: bool = True) -> None:
    """TypeError unless ``model`` is an mfrec model instance (a class is named as such);
    NotFittedError when ``fitted`` and it is not fitted."""
    from mfrec.models.base import Estimator, check_is_fitted  # at call time: the models import our metrics

    if isinstance(model, type) and issubclass(model, Estimator):
        raise TypeError(f"pass a model instance such as {model.__name__}(), not the class {model.__name__}")
    if not isinstance(model, Estimator):
        raise TypeError(f"model must be an mfrec model (BiasedMF(), ALS() ...), not {type(model).__name__}")
    if fitted:
        check_is_fitted(model)


def _check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"relevance_threshold must be a finite number, got {value!r}")
    return float(value)


def check_metrics(metrics: Iterable[str] | str) -> tuple[list[str], list[str], list[str]]:
    """Validate metric names before any data is read or model trained: ``(all names without
    repeats, the rating metric names, the ranking metric names)``; ValueError naming an unknown
    one, TypeError for something that is not a name or a list of names."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is None or not hasattr(metrics, "__iter__"):
        raise TypeError(f"metrics must be a metric name or a list of them, e.g. ('rmse', 'ndcg@10'), not {metrics!r}")
    names: list[str] = []
    for name in metrics:  # results are keyed as the caller spelled them ("NDCG@10")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("no metrics asked for; e.g. metrics=('rmse', 'ndcg@10')")
    parsed = {name: parse_metric(name) for name in names}
    rating = [n for n in names if parsed[n][1] is None]
    ranking = [n for n in names if parsed[n][1] is not None]
    return names, rating, ranking


def check_evaluation(model: Any, metrics: Iterable[str] | str, relevance_threshold: Any = 4.0, *,
                     fitted: bool = True) -> tuple[list[str], list[str], list[str], float]:
    """Everything about an evaluation that can be refused before a model is trained: ``model``
    is an mfrec model instance (fitted, when ``fitted``), the metric names are known, rating
    metrics are asked only of a model whose ``kind`` is ``"rating"``, and ``relevance_threshold``
    is a finite number. Returns :func:`check_metrics`' three lists and the threshold as a float."""
    _check_model(model, fitted=fitted)
    threshold = _check_threshold(relevance_threshold)
    names, rating_names, ranking_names = check_metrics(metrics)
    if rating_names and model.kind != "rating":
        raise ValueError(
            f"{type(model).__name__} scores preferences, not ratings, so {', '.join(rating_names)} "
            "would be meaningless; evaluate it with ranking metrics such as 'ndcg@10' or 'recall@10'"
        )
    return names, rating_names, ranking_names, threshold


def _known_users(model: Any, raw_users: np.ndarray) -> np.ndarray:
    """Mask of the users the model knows: in its user map and with at least one training item.

    Subsets of one Ratings share its id map, so a model trained on one piece has rows for every
    user of the parent; a user without any training rating there is cold, not known.
    """
    uidx = model.user_map_.lookup(raw_users)
    counts = np.diff(model.seen_.indptr)
    return (uidx >= 0) & (counts[np.maximum(uidx, 0)] > 0)


def _warn_training_pairs(model: Any, test: Ratings, train: Ratings | pd.DataFrame | None) -> None:
    """Warn when test pairs are the model's training pairs (or pairs of ``train=``): their errors
    are in-sample, and the rankings exclude training items, so those test items are never hits."""
    shared = pairs_in(model.seen_, model.user_map_, model.item_map_, test)
    what = "the model was trained on"
    if not len(shared) and train is not None:
        shared = as_ratings(train, "train").shared_pairs(test)
        what = "of train= (left out of the rankings)"
    if len(shared):
        warn_user(f"{len(shared)} of the {len(test)} test ratings are (user, item) pairs {what} (the first: "
                  f"{test.pair_at(shared[0])}): their errors are in-sample and, as training items are left out "
                  "of the rankings, they are never hits; evaluate on held-out ratings")


def _pair_keys(model: Any, users: Any, items: Any) -> np.ndarray:
    """int64 keys ``user_index * n_items + item_index`` in the model's index space (-1 when
    either id is unknown to the model)."""
    u = model.user_map_.lookup(users)
    i = model.item_map_.lookup(items)
    return np.where((u >= 0) & (i >= 0), u * len(model.item_map_) + i, -1)


def rank_test_users(
    model: Any,
    test: Ratings | pd.DataFrame,
    n: int = 10,
    train: Ratings | pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Top-``n`` lists for the test users the model knows, training items excluded.

    Returns ``(recommendations, ranked_users, unknown_users)``: a DataFrame ``user``, ``item``,
    ``score``, ``rank`` from ``model.recommend_many(..., exclude_seen=True)`` (which drops the
    model's own training items ``seen_``), and the raw ids of the test users that were ranked and
    of those that were not (not in the model, or without any training rating).

    When ``train`` is given and holds pairs the model did not train on, those items are dropped
    from the lists too: ``recommend_many`` is asked for ``n`` plus the user's number of such extra
    items (users with similar counts in one call), so every list still has ``n`` items when the
    catalogue allows, and the survivors are re-ranked 1..n.
    """
    _check_model(model)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = int(n)
    test = as_ratings(test, "test")
    users = pd.unique(test.raw_users)
    known = _known_users(model, users)
    ranked, unknown = users[known], users[~known]
    empty = pd.DataFrame({"user": ranked[:0], "item": model.item_map_.ids[:0], "score": np.empty(0),
                          "rank": np.empty(0, dtype=np.int64)})
    if len(ranked) == 0:
        return empty, ranked, unknown

    n_items = len(model.item_map_)
    extra_keys = np.empty(0, dtype=np.int64)
    need = np.full(len(ranked), n, dtype=np.int64)  # list length to ask recommend_many for
    if train is not None:
        train = as_ratings(train, "train")
        if not (train.user_map is model.user_map_ and train.by_user is model.seen_):
            keys = np.unique(_pair_keys(model, train.raw_users, train.raw_items))
            keys = keys[keys >= 0]
            seen = model.seen_
            rows = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
            seen_keys = rows * n_items + seen.indices
            extra_keys = keys[~np.isin(keys, seen_keys)]
            if len(extra_keys):
                per_user = np.bincount(extra_keys // n_items, minlength=len(model.user_map_))
                need += per_user[model.user_map_.lookup(ranked)]
    need = np.minimum(need, max(n_items, 1))

    if len(extra_keys) == 0:
        recs = model.recommend_many(ranked, n=n, exclude_seen=True)
    else:
        # users asking for about as many items go together (lengths rounded up to powers of two),
        # so one user with many extra items does not lengthen every list
        bucket = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), max(n_items, 1))
        parts = []
        for size in np.unique(bucket):
            chosen = np.flatnonzero(bucket == size)
            part = model.recommend_many(ranked[chosen], n=int(size), exclude_seen=True)
            part["_order"] = chosen[pd.Index(ranked[chosen]).get_indexer(part["user"].to_numpy())]
            parts.append(part)
        recs = pd.concat(parts, ignore_index=True).sort_values(["_order", "rank"], kind="stable").drop(columns="_order")
        drop = np.isin(_pair_keys(model, recs["user"].to_numpy(), recs["item"].to_numpy()), extra_keys)
        recs = recs.loc[~drop].copy()
        # rows of a user stay in rank order: re-rank the survivors 1..
        recs["rank"] = recs.groupby("user", sort=False).cumcount().to_numpy(np.int64) + 1
    recs = recs[["user", "item", "score", "rank"]]
    recs = recs.loc[recs["rank"] <= n].reset_index(drop=True)
    return recs, ranked, unknown


def evaluate(
    model: Any,
    test: Ratings | pd.DataFrame,
    metrics: Iterable[str] | str = ("rmse", "mae"),
    train: Ratings | pd.DataFrame | None = None,
    relevance_threshold: float = 4.0,
    per_user: bool = False,
) -> dict[str, Any]:
    """Evaluate a fitted model on held-out ``test`` ratings (Ratings or a DataFrame with columns
    ``user``, ``item``, ``rating``; raw ids).

    ``metrics``: ``"rmse"``, ``"mae"`` (``model.predict`` on the test pairs, raw ids: unknown users
    or items get the model's fallback) and ranking metrics with a cut-off, ``"precision@10"``,
    ``"recall@10"``, ``"ndcg@10"``, ``"map@10"``, ``"hit_rate@10"``, ``"mrr@10"``,
    ``"coverage@10"``, ``"novelty@10"``, ``"arp@10"`` (definitions in :mod:`mfrec.metrics`;
    a test item is relevant when its rating is ``>= relevance_threshold``).

    Ranking: every test user the model knows (in its id map and with training ratings) gets the
    model's own top-k list (``recommend_many``, k the largest cut-off asked for) with its
    training items excluded; when ``train`` is given and differs from what the model was fit
    on, its items are dropped from the lists too (see :func:`rank_test_users`). Other test users
    are not ranked; they are counted in ``n_unknown_users``. Novelty and arp use the popularity
    in ``train`` when given, else in the model's training data; coverage divides by the number
    of items the model can recommend.

    Returns ``{name: value}`` for every metric asked for, plus ``n_test`` (test ratings) and
    ``n_unknown_users``; with ranking metrics also ``n_users_ranked`` and ``n_users_relevant``
    (ranked users with at least one relevant test item: the users the accuracy metrics average
    over). With ``per_user=True`` the dict also holds ``per_user``, a DataFrame indexed by test
    user with ``n_test``, per-user ``rmse`` / ``mae``, ``n_relevant`` and the ranking metrics
    (NaN where undefined). Rating metrics raise ValueError for models that do not predict ratings
    (ImplicitALS).
    """
    names, rating_names, ranking_names, relevance_threshold = check_evaluation(model, metrics, relevance_threshold)
    per_user = check_flag("per_user", per_user)
    test = as_ratings(test, "test")
    _warn_training_pairs(model, test, train)

    values: dict[str, Any] = {}
    users = pd.unique(test.raw_users)  # distinct test users, first-seen order
    codes = pd.Index(users).get_indexer(test.raw_users)  # each rating's position in `users`
    known = _known_users(model, users)
    n_test_user = np.bincount(codes, minlength=len(users))
    table = pd.DataFrame({"known": known, "n_test": n_test_user}, index=pd.Index(users, name="user"))

    if rating_names:
        pred = np.asarray(model.predict(test.raw_users, test.raw_items), dtype=np.float64)
        true = test.values.astype(np.float64)
        for name in rating_names:
            values[name] = rmse(pred, true) if parse_metric(name)[0] == "rmse" else mae(pred, true)
            if per_user:
                table[name] = rating_error_by_group(name, pred, true, codes, len(users))

    extra: dict[str, Any] = {}
    if ranking_names:
        max_k = max(parse_metric(name)[1] for name in ranking_names)
        recs, ranked, _ = rank_test_users(model, test, max_k, train)
        n_relevant = 0
        if len(ranked):
            res = _ranking_in_index_space(model, test, users, codes, known, recs, ranking_names, train,
                                          relevance_threshold, per_user)
            values.update({name: res[name] for name in ranking_names})
            n_relevant = res["n_users_relevant"]
            if per_user:
                pu = res["per_user"].reindex(model.user_map_.lookup(users))  # NaN rows for unranked users
                table["n_relevant"] = pu["n_relevant"].to_numpy()
                for name in pu.columns.drop(["n_test", "n_relevant"]):
                    table[name] = pu[name].to_numpy()
        else:
            values.update({name: float("nan") for name in ranking_names})
            if per_user:
                table["n_relevant"] = np.nan
                for name in ranking_names:
                    if parse_metric(name)[0] != "coverage":
                        table[name] = np.nan
        extra = {"n_users_ranked": int(len(ranked)), "n_users_relevant": int(n_relevant)}

    result: dict[str, Any] = {name: values[name] for name in names}
    result["n_test"] = int(len(test))
    result.update(extra)
    result["n_unknown_users"] = int((~known).sum())
    if per_user:
        result["per_user"] = table
    return result


def _ranking_in_index_space(model: Any, test: Ratings, users: np.ndarray, codes: np.ndarray, known: np.ndarray,
                            recs: pd.DataFrame, names: list[str], train: Ratings | pd.DataFrame | None,
                            relevance_threshold: float, per_user: bool) -> dict[str, Any]:
    """Ranking metrics with users and items as the model's dense indices, so test ids spelled
    differently from the model's (``"12"`` vs ``12``) still match. Test items the model does not
    know get distinct negative codes: they stay relevant but can never be hit."""
    keep = known[codes]
    t_users = model.user_map_.lookup(users)[codes[keep]]
    raw_items = test.raw_items[keep]
    t_items = model.item_map_.lookup(raw_items)
    missing = t_items < 0
    if missing.any():
        t_items[missing] = -1 - pd.factorize(raw_items[missing])[0]
    test_frame = pd.DataFrame({"user": t_users, "item": t_items, "rating": test.values[keep]})
    rec_frame = pd.DataFrame({"user": model.user_map_.lookup(recs["user"].to_numpy()),
                              "item": model.item_map_.lookup(recs["item"].to_numpy()),
                              "rank": recs["rank"].to_numpy()})
    n_items = len(model.item_map_)
    if train is None:
        seen = model.seen_
        popularity = pd.Series(np.bincount(seen.indices, minlength=n_items), index=np.arange(n_items))
        n_train_users = int((np.diff(seen.indptr) > 0).sum())
    else:
        pop_raw, n_train_users = item_popularity(train)
        idx = model.item_map_.lookup(pop_raw.index.to_numpy())
        popularity = pd.Series(pop_raw.to_numpy()[idx >= 0], index=idx[idx >= 0])
    return ranking_metrics(rec_frame, test_frame, names, relevance_threshold=relevance_threshold,
                           popularity=popularity, n_train_users=n_train_users, catalog_size=n_items,
                           per_user=per_user)
