"""evaluate() end to end on small synthetic data, plus one real-data check (cross_validate: test_validation.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.evaluation import cross_validate, evaluate, rank_test_users
from mfrec.split import holdout_users, random_split
from tests.conftest import dataset_dir

ACCURACY = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "mrr@10"]
ALL = ["rmse", "mae"] + ACCURACY + ["coverage@10", "novelty@10", "arp@10"]


@pytest.fixture(scope="module")
def data():
    ratings = mfrec.synthetic(300, 200, 8000, factors=5, seed=0)
    train, test = random_split(ratings, test_size=0.2, seed=0)
    return ratings, train, test


@pytest.fixture(scope="module")
def bmf(data):
    _, train, _ = data
    return mfrec.BiasedMF(factors=8, epochs=10, threads=1, seed=0).fit(train)


def pairs(df: pd.DataFrame) -> set:
    return set(zip(df["user"].tolist(), df["item"].tolist()))


def test_evaluate_keys_and_ranges(data, bmf):
    _, train, test = data
    res = evaluate(bmf, test, metrics=ALL)
    assert list(res)[: len(ALL)] == ALL
    for key in ("n_test", "n_users_ranked", "n_unknown_users", "n_users_relevant"):
        assert key in res
    assert res["n_test"] == len(test)
    n_test_users = len(np.unique(test.user_indices))
    assert res["n_users_ranked"] + res["n_unknown_users"] == n_test_users
    assert 0 < res["n_users_relevant"] <= res["n_users_ranked"]
    for name in ACCURACY + ["coverage@10"]:
        assert 0.0 <= res[name] <= 1.0, name
    assert res["hit_rate@10"] > 0  # the planted structure is learnable
    assert res["precision@10"] <= res["hit_rate@10"]
    assert res["novelty@10"] > 0 and res["arp@10"] > 0
    assert 0 < res["rmse"] < 1.5 and 0 < res["mae"] <= res["rmse"]


def test_rating_metrics_use_predict(data, bmf):
    _, _, test = data
    res = evaluate(bmf, test)  # default: rmse, mae
    assert set(res) == {"rmse", "mae", "n_test", "n_unknown_users"}
    pred = bmf.predict(test.raw_users, test.raw_items)
    err = pred - test.values.astype(np.float64)
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-12)
    assert res["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-12)
    assert res["rmse"] == pytest.approx(bmf.score(test), rel=1e-9)
    # a DataFrame with raw ids gives the same numbers
    res_df = evaluate(bmf, test.to_dataframe(), metrics="rmse")
    assert res_df["rmse"] == pytest.approx(res["rmse"], rel=1e-12)


def test_per_user_values_agree_with_the_means(data, bmf):
    _, _, test = data
    res = evaluate(bmf, test, metrics=["rmse", "ndcg@10", "precision@5", "novelty@10"], per_user=True)
    pu = res["per_user"]
    assert len(pu) == len(np.unique(test.user_indices))
    assert pu["n_test"].sum() == len(test)
    # the n_test-weighted mean of per-user squared errors is the overall MSE
    assert np.sqrt(np.average(pu["rmse"] ** 2, weights=pu["n_test"])) == pytest.approx(res["rmse"])
    for name in ("ndcg@10", "precision@5", "novelty@10"):
        assert np.nanmean(pu[name]) == pytest.approx(res[name])
    assert pu["ndcg@10"].notna().sum() == res["n_users_relevant"]


def test_training_items_are_never_hits(data, bmf):
    _, train, test = data
    # every "test" item is a training item here, so nothing can be recommended that is relevant,
    # and evaluate says so (it gave 0.0 for every metric without a word)
    with pytest.warns(UserWarning, match=f"{len(train)} of the {len(train)} test ratings are .* pairs the model was "
                                         "trained on .* never hits"):
        res = evaluate(bmf, train, metrics=["hit_rate@10", "precision@10", "recall@20"])
    assert res["n_users_relevant"] > 0
    assert res["hit_rate@10"] == 0.0 and res["precision@10"] == 0.0 and res["recall@20"] == 0.0
    recs, ranked, unknown = rank_test_users(bmf, test, n=10)
    assert len(unknown) == 0 and len(recs) == 10 * len(ranked)
    assert not pairs(recs) & pairs(train.to_dataframe())
    assert (recs.groupby("user")["rank"].apply(list) == pd.Series([list(range(1, 11))] * len(ranked),
                                                                   index=recs.groupby("user").size().index)).all()


def test_test_pairs_in_train_warn_too_and_per_user_needs_a_bool(data, bmf):
    """evaluate(model, test, train=test) gave every ranking metric 0 without a word."""
    _, _, test = data
    with pytest.warns(UserWarning, match="pairs of train="):
        res = evaluate(bmf, test, metrics=["ndcg@5"], train=test)
    assert res["ndcg@5"] == 0.0
    with pytest.raises(ValueError, match="per_user must be True or False"):
        evaluate(bmf, test, metrics=["rmse"], per_user="no")


def test_held_out_test_ratings_raise_no_warning(data, bmf):
    import warnings

    _, _, test = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(bmf, test, metrics=["rmse", "ndcg@10"])


def test_explicit_train_items_are_excluded_too(data):
    ratings, train, _ = data
    # the model sees only part of train; passing train= must still keep all of train out of the lists
    part, _ = random_split(train, test_size=0.5, seed=1)
    model = mfrec.BiasedMF(factors=8, epochs=10, threads=1, seed=0).fit(part)
    loose = evaluate(model, train, metrics=["hit_rate@10"])
    assert loose["hit_rate@10"] > 0  # items of train that the model did not see can be hits ...
    strict = evaluate(model, train, metrics=["hit_rate@10", "ndcg@10"], train=train)
    assert strict["hit_rate@10"] == 0.0 and strict["ndcg@10"] == 0.0  # ... unless train= excludes them
    recs, ranked, _ = rank_test_users(model, train, n=10, train=train)
    assert not pairs(recs) & pairs(train.to_dataframe())
    assert (recs.groupby("user").size() == 10).all() and len(recs) == 10 * len(ranked)
    assert (recs.groupby("user")["rank"].max() == 10).all()
    assert list(pd.unique(recs["user"])) == list(ranked)  # users in test order, each list in rank order
    assert (recs.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_ids_spelled_as_strings_match(data, bmf):
    _, _, test = data
    names = ["rmse", "ndcg@10", "recall@5", "novelty@10"]
    want = evaluate(bmf, test, metrics=names)
    df = test.to_dataframe()
    df["user"], df["item"] = df["user"].astype(str), df["item"].astype(str)
    got = evaluate(bmf, df, metrics=names)
    for name in names:
        assert got[name] == pytest.approx(want[name]), name


def test_unknown_and_cold_users_are_counted_not_ranked(data, bmf):
    _, _, test = data
    extra = pd.DataFrame({"user": [10_000, 10_000], "item": [0, 1], "rating": [5.0, 4.0]})
    df = pd.concat([test.to_dataframe(), extra], ignore_index=True)
    res = evaluate(bmf, df, metrics=["rmse", "ndcg@10"])
    assert res["n_unknown_users"] == 1
    assert res["n_users_ranked"] == len(np.unique(test.user_indices))
    pred = bmf.predict(df["user"], df["item"])  # rating metrics still cover every test rating
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((pred - df["rating"].to_numpy()) ** 2)))
    assert res["ndcg@10"] == pytest.approx(evaluate(bmf, test, metrics=["ndcg@10"])["ndcg@10"])

    # users in the shared id map but without any training rating are cold: not ranked
    ratings = data[0]
    tr, held = holdout_users(ratings, fraction=0.1, seed=0)
    cold = mfrec.BiasedMF(factors=4, epochs=3, threads=1).fit(tr)
    res = evaluate(cold, held, metrics=["rmse", "ndcg@10"])
    assert res["n_users_ranked"] == 0 and res["n_unknown_users"] == len(np.unique(held.user_indices))
    assert np.isnan(res["ndcg@10"]) and np.isfinite(res["rmse"])


def test_als_and_implicit_models(data):
    _, train, test = data
    als = mfrec.ALS(factors=8, iterations=4, threads=1).fit(train)
    res = evaluate(als, test, metrics=["rmse", "ndcg@10", "coverage@10"])
    assert np.isfinite(res["rmse"]) and 0 <= res["ndcg@10"] <= 1 and 0 < res["coverage@10"] <= 1
    imp = mfrec.ImplicitALS(factors=8, iterations=3, threads=1).fit(train)
    with pytest.raises(ValueError, match="ranking metrics"):
        evaluate(imp, test, metrics=["rmse", "ndcg@10"])
    res = evaluate(imp, test, metrics=["ndcg@10", "recall@10"])
    assert 0 < res["ndcg@10"] <= 1 and 0 < res["recall@10"] <= 1


def test_bad_metric_names(data, bmf):
    _, _, test = data
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(bmf, test, metrics=["rsme"])
    with pytest.raises(ValueError, match="cut-off"):
        evaluate(bmf, test, metrics=["ndcg"])


@pytest.mark.realdata
def test_ml100k_u1_ranking_metrics():
    ds = mfrec.load_dataset("ml-100k", data_dir=dataset_dir("ml-100k").parent, download=False)
    train, test = ds.official_split("u1")
    model = mfrec.BiasedMF(seed=0).fit(train)
    res = evaluate(model, test, metrics=["rmse", "precision@10", "ndcg@10"], train=train)
    assert res["n_test"] == 20_000 and res["n_unknown_users"] == 0
    for name in ("precision@10", "ndcg@10"):
        assert np.isfinite(res[name]) and res[name] > 0
    assert res["rmse"] < 1.0


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.fixture(scope="module")
def _fitted():
    r = mfrec.synthetic(40, 30, 400, seed=0)
    train, test = random_split(r, seed=0)
    return mfrec.BiasedMF(factors=2, epochs=2, seed=0, threads=1).fit(train), train, test


@pytest.mark.parametrize("model,match", [("x", "must be an mfrec model"), (mfrec.BiasedMF, r"instance such as BiasedMF\(\)")])
def test_evaluate_and_cross_validate_name_a_wrong_model_argument(_fitted, model, match):
    _, train, test = _fitted
    with pytest.raises(TypeError, match=match):
        evaluate(model, test)
    with pytest.raises(TypeError, match=match):
        cross_validate(model, train, folds=2)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "4", None])
def test_relevance_threshold_must_be_finite(_fitted, threshold):
    """NaN made every ranking metric NaN, silently."""
    m, train, test = _fitted
    with pytest.raises(ValueError, match="relevance_threshold must be a finite number"):
        evaluate(m, test, metrics=("precision@5",), train=train, relevance_threshold=threshold)
    with pytest.raises(ValueError, match="relevance_threshold must be a finite number"):
        cross_validate(mfrec.Baseline(), train, folds=2, metrics=("precision@5",), relevance_threshold=threshold)


def test_metrics_none_is_a_type_error(_fitted):
    with pytest.raises(TypeError, match="metrics must be"):
        evaluate(_fitted[0], _fitted[2], metrics=None)


@pytest.mark.parametrize("trials", [2.5, "2", np.float64(3)])
def test_tune_trials_must_be_an_integer(_fitted, trials):
    with pytest.raises(ValueError, match="trials must be a positive integer"):
        mfrec.tune(mfrec.Baseline, _fitted[1], {"user_regularization": [1.0, 2.0]}, trials=trials)
