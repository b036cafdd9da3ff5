"""A fitted model stays consistent when its parameters change, it is refitted, or it folds in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.errors import FoldInError, InvalidParameterError, ModelFileError


@pytest.fixture(scope="module")
def data():
    return mfrec.synthetic(120, 60, 2500, seed=3)


def _guest(model, n=2):
    return {i: 4.0 for i in model.items_[:n]}


def test_set_params_on_a_fitted_model_checks_at_once_and_keeps_the_old_value(data, tmp_path):
    m = mfrec.ALS(factors=4, iterations=2, threads=1).fit(data)
    path = tmp_path / "m.mfrec"
    m.save(path)
    for bad in ({"threads": 0}, {"regularization": -5.0}, {"solver": "qr"}):
        key = next(iter(bad))
        before = getattr(m, key)
        with pytest.raises(InvalidParameterError, match=key):
            m.set_params(**bad)
        assert getattr(m, key) == before
    m.set_params(threads=2, regularization=0.5)  # valid values are taken
    assert m.regularization == 0.5
    mfrec.ALS().set_params(threads=0)  # an unfitted model is checked at fit (scikit-learn's convention)


def test_save_refuses_invalid_parameters_and_keeps_the_good_file(data, tmp_path):
    m = mfrec.BPR(factors=4, iterations=2, threads=1).fit(data)
    path = tmp_path / "m.mfrec"
    m.save(path)
    good = path.read_bytes()
    m.learning_rate = "fast"  # an attribute set directly, past set_params
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        m.save(path)
    assert path.read_bytes() == good
    mfrec.load_model(path)


def test_refit_keeps_the_item_table_aligned_to_the_new_items():
    a = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [100, 101, 100, 102, 101],
                                                   "rating": [4.0, 3.0, 5.0, 2.0, 4.0]}))
    b = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4], "item": [200, 101, 200, 201, 202, 203, 204],
                                                   "rating": [4.0, 3.0, 5.0, 2.0, 4.0, 1.0, 3.0]}))
    table = pd.DataFrame({"title": ["A100", "A101", "A102", "B200"]}, index=[100, 101, 102, 200])
    m = mfrec.ALS(factors=2, iterations=2, threads=1).fit(a).attach_items(table)
    m.fit(b)
    recs = m.recommend(1, n=10, exclude_seen=False).set_index("item")
    assert recs.loc[101, "title"] == "A101"
    # the table kept the first fit's items only (attach_items keeps the model's items)
    assert recs.loc[[200, 201, 202, 203, 204], "title"].isna().all()
    assert len(m.item_info_) == len(m.items_)


def test_implicit_fold_in_follows_the_regularization_in_memory_and_after_load(data, tmp_path):
    m = mfrec.ImplicitALS(factors=6, iterations=3, threads=1).fit(data)
    g = _guest(m, 5)
    m.recommend_new(g)  # fills the cache
    m.set_params(regularization=500.0)
    mem = m.recommend_new(g, n=5)
    m.save(tmp_path / "i.mfrec")
    disk = mfrec.load_model(tmp_path / "i.mfrec").recommend_new(g, n=5)
    assert mem["item"].tolist() == disk["item"].tolist()
    np.testing.assert_allclose(mem["score"], disk["score"], rtol=1e-5, atol=1e-7)
    m.regularization = 10.0  # an attribute set directly: the cache follows it too
    again = m.recommend_new(g, n=5)
    m.set_params(regularization=10.0)
    np.testing.assert_allclose(again["score"], m.recommend_new(g, n=5)["score"], rtol=1e-6)


def test_numpy_dtype_forms_save_and_load(data, tmp_path):
    for form in (np.float32, np.dtype("float64"), "float32"):
        m = mfrec.BPR(factors=4, iterations=2, threads=1, dtype=form).fit(data)
        m.save(tmp_path / "d.mfrec")
        back = mfrec.load_model(tmp_path / "d.mfrec")
        assert np.dtype(back.dtype) == np.dtype(form) and back.item_factors_.dtype == np.dtype(form)
    for bad in (None, np.float32(1.0), 1.0):
        with pytest.raises(InvalidParameterError, match="dtype"):
            mfrec.BPR(dtype=bad).fit(data)


@pytest.mark.parametrize("make", [
    lambda: mfrec.ALS(regularization=0, factors=4, iterations=2, threads=1),
    lambda: mfrec.CMF(regularization=0, factors=4, iterations=2, threads=1),
])
def test_a_singular_new_user_system_is_a_fold_in_error(data, make):
    m = make().fit(data)
    g = _guest(m, 2)
    with pytest.raises(FoldInError, match="cannot fold in a new user with 2 rating"):
        m.recommend_new(g)
    with pytest.raises(FoldInError):
        m.add_user(10**6, g)
    assert 10**6 not in m.user_map_


def test_bayesian_fold_in_uses_the_fitted_factors(data):
    m = mfrec.BayesianMF(factors=4, iterations=4, burn_in=2, threads=1).fit(data)
    g = _guest(m, 3)
    before = m.recommend_new(g, n=5, explain=1)
    m.set_params(factors=2)  # a refit would use it; the fitted arrays keep 4
    after = m.recommend_new(g, n=5, explain=1)
    pd.testing.assert_frame_equal(before, after)


def test_a_crafted_precision_is_refused_at_load(data, tmp_path):
    m = mfrec.BayesianMF(factors=3, iterations=4, burn_in=2, threads=1).fit(data)
    for name, value in (("sample_noise_precision_", 1e300), ("sample_bias_precision_", 1e300)):
        bad = mfrec.BayesianMF(factors=3, iterations=4, burn_in=2, threads=1).fit(data)
        getattr(bad, name)[...] = value
        bad.save(tmp_path / "b.mfrec")
        with pytest.raises(ModelFileError, match=name):
            mfrec.load_model(tmp_path / "b.mfrec")
    m.sample_prior_precision_[...] = -np.eye(m.sample_prior_precision_.shape[-1])
    m.save(tmp_path / "c.mfrec")
    with pytest.raises(ModelFileError, match="positive definite"):
        mfrec.load_model(tmp_path / "c.mfrec")
