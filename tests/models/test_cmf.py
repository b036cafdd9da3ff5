"""CMF: the model contract (with attributes); planted cold start for users and items, ids present
only in the attribute tables, fold-in with attributes and/or ratings, the training objective,
determinism, save/load, and ml-100k u1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec import ALS, Baseline, Ratings
from mfrec.errors import DataError
from mfrec.models.cmf import CMF
from mfrec.testing import ModelContract
from tests.conftest import dataset_dir

NOISE = 0.2
K = 4
#: settings for the planted data (the defaults are tuned for MovieLens)
PLANTED = dict(factors=K, regularization=1.0, attribute_regularization=0.1, user_attribute_weight=10.0,
               item_attribute_weight=10.0, attribute_bias=False, iterations=10, threads=1)


class TestCMF(ModelContract):
    """The contract with a user attribute table (an age per training user)."""

    model = CMF
    small = {"factors": 3, "iterations": 2, "regularization": 2.0}

    def fit_kwargs(self, train: Ratings) -> dict:
        users = train.users
        ages = pd.DataFrame({"age": np.arange(len(users)) % 50 + 18}, index=pd.Index(users, name="user"))
        return {"user_attributes": ages}


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)))


def planted(n_users=600, n_items=300, per_user=40, noise=NOISE, seed=0):
    """Ratings ``3.5 + b_i + a_u . b_i + noise`` whose user factors are a linear function of the
    user attributes (``A = Z_u W_u``) and item factors of the item attributes (``B = Z_i W_i``).
    Raw user ids 1000.., item ids 0.."""
    rng = np.random.default_rng(seed)
    Zu = rng.standard_normal((n_users, K))
    Zi = rng.standard_normal((n_items, K))
    A = Zu @ (0.35 * rng.standard_normal((K, K)))
    B = Zi @ (0.45 * rng.standard_normal((K, K)))
    item_bias = rng.normal(0, 0.4, n_items)
    u = np.repeat(np.arange(n_users), per_user)
    i = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    r = 3.5 + item_bias[i] + np.einsum("ij,ij->i", A[u], B[i]) + noise * rng.standard_normal(len(u))
    users = pd.DataFrame(Zu, columns=[f"z{j}" for j in range(K)], index=pd.Index(np.arange(n_users) + 1000, name="user"))
    items = pd.DataFrame(Zi, columns=[f"y{j}" for j in range(K)], index=pd.Index(np.arange(n_items), name="item"))
    return pd.DataFrame({"user": u + 1000, "item": i, "rating": r}), users, items


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def cold_users(data):
    """Fitted on 500 users; the last 100 users are cold (attributes only)."""
    df, users, items = data
    cold_ids = users.index[-100:]
    train = Ratings.from_dataframe(df[~df.user.isin(cold_ids)])
    model = CMF(**PLANTED).fit(train, user_attributes=users.loc[~users.index.isin(cold_ids)], item_attributes=items)
    return model, train, df[df.user.isin(cold_ids)], users


# ---------------------------------------------------------------------------------------- cold start
def test_cold_users_from_attributes_near_noise_level(cold_users):
    model, train, cold, users = cold_users
    pred, true = [], []
    for uid, g in cold.groupby("user"):
        pred.append(model.predict_new(g["item"].to_numpy(), user_attributes=users.loc[uid]))
        true.append(g["rating"].to_numpy())
    cold_rmse = rmse(np.concatenate(pred), np.concatenate(true))
    baseline = Baseline().fit(train)
    item_bias_rmse = rmse(baseline.predict(cold["user"], cold["item"]), cold["rating"])  # unknown user: mu + b_i
    assert cold_rmse < 1.3 * NOISE, cold_rmse
    assert cold_rmse < 0.35 * item_bias_rmse, (cold_rmse, item_bias_rmse)


def test_cold_items_from_attributes(data):
    df, users, items = data
    cold_ids = items.index[-60:]
    train = Ratings.from_dataframe(df[~df.item.isin(cold_ids)])
    model = CMF(**PLANTED).fit(train, user_attributes=users, item_attributes=items.loc[~items.index.isin(cold_ids)])
    cold = df[df.item.isin(cold_ids)]
    pred = np.empty(len(cold))
    for it, g in cold.groupby("item"):
        pred[cold.index.get_indexer(g.index)] = model.predict_new_item(g["user"].to_numpy(), item_attributes=items.loc[it])
    user_bias_rmse = rmse(Baseline().fit(train).predict(cold["user"], cold["item"]), cold["rating"])
    cold_rmse = rmse(pred, cold["rating"])
    # the new items' biases are not in their attributes here: only the factors are predictable
    assert cold_rmse < 0.75 * user_bias_rmse, (cold_rmse, user_bias_rmse)
    # a few ratings of the new item on top of its attributes (warm item fold-in) help further
    it, g = next(iter(cold.groupby("item")))
    warm = model.predict_new_item(g["user"].to_numpy()[5:], item_attributes=items.loc[it],
                                  ratings=dict(zip(g["user"].to_numpy()[:5], g["rating"].to_numpy()[:5])))
    attrs_only = model.predict_new_item(g["user"].to_numpy()[5:], item_attributes=items.loc[it])
    assert rmse(warm, g["rating"].to_numpy()[5:]) < rmse(attrs_only, g["rating"].to_numpy()[5:])


def test_few_ratings_with_attributes_beat_ratings_alone(cold_users):
    model, _, cold, users = cold_users
    rng = np.random.default_rng(0)
    errs = {"ratings": [], "both": [], "attributes": []}
    for uid, g in cold.groupby("user"):
        order = rng.permutation(len(g))
        given, rest = g.iloc[order[:3]], g.iloc[order[3:]]
        ratings = dict(zip(given["item"], given["rating"]))
        y = rest["rating"].to_numpy()
        errs["ratings"].append(model.predict_new(rest["item"].to_numpy(), ratings=ratings) - y)
        errs["both"].append(model.predict_new(rest["item"].to_numpy(), ratings=ratings, user_attributes=users.loc[uid]) - y)
        errs["attributes"].append(model.predict_new(rest["item"].to_numpy(), user_attributes=users.loc[uid]) - y)
    r = {key: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) for key, v in errs.items()}
    assert r["both"] < r["ratings"] and r["both"] < 1.3 * NOISE, r


def test_fold_in_with_attributes_equals_the_training_solve(cold_users):
    """A training user's row is the ridge of their ratings and attributes against the final item
    and attribute factors (exact solver: the last half-step used them, up to the final C step).
    That is the fold-in of ``user_cold_start="collective"``; the default regression fold-in shrinks
    towards the attributes' prediction instead (tested below)."""
    model, train, _, users = cold_users
    exact = CMF(**{**PLANTED, "solver": "cholesky", "iterations": 30, "user_cold_start": "collective"}).fit(
        train, user_attributes=users.loc[np.unique(train.raw_users)])
    uid = train.users[3]
    row = train.by_user[3]
    ratings = dict(zip(train.items[row.indices], row.data))
    fold = exact.fold_in(ratings, user_attributes=users.loc[uid])
    u = exact.user_map_.index_of(uid)
    # the item step ran after this user's solve; near convergence (30 iterations) refolding against the
    # final factors stays close
    np.testing.assert_allclose(fold.factors, exact.user_factors_[u], atol=0.05)
    assert abs(fold.bias - exact.user_bias_[u]) < 0.05


