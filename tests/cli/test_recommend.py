"""mfrec recommend: known users, new users (ids and titles), every user; predicted rating vs score."""

from __future__ import annotations

import json

import pytest

import mfrec
from tests.cli.helpers import run, ok, assert_clean_error


def test_recommend_known_user_json(work):
    recs = json.loads(ok(run("recommend", work / "m.mfrec", "--user", "3", "--json", "-n", "5")))
    assert len(recs) == 5
    m = mfrec.load_model(work / "m.mfrec")
    expected = m.recommend(3, n=5)
    assert [r["item"] for r in recs] == list(expected["item"])
    assert all(isinstance(r["item"], int) for r in recs)
    assert [r["score"] for r in recs] == pytest.approx(list(expected["score"]))


def test_recommend_new_user_by_item_ids_json(work):
    recs = json.loads(ok(run("recommend", work / "m.mfrec", "--rate", "1=5", "--rate", "2=4", "--json")))
    assert len(recs) == 10
    assert not {1, 2} & {r["item"] for r in recs}


def test_recommend_new_user_by_item_ids_on_a_titled_model(titled):
    recs = json.loads(ok(run("recommend", titled, "--rate", "1=5", "--rate", "2=4", "--json", "--explain", "1")))
    assert len(recs) == 10
    assert not {1, 2} & {r["item"] for r in recs}
    assert all(set(r["because"]) <= {"Toy Story (1995)", "Jumanji (1995)"} for r in recs)


def test_recommend_by_title(titled):
    recs = json.loads(ok(run("recommend", titled, "--rate-title", "Toy Story=5", "--json", "-n", "8")))
    assert len(recs) == 8
    assert {"item", "score", "title", "genres"} <= set(recs[0])
    assert 1 not in {r["item"] for r in recs}  # Toy Story itself (id 1) is rated, so excluded
    assert all(isinstance(r["genres"], list) for r in recs)


def test_recommend_table_output(titled):
    out = ok(run("recommend", titled, "--rate-title", "Toy Story=5", "-n", "3"))
    assert "recommendations" in out and "title" in out


def test_recommend_table_shows_integer_item_ids(work):
    """An all-numeric row (int item id + float score) must not print the id as '21.000'."""
    m = mfrec.load_model(work / "m.mfrec")
    top = int(m.recommend(3, n=1)["item"][0])
    out = ok(run("recommend", work / "m.mfrec", "--user", "3", "-n", "1"))
    assert f"{top}.000" not in out
    assert f" {top} " in out


def test_string_ids_round_trip_through_the_cli(tmp_path):
    (tmp_path / "s.csv").write_text("user,item,rating\n" + "".join(
        f"u{u},film{i},{1 + (u * i) % 5}\n" for u in range(12) for i in range(10) if (u + i) % 3))
    ok(run("train", "--ratings", tmp_path / "s.csv", "--model", "als", "--iterations", "2", "--factors", "2",
           "--out", tmp_path / "s.mfrec", "-q"))
    recs = json.loads(ok(run("recommend", tmp_path / "s.mfrec", "--user", "u1", "--json", "-n", "3")))
    assert all(r["item"].startswith("film") for r in recs)
    sims = json.loads(ok(run("similar", tmp_path / "s.mfrec", "--item", "film2", "--json", "-n", "3")))
    assert "film2" not in {s["item"] for s in sims}


def test_error_unknown_user(work):
    assert_clean_error(run("recommend", work / "m.mfrec", "--user", "99999"), "99999")


def test_recommend_all_users_writes_every_users_top_n(work, tmp_path):
    import pandas as pd

    out = tmp_path / "recs.csv"
    res = run("recommend", work / "m.mfrec", "--all-users", "-n", "3", "--out", out, "--json")
    summary = json.loads(ok(res))
    recs = pd.read_csv(out)
    model = mfrec.load_model(work / "m.mfrec")
    assert summary == {"out": str(out), "rows": len(recs), "users": len(model.user_map_)}
    assert set(recs.columns) >= {"user", "item", "score", "rank"}
    assert recs.groupby("user")["rank"].max().eq(3).all()
    first = recs[recs["user"] == recs["user"].iloc[0]]
    want = model.recommend(first["user"].iloc[0], n=3)
    assert first["item"].tolist() == want["item"].tolist()


def test_recommend_all_users_needs_out(work):
    assert_clean_error(run("recommend", work / "m.mfrec", "--all-users"), "--out")


