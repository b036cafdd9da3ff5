"""FunkMF (SGD without biases), plain and minibatch: the model contract plus its own checks."""

from __future__ import annotations

from mfrec import FunkMF
from mfrec.testing import ModelContract


class TestFunkMF(ModelContract):
    model = FunkMF
    small = {"factors": 4, "epochs": 4}
    # FunkMF has no biases but k + 2 factors can represent them exactly:
    # [p_u, mu + b_u, 1] . [q_i, 1, b_i] = mu + b_u + b_i + p_u . q_i (and SGD escapes saddles
    # much more reliably when over-parametrized)
    recovery = dict(factors=10, epochs=60, learning_rate=0.02, regularization=0.01, learning_rate_decay=1.0,
                    seed=0, threads=1)
    overfit = dict(factors=30, epochs=60, learning_rate=0.05, regularization=0.0, learning_rate_decay=1.0,
                   threads=1)


class TestFunkMFMinibatch(ModelContract):
    model = FunkMF
    small = {"factors": 4, "epochs": 4, "batch_size": 16, "learning_rate": 0.005}
    recovery = dict(factors=7, epochs=100, learning_rate=0.005, regularization=0.01, batch_size=32, seed=0,
                    threads=1)


def test_funkmf_has_no_biases(small):
    train, _ = small
    model = FunkMF(factors=4, epochs=3).fit(train)
    assert model.global_mean_ == 0.0
    assert not model.user_bias_.any() and not model.item_bias_.any()
