"""mfrec evaluate (and the shared data options of train/evaluate/tune)."""

from __future__ import annotations

import json

import pytest

import mfrec
from tests.cli.helpers import run, ok, assert_clean_error, data_env, _require, strict_json, _custom_columns


def test_evaluate_json_on_u1():
    _require("mfrec.evaluate")
    res = run("evaluate", "--dataset", "ml-100k", "--split", "u1", "--model", "baseline", "--json", "--quiet",
              env=data_env("ml-100k"))
    out = json.loads(ok(res))
    for key in ("rmse", "mae", "fit_seconds", "model", "params", "dataset", "split"):
        assert key in out, key
    assert out["model"] == "baseline" and out["dataset"] == "ml-100k" and out["split"] == "u1"
    assert 0.85 < out["rmse"] < 1.0 and 0.6 < out["mae"] < out["rmse"]


def test_evaluate_and_tune_take_ratings_with_the_train_column_options(work, tmp_path):
    path = _custom_columns(work, tmp_path)
    cols = ("--ratings", path, "--sep", ";", "--user-col", "who", "--item-col", "film", "--rating-col", "stars")
    out = json.loads(ok(run("evaluate", *cols, "--model", "baseline", "--json", "-q")))
    assert out["dataset"] == str(path) and out["split"] == "random" and out["rmse"] > 0
    out = json.loads(ok(run("tune", *cols, "--model", "baseline", "--space", '{"iterations": [2, 3]}', "--method",
                            "grid", "--json", "-q")))
    assert len(out["trials"]) == 2
    ok(run("train", *cols, "--model", "baseline", "--out", tmp_path / "c.mfrec", "-q"))
    assert_clean_error(run("evaluate", "--ratings", path, "--model", "baseline"), "rating")  # wrong columns
    assert_clean_error(run("evaluate", "--ratings", work / "small.csv", "--split", "u1"), "random or kfold")
    assert_clean_error(run("evaluate", "--ratings", work / "small.csv", "--dataset", "ml-100k"), "exactly one")
    assert_clean_error(run("train", "--dataset", "ml-100k", "--user-col", "who", "--out", tmp_path / "x.mfrec"),
                       "--user-col", "with --ratings")


def test_evaluate_kfold_prints_mean_std_and_every_fold(work):
    out = json.loads(ok(run("evaluate", "--ratings", work / "small.csv", "--model", "baseline", "--split", "kfold",
                            "--json")))
    assert len(out["folds"]) == 5 and [f["fold"] for f in out["folds"]] == [1, 2, 3, 4, 5]
    import numpy as np

    rmses = [f["rmse"] for f in out["folds"]]
    assert out["rmse"] == pytest.approx(np.mean(rmses)) and out["std"]["rmse"] == pytest.approx(np.std(rmses))
    res = run("evaluate", "--ratings", work / "small.csv", "--model", "baseline", "--split", "kfold")
    table = ok(res)
    for word in ("mean", "std", "fold 1", "fold 5", "rmse", "mae", f"{rmses[0]:.4f}"):
        assert word in table, word
    assert "5/5" in res.stderr  # the progress bar counted the folds


def test_json_never_prints_nan(work, tmp_path):
    """precision@10 is undefined when no test user has a relevant item: null, not NaN."""
    import pandas as pd

    low = pd.read_csv(work / "small.csv")
    low["rating"] = low["rating"].clip(upper=3)
    low.to_csv(tmp_path / "low.csv", index=False)
    res = run("evaluate", "--model-file", work / "m.mfrec", "--test", tmp_path / "low.csv", "--metrics",
              "rmse,precision@10", "--json")
    out = strict_json(ok(res))
    assert out["precision@10"] is None and out["rmse"] > 0


def test_evaluating_a_model_on_its_training_ratings_warns(work):
    """On its own training pairs every ranking metric is 0 and the RMSE in-sample: said, not hidden."""
    with pytest.warns(UserWarning, match=r"500 of the 500 test ratings are \(user, item\) pairs the model was trained on"):
        res = run("evaluate", "--model-file", work / "m.mfrec", "--test", work / "small.csv", "--metrics", "rmse,ndcg@10")
    ok(res)  # a warning line (the console script prints warnings as `warning: ...`), not an error


@pytest.mark.parametrize("metrics", ["foo", "", "precision@0"])
def test_evaluate_refuses_bad_metrics_before_reading_or_training(tmp_path, metrics):
    """`evaluate --metrics foo` trained a model for seconds (minutes on big data), then failed."""
    assert_clean_error(run("evaluate", "--ratings", tmp_path / "missing.csv", "--metrics", metrics), "metric")


def test_evaluate_names_an_unknown_split(tmp_path):
    """It said "'nope' is one of a dataset's official splits"."""
    assert_clean_error(run("evaluate", "--ratings", tmp_path / "missing.csv", "--split", "nope"),
                       "unknown --split 'nope'", "kfold")


def test_library_progress_callbacks(work):
    """tune(callback=) and cross_validate(callback=) report (done, total, row) per trial / fold."""
    data = mfrec.Ratings.read_csv(work / "small.csv")
    seen: list = []
    mfrec.tune(mfrec.Baseline, data, {"iterations": [2, 3]}, method="grid", trials=None,
               callback=lambda d, t, row: seen.append((d, t, row["iterations"])))
    assert seen == [(1, 2, 2), (2, 2, 3)]
    seen.clear()
    mfrec.cross_validate(mfrec.Baseline(), data, folds=3, callback=lambda d, t, row: seen.append((d, t, row["fold"])))
    assert seen == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]


def test_training_options_beside_a_model_file_are_refused(work, tmp_path):
    """`--model-file M --test T --split u1 -p epochs=3` evaluated M as saved, ignoring the rest."""
    for extra in (["--model", "als"], ["--split", "u1"], ["-p", "epochs=3"], ["--threads", "2"], ["--rating-scale", "1,5"]):
        assert_clean_error(run("evaluate", "--model-file", work / "m.mfrec", "--test", work / "small.csv", *extra),
                           "not --model-file")


def test_evaluate_with_a_rating_scale(tmp_path):
    r = tmp_path / "r.csv"
    r.write_text("user,item,rating\n" + "".join(f"{u},{i},{(u * 7 + i) % 10 + 1}\n" for u in range(12) for i in range(9)))
    out = json.loads(ok(run("evaluate", "--ratings", r, "--model", "baseline", "--rating-scale", "1,10",
                            "--metrics", "rmse", "--json")))
    assert out["rmse"] > 0
    assert_clean_error(run("evaluate", "--ratings", r, "--model", "baseline", "--rating-scale", "1,5"),
                       "outside the scale [1, 5]")
