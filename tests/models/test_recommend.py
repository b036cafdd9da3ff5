"""Recommendation, fold-in, explanations, add_user and item similarity (mfrec.models.recommend).

Small synthetic data checked against numpy computed by hand; one real-data test (the seed
notebook's two guests on ml-latest-small) with the issue's acceptance bounds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
import mfrec.models.recommend as recmod
from mfrec import ALS, Baseline, BiasedMF, FunkMF, ImplicitALS, SVDpp
from mfrec.errors import DataError
from mfrec.kernels.als import als_half_step
from tests.conftest import dataset_dir

N_USERS, N_ITEMS = 60, 40


# ----------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def ratings() -> mfrec.Ratings:
    return mfrec.synthetic(N_USERS, N_ITEMS, 800, factors=3, seed=1)


def _bmf(ratings):
    return BiasedMF(factors=4, epochs=5, seed=0, threads=1).fit(ratings)


@pytest.fixture(scope="module")
def bmf(ratings) -> BiasedMF:
    """A fitted BiasedMF that the tests must not mutate (add_user tests fit their own)."""
    return _bmf(ratings)


def seen(r: mfrec.Ratings, user) -> set:
    df = r.to_dataframe()
    return set(df.loc[df["user"] == user, "item"])


def hand_scores(m, user, item_bias_weight: float = 1.0) -> pd.Series:
    """mu + b_u + w * b_i + x_u . q_i for every item, by hand (float64), indexed by raw item."""
    u = m.user_map_.index_of(user)
    s = (m.global_mean_ + float(m.user_bias_[u]) + item_bias_weight * m.item_bias_.astype(np.float64)
         + m.item_factors_.astype(np.float64) @ m.user_factors_[u].astype(np.float64))
    return pd.Series(s, index=m.item_map_.ids)


def ridge(Q: np.ndarray, t: np.ndarray, lam: float, lam_b: float, use_bias: bool) -> tuple[float, np.ndarray]:
    """argmin_{b, x} |t - b - Q x|^2 + lam |x|^2 + lam_b b^2 (b = 0 without bias), dense numpy."""
    Q = np.asarray(Q, dtype=np.float64)
    X = np.hstack([np.ones((len(Q), 1)), Q]) if use_bias else Q
    D = np.full(X.shape[1], float(lam))
    if use_bias:
        D[0] = lam_b
    w = np.linalg.solve(X.T @ X + np.diag(D), X.T @ t)
    return (float(w[0]), w[1:]) if use_bias else (0.0, w)


RATED = {0: 5.0, 3: 1.0, 7: 4.0, 11: 2.5, 19: 3.5, 30: 4.5}


# ----------------------------------------------------------------------------- 1. recommend
def test_recommend_excludes_training_items_and_returns_all_candidates(bmf, ratings):
    for user in range(10):
        s = seen(ratings, user)
        recs = bmf.recommend(user, n=1000)
        assert list(recs.columns) == ["item", "score"]
        assert not set(recs["item"]) & s
        # n larger than the candidate count: every unseen item once, no padding
        assert len(recs) == N_ITEMS - len(s)
        assert set(recs["item"]) == set(range(N_ITEMS)) - s
        assert recs["item"].is_unique
        assert np.isfinite(recs["score"]).all()


def test_recommend_exclude_seen_false_ranks_every_item(bmf, ratings):
    recs = bmf.recommend(0, n=N_ITEMS, exclude_seen=False)
    assert len(recs) == N_ITEMS
    assert seen(ratings, 0) <= set(recs["item"])


def test_recommend_scores_sorted_and_equal_hand_computation(bmf):
    for user in (0, 5, 17, 42):
        recs = bmf.recommend(user, n=15)
        assert len(recs) == 15
        assert np.all(np.diff(recs["score"].to_numpy()) <= 0)
        expected = hand_scores(bmf, user)
        np.testing.assert_allclose(recs["score"], expected[recs["item"]].to_numpy(), rtol=1e-5, atol=1e-5)
        # the score is the unclipped prediction
        np.testing.assert_allclose(recs["score"], bmf.predict([user] * 15, recs["item"], clip=False),
                                   rtol=1e-5, atol=1e-5)
        # the top-15 is the top-15 of the hand scores among the unseen items
        unseen = expected.drop(index=list(seen_of(bmf, user)))
        assert set(recs["item"]) == set(unseen.sort_values(ascending=False).index[:15])


def seen_of(m, user) -> set:
    u = m.user_map_.index_of(user)
    row = m.seen_[u]
    return set(m.item_map_.to_raw(row.indices))


def test_recommend_items_restricts_candidates(bmf, ratings):
    cand = [1, 2, 3, 5, 8, 13, 21, 34]
    for user in range(6):
        recs = bmf.recommend(user, n=100, items=cand)
        assert set(recs["item"]) == set(cand) - seen(ratings, user)
        assert np.all(np.diff(recs["score"].to_numpy()) <= 0)
    # unknown ids in items= are ignored, not fatal (warned about and reported, as recommend_new does)
    with pytest.warns(UserWarning, match="unknown"):
        recs = bmf.recommend(0, n=100, items=cand + [12345])
    assert set(recs["item"]) == set(cand) - seen(ratings, 0)
    assert recs.attrs["unknown_items"] == [12345]


def test_recommend_filter_removes(bmf, ratings):
    unfiltered = bmf.recommend(3, n=5)
    drop = list(unfiltered["item"][:3])
    recs = bmf.recommend(3, n=1000, filter=drop)
    assert not set(recs["item"]) & set(drop)
    assert set(recs["item"]) == set(range(N_ITEMS)) - seen(ratings, 3) - set(drop)
    # the rest keep their order
    top = bmf.recommend(3, n=5, filter=drop)
    assert list(top["item"][:2]) == list(unfiltered["item"][3:5])


def test_recommend_n_larger_than_restricted_candidates(bmf, ratings):
    s = seen(ratings, 2)
    unseen = sorted(set(range(N_ITEMS)) - s)[:3]
    recs = bmf.recommend(2, n=10, items=unseen)
    assert sorted(recs["item"]) == unseen
    # every candidate already seen: an empty result, not an error
    recs = bmf.recommend(2, n=10, items=sorted(s))
    assert len(recs) == 0
    assert list(recs.columns) == ["item", "score"]


def test_recommend_unknown_user_raises_keyerror_naming_it(bmf):
    with pytest.raises(KeyError, match="12345"):
        bmf.recommend(12345)
    with pytest.raises(KeyError, match="nobody"):
        bmf.recommend("nobody")


def test_recommend_bad_n(bmf):
    with pytest.raises(ValueError):
        bmf.recommend(0, n=0)
    with pytest.raises(ValueError):
        bmf.recommend_many([0, 1], n=-1)


@pytest.mark.parametrize("call", ["recommend_new", "similar_items"])
def test_negative_n_is_rejected_everywhere(bmf, call):
    with pytest.raises(ValueError):
        if call == "recommend_new":
            bmf.recommend_new(RATED, n=-1)
        else:
            bmf.similar_items(0, n=-1)


def test_item_bias_weight_zero_ranks_by_personal_part(bmf):
    changed = 0
    for user in range(12):
        recs = bmf.recommend(user, n=10, item_bias_weight=0.0)
        personal = hand_scores(bmf, user, item_bias_weight=0.0)  # mu + b_u + x.q
        np.testing.assert_allclose(recs["score"], personal[recs["item"]].to_numpy(), rtol=1e-5, atol=1e-5)
        unseen = personal.drop(index=list(seen_of(bmf, user)))
        assert list(recs["item"]) == list(unseen.sort_values(ascending=False, kind="stable").index[:10])
        changed += list(recs["item"]) != list(bmf.recommend(user, n=10)["item"])
    assert changed > 0, "item_bias_weight=0 never changed a ranking"


# ----------------------------------------------------------------------------- 2. recommend_many
def test_recommend_many_equals_recommend_per_user(bmf):
    users = [7, 0, 33, 12, 59, 4, 21]
    many = bmf.recommend_many(users, n=6, block_size=3)
    assert list(many.columns) == ["user", "item", "score", "rank"]
    assert list(pd.unique(many["user"])) == users
    for user in users:
        got = many[many["user"] == user]
        one = bmf.recommend(user, n=6)
        assert list(got["item"]) == list(one["item"])
        np.testing.assert_allclose(got["score"], one["score"], rtol=1e-6, atol=1e-6)
        assert list(got["rank"]) == list(range(1, 7))


def test_recommend_many_all_users(bmf):
    many = bmf.recommend_many(None, n=5, block_size=7)
    assert len(many) == 5 * N_USERS
    assert (many.groupby("user").size() == 5).all()
    assert list(pd.unique(many["user"])) == list(bmf.users_)
    for user in (0, 31, 59):
        assert list(many.loc[many["user"] == user, "item"]) == list(bmf.recommend(user, n=5)["item"])


def test_recommend_many_unknown_user(bmf):
    with pytest.raises(KeyError, match="4242"):
        bmf.recommend_many([0, 4242, 1], n=3)


def test_recommend_many_memory_is_bounded_by_block_size(bmf, monkeypatch):
    shapes = []
    real = recmod.top_n

    def spy(scores, n, parallel=True):
        shapes.append(scores.shape)
        return real(scores, n, parallel)

    monkeypatch.setattr(recmod, "top_n", spy)
    bmf.recommend_many(None, n=4, block_size=3)
    assert len(shapes) == -(-N_USERS // 3)
    assert all(rows <= 3 and cols == N_ITEMS for rows, cols in shapes)

    # the default block size follows BLOCK_ENTRIES: never a users x items matrix
    shapes.clear()
    monkeypatch.setattr(recmod, "BLOCK_ENTRIES", 4 * N_ITEMS)
    df = bmf.recommend_many(None, n=4)
    assert len(df) == 4 * N_USERS
    assert shapes and all(rows <= 4 and rows * cols <= 4 * N_ITEMS for rows, cols in shapes)


# ----------------------------------------------------------------------------- 3. fold-in
def _fit(ctor, ratings):
    return ctor().fit(ratings)


FOLD_MODELS = {
    "BiasedMF": lambda: BiasedMF(factors=4, epochs=4, seed=0, threads=1),
    "FunkMF": lambda: FunkMF(factors=4, epochs=4, seed=0, threads=1),
    "FunkMF-minibatch": lambda: FunkMF(factors=4, epochs=4, batch_size=16, learning_rate=0.005, seed=0, threads=1),
    "ALS": lambda: ALS(factors=4, iterations=3, regularization=2.0, bias_regularization=1.0, seed=0),
    "ALS-nobias": lambda: ALS(factors=4, iterations=3, regularization=2.0, use_bias=False, seed=0),
    "ALS-weighted": lambda: ALS(factors=4, iterations=3, regularization=0.1, bias_regularization=0.05,
                                weighted=True, seed=0),
    "Baseline": lambda: Baseline(iterations=3),
}


def expected_lambdas(m, n: int) -> tuple[float, float]:
    if isinstance(m, Baseline):
        return 0.0, m.user_regularization
    if isinstance(m, ALS):
        lam = m.regularization
        lam_b = lam if m.bias_regularization is None else m.bias_regularization
        s = n if m.weighted else 1
        return lam * s, lam_b * s
    breg = getattr(m, "bias_regularization", None)
    breg = m.regularization if breg is None else breg
    return m.regularization * n, breg * n  # SGD: regularization counted per rating


@pytest.mark.parametrize("name", list(FOLD_MODELS))
def test_fold_in_equals_dense_ridge(name, ratings):
    m = FOLD_MODELS[name]().fit(ratings)
    items = np.array(list(RATED))
    r = np.array(list(RATED.values()))
    lam, lam_b = m._fold_in_lambdas(len(items))
    assert (lam, lam_b) == pytest.approx(expected_lambdas(m, len(items)))
    fold = m.fold_in(RATED)
    j = m.item_map_.lookup(items)
    assert list(fold.item_indices) == list(j)
    t = r - m.global_mean_ - m.item_bias_[j].astype(np.float64)
    b, x = ridge(m.item_factors_[j], t, lam, lam_b, bool(m._has_bias))
    assert fold.bias == pytest.approx(b, abs=1e-5)
    assert fold.factors.shape == (m.item_factors_.shape[1],)
    np.testing.assert_allclose(fold.factors, x, rtol=1e-4, atol=1e-5)
    if not m._has_bias:
        assert fold.bias == 0.0
    if isinstance(m, Baseline):  # the closed form Baseline trains with
        assert fold.bias == pytest.approx(t.sum() / (len(t) + m.user_regularization), abs=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(use_bias=False), dict(weighted=True, regularization=0.2,
                                                                     bias_regularization=0.1),
                                dict(solver="cholesky")], ids=["bias", "nobias", "weighted", "cholesky"])
def test_als_fold_in_equals_training_half_step(kw, ratings):
    """Folding a training user's ratings in = one more exact ALS user step with Q fixed."""
    m = ALS(**{"factors": 4, "iterations": 3, "regularization": 2.0, "bias_regularization": 1.0, "seed": 0,
               **kw}).fit(ratings)
    lam, lam_b = m._lambdas()
    bu = ratings.by_user
    k = m.item_factors_.shape[1]
    df = ratings.to_dataframe()
    for user in (0, 9, 33):
        u = m.user_map_.index_of(user)
        row = bu[u:u + 1]
        X_out = np.zeros((1, k), dtype=m.item_factors_.dtype)
        b_out = np.zeros(1, dtype=m.item_bias_.dtype)
        als_half_step(row.indptr, row.indices, row.data, m.item_factors_, m.item_bias_, m.global_mean_,
                      X_out, b_out, lam, lam_b, bool(m.use_bias), bool(m.weighted), False, 1)
        mine = df[df["user"] == user]
        fold = m.fold_in(dict(zip(mine["item"], mine["rating"])))
        np.testing.assert_allclose(fold.factors, X_out[0], rtol=1e-4, atol=1e-5)
        assert fold.bias == pytest.approx(float(b_out[0]), abs=1e-5)


