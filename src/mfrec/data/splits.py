"""Train/test splits of :class:`Ratings`.

Every split is deterministic for a given seed, vectorized (no Python loop per user), and returns
pieces made with :meth:`Ratings.subset`, so they share the parent's id maps. Each rating lands in
exactly one piece; as a ``Ratings`` holds each (user, item) pair once, no pair is in both pieces.
Pieces keep the parent's row order.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Iterator

import numpy as np

from mfrec._flags import check_flag
from mfrec.data.ratings import Ratings

Seed = int | np.random.Generator | None

__all__ = ["holdout_users", "kfold", "random_split", "temporal_split", "user_split"]


# ---------------------------------------------------------------------------- validation
def _check_ratings(ratings: Ratings, minimum: int = 2) -> None:
    if not isinstance(ratings, Ratings):
        raise TypeError(f"expected Ratings, got {type(ratings).__name__}")
    if len(ratings) < minimum:
        raise ValueError(f"cannot split {len(ratings)} rating(s): need at least {minimum}")


def _check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, not {value!r}")
    return float(value)


def _check_count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def as_rng(seed: Seed, name: str = "seed") -> np.random.Generator:
    """A Generator from ``seed`` (an int >= 0, a Generator, or None for fresh randomness);
    ValueError naming the parameter otherwise (numpy's own errors name nothing)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ValueError(f"{name} must be None, a numpy Generator or an integer >= 0, not {seed!r}")
    return np.random.default_rng(int(seed))


def _n_test(n: int, test_size: float) -> int:
    """Rounded test count for n rows, kept in [1, n - 1] so neither piece is empty."""
    return min(max(int(round(test_size * n)), 1), n - 1)


def _pieces(ratings: Ratings, test_mask: np.ndarray) -> tuple[Ratings, Ratings]:
    return ratings.subset(~test_mask), ratings.subset(test_mask)


def _per_user_pieces(
    ratings: Ratings, test_mask: np.ndarray, test_size: float, n_test: int | None
) -> tuple[Ratings, Ratings]:
    """Like :func:`_pieces`, but a clear error when no user could give a test rating."""
    if not test_mask.any():
        asked = f"n_test={n_test}" if n_test is not None else f"test_size={test_size:g}"
        raise ValueError(
            f"no test ratings: with {asked} every user keeps all of its ratings for training "
            "(users need at least 2 ratings; try a larger test_size or n_test=1)"
        )
    return _pieces(ratings, test_mask)


# ---------------------------------------------------------------------------- per-user helpers
def _rank_within_user(users: np.ndarray, order: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each rating within its user, rating count of its user).

    ``order`` is a permutation of the rows; ratings of one user are ranked in the order they
    appear in it (two stable sorts: radix sort on the int32 user indices, no Python loop).
    """
    n = len(users)
    grouped = order[np.argsort(users[order], kind="stable")]
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[grouped] = np.arange(n, dtype=np.int64) - starts[users[grouped]]
    return rank, counts[users]


def _test_per_user(counts: np.ndarray, test_size: float, n_test: int | None) -> np.ndarray:
    """Test ratings for users with ``counts`` ratings, always leaving at least one for training."""
    if n_test is not None:
        want = np.full(counts.shape, n_test, dtype=np.int64)
    else:
        want = np.floor(test_size * counts + 0.5).astype(np.int64)  # round half up
    return np.minimum(want, counts - 1)


# ---------------------------------------------------------------------------- splits
def random_split(ratings: Ratings, test_size: float = 0.2, seed: Seed = 0) -> tuple[Ratings, Ratings]:
    """(train, test): a uniformly random ``test_size`` fraction of the ratings goes to test."""
    _check_ratings(ratings)
    test_size = _check_fraction(test_size, "test_size")
    n = len(ratings)
    rng = as_rng(seed)
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(n)[: _n_test(n, test_size)]] = True
    return _pieces(ratings, test)


def kfold(ratings: Ratings, k: int = 5, seed: Seed = 0) -> Iterator[tuple[Ratings, Ratings]]:
    """Yield ``k`` (train, test) pairs; the test pieces partition the ratings (sizes differ by <= 1)."""
    k = _check_count(k, "k", minimum=2)
    _check_ratings(ratings)
    n = len(ratings)
    if k > n:
        raise ValueError(f"k={k} folds need at least {k} ratings, got {n}")
    rng = as_rng(seed)
    fold = np.empty(n, dtype=np.int32)
    fold[rng.permutation(n)] = np.arange(n, dtype=np.int64) % k
    return (_pieces(ratings, fold == f) for f in range(k))


def _sizes(test_size: float | None, n_test: int | None) -> tuple[float, int | None]:
    """``test_size`` (default 0.2) or ``n_test``, checked; both given is an error (one would be
    ignored, silently)."""
    if n_test is not None:
        if test_size is not None:
            raise ValueError(f"give test_size or n_test, not both (got test_size={test_size!r}, n_test={n_test!r})")
        return 0.2, _check_count(n_test, "n_test")
    return _check_fraction(0.2 if test_size is None else test_size, "test_size"), None


def user_split(
    ratings: Ratings, test_size: float | None = None, n_test: int | None = None, seed: Seed = 0
) -> tuple[Ratings, Ratings]:
    """Per-user holdout: (train, test) with a random part of every user's ratings in test.

    Each user gives ``round(test_size * count)`` ratings (``test_size`` default 0.2), or
    ``n_test`` ratings (not both), to test, but always keeps at least one for training: a user
    with a single rating stays entirely in train.
    """
    _check_ratings(ratings)
    test_size, n_test = _sizes(test_size, n_test)
    rng = as_rng(seed)
    u = ratings.user_indices
    rank, counts = _rank_within_user(u, rng.permutation(len(u)), ratings.n_users)
    test = rank < _test_per_user(counts, test_size, n_test)
    return _per_user_pieces(ratings, test, test_size, n_test)


def temporal_split(
    ratings: Ratings, test_size: float | None = None, per_user: bool = False, n_test: int | None = None
) -> tuple[Ratings, Ratings]:
    """(train, test) by time: the latest ratings go to test.

    Globally (default) the latest ``test_size`` fraction of all ratings is the test set, so every
    training rating is no later than every test rating. With ``per_user=True`` each user's latest
    ``test_size`` fraction (default 0.2; or latest ``n_test`` ratings, not both) goes to test, keeping at least one
    training rating per user. Ties in time are broken by row order.
    """
    _check_ratings(ratings)
    per_user = check_flag("per_user", per_user)
    t = ratings.timestamps
    if t is None:
        raise ValueError(
            "temporal_split needs timestamps, but these ratings have none "
            "(read them with a timestamp column, or use random_split/user_split)"
        )
    test_size, n_test = _sizes(test_size, n_test)
    n = len(ratings)
    order = np.argsort(t, kind="stable")  # ties keep row order
    if per_user:
        rank, counts = _rank_within_user(ratings.user_indices, order, ratings.n_users)
        test = rank >= counts - _test_per_user(counts, test_size, n_test)
        return _per_user_pieces(ratings, test, test_size, n_test)
    m = min(n_test, n - 1) if n_test is not None else _n_test(n, test_size)
    test = np.zeros(n, dtype=bool)
    test[order[n - m :]] = True
    return _pieces(ratings, test)


def holdout_users(ratings: Ratings, fraction: float = 0.2, seed: Seed = 0) -> tuple[Ratings, Ratings]:
    """(train, heldout): every rating of a random ``fraction`` of the users goes to heldout.

    Only users with ratings are drawn; at least one user ends up on each side. For fold-in and
    cold-start evaluation: heldout users have no rating in train.
    """
    _check_ratings(ratings)
    fraction = _check_fraction(fraction, "fraction")
    active = np.flatnonzero(ratings.user_counts > 0)
    if len(active) < 2:
        raise ValueError(f"holdout_users needs ratings from at least 2 users, got {len(active)}")
    rng = as_rng(seed)
    chosen = rng.permutation(active)[: _n_test(len(active), fraction)]
    held = np.zeros(ratings.n_users, dtype=bool)
    held[chosen] = True
    return _pieces(ratings, held[ratings.user_indices])