# ---------------------------------------------------------------------------------------- ids and shapes
def test_ids_only_in_attribute_tables_are_part_of_the_model(data):
    df, users, items = data
    cold_users_ids = users.index[-100:]
    cold_item_ids = items.index[-30:]
    train = Ratings.from_dataframe(df[~df.user.isin(cold_users_ids) & ~df.item.isin(cold_item_ids)])
    model = CMF(**PLANTED).fit(train, user_attributes=users, item_attributes=items)
    # training ids first, in training order, then the attribute-only ids in table order
    n_train_users = train.n_users
    assert model.users_[:n_train_users].tolist() == train.users.tolist()
    assert sorted(model.users_[n_train_users:].tolist()) == sorted(cold_users_ids.tolist())
    assert model.user_factors_.shape == (len(users), K) and model.user_bias_.shape == (len(users),)
    assert model.item_factors_.shape == (len(items), K)
    assert model.user_attribute_factors_.shape == (K, K) and model.item_attribute_factors_.shape == (K, K)
    assert model.n_without_ratings_ == {"users": 100, "items": 30}
    assert model.seen_.shape == (len(users), len(items))
    # attribute-only users have factors (no bias: attribute_bias=False), predictions use them
    u = model.user_map_.lookup(cold_users_ids)
    assert np.abs(model.user_factors_[u]).sum() > 0 and (model.user_bias_[u] == 0).all()
    cold = df[df.user.isin(cold_users_ids) & ~df.item.isin(cold_item_ids)]
    pred = model.predict(cold["user"], cold["item"])
    assert model.unknown_ == {"users": 0, "items": 0}
    assert rmse(pred, cold["rating"]) < 1.5 * NOISE  # measured 0.27 (fewer items and ratings here)
    # and agree with folding the same users in from their attributes
    g = cold[cold.user == cold_users_ids[0]]
    np.testing.assert_allclose(model.predict(g["user"], g["item"]),
                               model.predict_new(g["item"].to_numpy(), user_attributes=users.loc[cold_users_ids[0]]),
                               atol=0.1)
    # attribute-only items too
    cold_i = df[df.item.isin(cold_item_ids) & ~df.user.isin(cold_users_ids)]
    assert rmse(model.predict(cold_i["user"], cold_i["item"]), cold_i["rating"]) < 0.8 * rmse(
        Baseline().fit(train).predict(cold_i["user"], cold_i["item"]), cold_i["rating"])
    # recommend() works for an attribute-only user (nothing seen to exclude)
    rec = model.recommend(cold_users_ids[0], n=5)
    assert list(rec.columns) == ["item", "score"] and len(rec) == 5


