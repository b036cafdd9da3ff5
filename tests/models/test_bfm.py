"""BayesianFM: the model contract; the published factor form equals the FM formula, Gibbs conditionals against a dense
reference, reproducibility, no leakage, fold-in, thinning, attributes, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.kernels import fm as K
from mfrec.models.bfm import BayesianFM
from mfrec.testing import ModelContract


class TestBayesianFM(ModelContract):
    model = BayesianFM
    small = {"factors": 3, "iterations": 4, "burn_in": 2}


def _tiny(seed: int = 0) -> mfrec.Ratings:
    return mfrec.synthetic(14, 12, 50, factors=2, seed=seed, min_user_ratings=2)


def _dense_design(train: mfrec.Ratings, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Rows ``[user id, rated set / sqrt|N(u)|, item id, rater set / sqrt|R(i)|]``, built by hand."""
    seen = train.seen.toarray().astype(float)
    n_u, n_i = seen.shape
    uc, ic = seen.sum(1), seen.sum(0)
    X = np.zeros((len(users), 2 * (n_u + n_i)))
    for r, (u, i) in enumerate(zip(users, items)):
        X[r, u] = uc[u] > 0
        X[r, n_u:n_u + n_i] = seen[u] / np.sqrt(max(uc[u], 1))
        X[r, n_u + n_i + i] = ic[i] > 0
        X[r, n_u + 2 * n_i:] = seen[:, i] / np.sqrt(max(ic[i], 1))
    return X


