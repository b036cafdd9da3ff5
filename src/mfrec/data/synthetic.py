"""Synthetic ratings from a known low-rank model, with MovieLens-like long tails.

``rating = global_mean + user_bias + item_bias + p_u . q_i + noise``, clipped to the scale and
rounded to its step. Users and items get power-law (Zipf) activity/popularity weights; pairs are
drawn from the product distribution without repeats, so heavy users meet popular items often.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal, overload

import numpy as np

from mfrec._flags import check_flag
from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings
from mfrec.data.splits import as_rng

__all__ = ["synthetic"]

# A user rates at most this share of the items, an item is rated by at most this share of the
# users (MovieLens 25M: the heaviest user rated 55% of the movies, the top movie 50% of the users).
_MAX_SHARE = 0.5
_CHUNK = 1 << 19  # rows per chunk when computing predictions (bounded memory)


def _allocate(weights: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """Expected counts ``clip(lam * weights, lo, hi)`` summing to ``total`` (bisection on lam)."""
    n = len(weights)
    if total <= n * lo:
        return np.full(n, lo, dtype=np.float64)
    if total >= n * hi:
        return np.full(n, hi, dtype=np.float64)
    w = weights / weights.sum()
    a, b = 0.0, total / w.min() + 1.0  # f(a) <= total <= f(b)
    for _ in range(200):
        mid = 0.5 * (a + b)
        if np.clip(mid * w, lo, hi).sum() < total:
            a = mid
        else:
            b = mid
        if b - a <= 1e-12 * b:
            break
    return np.clip(b * w, lo, hi)


def _power_law(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights ``rank ** -exponent``, randomly assigned to the n ids."""
    return (np.arange(1, n + 1, dtype=np.float64) ** -exponent)[rng.permutation(n)]


class _Alias:
    """Walker's alias table: O(1) draws from a discrete distribution (built in O(n))."""

    def __init__(self, p: np.ndarray) -> None:
        n = len(p)
        q = np.asarray(p, dtype=np.float64) * (n / np.sum(p))
        prob = np.ones(n, dtype=np.float64)
        alias = np.arange(n, dtype=np.int64)
        small = list(np.flatnonzero(q < 1.0))
        large = list(np.flatnonzero(q >= 1.0))
        ql = q.tolist()
        while small and large:
            s, l = small.pop(), large[-1]
            prob[s], alias[s] = ql[s], l
            ql[l] -= 1.0 - ql[s]
            if ql[l] < 1.0:
                small.append(large.pop())
        # leftovers are 1 up to rounding
        self.prob = prob.astype(np.float32)
        self.alias = alias.astype(np.int32)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        j = rng.integers(0, len(self.prob), size, dtype=np.int32)
        keep = rng.random(size, dtype=np.float32) < self.prob[j]
        return np.where(keep, j, self.alias[j])


