"""BiasedMF (SGD with biases): the model contract plus its own checks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import mfrec
from mfrec import BiasedMF, Ratings, TrainingDivergedError
from mfrec.testing import ModelContract, additive_ratings
from tests.models.test_sgd import BIASED_SGD_CONTRACT


class TestBiasedMF(ModelContract):
    model = BiasedMF
    small = BIASED_SGD_CONTRACT["small"]
    recovery = BIASED_SGD_CONTRACT["recovery"]
    overfit = BIASED_SGD_CONTRACT["overfit"]


def test_float64_dtype(small):
    train, test = small
    m64 = BiasedMF(factors=4, epochs=4, dtype="float64", threads=1).fit(train)
    m32 = BiasedMF(factors=4, epochs=4, dtype="float32", threads=1).fit(train)
    assert m64.user_factors_.dtype == np.float64 and m64.item_factors_.dtype == np.float64
    assert m32.user_factors_.dtype == np.float32
    assert m64.score(test) == pytest.approx(m32.score(test), rel=5e-3)


def test_clipping_is_doing_something():
    """An additive fit extrapolates beyond the training scale on the held-out pairs."""
    ratings, all_u, all_i = additive_ratings()
    model = BiasedMF(factors=4, epochs=20).fit(ratings)
    assert model.predict(all_u, all_i, clip=False).max() > 3.1


def test_divergence_raises_a_clear_error():
    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(30), 10)
    i = np.tile(np.arange(10), 30)
    r = Ratings.from_arrays(u, i, rng.integers(1, 6, 300))
    with pytest.raises(TrainingDivergedError, match="diverged at epoch"):
        BiasedMF(factors=3, learning_rate=5.0, learning_rate_decay=1.0, regularization=0.0).fit(r)


def test_unknown_counts_are_per_call_and_per_thread(small):
    """8 threads predicting with different numbers of unknown users: each sees its own counts,
    both in the returned counts and in ``unknown_`` (per thread), never another thread's."""
    train, _ = small
    model = BiasedMF(factors=4, epochs=2, threads=1).fit(train)
    known_u, known_i = train.raw_users[0], train.raw_items[0]
    n_threads, rounds = 8, 200
    barrier = threading.Barrier(n_threads)
    wrong: list = []

    def work(t: int) -> None:
        users = [known_u] * 8
        users[:t] = [10_000 + j for j in range(t)]  # thread t asks about t unknown users
        barrier.wait()
        try:
            for _ in range(rounds):
                model.predict(users, [known_i] * 8)
                seen_after = model.unknown_["users"]  # the attribute, as read before issue 13
                _, counts = model.predict(users, [known_i] * 8, return_unknown=True)
                if counts["users"] != t or seen_after != t:
                    wrong.append((t, counts["users"], seen_after))
        except Exception as exc:  # an exception in a thread would otherwise not fail the test
            wrong.append((t, repr(exc)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not wrong, f"{len(wrong)} of {n_threads * rounds} reads saw another call's counts, e.g. {wrong[:3]}"
    with pytest.raises(AttributeError, match="unknown_"):  # a thread that never predicted has no counts
        result: list = []
        th = threading.Thread(target=lambda: result.append(_read_unknown(model)))
        th.start()
        th.join()
        raise result[0]


def _read_unknown(model):
    try:
        return model.unknown_
    except AttributeError as exc:
        return exc


def test_finite_divergence_and_kernel_failures_are_training_diverged_errors():
    """An error 1e4 times the rating range is divergence though finite; a ridge system that is
    not positive definite or a division by zero in a kernel is named, not a numpy traceback."""
    r = mfrec.synthetic(200, 80, 3000, seed=0)
    with pytest.raises(TrainingDivergedError, match="over 10x the rating range"):
        mfrec.FunkMF(batch_size=10**9, epochs=6, seed=0, threads=1).fit(r)
    with pytest.raises(TrainingDivergedError, match="cannot train with these parameters.*LinAlgError"):
        mfrec.ALS(factors=20, regularization=0.0, solver="cholesky", iterations=2, threads=1).fit(r)


def test_factor_matrices_larger_than_the_machine_are_refused_before_allocating():
    r = mfrec.synthetic(50, 30, 400, seed=0)
    with pytest.raises(MemoryError, match=r"factors=1000000000\) needs at least .* GiB"):
        mfrec.FunkMF(factors=10**9, epochs=1, threads=1).fit(r)
