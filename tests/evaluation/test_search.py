"""tune(): budget, reproducibility, search spaces, grid, early stopping, optuna (when installed)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.evaluation import evaluate
from mfrec.split import random_split
from mfrec.evaluation import TuneResult, sample_space, tune

FAST = {"threads": 1, "epochs": 8, "factors": 4}
HAS_OPTUNA = importlib.util.find_spec("optuna") is not None


@pytest.fixture(scope="module")
def ratings():
    return mfrec.synthetic(250, 150, 6000, factors=4, seed=1)


def test_budget_result_and_trial_table(ratings):
    space = {"learning_rate": ("log", 1e-4, 0.05), "regularization": (0.0, 0.2)}
    res = tune(mfrec.BiasedMF, ratings, space, trials=5, fixed=FAST, seed=0)
    assert isinstance(res, TuneResult)
    assert len(res.trials) == 5
    assert list(res.trials.columns) == ["trial", "learning_rate", "regularization", "score", "epochs_run",
                                        "best_epoch", "seconds"]
    assert list(res.trials["trial"]) == [0, 1, 2, 3, 4]
    assert res.best_score == res.trials["score"].min()
    best_row = res.trials.loc[res.trials["score"].idxmin()]
    assert res.best_params == {"learning_rate": best_row["learning_rate"], "regularization": best_row["regularization"]}
    assert res.direction == "minimize" and res.metric == "rmse"
    # the best model is the best trial's fitted model, with the fixed parameters applied
    assert res.best_model.fitted_ and res.best_model.factors == 4 and res.best_model.threads == 1
    assert res.best_model.learning_rate == res.best_params["learning_rate"]
    _, val = random_split(ratings, test_size=0.2, seed=0)  # validation=None -> 0.2 carved with the seed
    assert evaluate(res.best_model, val)["rmse"] == pytest.approx(res.best_score)
    assert (res.trials["epochs_run"] <= FAST["epochs"]).all() and (res.trials["seconds"] >= 0).all()


def test_same_seed_same_trials(ratings):
    space = {"learning_rate": ("log", 1e-3, 0.05), "factors": (2, 8), "regularization": [0.01, 0.05, 0.1]}
    fixed = {"threads": 1, "epochs": 4}
    a = tune(mfrec.BiasedMF, ratings, space, trials=4, fixed=fixed, seed=7)
    b = tune(mfrec.BiasedMF, ratings, space, trials=4, fixed=fixed, seed=7)
    c = tune(mfrec.BiasedMF, ratings, space, trials=4, fixed=fixed, seed=8)
    cols = ["learning_rate", "factors", "regularization"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    assert np.array_equal(a.trials["score"], b.trials["score"])  # threads=1: bit-identical fits
    assert not a.trials[cols].equals(c.trials[cols])
    assert a.trials[cols].to_dict("records") == sample_space(space, 4, seed=7)


def test_search_space_kinds():
    space = {"f": (2, 9), "lr": ("log", 1e-4, 1e-1), "x": (0.5, 1.5), "n": ("log", 1, 1000), "c": ["a", "b"], "k": 3}
    draws = pd.DataFrame(sample_space(space, 300, seed=0))
    assert draws["f"].map(type).eq(int).all() and draws["f"].between(2, 9).all() and draws["f"].nunique() == 8
    assert draws["lr"].between(1e-4, 1e-1).all()
    # log-uniform: about as many draws per decade
    decades = np.floor(np.log10(draws["lr"])).value_counts()
    assert len(decades) == 3 and decades.min() > 60
    assert draws["x"].map(type).eq(float).all() and draws["x"].between(0.5, 1.5).all()
    assert draws["n"].map(type).eq(int).all() and draws["n"].between(1, 1000).all()
    assert set(draws["c"]) == {"a", "b"} and (draws["k"] == 3).all()
    for bad in ({"f": (3, 1)}, {"f": ("log", 0, 1)}, {"f": (1, 2, 3)}, {"f": []}, {}):
        with pytest.raises(ValueError):
            sample_space(bad, 1)


def test_random_search_never_repeats_a_configuration():
    """A small discrete space: each of its configurations at most once, every one when the
    trials are as many; fewer configurations than trials: each once, with a warning."""
    space = {"f": (2, 4), "c": ["a", "b", "a"], "k": 3}  # 3 x 2 distinct configurations
    for n in (1, 4, 6):
        draws = sample_space(space, n, seed=1)
        assert len(draws) == n and len({repr(d) for d in draws}) == n
    assert {(d["f"], d["c"]) for d in sample_space(space, 6, seed=2)} == {(f, c) for f in (2, 3, 4) for c in "ab"}
    with pytest.warns(UserWarning, match="6 distinct configurations but trials=9"):
        draws = sample_space(space, 9, seed=3)
    assert len({repr(d) for d in draws}) == len(draws) == 6
    assert sample_space(space, 5, seed=4) == sample_space(space, 5, seed=4)
    # a range of one value is one configuration, an integer one or a float one
    for one in ((0.1, 0.1), ("log", 0.1, 0.1), (3, 3)):
        with pytest.warns(UserWarning, match="1 distinct configurations but trials=2"):
            assert len(sample_space({"x": one}, 2)) == 1
    with pytest.warns(UserWarning, match="only 2 distinct configurations in 1000 draws"):
        assert len(sample_space({"x": (1.0, 1.0000000000000002)}, 5)) == 2
    # a continuous dimension: no limit, no warning
    assert len(sample_space({"x": (0.0, 1.0), "c": ["a"]}, 50, seed=0)) == 50


def test_tune_random_tries_a_small_space_once_each(ratings):
    space = {"regularization": [0.01, 0.1], "factors": [2]}
    with pytest.warns(UserWarning, match="2 distinct configurations but trials=5"):
        res = tune(mfrec.BiasedMF, ratings, space, trials=5, fixed={"threads": 1, "epochs": 2})
    assert sorted(res.trials["regularization"]) == [0.01, 0.1]


def test_improves_over_a_bad_starting_point(ratings):
    fixed = {"threads": 1, "epochs": 10, "factors": 4, "bias_learning_rate": None}  # biases follow learning_rate
    bad = tune(mfrec.BiasedMF, ratings, {"learning_rate": [1e-4]}, trials=1, fixed=fixed)
    good = tune(mfrec.BiasedMF, ratings, {"learning_rate": ("log", 1e-4, 0.05)}, trials=6, fixed=fixed)
    assert good.best_score < bad.best_score - 0.05
    assert good.best_params["learning_rate"] > 1e-3


def test_grid_enumerates_combinations(ratings):
    space = {"factors": [2, 4], "regularization": [0.01, 0.1], "learning_rate": 0.02}
    res = tune(mfrec.BiasedMF, ratings, space, method="grid", trials=None, fixed={"threads": 1, "epochs": 3})
    combos = set(zip(res.trials["factors"], res.trials["regularization"]))
    assert combos == {(2, 0.01), (2, 0.1), (4, 0.01), (4, 0.1)} and len(res.trials) == 4
    assert (res.trials["learning_rate"] == 0.02).all()
    with pytest.warns(UserWarning, match="4 combinations but trials=3"):
        capped = tune(mfrec.BiasedMF, ratings, space, method="grid", trials=3, fixed={"threads": 1, "epochs": 3})
    assert len(capped.trials) == 3
    assert set(zip(capped.trials["factors"], capped.trials["regularization"])) <= combos
    with pytest.raises(ValueError, match="grid"):
        tune(mfrec.BiasedMF, ratings, {"factors": (2, 8)}, method="grid")


def test_early_stopping_and_validation_set(ratings):
    train, val = random_split(ratings, test_size=0.2, seed=3)
    fixed = {"threads": 1, "epochs": 40, "factors": 4, "bias_learning_rate": None}
    res = tune(mfrec.BiasedMF, train, {"learning_rate": [0.05]}, trials=1, validation=val, fixed=fixed,
               early_stopping=1)
    row = res.trials.iloc[0]
    assert res.best_model.early_stopping == 1
    assert row["epochs_run"] < 40 and row["best_epoch"] <= row["epochs_run"]  # stopped early on validation RMSE
    assert res.best_score == pytest.approx(evaluate(res.best_model, val)["rmse"])
    off = tune(mfrec.BiasedMF, train, {"learning_rate": [0.05]}, trials=1, validation=val, fixed=fixed,
               early_stopping=None)
    assert off.trials.iloc[0]["epochs_run"] == 40 and off.best_model.early_stopping is None


def test_validation_that_overlaps_the_tuned_ratings_is_refused(ratings):
    """validation=<the training data> scored every trial on what it was fitted to, silently."""
    train, val = random_split(ratings, test_size=0.2, seed=3)
    leaky = mfrec.Ratings.from_dataframe(pd.concat([val.to_dataframe(), train.to_dataframe().head(5)]))
    for bad, n in ((train, len(train)), (leaky, 5)):
        with pytest.raises(ValueError, match=f"validation shares {n} of its"):
            tune(mfrec.BiasedMF, train, {"learning_rate": [0.05]}, trials=1, validation=bad, fixed=FAST)
    # a (user, item) pair is what leaks: the same users and items, other pairs, are fine
    assert tune(mfrec.BiasedMF, train, {"learning_rate": [0.05]}, trials=1, validation=val, fixed=FAST).trials.shape[0] == 1


def test_fit_early_stopping_refuses_validation_pairs_from_training_and_a_plain_rmse_warns(ratings):
    train, val = random_split(ratings, test_size=0.2, seed=3)
    with pytest.raises(ValueError, match="early_stopping needs held-out"):
        mfrec.BiasedMF(**FAST, early_stopping=2).fit(train, validation=train)
    with pytest.warns(UserWarning, match=f"validation shares {len(train)} of its"):
        mfrec.BiasedMF(**FAST).fit(train, validation=train)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mfrec.BiasedMF(**FAST, early_stopping=2).fit(train, validation=val)


def test_ranking_metric_is_maximized_and_models_without_early_stopping(ratings):
    res = tune(mfrec.ImplicitALS, ratings, {"regularization": ("log", 0.1, 100.0)}, trials=3, metric="ndcg@10",
               fixed={"threads": 1, "iterations": 3, "factors": 4})
    assert res.direction == "maximize" and res.best_score == res.trials["score"].max()
    assert 0 < res.best_score <= 1
    with pytest.raises(ValueError, match="ranking metric"):
        tune(mfrec.ImplicitALS, ratings, {"factors": [2]}, metric="rmse")


def test_diverged_trials_fail_alone(ratings):
    fixed = {"threads": 1, "epochs": 4, "factors": 4}
    with pytest.warns(UserWarning, match="trial 1 .* failed"):
        res = tune(mfrec.BiasedMF, ratings, {"learning_rate": [0.02, 50.0]}, method="grid", fixed=fixed)
    assert len(res.trials) == 2 and np.isnan(res.trials["score"].iloc[1])
    assert res.best_params == {"learning_rate": 0.02} and np.isfinite(res.best_score)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="all 1 trials failed"):
        tune(mfrec.BiasedMF, ratings, {"learning_rate": [50.0]}, method="grid", fixed=fixed)


def test_argument_errors(ratings):
    with pytest.raises(ValueError, match="no parameter"):
        tune(mfrec.BiasedMF, ratings, {"nonsense": [1]})
    with pytest.raises(ValueError, match="both"):
        tune(mfrec.BiasedMF, ratings, {"factors": [1]}, fixed={"factors": 2})
    with pytest.raises(ValueError, match="method"):
        tune(mfrec.BiasedMF, ratings, {"factors": [1]}, method="bayes")
    with pytest.raises(ValueError, match="unknown metric"):
        tune(mfrec.BiasedMF, ratings, {"factors": [1]}, metric="auc")


def test_starting_from_an_instance(ratings):
    start = mfrec.BiasedMF(factors=3, epochs=2, threads=1, regularization=0.123)
    res = tune(start, ratings, {"learning_rate": [0.01, 0.02]}, method="grid")
    assert res.best_model.factors == 3 and res.best_model.regularization == 0.123
    assert res.best_model.early_stopping == 3  # the tune default patience


@pytest.mark.skipif(HAS_OPTUNA, reason="optuna is installed")
def test_optuna_missing_is_a_clear_error(ratings):
    with pytest.raises(ImportError, match=r"mfrec\[tune\]"):
        tune(mfrec.BiasedMF, ratings, {"factors": [2]}, method="optuna")


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna not installed (extra 'tune')")
def test_optuna_is_seeded(ratings):
    space = {"learning_rate": ("log", 1e-3, 0.05), "factors": (2, 6), "regularization": [0.02, 0.1]}
    fixed = {"threads": 1, "epochs": 4}
    a = tune(mfrec.BiasedMF, ratings, space, trials=4, method="optuna", seed=1, fixed=fixed)
    b = tune(mfrec.BiasedMF, ratings, space, trials=4, method="optuna", seed=1, fixed=fixed)
    cols = ["learning_rate", "factors", "regularization"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    assert len(a.trials) == 4 and a.trials["factors"].between(2, 6).all()
    assert all(math.isfinite(s) for s in a.trials["score"])


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("space,match", [
    ({"factors": [-1, 5]}, r"space\['factors'\]: the value -1 is refused"),
    ({"factors": (1, 2.5)}, r"space\[.factors.\]: factors takes integers"),
    ({"learning_rate": ("log", 0.01, 1e400)}, r"space\['learning_rate'\]: the value inf is refused"),
    ({"dtype": ["float32", "float16"]}, r"space\['dtype'\]: the value 'float16' is refused"),
])
def test_values_a_trial_could_use_are_checked_before_any_trial(space, match):
    """A bad choice failed in whichever trial drew it (or never, silently, when none did); a float
    range on an integer parameter failed mid-search."""
    import mfrec
    from mfrec.evaluation import tune

    r = mfrec.synthetic(30, 20, 200, seed=0)
    calls = []
    with pytest.raises(ValueError, match=match):
        tune(mfrec.BiasedMF, r, space, trials=2, callback=lambda *a: calls.append(a))
    assert calls == []


def test_constraints_between_searched_parameters_are_left_to_the_trials():
    import mfrec
    from mfrec.evaluation import check_search

    check_search(mfrec.BayesianMF, {"iterations": [10, 50], "burn_in": [5]})  # burn_in default 20 > 10: not refused


def test_trials_keep_the_tuned_epochs_beside_the_epochs_run(ratings):
    """Tuning ``epochs`` itself: the table's parameter column is what was tried, not what ran."""
    train, val = random_split(ratings, test_size=0.2, seed=0)
    res = tune(mfrec.BiasedMF, train, {"epochs": [2, 30], "factors": [4]}, validation=val, method="grid",
                     seed=0, early_stopping=1)
    assert sorted(res.trials["epochs"].tolist()) == [2, 30]
    assert (res.trials["epochs_run"] <= res.trials["epochs"]).all()
    assert res.best_params["epochs"] == res.trials.loc[res.trials["score"].idxmin(), "epochs"]


def test_a_numpy_validation_fraction_is_a_fraction(ratings):
    res = tune(mfrec.Baseline, ratings, {"iterations": [1, 2]}, validation=np.float32(0.25), method="grid", seed=0)
    assert len(res.trials) == 2


@pytest.mark.parametrize("spec", [{2, 4}, {"a": 1}, range(2, 5), np.array([2, 4]), (x for x in [2, 4])])
def test_containers_that_are_not_lists_are_refused_as_dimensions(ratings, spec):
    """A set was refused as "factors must be an integer" (it was taken as one fixed value)."""
    with pytest.raises(ValueError, match="is no search dimension; use a list"):
        tune(mfrec.BiasedMF, ratings, {"factors": spec}, trials=1, fixed=FAST)


def test_a_metric_spelled_otherwise_is_tuned_under_that_spelling(ratings):
    res = tune(mfrec.BiasedMF, ratings, {"learning_rate": [0.05]}, trials=1, metric="RMSE", fixed=FAST)
    assert res.metric == "RMSE" and np.isfinite(res.best_score)
