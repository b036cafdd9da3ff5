"""Rating and ranking models: one estimator family per file, all on the shared `FactorModel` base.

The names are imported on first use (see `mfrec._lazy`): ``mfrec.models.registry`` (the model
names for ``mfrec --help``) is importable without loading any model or Numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

#: every public name -> the module it comes from
_LAZY: dict[str, str] = {
    "ALS": "mfrec.models.als",
    "BPR": "mfrec.models.bpr",
    "Baseline": "mfrec.models.baseline",
    "BayesianFM": "mfrec.models.bfm",
    "BayesianMF": "mfrec.models.bayes",
    "BiasedMF": "mfrec.models.sgd",
    "CMF": "mfrec.models.cmf",
    "FactorModel": "mfrec.models.base",
    "FunkMF": "mfrec.models.sgd",
    "ImplicitALS": "mfrec.models.implicit",
    "MODEL_NAMES": "mfrec.models.registry",
    "SVDpp": "mfrec.models.svdpp",
    "model_class": "mfrec.models.registry",
    "register_model": "mfrec.models.registry",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from mfrec.models.als import ALS
    from mfrec.models.base import FactorModel
    from mfrec.models.baseline import Baseline
    from mfrec.models.bayes import BayesianMF
    from mfrec.models.bfm import BayesianFM
    from mfrec.models.bpr import BPR
    from mfrec.models.cmf import CMF
    from mfrec.models.implicit import ImplicitALS
    from mfrec.models.registry import MODEL_NAMES, model_class, register_model
    from mfrec.models.sgd import BiasedMF, FunkMF
    from mfrec.models.svdpp import SVDpp
else:
    from mfrec._lazy import attach

    __getattr__, __dir__ = attach(__name__, _LAZY)
    del attach
