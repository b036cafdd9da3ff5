"""mfrec: matrix-factorization recommenders on fast Numba kernels, raw ids in and out.

``import mfrec`` is the one import users need, and it is cheap: every public name is imported on
first use (``mfrec.BiasedMF`` imports the models, ``mfrec.metrics`` the metrics), so the command
line answers ``--help`` without loading pandas, scipy or Numba. ``_LAZY`` is the list of names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: every public name -> the module it comes from (``"mfrec"``: the submodule of that name;
#: ``metrics`` is the module ``mfrec.evaluation.metrics``)
_LAZY: dict[str, str] = {
    "ALS": "mfrec.models",
    "AmbiguousTitleError": "mfrec.data.datasets",
    "AttributeEncoder": "mfrec.data.attributes",
    "BPR": "mfrec.models",
    "Baseline": "mfrec.models",
    "BayesianFM": "mfrec.models",
    "BayesianMF": "mfrec.models",
    "BiasedMF": "mfrec.models",
    "CMF": "mfrec.models",
    "DataError": "mfrec.errors",
    "Dataset": "mfrec.data.datasets",
    "DatasetNotFoundError": "mfrec.errors",
    "FactorModel": "mfrec.models",
    "FunkMF": "mfrec.models",
    "FoldInError": "mfrec.errors",
    "IdMap": "mfrec.data.idmap",
    "ImplicitALS": "mfrec.models",
    "InvalidParameterError": "mfrec.errors",
    "ModelFileError": "mfrec.errors",
    "NotFittedError": "mfrec.errors",
    "Ratings": "mfrec.data.ratings",
    "SVDpp": "mfrec.models",
    "TitleMatch": "mfrec.data.datasets",
    "TrainingDivergedError": "mfrec.errors",
    "TuneResult": "mfrec.evaluation",
    "cross_validate": "mfrec.evaluation",
    "evaluate": "mfrec.evaluation",
    "find_items": "mfrec.data.datasets",
    "load_dataset": "mfrec.data.datasets",
    "load_model": "mfrec.persist",
    "match_title": "mfrec.data.datasets",
    "metrics": "mfrec.evaluation",
    "read_items": "mfrec.data.datasets",
    "save_model": "mfrec.persist",
    "split": "mfrec",
    "synthetic": "mfrec.data.synthetic",
    "tune": "mfrec.evaluation",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # what type checkers (and `make typecheck`) see: the same names, imported eagerly
    from mfrec import split
    from mfrec.data.attributes import AttributeEncoder
    from mfrec.data.datasets import (AmbiguousTitleError, Dataset, TitleMatch, find_items, load_dataset, match_title,
                                     read_items)
    from mfrec.data.idmap import IdMap
    from mfrec.data.ratings import Ratings
    from mfrec.data.synthetic import synthetic
    from mfrec.errors import (DataError, DatasetNotFoundError, FoldInError, InvalidParameterError, ModelFileError,
                              NotFittedError, TrainingDivergedError)
    from mfrec.evaluation import TuneResult, cross_validate, evaluate, metrics, tune
    from mfrec.models import (ALS, BPR, CMF, Baseline, BayesianFM, BayesianMF, BiasedMF, FactorModel, FunkMF,
                              ImplicitALS, SVDpp)
    from mfrec.persist import load_model, save_model
else:
    from mfrec._lazy import attach

    __getattr__, __dir__ = attach(__name__, _LAZY)
    del attach
