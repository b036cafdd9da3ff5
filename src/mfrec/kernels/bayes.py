"""Gibbs-sampling kernel of `BayesianMF`: draw every row of one side from its conditional posterior.

For row ``u`` with rated columns ``j`` the unknowns are ``w = [b_u, x_u]`` and the design rows are
``[1, y_j]`` with targets ``t_j = r_uj - mu - b_j``. With noise precision ``alpha``, bias prior
``N(0, 1/lam_bias)`` and factor prior ``N(prior_mean, prior_precision^-1)`` the conditional
posterior of ``w`` is normal with precision and mean

    A = diag(lam_bias, prior_precision) + alpha sum_j [1, y_j] [1, y_j]^T
    m = A^-1 ([0, prior_precision prior_mean] + alpha sum_j [1, y_j] t_j)

and a draw is ``m + L^-T z`` (``A = L L^T``, ``z`` standard normal, supplied by the caller so the
result does not depend on the thread count).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mfrec.kernels.als import factored_solve

from mfrec.kernels.compile import KERNEL_OPTIONS as _OPTS
from mfrec.threads import parallel_rows


@njit(**_OPTS)
def _posterior(indptr, indices, data, row, Y, other_bias, mu, alpha, lam_bias, prior_mean, prior_precision):
    """Cholesky factor ``L`` of the row's posterior precision and its posterior mean (float64)."""
    k = Y.shape[1]
    d = k + 1
    A = np.zeros((d, d))
    rhs = np.zeros(d)
    A[0, 0] = lam_bias
    for a in range(k):
        s = 0.0
        for b in range(k):
            A[a + 1, b + 1] = prior_precision[a, b]
            s += prior_precision[a, b] * prior_mean[b]
        rhs[a + 1] = s
    x = np.empty(d)
    x[0] = 1.0
    for p in range(indptr[row], indptr[row + 1]):
        j = indices[p]
        for f in range(k):
            x[f + 1] = Y[j, f]
        t = alpha * (data[p] - mu - other_bias[j])
        for a in range(d):
            xa = alpha * x[a]
            rhs[a] += x[a] * t
            for b in range(a + 1):
                A[a, b] += xa * x[b]
    for a in range(d):
        for b in range(a + 1, d):
            A[a, b] = A[b, a]
    L = np.linalg.cholesky(A)
    mean = factored_solve(L, rhs)
    return L, mean


@njit(**_OPTS)
def _gibbs_rows(lo, hi, indptr, indices, data, Y, other_bias, mu, alpha, lam_bias, prior_mean, prior_precision,
                noise, X_out, bias_out, sse):
    """Rows ``lo..hi-1`` of `gibbs_half_step` (serial; `mfrec.threads.parallel_rows` runs chunks on threads)."""
    k = Y.shape[1]
    d = k + 1
    for row in range(lo, hi):
        if indptr[row + 1] == indptr[row]:
            bias_out[row] = 0.0
            for f in range(k):
                X_out[row, f] = 0.0
            continue
        L, mean = _posterior(indptr, indices, data, row, Y, other_bias, mu, alpha, lam_bias, prior_mean,
                             prior_precision)
        w = mean.copy()  # + L^-T z: solve L^T v = z
        v = np.empty(d)
        for r in range(d - 1, -1, -1):
            s = noise[row, r]
            for c in range(r + 1, d):
                s -= L[c, r] * v[c]
            v[r] = s / L[r, r]
        for r in range(d):
            w[r] += v[r]
        bias_out[row] = w[0]
        for f in range(k):
            X_out[row, f] = w[f + 1]
        acc = 0.0
        for p in range(indptr[row], indptr[row + 1]):
            j = indices[p]
            dot = 0.0
            for f in range(k):
                dot += w[f + 1] * Y[j, f]
            e = data[p] - mu - other_bias[j] - w[0] - dot
            acc += e * e
        sse[row] = acc


def gibbs_half_step(indptr, indices, data, Y, other_bias, mu, alpha, lam_bias, prior_mean, prior_precision,
                    noise, X_out, bias_out):
    """Draw every row of one side (``X_out``, ``bias_out`` in place) given the other side ``Y``.

    ``noise`` holds one standard-normal row of length ``k + 1`` per row. Rows without ratings get
    zero factors and bias (they predict like unknown ids). Returns the sum of squared errors of
    the drawn rows on their ratings.
    """
    n_rows = indptr.shape[0] - 1
    sse = np.zeros(n_rows)
    parallel_rows(_gibbs_rows, n_rows, indptr, indices, data, Y, other_bias, mu, alpha, lam_bias, prior_mean,
                  prior_precision, noise, X_out, bias_out, sse)
    return float(sse.sum())