def test_train_map_with_unrated_ids_and_string_attribute_ids():
    """Subsets share their parent's id map (unrated ids included); attribute ids given as strings
    of int ids resolve to the same users."""
    full = Ratings.from_arrays([1, 1, 2, 2, 3, 3, 4], [10, 11, 10, 12, 11, 12, 10], [4, 3, 5, 2, 3, 4, 5])
    train = full.subset(full.raw_users != 4)  # user 4 is in the map but has no training rating
    users = pd.DataFrame({"g": ["a", "b", "a", "b", "a"]}, index=pd.Index(["1", "2", "3", "4", "5"]))
    model = CMF(factors=2, iterations=3, threads=1).fit(train, user_attributes=users)
    assert model.users_.tolist() == [1, 2, 3, 4, 5]
    assert model.n_without_ratings_["users"] == 2
    p = model.predict([4, 5, 99], [10, 10, 10])
    assert model.unknown_["users"] == 1  # only 99: users 4 and 5 have attributes
    assert np.isfinite(p).all()


def test_missing_attribute_values_and_rows(data):
    df, users, items = data
    u = users.copy()
    u.iloc[::3, 0] = np.nan  # some values missing
    u = u.drop(index=u.index[::7])  # some users without any attribute row
    u["group"] = pd.Series(np.where(np.arange(len(u)) % 2, "x", None), index=u.index, dtype=object)
    train = Ratings.from_dataframe(df)
    model = CMF(**PLANTED).fit(train, user_attributes=u)
    assert np.isfinite(model.user_factors_).all()
    assert model.user_attribute_names_ == ["z0", "z1", "z2", "z3", "group=x"]
    fold = model.fold_in({}, user_attributes={"z1": 0.5, "group": None})
    assert fold.bias == 0.0 and np.abs(fold.factors).sum() > 0
    assert np.abs(model.fold_in({}, user_attributes={"z0": np.nan}).factors).sum() == 0  # nothing observed


def test_without_attributes_it_is_biased_als(data):
    df, _, _ = data
    train = Ratings.from_dataframe(df.iloc[:8000])
    kw = dict(factors=K, regularization=2.0, bias_regularization=1.0, iterations=4, solver="cholesky", threads=1)
    cmf, als = CMF(**kw).fit(train), ALS(**kw).fit(train)
    np.testing.assert_allclose(cmf.user_factors_, als.user_factors_, atol=2e-4)
    np.testing.assert_allclose(cmf.predict_ratings(train), als.predict_ratings(train), atol=1e-4)


# ---------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("attribute_bias", [False, True])
def test_exact_als_never_increases_the_objective(data, attribute_bias):
    df, users, items = data
    train = Ratings.from_dataframe(df.iloc[:12000])
    model = CMF(**{**PLANTED, "solver": "cholesky", "attribute_bias": attribute_bias, "iterations": 6}).fit(
        train, user_attributes=users, item_attributes=items)
    loss = model.history_["loss"].to_numpy()
    assert (np.diff(loss) <= 1e-6 * loss[:-1]).all(), loss
    assert list(model.history_.columns[:4]) == ["epoch", "loss", "train_rmse", "seconds"]


