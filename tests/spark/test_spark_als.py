"""mfrec.spark: Spark MLlib ALS (local[2], small data) returning ordinary mfrec models.

Five small ALS fits in all (one session, module-scoped fits, 6 iterations): no-bias parity (1),
biases with one outer round (2), the CLI's implicit fit (1, 2 iterations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec import ALS, DataError, ImplicitALS, Ratings, load_model, synthetic
from mfrec.split import random_split


def _fit(spark, data, **kw):
    """`_train_als` with `train_als`'s defaults and ``kw``: (model, Spark's ALSModel)."""
    import inspect

    from mfrec.spark.train import _train_als, train_als

    args = {p.name: p.default for p in inspect.signature(train_als).parameters.values() if p.name != "source"}
    args.update(factors=K, iterations=ITERS, regularization=REG, spark=spark, **kw)
    return _train_als(data, **args)

K, ITERS, REG = 4, 6, 0.1


@pytest.fixture(scope="module")
def ratings() -> Ratings:
    """String user ids and 64-bit item ids (beyond int32: Spark's ALS needs them renumbered)."""
    r = synthetic(150, 90, 3000, factors=3, seed=7)
    df = r.to_dataframe()
    df["user"] = "user-" + df["user"].astype(str)
    df["item"] = df["item"].astype(np.int64) + 2**40
    return Ratings.from_dataframe(df, rating_scale=(1.0, 5.0))


@pytest.fixture(scope="module")
def plain(spark, ratings):
    """No biases: the model is pure Spark factors; also Spark's own ALSModel."""
    return _fit(spark, ratings, biases=False)


@pytest.fixture(scope="module")
def split(ratings):
    return random_split(ratings, test_size=0.2, seed=1)


@pytest.fixture(scope="module")
def biased(spark, split):
    """Biases with one outer round (two ALS fits; the default is two rounds), every round kept."""
    return _fit(spark, split[0], bias_rounds=1, _keep_rounds=True)[0]


def _ridge_users(model, train: Ratings, offset: np.ndarray) -> np.ndarray:
    """Each user's exact ALS-WR ridge solution against the model's item factors:
    ``(Q^T Q + reg * n_u I) x = Q^T (r - offset)``."""
    bu = train.by_user
    Q = model.item_factors_.astype(np.float64)
    out = np.zeros((train.n_users, Q.shape[1]))
    for u in range(train.n_users):  # one small solve per user (150 users), not per rating
        lo, hi = bu.indptr[u], bu.indptr[u + 1]
        j = bu.indices[lo:hi]
        Qu = Q[j]
        A = Qu.T @ Qu + REG * (hi - lo) * np.eye(Q.shape[1])
        out[u] = np.linalg.solve(A, Qu.T @ (bu.data[lo:hi] - offset[lo:hi]))
    return out


def test_user_factors_are_the_exact_ridge_solution_fold_in_reproduces_them(plain, ratings):
    model, _ = plain
    assert isinstance(model, ALS) and model.weighted and not model.use_bias
    assert model.user_factors_.dtype == np.float32
    ridge = _ridge_users(model, ratings, np.zeros(len(ratings)))
    np.testing.assert_allclose(model.user_factors_, ridge, rtol=1e-3, atol=2e-4)
    # mfrec's own fold-in (ALS-WR: regParam * n_u) reproduces Spark's factors
    df = ratings.to_dataframe()
    for user in ["user-0", "user-17", "user-101"]:
        mine = df[df.user == user]
        fold = model.fold_in(dict(zip(mine.item, mine.rating)))
        np.testing.assert_allclose(fold.factors, model.user_factors_[model.user_map_.index_of(user)],
                                   rtol=1e-3, atol=2e-4)


def test_recommendations_agree_with_spark_recommend_for_all_users(plain):
    model, spark_model = plain
    n = 5
    recs = spark_model.recommendForAllUsers(n).toPandas()
    ours = model.recommend_many(n=n, exclude_seen=False)
    agree = total = 0
    for uidx, row in zip(recs.uidx, recs.recommendations):
        spark_items = model.item_map_.to_raw([r["iidx"] for r in row])
        spark_scores = np.array([r["rating"] for r in row])
        mine = ours[ours.user == model.user_map_.to_raw([uidx])[0]]
        np.testing.assert_allclose(mine.score.to_numpy(), spark_scores, rtol=1e-4, atol=1e-4)
        agree += len(set(mine.item) & set(spark_items))
        total += n
    assert agree / total > 0.98  # only exact ties may swap places


def test_biases_follow_the_als_wr_rule_each_round_and_factors_fit_the_residuals(biased, split):
    train = split[0]
    m = biased
    assert m.use_bias and m.weighted and m.bias_regularization is None
    assert m.user_map_ == train.user_map and m.item_map_ == train.item_map  # sorted raw ids, like fit()
    first, last = m.spark_rounds_
    mu = train.global_mean
    u, i, r = train.user_indices, train.item_indices, train.values.astype(np.float64)
    # round 1: biases of r - mu; round 2: of r - mu - x_u.y_i (round 1's factors). Users are
    # solved last, against the final item biases: b_u = sum(t - b_i) / (n_u (1 + reg))
    xy = np.sum(first["user_factors"][u].astype(np.float64) * first["item_factors"][i], axis=1)
    for rnd, t in ((first, r - mu), (last, r - mu - xy)):
        expect_bu = np.bincount(u, t - rnd["item_bias"][i], train.n_users) / (train.user_counts * (1 + REG))
        np.testing.assert_allclose(rnd["user_bias"], expect_bu, rtol=1e-4, atol=1e-5)
    assert not np.allclose(first["user_bias"], last["user_bias"], atol=1e-3)  # the round changed them
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):  # the model is the last fit
        np.testing.assert_array_equal(getattr(m, name + "_"), last[name])
    # the final factors are the exact ridge solution for the targets the last fit used
    bu = train.by_user  # CSR order of the residual targets
    order = train.user_item_order
    offset = (mu + m.user_bias_[u] + m.item_bias_[i])[order]
    assert np.array_equal(bu.indices, i[order])
    np.testing.assert_allclose(m.user_factors_, _ridge_users(m, train, offset), rtol=1e-3, atol=2e-4)


