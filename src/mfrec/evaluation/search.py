"""Hyperparameter search: random, grid or Optuna (TPE) over a small search-space language.

``space`` maps a parameter name to

* a list: a choice among its values (``[50, 100, 200]``; the only kind a grid accepts);
* a tuple ``(low, high)``: uniform on ``[low, high]``, integers when both bounds are ints;
* a tuple ``("log", low, high)``: log-uniform (``0 < low``), integers when both bounds are ints;
* any other value: fixed.

Every trial fits ``model_cls(**fixed, **params)`` on the training part and scores it on the
validation part with :func:`mfrec.evaluation.validation.fit_and_score` (the path cross-validation
folds take too); models with an ``early_stopping`` parameter train with
``early_stopping=patience`` against the validation ratings (on validation RMSE) and keep their
best epoch.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from mfrec.data.idmap import plain
from mfrec.data.ratings import Ratings, as_ratings
from mfrec.data.splits import random_split
from mfrec.errors import TrainingDivergedError
from mfrec.evaluation.metrics import parse_metric
from mfrec.evaluation.validation import fit_and_score
from mfrec._warnings import warn_user

__all__ = ["TuneResult", "check_search", "sample_space", "tune"]

#: metrics where lower is better; every other one is maximized
_LOWER_IS_BETTER = ("rmse", "mae", "arp")


@dataclass
class TuneResult:
    """Outcome of :func:`tune`.

    ``trials``: one row per trial, ``trial`` (0-based), the sampled parameters, ``score``,
    ``epochs_run`` (epochs or iterations actually run; not ``epochs``, which names the parameter
    of BiasedMF and its kin), ``best_epoch`` and ``seconds`` (fit + score).
    ``best_model`` is the best trial's model, fitted on the training part (not refitted on all
    the data). A failed trial (training diverged, or a non-finite score) has ``score`` NaN (and
    ``epochs_run`` NaN when training diverged; a warning names it) and is never the best.
    """

    best_params: dict[str, Any]
    best_score: float
    trials: pd.DataFrame
    best_model: Any
    metric: str = "rmse"
    direction: str = "minimize"
    fixed: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"TuneResult(metric={self.metric!r}, best_score={self.best_score:.6g}, "
                f"best_params={self.best_params!r}, trials={len(self.trials)})")


# ---------------------------------------------------------------------------- search spaces
@dataclass(frozen=True)
class _Dim:
    name: str
    kind: str  # "choice", "uniform", "log", "fixed"
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _parse_space(space: Mapping[str, Any]) -> list[_Dim]:
    if not isinstance(space, Mapping) or not space:
        raise ValueError("space must be a non-empty dict: parameter -> list of values, (low, high) or ('log', low, high)")
    dims = []
    for name, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"space[{name!r}]: the list of choices is empty")
            dims.append(_Dim(name, "choice", values=tuple(plain(v) for v in spec)))
        elif isinstance(spec, tuple):
            log = len(spec) == 3 and isinstance(spec[0], str) and spec[0].lower() == "log"
            bounds = spec[1:] if log else spec
            if len(bounds) != 2 or not all(_is_number(b) for b in bounds) or (len(spec) == 3 and not log):
                raise ValueError(
                    f"space[{name!r}] = {spec!r}: a tuple is (low, high) or ('log', low, high) with numbers; "
                    "use a list for a set of choices"
                )
            low, high = bounds
            if np.isnan(low) or np.isnan(high):  # else reported as "low nan is above high"
                raise ValueError(f"space[{name!r}]: a bound is NaN ({low!r}, {high!r}); give numbers")
            if not low <= high:
                raise ValueError(f"space[{name!r}]: low {low!r} is above high {high!r}")
            if log and not low > 0:
                raise ValueError(f"space[{name!r}]: a log-uniform range needs low > 0, got {low!r}")
            dims.append(_Dim(name, "log" if log else "uniform", low=low, high=high,
                             integer=_is_int(low) and _is_int(high)))
        elif isinstance(spec, (set, frozenset, dict, range, np.ndarray)) or isinstance(spec, Iterator):
            raise ValueError(f"space[{name!r}] = {spec!r}: a {type(spec).__name__} is no search dimension; use a "
                             "list for a set of choices, (low, high) or ('log', low, high) for a range")
        else:
            dims.append(_Dim(name, "fixed", values=(plain(spec),)))
    return dims


def _draw(dim: _Dim, rng: np.random.Generator) -> Any:
    if dim.kind == "fixed":
        return dim.values[0]
    if dim.kind == "choice":
        return dim.values[int(rng.integers(len(dim.values)))]
    if dim.kind == "uniform":
        if dim.integer:
            return int(rng.integers(int(dim.low), int(dim.high) + 1))
        return float(rng.uniform(dim.low, dim.high))
    # log-uniform; integers: floor of a log-uniform draw on [low, high + 1), clipped
    if dim.integer:
        x = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high + 1)))
        return int(min(max(math.floor(x), dim.low), dim.high))
    return float(math.exp(rng.uniform(math.log(dim.low), math.log(dim.high))))


def _values(dim: _Dim) -> list[Any] | None:
    """The distinct values ``dim`` can take, or None for a continuous range."""
    if dim.kind in ("fixed", "choice"):
        return list({repr(v): v for v in dim.values}.values())
    if dim.integer:
        return list(range(int(dim.low), int(dim.high) + 1))
    if dim.low == dim.high:  # a range of one value
        return [float(dim.low)]
    return None


#: redraws of an already tried configuration before the untried ones are listed (a small space)
_REDRAWS = 1000


def _random_configs(dims: list[_Dim], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` random parameter dicts, no two the same: a configuration drawn again is drawn anew
    (a repeated trial would only fit the same model twice). A space of fewer than ``n``
    distinct configurations gives each of them once, in a random order, with a warning."""
    values = [_values(d) for d in dims]
    size = math.prod(len(v) for v in values) if all(v is not None for v in values) else None
    if size is not None and size < n:
        warn_user(f"the space has {size} distinct configurations but trials={n}: trying each once")
        n = size
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    while len(out) < n:
        for _ in range(_REDRAWS):
            params = {d.name: _draw(d, rng) for d in dims}
            if repr(params) not in seen:
                break
        else:  # nearly every configuration of a small space is tried: pick among the rest
            if size is None:  # a float range too narrow for more distinct draws: stop here
                warn_user(f"the space gave only {len(out)} distinct configurations in {_REDRAWS} draws; "
                          f"trying those instead of trials={n}")
                break
            rest = [p for p in (dict(zip([d.name for d in dims], combo)) for combo in itertools.product(*values))
                    if repr(p) not in seen]  # type: ignore[arg-type]  # size is not None here
            params = rest[int(rng.integers(len(rest)))]
        seen.add(repr(params))
        out.append(params)
    return out


