"""Every model with default hyperparameters on the official ml-100k u1 split.

Reads MovieLens from MFREC_DATA_DIR (skips when it is missing; fails with MFREC_REQUIRE_DATA=1).
The upper bounds are the observed RMSEs (seeds 0-3, 1 and 2 threads) plus ~0.01 slack:
Baseline 0.960, BiasedMF 0.918-0.921, SVDpp 0.911-0.913, ALS 0.925, FunkMF 0.939-0.944.
"""

from __future__ import annotations

import numpy as np
import pytest

import mfrec
from mfrec import ALS, Baseline, BayesianMF, BiasedMF, FunkMF, Ratings, SVDpp
from tests.conftest import dataset_dir

pytestmark = pytest.mark.realdata

UPPER_BOUNDS = {
    "BiasedMF": (BiasedMF, 0.93),
    "SVDpp": (SVDpp, 0.925),
    "ALS": (ALS, 0.935),
    "FunkMF": (FunkMF, 0.955),
    "BayesianMF": (BayesianMF, 0.915),
}


@pytest.fixture(scope="module")
def u1() -> tuple[Ratings, Ratings]:
    folder = dataset_dir("ml-100k")
    ds = mfrec.load_dataset("ml-100k", data_dir=folder.parent, download=False, progress=False)
    return ds.official_split("u1")


@pytest.fixture(scope="module")
def baseline_rmse(u1) -> float:
    train, test = u1
    return Baseline().fit(train).score(test)


def test_u1_split_shape(u1):
    train, test = u1
    assert (len(train), len(test)) == (80_000, 20_000)
    assert train.user_map is test.user_map and train.item_map is test.item_map
    assert train.rating_range == (1.0, 5.0)


def test_u1_matches_reading_the_files_with_shared_maps(u1):
    """The loader's split equals reading u1.base / u1.test with the id maps of u.data."""
    folder = dataset_dir("ml-100k")
    full = Ratings.read_csv(folder / "u.data", sep="\t")
    train, test = u1
    for name, ref in (("u1.base", train), ("u1.test", test)):
        part = Ratings.read_csv(folder / name, sep="\t", user_map=full.user_map, item_map=full.item_map)
        assert len(part) == len(ref)
        got = set(zip(part.raw_users.tolist(), part.raw_items.tolist(), part.values.tolist()))
        want = set(zip(ref.raw_users.tolist(), ref.raw_items.tolist(), ref.values.tolist()))
        assert got == want


def test_baseline_on_u1(baseline_rmse):
    assert 0.94 < baseline_rmse < 0.965


@pytest.mark.parametrize("name", list(UPPER_BOUNDS))
def test_factor_model_defaults_beat_baseline_on_u1(name, u1, baseline_rmse):
    cls, bound = UPPER_BOUNDS[name]
    train, test = u1
    model = cls(seed=0).fit(train)
    pred = model.predict_ratings(test)
    assert np.all(np.isfinite(pred)) and pred.min() >= 1.0 and pred.max() <= 5.0
    score = model.score(test)
    assert score < bound, f"{name} RMSE {score:.4f} on u1.test (bound {bound})"
    assert score < baseline_rmse - 0.01, f"{name} {score:.4f} vs Baseline {baseline_rmse:.4f}"
    # u1.test ids come from the shared u.data maps; items without a u1.base rating count as unknown
    untrained_items = int((train.item_counts[test.item_indices] == 0).sum())
    assert untrained_items == 32
    assert model.unknown_ == {"users": 0, "items": untrained_items}
