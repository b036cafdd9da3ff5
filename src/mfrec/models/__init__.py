"""Rating and ranking models: one estimator family per file, all on the shared `FactorModel` base."""

from mfrec.models.als import ALS
from mfrec.models.base import FactorModel
from mfrec.models.bpr import BPR
from mfrec.models.bayes import BayesianMF
from mfrec.models.bfm import BayesianFM
from mfrec.models.baseline import Baseline
from mfrec.models.cmf import CMF
from mfrec.models.implicit import ImplicitALS
from mfrec.models.sgd import BiasedMF, FunkMF
from mfrec.models.registry import MODEL_NAMES, model_class, register_model
from mfrec.models.svdpp import SVDpp

__all__ = ["ALS", "BPR", "Baseline", "BayesianFM", "BayesianMF", "BiasedMF", "CMF", "FactorModel", "FunkMF", "ImplicitALS", "MODEL_NAMES", "SVDpp", "model_class", "register_model"]
