"""mfrec: matrix-factorization recommenders on fast Numba kernels, raw ids in and out."""

from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings
from mfrec.errors import DataError, DatasetNotFoundError, ModelFileError, NotFittedError

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DatasetNotFoundError",
    "IdMap",
    "ModelFileError",
    "NotFittedError",
    "Ratings",
    "__version__",
]
