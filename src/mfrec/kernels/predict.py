"""Prediction kernels: dot products of (user, item) pairs."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from mfrec.kernels.compile import FASTMATH


@njit(parallel=True, cache=True, fastmath=set(FASTMATH), nogil=True)
def pair_dots(P, Q, users, items, out):
    """``out[t] = P[users[t]] . Q[items[t]]``; a negative index on either side gives 0."""
    k = P.shape[1]
    for t in prange(users.shape[0]):
        u = users[t]
        i = items[t]
        if u < 0 or i < 0:
            out[t] = 0.0
            continue
        s = np.float32(0.0)
        for f in range(k):
            s += P[u, f] * Q[i, f]
        out[t] = s


@njit(cache=True, fastmath=set(FASTMATH), nogil=True)
def score_items(Q, x, base, offset, out):
    """``out[i] = base[i] + offset + Q[i] . x`` for every item: one user's scores, serial and
    BLAS-free (a single request must not wake a BLAS thread pool)."""
    k = Q.shape[1]
    for i in range(Q.shape[0]):
        s = np.float32(0.0)
        for f in range(k):
            s += Q[i, f] * x[f]
        out[i] = base[i] + offset + s
