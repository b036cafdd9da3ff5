"""Optional dependencies, imported only when a feature needs them, with the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

PARQUET_MISSING = "Parquet support needs the parquet extra: pip install 'mfrec[parquet]'"


def require_parquet() -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet)``, or an ImportError naming the extra to install."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ImportError(PARQUET_MISSING) from None
    return pa, pq