def test_validation_and_early_stopping(data):
    df, users, items = data
    r = Ratings.from_dataframe(df)
    train, val = mfrec.split.random_split(r, 0.1, seed=0)
    model = CMF(**{**PLANTED, "iterations": 8, "early_stopping": 2}).fit(
        train, validation=val, user_attributes=users, item_attributes=items)
    assert "validation_rmse" in model.history_.columns
    assert model.score(val) == pytest.approx(model.history_["validation_rmse"].min(), abs=1e-9)
    assert model.score(val) < 1.3 * NOISE


def test_deterministic_for_seed_and_threads(data):
    df, users, items = data
    train = Ratings.from_dataframe(df.iloc[:10000])
    fits = [CMF(**{**PLANTED, "threads": t, "seed": 3}).fit(train, user_attributes=users, item_attributes=items)
            for t in (1, 1, 2)]
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "user_attribute_factors_",
                 "item_attribute_factors_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
        np.testing.assert_allclose(getattr(fits[0], name), getattr(fits[2], name), atol=1e-5)
    other = CMF(**{**PLANTED, "seed": 4}).fit(train, user_attributes=users, item_attributes=items)
    assert not np.array_equal(other.item_factors_, fits[0].item_factors_)


def test_parameters_are_validated():
    r = Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0])
    for bad in (dict(solver="lu"), dict(user_attribute_weight=-1), dict(attribute_regularization=0),
                dict(cg_steps=0)):
        with pytest.raises(ValueError):
            CMF(**bad).fit(r)
    dup = pd.DataFrame({"a": [1.0, 2.0]}, index=[1, 1])
    with pytest.raises(DataError, match="more than once"):
        CMF().fit(r, user_attributes=dup)
    with pytest.raises(TypeError):
        CMF().fit(r, user_attributes={"a": 1})
    assert CMF().clone().get_params() == CMF().get_params()
    assert CMF.epochs_param == "iterations"


# ---------------------------------------------------------------------------------------- recommend
def test_recommend_new_with_attributes_keeps_the_output_format(cold_users):
    model, train, cold, users = cold_users
    uid = cold["user"].iloc[0]
    titles = pd.DataFrame({"title": [f"movie {i}" for i in range(300)], "genres": [["x"]] * 300},
                          index=pd.Index(range(300), name="item"))
    model.attach_items(titles)
    try:
        plain = model.recommend_new({}, n=5)
        cold_rec = model.recommend_new({}, n=5, user_attributes=users.loc[uid])
        assert list(cold_rec.columns) == list(plain.columns) == ["item", "score", "title", "genres"]
        assert not cold_rec["item"].equals(plain["item"])  # attributes change the ranking
        # scores are the model's predictions for that user
        np.testing.assert_allclose(cold_rec["score"], model.predict_new(cold_rec["item"], user_attributes=users.loc[uid],
                                                                        clip=False), atol=1e-4)
        g = cold[cold.user == uid]
        ratings = dict(zip(g["item"].iloc[:3], g["rating"].iloc[:3]))
        warm = model.recommend_new(ratings, n=5, explain=2, user_attributes=users.loc[uid])
        assert list(warm.columns) == ["item", "score", "title", "genres", "because"]
        assert not set(warm["item"]) & set(ratings)  # rated items excluded
    finally:
        model.item_info_ = None


def test_add_user_with_attributes(cold_users):
    model, _, cold, users = cold_users
    uid = int(cold["user"].iloc[0])
    m = CMF(**PLANTED)
    m.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in model.__dict__.items()})
    m.add_user(uid, user_attributes=users.loc[uid])
    g = cold[cold.user == uid]
    np.testing.assert_allclose(m.predict(g["user"], g["item"]), model.predict_new(g["item"], user_attributes=users.loc[uid]),
                               atol=1e-5)
    assert m.unknown_["users"] == 0


