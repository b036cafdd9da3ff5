"""mfrec tune."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import run, ok, assert_clean_error, data_env, _require, _no_fit


def test_tune_json():
    _require("mfrec.evaluate")
    _require("mfrec.tune")
    res = run("tune", "--dataset", "ml-100k", "--model", "baseline", "--space", '{"iterations": [2, 3]}',
              "--trials", "2", "--method", "grid", "--json", "--quiet", env=data_env("ml-100k"))
    out = json.loads(ok(res))
    assert set(out) >= {"best_params", "best_score", "trials"}
    assert out["best_params"]["iterations"] in (2, 3)
    assert len(out["trials"]) == 2


def test_tune_out_is_checked_before_the_search(monkeypatch, work, tmp_path):
    _no_fit(monkeypatch)
    assert_clean_error(run("tune", "--ratings", work / "small.csv", "--model", "baseline", "--space",
                           '{"iterations": [2]}', "--out", tmp_path), "--out", "is a directory")


@pytest.mark.parametrize("space, fragment", [("[1, 2]", "JSON object"), ('"factors"', "JSON object"),
                                              ("{}", "non-empty"), ('{"factors": [2,', "not valid JSON")])
def test_tune_space_must_be_a_json_object(monkeypatch, work, space, fragment):
    _no_fit(monkeypatch)
    assert_clean_error(run("tune", "--ratings", work / "small.csv", "--model", "baseline", "--space", space), "--space",
                       fragment)


def test_tune_space_ranges_in_json(work):
    out = json.loads(ok(run("tune", "--ratings", work / "small.csv", "--model", "baseline", "--space",
                            '{"user_regularization": ["uniform", 5, 6], "item_regularization": ["log", 1, 100]}',
                            "--trials", "2", "--json", "-q")))
    assert all(5 <= t["user_regularization"] <= 6 and 1 <= t["item_regularization"] <= 100 for t in out["trials"])


def test_tune_shows_progress_per_trial(work):
    res = run("tune", "--ratings", work / "small.csv", "--model", "baseline", "--space", '{"iterations": [2, 3, 4]}',
              "--method", "grid")
    ok(res)
    assert "3/3" in res.stderr and "trial 2" in res.stderr


@pytest.mark.parametrize("space,extra,fragment", [('{"factors": [-1, 5]}', (), "space['factors']"),
                                                 ('{"factors": ["uniform", 1, 2.5]}', (), "takes integers"),
                                                 ('{"factors": [5]}', ("--method", "foo"), "method"),
                                                 ('{"factors": [5]}', ("--trials", "0"), "trials")])
def test_tune_checks_the_search_before_reading_data(tmp_path, space, extra, fragment):
    assert_clean_error(run("tune", "--ratings", tmp_path / "missing.csv", "--space", space, *extra), fragment)


def test_a_parameter_named_twice_is_refused():
    from mfrec.cli._common import parse_params
    from mfrec.cli.tune import parse_space

    with pytest.raises(ValueError, match="'factors' appears twice"):
        parse_space('{"factors": [1], "factors": [2]}')
    with pytest.raises(ValueError, match="--param epochs given twice"):
        parse_params(["epochs=2", "epochs=3"])


def test_a_space_nested_too_deeply_names_space(tmp_path):
    """A deeply nested --space gave Python's recursion message without naming the option."""
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    assert_clean_error(run("tune", "--ratings", tmp_path / "none.csv", "--model", "biased-mf", "--space", deep,
                           "--trials", "1"), "--space is nested too deeply")
