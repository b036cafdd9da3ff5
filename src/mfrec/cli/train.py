"""``mfrec train``: fit a model (on this machine, or Spark MLlib ALS) and save it to one file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from mfrec.cli._common import (DatasetOpt, ItemColOpt, ItemsOpt, RatingColOpt, RatingsOpt, SepOpt,
                               DuplicatesOpt, EncodingOpt, RatingScaleOpt, UserColOpt,
                               build_model, check_data_choice, check_output, console, emit_json, fit_with_progress,
                               load_data, load_dataset, model_help, parse_params, separator)

MODEL_HELP = model_help("Which model: implicit-als (default) to recommend to people (ranks by taste from who rated "
                        "what; shows scores, not ratings), or a rating model to predict ratings (RMSE; --validation "
                        "reports one).")


def train(
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (checked before training)."),
    model: str = typer.Option("implicit-als", "--model", "-m", help=MODEL_HELP),
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
    factors: Optional[int] = typer.Option(None, help="Number of latent factors."),
    epochs: Optional[int] = typer.Option(None, help="SGD epochs."),
    iterations: Optional[int] = typer.Option(None, help="ALS iterations."),
    learning_rate: Optional[float] = typer.Option(None, help="SGD learning rate."),
    regularization: Optional[float] = typer.Option(None, help="L2 regularization."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="Threads (default: all cores)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Any other hyperparameter as key=value."),
    validation: float = typer.Option(0.0, help="Hold out this fraction for a validation RMSE per epoch (rating models)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
    engine: str = typer.Option("mfrec", "--engine", help="mfrec (this machine) or spark (Spark MLlib ALS, "
                               "--model als or implicit-als; --ratings is read by Spark)."),
    master: Optional[str] = typer.Option(None, "--master", help="Spark master URL for --engine spark "
                                         "(default: the spark-submit session, else local[*])."),
) -> None:
    """Train a model and save it to one file.

    Examples:
      mfrec train --dataset ml-latest-small --out recs.mfrec
      mfrec train --dataset ml-latest-small --model biased-mf --validation 0.1 --out bmf.mfrec
      mfrec train --ratings r.tsv --sep '\\t' --model als --factors 64 --out als.mfrec
      mfrec train --ratings my.csv --items movies.csv --out mine.mfrec
      mfrec train --ratings my.csv --model mypackage.models:MyModel --out my.mfrec
    """
    check_output(out, inputs=(ratings, items))
    if engine not in ("mfrec", "spark"):
        raise ValueError(f"--engine must be mfrec or spark, got {engine!r}")
    named = dict(factors=factors, epochs=epochs, iterations=iterations, learning_rate=learning_rate,
                 regularization=regularization)
    if engine == "spark":
        if (model not in ("als", "implicit-als") or validation or threads is not None or epochs or learning_rate
                or rating_scale is not None):
            raise ValueError("--engine spark trains --model als or implicit-als, without --validation, "
                             "--threads, --epochs, --learning-rate or --rating-scale")
        _train_spark(out, model, dataset, ratings, sep, user_col, item_col, rating_col, items, named, seed, param,
                     quiet, as_json, master)
        return
    params: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
    params.update(seed=seed, threads=threads)
    extra = parse_params(param)
    both = sorted(set(extra) & {k for k, v in named.items() if v is not None})
    if both:  # which one wins would be a silent choice
        raise ValueError(f"{', '.join(both)} given twice: as --{both[0].replace('_', '-')} and as -p {both[0]}=...; "
                         "give it once")
    params.update(extra)
    est = build_model(model, params)
    if validation and not 0 < validation < 1:
        raise ValueError(f"--validation must be a fraction in (0, 1), got {validation}")
    if validation and est.kind != "rating":
        raise ValueError(f"--validation reports an RMSE, and {model} does not predict ratings; "
                         f"measure it with `mfrec evaluate --model {model} --metrics ndcg@10`")
    data = load_data(dataset, ratings, sep, user_col, item_col, rating_col, items, quiet or as_json,
                     duplicates=duplicates, encoding=encoding, rating_scale=rating_scale)
    val = None
    train_data = data.ratings
    if validation:
        import mfrec

        train_data, val = mfrec.split.random_split(data.ratings, test_size=validation, seed=seed)
    t0 = time.perf_counter()
    fit_with_progress(est, train_data, val, quiet or as_json)
    seconds = time.perf_counter() - t0
    if data.items is not None:
        est.attach_items(data.items)
    metrics: dict[str, Any] = {"fit_seconds": seconds}
    if val is not None:
        metrics["validation_rmse"] = est.score(val)
    est.save(out, metrics=metrics)
    # the thread count the model follows, where it follows one (fewer than asked when the fit
    # started with the cores taken: mfrec.threads.start_threads)
    followed = {"fit_threads": int(est.history_["threads"].iloc[0])} if "threads" in est.history_ else {}
    if as_json:
        emit_json({"model": model, "params": est.get_params(), "out": str(out), **followed, **metrics})
    elif not quiet:
        msg = f"saved {type(est).__name__} to {out} ({seconds:.2f} s"
        msg += f", validation RMSE {metrics['validation_rmse']:.4f})" if "validation_rmse" in metrics else ")"
        console.print(msg)
        from mfrec.threads import resolve_threads

        asked = resolve_threads(est.get_params().get("threads"))
        if followed and followed["fit_threads"] < asked:
            console.print(f"other processes took the cores, so the fit ran on {followed['fit_threads']} of {asked} "
                          f"threads: its model is that of --threads {followed['fit_threads']}")


def _train_spark(out: Path, model: str, dataset: Optional[str], ratings: Optional[Path], sep: str,
                 user_col: Optional[str], item_col: Optional[str], rating_col: Optional[str], items: Optional[Path],
                 named: dict[str, Any], seed: int, param: list[str], quiet: bool, as_json: bool,
                 master: Optional[str]) -> None:
    """Spark MLlib ALS (`mfrec.spark.train_als`); --ratings goes to Spark unread, by column name."""
    check_data_choice(dataset, ratings)
    from mfrec.spark import train_als

    kw = {k: named[k] for k in ("factors", "iterations", "regularization") if named[k] is not None}
    kw.update(parse_params(param))
    source = load_dataset(dataset, quiet or as_json).ratings if dataset else str(ratings)
    t0 = time.perf_counter()
    est = train_als(source, implicit=model == "implicit-als", seed=seed, master=master or "local[*]",
                    user_col=user_col or "user", item_col=item_col or "item",
                    rating_col=rating_col or "rating", sep=separator(sep), **kw)
    seconds = time.perf_counter() - t0
    if items is not None:
        import mfrec

        est.attach_items(mfrec.read_items(items))
    est.save(out, metrics={"fit_seconds": seconds})
    if as_json:
        emit_json({"model": model, "engine": "spark", "params": est.get_params(), "out": str(out),
                   "fit_seconds": seconds})
    elif not quiet:
        console.print(f"saved {type(est).__name__} (Spark ALS) to {out} ({seconds:.2f} s)")
