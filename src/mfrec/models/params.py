"""Declared hyperparameter constraints, checked in one place (after scikit-learn's
``_parameter_constraints``).

A model declares, per ``__init__`` parameter, the list of forms it accepts::

    _parameter_constraints = {
        "factors": [Interval(Integral, 1, None)],           # an integer >= 1
        "regularization": [Interval(Real, 0, None)],        # a finite number >= 0
        "bias_regularization": [Interval(Real, 0, None), None],   # ... or None
        "solver": [Options("cholesky", "cg")],
        "weighted": [bool],                                  # a real bool ("yes" is refused)
    }

`check_params` raises :class:`mfrec.errors.InvalidParameterError` (a ValueError and a TypeError)
naming the parameter, the forms it accepts and the value it got.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable, Mapping

import numpy as np

from mfrec.errors import InvalidParameterError

__all__ = ["FloatDType", "Integral", "Interval", "Options", "Real", "check_params", "describe"]


class Interval:
    """An integer (``Integral``) or a finite real number (``Real``) between ``low`` and ``high``
    (``None``: unbounded); ``closed`` says which ends are included ("left", "right", "both",
    "neither"). Bools are never numbers here."""

    def __init__(self, kind: type, low: float | None, high: float | None, *, closed: str = "left") -> None:
        if kind not in (Integral, Real):
            raise TypeError("Interval kind must be numbers.Integral or numbers.Real")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be 'left', 'right', 'both' or 'neither', got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.kind):
            return False
        if self.kind is Real and not math.isfinite(float(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        what = "an integer" if self.kind is Integral else "a finite number"
        left_in = self.closed in ("left", "both")
        right_in = self.closed in ("right", "both")
        if self.low is not None and self.high is not None:
            return f"{what} in {'[' if left_in else '('}{self.low:g}, {self.high:g}{']' if right_in else ')'}"
        if self.low is not None:
            return f"{what} {'>=' if left_in else '>'} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<=' if right_in else '<'} {self.high:g}"
        return what


class Options:
    """One of a fixed set of strings."""

    def __init__(self, *values: str) -> None:
        self.values = tuple(values)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values

    def __str__(self) -> str:
        return f"one of {', '.join(map(repr, self.values))}"


class FloatDType:
    """A float dtype the kernels are compiled for: ``"float32"`` or ``"float64"`` (or the numpy
    type / dtype of one)."""

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (str, np.dtype, type)):  # None (numpy's float64) and scalars are no dtype
            return False
        try:
            return np.dtype(value) in (np.dtype(np.float32), np.dtype(np.float64))
        except TypeError:
            return False

    def __str__(self) -> str:
        return "'float32' or 'float64'"


def _accepts(form: Any, value: Any) -> bool:
    if form is None:
        return value is None
    if form is bool:
        return isinstance(value, (bool, np.bool_))
    return bool(form.accepts(value))


def describe(forms: Iterable[Any]) -> str:
    """The accepted forms as words: ``"None or an integer >= 0"``."""
    words = []
    for form in forms:
        words.append("None" if form is None else "True or False" if form is bool else str(form))
    return " or ".join(words)


def check_params(owner: str, params: Mapping[str, Any], constraints: Mapping[str, list]) -> None:
    """InvalidParameterError for the first parameter whose value matches none of its forms."""
    for name, value in params.items():
        forms = constraints.get(name)
        if forms is None:
            raise InvalidParameterError(f"{owner} declares no constraint for parameter {name!r}")
        if not any(_accepts(form, value) for form in forms):
            raise InvalidParameterError(f"{name} must be {describe(forms)}, got {value!r}")