def _new_keys(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Distinct ``keys`` (sorted) that are not in ``sorted_keys``."""
    cand = np.sort(keys)  # sort-based dedupe: much faster than np.unique's hashing for int64
    if len(cand) > 1:
        cand = cand[np.concatenate([[True], cand[1:] != cand[:-1]])]
    if len(sorted_keys) and len(cand):
        pos = np.minimum(np.searchsorted(sorted_keys, cand), len(sorted_keys) - 1)
        cand = cand[sorted_keys[pos] != cand]
    return cand


def _merge(sorted_keys: np.ndarray, new_sorted: np.ndarray) -> np.ndarray:
    """Merge two sorted, disjoint key arrays (timsort merges the two runs in linear time)."""
    out = np.concatenate([sorted_keys, new_sorted])
    out.sort(kind="stable")
    return out


def _sample_pairs(
    n_users: int,
    n_items: int,
    n_ratings: int,
    floor: int,
    user_p: np.ndarray,
    item_p: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Exactly ``n_ratings`` distinct sorted keys ``user * n_items + item``.

    Every user first gets ``floor`` distinct items (drawn by popularity); the rest are drawn from
    the product distribution ``user_p x item_p``, deduplicated and topped up round by round. When
    the weighted draws mostly hit pairs already taken, the top-up falls back to uniform pairs
    (at least half of all pairs are free, so this always ends).
    """
    item_alias = _Alias(item_p)
    keys = np.empty(0, dtype=np.int64)

    # phase 1: the per-user floor
    if floor > 0:
        need = np.full(n_users, floor, dtype=np.int64)
        for rnd in range(1000):
            users = np.repeat(np.arange(n_users, dtype=np.int64), need)
            items = item_alias.draw(len(users), rng) if rnd < 8 else rng.integers(0, n_items, len(users))
            cand = _new_keys(users * n_items + items, keys)
            # a user's distinct new items never exceed its need: it drew exactly `need` of them
            keys = _merge(keys, cand)
            need = floor - np.bincount(keys // n_items, minlength=n_users)
            if not need.any():
                break

    # phase 2: weighted draws from the product distribution, topped up to the exact count
    acceptance, weighted, rounds = 1.0, bool(user_p.sum() > 0), 0
    while len(keys) < n_ratings:
        deficit = n_ratings - len(keys)
        size = int(min(deficit / max(acceptance, 0.05) * 1.05 + 64, 4 * n_ratings + 64))
        if weighted:
            counts = rng.multinomial(size, user_p / user_p.sum())
            users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
            items = item_alias.draw(size, rng)
        else:
            users = rng.integers(0, n_users, size, dtype=np.int64)
            items = rng.integers(0, n_items, size, dtype=np.int64)
        cand = _new_keys(users * n_items + items, keys)
        del users, items
        acceptance = max(len(cand) / size, 1e-3)
        if len(cand) > deficit:  # keep a uniformly random subset of the new pairs
            cand = np.sort(cand[rng.choice(len(cand), deficit, replace=False)])
        keys = _merge(keys, cand)
        rounds += 1
        if weighted and (rounds >= 20 or acceptance < 0.02):
            weighted = False
    return keys


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _check_real(value: Any, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, not {value!r}")
    return float(value)


#: bounds of ``scale`` and of the number of rating steps across it (float32 ratings)
_MAX_SCALE = 1e30
_MAX_STEPS = 1e7


@overload
def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    factors: int = 10,
    seed: int | None = 0,
    noise: float = 0.5,
    scale: tuple[float, float] = (1.0, 5.0),
    step: float | None = 0.5,
    user_activity_exponent: float = 0.7,
    item_popularity_exponent: float = 1.2,
    min_user_ratings: int = 5,
    timestamps: bool = False,
    return_truth: Literal[False] = False,
) -> Ratings: ...



@overload
def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    factors: int = 10,
    seed: int | None = 0,
    noise: float = 0.5,
    scale: tuple[float, float] = (1.0, 5.0),
    step: float | None = 0.5,
    user_activity_exponent: float = 0.7,
    item_popularity_exponent: float = 1.2,
    min_user_ratings: int = 5,
    timestamps: bool = False,
    *,
    return_truth: Literal[True],
) -> tuple[Ratings, dict[str, Any]]: ...


@overload
def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    factors: int = 10,
    seed: int | None = 0,
    noise: float = 0.5,
    scale: tuple[float, float] = (1.0, 5.0),
    step: float | None = 0.5,
    user_activity_exponent: float = 0.7,
    item_popularity_exponent: float = 1.2,
    min_user_ratings: int = 5,
    timestamps: bool = False,
    return_truth: bool = ...,
) -> Ratings | tuple[Ratings, dict[str, Any]]: ...


