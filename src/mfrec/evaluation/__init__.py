"""Evaluation: metrics, scoring a fitted model, fit-and-score, cross-validation and tuning.

Layers, each importing only the ones before it:

* :mod:`~mfrec.evaluation.metrics`: rating and top-n metrics on arrays and DataFrames (imports
  only :mod:`mfrec.data`, so the models can use its ``rmse``);
* :mod:`~mfrec.evaluation.scoring`: :func:`evaluate` a fitted model on held-out ratings
  (:func:`rank_test_users` makes its top-n lists);
* :mod:`~mfrec.evaluation.validation`: :func:`fit_and_score`, the one fit-then-score path, and
  :func:`cross_validate` over k folds;
* :mod:`~mfrec.evaluation.search`: :func:`tune`, hyperparameter search whose trials are
  :func:`fit_and_score` calls.

None of them imports :mod:`mfrec.models` at import time (model classes are looked up when a
function runs), so ``mfrec.models`` importing ``mfrec.evaluation.metrics`` makes no cycle.
"""

from typing import TYPE_CHECKING

#: every public name -> the module it comes from (imported on first use, `mfrec._lazy`): the
#: models import ``mfrec.evaluation.metrics``, and that must not import the rest of the package
_LAZY: dict[str, str] = {
    "metrics": "mfrec.evaluation",
    "check_evaluation": "mfrec.evaluation.scoring",
    "check_metrics": "mfrec.evaluation.scoring",
    "evaluate": "mfrec.evaluation.scoring",
    "rank_test_users": "mfrec.evaluation.scoring",
    "TuneResult": "mfrec.evaluation.search",
    "check_search": "mfrec.evaluation.search",
    "sample_space": "mfrec.evaluation.search",
    "tune": "mfrec.evaluation.search",
    "FitScore": "mfrec.evaluation.validation",
    "cross_validate": "mfrec.evaluation.validation",
    "fit_and_score": "mfrec.evaluation.validation",
}

__all__ = [
    "FitScore",
    "TuneResult",
    "check_evaluation",
    "check_metrics",
    "check_search",
    "cross_validate",
    "evaluate",
    "fit_and_score",
    "metrics",
    "rank_test_users",
    "sample_space",
    "tune",
]

if TYPE_CHECKING:
    from mfrec.evaluation import metrics
    from mfrec.evaluation.scoring import check_evaluation, check_metrics, evaluate, rank_test_users
    from mfrec.evaluation.search import TuneResult, check_search, sample_space, tune
    from mfrec.evaluation.validation import FitScore, cross_validate, fit_and_score
else:
    from mfrec._lazy import attach

    __getattr__, __dir__ = attach(__name__, _LAZY)
    del attach
