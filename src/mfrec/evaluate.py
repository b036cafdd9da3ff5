"""TEMPORARY on branch h-eval: the code is in :mod:`mfrec.evaluation`; ``cli.py`` and
``mfrec/__init__.py`` (not this branch's files) still import this path. Delete at merge."""

from mfrec.evaluation.scoring import check_metrics as _metric_names, evaluate  # noqa: F401
from mfrec.evaluation.validation import cross_validate  # noqa: F401