# ---------------------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path, monkeypatch, data):
    df, users, items = data
    u = users.copy()
    u["group"] = np.where(np.arange(len(u)) % 3 == 0, "a", "b")
    train = Ratings.from_dataframe(df.iloc[:15000])
    model = CMF(**{**PLANTED, "attribute_bias": True}).fit(train, user_attributes=u, item_attributes=items)
    path = model.save(tmp_path / "cmf.mfrec")
    back = mfrec.load_model(path)
    assert isinstance(back, CMF) and back.get_params() == model.get_params()
    pairs = (df["user"].to_numpy()[:500], df["item"].to_numpy()[:500])
    np.testing.assert_array_equal(back.predict(*pairs), model.predict(*pairs))
    new = {"z0": 1.0, "z2": -0.5, "group": "a"}
    np.testing.assert_allclose(back.predict_new([1, 2, 3], user_attributes=new),
                               model.predict_new([1, 2, 3], user_attributes=new))
    np.testing.assert_allclose(back.predict_new_item([1000, 1001], item_attributes={"y1": 2.0}),
                               model.predict_new_item([1000, 1001], item_attributes={"y1": 2.0}))
    assert back.user_attribute_names_ == model.user_attribute_names_
    # attribute-only users still predict from their factors after loading
    only = u.index.difference(pd.Index(np.unique(train.raw_users)))[:3]
    np.testing.assert_array_equal(back.predict(only, [1, 2, 3]), model.predict(only, [1, 2, 3]))
    assert back.unknown_["users"] == 0


# ---------------------------------------------------------------------------------------- ml-100k
@pytest.mark.realdata
def test_ml100k_u1_with_attributes_no_worse_than_als():
    folder = dataset_dir("ml-100k")
    ds = mfrec.load_dataset("ml-100k", data_dir=folder.parent, download=False, progress=False)
    train, test = ds.official_split("u1")
    users = ds.users.drop(columns="zip")
    items = ds.items[["genres", "year"]]
    cmf = CMF().fit(train, user_attributes=users, item_attributes=items)
    als = ALS().fit(train)
    cmf_rmse, als_rmse = cmf.score(test), als.score(test)
    # measured: CMF 0.9166, ALS 0.9253 (defaults, seed 0)
    assert cmf_rmse <= als_rmse, (cmf_rmse, als_rmse)
    assert cmf_rmse < 0.925
    # a new user from attributes only, and a new item from its genres and year
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every value is one the model learned: no warning
        rec = cmf.recommend_new({}, n=5, user_attributes={"age": 25, "gender": "F", "occupation": "student"})
    assert len(rec) == 5
    with pytest.warns(UserWarning, match="did not learn .*occupation='astronaut'"):
        cmf.recommend_new({}, n=5, user_attributes={"age": 25, "gender": "F", "occupation": "astronaut"})
    p = cmf.predict_new_item([1, 2, 3], item_attributes={"genres": ["Documentary"], "year": 1950})
    assert np.isfinite(p).all()


# ---------------------------------------------------------------------------------------- cold-start regression
def test_cold_start_regression_map_and_modes(cold_users, data):
    """The default user cold start is the ridge map of [bias, factors] on the attributes: an
    attributes-only fold-in is exactly that prediction, rows only in the attribute table get it
    too, and a few ratings move the user from it (the ridge shrinks towards it, not to 0)."""
    model, train, cold, users = cold_users
    assert model.user_cold_start == "regression" and model.item_cold_start == "collective"
    W = model.user_cold_start_map_
    assert W.shape == (1 + K, 1 + K) and model.item_cold_start_map_.shape[0] == 0
    assert np.all(W[:, 0] == 0)  # attribute_bias=False in PLANTED: no bias from attributes
    uid = int(cold["user"].iloc[0])
    V, _ = model.attribute_encoder("user").transform(users.loc[[uid]])  # standardized columns
    z = V[0] - model.user_attribute_means_
    fold = model.fold_in({}, user_attributes=users.loc[uid])
    np.testing.assert_allclose(fold.factors, W[0, 1:] + z @ W[1:, 1:], rtol=1e-5, atol=1e-6)
    g = cold[cold.user == uid]
    few = model.fold_in(dict(zip(g["item"][:3], g["rating"][:3])), user_attributes=users.loc[uid])
    assert 0 < np.abs(few.factors - fold.factors).sum()
    # the regression map is fitted on users with ratings and used for attribute-only training ids
    df, users_all, items = data
    m = CMF(**PLANTED).fit(train, user_attributes=users_all, item_attributes=items)
    only = users_all.index[-1]
    np.testing.assert_allclose(m.predict([only] * 3, [0, 1, 2]),
                               m.predict_new([0, 1, 2], user_attributes=users_all.loc[only]), rtol=1e-5)
    # without the map (user_cold_start="collective", or a file written before it) the attribute block
    coll = CMF(**{**PLANTED, "user_cold_start": "collective"}).fit(
        train, user_attributes=users.loc[np.unique(train.raw_users)], item_attributes=items)
    assert coll.user_cold_start_map_.shape[0] == 0
    a = coll.fold_in({}, user_attributes=users.loc[uid]).factors
    coll.user_cold_start_map_ = model.user_cold_start_map_  # same shapes: the map now decides
    b = coll.fold_in({}, user_attributes=users.loc[uid]).factors
    del coll.user_cold_start_map_
    np.testing.assert_array_equal(coll.fold_in({}, user_attributes=users.loc[uid]).factors, a)
    assert np.abs(a - b).sum() > 0


