"""Top-n selection kernel: the ``n`` best finite scores of every row (serial over a row range;
`mfrec.models.recommend.top_n` runs chunks of rows, or whole blocks of users, on threads)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rows_top_n(lo, hi, S, n, idx_out, val_out):
    """Write the column indices and values of the ``n`` best finite scores of rows ``lo..hi-1`` of ``S``
    into ``idx_out`` / ``val_out`` (m x n), best first, ties by lower column; rows with fewer
    finite scores are padded with -1 / -inf. One pass per row with a sorted insertion buffer:
    O(width) for the usual row, where few scores beat the current n-th best."""
    width = S.shape[1]
    for row in range(lo, hi):
        cnt = 0
        for j in range(width):
            v = S[row, j]
            if not np.isfinite(v):
                continue
            if cnt == n and v <= val_out[row, n - 1]:
                continue
            p = cnt if cnt < n else n - 1
            while p > 0 and val_out[row, p - 1] < v:
                val_out[row, p] = val_out[row, p - 1]
                idx_out[row, p] = idx_out[row, p - 1]
                p -= 1
            val_out[row, p] = v
            idx_out[row, p] = j
            if cnt < n:
                cnt += 1
        for p in range(cnt, n):
            val_out[row, p] = -np.inf
            idx_out[row, p] = -1
