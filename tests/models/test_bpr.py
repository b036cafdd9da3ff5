"""BPR: the model contract, kernel, fit, fold-in, explanations, save/load, evaluate (small data, fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec import BPR
from mfrec.kernels.bpr import bpr_epoch
from mfrec.testing import ModelContract


class TestBPR(ModelContract):
    model = BPR
    small = {"factors": 3, "iterations": 3}
    threads_reproducible = False  # Hogwild-style parallel SGD: same quality, not the same bits


def _blocks(n_users: int = 40, n_items: int = 30, seed: int = 0) -> mfrec.Ratings:
    """Two taste groups: users of group g chose most items of block g and none of the other."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = u % 2
        items = np.arange(g * n_items // 2, (g + 1) * n_items // 2)
        keep = items[rng.random(len(items)) < 0.7]
        rows += [(u, int(i), 5.0) for i in keep]
    return mfrec.Ratings.from_dataframe(pd.DataFrame(rows, columns=["user", "item", "rating"]))


def test_learns_the_taste_groups_and_ranks_them_first():
    r = _blocks()
    m = BPR(factors=4, iterations=60, learning_rate=0.1, threads=1).fit(r)
    recs = m.recommend_many(n=1)
    group_of_item = (recs["item"].to_numpy() >= 15).astype(int)
    assert (group_of_item == recs["user"].to_numpy() % 2).mean() > 0.95
    assert m.history_["loss"].iloc[-1] < m.history_["loss"].iloc[0]  # mean log loss falls
    assert np.all(m.user_bias_ == 0)


def test_parallel_fit_is_as_good_as_serial():
    r = _blocks(n_users=80)
    auc = []
    for threads in (1, 2):
        m = BPR(factors=4, iterations=40, learning_rate=0.1, threads=threads).fit(r)
        recs = m.recommend_many(n=1)
        auc.append(((recs["item"].to_numpy() >= 15) == (recs["user"].to_numpy() % 2 == 1)).mean())
    assert min(auc) > 0.95


def test_kernel_never_uses_a_positive_as_negative():
    """User 0 chose every item but 3: every sampled negative is item 3, so only it is pushed down."""
    indptr = np.array([0, 3], dtype=np.int64)
    indices = np.array([0, 1, 2], dtype=np.int64)
    rows = np.zeros(3, dtype=np.int64)
    P = np.full((1, 2), 0.1, dtype=np.float32)
    Q = np.full((4, 2), 0.1, dtype=np.float32)
    b = np.zeros(4, dtype=np.float32)
    loss, correct, skipped = bpr_epoch(indptr, indices, rows, P, Q, b, np.float32(0.1), np.float32(0.0),
                                       np.uint64(7), 50, 64)
    assert skipped == 0 and loss > 0
    assert b[3] < 0 and np.all(b[:3] > 0)
    # a user with every item has no negative: the samples are skipped, nothing moves
    b2 = np.zeros(3, dtype=np.float32)
    Q2 = np.full((3, 2), 0.1, dtype=np.float32)
    _, _, skipped = bpr_epoch(indptr, indices, rows, P.copy(), Q2, b2, np.float32(0.1), np.float32(0.0),
                              np.uint64(7), 20, 8)
    assert skipped == 20 and np.all(b2 == 0)


def test_fold_in_matches_the_trained_user_and_explains_exactly():
    r = _blocks()
    m = BPR(factors=4, iterations=60, learning_rate=0.1, threads=1).fit(r)
    user0_items = r.to_dataframe().query("user == 0")["item"].tolist()
    fold = m.fold_in({i: 5.0 for i in user0_items})
    # the folded-in vector ranks like the trained user 0: the unrated items of its block first
    recs = m.recommend_new({i: 5.0 for i in user0_items}, n=3, explain=2)
    assert (recs["item"] < 15).all()
    assert all(len(b) >= 1 and set(b) <= set(user0_items) for b in recs["because"])
    # the per-item shares sum to x (stationarity of the fold-in objective)
    np.testing.assert_allclose(np.asarray(fold.solve).sum(axis=0), fold.factors, rtol=1e-3, atol=1e-5)
    again = m.fold_in({i: 5.0 for i in user0_items})
    np.testing.assert_array_equal(fold.factors, again.factors)  # deterministic
    assert np.all(m.fold_in({}).factors == 0)


def test_add_user_save_load_and_evaluate(tmp_path):
    r = _blocks()
    m = BPR(factors=4, iterations=20, learning_rate=0.1, threads=1).fit(r)
    m.add_user(999, {0: 5.0, 1: 5.0})
    assert len(m.recommend(999, n=3)) == 3
    path = m.save(tmp_path / "bpr.mfrec")
    back = mfrec.load_model(path)
    assert type(back) is BPR
    np.testing.assert_array_equal(back.item_factors_, m.item_factors_)
    pd.testing.assert_frame_equal(back.recommend_many(n=5), m.recommend_many(n=5))
    res = mfrec.evaluate(m, r, ["ndcg@5"], train=r)
    assert np.isnan(res["ndcg@5"]) or 0 <= res["ndcg@5"] <= 1
    with pytest.raises(ValueError, match="preferences"):
        mfrec.evaluate(m, r, ["rmse"])
    assert "bpr" in mfrec.models.MODEL_NAMES


def test_validation_is_refused():
    r = _blocks()
    with pytest.raises(ValueError, match="ranking metrics"):
        BPR(iterations=1).fit(r, validation=r)


def test_untrained_items_rank_like_unknown_items():
    """An item in the id map without a positive is only ever a negative: it keeps zero factors."""
    r = _blocks()
    df = r.to_dataframe()
    part = r.subset(np.flatnonzero(df["item"].to_numpy() != 0))  # item 0 stays in the map, no rating
    m = BPR(factors=4, iterations=5, threads=1).fit(part)
    j = m.item_map_.lookup(np.array([0]))[0]
    assert j >= 0 and np.all(m.item_factors_[j] == 0) and m.item_bias_[j] == 0


def test_a_user_without_information_ranks_by_the_learned_item_biases():
    """The zero user's score is b_i by BPR's formula; it ranked by training counts with scores 0,
    and predict gave an unknown user 0 for every item."""
    r = _blocks()
    m = BPR(factors=4, iterations=5, threads=1).fit(r)
    recs = m.recommend_new({}, n=5)
    top = np.argsort(-m.item_bias_, kind="stable")[:5]
    assert recs["item"].tolist() == m.items_[top].tolist()
    np.testing.assert_allclose(recs["score"], m.item_bias_[top], rtol=1e-6)
    np.testing.assert_allclose(m.predict(["nobody"] * 3, m.items_[:3]), m.item_bias_[:3], rtol=1e-6)
