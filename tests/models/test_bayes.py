"""BayesianMF: the model contract; the Gibbs kernel's conditional posterior, the hyperparameter draws, fold-in and
explanations against direct NumPy computations. Small data, no timing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import mfrec
from mfrec import BayesianMF
from mfrec.kernels.bayes import gibbs_half_step
from mfrec.models.bayes import sample_normal_wishart, sample_wishart
from mfrec.testing import ModelContract


class TestBayesianMF(ModelContract):
    model = BayesianMF
    small = {"factors": 3, "iterations": 6, "burn_in": 2}


def test_wishart_draws_have_mean_dof_times_scale():
    rng = np.random.default_rng(0)
    scale = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 2.0]])
    draws = np.stack([sample_wishart(scale, 7.0, rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), 7.0 * scale, atol=0.15)
    assert all(np.all(np.linalg.eigvalsh(d) > 0) for d in draws[:50])


def test_normal_wishart_posterior_concentrates_on_the_rows_mean_and_precision():
    rng = np.random.default_rng(1)
    cov = np.array([[0.5, 0.1], [0.1, 0.2]])
    X = rng.multivariate_normal([1.0, -0.5], cov, size=20000)
    mean, precision = sample_normal_wishart(X, rng)
    np.testing.assert_allclose(mean, [1.0, -0.5], atol=0.03)
    np.testing.assert_allclose(np.linalg.inv(precision), cov, atol=0.03)


def _dense_posterior(rows, cols, vals, Y, other_bias, mu, alpha, lam_b, m0, L0):
    X = np.hstack([np.ones((len(cols), 1)), Y[cols]])
    t = vals - mu - other_bias[cols]
    A = alpha * X.T @ X
    A[0, 0] += lam_b
    A[1:, 1:] += L0
    rhs = alpha * X.T @ t
    rhs[1:] += L0 @ m0
    return A, np.linalg.solve(A, rhs)


def test_gibbs_half_step_draws_from_the_conditional_posterior():
    rng = np.random.default_rng(2)
    n_rows, n_cols, k = 3, 12, 3
    M = sp.random(n_rows, n_cols, density=0.6, random_state=3, format="csr")
    M.data = rng.uniform(1, 5, M.nnz)
    M.sort_indices()
    Y = rng.normal(0, 0.5, (n_cols, k))
    ob = rng.normal(0, 0.3, n_cols)
    m0, L0 = rng.normal(0, 0.2, k), np.eye(k) * 2.0 + 0.1
    args = (M.indptr, M.indices, M.data, Y, ob, 3.0, 1.5, 4.0, m0, L0)
    # zero noise: the draw is the posterior mean
    X, b = np.zeros((n_rows, k)), np.zeros(n_rows)
    gibbs_half_step(*args, np.zeros((n_rows, k + 1)), X, b)
    for r in range(n_rows):
        cols = M.indices[M.indptr[r]:M.indptr[r + 1]]
        A, mean = _dense_posterior(r, cols, M.data[M.indptr[r]:M.indptr[r + 1]], Y, ob, 3.0, 1.5, 4.0, m0, L0)
        np.testing.assert_allclose(np.r_[b[r], X[r]], mean, rtol=1e-9, atol=1e-10)
    # many draws: their covariance is the inverse posterior precision
    draws = []
    for _ in range(6000):
        gibbs_half_step(*args, rng.standard_normal((n_rows, k + 1)), X, b)
        draws.append(np.r_[b[0], X[0]])
    cols = M.indices[M.indptr[0]:M.indptr[1]]
    A, mean = _dense_posterior(0, cols, M.data[M.indptr[0]:M.indptr[1]], Y, ob, 3.0, 1.5, 4.0, m0, L0)
    np.testing.assert_allclose(np.cov(np.array(draws).T), np.linalg.inv(A), atol=0.01)
    np.testing.assert_allclose(np.mean(draws, axis=0), mean, atol=0.02)


def test_empty_rows_get_zero_factors():
    M = sp.csr_matrix((2, 4))
    X, b = np.ones((2, 2)), np.ones(2)
    gibbs_half_step(M.indptr, M.indices, M.data, np.ones((4, 2)), np.zeros(4), 3.0, 1.0, 1.0, np.zeros(2),
                    np.eye(2), np.ones((2, 3)), X, b)
    assert not X.any() and not b.any()


@pytest.fixture(scope="module")
def fitted():
    r = mfrec.synthetic(60, 40, 1200, factors=3, seed=5)
    return BayesianMF(factors=3, iterations=10, burn_in=6, threads=1).fit(r), r


def test_prediction_averages_the_kept_draws(fitted):
    model, r = fitted
    assert model.n_draws_ == 4
    assert model.user_factors_.shape == (r.n_users, 3 * 4) and model.item_factors_.shape == (r.n_items, 3 * 4)
    assert model.history_.shape[0] == 10


def test_fold_in_is_the_average_of_per_draw_posterior_means(fitted):
    model, r = fitted
    ratings = {r.items[0]: 4.0, r.items[3]: 2.0, r.items[7]: 5.0}
    fold = model.fold_in(ratings)
    idx = model.item_map_.lookup(list(ratings))
    vals = np.array(list(ratings.values()))
    S, k = model.n_draws_, 3
    biases, parts = [], []
    for s in range(S):
        Qs = model.item_factors_[:, s * k:(s + 1) * k].astype(np.float64) * np.sqrt(S)
        _, mean = _dense_posterior(0, idx, vals, Qs, model.sample_item_bias_[s].astype(np.float64),
                                   model.global_mean_, model.sample_noise_precision_[s],
                                   model.sample_bias_precision_[s], model.sample_prior_mean_[s],
                                   model.sample_prior_precision_[s])
        biases.append(mean[0])
        parts.append(mean[1:] / np.sqrt(S))
    assert fold.bias == pytest.approx(np.mean(biases), rel=1e-6)
    np.testing.assert_allclose(fold.factors, np.concatenate(parts), rtol=1e-4, atol=1e-6)


def test_explanations_sum_to_the_rating_driven_part_of_the_score(fitted):
    model, r = fitted
    ratings = {r.items[1]: 5.0, r.items[2]: 1.0}
    fold = model.fold_in(ratings)
    chosen = np.arange(5, 10)
    contrib = model._contributions(fold, chosen)
    # the part of each score that comes from the prior mean alone: fold-in with zero targets
    S, k = model.n_draws_, 3
    A, alpha, X = fold.solve
    prior_rhs = np.zeros((S, k + 1))
    prior_rhs[:, 1:] = np.einsum("sij,sj->si", model.sample_prior_precision_, model.sample_prior_mean_)
    w0 = np.linalg.solve(A, prior_rhs[:, :, None])[:, 1:, 0] / np.sqrt(S)
    personal = model.item_factors_[chosen].astype(np.float64) @ fold.factors.astype(np.float64)
    prior_part = model.item_factors_[chosen].astype(np.float64) @ w0.reshape(-1)
    np.testing.assert_allclose(contrib.sum(axis=1), personal - prior_part, atol=1e-4)


def test_invalid_burn_in_and_noise_precision():
    r = mfrec.synthetic(20, 10, 100, factors=2, seed=1)
    with pytest.raises(ValueError, match="burn_in"):
        BayesianMF(iterations=5, burn_in=5).fit(r)
    with pytest.raises(ValueError, match="noise_precision"):
        BayesianMF(noise_precision=0.0).fit(r)