def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    factors: int = 10,
    seed: int | None = 0,
    noise: float = 0.5,
    scale: tuple[float, float] = (1.0, 5.0),
    step: float | None = 0.5,
    user_activity_exponent: float = 0.7,
    item_popularity_exponent: float = 1.2,
    min_user_ratings: int = 5,
    timestamps: bool = False,
    return_truth: bool = False,
) -> Ratings | tuple[Ratings, dict[str, Any]]:
    """Ratings drawn from a known biased low-rank model.

    ``rating = global_mean + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]
    + N(0, noise**2)``, clipped to ``scale`` and rounded to multiples of ``step`` from ``scale[0]``
    (``step=None`` keeps the values continuous).

    Activity is long-tailed like MovieLens: user ``k`` of the activity ranking gets weight
    ``k ** -user_activity_exponent`` (items likewise with ``item_popularity_exponent``; 0 gives
    uniform), ranks are assigned to ids at random, a user rates at most half of the items and an
    item is rated by at most half of the users (in expectation), and every user gets at least
    ``min(min_user_ratings, n_ratings // n_users)`` ratings. The (user, item) pairs are distinct,
    exactly ``n_ratings`` of them (at most half of all pairs), sorted by user then item.

    User ids are ``0..n_users-1`` and item ids ``0..n_items-1``; the id maps hold all of them in
    order (dense index == raw id), so row ``k`` of the truth arrays belongs to raw id ``k``.
    ``timestamps=True`` adds random timestamps (seconds, years 2000-2019).

    With ``return_truth=True`` returns ``(ratings, truth)``, truth holding ``user_factors``,
    ``item_factors``, ``user_bias``, ``item_bias``, ``global_mean`` and ``noise``.
    Deterministic for a seed; 25M ratings take seconds and about 1-2 GB of memory.
    """
    n_users = _check_int(n_users, "n_users", 1)
    n_items = _check_int(n_items, "n_items", 1)
    n_ratings = _check_int(n_ratings, "n_ratings", 1)
    factors = _check_int(factors, "factors", 0)
    min_user_ratings = _check_int(min_user_ratings, "min_user_ratings", 0)
    noise = _check_real(noise, "noise")
    ua = _check_real(user_activity_exponent, "user_activity_exponent")
    ia = _check_real(item_popularity_exponent, "item_popularity_exponent")
    timestamps = check_flag("timestamps", timestamps)
    return_truth = check_flag("return_truth", return_truth)
    if 2 * n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} is more than half of the {n_users} x {n_items} = "
            f"{n_users * n_items} possible (user, item) pairs; use fewer ratings or more users/items"
        )
    pair = tuple(scale) if isinstance(scale, (tuple, list, np.ndarray)) else ()
    if len(pair) != 2 or not all(isinstance(x, Real) and not isinstance(x, bool) for x in pair):
        raise ValueError(f"scale must be a (low, high) pair of numbers, not {scale!r}")
    lo, hi = float(pair[0]), float(pair[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"scale must be (low, high) with low < high, not {scale!r}")
    if max(abs(lo), abs(hi)) > _MAX_SCALE:  # ratings are float32; the generator's sums must stay finite
        raise ValueError(f"scale must lie within +-{_MAX_SCALE:g} (ratings are float32), not {scale!r}")
    if step is not None:
        step = _check_real(step, "step")
        if not 0 < step <= hi - lo:
            raise ValueError(f"step must be > 0 and at most the scale width {hi - lo:g}, not {step!r}")
        if (hi - lo) / step > _MAX_STEPS:  # float32 cannot hold a finer grid (step=1e-50 gave NaN ratings)
            raise ValueError(f"step {step!r} cuts the scale into more than {_MAX_STEPS:g} steps, finer than float32 "
                             "ratings hold; use a larger step or step=None (continuous values)")
    from mfrec._memory import require_memory

    # float64 factors and biases, their float32 copies, and ~40 bytes per rating while sampling
    require_memory((n_users + n_items) * (factors + 1) * 12 + 40 * n_ratings,
                   f"synthetic({n_users} users, {n_items} items, {n_ratings} ratings, factors={factors})")

    rng = as_rng(seed)
    width = hi - lo
    global_mean = lo + 0.6 * width
    # the factor term has std 0.15 * width, user/item biases 0.08 and 0.12 * width
    f_std = np.sqrt(0.15 * width / np.sqrt(factors)) if factors else 0.0
    user_factors = rng.normal(0.0, f_std, (n_users, factors))
    item_factors = rng.normal(0.0, f_std, (n_items, factors))
    user_bias = rng.normal(0.0, 0.08 * width, n_users)
    item_bias = rng.normal(0.0, 0.12 * width, n_items)

    floor = min(min_user_ratings, n_ratings // n_users)
    user_alloc = _allocate(_power_law(n_users, ua, rng), n_ratings, floor, _MAX_SHARE * n_items)
    item_alloc = _allocate(_power_law(n_items, ia, rng), n_ratings, 0.0, _MAX_SHARE * n_users)
    keys = _sample_pairs(n_users, n_items, n_ratings, floor, user_alloc - floor, item_alloc, rng)

    u = (keys // n_items).astype(np.int32)
    i = (keys - u.astype(np.int64) * n_items).astype(np.int32)
    del keys
    values = np.empty(n_ratings, dtype=np.float32)
    top = lo + np.floor(width / step + 1e-9) * step if step is not None else hi
    # float32 copies: the values are float32 anyway, and gathers move half the bytes
    uf, qf = user_factors.astype(np.float32), item_factors.astype(np.float32)
    ub, ib = (user_bias + global_mean).astype(np.float32), item_bias.astype(np.float32)
    for s in range(0, n_ratings, _CHUNK):
        cu, ci = u[s : s + _CHUNK], i[s : s + _CHUNK]
        x = ub[cu] + ib[ci]
        if factors:
            x += np.einsum("ij,ij->i", uf[cu], qf[ci])
        if noise:
            x += np.float32(noise) * rng.standard_normal(len(cu), dtype=np.float32)
        if step is not None:
            x = np.float32(lo) + np.round((x - np.float32(lo)) / np.float32(step)) * np.float32(step)
        values[s : s + _CHUNK] = np.clip(x, lo, top)

    if not np.isfinite(values).all():  # a guard: the checks above keep every value finite
        raise ValueError(f"synthetic produced non-finite ratings for scale={scale!r}, step={step!r}")
    t = None
    if timestamps:
        t = rng.integers(946_684_800, 1_577_836_800, n_ratings, dtype=np.int64)  # 2000-01-01 .. 2020-01-01
    ratings = Ratings(u, i, values, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), t, rating_scale=(lo, hi))
    if not return_truth:
        return ratings
    truth = {
        "user_factors": user_factors,
        "item_factors": item_factors,
        "user_bias": user_bias,
        "item_bias": item_bias,
        "global_mean": float(global_mean),
        "noise": noise,
    }
    return ratings, truth
