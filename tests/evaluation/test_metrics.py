"""Metrics on hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.evaluation.metrics import (
    arp_at_k,
    coverage_at_k,
    hit_rate_at_k,
    item_popularity,
    mae,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty_at_k,
    parse_metric,
    per_user_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    rmse,
)

LOG3 = math.log2(3)  # 1.58496...


def recs_frame(lists: dict) -> pd.DataFrame:
    """{user: [items best first]} -> user, item, rank."""
    rows = [(u, i, r + 1) for u, items in lists.items() for r, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user", "item", "rank"])


# Two users with relevant items, one without, one with no list:
#   "a": list 10 11 12 13 14; test 10->5, 11->2, 12->4, 19->4.5  => relevant {10, 12, 19}, R=3
#        hits at ranks 1 and 3 (11 is rated but below the threshold, 19 is never recommended)
#   "b": list 20 21 22 23 24; test 21->4, 20->3                   => relevant {21}, R=1, hit at rank 2
#   "c": list 10 20 30;       test 10->1                          => no relevant item: left out
RECS = recs_frame({"a": [10, 11, 12, 13, 14], "b": [20, 21, 22, 23, 24], "c": [10, 20, 30], "zz": [19, 21]})
TEST = pd.DataFrame({
    "user": ["a", "a", "a", "a", "b", "b", "c"],
    "item": [10, 11, 12, 19, 21, 20, 10],
    "rating": [5.0, 2.0, 4.0, 4.5, 4.0, 3.0, 1.0],
})
# "zz" is not a test user: its list (which would hit nothing anyway) is ignored everywhere.

# ideal DCG of 3 relevant items: 1 + 1/log2(3) + 1/log2(4) = 2.13093
IDCG3 = 1 + 1 / LOG3 + 0.5
NDCG_A = 1.5 / IDCG3  # DCG = 1/log2(2) + 1/log2(4) = 1.5  -> 0.70392
NDCG_B = 1 / LOG3  # DCG = 1/log2(3), IDCG = 1             -> 0.63093


def test_rmse_mae_by_hand():
    pred, true = [3.0, 4.0, 5.0, 1.0], [4.0, 4.0, 3.0, 2.0]
    # errors -1, 0, 2, -1: squares 1, 0, 4, 1 -> mean 1.5; absolute 1, 0, 2, 1 -> mean 1.0
    assert rmse(pred, true) == pytest.approx(math.sqrt(1.5))
    assert mae(pred, true) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        rmse([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])


def test_accuracy_at_3_by_hand():
    m = ranking_metrics(RECS, TEST, ["precision@3", "recall@3", "ndcg@3", "map@3", "hit_rate@3", "mrr@3"],
                        per_user=True)
    # a@3: hits at ranks 1, 3 -> precision 2/3, recall 2/3, AP = (1/1 + 2/3) / min(3, 3) = 5/9, RR = 1
    # b@3: hit at rank 2      -> precision 1/3, recall 1/1, AP = (1/2) / min(3, 1) = 1/2,   RR = 1/2
    # means over a and b only (c has no relevant item)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # 0.5
    assert m["recall@3"] == pytest.approx((2 / 3 + 1) / 2)  # 5/6
    assert m["ndcg@3"] == pytest.approx((NDCG_A + NDCG_B) / 2)  # 0.66742
    assert m["map@3"] == pytest.approx((5 / 9 + 1 / 2) / 2)  # 19/36
    assert m["hit_rate@3"] == pytest.approx(1.0)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2) / 2)  # 0.75
    assert m["n_users_relevant"] == 2

    pu = m["per_user"]
    assert list(pu.index) == ["a", "b", "c"]  # the test users; "zz" has no test rating
    assert pu.loc["a", "n_relevant"] == 3 and pu.loc["b", "n_relevant"] == 1 and pu.loc["c", "n_relevant"] == 0
    assert pu.loc["a", "n_test"] == 4
    assert pu.loc["a", "ndcg@3"] == pytest.approx(0.703918, abs=1e-6)
    assert pu.loc["b", "ndcg@3"] == pytest.approx(0.630930, abs=1e-6)
    assert pu.loc["a", "map@3"] == pytest.approx(5 / 9)
    # the user without a relevant item has no accuracy value at all
    assert pu.loc["c"].drop(["n_test", "n_relevant"]).isna().all()


def test_accuracy_at_5_and_the_one_metric_functions():
    # a@5: still hits at 1 and 3 (13, 14 are not relevant): precision 2/5, recall 2/3,
    #      NDCG = 1.5 / IDCG(min(5, 3) = 3 items) = 0.70392, AP = (1 + 2/3) / min(5, 3) = 5/9
    # b@5: precision 1/5, recall 1, NDCG 0.63093, AP = (1/2) / 1
    assert precision_at_k(RECS, TEST, k=5) == pytest.approx((2 / 5 + 1 / 5) / 2)  # 0.3
    assert recall_at_k(RECS, TEST, k=5) == pytest.approx((2 / 3 + 1) / 2)
    assert ndcg_at_k(RECS, TEST, k=5) == pytest.approx((NDCG_A + NDCG_B) / 2)
    assert map_at_k(RECS, TEST, k=5) == pytest.approx((5 / 9 + 1 / 2) / 2)
    assert hit_rate_at_k(RECS, TEST, k=5) == 1.0
    assert mrr_at_k(RECS, TEST, k=5) == pytest.approx(0.75)
    # k = 1: a's first item is relevant, b's is not
    assert precision_at_k(RECS, TEST, k=1) == pytest.approx(0.5)
    assert hit_rate_at_k(RECS, TEST, k=1) == pytest.approx(0.5)
    assert mrr_at_k(RECS, TEST, k=1) == pytest.approx(0.5)  # b: no relevant item within k -> 0
    # recall@1 of a: 1/3; of b: 0 -> 1/6; ndcg@1 of a: 1/1 (ideal list has min(1, 3) = 1 item)
    assert recall_at_k(RECS, TEST, k=1) == pytest.approx(1 / 6)
    assert ndcg_at_k(RECS, TEST, k=1) == pytest.approx(0.5)
    # map@1: a = (1/1) / min(1, 3) = 1, b = 0 -> 0.5
    assert map_at_k(RECS, TEST, k=1) == pytest.approx(0.5)


def test_threshold_decides_relevance():
    # threshold 2: a's 11 (rated 2) becomes relevant too: a hits at 1, 2, 3 with R = 4 (10, 11, 12, 19);
    # b: 20 (3) and 21 (4) relevant, hits at ranks 1, 2 with R = 2; c: 10 (1) still irrelevant
    m = ranking_metrics(RECS, TEST, ["precision@3", "recall@3"], relevance_threshold=2.0)
    assert m["precision@3"] == pytest.approx((3 / 3 + 2 / 3) / 2)
    assert m["recall@3"] == pytest.approx((3 / 4 + 2 / 2) / 2)


def test_user_without_a_list_counts_as_empty_and_order_without_rank():
    # "d" has a relevant test item but got no recommendations: zero hits, and it counts
    test = pd.concat([TEST, pd.DataFrame({"user": ["d"], "item": [40], "rating": [5.0]})], ignore_index=True)
    m = ranking_metrics(RECS, test, ["precision@3", "hit_rate@3", "recall@3"])
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["hit_rate@3"] == pytest.approx(2 / 3)
    assert m["recall@3"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # without a rank column the row order within a user is the rank
    shuffled = RECS.sample(frac=1.0, random_state=0).sort_values("rank", kind="stable").drop(columns="rank")
    assert ranking_metrics(shuffled, TEST, ["ndcg@5"])["ndcg@5"] == pytest.approx((NDCG_A + NDCG_B) / 2)


def test_short_lists_divide_precision_by_k():
    recs = recs_frame({"a": [12]})  # one item, relevant
    test = pd.DataFrame({"user": ["a", "a"], "item": [12, 13], "rating": [5.0, 5.0]})
    m = ranking_metrics(recs, test, ["precision@4", "recall@4", "ndcg@4", "map@4"])
    assert m["precision@4"] == pytest.approx(1 / 4)
    assert m["recall@4"] == pytest.approx(1 / 2)
    assert m["ndcg@4"] == pytest.approx(1 / (1 + 1 / LOG3))  # IDCG over min(4, 2) = 2 items
    assert m["map@4"] == pytest.approx(1 / 2)  # (1/1) / min(4, 2)


def test_ranking_metrics_take_ratings_objects():
    test = Ratings.from_dataframe(TEST)
    assert ndcg_at_k(RECS, test, k=3) == pytest.approx((NDCG_A + NDCG_B) / 2)


# Popularity in training: 4 training users w, x, y, z.
#   item 10 rated by w x y z -> pop 4, share 1   -> self-information 0 bits
#   item 11 rated by w x     -> pop 2, share 1/2 -> 1 bit
#   item 12 rated by w       -> pop 1, share 1/4 -> 2 bits
TRAIN = pd.DataFrame({
    "user": ["w", "x", "y", "z", "w", "x", "w"],
    "item": [10, 10, 10, 10, 11, 11, 12],
    "rating": [4.0, 3.0, 5.0, 2.0, 4.0, 4.0, 1.0],
})
POP_RECS = recs_frame({"a": [10, 11, 12], "b": [11, 12]})
POP_TEST = pd.DataFrame({"user": ["a", "b"], "item": [10, 99], "rating": [5.0, 5.0]})


def test_novelty_and_arp_by_hand():
    pop, n_users = item_popularity(TRAIN)
    assert n_users == 4 and pop.loc[10] == 4 and pop.loc[11] == 2 and pop.loc[12] == 1
    # novelty: a = (0 + 1 + 2) / 3 = 1, b = (1 + 2) / 2 = 1.5 (a short list averages its own items) -> 1.25
    assert novelty_at_k(POP_RECS, TRAIN, k=3) == pytest.approx(1.25)
    # arp: a = (4 + 2 + 1) / 3 = 7/3, b = (2 + 1) / 2 = 3/2 -> 23/12
    assert arp_at_k(POP_RECS, TRAIN, k=3) == pytest.approx(23 / 12)
    # k = 1: a -> item 10 (0 bits, pop 4), b -> item 11 (1 bit, pop 2)
    assert novelty_at_k(POP_RECS, TRAIN, k=1) == pytest.approx(0.5)
    assert arp_at_k(POP_RECS, TRAIN, k=1) == pytest.approx(3.0)
    m = ranking_metrics(POP_RECS, POP_TEST, ["novelty@3", "arp@3"], train=TRAIN, per_user=True)
    assert m["per_user"].loc["a", "novelty@3"] == pytest.approx(1.0)
    assert m["per_user"].loc["b", "arp@3"] == pytest.approx(1.5)
    # an item nobody rated in training counts as rated by one user: log2(4 / 1) = 2 bits, pop 0
    fresh = recs_frame({"a": [77]})
    assert novelty_at_k(fresh, TRAIN, k=1) == pytest.approx(2.0)
    assert arp_at_k(fresh, TRAIN, k=1) == pytest.approx(0.0)


def test_coverage_by_hand():
    # top 3 of the test users a, b, c: {10, 11, 12} | {20, 21, 22} | {10, 20, 30} = 7 distinct items
    assert coverage_at_k(RECS, catalog_size=20, k=3, test=TEST) == pytest.approx(7 / 20)
    # top 5 adds 13, 14, 23, 24 -> 11 distinct
    assert coverage_at_k(RECS, catalog_size=20, k=5, test=TEST) == pytest.approx(11 / 20)
    # without test= every list counts ("zz" adds 19): 12 distinct in the top 5
    assert coverage_at_k(RECS, catalog_size=20, k=5) == pytest.approx(12 / 20)
    # default catalogue: the training items (10, 11, 12) plus recommended items outside them (none here)
    m = ranking_metrics(POP_RECS, POP_TEST, ["coverage@3"], train=TRAIN)
    assert m["coverage@3"] == pytest.approx(3 / 3)


def test_per_user_metrics_frame():
    pu = per_user_metrics(RECS, TEST, ["precision@3", "coverage@3", "mrr@5"])
    assert list(pu.columns) == ["n_test", "n_relevant", "precision@3", "mrr@5"]  # coverage has no per-user value
    assert pu.loc["b", "mrr@5"] == pytest.approx(0.5)
    assert np.isnan(pu.loc["c", "precision@3"])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="cut-off"):
        parse_metric("ndcg")
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric("auc@10")
    assert parse_metric("NDCG@10") == ("ndcg", 10)
    assert parse_metric("hit_rate@5") == ("hit_rate", 5)
    for odd in ("ndcg@\u0663", "ndcg@\uff11\uff10", "ndcg@1\u0660"):  # Arabic-Indic, full-width digits
        with pytest.raises(ValueError, match="unknown metric"):
            parse_metric(odd)
    assert parse_metric("rmse") == ("rmse", None)
    dup = pd.DataFrame({"user": ["a", "a"], "item": [10, 10], "rank": [1, 2]})
    with pytest.raises(ValueError, match="twice"):
        ranking_metrics(dup, TEST, ["precision@2"])
    same_rank = pd.DataFrame({"user": ["a", "a"], "item": [10, 11], "rank": [1, 1]})
    with pytest.raises(ValueError, match="same rank"):
        ranking_metrics(same_rank, TEST, ["precision@2"])
    with pytest.raises(ValueError, match="train"):
        ranking_metrics(RECS, TEST, ["novelty@3"])
    with pytest.raises(ValueError, match="test"):
        ranking_metrics(RECS, None, ["precision@3"])


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("pred,true,match", [
    ([np.nan, 1.0], [1.0, 2.0], r"pred\[0\] is nan"), ([1.0, 2.0], [1.0, np.inf], r"true\[1\] is inf"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "must be 1-D"), (["a"], [1.0], "pred must be numbers"),
])
def test_rmse_and_mae_refuse_values_that_would_make_them_meaningless(pred, true, match):
    """NaN gave NaN, inf gave inf and 2-D inputs were flattened, silently."""
    from mfrec.evaluation.metrics import mae, rmse

    for f in (rmse, mae):
        with pytest.raises(ValueError, match=match):
            f(pred, true)


def test_rmse_refuses_series_whose_indexes_would_pair_wrong_rows():
    """Two Series were compared by position whatever their labels: a shuffled one gave a wrong RMSE."""
    from mfrec.evaluation.metrics import mae, rmse

    true = pd.Series([1.0, 5.0, 3.0], index=[10, 11, 12])
    pred = true.sample(frac=1.0, random_state=1)
    assert not pred.index.equals(true.index)
    for f in (rmse, mae):
        with pytest.raises(ValueError, match="different indexes"):
            f(pred, true)
        assert f(pred, true.loc[pred.index]) == 0.0  # aligned: exact
        assert f(pred.to_numpy(), pred) == 0.0  # an array beside a Series: by position, as documented


def test_ranking_metrics_refuse_ids_that_differ_only_in_type():
    """Recommendations with text user ids scored 0 against a test with integer ids, silently."""
    recs = pd.DataFrame({"user": ["1", "1", "2"], "item": [5, 6, 5], "rank": [1, 2, 1]})
    test = pd.DataFrame({"user": [1, 2], "item": [5, 5], "rating": [5.0, 4.0]})
    with pytest.raises(ValueError, match="user ids are string .* integer"):
        ranking_metrics(recs, test, ["precision@2"])
    recs["user"] = recs["user"].astype(int)
    assert ranking_metrics(recs, test, ["recall@2"])["recall@2"] == 1.0
    with pytest.raises(ValueError, match="item ids are string"):
        ranking_metrics(recs.assign(item=recs["item"].astype(str)), test, ["precision@2"])
    misses = recs.assign(item=[7, 8, 9])  # same kinds, no hit: a legitimate 0
    assert ranking_metrics(misses, test, ["precision@2"])["precision@2"] == 0.0


# ----------------------------------------------------------------------------- one RMSE/MAE definition
def test_rating_error_by_group_is_rmse_and_mae_per_group():
    from mfrec.evaluation.metrics import mae, rating_error_by_group, rmse

    pred, true = [1.0, 2.0, 4.0, 3.0], [1.0, 4.0, 1.0, 3.0]
    groups = np.array([0, 0, 2, 2])  # group 1 has no ratings
    got = rating_error_by_group("rmse", pred, true, groups)
    assert got[0] == pytest.approx(math.sqrt(2.0)) and np.isnan(got[1]) and got[2] == pytest.approx(math.sqrt(4.5))
    np.testing.assert_allclose(rating_error_by_group("mae", pred, true, groups, n_groups=4), [1.0, np.nan, 1.5, np.nan])
    # one group is the plain metric
    one = np.zeros(4, dtype=np.int64)
    assert rating_error_by_group("RMSE", pred, true, one)[0] == rmse(pred, true)
    assert rating_error_by_group("mae", pred, true, one)[0] == mae(pred, true)


@pytest.mark.parametrize("metric,groups,n,match", [
    ("ndcg@10", [0, 0], None, "ranking metric"), ("rmse", [0.0, 1.0], None, "groups must be integers"),
    ("rmse", [0], None, "one per rating"), ("rmse", [0, -1], None, ">= 0"), ("rmse", [0, 3], 2, "outside n_groups"),
])
def test_rating_error_by_group_refuses_bad_groups(metric, groups, n, match):
    from mfrec.evaluation.metrics import rating_error_by_group

    with pytest.raises(ValueError, match=match):
        rating_error_by_group(metric, [1.0, 2.0], [1.0, 1.0], np.asarray(groups), n)


def test_ranking_metric_arguments_are_checked_not_coerced():
    recs = pd.DataFrame({"user": [1, 1], "item": [10, 20], "rank": [1, 2]})
    test = pd.DataFrame({"user": [1], "item": [10], "rating": [5.0]})
    for k in (1.5, True, 0, -1):
        with pytest.raises(ValueError, match="k must be an integer from 1 to"):
            precision_at_k(recs, test, k=k)
    for t in (float("nan"), "4", True):
        with pytest.raises(ValueError, match="relevance_threshold must be a finite number"):
            ndcg_at_k(recs, test, k=2, relevance_threshold=t)
    from mfrec.errors import DataError

    with pytest.raises(DataError, match="test rating at row 0 is nan"):
        ndcg_at_k(recs, test.assign(rating=np.nan), k=2)
    for size in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="catalog_size must be an integer >= 1"):
            coverage_at_k(recs, size, k=2)
    with pytest.raises(ValueError, match="smaller than the 2 distinct items"):
        coverage_at_k(recs, 1, k=2)


def test_a_huge_k_allocates_no_more_than_the_longest_list():
    """k = 2**31 - 1 used to allocate users x k (16 GiB here); the values are the definitions'."""
    recs = pd.DataFrame({"user": [1, 1, 2], "item": [10, 20, 10], "rank": [1, 2, 1]})
    test = pd.DataFrame({"user": [1, 1, 2], "item": [10, 30, 40], "rating": [5.0, 5.0, 5.0]})
    k = 2**31 - 1
    assert precision_at_k(recs, test, k=k) == pytest.approx(0.5 / k)
    assert recall_at_k(recs, test, k=k) == pytest.approx(0.25)  # user 1: 1 of 2, user 2: 0 of 1
    ideal1 = 1 + 1 / LOG3
    assert ndcg_at_k(recs, test, k=k) == pytest.approx((1 / ideal1 + 0) / 2)
    assert ndcg_at_k(recs, test, k=k) == pytest.approx(ndcg_at_k(recs, test, k=5))
    assert map_at_k(recs, test, k=k) == pytest.approx(map_at_k(recs, test, k=5))


def test_cut_offs_beyond_any_list_and_absurd_ranks_are_errors_not_crashes():
    recs = pd.DataFrame({"user": [1, 1], "item": [10, 20], "rank": [1, 2]})
    test = pd.DataFrame({"user": [1], "item": [10], "rating": [5.0]})
    with pytest.raises(ValueError, match="k must be an integer from 1 to"):
        ndcg_at_k(recs, test, k=2**70)
    with pytest.raises(ValueError, match="cut-off k must be from 1 to"):
        ranking_metrics(recs, test, ["ndcg@" + "9" * 40])
    with pytest.raises(ValueError, match="far beyond the lists' lengths"):
        ranking_metrics(recs.assign(rank=[1, 10**11]), test, ["ndcg@1000000000"])
    for bad in ([True, False], ["1", "2"]):
        with pytest.raises(ValueError, match="must be numbers"):
            rmse(bad, [1, 0])


def test_metric_names_are_reported_as_spelled():
    """Results are keyed by the caller's spelling (code looks them up by it)."""
    from mfrec.evaluation.scoring import check_metrics

    assert check_metrics(["NDCG@10", "rmse", "NDCG@10"])[0] == ["NDCG@10", "rmse"]
