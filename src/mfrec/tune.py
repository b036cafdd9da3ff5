"""TEMPORARY on branch h-eval: the code is in :mod:`mfrec.evaluation`; ``cli.py`` and
``mfrec/__init__.py`` (not this branch's files) still import this path. Delete at merge."""

from mfrec.evaluation.search import TuneResult, check_search, tune  # noqa: F401
