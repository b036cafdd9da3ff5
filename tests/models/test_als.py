"""ALS (explicit alternating least squares, CG or exact solver): the model contract plus its own checks."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import ALS
from mfrec.testing import ModelContract, rmse


class TestALS(ModelContract):
    model = ALS
    small = {"factors": 4, "iterations": 3, "regularization": 1.0}
    recovery = dict(factors=5, iterations=10, regularization=0.5, bias_regularization=0.5, seed=0, threads=1)
    overfit = dict(factors=5, iterations=30, regularization=0.1, bias_regularization=0.1, threads=1)
    refold = dict(factors=3, iterations=30, regularization=1.0, solver="cholesky", threads=1)


class TestALSCholesky(ModelContract):
    model = ALS
    small = {"factors": 4, "iterations": 3, "regularization": 1.0, "solver": "cholesky"}
    recovery = dict(factors=5, iterations=10, regularization=0.5, bias_regularization=0.5, solver="cholesky",
                    seed=0, threads=1)


def test_exact_als_loss_never_increases(small):
    train, _ = small
    model = ALS(factors=4, iterations=8, regularization=0.7, bias_regularization=0.3, solver="cholesky",
                threads=1).fit(train)
    loss = model.history_["loss"].to_numpy()
    assert np.all(np.diff(loss) <= 1e-6 * loss[:-1]), loss


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_reported_train_rmse_is_the_fitted_models_train_rmse(solver, small):
    """ALS reports the SSE after the half-step, i.e. of the final model."""
    train, _ = small
    model = ALS(factors=4, iterations=3, regularization=1.0, solver=solver).fit(train)
    unclipped = model.predict_ratings(train, clip=False)
    assert model.history_["train_rmse"].iloc[-1] == pytest.approx(rmse(unclipped, train.values), rel=1e-4)


def test_als_cg_matches_cholesky(small):
    """solver='cg' (warm-started conjugate gradient) reaches the exact solver's accuracy, and
    with enough steps (k + 1) one iteration equals the exact solve."""
    train, test = small
    a = ALS(factors=4, iterations=10, solver="cg", threads=1).fit(train)
    b = ALS(factors=4, iterations=10, solver="cholesky", threads=1).fit(train)
    assert a.score(test) == pytest.approx(b.score(test), abs=0.01)
    c = ALS(factors=4, iterations=1, solver="cg", cg_steps=5, threads=1).fit(train)
    d = ALS(factors=4, iterations=1, solver="cholesky", threads=1).fit(train)
    np.testing.assert_allclose(c.user_factors_, d.user_factors_, atol=1e-3)


def test_float64_dtype(small):
    train, test = small
    m64 = ALS(factors=4, iterations=3, regularization=1.0, dtype="float64", threads=1).fit(train)
    m32 = ALS(factors=4, iterations=3, regularization=1.0, dtype="float32", threads=1).fit(train)
    assert m64.user_factors_.dtype == np.float64 and m64.item_factors_.dtype == np.float64
    assert m32.user_factors_.dtype == np.float32
    assert m64.score(test) == pytest.approx(m32.score(test), rel=5e-3)


@pytest.mark.parametrize("value", ["lu", "", None, 3, "CG"])
def test_string_choices_are_checked(value, tiny):
    with pytest.raises(ValueError, match="solver must be one of"):
        ALS(solver=value).fit(tiny)
