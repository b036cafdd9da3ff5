"""Prediction kernels: dot products of (user, item) pairs."""

from __future__ import annotations

import numpy as np
from numba import njit

from mfrec.kernels.compile import FASTMATH
from mfrec.threads import parallel_rows


@njit(cache=True, fastmath=set(FASTMATH), nogil=True)
def _pair_dots_rows(lo, hi, P, Q, users, items, out):
    """Pairs ``lo..hi-1`` of `pair_dots` (serial)."""
    k = P.shape[1]
    for t in range(lo, hi):
        u = users[t]
        i = items[t]
        if u < 0 or i < 0:
            out[t] = 0.0
            continue
        s = np.float32(0.0)
        for f in range(k):
            s += P[u, f] * Q[i, f]
        out[t] = s


#: pairs below which `pair_dots` stays on the calling thread (handing chunks to a thread pool
#: costs ~0.1 ms; 20k pairs at k=100 take about that)
SERIAL_PAIRS = 20_000


def pair_dots(P, Q, users, items, out) -> None:
    """``out[t] = P[users[t]] . Q[items[t]]``; a negative index on either side gives 0.

    Serial chunks on the threads `mfrec.threads.kernel_threads` sets (`parallel_rows`: a thread on
    a busy core takes fewer chunks, where an OpenMP ``prange`` waited for it at its barrier)."""
    if users.shape[0] < SERIAL_PAIRS:
        _pair_dots_rows(0, users.shape[0], P, Q, users, items, out)
    else:
        parallel_rows(_pair_dots_rows, users.shape[0], P, Q, users, items, out)


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