def test_fitted_state_matches_what_fit_sets(biased, split):
    train = split[0]
    ref = ALS(factors=K, iterations=ITERS, regularization=REG, bias_regularization=None, weighted=True,
              solver="cholesky").fit(train)
    for name in ("rating_scale_", "n_train_", "best_epoch_", "fitted_"):
        assert getattr(biased, name) == getattr(ref, name), name
    assert biased.global_mean_ == pytest.approx(ref.global_mean_, abs=1e-9)
    assert biased.train_mean_ == pytest.approx(ref.train_mean_, abs=1e-9)
    assert (biased.seen_ != ref.seen_).nnz == 0 and biased.seen_.dtype == ref.seen_.dtype
    assert list(biased.history_.columns) == list(ref.history_.columns)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert getattr(biased, name).shape == getattr(ref, name).shape
        assert getattr(biased, name).dtype == getattr(ref, name).dtype
    # accuracy: same k, iterations and regularization; held-out RMSE within 6% of mfrec's ALS on
    # this tiny set (16 ratings a user; one outer bias round here, joint biases there); ml-100k
    # u1 and ml-latest-small (two rounds, within 1%): benchmarks/RESULTS.md
    test = split[1]
    assert biased.score(test) < 1.06 * ref.score(test)


def test_save_load_recommend_fold_in_with_raw_string_and_64bit_ids(biased, split, tmp_path):
    test = split[1]
    path = biased.save(tmp_path / "spark.mfrec")
    back = load_model(path)
    assert isinstance(back, ALS)
    np.testing.assert_array_equal(back.predict_ratings(test), biased.predict_ratings(test))
    rec = back.recommend("user-3", n=5)
    assert len(rec) == 5 and all(int(x) >= 2**40 for x in rec["item"])
    seen = set(split[0].to_dataframe().query("user == 'user-3'").item)
    assert not seen & set(rec["item"])
    fold = back.fold_in({int(2**40 + 1): 5.0, int(2**40 + 2): 1.0})
    assert np.isfinite(fold.bias) and np.all(np.isfinite(fold.factors))
    assert np.isfinite(back.predict(["never-seen"], [2**40 + 1])).all()  # cold user: biases fallback


def test_recommend_all_writes_the_models_top_n_to_parquet(spark, biased, tmp_path):
    from mfrec.spark import recommend_all

    out = recommend_all(biased, spark, n=3, out=str(tmp_path / "top"))
    got = pd.read_parquet(out).sort_values(["user", "rank"]).reset_index(drop=True)
    want = biased.recommend_many(n=3).sort_values(["user", "rank"]).reset_index(drop=True)
    assert len(got) == len(want) == 3 * len(biased.user_map_)
    assert got["user"].tolist() == want["user"].tolist()
    assert got["item"].tolist() == want["item"].tolist()
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)


def test_recommend_all_without_a_session_uses_the_active_one(spark, biased, tmp_path):
    from mfrec.spark import recommend_all

    out = recommend_all(biased, None, n=2, out=str(tmp_path / "top"))  # `spark` is the active session
    assert len(pd.read_parquet(out)) == 2 * len(biased.user_map_)
    assert spark.sparkContext._jsc is not None  # the caller's session is not stopped