def test_svdpp_fold_in_is_ridge_with_fixed_implicit_part(ratings):
    m = SVDpp(factors=4, epochs=4, seed=0, threads=1).fit(ratings)
    items = np.array(list(RATED))
    r = np.array(list(RATED.values()))
    j = m.item_map_.lookup(items)
    z = m.implicit_factors_[j].astype(np.float64).sum(axis=0) / np.sqrt(len(j))
    Q = m.item_factors_[j].astype(np.float64)
    lam, lam_b = m._fold_in_lambdas(len(j))
    assert (lam, lam_b) == pytest.approx((m.regularization * len(j), m.bias_regularization * len(j)))
    t = r - m.global_mean_ - m.item_bias_[j] - Q @ z
    b, p = ridge(Q, t, lam, lam_b, True)
    fold = m.fold_in(RATED)
    assert fold.bias == pytest.approx(b, abs=1e-5)
    np.testing.assert_allclose(fold.factors, p + z, rtol=1e-4, atol=1e-5)


def test_svdpp_implicit_part_matches_training(ratings):
    """For a training user the fold-in's fixed implicit part is the one the model predicts with."""
    m = SVDpp(factors=4, epochs=3, seed=0, threads=1).fit(ratings)
    for user in (0, 11):
        u = m.user_map_.index_of(user)
        idx = m.item_map_.lookup(sorted(seen(ratings, user)))
        np.testing.assert_allclose(m.user_factors_[u] - m.explicit_user_factors_[u], m._implicit_part(idx),
                                   rtol=1e-4, atol=1e-5)


