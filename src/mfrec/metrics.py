"""TEMPORARY on branch h-eval: the metrics are :mod:`mfrec.evaluation.metrics`, and this path is
that module (``mfrec.metrics is mfrec.evaluation.metrics``) only because ``models/base.py`` (not
this branch's file) still imports ``mfrec.metrics``. Delete at merge."""

import sys

from mfrec.evaluation import metrics as _metrics

sys.modules[__name__] = _metrics
