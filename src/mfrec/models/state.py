"""`ModelState`: a fitted model as plain data (imports no model code, so `mfrec.persist` can use it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class ModelState:
    """A fitted model as plain data: what `FactorModel.get_state` returns, `FactorModel.from_state`
    builds a model from, and a model file holds (`mfrec.persist`).

    ``arrays`` are exactly the class's declared ``_array_specs``; ``meta`` holds ``rating_scale``,
    ``global_mean``, ``train_mean``, ``n_train``, ``best_epoch``, ``history`` (list of records) and
    ``metrics``."""

    params: dict[str, Any]
    arrays: dict[str, np.ndarray]
    user_ids: np.ndarray
    item_ids: np.ndarray
    seen: sp.csr_matrix
    meta: dict[str, Any]
    item_info: pd.DataFrame | None = None
