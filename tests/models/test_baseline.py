"""Baseline (biases only, alternating exact updates): the model contract plus its own checks."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import Baseline
from mfrec.split import random_split
from mfrec.testing import RECOVERY_NOISE, ModelContract, additive_ratings, assert_same_fit, planted, planted_split, rmse


class TestBaseline(ModelContract):
    model = Baseline
    small = {"iterations": 4}
    random_init = False
    overfit = dict(iterations=30, user_regularization=0.0, item_regularization=0.0)
    refold = dict(iterations=30)


def test_baseline_recovers_biases_but_not_interactions():
    train, test, _, baseline_rmse = planted_split()
    assert 0.3 < baseline_rmse < 1.0  # the factor term has std ~0.6: biases alone cannot fit it
    # still clearly better than predicting the global mean
    assert baseline_rmse < rmse(np.full(len(test), train.global_mean), test.values) - 0.1


def test_baseline_recovers_planted_biases_without_interactions():
    ratings, truth = planted(200, 150, 12000, 0, RECOVERY_NOISE, seed=4)
    train, test = random_split(ratings, 0.2, seed=0)
    model = Baseline(user_regularization=1.0, item_regularization=1.0).fit(train)
    assert model.score(test) < 2 * RECOVERY_NOISE + 0.05
    centered = truth["user_bias"] - truth["user_bias"].mean()
    fitted = model.user_bias_ - model.user_bias_.mean()
    assert np.corrcoef(centered, fitted)[0, 1] > 0.95


def test_baseline_loss_never_increases(small):
    train, _ = small
    loss = Baseline(iterations=8).fit(train).history_["loss"].to_numpy()
    assert np.all(np.diff(loss) <= 1e-9 * loss[:-1]), loss


def test_reported_train_rmse_is_the_fitted_models_train_rmse(small):
    """Baseline reports the SSE after the (half-)step, i.e. of the final model."""
    train, _ = small
    model = Baseline(iterations=4).fit(train)
    unclipped = model.predict_ratings(train, clip=False)
    assert model.history_["train_rmse"].iloc[-1] == pytest.approx(rmse(unclipped, train.values), rel=1e-4)


def test_baseline_does_not_depend_on_the_seed(small):
    train, _ = small
    assert_same_fit(Baseline(seed=1).fit(train), Baseline(seed=2, threads=2).fit(train))


def test_clipping_is_doing_something():
    """An additive fit extrapolates beyond the training scale on the held-out pairs."""
    ratings, all_u, all_i = additive_ratings()
    model = Baseline(iterations=4).fit(ratings)
    assert model.predict(all_u, all_i, clip=False).max() > 3.1
