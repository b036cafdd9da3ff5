"""The in-place implicit-ALS CG kernel against a NumPy reference of the same steps."""

import numba
import numpy as np
import pytest

from mfrec.kernels.als import implicit_half_step


def _reference(indptr, indices, conf, Y, X0, lam, steps):
    """Per row: A = Y^T Y + lam I + sum (c-1) y y^T, b = sum c y; ``steps`` CG steps from X0."""
    X = X0.astype(np.float64).copy()
    YtY = Y.T @ Y
    sse = 0.0
    for u in range(len(indptr) - 1):
        cols, c = indices[indptr[u]:indptr[u + 1]], conf[indptr[u]:indptr[u + 1]]
        if len(cols) == 0:
            X[u] = 0.0
            continue
        Yu = Y[cols]
        A = YtY + lam * np.eye(Y.shape[1]) + (Yu.T * (c - 1.0)) @ Yu
        b = Yu.T @ c
        x = X[u]
        r = b - A @ x
        d = r.copy()
        rs = r @ r
        for _ in range(steps):
            if rs < 1e-20:
                break
            Ad = A @ d
            a = rs / (d @ Ad)
            x = x + a * d
            r = r - a * Ad
            rs_new = r @ r
            d = r + (rs_new / rs) * d
            rs = rs_new
        X[u] = x
        sse += float(np.sum((1.0 - Yu @ x) ** 2))
    return X, sse


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("use_cg,steps", [(True, 3), (True, 1), (False, 0)])
def test_implicit_half_step_matches_reference_and_reports_its_error(threads, use_cg, steps):
    rng = np.random.default_rng(7)
    n_rows, n_cols, k = 30, 25, 6
    dense = rng.random((n_rows, n_cols)) < 0.3
    dense[4] = False  # a row without items
    indptr = np.concatenate([[0], np.cumsum(dense.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(dense)[1].astype(np.int32)
    conf = 1.0 + 3.0 * rng.random(len(indices))
    Y = rng.normal(0, 0.3, (n_cols, k))
    X0 = rng.normal(0, 0.3, (n_rows, k))
    lam = 0.5
    if use_cg:
        want, want_sse = _reference(indptr, indices, conf, Y, X0, lam, steps)
    else:
        want, want_sse = _reference(indptr, indices, conf, Y, X0, lam, 200)  # CG converged = exact
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        X = X0.copy()
        sse = implicit_half_step(indptr, indices, conf, Y, Y.T @ Y, X, lam, use_cg, steps, True)
        X2 = X0.copy()
        none = implicit_half_step(indptr, indices, conf, Y, Y.T @ Y, X2, lam, use_cg, steps, False)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_allclose(X, want, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sse, want_sse, rtol=1e-6)
    np.testing.assert_array_equal(X2, X)  # skipping the loss changes nothing else
    assert none == 0.0
    assert np.all(X[4] == 0.0)
