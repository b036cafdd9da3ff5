"""``mfrec evaluate``: held-out accuracy of a model trained here (random, k-fold or official
split) or of a saved model on a test file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mfrec.cli._common import (DatasetOpt, ItemColOpt, RatingColOpt, RatingsOpt, SepOpt,
                               DuplicatesOpt, EncodingOpt, RatingScaleOpt, UserColOpt, build_model,
                               cell, console, emit_json, fit_with_progress, load_data, model_help, parse_params,
                               progress, read_ratings_file)

if TYPE_CHECKING:
    from rich.table import Table

SPLITS = ("random", "kfold", "u1", "u2", "u3", "u4", "u5", "ua", "ub")
MODEL_HELP = model_help("Model to train (default biased-mf): a rating model for rmse/mae; a ranking model "
                        "(implicit-als, ...) only with ranking metrics (ndcg@10, precision@10, ...).")


def metric_names(metrics: str) -> list[str]:
    """``--metrics`` as a list of names, checked (`mfrec.evaluation.check_metrics`) before any work."""
    from mfrec.evaluation import check_metrics

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        raise ValueError("--metrics names no metric; e.g. --metrics rmse,mae,ndcg@10")
    return check_metrics(names)[0]


def cross_validate(est: Any, ratings: Any, names: list[str], seed: int, quiet: bool) -> dict[str, Any]:
    """5-fold CV with a progress bar; mean, std and every fold's values."""
    import mfrec

    with progress(quiet) as bar:
        task = bar.add_task(f"5-fold {type(est).__name__}", total=5, info="")

        def on_fold(done: int, total: int, row: dict) -> None:
            shown = "  ".join(f"{m} {row[m]:.4f}" for m in names[:2] if isinstance(row.get(m), float))
            bar.update(task, completed=done, total=total, info=f"fold {row['fold']}: {shown}")

        cv = mfrec.cross_validate(est, ratings, folds=5, metrics=names, seed=seed, callback=on_fold)
    folds = cv["folds"]
    result: dict[str, Any] = dict(cv["mean"])
    result["std"] = cv["std"]
    result["folds"] = folds[["fold", *names, "fit_seconds"]].to_dict(orient="records")
    result["fit_seconds"] = float(folds["fit_seconds"].mean())
    return result


def kfold_table(result: dict[str, Any], names: list[str], title: str) -> "Table":
    from rich.table import Table

    folds = result["folds"]
    table = Table(title=title)
    for col in ("metric", "mean", "std", *[f"fold {f['fold']}" for f in folds]):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in names:
        table.add_row(name, cell(result[name], 4), cell(result["std"][name], 4), *[cell(f[name], 4) for f in folds])
    table.add_row("fit_seconds", cell(result["fit_seconds"], 4), "", *[cell(f["fit_seconds"], 4) for f in folds])
    return table


def evaluate(
    dataset: DatasetOpt = None,
    ratings: RatingsOpt = None,
    sep: SepOpt = ",",
    duplicates: DuplicatesOpt = "error",
    encoding: EncodingOpt = "utf-8",
    rating_scale: RatingScaleOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    split: str = typer.Option("random", help="random (80/20), kfold (5 folds: mean, std and each fold), "
                                             "or u1..u5, ua, ub (ml-100k's official splits)."),
    model: str = typer.Option("biased-mf", "--model", "-m", help=MODEL_HELP),
    model_file: Optional[Path] = typer.Option(None, help="A saved model to evaluate on --test."),
    test: Optional[Path] = typer.Option(None, help="Test ratings file (with --model-file; read with --sep and the column options)."),
    metrics: str = typer.Option("rmse,mae", help="Comma-separated: rmse, mae, precision@10, ndcg@10, ..."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hyperparameter key=value."),
    seed: int = typer.Option(0),
    threads: Optional[int] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate a model on held-out data (RMSE, MAE and ranking metrics).

    Examples:
      mfrec evaluate --dataset ml-100k --split u1 --model als --json
      mfrec evaluate --ratings my.csv --split kfold --model biased-mf
      mfrec evaluate --model-file bmf.mfrec --test test.csv --metrics rmse,mae,ndcg@10
    """
    import mfrec

    names = metric_names(metrics)  # unknown metrics are refused before any data is read or model trained
    if split not in SPLITS:
        raise ValueError(f"unknown --split {split!r}; choose from {', '.join(SPLITS)}")
    result: dict[str, Any]
    if model_file is not None:
        if test is None:
            raise ValueError("--model-file needs --test FILE")
        if dataset is not None or ratings is not None:
            raise ValueError("give --model-file with --test, or --dataset/--ratings to train and split, not both")
        unused = [name for name, given in (("--model", model != "biased-mf"), ("--split", split != "random"),
                                           ("--param", bool(param)), ("--seed", seed != 0),
                                           ("--threads", threads is not None),
                                           ("--rating-scale", rating_scale is not None)) if given]
        if unused:  # they shape a training run; a saved model is evaluated as it is
            raise ValueError(f"{', '.join(unused)} go(es) with --dataset/--ratings (a training run), not --model-file")
        est = mfrec.load_model(model_file)
        test_data = read_ratings_file(test, sep, user_col, item_col, rating_col, option="--test",
                     duplicates=duplicates, encoding=encoding)
        result = mfrec.evaluate(est, test_data, metrics=names)
        result.update(model=type(est).__name__, params=est.get_params(), dataset=str(test), split="file",
                      fit_seconds=est.metrics_.get("fit_seconds") if hasattr(est, "metrics_") else None)
    else:
        if dataset is None and ratings is None:
            raise ValueError("give --dataset NAME or --ratings FILE (to split and train), or --model-file MODEL --test FILE")
        est = build_model(model, dict(seed=seed, threads=threads, **parse_params(param)))
        data = load_data(dataset, ratings, sep, user_col, item_col, rating_col, quiet=quiet or as_json,
                     duplicates=duplicates, encoding=encoding, rating_scale=rating_scale)
        if split == "kfold":
            result = cross_validate(est, data.ratings, names, seed, quiet or as_json)
        else:
            if split == "random":
                tr, te = mfrec.split.random_split(data.ratings, test_size=0.2, seed=seed)
            elif data.dataset is None:
                raise ValueError(f"--split {split!r} is one of a dataset's official splits; with --ratings use random or kfold")
            else:
                tr, te = data.dataset.official_split(split)
            t0 = time.perf_counter()
            fit_with_progress(est, tr, None, quiet or as_json)
            fit_seconds = time.perf_counter() - t0
            result = mfrec.evaluate(est, te, metrics=names, train=tr)
            result["fit_seconds"] = fit_seconds
        result.update(model=model, params=est.get_params(), dataset=data.label, split=split)
    if as_json:
        emit_json(result)
        return
    title = f"{result['model']} on {result['dataset']} ({result['split']})"
    if "folds" in result:
        console.print(kfold_table(result, names, title))
        return
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in result.items():
        if key in ("params", "std", "model", "dataset", "split") or value is None:
            continue
        table.add_row(key, cell(value, 4))
    console.print(table)
