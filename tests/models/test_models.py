"""Across the models: every registered model has a contract test class, and the contract's own
machinery (the invalid-value generator) is right. Each model's checks live in its own
``test_<model>.py``, which inherits `mfrec.testing.ModelContract`."""

from __future__ import annotations

import importlib
import numbers
import pkgutil
from pathlib import Path

import pytest

from mfrec.models import registry
from mfrec.testing import ModelContract, invalid_values, is_allowed


def _contract_classes() -> list[type]:
    """Every ModelContract subclass defined in tests/models (their modules imported)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("test_"):
            importlib.import_module(f"{__package__}.{info.name}")
    found, todo = [], list(ModelContract.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith(f"{__package__}.test_")]


def test_every_registered_model_has_a_contract_test_class():
    """A new model registered in mfrec without a ``tests/models/test_<model>.py`` whose class
    inherits ModelContract fails here (models registered by tests themselves are not ours)."""
    covered = {getattr(c, "model", None) for c in _contract_classes()}
    ours = {name: registry.model_class(name) for name in registry.names()}
    ours = {name: cls for name, cls in ours.items() if cls.__module__.startswith("mfrec.")}
    assert len(ours) >= 10
    missing = sorted(name for name, cls in ours.items() if cls not in covered)
    assert not missing, f"registered models without a ModelContract test class in tests/models: {missing}"


def test_contract_classes_are_collected_as_tests():
    for cls in _contract_classes():
        assert cls.__name__.startswith("Test"), f"{cls.__module__}.{cls.__name__} is not collected by pytest"
        assert isinstance(cls.model, type)


# ------------------------------------------------------------------------------ the invalid-value generator
class Interval:
    """A stand-in with the documented shape of mfrec.models.params.Interval."""

    def __init__(self, type, low, high, closed="left"):
        self.type, self.low, self.high, self.closed = type, low, high, closed


class Options:
    def __init__(self, *values):
        self.values = values


def test_invalid_values_lie_just_outside_every_form():
    constraints = {
        "factors": [Interval(numbers.Integral, 0, None, closed="left")],
        "rate": [Interval(numbers.Real, 0, 1, closed="right")],
        "seed": [Interval(numbers.Integral, 0, None), None],
        "solver": [Options("cg", "cholesky")],
        "flag": [bool],
    }
    bad: dict[str, list] = {}
    for name, value in invalid_values(constraints):
        bad.setdefault(name, []).append(value)
    assert set(bad) == set(constraints)

    def has(name: str, value) -> bool:  # by type too: True == 1 and 1.0 == 1 are other values
        return any(type(v) is type(value) and (v == value or v != v and value != value) for v in bad[name])

    assert has("factors", -1) and not has("factors", 0) and has("factors", 2.5)
    assert has("factors", "3") and has("factors", None) and has("factors", True)
    assert has("rate", 0) and not has("rate", 1) and has("rate", 1.001) and has("rate", float("nan"))
    assert not has("seed", None) and has("seed", -1)
    assert has("solver", "no-such-option") and has("solver", "CG") and has("solver", None)
    assert has("flag", "yes") and has("flag", 1) and not has("flag", True)
    for name, values in bad.items():
        assert not any(is_allowed(v, constraints[name]) for v in values), name


@pytest.mark.parametrize("value,ok", [(0, True), (5, True), (-1, False), (2.0, False), (True, False), ("1", False),
                                      (None, True)])
def test_is_allowed_reads_integral_intervals_strictly(value, ok):
    assert is_allowed(value, [Interval(numbers.Integral, 0, None), None]) is ok


@pytest.mark.parametrize("value,ok", [(0.5, True), (1, True), (0.0, False), (float("nan"), False), (False, False)])
def test_is_allowed_reads_real_intervals(value, ok):
    assert is_allowed(value, [Interval(numbers.Real, 0, 1, closed="right")]) is ok
