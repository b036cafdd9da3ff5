"""Train/test splits (``mfrec.split.random_split`` ...); see :mod:`mfrec.data.splits`."""

from mfrec.data.splits import holdout_users, kfold, random_split, temporal_split, user_split

__all__ = ["holdout_users", "kfold", "random_split", "temporal_split", "user_split"]