@pytest.mark.parametrize("kwargs, match", [
    ({"spark": "local"}, "SparkSession or None"),
    ({"partitions": 0}, "partitions"),
    ({"partitions": 1.5}, "partitions"),
    ({"mode": "replace"}, "mode must be one of"),
    ({"out": ""}, "out must be"),
])
def test_recommend_all_refuses_bad_arguments_before_spark_runs(biased, tmp_path, kwargs, match):
    from mfrec.spark import recommend_all

    args = {"out": str(tmp_path / "top"), **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        recommend_all(biased, **args)
    assert not (tmp_path / "top").exists()


def test_cli_engine_spark_trains_implicit_from_a_csv_read_by_spark(spark, ratings, tmp_path):
    from typer.testing import CliRunner

    from mfrec.cli import app

    csv = tmp_path / "r.csv"
    ratings.to_dataframe().to_csv(csv, index=False)
    out = tmp_path / "imp.mfrec"
    res = CliRunner().invoke(app, ["train", "--engine", "spark", "--ratings", str(csv), "--factors", "3",
                                   "--iterations", "2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    model = load_model(out)
    assert isinstance(model, ImplicitALS) and model.confidence == "rating"
    assert model.n_train_ == len(ratings) and len(model.recommend("user-5", n=3)) == 3
    bad = CliRunner().invoke(app, ["train", "--engine", "spark", "--model", "svdpp", "--ratings", str(csv),
                                   "--out", str(tmp_path / "x.mfrec")])
    assert bad.exit_code != 0 and "--engine spark trains --model als" in bad.output


@pytest.mark.parametrize("case, message", [
    ("missing column", "missing column(s) ['rating']"),
    ("duplicate", "duplicate (user, item) pair"),
    ("null rating", "missing or non-finite rating"),
    ("nan rating", "missing or non-finite rating"),
    ("float ids", "user ids must be strings or integers"),
])
def test_bad_spark_input_is_a_clear_data_error(spark, case, message):
    from mfrec.spark import train_als

    rows = pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 10], "rating": [4.0, 3.0, 5.0]})
    if case == "missing column":
        rows = rows.drop(columns="rating")
    elif case == "duplicate":
        rows.loc[1, "item"] = 10
    elif case == "float ids":
        rows["user"] = rows["user"] + 0.5
    df = spark.createDataFrame(rows)
    if case == "null rating":
        df = spark.createDataFrame([(1, 10, 4.0), (2, 10, None)], "user long, item long, rating double")
    elif case == "nan rating":
        df = spark.createDataFrame([(1, 10, 4.0), (2, 10, float("nan"))], "user long, item long, rating double")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        train_als(df, factors=2, iterations=1, spark=spark)


def test_bad_parameters_raise_before_any_spark_work():
    from mfrec.spark import train_als

    with pytest.raises(ValueError, match="implicit=True has no biases"):
        train_als(None, implicit=True, biases=True)
    with pytest.raises(ValueError, match="regularization must be a finite number"):
        train_als(None, regularization=-1.0)
    with pytest.raises(ValueError, match="bias_rounds must be an integer >= 0"):
        train_als(None, bias_rounds=-1)
    with pytest.raises(ValueError, match="cold_start_strategy"):
        train_als(None, cold_start_strategy="drop-it")


def test_csv_files_are_read_by_mfrec_rules(spark, tmp_path):
    """Spark's inferSchema merged "007" and "7" into one user and cut a row with an extra field;
    a missing path was a raw AnalysisException (and a traceback in the CLI)."""
    from typer.testing import CliRunner

    from mfrec.cli import app
    from mfrec.spark import train_als

    lead = tmp_path / "lead0.csv"
    lead.write_text("user,item,rating\n007,1,4\n7,2,3\n8,1,5\n9,2,2\n")
    model = train_als(str(lead), factors=2, iterations=1, spark=spark)
    assert sorted(model.users_.tolist()) == sorted(mfrec.Ratings.read_csv(lead).user_map.ids.tolist()) \
        == ["007", "7", "8", "9"]
    ints = tmp_path / "ints.csv"
    ints.write_text("user,item,rating\n1,10,4\n2,11,3\n3,10,5\n")
    assert train_als(str(ints), factors=2, iterations=1, spark=spark).users_.dtype.kind == "i"
    extra = tmp_path / "extra.csv"
    extra.write_text("user,item,rating\n1,1,4,99\n2,2,3\n3,1,5\n")
    with pytest.raises(DataError, match="malformed row: '1,1,4,99'"):
        train_als(str(extra), factors=2, iterations=1, spark=spark)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        train_als(str(tmp_path / "nope.csv"), factors=2, iterations=1, spark=spark)
    spaced = tmp_path / "spaced.csv"  # surrounding spaces dropped, as by Ratings.read_csv
    spaced.write_text("user,item,rating\n 1,a ,4\n2, a,3\n3 ,b,5\n")
    model = train_als(str(spaced), factors=2, iterations=1, spark=spark)
    assert model.users_.tolist() == [1, 2, 3] and model.items_.tolist() == ["a", "b"]
    blank = tmp_path / "blank.csv"
    blank.write_text("user,item,rating\n1,a,4\n2, \u00a0 ,3\n")  # a no-break space too, as str.strip
    with pytest.raises(DataError, match="missing item id"):
        train_als(str(blank), factors=2, iterations=1, spark=spark)
    with pytest.raises(DataError, match="missing item id"):
        mfrec.Ratings.read_csv(blank)
    res = CliRunner().invoke(app, ["train", "--engine", "spark", "--model", "als", "--ratings",
                                   str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.mfrec"), "-q"])
    assert res.exit_code != 0 and "Traceback" not in res.output and "nope.csv" in res.output
