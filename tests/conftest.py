"""Shared fixtures. Real-data tests read MovieLens from MFREC_DATA_DIR; with MFREC_REQUIRE_DATA=1
(as CI sets) a missing dataset fails the test instead of skipping it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A threads=2 SGD fit that starts while other processes take the cores runs as the threads=1 fit
# (mfrec.threads.start_threads): tests that compare multi-thread fits must not depend on what else
# the machine runs. tests/test_threads.py and tests/models/test_dynamic_threads.py turn it back on.
os.environ["MFREC_DYNAMIC_THREADS"] = "0"


def _require_data() -> bool:
    return os.environ.get("MFREC_REQUIRE_DATA", "") not in ("", "0", "false", "no")


def dataset_dir(name: str) -> Path:
    """The folder of a MovieLens dataset under MFREC_DATA_DIR, or skip/fail the test."""
    root = os.environ.get("MFREC_DATA_DIR")
    folder = Path(root) / name if root else None
    if folder is None or not folder.is_dir():
        msg = f"dataset {name!r} not found under MFREC_DATA_DIR={root!r}"
        if _require_data():
            pytest.fail(msg + " (MFREC_REQUIRE_DATA=1 turns this skip into a failure)")
        pytest.skip(msg)
    return folder


@pytest.fixture(scope="session")
def data_root() -> Path:
    dataset_dir("ml-100k")
    return Path(os.environ["MFREC_DATA_DIR"])
