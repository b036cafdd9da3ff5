"""Collective matrix factorization kernels: ALS half-steps with attribute rows, attribute factors.

For row ``u`` (a user, or an item in the other half-step) with rated columns ``j`` and observed
attribute features ``c`` the unknowns are ``w = [b_u, x_u]`` and the ridge design stacks

    rating rows      [1, Y_j]               target  r_uj - mu - b_j
    attribute rows   sqrt(a) [0, C_c]       target  sqrt(a) (V_uc - m_c)

so one (k+1) x (k+1) system per row, ``(X^T X + diag(lam_b, lam, ..., lam)) w = X^T t``, is
solved exactly (Cholesky, float64) or by a few warm-started conjugate-gradient steps. A row with
no ratings keeps a zero bias (its bias column is all zero; the bias penalty is then 1 so the
system stays definite) and gets its factors from its attributes alone.

The attribute factors ``C_c`` are ridge regressions of each feature column on the row factors of
the rows where the feature is observed: ``(a X_o^T X_o + lam_c I) C_c = a X_o^T (V_oc - m_c)``.

With the bias in the attribute model (``CMF(attribute_bias=True)``) ``C`` has a leading column
for the bias: attribute rows are ``sqrt(a) [C_c0, C_c]``, and the attribute regressions use
``[b_u, x_u]``; then a row with attributes but no ratings gets a bias from its attributes too.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mfrec.kernels.als import cg_solve, chol_solve, residual_sse

from mfrec.kernels.compile import KERNEL_OPTIONS as _OPTS, specializations
from mfrec.threads import parallel_rows


@njit(**_OPTS)
def _design(indptr, indices, data, row, Y, other_bias, mu, V, M, means, C, sqrt_a, n_obs):
    """Stacked design (float64) and target of one row: rating rows then attribute rows.
    ``C`` has k columns, or k + 1 when the attribute model includes the bias (column 0)."""
    start = indptr[row]
    n = indptr[row + 1] - start
    k = Y.shape[1]
    X = np.empty((n + n_obs, k + 1), dtype=np.float64)  # every entry is written below
    t = np.empty(n + n_obs)
    for p in range(n):
        j = indices[start + p]
        X[p, 0] = 1.0
        for f in range(k):
            X[p, 1 + f] = Y[j, f]
        t[p] = data[start + p] - mu - other_bias[j]
    q = n
    off = C.shape[1] - k
    if n_obs > 0:
        for c in range(V.shape[1]):
            if M[row, c]:
                X[q, 0] = sqrt_a * C[c, 0] if off == 1 else 0.0
                for f in range(k):
                    X[q, 1 + f] = sqrt_a * C[c, off + f]
                t[q] = sqrt_a * (V[row, c] - means[c])
                q += 1
    return X, t


def _make_cmf_half_step(use_cg: bool):
    @njit(**_OPTS)
    def cmf_half_step_kernel(lo, hi, indptr, indices, data, Y, other_bias, mu, V, M, means, C, attr_weight,
                             X_out, bias_out, lam, lam_bias, cg_steps, sse_r, sse_a):
        """Rows ``lo..hi-1`` (serial; `mfrec.threads.parallel_rows` runs chunks on threads)."""
        k = Y.shape[1]
        p_feat = V.shape[1]
        use_attr = attr_weight > 0.0 and p_feat > 0
        sqrt_a = np.sqrt(attr_weight) if use_attr else 0.0
        for row in range(lo, hi):
            n = indptr[row + 1] - indptr[row]
            n_obs = 0
            if use_attr:
                for c in range(p_feat):
                    if M[row, c]:
                        n_obs += 1
            if n == 0 and n_obs == 0:
                for f in range(k):
                    X_out[row, f] = 0.0
                bias_out[row] = 0.0
                continue
            X, t = _design(indptr, indices, data, row, Y, other_bias, mu, V, M, means, C, sqrt_a, np.int64(n_obs))
            bias_free = n > 0 or (n_obs > 0 and C.shape[1] > k)  # else the bias column is all zero
            lam_vec = np.empty(k + 1)
            for f in range(k + 1):
                lam_vec[f] = lam
            lam_vec[0] = lam_bias if bias_free else 1.0
            if use_cg:
                w = np.empty(k + 1)
                w[0] = bias_out[row] if bias_free else 0.0
                for f in range(k):
                    w[1 + f] = X_out[row, f]
                w = cg_solve(X, t, lam_vec, w, cg_steps)
            else:
                A = X.T @ X
                for f in range(k + 1):
                    A[f, f] += lam_vec[f]
                w = chol_solve(A, X.T @ t)
            bias_out[row] = w[0]
            for f in range(k):
                X_out[row, f] = w[1 + f]
            sse_r[row] = residual_sse(X, t, w, np.int64(0), n)
            sse_a[row] = residual_sse(X, t, w, n, n + n_obs)

    return cmf_half_step_kernel


_CMF_HALF_STEP = specializations(_make_cmf_half_step)  # one kernel per solver: a fit compiles its own


def cmf_half_step(indptr, indices, data, Y, other_bias, mu, V, M, means, C, attr_weight,
                  X_out, bias_out, lam, lam_bias, use_cg, cg_steps, sse_out):
    """Solve every row of one side with its ratings and its observed attributes.

    ``indptr/indices/data``: the CSR ratings of this side; ``Y``, ``other_bias``: the other
    side's factors and biases; ``V``, ``M`` (rows x features, float64 / bool), ``means``, ``C``
    (features x k, or x (k+1) with the bias in the attribute model as column 0): this side's
    attributes and attribute factors (``V.shape[1] == 0`` or
    ``attr_weight == 0`` for none). ``X_out``, ``bias_out`` are updated in place;
    ``sse_out[0]`` gets the ratings' squared error, ``sse_out[1]`` the weighted attribute one.
    """
    n_rows = indptr.shape[0] - 1
    sse_r = np.zeros(n_rows)
    sse_a = np.zeros(n_rows)
    parallel_rows(_CMF_HALF_STEP[bool(use_cg)], n_rows, indptr, indices, data, Y, other_bias, mu, V, M, means, C,
                  float(attr_weight), X_out, bias_out, lam, lam_bias, int(cg_steps), sse_r, sse_a)
    sse_out[0] = sse_r.sum()
    sse_out[1] = sse_a.sum()


@njit(**_OPTS)
def attribute_factor_step(Xf, bias, V, M, means, attr_weight, lam, C_out):
    """Ridge of every attribute feature column on the row factors ``Xf`` over the rows where it is
    observed; ``C_out`` (features x k) updated in place. When ``C_out`` has k + 1 columns the
    regressors are ``[bias, Xf]`` (the bias in the attribute model). Returns the weighted
    attribute SSE.

    One Gram matrix of all rows serves every fully observed column; a column with a few missing
    rows subtracts theirs, a sparsely observed one gathers its rows.
    """
    n_rows, p_feat = V.shape
    kf = Xf.shape[1]
    off = C_out.shape[1] - kf
    k = kf + off
    Xd = np.empty((n_rows, k))
    T = np.zeros((n_rows, p_feat))
    for u in range(n_rows):
        if off == 1:
            Xd[u, 0] = bias[u]
        for f in range(kf):
            Xd[u, off + f] = Xf[u, f]
        for c in range(p_feat):
            if M[u, c]:
                T[u, c] = V[u, c] - means[c]
    G_full = Xd.T @ Xd
    R = Xd.T @ T  # k x p: the right-hand sides (unobserved targets are 0)
    W = np.zeros((p_feat, k))
    for c in range(p_feat):  # few columns, each a k x k solve: serial (a parallel loop costs compile time)
        n_obs = 0
        for u in range(n_rows):
            if M[u, c]:
                n_obs += 1
        if n_obs == 0:
            continue
        n_miss = n_rows - n_obs
        if n_miss <= n_obs:
            G = G_full.copy()
            if n_miss > 0:
                Xm = np.empty((n_miss, k))
                q = 0
                for u in range(n_rows):
                    if not M[u, c]:
                        for f in range(k):
                            Xm[q, f] = Xd[u, f]
                        q += 1
                G -= Xm.T @ Xm
        else:
            Xo = np.empty((n_obs, k))
            q = 0
            for u in range(n_rows):
                if M[u, c]:
                    for f in range(k):
                        Xo[q, f] = Xd[u, f]
                    q += 1
            G = Xo.T @ Xo
        G *= attr_weight
        for f in range(k):
            G[f, f] += lam
        w = chol_solve(G, attr_weight * R[:, c].copy())
        for f in range(k):
            W[c, f] = w[f]
    P = Xd @ W.T  # n x p fitted values
    sse = 0.0
    for u in range(n_rows):
        for c in range(p_feat):
            if M[u, c]:
                r = T[u, c] - P[u, c]
                sse += r * r
    for c in range(p_feat):
        for f in range(k):
            C_out[c, f] = W[c, f]
    return attr_weight * sse