@pytest.mark.parametrize("bad", [dict(user_cold_start="ridge"), dict(item_cold_start=None),
                                 dict(cold_start_regularization=-1.0)])
def test_cold_start_parameters_are_checked(bad):
    r = Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0])
    with pytest.raises(ValueError, match=next(iter(bad))):
        CMF(**bad).fit(r)


@pytest.mark.realdata
def test_ml100k_cold_users_beat_the_item_bias_baseline():
    """Issue 13: on ml-100k with 20% of the users held out entirely, CMF's predictions from their
    attributes (age, gender, occupation) must beat the item-bias baseline by a margin. Seed 1:
    measured default 0.9945 vs baseline 1.0095 (-0.0150); the attribute block alone
    (user_cold_start="collective") 1.0033 (-0.0062) fails the 0.01 margin, as it tied before."""
    folder = dataset_dir("ml-100k")
    ds = mfrec.load_dataset("ml-100k", data_dir=folder.parent, download=False, progress=False)
    users, items = ds.users[["age", "gender", "occupation"]], ds.items[["genres", "year"]]
    warm, cold = mfrec.split.holdout_users(ds.ratings, 0.2, seed=1)
    assert not set(np.unique(cold.raw_users)) & set(np.unique(warm.raw_users))
    cmf = CMF().fit(warm, user_attributes=users.loc[np.unique(warm.raw_users)],
                    item_attributes=items.loc[np.unique(warm.raw_items)])
    cdf = cold.to_dataframe().reset_index(drop=True)
    pred = np.empty(len(cdf))
    for uid, g in cdf.groupby("user"):
        pred[g.index.to_numpy()] = cmf.predict_new(g["item"].to_numpy(), user_attributes=users.loc[uid])
    cold_rmse = rmse(pred, cdf["rating"])
    base_rmse = rmse(Baseline().fit(warm).predict(cdf["user"], cdf["item"]), cdf["rating"])
    mean_rmse = rmse(np.full(len(cdf), warm.values.mean()), cdf["rating"])
    assert cold_rmse < base_rmse - 0.01 < mean_rmse, (
        f"cold users from attributes: CMF {cold_rmse:.4f}, item-bias baseline {base_rmse:.4f}, "
        f"global mean {mean_rmse:.4f}: the attributes no longer help cold users by 0.01")




@pytest.mark.parametrize("value", ["lu", "", None, 3, "CG"])
def test_solver_choices_are_checked(value, tiny):
    with pytest.raises(ValueError, match="solver must be one of"):
        CMF(solver=value).fit(tiny)


def test_attribute_tables_that_name_no_training_row_are_said_so():
    full = Ratings.from_arrays([1, 1, 2, 2, 3, 3], [10, 11, 10, 12, 11, 12], [4, 3, 5, 2, 3, 4])
    renamed = pd.DataFrame({"g": ["a", "b", "a"]}, index=pd.Index(["u1", "u2", "u3"]))
    with pytest.raises(DataError, match="indexed by 'u1'.*training user ids are integers"):
        CMF(factors=2, iterations=2, threads=1).fit(full, user_attributes=renamed)
    with pytest.raises(DataError, match="no rows"):
        CMF(factors=2, iterations=2, threads=1).fit(full, user_attributes=renamed.iloc[:0])
    others = pd.DataFrame({"g": ["a", "b"]}, index=pd.Index([7, 8]))
    with pytest.warns(UserWarning, match="none of the 2 rows of user_attributes is a training user"):
        CMF(factors=2, iterations=2, threads=1).fit(full, user_attributes=others)
