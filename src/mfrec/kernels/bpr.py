"""BPR kernel: one epoch of parallel (Hogwild) SGD on sampled (user, positive, negative) triples.

Sample ``s`` of an epoch draws its triple from a counter-based generator seeded by
``(seed, epoch, s)``: the same triples on any thread count, so a fit with ``threads=1`` is
reproducible bit for bit; with more threads the updates race on shared rows (Hogwild, as in
implicit and LightFM), so results agree only statistically.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from mfrec.kernels.compile import KERNEL_OPTIONS as _OPTS
from mfrec.threads import free_threads


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _has_item(indices, start, end, j):
    """Whether the sorted ``indices[start:end]`` holds ``j`` (binary search)."""
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < j:
            lo = mid + 1
        elif v > j:
            hi = mid
        else:
            return True
    return False


@njit(parallel=True, **_OPTS)
def _bpr_epoch(indptr, indices, rows, P, Q, b, lr, reg, seed, n_samples, tries):
    """``n_samples`` SGD steps on ``-log sigmoid(x_u.(q_i - q_j) + b_i - b_j)`` + L2.

    ``rows[s]`` is the user of positive ``s`` (CSR ``indptr``/``indices`` by user, sorted
    columns). A negative ``j`` is drawn uniformly from the items and redrawn (up to ``tries``
    times) while the user has it; a sample whose draws all hit positives is skipped. Returns
    (sum of the log losses, samples where the positive outscored the negative, skipped)."""
    nnz = indices.shape[0]
    n_items = Q.shape[0]
    k = P.shape[1]
    loss = 0.0
    correct = 0
    skipped = 0
    base = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    keep = one - lr * reg  # x + lr (g - reg x) = keep x + lr g
    for s in prange(n_samples):
        state = _mix(base + np.uint64(s) * np.uint64(0x9E3779B97F4A7C15))
        p = np.int64(state % np.uint64(nnz))
        u = rows[p]
        i = indices[p]
        start = indptr[u]
        end = indptr[u + 1]
        j = -1
        for _ in range(tries):
            state = _mix(state + np.uint64(0x9E3779B97F4A7C15))
            cand = np.int64(state % np.uint64(n_items))
            if not _has_item(indices, start, end, cand):
                j = cand
                break
        if j < 0:
            skipped += 1
            continue
        x = b[i] - b[j]
        for f in range(k):
            x += P[u, f] * (Q[i, f] - Q[j, f])
        if x > 0:
            correct += 1
        # z = sigmoid(-x) = d(log sigmoid(x))/dx; loss = log(1 + exp(-x)), computed stably, all in
        # the factors' dtype (a float64 literal here made the update loop below convert every
        # factor to float64 and back)
        if x >= zero:
            e = np.exp(-x)
            z = e / (one + e)
            nll = np.log1p(e)
        else:
            e = np.exp(x)
            z = one / (one + e)
            nll = -x + np.log1p(e)
        loss += nll
        zl = z * lr
        for f in range(k):
            pu = P[u, f]
            qi = Q[i, f]
            qj = Q[j, f]
            P[u, f] = keep * pu + zl * (qi - qj)
            Q[i, f] = keep * qi + zl * pu
            Q[j, f] = keep * qj - zl * pu
        b[i] = keep * b[i] + zl
        b[j] = keep * b[j] - zl
    return loss, correct, skipped


def bpr_epoch(indptr, indices, rows, P, Q, b, lr, reg, seed, n_samples, tries) -> tuple[float, int, int]:
    """One epoch (`_bpr_epoch`'s arguments and results) on the threads `kernel_threads` set, but no
    more than the cores other processes leave free (`mfrec.threads.free_threads`): the ``prange``
    loop waits at its end for its slowest thread, and a thread on a taken core is slow. (Serial
    chunks on a thread pool, which SGD and ALS use, were ~25% slower here: 3.8-4.8 against
    3.0-3.5 ms per ml-100k epoch on two threads, benchmarks/RESULTS.md 11.4.)"""
    threads = numba.get_num_threads()
    numba.set_num_threads(free_threads(threads))
    try:
        return _bpr_epoch(indptr, indices, rows, P, Q, b, lr, reg, seed, n_samples, tries)
    finally:
        numba.set_num_threads(threads)