def test_recommend_all_users_out_is_checked_first(work, tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "f.csv").write_text("x")
    assert_clean_error(run("recommend", work / "m.mfrec", "--all-users", "--out", tmp_path / "adir"), "is a directory")
    assert_clean_error(run("recommend", work / "m.mfrec", "--all-users", "--out", tmp_path / "f.csv" / "r.csv"),
                       "f.csv is a file")
    # checked before the (missing) model is even opened
    assert_clean_error(run("recommend", tmp_path / "nope.mfrec", "--all-users", "--out", tmp_path / "adir"), "--out")
    out = tmp_path / "missing" / "folder" / "recs.parquet"
    summary = json.loads(ok(run("recommend", work / "m.mfrec", "--all-users", "-n", "2", "--out", out, "--json")))
    import pandas as pd

    assert len(pd.read_parquet(out)) == summary["rows"] == 2 * summary["users"]
    assert_clean_error(run("recommend", work / "m.mfrec", "--user", "1", "--out", tmp_path / "x.csv"), "--all-users")


def test_rate_title_prefers_the_exact_title_and_says_which_film(titled):
    res = run("recommend", titled, "--rate-title", "Lion King=5", "--json", "-n", "3")
    recs = json.loads(ok(res))
    assert "Lion King, The (1994)" in res.stderr and "1½" not in res.stderr
    assert 364 not in {r["item"] for r in recs}  # The Lion King (1994) is the rated film
    model = mfrec.load_model(titled)
    assert recs == json.loads(json.dumps(model.recommend_new({364: 5.0}, n=3).to_dict(orient="records")))


def test_rate_title_ambiguous_lists_candidates(titled):
    line = assert_clean_error(run("recommend", titled, "--rate-title", "Star Wars=5"), "Star Wars", "ambiguous",
                              "Episode IV", "Episode V", "more specific")
    assert "Traceback" not in line
    res = run("recommend", titled, "--rate-title", "Star Wars: Episode IV=5", "--json")
    ok(res)
    assert "A New Hope (1977)" in res.stderr
    assert_clean_error(run("similar", titled, "--title", "Star Wars"), "ambiguous")
    assert_clean_error(run("recommend", titled, "--rate-title", "no such film at all=5"), "no title matches")
    assert_clean_error(run("recommend", titled, "--rate-title", "Toy Story=good"), "good", "not a number")


def test_recommend_rating_model_shows_predicted_ratings_inside_the_scale(rated):
    model = mfrec.load_model(rated)
    lo, hi = model.rating_scale_
    recs = json.loads(ok(run("recommend", rated, "--user", "1", "-n", "10", "--json")))
    scores = [r["score"] for r in recs]
    assert max(scores) > hi  # the case the clip is for
    assert all(lo <= r["predicted_rating"] <= hi for r in recs)
    assert [r["predicted_rating"] for r in recs] == pytest.approx([min(max(s, lo), hi) for s in scores])
    table = ok(run("recommend", rated, "--user", "1", "-n", "10"))
    assert "predicted rating" in table and "score" not in table
    assert "5.2" not in table and "5.1" not in table and "5.000" in table
    # with item_bias_weight the ranking score is not a rating; the shown rating still is one
    recs = json.loads(ok(run("recommend", rated, "--user", "1", "-n", "5", "--item-bias-weight", "0.5", "--json")))
    want = model.predict([1] * len(recs), [r["item"] for r in recs])
    assert [r["predicted_rating"] for r in recs] == pytest.approx(list(want), abs=1e-4)


def test_recommend_ranking_model_shows_a_score(titled):
    table = ok(run("recommend", titled, "--rate-title", "Toy Story=5", "-n", "3"))
    assert "score" in table and "predicted rating" not in table
    recs = json.loads(ok(run("recommend", titled, "--user", "1", "-n", "3", "--json")))
    assert "predicted_rating" not in recs[0]


def test_rating_one_item_twice_is_an_error_not_the_last_value(work):
    """`--rate 2=5 --rate 2=4` kept 4 silently."""
    assert_clean_error(run("recommend", work / "m.mfrec", "--rate", "2=5", "--rate", "2=4"), "rated twice")


@pytest.mark.parametrize("where", [["--user", "1"], ["--all-users", "--out", "r.csv"]])
def test_explain_without_a_fold_in_is_refused_not_ignored(work, tmp_path, where):
    """--explain was checked only with --rate: with --user (even -1) or --all-users it was ignored."""
    args = [a if a != "r.csv" else tmp_path / "r.csv" for a in where]
    for value in ("2", "-1"):
        assert_clean_error(run("recommend", work / "m.mfrec", *args, "--explain", value), "explain")
    assert not (tmp_path / "r.csv").exists()


def test_a_rate_with_an_empty_item_id_says_so(work):
    """`--rate =5` was reported as the unknown item ''."""
    for pair in ("=5", " =5"):
        assert_clean_error(run("recommend", work / "m.mfrec", "--rate", pair), "the item id is empty")


def test_a_rate_item_with_surrounding_spaces_is_the_item(work):
    """`--rate ' 1=5'` reported an unknown item ' 1' where a CSV id ' 1' reads as 1."""
    ok(run("recommend", work / "m.mfrec", "--rate", " 1=5", "--rate", "2 =4", "-n", "2", "--json"))
