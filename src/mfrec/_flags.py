"""The one check of a boolean flag argument: a real bool, so ``"no"`` (truthy) is refused."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; ValueError naming ``name`` unless it is True or False (numpy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)
