"""mfrec: matrix-factorization recommenders on fast Numba kernels, raw ids in and out."""

from mfrec import split
from mfrec.data.attributes import AttributeEncoder
from mfrec.data.datasets import AmbiguousTitleError, Dataset, TitleMatch, find_items, load_dataset, match_title, read_items
from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import synthetic
from mfrec.evaluation import metrics
from mfrec.errors import (DataError, DatasetNotFoundError, InvalidParameterError, ModelFileError, NotFittedError,
                          TrainingDivergedError)
from mfrec.evaluate import cross_validate, evaluate
from mfrec.persist import load_model, save_model
from mfrec.tune import TuneResult, tune
from mfrec.models import ALS, BPR, CMF, Baseline, BayesianFM, BayesianMF, BiasedMF, FactorModel, FunkMF, ImplicitALS, SVDpp

__version__ = "0.1.0"

__all__ = [
    "ALS",
    "BPR",
    "AmbiguousTitleError",
    "AttributeEncoder",
    "CMF",
    "Baseline",
    "BayesianFM",
    "BayesianMF",
    "BiasedMF",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "FactorModel",
    "FunkMF",
    "IdMap",
    "InvalidParameterError",
    "ImplicitALS",
    "ModelFileError",
    "NotFittedError",
    "Ratings",
    "SVDpp",
    "TitleMatch",
    "TrainingDivergedError",
    "TuneResult",
    "__version__",
    "cross_validate",
    "evaluate",
    "find_items",
    "load_dataset",
    "load_model",
    "match_title",
    "metrics",
    "read_items",
    "save_model",
    "split",
    "synthetic",
    "tune",
]
