"""Train/test splits: deterministic, disjoint, sharing the id maps."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.splits import holdout_users, kfold, random_split, temporal_split, user_split


def make_ratings(n_users: int = 60, n_items: int = 40, density: float = 0.3, seed: int = 1, ts: bool = True) -> Ratings:
    """Random ratings with string user ids, uneven activity, a few single-rating users and time ties."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density * rng.uniform(0.2, 1.8, (n_users, 1))
    mask[:3] = False
    mask[:3, 0] = True  # users with a single rating
    u, i = np.nonzero(mask)
    order = rng.permutation(len(u))
    u, i = u[order], i[order]
    r = rng.integers(1, 6, len(u)).astype(float)
    t = rng.integers(0, len(u) // 3, len(u)) if ts else None  # many ties in time
    return Ratings.from_arrays([f"u{x}" for x in u], i * 7, r, t)


def keys(r: Ratings) -> np.ndarray:
    return r.user_indices.astype(np.int64) * r.n_items + r.item_indices


def rows(r: Ratings) -> set[tuple]:
    return set(zip(r.user_indices.tolist(), r.item_indices.tolist(), r.values.tolist()))


@pytest.fixture(scope="module")
def data() -> Ratings:
    return make_ratings()


def check_pieces(data: Ratings, train: Ratings, test: Ratings) -> None:
    """Same maps, disjoint pairs, together exactly the data."""
    for piece in (train, test):
        assert piece.user_map is data.user_map and piece.item_map is data.item_map
        assert len(piece) > 0
    assert len(np.intersect1d(keys(train), keys(test))) == 0
    assert len(train) + len(test) == len(data)
    assert rows(train) | rows(test) == rows(data)


def same(a: Ratings, b: Ratings) -> bool:
    return np.array_equal(keys(a), keys(b)) and np.array_equal(a.values, b.values)


# ---------------------------------------------------------------------------- random / kfold
def test_random_split(data: Ratings) -> None:
    train, test = random_split(data, test_size=0.25, seed=3)
    check_pieces(data, train, test)
    assert len(test) == round(0.25 * len(data))
    again = random_split(data, test_size=0.25, seed=3)
    assert same(train, again[0]) and same(test, again[1])
    assert not same(test, random_split(data, test_size=0.25, seed=4)[1])
    assert train.timestamps is not None and len(train.timestamps) == len(train)


def test_random_split_tiny() -> None:
    r = Ratings.from_arrays([1, 2], [1, 1], [3, 4])
    train, test = random_split(r, test_size=0.01)
    assert len(train) == len(test) == 1


def test_kfold_partitions(data: Ratings) -> None:
    folds = list(kfold(data, k=4, seed=5))
    assert len(folds) == 4
    tests = np.concatenate([keys(test) for _, test in folds])
    assert len(tests) == len(data) and len(np.unique(tests)) == len(data)
    assert set(tests.tolist()) == set(keys(data).tolist())
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        check_pieces(data, train, test)
    again = list(kfold(data, k=4, seed=5))
    assert all(same(a[1], b[1]) for a, b in zip(folds, again))


# ---------------------------------------------------------------------------- per user
def test_user_split_keeps_a_training_rating(data: Ratings) -> None:
    train, test = user_split(data, test_size=0.3, seed=2)
    check_pieces(data, train, test)
    test_users = np.unique(test.user_indices)
    assert np.all(train.user_counts[test_users] >= 1)
    singles = np.flatnonzero(data.user_counts == 1)
    assert len(singles) >= 3 and np.all(test.user_counts[singles] == 0)
    # each user gives round(0.3 * count) ratings, capped at count - 1
    counts = data.user_counts
    expected = np.minimum(np.floor(0.3 * counts + 0.5), np.maximum(counts - 1, 0))
    np.testing.assert_array_equal(test.user_counts, expected)
    again = user_split(data, test_size=0.3, seed=2)
    assert same(test, again[1])
    assert not same(test, user_split(data, test_size=0.3, seed=9)[1])


def test_user_split_n_test(data: Ratings) -> None:
    train, test = user_split(data, n_test=2, seed=0)
    check_pieces(data, train, test)
    counts = data.user_counts
    np.testing.assert_array_equal(test.user_counts, np.minimum(2, np.maximum(counts - 1, 0)))
    assert np.all(train.user_counts[counts > 0] >= 1)


def test_per_user_splits_without_test_ratings_raise() -> None:
    singles = Ratings.from_arrays([1, 2, 3], [1, 1, 1], [1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="no test ratings"):
        user_split(singles)
    with pytest.raises(ValueError, match="no test ratings: with n_test=1"):
        temporal_split(singles, per_user=True, n_test=1)
    pairs = Ratings.from_arrays([1, 1, 2, 2], [1, 2, 1, 2], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="test_size=0.2"):
        user_split(pairs, test_size=0.2)  # round(0.4) = 0 per user
    assert len(user_split(pairs, n_test=1)[1]) == 2


# ---------------------------------------------------------------------------- temporal
def test_temporal_split_global(data: Ratings) -> None:
    train, test = temporal_split(data, test_size=0.2)
    check_pieces(data, train, test)
    assert len(test) == round(0.2 * len(data))
    assert train.timestamps.max() <= test.timestamps.min()
    # ties at the cutoff go by row order: the result does not depend on anything random
    assert same(test, temporal_split(data, test_size=0.2)[1])


def test_temporal_split_per_user(data: Ratings) -> None:
    train, test = temporal_split(data, test_size=0.25, per_user=True)
    check_pieces(data, train, test)
    tr_last = np.full(data.n_users, -1)
    np.maximum.at(tr_last, train.user_indices, train.timestamps)
    te_first = np.full(data.n_users, np.iinfo(np.int64).max)
    np.minimum.at(te_first, test.user_indices, test.timestamps)
    users = np.unique(test.user_indices)
    assert np.all(tr_last[users] <= te_first[users])
    assert np.all(train.user_counts[users] >= 1)
    counts = data.user_counts
    np.testing.assert_array_equal(
        test.user_counts, np.minimum(np.floor(0.25 * counts + 0.5), np.maximum(counts - 1, 0))
    )


def test_temporal_split_leave_last_out() -> None:
    r = Ratings.from_arrays(["a", "a", "a", "b", "b", "c"], [1, 2, 3, 1, 2, 1], [1, 2, 3, 4, 5, 1], [30, 10, 20, 5, 6, 1])
    train, test = temporal_split(r, per_user=True, n_test=1)
    assert set(zip(test.raw_users.tolist(), test.raw_items.tolist())) == {("a", 1), ("b", 2)}
    assert len(train) == 4


def test_temporal_split_needs_timestamps() -> None:
    r = make_ratings(ts=False)
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(r)


# ---------------------------------------------------------------------------- held-out users
def test_holdout_users(data: Ratings) -> None:
    train, held = holdout_users(data, fraction=0.25, seed=1)
    check_pieces(data, train, held)
    held_users = np.flatnonzero(held.user_counts)
    train_users = np.flatnonzero(train.user_counts)
    assert len(np.intersect1d(held_users, train_users)) == 0
    active = np.flatnonzero(data.user_counts)
    assert len(held_users) == round(0.25 * len(active))
    np.testing.assert_array_equal(held.user_counts[held_users], data.user_counts[held_users])
    assert same(held, holdout_users(data, fraction=0.25, seed=1)[1])


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.2", None, True])
def test_bad_fractions(data: Ratings, bad) -> None:
    calls = [lambda: random_split(data, test_size=bad), lambda: holdout_users(data, fraction=bad)]
    if bad is not None:  # the per-user splits take test_size=None as "the default, 0.2" (or n_test)
        calls += [lambda: user_split(data, test_size=bad), lambda: temporal_split(data, test_size=bad)]
    for call in calls:
        with pytest.raises(ValueError, match="between 0 and 1"):
            call()


def test_test_size_and_n_test_together_and_flags_that_are_not_bools_are_refused(data: Ratings) -> None:
    """user_split(test_size=0.2, n_test=1) used n_test silently; per_user="no" split per user."""
    for split in (user_split, temporal_split):
        with pytest.raises(ValueError, match="give test_size or n_test, not both"):
            split(data, test_size=0.3, n_test=1)
    assert len(user_split(data, seed=0)[1]) == len(user_split(data, test_size=0.2, seed=0)[1])
    with pytest.raises(ValueError, match="per_user must be True or False, got 'no'"):
        temporal_split(data, per_user="no")


def test_bad_counts(data: Ratings) -> None:
    for k in (1, 0, 2.5, "3"):
        with pytest.raises(ValueError, match="k must be an integer >= 2"):
            kfold(data, k=k)
    with pytest.raises(ValueError, match="at least 1000 ratings"):
        kfold(data, k=1000)
    for n in (0, -1, 1.5):
        with pytest.raises(ValueError, match="n_test must be an integer >= 1"):
            user_split(data, n_test=n)
    one = Ratings.from_arrays([1], [1], [1])
    with pytest.raises(ValueError, match="need at least 2"):
        random_split(one)
    with pytest.raises(ValueError, match="at least 2 users"):
        holdout_users(Ratings.from_arrays([1, 1], [1, 2], [1, 2]))
    with pytest.raises(TypeError):
        random_split([1, 2, 3])  # type: ignore[arg-type]
