"""``mfrec tune``: hyperparameter search with a progress bar per trial."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer

from mfrec.cli._common import (DatasetOpt, ItemColOpt, ItemsOpt, RatingColOpt, RatingsOpt, SepOpt,
                               DuplicatesOpt, EncodingOpt, RatingScaleOpt, UserColOpt, cell,
                               check_output, console, emit_json, frame_table, load_data, model_class, model_help,
                               progress)

MODEL_HELP = model_help("Model to tune (default biased-mf; rating models are scored by RMSE, ranking models by "
                        "ndcg@10).")


def parse_space(space: str) -> dict[str, Any]:
    """``--space`` JSON as a search space. JSON has no tuples: ["log", low, high] is a log-uniform
    range, ["uniform", low, high] a uniform one, any other list the values to choose from."""
    from mfrec._jsonutil import loads_unique

    try:
        space_obj = loads_unique(space)
    except ValueError as exc:  # JSONDecodeError, or a parameter named twice (the last would win silently)
        raise ValueError(f"--space is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("--space is nested too deeply: give {\"parameter\": [values...]}") from None
    if not isinstance(space_obj, dict) or not space_obj:
        raise ValueError(f"--space must be a non-empty JSON object {{\"parameter\": [values...]}}, got {space!r}")

    def dimension(spec: Any) -> Any:
        if isinstance(spec, list) and len(spec) == 3 and spec[0] in ("log", "uniform"):
            return ("log", *spec[1:]) if spec[0] == "log" else tuple(spec[1:])
        return spec

    return {k: dimension(v) for k, v in space_obj.items()}


def tune(
    space: str = typer.Option(..., help='JSON object: parameter -> a list of values to choose from, or a range '
                                        '["uniform", low, high] or ["log", low, high], '
                                        'e.g. \'{"factors": [50, 100], "regularization": ["log", 0.01, 0.2]}\''),
    dataset: DatasetOpt = None,
    ratings: RatingsOpt = None,
    sep: SepOpt = ",",
    duplicates: DuplicatesOpt = "error",
    encoding: EncodingOpt = "utf-8",
    rating_scale: RatingScaleOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    items: ItemsOpt = None,
    model: str = typer.Option("biased-mf", "--model", "-m", help=MODEL_HELP),
    trials: int = typer.Option(20),
    method: str = typer.Option("random", help="random, grid or optuna"),
    validation: float = typer.Option(0.1, help="Validation fraction carved out of the data."),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="Save the best model here (checked before the search)."),
    as_json: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Hyperparameter search (random/grid built in; Optuna when installed), with a progress bar per trial.

    Example: mfrec tune --dataset ml-100k --model biased-mf --space '{"regularization": ["log", 0.01, 0.2]}' --trials 10
    """
    import mfrec
    from mfrec.evaluation import check_search

    cls = model_class(model)
    if out is not None:
        check_output(out, inputs=(ratings, items))
    space_obj = parse_space(space)
    check_search(cls, space_obj, trials, method)  # before reading data or drawing the progress bar
    data = load_data(dataset, ratings, sep, user_col, item_col, rating_col, items, quiet or as_json,
                     duplicates=duplicates, encoding=encoding, rating_scale=rating_scale)
    rating = cls.kind == "rating"
    with progress(quiet or as_json) as bar:
        task = bar.add_task(f"tune {cls.__name__}", total=trials, info="")
        best = [math.inf if rating else -math.inf]

        def on_trial(done: int, total: int, row: dict) -> None:
            score = row["score"]
            if isinstance(score, float) and math.isfinite(score):
                best[0] = min(best[0], score) if rating else max(best[0], score)
            bar.update(task, completed=done, total=total,
                       info=f"trial {row['trial']}: {cell(score, 4)}  (best {cell(best[0], 4)})")

        res = mfrec.tune(cls, data.ratings, space_obj, trials=trials, validation=validation, seed=seed, method=method,
                         metric="rmse" if rating else "ndcg@10", callback=on_trial)
    if out is not None:
        if data.items is not None:
            res.best_model.attach_items(data.items)
        res.best_model.save(out, metrics={res.metric: res.best_score})
    if as_json:
        emit_json({"best_params": res.best_params, "best_score": res.best_score, "metric": res.metric,
                   "trials": res.trials.to_dict(orient="records")})
    else:
        console.print(frame_table(res.trials, title="trials"))
        console.print(f"best {res.metric} {res.best_score:.4f} with {res.best_params}")
