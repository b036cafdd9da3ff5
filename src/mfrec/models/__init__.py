"""Rating models: one estimator family per file, all on the shared `FactorModel` base."""

from mfrec.models.als import ALS
from mfrec.models.base import FactorModel
from mfrec.models.baseline import Baseline
from mfrec.models.implicit import ImplicitALS
from mfrec.models.sgd import BiasedMF, FunkMF
from mfrec.models.svdpp import SVDpp

__all__ = ["ALS", "Baseline", "BiasedMF", "FactorModel", "FunkMF", "ImplicitALS", "SVDpp"]
