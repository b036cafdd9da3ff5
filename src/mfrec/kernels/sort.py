"""Counting sorts over rating indices (the data layer's user-major order; SGD walks it)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def counting_sort(keys, n_keys, visit):
    """The positions ``visit`` sorted by ``keys[position]`` (values in ``0..n_keys-1``; stable in
    the ``visit`` order, O(n)), and the key boundaries ``ptr`` (length ``n_keys + 1``)."""
    counts = np.zeros(n_keys + 1, dtype=np.int64)
    for v in range(visit.shape[0]):
        counts[keys[visit[v]] + 1] += 1
    ptr = np.cumsum(counts)
    fill = ptr[:-1].copy()
    order = np.empty(visit.shape[0], dtype=np.int64)
    for v in range(visit.shape[0]):
        t = visit[v]
        order[fill[keys[t]]] = t
        fill[keys[t]] += 1
    return order, ptr


@njit(cache=True)
def order_by_user_item(users, items, n_users, n_items):
    """Rating indices sorted by (user, item): two stable counting-sort passes, O(n)."""
    by_item, _ = counting_sort(items, n_items, np.arange(users.shape[0]))
    return counting_sort(users, n_users, by_item)[0]