def implicit_direct(m: ImplicitALS, rated: dict) -> np.ndarray:
    j = m.item_map_.lookup(np.array(list(rated)))
    v = np.array(list(rated.values()), dtype=np.float64)
    c = 1.0 + m.alpha * (np.ones_like(v) if m.confidence == "binary" else v)
    Y = m.item_factors_.astype(np.float64)
    Yj = Y[j]
    A = Y.T @ Y + m.regularization * np.eye(Y.shape[1]) + (Yj * (c - 1)[:, None]).T @ Yj
    return np.linalg.solve(A, Yj.T @ c)


@pytest.mark.parametrize("confidence", ["binary", "rating"])
def test_implicit_als_woodbury_fold_in_equals_direct_solve(confidence, ratings):
    m = ImplicitALS(factors=5, iterations=3, regularization=0.5, alpha=2.0, confidence=confidence, seed=0).fit(ratings)
    fold = m.fold_in(RATED)
    assert fold.bias == 0.0
    np.testing.assert_allclose(fold.factors, implicit_direct(m, RATED), rtol=1e-4, atol=1e-6)
    # a single rating, and confidences exactly 1 (c - 1 = 0: alpha = 0; a rating of 0 is outside
    # the model's 1-5 scale, refused since issue 13)
    for rated in ({4: 3.0}, {4: 3.0, 6: 1.0, 9: 5.0}):
        np.testing.assert_allclose(m.fold_in(rated).factors, implicit_direct(m, rated), rtol=1e-4, atol=1e-6)
    m.set_params(alpha=0.0)
    rated = {4: 3.0, 6: 1.0, 9: 5.0}
    np.testing.assert_allclose(m.fold_in(rated).factors, implicit_direct(m, rated), rtol=1e-4, atol=1e-6)


