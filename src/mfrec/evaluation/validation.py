"""Fit and score: the one path from an unfitted model to its scores on held-out ratings.

:func:`fit_and_score` fits a model on training ratings and scores it with
:func:`mfrec.evaluation.scoring.evaluate`, timing both. Every fit-then-score in mfrec goes
through it: the folds of :func:`cross_validate`, the trials of :func:`mfrec.tune`, the demo and
the CLI (after Surprise's ``model_selection.validation``, which pairs ``fit_and_score`` with
``cross_validate`` the same way).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pandas as pd

from mfrec.data.ratings import Ratings, as_ratings
from mfrec.data.splits import kfold
from mfrec.evaluation.scoring import check_evaluation, check_metrics, evaluate

__all__ = ["FitScore", "cross_validate", "fit_and_score"]

#: ``fit(model, train, validation)``: fits ``model`` in place (e.g. drawing a progress bar)
FitFunction = Callable[[Any, Ratings, "Ratings | None"], Any]


@dataclass(frozen=True)
class FitScore:
    """What :func:`fit_and_score` returns.

    ``model``: the model passed in, now fitted. ``scores``: :func:`evaluate`'s dict (every metric
    asked for, ``n_test``, the user counts, and ``per_user`` when asked). ``fit_seconds`` and
    ``score_seconds``: wall time of the fit and of the scoring. ``epochs``: passes actually run
    (rows of ``history_``); ``best_epoch``: the one kept (``best_epoch_``: early stopping's best,
    else the last).
    """

    model: Any
    scores: dict[str, Any]
    fit_seconds: float
    score_seconds: float
    epochs: int
    best_epoch: int

    def row(self) -> dict[str, Any]:
        """The scores (without ``per_user``) plus ``fit_seconds`` and ``test_seconds``: one row
        of a table of fits (a fold, a trial)."""
        out = {k: v for k, v in self.scores.items() if k != "per_user"}
        out["fit_seconds"] = self.fit_seconds
        out["test_seconds"] = self.score_seconds
        return out


def fit_and_score(
    model: Any,
    train: Ratings | pd.DataFrame,
    test: Ratings | pd.DataFrame,
    *,
    metrics: Iterable[str] | str = ("rmse", "mae"),
    validation: Ratings | pd.DataFrame | None = None,
    relevance_threshold: float = 4.0,
    per_user: bool = False,
    fit: FitFunction | None = None,
) -> FitScore:
    """Fit ``model`` (an unfitted or fitted mfrec model instance; it is fitted in place, so pass
    ``model.clone()`` to keep the original) on ``train`` and score it on ``test`` with
    :func:`evaluate` (``metrics``, ``relevance_threshold``, ``per_user``; ranking lists exclude
    the training items).

    Everything that can be refused (the model argument, metric names, rating metrics for a
    ranking model, the threshold) is refused before the fit starts. ``validation`` goes to
    ``model.fit`` (per-epoch validation RMSE, early stopping). ``fit``: how to fit, called as
    ``fit(model, train, validation)`` (default ``model.fit(train, validation)``), e.g. one that
    draws a progress bar. Returns a :class:`FitScore`.

    The fit follows the model's thread count whatever the machine's load
    (`mfrec.threads.fixed_threads`): scores of the same seed and ``threads`` compare, which
    `mfrec.tune` and `cross_validate`, both built on this, promise.
    """
    from mfrec.threads import fixed_threads  # here: importing the evaluation API stays light

    metrics = _metric_list(metrics)
    check_evaluation(model, metrics, relevance_threshold, fitted=False)
    train = as_ratings(train, "train")
    test = as_ratings(test, "test")
    if validation is not None:
        validation = as_ratings(validation, "validation")
    t0 = time.perf_counter()
    with fixed_threads():
        if fit is None:
            model.fit(train, validation)
        else:
            fit(model, train, validation)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = evaluate(model, test, metrics=metrics, relevance_threshold=relevance_threshold, per_user=per_user)
    score_seconds = time.perf_counter() - t0
    return FitScore(model, scores, fit_seconds, score_seconds, int(len(model.history_)), int(model.best_epoch_))


# ---------------------------------------------------------------------------- cross-validation
def _metric_list(metrics: Iterable[str] | str) -> list[str] | str:
    """``metrics`` read once (a generator would be used up by the checks before the scoring)."""
    if isinstance(metrics, str):
        return metrics
    try:
        return list(metrics)
    except TypeError:
        raise TypeError(f"metrics must be a metric name or a list of names, got {type(metrics).__name__}") from None


def _run_fold(fold: int, model: Any, train: Ratings, test: Ratings, metrics: list[str],
              evaluate_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One fold's row: a fresh clone fitted on ``train`` and scored on ``test`` (module level:
    picklable for the worker processes)."""
    res = fit_and_score(model.clone(), train, test, metrics=metrics, **evaluate_kwargs)
    return {"fold": fold, "n_train": len(train), **res.row()}


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
    runs agree exactly only for a model with an explicit ``threads`` (each fold follows that
    count whatever the machine's load: `fit_and_score`). As with any spawned
    process pool, a script that calls this with ``n_jobs > 1`` needs the
    ``if __name__ == "__main__":`` guard.
    """
    if "train" in evaluate_kwargs or "per_user" in evaluate_kwargs:
        raise TypeError("cross_validate sets each fold's training data itself; do not pass train= or per_user=")
    unknown = sorted(set(evaluate_kwargs) - {"relevance_threshold"})
    if unknown:
        raise TypeError(f"cross_validate got unexpected keyword argument(s) {unknown}")
    metrics = _metric_list(metrics)
    check_evaluation(model, metrics, evaluate_kwargs.get("relevance_threshold", 4.0), fitted=False)
    params = model.get_params()
    if params.get("early_stopping") is not None:
        raise ValueError(
            "cross_validate fits each fold without validation data, so early_stopping cannot work; "
            "use a clone with early_stopping=None (or tune the epoch count with mfrec.tune)"
        )
    ratings = as_ratings(ratings, "ratings")
    names, _, _ = check_metrics(metrics)
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

        threads = max(1, cores // workers) if params.get("threads") is None else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futures = [pool.submit(_run_fold, f + 1, model, tr, te, names, evaluate_kwargs)
                       for f, (tr, te) in enumerate(pieces)]
            rows = [done(fut.result(), f + 1) for f, fut in enumerate(futures)]
    table = pd.DataFrame.from_records(rows)
    mean = {name: float(table[name].mean()) for name in names}
    std = {name: float(table[name].std(ddof=0)) for name in names}
    return {"mean": mean, "std": std, "folds": table}
