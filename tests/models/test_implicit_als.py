"""ImplicitALS (Hu, Koren & Volinsky confidence-weighted ALS; preference scores): the model
contract plus its own checks. The CG kernel is tested in test_implicit_cg_kernel.py."""

from __future__ import annotations

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
