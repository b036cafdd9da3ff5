"""Honest evaluation of a fitted model on held-out ratings, and k-fold cross-validation.

:func:`evaluate` scores rating predictions (RMSE, MAE) with ``model.predict`` and top-n lists
(precision@k, recall@k, ndcg@k, map@k, hit_rate@k, mrr@k, coverage@k, novelty@k, arp@k; see
:mod:`mfrec.metrics` for the definitions) made by the model's own ``recommend_many`` with the
training items excluded. :func:`cross_validate` repeats fit + evaluate over the folds of
:func:`mfrec.split.kfold`.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from mfrec.data.ratings import Ratings
from mfrec.data.splits import kfold
from mfrec.metrics import item_popularity, mae, parse_metric, ranking_metrics, rmse
from mfrec.models.base import as_ratings

__all__ = ["cross_validate", "evaluate", "rank_test_users"]


def _check_model(model: Any, fitted: bool = True) -> None:
    """TypeError unless ``model`` is an mfrec model instance (a class is named as such);
    NotFittedError when ``fitted`` and it is not fitted."""
    from mfrec.models.base import Estimator

    if isinstance(model, type) and issubclass(model, Estimator):
        raise TypeError(f"pass a model instance such as {model.__name__}(), not the class {model.__name__}")
    if not isinstance(model, Estimator):
        raise TypeError(f"model must be an mfrec model (BiasedMF(), ALS() ...), not {type(model).__name__}")
    if fitted:
        model._require_fitted()


def _check_threshold(value: Any) -> float:
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"relevance_threshold must be a finite number, got {value!r}")
    return float(value)


def _metric_names(metrics: Iterable[str] | str) -> tuple[list[str], list[str], list[str]]:
    """(all names without repeats, rating metric names, ranking metric names), validated."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is None or not hasattr(metrics, "__iter__"):
        raise TypeError(f"metrics must be a metric name or a list of them, e.g. ('rmse', 'ndcg@10'), not {metrics!r}")
    names: list[str] = []
    for name in metrics:
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("no metrics asked for; e.g. metrics=('rmse', 'ndcg@10')")
    parsed = {name: parse_metric(name) for name in names}
    rating = [n for n in names if parsed[n][1] is None]
    ranking = [n for n in names if parsed[n][1] is not None]
    return names, rating, ranking


def _known_users(model: Any, raw_users: np.ndarray) -> np.ndarray:
    """Mask of the users the model knows: in its user map and with at least one training item.

    Subsets of one Ratings share its id map, so a model trained on one piece has rows for every
    user of the parent; a user without any training rating there is cold, not known.
    """
    uidx = model.user_map_.lookup(raw_users)
    counts = np.diff(model.seen_.indptr)
    return (uidx >= 0) & (counts[np.maximum(uidx, 0)] > 0)


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
    model._require_fitted()
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
    _check_model(model)
    relevance_threshold = _check_threshold(relevance_threshold)
    test = as_ratings(test, "test")
    names, rating_names, ranking_names = _metric_names(metrics)
    if rating_names and not (getattr(model, "kind", "rating") == "rating"):
        raise ValueError(
            f"{type(model).__name__} scores preferences, not ratings, so {', '.join(rating_names)} "
            "would be meaningless; evaluate it with ranking metrics such as 'ndcg@10' or 'recall@10'"
        )

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
                sq = parse_metric(name)[0] == "rmse"
                err = (pred - true) ** 2 if sq else np.abs(pred - true)
                per = np.bincount(codes, weights=err, minlength=len(users)) / n_test_user
                table[name] = np.sqrt(per) if sq else per

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


