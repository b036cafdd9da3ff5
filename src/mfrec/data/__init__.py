"""Data layer: ratings container, readers, datasets, splits and synthetic data."""

from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings

__all__ = ["IdMap", "Ratings"]