def _fm(X: np.ndarray, w0: float, w: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The FM, every pair of distinct features: w0 + X w + sum_{l<m} <v_l, v_m> x_l x_m."""
    out = np.full(len(X), w0) + X @ w
    for r, x in enumerate(X):
        nz = np.flatnonzero(x)
        for a in range(len(nz)):
            for b in range(a + 1, len(nz)):
                out[r] += x[nz[a]] * x[nz[b]] * (V[nz[a]] @ V[nz[b]])
    return out


def _record_kept_states(monkeypatch) -> list:
    """Patch BayesianFM's trainer so every kept sweep's sampler state is copied into the returned list."""
    from mfrec.models.bfm import _FMTrainer

    states: list = []
    orig = _FMTrainer._keep

    def keep(self, epoch):
        states.append(copy.deepcopy(self._state))
        orig(self, epoch)

    monkeypatch.setattr(_FMTrainer, "_keep", keep)
    return states


def test_predictions_equal_the_direct_fm_formula(monkeypatch):
    train = _tiny()
    states = _record_kept_states(monkeypatch)
    m = BayesianFM(factors=3, iterations=3, burn_in=2, max_draws=1, dtype="float64").fit(train)
    st = states[-1]
    u, i = np.meshgrid(np.arange(train.n_users), np.arange(train.n_items), indexing="ij")
    u, i = u.ravel(), i.ravel()
    X = _dense_design(train, u, i)
    w = np.concatenate([st["wU"], st["wI"]])
    V = np.vstack([st["VU"], st["VI"]])
    want = _fm(X, st["w0"], w, V)
    got = m._predict_indices(u, i, clip=False)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_gibbs_draws_match_dense_conditionals():
    """One factor sweep (and one linear pass) of the kernels equals drawing each coordinate, in
    order, from its conditional N(mean, 1/prec) computed on the dense design."""
    train = _tiny(1)
    m = BayesianFM(factors=2, iterations=2, burn_in=1, dtype="float64")
    m.validate_params()
    m = m._trainer(train, np.random.default_rng(0), np.dtype(np.float64), None)  # the fit's scratch state
    st, U, I = m._state, m._U, m._I
    rng = np.random.default_rng(5)
    k = 2
    mu_u, lam_u = rng.normal(size=(U.n_groups, k)) * 0.1, rng.uniform(0.5, 2, (U.n_groups, k))
    mu_i, lam_i = rng.normal(size=(I.n_groups, k)) * 0.1, rng.uniform(0.5, 2, (I.n_groups, k))
    nU, nI = rng.standard_normal((k, U.B.shape[1])), rng.standard_normal((k, I.B.shape[1]))
    alpha = 1.7
    X = _dense_design(train, train.user_indices, train.item_indices)
    y = train.values.astype(float)
    DU = U.B.shape[1]
    w = np.concatenate([st["wU"], st["wI"]])
    V = np.vstack([st["VU"], st["VI"]]).copy()
    group = np.concatenate([U.group, I.group])
    mus = [mu_u, mu_i]
    lams = [lam_u, lam_i]
    for f in range(k):
        for l in range(V.shape[0]):
            side = 0 if l < DU else 1
            g = group[l]
            if not X[:, l].any():
                V[l, f] = 0.0
                continue
            e = y - _fm(X, st["w0"], w, V)
            h = X[:, l] * (X @ V[:, f] - X[:, l] * V[l, f])
            prec = lams[side][g, f] + alpha * h @ h
            mean = (alpha * h @ (e + V[l, f] * h) + lams[side][g, f] * mus[side][g, f]) / prec
            z = nU[f, l] if side == 0 else nI[f, l - DU]
            V[l, f] = mean + z / np.sqrt(prec)
    K.factor_sweep(U.colptr, U.colrows, U.colvals, U.group, st["VU"], mu_u, lam_u, U.counts, U.ent_indptr, U.pos,
                   m._users, I.colptr, I.colrows, I.colvals, I.group, st["VI"], mu_i, lam_i, I.counts, I.ent_indptr,
                   I.pos, m._items, alpha, st["qU"], st["qI"], m._e, nU, nI)
    np.testing.assert_allclose(np.vstack([st["VU"], st["VI"]]), V, rtol=1e-8, atol=1e-10)
    e_incremental = m._e.copy()
    m._refresh()  # recomputed from scratch: the incremental residuals had no drift
    np.testing.assert_allclose(e_incremental, m._e, atol=1e-9)
    np.testing.assert_allclose(m._e, y - _fm(X, st["w0"], w, V), atol=1e-9)
    # linear weights of the user side
    mu_w, lam_w = np.array([0.1, -0.2]), np.array([1.5, 0.7])
    z = rng.standard_normal(DU)
    w_ref = w.copy()
    for l in range(DU):
        if not X[:, l].any():
            w_ref[l] = 0.0
            continue
        e = y - _fm(X, st["w0"], w_ref, V)
        h = X[:, l]
        prec = lam_w[U.group[l]] + alpha * h @ h
        mean = (alpha * h @ (e + w_ref[l] * h) + lam_w[U.group[l]] * mu_w[U.group[l]]) / prec
        w_ref[l] = mean + z[l] / np.sqrt(prec)
    E0 = np.empty(len(U.counts))
    K.residual_sums(U.ent_indptr, U.pos, m._e, E0)
    lin = U.B @ st["wU"]
    K.sample_side_linear(U.colptr, U.colrows, U.colvals, U.group, st["wU"], mu_w, lam_w, alpha, U.counts, E0, lin, z)
    np.testing.assert_allclose(st["wU"], w_ref[:DU], rtol=1e-8, atol=1e-10)


def test_validation_ratings_do_not_leak_into_the_features():
    """The implicit features come from the training ratings only: validation sets that differ
    (other users' items, other values) leave every draw unchanged."""
    full = mfrec.synthetic(30, 20, 300, factors=2, seed=2)
    train, val = mfrec.split.random_split(full, 0.2, seed=0)
    other = mfrec.Ratings.from_dataframe(val.to_dataframe().assign(rating=1.0))
    a = BayesianFM(factors=2, iterations=5, burn_in=2, threads=1).fit(train, val)
    b = BayesianFM(factors=2, iterations=5, burn_in=2, threads=1).fit(train, other)
    c = BayesianFM(factors=2, iterations=5, burn_in=2, threads=1).fit(train)
    for m in (b, c):
        np.testing.assert_array_equal(a.user_factors_, m.user_factors_)
        np.testing.assert_array_equal(a.item_bias_, m.item_bias_)
    assert "validation_rmse" in a.history_


def test_planted_implicit_structure_is_recovered():
    """Planted low-rank ratings, missing not at random (users rate the items they like): the
    held-out error falls far below the ratings' spread, with and without implicit features."""
    rng = np.random.default_rng(0)
    n_u, n_i, k = 300, 120, 2
    P, Q = rng.normal(size=(n_u, k)), rng.normal(size=(n_i, k))
    score = P @ Q.T
    prob = 1 / (1 + np.exp(-2.5 * score - 0.5))
    mask = rng.uniform(size=score.shape) < 0.35 * prob
    u, i = np.nonzero(mask)
    r = np.clip(np.round(3 + 0.8 * score[u, i] + rng.normal(0, 0.3, len(u))), 1, 5)
    full = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": u, "item": i, "rating": r}))
    train, test = mfrec.split.random_split(full, 0.2, seed=1)
    with_imp = BayesianFM(factors=4, iterations=60, burn_in=20, threads=1).fit(train).score(test)
    without = BayesianFM(factors=4, iterations=60, burn_in=20, implicit=False, threads=1).fit(train).score(test)
    spread = float(np.std(test.values))
    assert with_imp < 0.75 * spread
    assert without < 0.75 * spread
    assert abs(with_imp - without) < 0.05


def test_thinning_bounds_the_stored_draws_and_biases_average_all_sweeps():
    train = _tiny()
    m = BayesianFM(factors=2, iterations=23, burn_in=3, max_draws=4).fit(train)
    assert m.n_draws_ == 4  # 20 kept sweeps, every 5th stored
    assert m.user_factors_.shape == (train.n_users, 2 * 4)
    assert m.sample_implicit_factors_.shape == (4, train.n_items, 2)


def test_each_stored_draw_is_the_mean_of_its_thinning_group(monkeypatch):
    """19 kept sweeps, max_draws=4: groups of 5, 5, 5, 4 consecutive sweeps, each stored as its
    mean (not every 5th sweep alone, which wasted 4/5 of the samples on the factor part)."""
    train = _tiny()
    states = _record_kept_states(monkeypatch)
    m = BayesianFM(factors=2, iterations=22, burn_in=3, max_draws=4, dtype="float64").fit(train)
    assert len(states) == 19 and m.n_draws_ == 4
    groups = [states[0:5], states[5:10], states[10:15], states[15:19]]
    want_u = np.hstack([np.mean([s["qU"] for s in g], axis=0) for g in groups]) / 2.0
    want_i = np.hstack([np.mean([s["qI"] for s in g], axis=0) for g in groups]) / 2.0
    np.testing.assert_allclose(m.user_factors_, want_u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.item_factors_, want_i, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.sample_noise_precision_, [np.mean([s["alpha"] for s in g]) for g in groups])
    np.testing.assert_allclose(m.item_bias_, np.mean([s["bI"] for s in states], axis=0), rtol=1e-12, atol=1e-12)


def test_validation_during_fit_does_not_change_the_stored_draws():
    """With ``validation`` the model is finalized after every sweep (open group included): the
    final draws must equal those of the same fit without validation."""
    train = _tiny()
    fit, val = mfrec.split.random_split(train, test_size=0.2, seed=1)
    a = BayesianFM(factors=2, iterations=12, burn_in=2, max_draws=3, seed=2).fit(fit)
    b = BayesianFM(factors=2, iterations=12, burn_in=2, max_draws=3, seed=2).fit(fit, val)
    assert a.n_draws_ == b.n_draws_ == 3 and "validation_rmse" in b.history_.columns
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.sample_implicit_factors_, b.sample_implicit_factors_)


def test_fold_in_recommend_new_and_save_load(tmp_path):
    train = mfrec.synthetic(60, 40, 900, factors=2, seed=3)
    m = BayesianFM(factors=3, iterations=30, burn_in=10, max_draws=10).fit(train)
    df = train.to_dataframe()
    user = df["user"].value_counts().index[0]
    mine = df[df["user"] == user]
    guest = dict(zip(mine["item"], mine["rating"]))
    fold = m.fold_in(guest)
    assert fold.factors.shape == (m.user_factors_.shape[1],)
    # the guest with a training user's ratings is scored much like that user
    u = m.user_map_.lookup([user])[0]
    known = m.item_bias_ + m.item_factors_ @ m.user_factors_[u]
    as_guest = m.item_bias_ + m.item_factors_ @ fold.factors
    assert np.corrcoef(known, as_guest)[0, 1] > 0.8
    # rating values matter for a guest (not only which items were rated)
    low = m.fold_in({j: 1.0 for j in guest})
    high = m.fold_in({j: 5.0 for j in guest})
    assert high.bias > low.bias
    rec = m.recommend_new(guest, n=5, explain=2)
    assert len(rec) == 5 and not set(rec["item"]) & set(guest)
    assert "because" in rec
    path = m.save(tmp_path / "bfm.mfrec")
    back = mfrec.load_model(path)
    np.testing.assert_allclose(back.predict(df["user"][:50], df["item"][:50]), m.predict(df["user"][:50], df["item"][:50]))
    pd.testing.assert_frame_equal(back.recommend_new(guest, n=5), m.recommend_new(guest, n=5))
    np.testing.assert_allclose(back.fold_in(guest).factors, fold.factors, rtol=1e-5)


def test_attribute_tables_join_the_features():
    train = _tiny()
    users = pd.DataFrame({"age": np.arange(train.n_users) * 3.0,
                          "job": ["a", "b"] * (train.n_users // 2) + ["a"] * (train.n_users % 2)},
                         index=train.user_map.ids)
    items = pd.DataFrame({"genre": ["x", "y", "z"] * 3 + ["x"] * (train.n_items - 9)}, index=train.item_map.ids)
    plain = BayesianFM(factors=2, iterations=5, burn_in=2).fit(train)
    side = BayesianFM(factors=2, iterations=5, burn_in=2).fit(train, user_attributes=users, item_attributes=items)
    assert side.user_factors_.shape == plain.user_factors_.shape
    assert not np.allclose(side.user_factors_, plain.user_factors_)
    with pytest.raises(TypeError, match="user_attributes"):
        BayesianFM(iterations=3, burn_in=1).fit(train, user_attributes=[1, 2])


@pytest.mark.parametrize("params, match", [(dict(iterations=5, burn_in=5), "burn_in"),
                                           (dict(max_draws=0), "max_draws"), (dict(implicit="yes"), "implicit"),
                                           (dict(noise_precision=-1.0), "noise_precision")])
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        BayesianFM(**params).fit(_tiny())


def test_registered_for_the_cli():
    from mfrec.models import MODEL_NAMES

    assert MODEL_NAMES["bayesian-fm"] is BayesianFM
    assert mfrec.BayesianFM is BayesianFM


@pytest.mark.realdata
def test_u1_beats_bayesian_mf_with_a_modest_budget():
    """ml-100k u1 with the implicit features: 60 sweeps (~3 s on a quiet core) already beat
    BayesianMF's best u1 figure (0.9051 tuned, 0.9068 defaults); 200 sweeps reach ~0.893."""
    from tests.conftest import dataset_dir

    folder = dataset_dir("ml-100k")
    ds = mfrec.load_dataset("ml-100k", data_dir=folder.parent, download=False, progress=False)
    train, test = ds.official_split("u1")
    rmse = BayesianFM(iterations=60, burn_in=20).fit(train).score(test)
    assert rmse < 0.9
    ids_only = BayesianFM(iterations=60, burn_in=20, implicit=False).fit(train).score(test)
    assert rmse < ids_only - 0.01  # the rated-set / rater-set features carry the gain (~0.02)


def test_cli_evaluate_and_tune(tmp_path):
    from typer.testing import CliRunner

    from mfrec.cli import app

    train = mfrec.synthetic(40, 25, 400, factors=2, seed=1)
    train.to_dataframe()[["user", "item", "rating"]].to_csv(tmp_path / "r.csv", index=False)
    res = CliRunner().invoke(app, ["train", "--ratings", str(tmp_path / "r.csv"), "--model", "bayesian-fm",
                                   "--iterations", "6", "--param", "burn_in=2", "--factors", "2",
                                   "--out", str(tmp_path / "m.mfrec"), "-q"])
    assert res.exit_code == 0, res.output
    m = mfrec.load_model(tmp_path / "m.mfrec")
    assert type(m) is BayesianFM and m.n_draws_ == 4
    fit_part, test = mfrec.split.random_split(train, 0.2, seed=0)
    scores = mfrec.evaluate(BayesianFM(factors=2, iterations=6, burn_in=2).fit(fit_part), test)
    assert scores["rmse"] > 0
    result = mfrec.tune(BayesianFM, fit_part, {"factors": [2, 3], "iterations": [6], "burn_in": [2]},
                        trials=None, method="grid", validation=0.2)
    assert result.best_params["factors"] in (2, 3)


def test_attribute_tables_get_the_checks_cmf_makes():
    """BayesianFM fitted silently on tables indexed by 0.5, by tuples, with no rows or no training
    id; a column MultiIndex was dropped (CMF too) with a warning that its columns were unseen."""
    import warnings

    import mfrec
    from mfrec.errors import DataError

    r = mfrec.synthetic(60, 40, 600, seed=0)
    users = pd.DataFrame({"age": np.arange(60) % 50 + 18.0}, index=np.arange(60))
    fast = dict(factors=2, iterations=3, burn_in=1, seed=0, threads=1)
    for table, match in ((users.set_axis(np.arange(60) + 0.5), "indexed by 0.5"), (users.iloc[:0], "no rows"),
                         (users[[]], "no columns"),
                         (pd.concat([users, users.iloc[:1]]), "more than once")):
        with pytest.raises(DataError, match=match):
            mfrec.BayesianFM(**fast).fit(r, user_attributes=table)
    with pytest.warns(UserWarning, match="none of the 60 rows of user_attributes is a training user"):
        mfrec.BayesianFM(**fast).fit(r, user_attributes=users.set_axis(np.arange(5000, 5060)))
    tuples = users.assign(g="x").set_axis(pd.MultiIndex.from_tuples([("a", "age"), ("a", "g")]), axis=1)
    for cls, extra in ((mfrec.BayesianFM, fast), (mfrec.CMF, dict(factors=2, iterations=2, seed=0, threads=1))):
        with pytest.raises(DataError, match="flatten the column MultiIndex"):
            cls(**extra).fit(r, user_attributes=tuples)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mfrec.BayesianFM(**fast).fit(r, user_attributes=users.set_axis([str(i) for i in range(60)]))  # "12" is 12