# ---------------------------------------------------------------------------- cross-validation
def _run_fold(fold: int, model: Any, train: Ratings, test: Ratings, metrics: list[str],
              evaluate_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fit a fresh clone on ``train`` and evaluate it on ``test`` (module level: picklable)."""
    est = model.clone()
    t0 = time.perf_counter()
    est.fit(train)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = evaluate(est, test, metrics=metrics, **evaluate_kwargs)
    test_seconds = time.perf_counter() - t0
    row: dict[str, Any] = {"fold": fold, "n_train": len(train)}
    row.update({k: v for k, v in res.items() if k != "per_user"})
    row["fit_seconds"] = fit_seconds
    row["test_seconds"] = test_seconds
    return row


def _init_worker(threads: int | None) -> None:
    """Worker processes share the cores: each runs models on its share of threads unless the
    user set MFREC_THREADS."""
    if threads is not None and not os.environ.get("MFREC_THREADS"):
        os.environ["MFREC_THREADS"] = str(threads)


def cross_validate(
    model: Any,
    ratings: Ratings | pd.DataFrame,
    folds: int = 5,
    metrics: Iterable[str] | str = ("rmse", "mae"),
    seed: int = 0,
    n_jobs: int = 1,
    callback: Callable[[int, int, dict[str, Any]], None] | None = None,
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """k-fold cross-validation: for each fold of :func:`mfrec.split.kfold` (``k=folds``, ``seed``)
    fit ``model.clone()`` on the other folds and :func:`evaluate` it on this one.

    Returns ``{"mean": {metric: value}, "std": {metric: value}, "folds": DataFrame}``; the
    DataFrame has one row per fold: ``fold``, ``n_train``, ``n_test``, every metric, the user
    counts of :func:`evaluate`, ``fit_seconds`` and ``test_seconds``. ``std`` is the population
    standard deviation over the folds (``ddof=0``, as Surprise reports it). ``evaluate_kwargs``
    go to :func:`evaluate` (``relevance_threshold``; not ``train``, which is each fold's).
    ``callback(done, total, row)`` is called as each fold finishes, with its row (progress bars).

    ``n_jobs=1`` (default) runs the folds one after the other, each fit using the model's
    ``threads``. ``n_jobs > 1`` (or ``-1``: one per fold, at most the cores) runs folds in
    separate processes (spawned, so the Numba thread pools never see a fork); a model with
    ``threads=None`` then runs on ``cores // n_jobs`` threads in each worker (unless
    ``MFREC_THREADS`` is set). SGD results depend on the thread count, so parallel and sequential
    runs agree exactly only for a model with an explicit ``threads``. As with any spawned
    process pool, a script that calls this with ``n_jobs > 1`` needs the
    ``if __name__ == "__main__":`` guard.
    """
    _check_model(model, fitted=False)
    if "relevance_threshold" in evaluate_kwargs:
        _check_threshold(evaluate_kwargs["relevance_threshold"])
    _metric_names(metrics)
    if "train" in evaluate_kwargs or "per_user" in evaluate_kwargs:
        raise TypeError("cross_validate sets each fold's training data itself; do not pass train= or per_user=")
    if getattr(model, "early_stopping", None) is not None:
        raise ValueError(
            "cross_validate fits each fold without validation data, so early_stopping cannot work; "
            "use a clone with early_stopping=None (or tune the epoch count with mfrec.tune)"
        )
    ratings = as_ratings(ratings, "ratings")
    names, _, _ = _metric_names(metrics)
    pieces = list(kfold(ratings, k=folds, seed=seed))
    cores = os.cpu_count() or 1
    if n_jobs is None or int(n_jobs) == 0:
        raise ValueError("n_jobs must be >= 1, or -1 for one process per fold")
    workers = min(len(pieces), cores) if int(n_jobs) < 0 else min(int(n_jobs), len(pieces))

    def done(row: dict[str, Any], count: int) -> dict[str, Any]:
        if callback is not None:
            callback(count, len(pieces), row)
        return row

    if workers <= 1:
        rows = [done(_run_fold(f + 1, model, tr, te, names, evaluate_kwargs), f + 1) for f, (tr, te) in enumerate(pieces)]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, cores // workers) if getattr(model, "threads", None) is None else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futures = [pool.submit(_run_fold, f + 1, model, tr, te, names, evaluate_kwargs)
                       for f, (tr, te) in enumerate(pieces)]
            rows = [done(fut.result(), f + 1) for f, fut in enumerate(futures)]
    table = pd.DataFrame.from_records(rows)
    mean = {name: float(table[name].mean()) for name in names}
    std = {name: float(table[name].std(ddof=0)) for name in names}
    return {"mean": mean, "std": std, "folds": table}
