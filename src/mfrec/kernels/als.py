"""ALS kernels: one half-step solves every row of one side against the fixed other side.

For row ``u`` with rated columns ``j`` the target is ``r_uj - mu - b_j`` (the other side's bias is
fixed) and the unknowns are ``[b_u, x_u]`` (bias optional). The normal equations are

    (X_u^T X_u + diag(lam_b, lam, ..., lam)) [b_u, x_u] = X_u^T t_u,   X_u = [1, Y_j]

solved exactly (Cholesky) or by a few warm-started conjugate-gradient steps that never form the
Gram matrix. ALS-WR scales both lambdas by the row's count.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mfrec.kernels.compile import KERNEL_OPTIONS as _OPTS, specializations
from mfrec.threads import parallel_rows


@njit(**_OPTS)
def _gather(indptr, indices, data, row, Y, other_bias, mu, use_bias):
    """The design block [1, Y_j] (float64) and target t_j for one row."""
    start = indptr[row]
    end = indptr[row + 1]
    n = end - start
    k = Y.shape[1]
    off = 1 if use_bias else 0
    X = np.empty((n, k + off), dtype=np.float64)
    t = np.empty(n, dtype=np.float64)
    for p in range(n):
        j = indices[start + p]
        if use_bias:
            X[p, 0] = 1.0
        for f in range(k):
            X[p, off + f] = Y[j, f]
        t[p] = data[start + p] - mu - other_bias[j]
    return X, t


@njit(**_OPTS)
def chol_solve(A, b):
    """Solve ``A w = b`` for symmetric positive definite ``A`` (Cholesky, float64)."""
    return factored_solve(np.linalg.cholesky(A), b)


@njit(**_OPTS)
def factored_solve(L, b):
    """Solve ``L L^T w = b`` given the lower Cholesky factor ``L``."""
    d = L.shape[0]
    y = np.empty(d)
    for r in range(d):
        s = b[r]
        for c in range(r):
            s -= L[r, c] * y[c]
        y[r] = s / L[r, r]
    w = np.empty(d)
    for r in range(d - 1, -1, -1):
        s = y[r]
        for c in range(r + 1, d):
            s -= L[c, r] * w[c]
        w[r] = s / L[r, r]
    return w


@njit(**_OPTS)
def ridge_solve(X, t, lam, lam_bias, use_bias):
    """Exact solution of ``min |X w - t|^2 + lam |w[1:]|^2 + lam_bias w[0]^2`` (w[0] the bias
    when ``use_bias``), by Cholesky of the (k+1) x (k+1) normal matrix."""
    d = X.shape[1]
    A = X.T @ X
    for f in range(d):
        A[f, f] += lam
    if use_bias:
        A[0, 0] += lam_bias - lam
    return chol_solve(A, X.T @ t)


@njit(**_OPTS)
def _normal_times(X, v, lam_vec, out):
    """``out = X^T (X v) + lam_vec * v`` in one pass over the rows of ``X`` (loops, not ``@``:
    Numba's BLAS matrix-vector wrappers took ~1.8 s of a cold ALS first fit to compile, and the
    fused loop made ALS/CMF fits faster, not slower: benchmarks/RESULTS.md 11.6)."""
    n, d = X.shape
    for f in range(d):
        out[f] = lam_vec[f] * v[f]
    for p in range(n):
        s = 0.0
        for f in range(d):
            s += X[p, f] * v[f]
        for f in range(d):
            out[f] += s * X[p, f]


@njit(**_OPTS)
def _dot(a, b):
    s = 0.0
    for f in range(a.shape[0]):
        s += a[f] * b[f]
    return s


@njit(**_OPTS)
def residual_sse(X, t, w, lo, hi):
    """``|t - X w|^2`` over the rows ``lo..hi-1``."""
    acc = 0.0
    for p in range(lo, hi):
        s = t[p]
        for f in range(X.shape[1]):
            s -= X[p, f] * w[f]
        acc += s * s
    return acc


@njit(**_OPTS)
def cg_solve(X, t, lam_vec, w, steps):
    """A few conjugate-gradient steps on (X^T X + diag(lam_vec)) w = X^T t from the given w
    (``w`` updated in place and returned)."""
    n, d = X.shape
    Ap = np.empty(d)
    _normal_times(X, w, lam_vec, Ap)
    r = np.empty(d)  # X^T t - A w
    for f in range(d):
        r[f] = -Ap[f]
    for q in range(n):
        for f in range(d):
            r[f] += t[q] * X[q, f]
    p = np.empty(d)
    for f in range(d):
        p[f] = r[f]
    rs = _dot(r, r)
    for _ in range(steps):
        if rs < 1e-20:
            break
        _normal_times(X, p, lam_vec, Ap)
        alpha = rs / _dot(p, Ap)
        for f in range(d):
            w[f] += alpha * p[f]
            r[f] -= alpha * Ap[f]
        rs_new = _dot(r, r)
        beta = rs_new / rs
        for f in range(d):
            p[f] = r[f] + beta * p[f]
        rs = rs_new
    return w


def _make_als_half_step(use_cg: bool):
    @njit(**_OPTS)
    def als_half_step_kernel(lo, hi, indptr, indices, data, Y, other_bias, mu, X_out, bias_out, lam, lam_bias,
                             use_bias, weighted, cg_steps, sse):
        """Rows ``lo..hi-1`` (serial; `mfrec.threads.parallel_rows` runs chunks on threads)."""
        k = Y.shape[1]
        off = 1 if use_bias else 0
        for row in range(lo, hi):
            n = indptr[row + 1] - indptr[row]
            if n == 0:
                for f in range(k):
                    X_out[row, f] = 0.0
                if use_bias:
                    bias_out[row] = 0.0
                continue
            X, t = _gather(indptr, indices, data, row, Y, other_bias, mu, use_bias)
            scale = n if weighted else 1.0
            if use_cg:
                lam_vec = np.empty(k + off)
                w = np.empty(k + off)
                for f in range(k + off):
                    lam_vec[f] = lam * scale
                if use_bias:
                    lam_vec[0] = lam_bias * scale
                    w[0] = bias_out[row]
                for f in range(k):
                    w[off + f] = X_out[row, f]
                w = cg_solve(X, t, lam_vec, w, cg_steps)
            else:
                w = ridge_solve(X, t, lam * scale, lam_bias * scale, use_bias)
            if use_bias:
                bias_out[row] = w[0]
            for f in range(k):
                X_out[row, f] = w[off + f]
            sse[row] = residual_sse(X, t, w, np.int64(0), n)

    return als_half_step_kernel


_ALS_HALF_STEP = specializations(_make_als_half_step)  # one kernel per solver: a fit compiles its own


def als_half_step(indptr, indices, data, Y, other_bias, mu, X_out, bias_out, lam, lam_bias,
                  use_bias, weighted, use_cg, cg_steps):
    """Solve every row of one side (``X_out``, ``bias_out`` updated in place).

    Rows with no ratings get zero factors and bias. ``weighted`` selects ALS-WR (lambda times the
    row's count). ``use_cg`` runs ``cg_steps`` conjugate-gradient steps warm-started at the current
    solution instead of the exact Cholesky solve. Returns the summed squared error of the rows'
    fitted values (the training SSE after this half-step).
    """
    n_rows = indptr.shape[0] - 1
    sse = np.zeros(n_rows)
    parallel_rows(_ALS_HALF_STEP[bool(use_cg)], n_rows, indptr, indices, data, Y, other_bias, mu, X_out, bias_out,
                  lam, lam_bias, bool(use_bias), bool(weighted), int(cg_steps), sse)
    return float(sse.sum())


@njit(**_OPTS)
def bias_als_step(indptr, indices, data, other_bias, mu, bias_out, reg):
    """One ALS sweep of biases only: ``b_u = sum_j (r - mu - b_j) / (reg + n_u)`` (Baseline)."""
    n_rows = indptr.shape[0] - 1
    for row in range(n_rows):
        s = 0.0
        for p in range(indptr[row], indptr[row + 1]):
            s += data[p] - mu - other_bias[indices[p]]
        bias_out[row] = s / (reg + (indptr[row + 1] - indptr[row]))


@njit(**_OPTS)
def _store_preference_row(x, Y, indices, start, end, X_out, row):
    """Write the solved row and return its observed SSE, sum_j (1 - x . y_j)^2."""
    k = Y.shape[1]
    acc = 0.0
    for p in range(start, end):
        y = Y[indices[p]]
        s = 0.0
        for f in range(k):
            s += x[f] * y[f]
        acc += (1.0 - s) * (1.0 - s)
    for f in range(k):
        X_out[row, f] = x[f]
    return acc


@njit(**_OPTS)
def _implicit_exact_row(indices, confidence, Y, YtY, lam, start, end):
    """x = (Y^T Y + lam I + sum_j (c_j - 1) y_j y_j^T)^-1 sum_j c_j y_j, built and solved exactly."""
    k = Y.shape[1]
    A = YtY.copy()
    b = np.zeros(k)
    for f in range(k):
        A[f, f] += lam
    for p in range(start, end):
        y = Y[indices[p]]
        c = confidence[p]
        for f in range(k):
            yf = y[f]
            b[f] += c * yf
            cy = (c - 1.0) * yf
            for g in range(k):
                A[f, g] += cy * y[g]
    return np.linalg.solve(A, b)


@njit(**_OPTS)
def _implicit_cg_row(indices, confidence, Y, YtY, lam, start, end, x, cg_steps, r, d, Ad, xy, dy):
    """The same system by ``cg_steps`` conjugate-gradient steps from ``x`` (Takacs et al. 2011):
    O(k^2 + n_row k) per step, never forming the row's matrix. Works in place: ``x`` (updated),
    ``r``, ``d``, ``Ad`` (k) and ``xy``, ``dy`` (>= the row's count) are the caller's scratch.
    On return ``xy[p - start] = x . y_p`` for the solved ``x``, tracked through the steps
    (``x . y_p`` moves by ``alpha d . y_p``), so the row's training error needs no extra pass.
    Arithmetic in ``Y``'s dtype (float32 for the models: pass ``YtY``, ``confidence`` and ``lam``
    in it too), which vectorizes twice as wide as float64, as implicit's float32 CG."""
    k = Y.shape[1]
    zero = Y.dtype.type(0)
    one = Y.dtype.type(1)
    for f in range(k):  # r = b - A x, starting from -(Y^T Y + lam I) x
        s = zero
        for g in range(k):
            s += YtY[f, g] * x[g]
        r[f] = -s - lam * x[f]
    for p in range(start, end):
        y = Y[indices[p]]
        c = confidence[p]
        s = zero
        for f in range(k):
            s += y[f] * x[f]
        xy[p - start] = s
        w = c - (c - one) * s
        for f in range(k):
            r[f] += w * y[f]
    rs = zero
    for f in range(k):
        d[f] = r[f]
        rs += r[f] * r[f]
    for _ in range(cg_steps):
        if rs < 1e-20:
            break
        for f in range(k):
            s = zero
            for g in range(k):
                s += YtY[f, g] * d[g]
            Ad[f] = s + lam * d[f]
        for p in range(start, end):
            y = Y[indices[p]]
            s = zero
            for f in range(k):
                s += y[f] * d[f]
            dy[p - start] = s
            s *= confidence[p] - one
            for f in range(k):
                Ad[f] += s * y[f]
        dAd = zero
        for f in range(k):
            dAd += d[f] * Ad[f]
        alpha = rs / dAd
        rs_new = zero
        for f in range(k):
            x[f] += alpha * d[f]
            r[f] -= alpha * Ad[f]
            rs_new += r[f] * r[f]
        for q in range(end - start):
            xy[q] += alpha * dy[q]
        beta = rs_new / rs
        for f in range(k):
            d[f] = r[f] + beta * d[f]
        rs = rs_new
    return x


def _make_implicit_half_step(use_cg: bool):
    @njit(**_OPTS)
    def implicit_half_step_kernel(lo, hi, indptr, indices, confidence, Y, YtY, X_out, lam, cg_steps, want_loss, sse):
        """Rows ``lo..hi-1`` (serial; `mfrec.threads.parallel_rows` runs chunks on threads), the
        CG's vectors in scratch allocated once per chunk, not per row."""
        k = Y.shape[1]
        longest = 0
        if use_cg:
            for row in range(lo, hi):
                longest = max(longest, indptr[row + 1] - indptr[row])
        own = np.empty((4, k), dtype=Y.dtype)  # x, r, d, Ad
        dot = np.empty((2, longest), dtype=Y.dtype)  # x . y_p, d . y_p
        for row in range(lo, hi):
            start = indptr[row]
            end = indptr[row + 1]
            if end == start:
                for f in range(k):
                    X_out[row, f] = 0.0
                continue
            if use_cg:
                x = own[0]
                for f in range(k):
                    x[f] = X_out[row, f]
                xy = dot[0]
                _implicit_cg_row(indices, confidence, Y, YtY, lam, start, end, x, cg_steps,
                                 own[1], own[2], own[3], xy, dot[1])
                acc = 0.0
                for q in range(end - start):
                    e = 1.0 - xy[q]
                    acc += e * e
                sse[row] = acc
                for f in range(k):
                    X_out[row, f] = x[f]
            else:
                x = _implicit_exact_row(indices, confidence, Y, YtY, lam, start, end)
                if want_loss:
                    sse[row] = _store_preference_row(x, Y, indices, start, end, X_out, row)
                else:
                    for f in range(k):
                        X_out[row, f] = x[f]

    return implicit_half_step_kernel


_IMPLICIT_HALF_STEP = specializations(_make_implicit_half_step)  # the exact solve compiles only when used


def implicit_half_step(indptr, indices, confidence, Y, YtY, X_out, lam, use_cg, cg_steps, want_loss=True):
    """One half-step of implicit-feedback ALS (Hu, Koren & Volinsky 2008), every row in parallel:

        x_u = (Y^T Y + lam I + sum_j (c_uj - 1) y_j y_j^T)^-1  sum_j c_uj y_j

    over the rows' observed columns ``j`` with confidences ``c_uj`` (preference 1); all other
    entries are preference 0 with confidence 1, covered by the shared ``YtY``. ``use_cg`` takes
    ``cg_steps`` conjugate-gradient steps warm-started at the current ``X_out`` instead of the
    exact solve, in scratch per chunk of rows (no allocation per row); the CG works in ``Y``'s
    dtype (pass ``YtY``, ``confidence`` and ``lam`` in it). Returns the summed squared error of
    the observed preferences, sum_j (1 - x_u . y_j)^2 (from the CG's tracked dot products, no
    extra pass); 0.0 with ``want_loss=False`` (the exact solver then skips its extra pass). Rows
    run as serial chunks on the threads `kernel_threads` set (`mfrec.threads.parallel_rows`),
    which compiles at a serial kernel's cost (the ``prange`` kernel it replaced took 2x longer).
    """
    n_rows = indptr.shape[0] - 1
    sse = np.zeros(n_rows)
    parallel_rows(_IMPLICIT_HALF_STEP[bool(use_cg)], n_rows, indptr, indices, confidence, Y, YtY, X_out, lam,
                  int(cg_steps), bool(want_loss), sse)
    return float(sse.sum()) if want_loss else 0.0


als_half_step.variants = _ALS_HALF_STEP  # type: ignore[attr-defined]  # {use_cg: kernel}, e.g. to check the cache
implicit_half_step.variants = _IMPLICIT_HALF_STEP  # type: ignore[attr-defined]
