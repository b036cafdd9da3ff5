"""Datasets: MovieLens loaders and the synthetic generator (``mfrec.datasets.synthetic``)."""

from mfrec.data.datasets import DATASETS, Dataset, find_items, load_dataset, match_title, read_items
from mfrec.data.synthetic import synthetic

__all__ = ["DATASETS", "Dataset", "find_items", "load_dataset", "match_title", "read_items", "synthetic"]