def test_implicit_als_gram_cache_is_refreshed_by_refit(ratings):
    m = ImplicitALS(factors=5, iterations=2, regularization=0.5, seed=0).fit(ratings)
    m.fold_in(RATED)  # fills the cache
    m.set_params(seed=1, regularization=3.0).fit(ratings)
    np.testing.assert_allclose(m.fold_in(RATED).factors, implicit_direct(m, RATED), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- 4. recommend_new
def test_recommend_new_excludes_rated(bmf):
    recs = bmf.recommend_new(RATED, n=1000)
    assert not set(recs["item"]) & set(RATED)
    assert len(recs) == N_ITEMS - len(RATED)
    assert np.all(np.diff(recs["score"].to_numpy()) <= 0)
    everything = bmf.recommend_new(RATED, n=1000, exclude_rated=False)
    assert len(everything) == N_ITEMS
    assert set(RATED) <= set(everything["item"])
    assert recs.attrs["unknown_items"] == []


def test_recommend_new_scores_equal_fold_in(bmf):
    fold = bmf.fold_in(RATED)
    recs = bmf.recommend_new(RATED, n=10)
    j = bmf.item_map_.lookup(recs["item"].to_numpy())
    expected = (bmf.global_mean_ + fold.bias + bmf.item_bias_[j].astype(np.float64)
                + bmf.item_factors_[j].astype(np.float64) @ fold.factors.astype(np.float64))
    np.testing.assert_allclose(recs["score"], expected, rtol=1e-5, atol=1e-5)


def test_recommend_new_items_and_filter(bmf):
    cand = [1, 2, 3, 5, 7, 8]  # 3 and 7 are rated
    recs = bmf.recommend_new(RATED, n=100, items=cand, filter=[8])
    assert set(recs["item"]) == {1, 2, 5}


def test_recommend_new_unknown_items_warn_but_are_not_fatal(bmf):
    rated = dict(RATED)
    rated[99999] = 4.0
    rated["no-such-item"] = 2.0
    with pytest.warns(UserWarning, match="unknown"):
        recs = bmf.recommend_new(rated, n=8)
    assert recs.attrs["unknown_items"] == [99999, "no-such-item"]
    plain = bmf.recommend_new(RATED, n=8)
    assert list(recs["item"]) == list(plain["item"])
    np.testing.assert_allclose(recs["score"], plain["score"])


def test_recommend_new_all_unknown_is_a_data_error(bmf):
    with pytest.raises(DataError, match="99999"):
        bmf.recommend_new({99999: 4.0, 88888: 3.0})


@pytest.mark.parametrize("empty", [{}, None, pd.DataFrame({"item": [], "rating": []})], ids=["dict", "None", "frame"])
def test_recommend_new_without_ratings_ranks_by_mean_plus_item_bias(bmf, empty):
    recs = bmf.recommend_new(empty, n=N_ITEMS, explain=2)
    assert len(recs) == N_ITEMS
    assert "because" not in recs.columns
    base = bmf.global_mean_ + bmf.item_bias_.astype(np.float64)
    j = bmf.item_map_.lookup(recs["item"].to_numpy())
    np.testing.assert_allclose(recs["score"], base[j], rtol=1e-6, atol=1e-5)
    assert np.all(np.diff(base[j]) <= 1e-6)
    assert recs.attrs["unknown_items"] == []


def test_recommend_new_accepts_dataframe_and_series(bmf):
    as_dict = bmf.recommend_new(RATED, n=10)
    frame = pd.DataFrame({"item": list(RATED), "rating": list(RATED.values()), "other": "x"})
    as_frame = bmf.recommend_new(frame, n=10)
    as_series = bmf.recommend_new(pd.Series(RATED), n=10)
    for got in (as_frame, as_series):
        assert list(got["item"]) == list(as_dict["item"])
        np.testing.assert_allclose(got["score"], as_dict["score"])
    with pytest.raises(DataError, match="rating"):
        bmf.recommend_new(pd.DataFrame({"movie": [1], "rating": [4.0]}))


@pytest.mark.parametrize("bad", [{0: float("nan")}, {0: 4.0, 3: "abc"}, {0: float("inf")},
                                 pd.DataFrame({"item": [0, 0], "rating": [4.0, 5.0]})],
                         ids=["nan", "text", "inf", "duplicate"])
def test_recommend_new_bad_ratings_are_data_errors(bmf, bad):
    with pytest.raises(DataError):
        bmf.recommend_new(bad)


def test_recommend_new_explain_lists_rated_items(bmf):
    recs = bmf.recommend_new(RATED, n=12, explain=2)
    assert "because" in recs.columns
    for because in recs["because"]:
        assert isinstance(because, list)
        assert len(because) <= 2
        assert set(because) <= set(RATED)


def test_recommend_new_explain_uses_titles_when_attached(ratings):
    m = _bmf(ratings)
    items = pd.DataFrame({"title": [f"Film {i}" for i in range(N_ITEMS)],
                          "genres": [["Drama"] if i % 2 else ["Children"] for i in range(N_ITEMS)]},
                         index=pd.Index(range(N_ITEMS), name="item"))
    m.attach_items(items)
    recs = m.recommend_new(RATED, n=5, explain=3)
    assert list(recs.columns) == ["item", "score", "title", "genres", "because"]
    assert list(recs["title"]) == [f"Film {i}" for i in recs["item"]]
    titles = {f"Film {i}" for i in RATED}
    assert all(set(b) <= titles and len(b) <= 3 for b in recs["because"])


def _contrib(m, rated, n=10):
    fold = m.fold_in(rated)
    recs = m.recommend_new(rated, n=n)
    chosen = m.item_map_.lookup(recs["item"].to_numpy())
    return fold, recs, chosen, m._contributions(fold, chosen)


def test_explain_contributions_sum_to_personal_part(bmf):
    fold, recs, chosen, contrib = _contrib(bmf, RATED)
    personal = recs["score"].to_numpy() - bmf.global_mean_ - fold.bias - bmf.item_bias_[chosen]
    np.testing.assert_allclose(contrib.sum(axis=1), personal, rtol=1e-4, atol=1e-5)


def test_explain_contributions_implicit_als_sum_to_score(ratings):
    m = ImplicitALS(factors=5, iterations=3, regularization=0.5, seed=0).fit(ratings)
    fold, recs, chosen, contrib = _contrib(m, RATED)
    np.testing.assert_allclose(contrib.sum(axis=1), recs["score"], rtol=1e-4, atol=1e-6)
    explained = m.recommend_new(RATED, n=10, explain=2)
    order = np.argsort(-contrib, axis=1)[:, :2]
    for r, because in enumerate(explained["because"]):
        top = [int(m.item_map_.ids[fold.item_indices[j]]) for j in order[r] if contrib[r, j] > 0]
        assert [int(x) for x in because] == top


# ----------------------------------------------------------------------------- 5. add_user
@pytest.mark.parametrize("cls", ["BiasedMF", "SVDpp", "ALS", "ImplicitALS"])
def test_add_user_makes_the_user_known(cls, ratings):
    ctor = {"BiasedMF": lambda: BiasedMF(factors=4, epochs=4, seed=0, threads=1),
            "SVDpp": lambda: SVDpp(factors=4, epochs=4, seed=0, threads=1),
            "ALS": lambda: ALS(factors=4, iterations=3, regularization=2.0, seed=0),
            "ImplicitALS": lambda: ImplicitALS(factors=4, iterations=3, regularization=0.5, seed=0)}[cls]
    m = ctor().fit(ratings)
    before = m.recommend(5, n=8)
    fresh = m.recommend_new(RATED, n=N_ITEMS)
    fold = m.fold_in(RATED)
    m.add_user(777_777, RATED)
    assert 777_777 in m.user_map_
    assert len(m.users_) == N_USERS + 1
    assert m.user_factors_.shape[0] == N_USERS + 1 and m.user_bias_.shape[0] == N_USERS + 1
    recs = m.recommend(777_777, n=N_ITEMS)
    assert not set(recs["item"]) & set(RATED)
    # same list and scores as the fold-in
    assert list(recs["item"]) == list(fresh["item"])
    np.testing.assert_allclose(recs["score"], fresh["score"], rtol=1e-5, atol=1e-5)
    # predict knows the user: equals the fold-in prediction (clipped for rating models)
    items = list(range(N_ITEMS))
    j = m.item_map_.lookup(items)
    expected = (m.global_mean_ + fold.bias + m.item_bias_[j].astype(np.float64)
                + m.item_factors_[j].astype(np.float64) @ fold.factors.astype(np.float64))
    if m.kind == "rating":
        expected = np.clip(expected, *m.rating_scale_)
    got = m.predict([777_777] * N_ITEMS, items)
    assert m.unknown_ == {"users": 0, "items": 0}
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # other users are unchanged; recommend_many sees the new user
    after = m.recommend(5, n=8)
    assert list(after["item"]) == list(before["item"])
    many = m.recommend_many([777_777, 5], n=3)
    assert list(many.loc[many["user"] == 777_777, "item"]) == list(recs["item"][:3])
    if isinstance(m, SVDpp):
        assert m.explicit_user_factors_.shape == m.user_factors_.shape
        np.testing.assert_allclose(m.user_factors_[-1] - m.explicit_user_factors_[-1],
                                   m._implicit_part(m.item_map_.lookup(list(RATED))), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="already"):
        m.add_user(777_777, {1: 3.0})
    with pytest.raises(ValueError, match="already"):
        m.add_user(0, {1: 3.0})


def test_add_user_failure_leaves_the_model_unchanged(ratings):
    m = _bmf(ratings)
    with pytest.raises(DataError):
        m.add_user(1000, {99999: 4.0})
    assert 1000 not in m.user_map_
    assert m.user_factors_.shape[0] == N_USERS and m.seen_.shape[0] == N_USERS


def test_add_user_with_int_id_keeps_int_ids(ratings):
    m = _bmf(ratings)
    m.add_user(1000, RATED)
    assert m.users_.dtype.kind == "i"
    assert not set(m.recommend(1000, n=N_ITEMS)["item"]) & set(RATED)


# ----------------------------------------------------------------------------- 6. similar_items
def test_similar_items_cosine(bmf):
    Q = bmf.item_factors_.astype(np.float64)
    for item in (0, 5, 39):
        sims = bmf.similar_items(item, n=10)
        assert list(sims.columns) == ["item", "similarity"]
        assert len(sims) == 10
        assert item not in set(sims["item"])
        s = sims["similarity"].to_numpy()
        assert np.all((s >= -1 - 1e-6) & (s <= 1 + 1e-6))
        assert np.all(np.diff(s) <= 0)
        j = bmf.item_map_.index_of(item)
        cos = Q @ Q[j] / (np.linalg.norm(Q, axis=1) * np.linalg.norm(Q[j]))
        cos[j] = -np.inf
        np.testing.assert_allclose(s, np.sort(cos)[::-1][:10], rtol=1e-5, atol=1e-6)
        assert set(sims["item"]) == set(np.argsort(-cos)[:10])
    everything = bmf.similar_items(3, n=1000)
    assert len(everything) == N_ITEMS - 1


def test_similar_items_unknown_item(bmf):
    with pytest.raises(KeyError, match="4242"):
        bmf.similar_items(4242)


def test_similar_items_needs_factors(ratings):
    with pytest.raises(ValueError, match="factors"):
        Baseline(iterations=2).fit(ratings).similar_items(0)


# ----------------------------------------------------------------------------- 7. the seed experiment
@pytest.mark.realdata
def test_seed_experiment_two_guests_on_ml_latest_small():
    from mfrec.demo import genre_share, guest_recommendations

    folder = dataset_dir("ml-latest-small")
    ds = mfrec.load_dataset("ml-latest-small", data_dir=folder.parent, download=False, progress=False)
    model = ImplicitALS().fit(ds.ratings)
    recs = guest_recommendations(model.attach_items(ds.items), ds.items, n=20)
    kids, drama = recs["children's films lover"], recs["drama lover"]
    assert len(kids) == 20 and len(drama) == 20
    kids_share = genre_share(kids, ("Children", "Animation"))
    drama_drama = genre_share(drama, ("Drama",))
    kids_drama = genre_share(kids, ("Drama",))
    shared = len(set(kids["item"]) & set(drama["item"]))
    report = f"kids C/A {kids_share:.0%}, drama share {drama_drama:.0%} vs {kids_drama:.0%}, shared {shared}"
    assert kids_share >= 0.5, report
    assert drama_drama - kids_drama >= 0.20, report
    assert shared <= 5, report


# ----------------------------------------------------------------------------- issue 13: refuse what cannot be honoured
@pytest.mark.parametrize("value", [1000.0, 6.0, 0.0, -50.0, 5.0001, 0.9999])
def test_new_ratings_outside_the_model_scale_are_data_errors(bmf, value):
    assert bmf.rating_scale_ == (1.0, 5.0)
    rated = {0: 4.0, 7: value}
    calls = [lambda: bmf.recommend_new(rated), lambda: bmf.fold_in(rated),
             lambda: bmf.fold_in(pd.Series(rated)), lambda: bmf.fold_in(pd.DataFrame({"item": [0, 7], "rating": [4.0, value]})),
             lambda: bmf.clone().fit(bmf_ratings()).add_user(777_777, rated)]
    for call in calls:
        with pytest.raises(DataError, match=r"item 7 .*scale 1-5"):
            call()
    # an unknown item's rating is checked too (bad input, not only an ignored one)
    with pytest.raises(DataError, match="scale"):
        bmf.recommend_new({0: 4.0, 99999: value})


def bmf_ratings() -> mfrec.Ratings:
    return mfrec.synthetic(N_USERS, N_ITEMS, 800, factors=3, seed=1)


def test_new_ratings_on_the_scale_bounds_are_accepted(bmf):
    recs = bmf.recommend_new({0: 1.0, 7: 5.0}, n=3)
    assert len(recs) == 3


def test_cmf_new_user_and_new_item_ratings_are_scale_checked(ratings):
    from mfrec import CMF

    m = CMF(factors=3, iterations=2, seed=0, threads=1).fit(ratings)
    with pytest.raises(DataError, match=r"item 3 .*scale 1-5"):
        m.predict_new([1, 2], {3: 50.0})
    with pytest.raises(DataError, match=r"user 2 .*scale 1-5"):
        m.fold_in_item(None, {2: -1.0})
    with pytest.raises(DataError, match="more than once"):
        m.fold_in_item(None, {2: 4.0, "2": 3.0})
    pred, counts = m.predict_new([1, 2, 99999], {3: 5.0}, return_unknown=True)
    assert counts == {"users": 0, "items": 1} and len(pred) == 3


def test_cli_rate_outside_the_scale_is_a_one_line_error(bmf, tmp_path):
    from typer.testing import CliRunner

    from mfrec.cli import app

    path = bmf.save(tmp_path / "m.mfrec")
    res = CliRunner().invoke(app, ["recommend", str(path), "--rate", "1=50"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "outside" in lines[0], res.stderr


@pytest.mark.parametrize("rated", [{1: 5.0, "1": 1.0}, {np.int64(7): 5.0, "7": 2.0, 3: 1.0},
                                   pd.DataFrame({"item": [1, "1"], "rating": [5.0, 1.0]}),
                                   pd.Series([5.0, 1.0], index=pd.Index([1, "1"], dtype=object))],
                         ids=["dict", "numpy-and-str", "frame", "series"])
def test_two_keys_naming_the_same_item_are_a_data_error(bmf, rated):
    with pytest.raises(DataError, match="more than once"):
        bmf.recommend_new(rated)
    with pytest.raises(DataError, match="more than once"):
        bmf.fold_in(rated)


@pytest.mark.parametrize("kw", [dict(items="50"), dict(filter="50"), dict(items=5), dict(filter=3.0),
                                dict(items={1: 2}), dict(items=np.array(5))])
def test_a_string_or_scalar_where_ids_belong_is_a_type_error(bmf, kw):
    for call in (lambda: bmf.recommend(1, **kw), lambda: bmf.recommend_new(RATED, **kw),
                 lambda: bmf.recommend_many([1, 2], **kw)):
        with pytest.raises(TypeError, match="list of ids"):
            call()


def test_users_string_is_a_type_error_and_ids_of_any_iterable_work(bmf):
    with pytest.raises(TypeError, match="users="):
        bmf.recommend_many(users="12", n=2)
    want = bmf.recommend(1, n=50, items=[2, 3, 5, 8])
    for items in ((2, 3, 5, 8), {2, 3, 5, 8}, np.array([2, 3, 5, 8]), pd.Series([2, 3, 5, 8]),
                  pd.Index([2, 3, 5, 8]), (x for x in [2, 3, 5, 8])):
        got = bmf.recommend(1, n=50, items=items)
        assert list(got["item"]) == list(want["item"])
    many = bmf.recommend_many(users=(u for u in [1, 2]), n=3)
    assert list(many["user"].unique()) == [1, 2]


def test_unknown_candidate_ids_are_reported_alike_in_recommend_and_recommend_new(bmf):
    cand = [1, 2, 5, 12345, "x"]
    with pytest.warns(UserWarning, match="unknown"):
        known_user = bmf.recommend(0, n=10, items=cand, exclude_seen=False)
    with pytest.warns(UserWarning, match="unknown"):
        many = bmf.recommend_many([0, 1], n=10, items=cand, exclude_seen=False)
    with pytest.warns(UserWarning, match="unknown"):
        new_user = bmf.recommend_new({0: 4.0}, n=10, items=cand)
    for df in (known_user, many, new_user):
        assert df.attrs["unknown_items"] == [12345, "x"]
        assert set(df["item"]) == {1, 2, 5}
    with pytest.warns(UserWarning, match="unknown"):
        both = bmf.recommend_new({0: 4.0, 999: 3.0}, n=10, items=cand)
    assert both.attrs["unknown_items"] == [999, 12345, "x"]
    assert bmf.recommend(0, n=3).attrs["unknown_items"] == []
    # only an all-unknown list is an error, for both
    for call in (lambda: bmf.recommend(0, items=[12345, "x"]), lambda: bmf.recommend_many([0], items=[12345]),
                 lambda: bmf.recommend_new({0: 4.0}, items=[12345, "x"])):
        with pytest.raises(DataError, match="none of the candidate items"):
            call()
    # an empty candidate list is an empty answer, not an error
    assert len(bmf.recommend(0, items=[])) == 0


def _popularity(m) -> pd.Series:
    return pd.Series(np.bincount(m.seen_.indices, minlength=len(m.item_map_)), index=m.item_map_.ids)


@pytest.mark.parametrize("make", [lambda: ImplicitALS(factors=4, iterations=3, seed=0, threads=1),
                                  lambda: FunkMF(factors=4, epochs=3, seed=0, threads=1),
                                  lambda: ALS(factors=4, iterations=3, use_bias=False, seed=0, threads=1)],
                         ids=["ImplicitALS", "FunkMF", "ALS-no-bias"])
def test_the_empty_user_of_a_model_without_biases_ranks_by_popularity(make, ratings):
    m = make().fit(ratings)
    pop = _popularity(m)
    best = np.sort(pop.to_numpy())[::-1]
    fallback = m.train_mean_ if (m.kind == "rating") else 0.0
    for empty in ({}, None):
        recs = m.recommend_new(empty, n=8)
        assert len(recs) == 8
        np.testing.assert_array_equal(pop[recs["item"]].to_numpy(), best[:8])
        np.testing.assert_allclose(recs["score"], fallback, rtol=1e-6)
    # restricted candidates: the most popular of them
    cand = list(m.item_map_.ids[:10])
    recs = m.recommend_new({}, n=3, items=cand)
    np.testing.assert_array_equal(pop[recs["item"]].to_numpy(), np.sort(pop[cand].to_numpy())[::-1][:3])
    # a user added without ratings is the same zero user, for recommend and recommend_many
    m.add_user(888_888, {})
    recs = m.recommend(888_888, n=8)
    np.testing.assert_array_equal(pop[recs["item"]].to_numpy(), best[:8])
    many = m.recommend_many([m.user_map_.ids[0], 888_888], n=8)
    np.testing.assert_array_equal(pop[many.loc[many["user"] == 888_888, "item"]].to_numpy(), best[:8])
    # an informed user still ranks by the model's own scores
    real = m.recommend(m.user_map_.ids[0], n=8)
    assert np.all(np.diff(real["score"].to_numpy()) <= 0)


@pytest.mark.parametrize("kw", [dict(item_bias_weight=float("nan")), dict(item_bias_weight=float("inf")),
                                dict(item_bias_weight="0.5"), dict(item_bias_weight=None),
                                dict(n=0), dict(n=2.5), dict(n=True), dict(n="3"), dict(n=None)])
def test_bad_request_arguments_name_the_parameter(bmf, kw):
    name = next(iter(kw))
    for call in (lambda: bmf.recommend(1, **kw), lambda: bmf.recommend_many([1], **kw),
                 lambda: bmf.recommend_new(RATED, **kw)):
        with pytest.raises(ValueError, match=name):
            call()
    if name == "n":
        with pytest.raises(ValueError, match="n must"):
            bmf.similar_items(1, **kw)


@pytest.mark.parametrize("explain", [-1, 1.5, "2", True, None])
def test_bad_explain_is_a_value_error(bmf, explain):
    with pytest.raises(ValueError, match="explain"):
        bmf.recommend_new(RATED, explain=explain)


def test_block_size_is_validated(bmf):
    with pytest.raises(ValueError, match="block_size"):
        bmf.recommend_many([1], block_size=0)


def test_implicit_rating_confidence_needs_positive_ratings(ratings):
    df = ratings.to_dataframe()
    good = ImplicitALS(factors=3, iterations=2, confidence="rating", seed=0, threads=1).fit(ratings)
    before = good.item_factors_.copy()
    for shift in (-3.0, -1.0):  # ratings down to -2 / 0
        bad = df.assign(rating=df["rating"] + shift)
        with pytest.raises(DataError, match="confidence='rating'.*> 0"):
            good.fit(bad)
        np.testing.assert_array_equal(good.item_factors_, before)  # the refused refit changed nothing
        ImplicitALS(factors=3, iterations=2, confidence="binary", seed=0, threads=1).fit(bad)  # values unused
    # fold-in is held to the same rule, even where the model's scale would let a 0 through
    good.rating_scale_ = (0.0, 5.0)
    with pytest.raises(DataError, match="confidence='rating'"):
        good.fold_in({4: 0.0, 6: 3.0})


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.fixture(scope="module")
def _small_model():
    r = mfrec.synthetic(40, 30, 300, seed=0)
    return mfrec.BiasedMF(factors=3, epochs=2, seed=0, threads=1).fit(r), r


@pytest.mark.parametrize("call", ["add_user", "recommend", "predict", "similar_items", "recommend_many", "contains"])
def test_unhashable_ids_are_a_type_error_naming_the_id(_small_model, call):
    m, _ = _small_model
    m = m.clone().fit(_small_model[1]) if call == "add_user" else m
    run = {
        "add_user": lambda: m.add_user(["guest"], {1: 4.0}),
        "recommend": lambda: m.recommend([1]),
        "predict": lambda: m.predict([[1, 2]], [1]),
        "similar_items": lambda: m.similar_items({"a": 1}),
        "recommend_many": lambda: m.recommend_many(users=[[1]]),
        "contains": lambda: [1] in m.user_map_,
    }[call]
    with pytest.raises(TypeError, match="cannot be an id.*hashable"):
        run()


@pytest.mark.parametrize("user_id", [None, float("nan")])
def test_add_user_refuses_a_missing_id(_small_model, user_id):
    m = _small_model[0].clone().fit(_small_model[1])
    with pytest.raises(ValueError, match="user_id is missing"):
        m.add_user(user_id, {1: 4.0})
    assert len(m.user_map_) == len(_small_model[1].user_map)


@pytest.mark.parametrize("kw", [{"exclude_seen": "no"}, {"exclude_seen": 0}, {"exclude_seen": None}])
def test_exclude_flags_need_a_real_bool(_small_model, kw):
    m, r = _small_model
    with pytest.raises(ValueError, match="exclude_seen must be True or False"):
        m.recommend(r.users[0], **kw)
    with pytest.raises(ValueError, match="exclude_seen must be True or False"):
        m.recommend_many(users=[r.users[0]], **kw)
    with pytest.raises(ValueError, match="exclude_rated must be True or False"):
        m.recommend_new({1: 4.0}, exclude_rated=kw["exclude_seen"])


@pytest.mark.parametrize("ratings,match", [
    ({None: 4.0, 1: 3.0}, "missing item id"), (pd.DataFrame({"item": [np.nan, 1], "rating": [4.0, 5.0]}), "missing item id"),
    ({1: [4.0]}, r"is \[4.0\] \(list\), not a real number"), ({1: 4 + 0j}, r"\(complex\), not a real number"),
    (pd.Series([4 + 1j], index=[1]), "not a real number"),
])
def test_new_ratings_with_missing_ids_or_non_real_values_are_refused(_small_model, ratings, match):
    """A None/NaN id was dropped as 'unknown', a list rating a deep pandas ValueError, a complex
    rating lost its imaginary part: all silently or from deep inside."""
    m, _ = _small_model
    with pytest.raises(DataError, match=match):
        m.recommend_new(ratings)
    with pytest.raises(DataError, match=match):
        m.fold_in(ratings)


@pytest.mark.parametrize("param", ["items", "filter"])
def test_id_arguments_with_missing_ids_are_refused(_small_model, param):
    m, r = _small_model
    with pytest.raises(DataError, match=f"{param}= holds a missing id at position 1"):
        m.recommend(r.users[0], **{param: [1, None]})
    with pytest.raises(DataError, match="users= holds a missing id"):
        m.recommend_many(users=np.array([r.users[0], np.nan]))


def test_new_ratings_must_be_real_numbers(bmf):
    from decimal import Decimal
    from fractions import Fraction

    for value in (True, np.True_, "5", " 5 ", Decimal("5")):
        with pytest.raises(DataError, match="not a real number"):
            bmf.recommend_new({0: value}, n=3)
    with pytest.raises(DataError, match="not a real number"):
        bmf.recommend_new(pd.Series(["5"], index=[0]), n=3)
    a = bmf.recommend_new({0: Fraction(9, 2)}, n=3)
    b = bmf.recommend_new({0: 4.5}, n=3)
    assert a["item"].tolist() == b["item"].tolist()


def test_iterables_of_ids_are_their_ids_not_one_id(bmf):
    users, items = [int(bmf.user_map_.ids[1])], [int(bmf.item_map_.ids[2])]
    got = bmf.predict((u for u in users), iter(items))
    np.testing.assert_allclose(got, bmf.predict(users, items))


def test_item_bias_weight_must_keep_float32_scores_finite(bmf):
    user = bmf.user_map_.ids[0]
    for w in (1e300, -1e300, 2e6):
        with pytest.raises(ValueError, match="item_bias_weight must be within"):
            bmf.recommend(user, n=3, item_bias_weight=w)
    assert len(bmf.recommend(user, n=3, item_bias_weight=1e6)) == 3


def test_odd_requests_found_by_outside_testing_are_refused():
    """A recommend_new DataFrame holding two users' rows was folded in as one guest; validation
    ratings of another scale gave an RMSE of 96."""
    import mfrec
    from mfrec.errors import DataError

    r = mfrec.synthetic(60, 40, 600, seed=0)
    m = mfrec.BiasedMF(factors=3, epochs=2, threads=1).fit(r)
    u = r.raw_users[0]
    assert len(m.recommend_many([u, u], n=2)) == 4  # the output follows `users` (documented)
    two = pd.DataFrame({"item": r.raw_items[:2], "rating": [5.0, 1.0], "user": [1, 2]})
    with pytest.raises(DataError, match="holds 2 users"):
        m.recommend_new(two)
    assert len(m.recommend_new(two.assign(user=7), n=3)) == 3  # one user's rows: fine
    far = mfrec.Ratings.from_arrays([r.raw_users[0]], [r.raw_items[5]], [100.0])
    with pytest.raises(DataError, match="outside the training ratings' scale"):
        mfrec.BiasedMF(factors=3, epochs=2).fit(r, validation=far)


def test_attach_items_checks_the_table_and_reads_ids_by_the_lookup_rule():
    """A duplicated id failed inside pandas, a Series or None leaked an AttributeError, a table
    indexed by "51" on an int-id model dropped every title, and a partial table said nothing."""
    from mfrec.errors import DataError

    r = mfrec.synthetic(60, 40, 600, seed=0)
    m = BiasedMF(factors=3, epochs=2, threads=1).fit(r)
    ids = m.item_map_.ids
    items = pd.DataFrame({"title": [f"t{i}" for i in ids], "genres": [["a"]] * len(ids)}, index=ids)
    for bad in (items["title"], None):
        with pytest.raises(TypeError, match="must be a DataFrame"):
            m.attach_items(bad)
    with pytest.raises(DataError, match=f"two rows for item {ids[0]}"):
        m.attach_items(pd.concat([items, items.iloc[:1]]))
    with pytest.raises(DataError, match="none of the item table's"):
        m.attach_items(items.set_axis([f"x{i}" for i in ids]))
    with pytest.raises(DataError, match="none of the columns title, genres, year"):
        m.attach_items(items.rename(columns={"title": "name", "genres": "tags"}))
    text = m.attach_items(items.set_axis([str(i) for i in ids])).item_info_
    assert text["title"].tolist() == items["title"].tolist()  # "51" is item 51
    with pytest.warns(UserWarning, match=f"{len(ids) - 10} of the model's {len(ids)} items have no row"):
        m.attach_items(items.iloc[:10])
    assert m.item_info_["title"].notna().sum() == 10


def test_item_tables_on_refit_and_reset_index_and_predict_flags():
    """A refit on data sharing no item with the attached table failed; ds.items.reset_index()
    shifted every title by one; predict(clip="no") was taken as True."""
    from mfrec.errors import DataError

    a = mfrec.synthetic(60, 40, 600, seed=0)
    b = mfrec.Ratings.from_dataframe(a.to_dataframe().assign(item=lambda d: d["item"] + 1000))
    m = BiasedMF(factors=3, epochs=2, threads=1).fit(a)
    ids = m.item_map_.ids
    items = pd.DataFrame({"title": [f"t{i}" for i in ids]}, index=pd.Index(ids, name="item"))
    m.attach_items(items)
    m.fit(b)  # the table follows the new items: none of them has a row
    assert m.item_info_["title"].isna().all()
    ids_b = m.item_map_.ids
    table_b = pd.DataFrame({"title": [f"t{i}" for i in ids_b]}, index=pd.Index(ids_b, name="item"))
    with pytest.raises(DataError, match="indexed 0..n-1 and has an id column 'item'"):
        m.attach_items(table_b.reset_index())
    zero = BiasedMF(factors=2, epochs=1, threads=1).fit(mfrec.synthetic(20, 10, 100, seed=0))  # items 0..9
    table = pd.DataFrame({"item": range(10), "title": [f"t{i}" for i in range(10)]})  # the ids are 0..n-1
    assert zero.attach_items(table).item_info_["title"].tolist() == [f"t{i}" for i in zero.item_map_.ids]
    for flag in ("clip", "return_unknown"):
        with pytest.raises(ValueError, match=f"{flag} must be True or False"):
            m.predict(b.raw_users[:2], b.raw_items[:2], **{flag: "no"})
