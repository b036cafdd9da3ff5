"""ImplicitALS (Hu, Koren & Volinsky confidence-weighted ALS; preference scores): the model
contract plus its own checks. The CG kernel is tested in test_implicit_cg_kernel.py."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import ImplicitALS
from mfrec.testing import ModelContract


class TestImplicitALS(ModelContract):
    model = ImplicitALS
    small = {"factors": 4, "iterations": 3, "regularization": 0.5}
    refold = dict(factors=3, iterations=30, regularization=1.0, solver="cholesky", threads=1)
    refold_atol = 0.05


@pytest.mark.parametrize("name", ["solver", "confidence"])
@pytest.mark.parametrize("value", ["lu", "", None, 3, "CG"])
def test_string_choices_are_checked(name, value, tiny):
    with pytest.raises(ValueError, match=f"{name} must be one of"):
        ImplicitALS(**{name: value}).fit(tiny)


def test_validation_is_refused(tiny):
    with pytest.raises(ValueError, match="ranking metrics"):
        ImplicitALS(iterations=1).fit(tiny, validation=tiny)


@pytest.mark.parametrize("cls", ["ImplicitALS", "FunkMF"])
def test_a_model_without_biases_needs_factors(cls, tiny):
    """factors=0 fitted a model whose every score was 0 (ranking in id order); models with
    biases (BiasedMF, ALS, BPR's item biases) keep factors=0 as a biases-only model."""
    import mfrec

    with pytest.raises(ValueError, match="factors must be an integer >= 1, got 0"):
        getattr(mfrec, cls)(factors=0).fit(tiny)
    bias_only = mfrec.BiasedMF(factors=0, epochs=2).fit(tiny)
    assert np.isfinite(bias_only.predict(tiny.raw_users[:3], tiny.raw_items[:3])).all()
