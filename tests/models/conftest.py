"""Shared data of the model tests (session-scoped: generated once)."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec import Ratings
from mfrec.split import random_split
from mfrec.testing import planted


@pytest.fixture(scope="session")
def small() -> tuple[Ratings, Ratings]:
    """60 users x 40 items, 700 planted ratings of rank 3, split 80/20."""
    ratings, _ = planted(60, 40, 700, 3, 0.3, seed=11)
    return random_split(ratings, 0.2, seed=0)


@pytest.fixture(scope="session")
def tiny() -> Ratings:
    """12 users x 5 items, 60 ratings: for parameter checks that fit."""
    rng = np.random.default_rng(0)
    return Ratings.from_arrays(np.arange(60) % 12, np.arange(60) // 12, rng.integers(1, 6, 60))