def sample_space(space: Mapping[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random parameter dicts from ``space``, no two the same (the sequence :func:`tune`
    with ``method="random"`` tries; the same seed gives the same sequence; a space of fewer
    distinct configurations gives each once)."""
    return _random_configs(_parse_space(space), int(n), np.random.default_rng(seed))


def _grid(dims: list[_Dim], trials: int | None, seed: int) -> list[dict[str, Any]]:
    bad = [d.name for d in dims if d.kind in ("uniform", "log")]
    if bad:
        raise ValueError(f"method='grid' needs lists of values; {bad} are ranges (use method='random' or 'optuna')")
    combos = [dict(zip([d.name for d in dims], vals)) for vals in itertools.product(*[d.values for d in dims])]
    if trials is not None and len(combos) > trials:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(combos), size=trials, replace=False))
        warn_user(f"the grid has {len(combos)} combinations but trials={trials}: trying a random "
                  f"{trials} of them (seed {seed})")
        combos = [combos[k] for k in keep]
    return combos


# ---------------------------------------------------------------------------- one trial
def _run_trial(model_cls: type, params: dict[str, Any], train: Ratings, val: Ratings, metric: str,
               relevance_threshold: float) -> tuple[Any, float, int, int, float]:
    """(fitted model, score, epochs run, best epoch, seconds of fit + score) of one trial."""
    model = model_cls(**params)
    early = params.get("early_stopping") is not None  # fit against the validation ratings
    res = fit_and_score(model, train, val, metrics=(metric,), validation=val if early else None,
                        relevance_threshold=relevance_threshold)
    return model, float(res.scores[metric]), res.epochs, res.best_epoch, res.fit_seconds + res.score_seconds


def _model_class(model_cls: Any) -> tuple[Any, dict[str, Any]]:
    """(the model class, the starting parameters: an instance's own, a class's none); TypeError
    for anything that is not an mfrec model class or instance."""
    from mfrec.models.base import Estimator  # at call time: the models import this package's metrics

    cls = model_cls if isinstance(model_cls, type) else type(model_cls)
    if not issubclass(cls, Estimator):
        raise TypeError(f"model_cls must be an mfrec model class (mfrec.BiasedMF, ...) or instance, "
                        f"not {model_cls!r}")
    return cls, ({} if isinstance(model_cls, type) else dict(model_cls.get_params()))


def _integer_params(cls: Any) -> set[str]:
    """The parameters whose declared constraints accept integers only (drawn as integers from a range)."""
    from mfrec.models.params import Integral, Interval

    def integer(form: Any) -> bool:
        return form is None or (isinstance(form, Interval) and form.kind is Integral)

    return {name for name, forms in cls.parameter_constraints().items()
            if any(f is not None for f in forms) and all(integer(f) for f in forms)}


def check_search(model_cls: Any, space: Mapping[str, Any], trials: int | None = 20, method: str = "random",
                 fixed: Mapping[str, Any] | None = None) -> list[_Dim]:
    """Validate a search before any data is touched: ``method``, ``trials`` (``None``, no budget,
    only for a grid), the space's syntax, that every name is a parameter (and not both searched
    and fixed), and every value a trial could use (each choice, both ends of a range) by the
    model's own ``validate_params``; an integer parameter's range needs integer bounds (it is
    drawn as integers). ValueError naming ``space[name]``. Returns the dims."""
    if method not in ("random", "grid", "optuna"):
        raise ValueError(f"method must be 'random', 'grid' or 'optuna', not {method!r}")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or trials < 1):
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if trials is None and method != "grid":
        raise ValueError("trials=None (no budget) is only allowed with method='grid'")
    dims = _parse_space(space)
    cls, base = _model_class(model_cls)
    fixed = dict(fixed or {})
    base.update(fixed)
    valid = set(cls.param_names())
    searched = {d.name for d in dims}
    unknown = sorted((searched | set(fixed)) - valid)
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameter(s) {unknown}; valid: {sorted(valid)}")
    both = sorted(searched & set(fixed))
    if both:
        raise ValueError(f"{both} are both searched (space) and fixed")
    integer = _integer_params(cls)
    for d in dims:
        if d.kind in ("uniform", "log") and d.name in integer and not d.integer:
            raise ValueError(f"space[{d.name!r}]: {d.name} takes integers; give integer bounds "
                             f"(got {d.low!r}, {d.high!r}), drawn as integers")
        candidates = d.values if d.kind in ("choice", "fixed") else (d.low, d.high)
        for value in candidates:
            try:
                cls(**{**base, d.name: value}).validate_params()
            except (TypeError, ValueError) as exc:
                # only this parameter's own check: constraints between parameters ("burn_in (20)
                # must be smaller than iterations") depend on what the other dims draw
                if str(exc).startswith(f"{d.name} must"):
                    raise ValueError(f"space[{d.name!r}]: the value {value!r} is refused: {exc}") from None
    return dims


# ---------------------------------------------------------------------------- tune
def tune(
    model_cls: Any,
    ratings: Ratings | pd.DataFrame,
    space: Mapping[str, Any],
    trials: int | None = 20,
    validation: Ratings | pd.DataFrame | float | None = None,
    metric: str = "rmse",
    seed: int = 0,
    method: str = "random",
    early_stopping: int | None = 3,
    fixed: Mapping[str, Any] | None = None,
    *,
    relevance_threshold: float = 4.0,
    callback: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Search hyperparameters of ``model_cls`` (a model class, or an instance whose parameters
    are the starting point) on ``ratings``.

    ``space``: see the module docstring. ``validation``: a Ratings (or DataFrame) to score on,
    with the model trained on all of ``ratings``; or a fraction carved out of ``ratings`` with
    :func:`mfrec.split.random_split` (``seed``); ``None`` means 0.2. ``metric``: any name
    :func:`mfrec.evaluate` knows (``"rmse"``, ``"mae"`` and ``"arp@k"`` are minimized, the rest
    maximized). ``method``: ``"random"`` (``trials`` draws, no configuration twice), ``"grid"`` (every combination of
    the list-valued parameters; a random ``trials`` of them when there are more; ``trials=None``
    tries all) or ``"optuna"`` (TPE sampler seeded with ``seed``; needs ``pip install
    'mfrec[tune]'``). ``early_stopping``: patience passed to models that have an
    ``early_stopping`` parameter, fit with ``validation=`` the validation ratings (``None``
    disables it). ``fixed``: parameters set in every trial (not searched).

    The same seed gives the same sequence of trial parameters (and, for models with a fixed
    ``threads``, the same scores: trials follow their thread count whatever the machine's load,
    `fit_and_score`). ``callback(done, total, row)`` is called after each trial
    with that trial's row of ``trials`` (progress bars). Returns a :class:`TuneResult`.
    """
    dims = check_search(model_cls, space, trials, method, fixed)
    model_cls, base = _model_class(model_cls)  # an instance: its parameters are the starting point
    fixed = dict(fixed or {})
    base.update(fixed)
    if ("early_stopping" in model_cls.param_names() and "early_stopping" not in fixed
            and not any(d.name == "early_stopping" for d in dims)):
        base["early_stopping"] = early_stopping

    base_name, k = parse_metric(metric)
    direction = "minimize" if base_name in _LOWER_IS_BETTER else "maximize"
    if k is None and model_cls.kind != "rating":
        raise ValueError(f"{model_cls.__name__} does not predict ratings: tune it on a ranking metric such as 'ndcg@10'")

    ratings = as_ratings(ratings, "ratings")
    if validation is None:
        validation = 0.2
    if isinstance(validation, numbers.Real) and not isinstance(validation, (bool, np.bool_)):  # np.float32 too
        if not 0 < validation < 1:  # named as the caller knows it, not as random_split's test_size
            raise ValueError(f"validation must be a fraction strictly between 0 and 1 (or validation data), "
                             f"not {validation!r}")
        train, val = random_split(ratings, test_size=float(validation), seed=seed)
    else:
        train, val = ratings, as_ratings(validation, "validation")
        shared = train.shared_pairs(val)
        if len(shared):
            raise ValueError(
                f"validation shares {len(shared)} of its {len(val)} (user, item) pairs with the ratings tuned on "
                f"(the first: {val.pair_at(shared[0])}): trials would be scored on data they were fitted to; "
                "pass disjoint validation ratings or a fraction (validation=0.2)")

    better = (lambda a, b: a < b) if direction == "minimize" else (lambda a, b: a > b)
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any] | None, Any] = (float("nan"), None, None)

    def record(params: dict[str, Any]) -> float:
        nonlocal best
        full = {**base, **params}
        t0 = time.perf_counter()
        try:
            model, score, epochs, best_epoch, seconds = _run_trial(model_cls, full, train, val, metric,
                                                                   relevance_threshold)
        except TrainingDivergedError as exc:  # a bad corner of the space: a failed trial, not a failed search
            warn_user(f"trial {len(rows)} with {params} failed: {exc}")
            model, score, epochs, best_epoch, seconds = None, float("nan"), None, None, time.perf_counter() - t0
        if not np.isfinite(score):
            score = float("nan")
        rows.append({"trial": len(rows), **params, "score": score, "epochs_run": epochs, "best_epoch": best_epoch,
                     "seconds": seconds})
        if np.isfinite(score) and (best[1] is None or better(score, best[0])):
            best = (score, dict(params), model)
        if callback is not None:
            callback(len(rows), total, rows[-1])
        return score

    if method == "random":
        configs = _random_configs(dims, int(trials), np.random.default_rng(seed))
        total = len(configs)
        for params in configs:
            record(params)
    elif method == "grid":
        grid = _grid(dims, None if trials is None else int(trials), seed)
        total = len(grid)
        for params in grid:
            record(params)
    else:
        total = int(trials)
        _optuna_search(dims, total, seed, direction, record)

    if best[1] is None:
        raise RuntimeError(f"all {len(rows)} trials failed (no finite {metric}); see the parameters tried:\n"
                           f"{pd.DataFrame.from_records(rows).to_string()}")
    return TuneResult(best_params=best[1], best_score=best[0], trials=pd.DataFrame.from_records(rows),
                      best_model=best[2], metric=metric, direction=direction, fixed=fixed)


def _optuna_search(dims: list[_Dim], trials: int, seed: int, direction: str, record: Any) -> None:
    try:
        import optuna
    except ImportError:
        raise ImportError("method='optuna' needs the optuna package: pip install 'mfrec[tune]' "
                          "(or pip install 'optuna>=3'); method='random' and 'grid' need nothing extra") from None
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
        for _ in range(trials):
            trial = study.ask()
            params = {}
            for d in dims:
                if d.kind == "fixed":
                    params[d.name] = d.values[0]
                elif d.kind == "choice":
                    params[d.name] = trial.suggest_categorical(d.name, list(d.values))
                elif d.integer:
                    params[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), log=d.kind == "log")
                else:
                    params[d.name] = trial.suggest_float(d.name, float(d.low), float(d.high), log=d.kind == "log")
            score = record(params)
            if np.isfinite(score):
                study.tell(trial, score)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    finally:
        optuna.logging.set_verbosity(verbosity)
