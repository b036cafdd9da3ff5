"""fit_and_score (the one fit-then-score path) and cross_validate over its folds."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import mfrec
from mfrec.evaluation import FitScore, cross_validate, evaluate, fit_and_score
from mfrec.split import random_split

PACKAGE = Path(mfrec.__file__).parent / "evaluation"


@pytest.fixture(scope="module")
def data():
    ratings = mfrec.synthetic(300, 200, 8000, factors=5, seed=0)
    train, test = random_split(ratings, test_size=0.2, seed=0)
    return ratings, train, test


# ----------------------------------------------------------------------------- fit_and_score
def test_fit_and_score_is_fit_then_evaluate(data):
    _, train, test = data
    names = ["rmse", "mae", "ndcg@10", "coverage@10"]
    model = mfrec.BiasedMF(factors=4, epochs=5, threads=1, seed=0)
    res = fit_and_score(model, train, test, metrics=names)
    assert isinstance(res, FitScore) and res.model is model and model.fitted_  # fitted in place
    by_hand = evaluate(mfrec.BiasedMF(factors=4, epochs=5, threads=1, seed=0).fit(train), test, metrics=names)
    assert res.scores == by_hand  # threads=1: bit-identical fits
    assert res.epochs == 5 == len(model.history_) and res.best_epoch == 5
    assert res.fit_seconds > 0 and res.score_seconds > 0
    row = res.row()
    assert {k: row[k] for k in by_hand} == by_hand
    assert row["fit_seconds"] == res.fit_seconds and row["test_seconds"] == res.score_seconds
    # DataFrames with raw ids work as well; per_user is passed on
    res_df = fit_and_score(mfrec.Baseline(), train.to_dataframe(), test.to_dataframe(), metrics="rmse", per_user=True)
    assert res_df.scores["rmse"] == pytest.approx(mfrec.Baseline().fit(train).score(test), rel=1e-12)
    assert "per_user" in res_df.scores and "per_user" not in res_df.row()


def test_fit_hook_and_validation_with_early_stopping(data):
    _, train, test = data
    calls = []

    def fit(model, tr, va):
        calls.append((tr, va))
        model.fit(tr, va)

    model = mfrec.BiasedMF(factors=4, epochs=30, early_stopping=1, learning_rate=0.05, threads=1, seed=0)
    res = fit_and_score(model, train, test, validation=test, fit=fit)
    assert len(calls) == 1 and calls[0][0] is train and calls[0][1] is test
    assert "validation_rmse" in model.history_ and res.epochs == len(model.history_)
    assert res.best_epoch == model.best_epoch_ <= res.epochs


@pytest.mark.parametrize("model,metrics,kw,error,match", [
    (mfrec.BiasedMF(), ["rsme"], {}, ValueError, "unknown metric"),
    (mfrec.ImplicitALS(), ["rmse", "ndcg@10"], {}, ValueError, "ranking metrics"),
    (mfrec.BiasedMF(), ["ndcg@10"], {"relevance_threshold": float("nan")}, ValueError, "relevance_threshold"),
    (mfrec.BiasedMF, ["rmse"], {}, TypeError, r"instance such as BiasedMF\(\)"),
])
def test_fit_and_score_refuses_before_fitting(data, model, metrics, kw, error, match):
    _, train, test = data
    calls = []
    with pytest.raises(error, match=match):
        fit_and_score(model, train, test, metrics=metrics, fit=lambda *a: calls.append(a), **kw)
    assert calls == []  # nothing was trained for a request that had to fail


def test_cross_validate_refuses_before_the_first_fold(data, monkeypatch):
    """A rating metric for a ranking model, or a misspelt keyword, failed only after a fold had
    been fitted."""
    ratings, _, _ = data
    fits = []
    monkeypatch.setattr(mfrec.ImplicitALS, "fit", lambda self, *a, **k: fits.append(a) or self)
    with pytest.raises(ValueError, match="ranking metrics"):
        cross_validate(mfrec.ImplicitALS(), ratings, folds=2, metrics=["rmse"])
    with pytest.raises(TypeError, match="relevance_treshold"):
        cross_validate(mfrec.ImplicitALS(), ratings, folds=2, metrics=["ndcg@5"], relevance_treshold=3.0)
    assert fits == []


# ----------------------------------------------------------------------------- cross_validate
def test_cross_validate_folds_partition_and_summaries(data):
    ratings, _, _ = data
    model = mfrec.BiasedMF(factors=4, epochs=5, threads=1)
    cv = cross_validate(model, ratings, folds=3, metrics=["rmse", "mae", "ndcg@5"], seed=0)
    folds = cv["folds"]
    assert len(folds) == 3 and list(folds["fold"]) == [1, 2, 3]
    assert folds["n_test"].sum() == len(ratings)
    assert ((folds["n_train"] + folds["n_test"]) == len(ratings)).all()
    for col in ("rmse", "mae", "ndcg@5", "fit_seconds", "test_seconds", "n_users_ranked"):
        assert col in folds.columns
    for name in ("rmse", "mae", "ndcg@5"):
        assert cv["mean"][name] == pytest.approx(folds[name].mean())
        assert cv["std"][name] == pytest.approx(np.std(folds[name].to_numpy(), ddof=0))
    assert not hasattr(model, "fitted_")  # the model itself stays unfitted: folds use clones
    again = cross_validate(model, ratings, folds=3, metrics=["rmse", "mae", "ndcg@5"], seed=0)
    assert again["mean"] == cv["mean"]


def test_cross_validate_in_processes_matches_sequential(data):
    ratings, _, _ = data
    model = mfrec.Baseline(threads=1)
    seq = cross_validate(model, ratings, folds=2, metrics=["rmse", "precision@5"], seed=3)
    par = cross_validate(model, ratings, folds=2, metrics=["rmse", "precision@5"], seed=3, n_jobs=2)
    assert par["mean"] == pytest.approx(seq["mean"])
    assert list(par["folds"]["n_test"]) == list(seq["folds"]["n_test"])


def test_cross_validate_rejects_what_it_cannot_do(data):
    ratings, _, _ = data
    with pytest.raises(ValueError, match="early_stopping"):
        cross_validate(mfrec.BiasedMF(early_stopping=2), ratings, folds=2)
    with pytest.raises(TypeError, match="train"):
        cross_validate(mfrec.BiasedMF(), ratings, folds=2, train=ratings)


# ----------------------------------------------------------------------------- layering
def _imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_evaluation_imports_no_model_code_at_import_time():
    """The models import mfrec.evaluation.metrics (one RMSE): metrics must not import model code
    at all, and no module of the package may import it at module level (the package __init__ runs
    every module, so one such import would be a cycle)."""
    metrics = ast.parse((PACKAGE / "metrics.py").read_text())
    assert not [m for m in _imports(metrics) if m.startswith("mfrec.models")]
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = [m for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
               for m in _imports(node)]
        assert not [m for m in top if m.startswith("mfrec.models")], path.name


def test_public_names_are_the_package_s():
    import mfrec.evaluation as ev

    assert mfrec.evaluate is ev.evaluate and callable(ev.evaluate)
    assert mfrec.cross_validate is ev.cross_validate and mfrec.tune is ev.tune and callable(ev.tune)
    assert mfrec.TuneResult is ev.TuneResult and mfrec.metrics is ev.metrics
    assert mfrec.metrics.rmse([1.0, 3.0], [1.0, 1.0]) == pytest.approx(np.sqrt(2.0))
    from mfrec.evaluation.scoring import rank_test_users  # the modules stay importable by path

    assert ev.rank_test_users is rank_test_users


def test_metrics_given_as_a_generator_are_read_once(data):
    """cross_validate(metrics=<generator>) said "no metrics asked for": the check used it up."""
    ratings = data[0]
    gen = (m for m in ["rmse"])
    res = cross_validate(mfrec.BiasedMF(factors=2, epochs=1, threads=1), ratings, folds=2, metrics=gen)
    assert set(res["mean"]) >= {"rmse"}
