"""The `mfrec` command line: data, train, evaluate, tune, recommend, similar, plot, demo.

One shared error handler (:class:`_GuardedGroup`) wraps every command: any mfrec error (bad data,
damaged model file, bad argument, unusable path, unknown id) becomes one ``error: ...`` line on
stderr and exit code 1, never a traceback. Outputs are checked before any training starts.
``--json`` gives machine-readable output (strict JSON: undefined values are ``null``),
``--quiet`` hides progress bars.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from mfrec.errors import TrainingDivergedError

#: what the shared handler turns into one line (DataError, ModelFileError, DatasetNotFoundError,
#: NotFittedError and the title errors are subclasses of these)
EXPECTED_ERRORS = (ValueError, OSError, KeyError, TypeError, ImportError, RuntimeError, TrainingDivergedError,
                   MemoryError)

console = Console()
err_console = Console(stderr=True)


def _error_message(exc: BaseException) -> str:
    """One line for an expected error: the message, the path for OS errors, the text of a KeyError."""
    if isinstance(exc, KeyError):  # mfrec's say what is unknown; a bare key is named as missing
        key = exc.args[0] if exc.args else None
        msg = key if isinstance(key, str) and " " in key.strip() else f"missing or unknown key {key!r}"
    elif isinstance(exc, OSError) and exc.strerror and str(exc).startswith("[Errno"):
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    elif isinstance(exc, MemoryError):
        msg = f"out of memory{': ' + str(exc) if str(exc) else ''}"
    else:
        msg = str(exc)
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    return lines[0].rstrip(":") if lines else type(exc).__name__


def _fail(message: str, code: int = 1) -> None:
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _GuardedGroup(TyperGroup):
    """The root command group: runs every (sub)command inside the one shared error handler."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.Exit:
            raise
        except EXPECTED_ERRORS as exc:
            _fail(_error_message(exc))


app = typer.Typer(cls=_GuardedGroup, help="mfrec: fast matrix-factorization recommenders.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Datasets: summaries and downloads.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _show_version(value: bool) -> None:
    if value:
        from mfrec import __version__

        print(f"mfrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="Print the mfrec version and exit.")) -> None:
    """mfrec: fast matrix-factorization recommenders."""


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=err_console, disable=quiet, transient=False)


def _finite(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays made plain and NaN, inf and missing values made None."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def _emit_json(obj: Any) -> None:
    """Print strict JSON (never NaN or Infinity: undefined values are null)."""
    print(json.dumps(_finite(obj), allow_nan=False, default=str))


def _note(message: str) -> None:
    """A line on stderr that does not belong in the (possibly JSON) output."""
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


# ----------------------------------------------------------------------------- paths
def _check_output(path: Path, option: str = "--out", directory: bool = False, example: str = "model.mfrec") -> None:
    """Fail now (before any training) when ``path`` cannot be written: it is a directory (or, with
    ``directory``, a file), a parent is a file, or the nearest existing parent is not writable.
    Missing parent folders are fine: they are created when the output is written."""
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{option} {path} is a file, not a folder")
    elif path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name (e.g. {path / example})")
    parent = path if directory else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: no permission to write in {parent}")


def _check_input(path: Path, option: str, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a {what}")


def _write_table(df: pd.DataFrame, out: Path) -> None:
    """CSV, or Parquet for .parquet/.pq; parent folders created, written atomically."""
    from mfrec._optional import require_parquet
    from mfrec._files import atomic_path

    if out.suffix in (".parquet", ".pq"):
        require_parquet()
    with atomic_path(out) as tmp:
        if out.suffix in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


# ----------------------------------------------------------------------------- data options and loader
_RATINGS_FORMAT = "CSV/TSV/'::' text or Parquet"
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Dataset name (e.g. ml-latest-small, ml-100k).")]
RatingsOpt = Annotated[Optional[Path], typer.Option("--ratings", help=f"Your own ratings file ({_RATINGS_FORMAT}).")]
SepOpt = Annotated[str, typer.Option("--sep", help="Separator of the ratings file(s) (e.g. '\\t', '::').")]
UserColOpt = Annotated[Optional[str], typer.Option("--user-col", help="User column name or 0-based position.")]
ItemColOpt = Annotated[Optional[str], typer.Option("--item-col", help="Item column name or position.")]
RatingColOpt = Annotated[Optional[str], typer.Option("--rating-col", help="Rating column name or position.")]
ItemsOpt = Annotated[Optional[Path], typer.Option(
    "--items", help="Items file for --ratings, to show titles and allow --rate-title: MovieLens movies.csv format "
                    "(header movieId,title,genres; genres joined by '|'), or movies.dat / u.item.")]


@dataclass
class _Data:
    ratings: Any
    items: Optional[pd.DataFrame]
    label: str
    dataset: Any = None


def _sep(sep: str) -> str:
    """Separators as typed on a command line: '\\t' or 'tab' mean a tab."""
    return "\t" if sep in ("\\t", "tab") else sep


def _read_ratings_file(path: Path, sep: str, user_col: Optional[str] = None, item_col: Optional[str] = None,
                       rating_col: Optional[str] = None, option: str = "--ratings"):
    from mfrec.data.ratings import Ratings

    _check_input(path, option, f"ratings file ({_RATINGS_FORMAT})")
    if path.suffix in (".parquet", ".pq"):
        return Ratings.read_parquet(path, user=user_col or "user", item=item_col or "item", rating=rating_col or "rating")
    return Ratings.read_csv(path, sep=_sep(sep), user=user_col, item=item_col, rating=rating_col)


def _locate(name: str, download: bool, progress: bool) -> Path:
    """The dataset folder; a cache folder that is a file is named as the problem."""
    from mfrec.data.datasets import default_cache_dir, locate_dataset

    try:
        return locate_dataset(name, download=download, progress=progress)
    except OSError:
        cache = default_cache_dir()
        if cache.exists() and not cache.is_dir():
            raise ValueError(f"the cache folder {cache} is a file, not a folder; remove it or point "
                             "MFREC_CACHE_DIR at a folder") from None
        raise


def _load_dataset(name: str, quiet: bool = True, download: bool = True):
    from mfrec.data.datasets import load_dataset

    _locate(name, download, not quiet)
    return load_dataset(name, download=False, progress=not quiet)


def _load_data(dataset: Optional[str], ratings: Optional[Path], sep: str, user_col: Optional[str],
               item_col: Optional[str], rating_col: Optional[str], items: Optional[Path] = None,
               quiet: bool = True) -> _Data:
    """The one loader behind --dataset / --ratings [--sep --user-col --item-col --rating-col --items]."""
    if (dataset is None) == (ratings is None):
        raise ValueError("give exactly one of --dataset NAME or --ratings FILE")
    if dataset is not None:
        if items is not None:
            raise ValueError("--items goes with --ratings (a dataset brings its own titles)")
        given = [name for name, v in (("--sep", sep != ","), ("--user-col", user_col), ("--item-col", item_col),
                                      ("--rating-col", rating_col)) if v]
        if given:
            raise ValueError(f"{', '.join(given)} go(es) with --ratings FILE, not --dataset")
        ds = _load_dataset(dataset, quiet)
        return _Data(ds.ratings, ds.items, dataset, ds)
    data = _read_ratings_file(ratings, sep, user_col, item_col, rating_col)
    table = None
    if items is not None:
        from mfrec.data.datasets import read_items

        _check_input(items, "--items", "items file (movieId,title,genres)")
        table = read_items(items)
        known = pd.Index(data.item_map.ids).isin(table.index)
        if not known.any():
            raise ValueError(f"--items {items}: none of the {len(known):,} rated item ids appears in it "
                             f"(its ids look like {list(table.index[:3])})")
    return _Data(data, table, str(ratings))


# ----------------------------------------------------------------------------- helpers
def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` strings to typed parameters (JSON literals where they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--param takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def _model_class(name: str) -> type:
    from mfrec.models import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return MODEL_NAMES[name]


def _build_model(name: str, params: dict[str, Any]):
    cls = _model_class(name)
    valid = set(cls.param_names())
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; valid: {', '.join(sorted(valid))}")
    model = cls(**params)
    model.validate_params()  # before any data is read or a progress bar drawn
    return model


def _fit_with_progress(model, train, validation, quiet: bool, label: str = "fit"):
    n = int(getattr(model, model.epochs_param))
    with _progress(quiet) as progress:
        task = progress.add_task(f"{label} {type(model).__name__}", total=n, info="")

        def on_epoch(rec: dict) -> None:
            info = f"loss {rec['loss']:.4f}"
            if "validation_rmse" in rec:
                info += f"  val RMSE {rec['validation_rmse']:.4f}"
            progress.update(task, completed=rec["epoch"], info=info)

        model.fit(train, validation, callback=on_epoch)
        progress.update(task, completed=n)
    return model


def _cell(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.3f}" if math.isfinite(v) else "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def _frame_table(df, title: str = "", columns: Optional[list[str]] = None) -> Table:
    table = Table(title=title or None)
    cols = columns or list(df.columns)
    for c in cols:
        table.add_column(str(c), overflow="fold")
    for row in df[cols].itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    return table


def _summary_table(name: str, summary: dict) -> Table:
    table = Table(title=name, show_header=False)
    for key in ("ratings", "users", "items", "density", "sparsity", "mean", "min", "max"):
        value = summary[key]
        shown = f"{value:.4%}" if key in ("density", "sparsity") else f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        table.add_row(key, shown)
    hist = summary.get("histogram") or {}
    if hist:
        total, top = sum(hist.values()), max(hist.values())
        for value, count in hist.items():
            table.add_row(f"rating {value:g}", f"{count:>9,} {count / total:6.1%} {'#' * int(40 * count / top)}")
    return table


# ----------------------------------------------------------------------------- data
@data_app.command("info")
def data_info(name: str = typer.Argument(..., help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest-small, ml-latest"),
              download: bool = typer.Option(True, help="Download when not found locally."),
              as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Dataset summary: users, items, ratings, sparsity, rating histogram.

    Example: mfrec data info ml-100k
    """
    ds = _load_dataset(name, quiet=as_json, download=download)
    summary = ds.ratings.summary()
    if as_json:
        _emit_json(dict(summary, dataset=name, path=str(ds.path)))
    else:
        console.print(_summary_table(f"{name} ({ds.path})", summary))


@data_app.command("fetch")
def data_fetch(name: str = typer.Argument(..., help="Dataset name."),
               quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Download a dataset into the cache (verifying its checksum), or find it locally.

    The cache is MFREC_CACHE_DIR or ~/.cache/mfrec. Example: mfrec data fetch ml-1m
    """
    path = _locate(name, True, not quiet)
    console.print(f"{name}: {path}")


# ----------------------------------------------------------------------------- train
MODEL_HELP = ("Which model: implicit-als (default) to recommend to people (ranks by taste from who rated what; "
              "shows scores, not ratings); biased-mf, svdpp, bayesian-mf, bayesian-fm (most accurate, slower), als or funk-mf to "
              "predict ratings (RMSE); cmf with user/item attributes; baseline (biases only) to compare against.")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (checked before training)."),
    model: str = typer.Option("implicit-als", "--model", "-m", help=MODEL_HELP),
    dataset: DatasetOpt = None,
    ratings: RatingsOpt = None,
    sep: SepOpt = ",",
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
    """
    from mfrec.split import random_split

    _check_output(out)
    if engine not in ("mfrec", "spark"):
        raise ValueError(f"--engine must be mfrec or spark, got {engine!r}")
    if engine == "spark":  # Spark MLlib ALS (mfrec.spark); --ratings goes to Spark unread, by column name
        if model not in ("als", "implicit-als") or validation or threads is not None or epochs or learning_rate:
            raise ValueError("--engine spark trains --model als or implicit-als, without --validation, "
                             "--threads, --epochs or --learning-rate")
        if (dataset is None) == (ratings is None):
            raise ValueError("give exactly one of --dataset NAME or --ratings FILE")
        from mfrec.spark import train_als

        kw = {k: v for k, v in dict(factors=factors, iterations=iterations, regularization=regularization).items()
              if v is not None}
        kw.update(_parse_params(param))
        source = _load_dataset(dataset, quiet or as_json).ratings if dataset else str(ratings)
        t0 = time.perf_counter()
        est = train_als(source, implicit=model == "implicit-als", seed=seed, master=master or "local[*]",
                        user_col=user_col or "user", item_col=item_col or "item",
                        rating_col=rating_col or "rating", sep=_sep(sep), **kw)
        seconds = time.perf_counter() - t0
        if items is not None:
            from mfrec.data.datasets import read_items

            est.attach_items(read_items(items))
        est.save(out, metrics={"fit_seconds": seconds})
        if as_json:
            _emit_json({"model": model, "engine": "spark", "params": est.get_params(), "out": str(out),
                        "fit_seconds": seconds})
        elif not quiet:
            console.print(f"saved {type(est).__name__} (Spark ALS) to {out} ({seconds:.2f} s)")
        return
    params = {k: v for k, v in dict(factors=factors, epochs=epochs, iterations=iterations, learning_rate=learning_rate,
                                      regularization=regularization).items() if v is not None}
    params.update(seed=seed, threads=threads)
    params.update(_parse_params(param))
    est = _build_model(model, params)
    if validation and not 0 < validation < 1:
        raise ValueError(f"--validation must be a fraction in (0, 1), got {validation}")
    if validation and est.kind != "rating":
        raise ValueError(f"--validation reports an RMSE, and {model} does not predict ratings; "
                         f"measure it with `mfrec evaluate --model {model} --metrics ndcg@10`")
    data = _load_data(dataset, ratings, sep, user_col, item_col, rating_col, items, quiet or as_json)
    val = None
    train_data = data.ratings
    if validation:
        train_data, val = random_split(data.ratings, test_size=validation, seed=seed)
    t0 = time.perf_counter()
    _fit_with_progress(est, train_data, val, quiet or as_json)
    seconds = time.perf_counter() - t0
    if data.items is not None:
        est.attach_items(data.items)
    metrics = {"fit_seconds": seconds}
    if val is not None:
        metrics["validation_rmse"] = est.score(val)
    est.save(out, metrics=metrics)
    if as_json:
        _emit_json({"model": model, "params": est.get_params(), "out": str(out), **metrics})
    elif not quiet:
        msg = f"saved {type(est).__name__} to {out} ({seconds:.2f} s"
        msg += f", validation RMSE {metrics['validation_rmse']:.4f})" if "validation_rmse" in metrics else ")"
        console.print(msg)


# ----------------------------------------------------------------------------- evaluate
def _cross_validate(est, ratings, names: list[str], seed: int, quiet: bool) -> dict[str, Any]:
    """5-fold CV with a progress bar; mean, std and every fold's values."""
    from mfrec.evaluate import cross_validate

    with _progress(quiet) as progress:
        task = progress.add_task(f"5-fold {type(est).__name__}", total=5, info="")

        def on_fold(done: int, total: int, row: dict) -> None:
            shown = "  ".join(f"{m} {row[m]:.4f}" for m in names[:2] if isinstance(row.get(m), float))
            progress.update(task, completed=done, total=total, info=f"fold {row['fold']}: {shown}")

        cv = cross_validate(est, ratings, folds=5, metrics=names, seed=seed, callback=on_fold)
    folds = cv["folds"]
    result: dict[str, Any] = dict(cv["mean"])
    result["std"] = cv["std"]
    result["folds"] = folds[["fold", *names, "fit_seconds"]].to_dict(orient="records")
    result["fit_seconds"] = float(folds["fit_seconds"].mean())
    return result


def _kfold_table(result: dict[str, Any], names: list[str], title: str) -> Table:
    folds = result["folds"]
    table = Table(title=title)
    for col in ("metric", "mean", "std", *[f"fold {f['fold']}" for f in folds]):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in names:
        table.add_row(name, _cell_4(result[name]), _cell_4(result["std"][name]), *[_cell_4(f[name]) for f in folds])
    table.add_row("fit_seconds", _cell_4(result["fit_seconds"]), "", *[_cell_4(f["fit_seconds"]) for f in folds])
    return table


def _cell_4(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (float, np.floating)) and math.isfinite(v) else "-" if isinstance(v, float) else str(v)


@app.command()
def evaluate(
    dataset: DatasetOpt = None,
    ratings: RatingsOpt = None,
    sep: SepOpt = ",",
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    split: str = typer.Option("random", help="random (80/20), kfold (5 folds: mean, std and each fold), "
                                             "or u1..u5, ua, ub (ml-100k's official splits)."),
    model: str = typer.Option("biased-mf", "--model", "-m",
                              help="Model to train: rating models (biased-mf, svdpp, ...) for rmse/mae; "
                                   "implicit-als only with ranking metrics (ndcg@10, precision@10, ...)."),
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
    from mfrec.evaluate import evaluate as run_evaluate
    from mfrec.persist import load_model
    from mfrec.split import random_split

    from mfrec.evaluate import _metric_names

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    _metric_names(names)  # unknown metrics are refused before any data is read or model trained
    splits = ("random", "kfold", "u1", "u2", "u3", "u4", "u5", "ua", "ub")
    if split not in splits:
        raise ValueError(f"unknown --split {split!r}; choose from {', '.join(splits)}")
    result: dict[str, Any]
    if model_file is not None:
        if test is None:
            raise ValueError("--model-file needs --test FILE")
        if dataset is not None or ratings is not None:
            raise ValueError("give --model-file with --test, or --dataset/--ratings to train and split, not both")
        est = load_model(model_file)
        test_data = _read_ratings_file(test, sep, user_col, item_col, rating_col, option="--test")
        result = run_evaluate(est, test_data, metrics=names)
        result.update(model=type(est).__name__, params=est.get_params(), dataset=str(test), split="file",
                      fit_seconds=est.metrics_.get("fit_seconds") if hasattr(est, "metrics_") else None)
    else:
        if dataset is None and ratings is None:
            raise ValueError("give --dataset NAME or --ratings FILE (to split and train), or --model-file MODEL --test FILE")
        est = _build_model(model, dict(seed=seed, threads=threads, **_parse_params(param)))
        data = _load_data(dataset, ratings, sep, user_col, item_col, rating_col, quiet=quiet or as_json)
        if split == "kfold":
            result = _cross_validate(est, data.ratings, names, seed, quiet or as_json)
        else:
            if split == "random":
                tr, te = random_split(data.ratings, test_size=0.2, seed=seed)
            elif data.dataset is None:
                raise ValueError(f"--split {split!r} is one of a dataset's official splits; with --ratings use random or kfold")
            else:
                tr, te = data.dataset.official_split(split)
            t0 = time.perf_counter()
            _fit_with_progress(est, tr, None, quiet or as_json)
            fit_seconds = time.perf_counter() - t0
            result = run_evaluate(est, te, metrics=names, train=tr)
            result["fit_seconds"] = fit_seconds
        result.update(model=model, params=est.get_params(), dataset=data.label, split=split)
    if as_json:
        _emit_json(result)
        return
    title = f"{result['model']} on {result['dataset']} ({result['split']})"
    if "folds" in result:
        console.print(_kfold_table(result, names, title))
        return
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        if key in ("params", "std", "model", "dataset", "split") or value is None:
            continue
        table.add_row(key, _cell_4(value))
    console.print(table)


# ----------------------------------------------------------------------------- tune
def _range(spec: Any) -> Any:
    """JSON has no tuples: ["log", low, high] is a log-uniform range, ["uniform", low, high] a uniform one."""
    if isinstance(spec, list) and len(spec) == 3 and spec[0] in ("log", "uniform"):
        return ("log", *spec[1:]) if spec[0] == "log" else tuple(spec[1:])
    return spec


@app.command()
def tune(
    space: str = typer.Option(..., help='JSON object: parameter -> a list of values to choose from, or a range '
                                        '["uniform", low, high] or ["log", low, high], '
                                        'e.g. \'{"factors": [50, 100], "regularization": ["log", 0.01, 0.2]}\''),
    dataset: DatasetOpt = None,
    ratings: RatingsOpt = None,
    sep: SepOpt = ",",
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    items: ItemsOpt = None,
    model: str = typer.Option("biased-mf", "--model", "-m", help="Model to tune (rating models are scored by RMSE)."),
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
    from mfrec.tune import tune as run_tune

    cls = _model_class(model)
    if out is not None:
        _check_output(out)
    try:
        space_obj = json.loads(space)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--space is not valid JSON: {exc}") from None
    if not isinstance(space_obj, dict) or not space_obj:
        raise ValueError(f"--space must be a non-empty JSON object {{\"parameter\": [values...]}}, got {space!r}")
    space_obj = {k: _range(v) for k, v in space_obj.items()}
    from mfrec.tune import check_search

    check_search(cls, space_obj, trials, method)  # before reading data or drawing the progress bar
    data = _load_data(dataset, ratings, sep, user_col, item_col, rating_col, items, quiet or as_json)
    with _progress(quiet or as_json) as progress:
        task = progress.add_task(f"tune {cls.__name__}", total=trials, info="")
        best = [math.inf]

        def on_trial(done: int, total: int, row: dict) -> None:
            score = row["score"]
            if isinstance(score, float) and math.isfinite(score):
                best[0] = min(best[0], score) if res_direction[0] == "minimize" else max(best[0], score)
            progress.update(task, completed=done, total=total,
                            info=f"trial {row['trial']}: {_cell_4(score)}  (best {_cell_4(best[0])})")

        res_direction = ["minimize"]
        if cls.kind != "rating":
            res_direction[0], best[0] = "maximize", -math.inf
        res = run_tune(cls, data.ratings, space_obj, trials=trials, validation=validation, seed=seed, method=method,
                       metric="rmse" if cls.kind == "rating" else "ndcg@10", callback=on_trial)
    if out is not None:
        if data.items is not None:
            res.best_model.attach_items(data.items)
        res.best_model.save(out, metrics={res.metric: res.best_score})
    if as_json:
        _emit_json({"best_params": res.best_params, "best_score": res.best_score, "metric": res.metric,
                    "trials": res.trials.to_dict(orient="records")})
    else:
        console.print(_frame_table(res.trials, title="trials"))
        console.print(f"best {res.metric} {res.best_score:.4f} with {res.best_params}")


# ----------------------------------------------------------------------------- recommend / similar
TITLE_RULE = ("Titles match ignoring case, punctuation, a leading/trailing article and the (year): an exact title "
              "wins, else the titles containing the text; of several, the most-rated wins if it has at least twice "
              "the ratings of the next, otherwise the command lists the candidates and asks for a more specific "
              "title (add the year). The film each title matched is printed on stderr.")


def _match_title(est, text: str):
    """The model's item for a title text (mfrec.match_title with the model's training counts)."""
    from mfrec.data.datasets import match_title

    if est.item_info_ is None or "title" not in est.item_info_.columns:
        raise ValueError("this model file has no item titles (train with --dataset, or --ratings with --items "
                         "movies.csv); use item ids instead")
    counts = np.bincount(est.seen_.indices, minlength=len(est.item_map_))
    hit = match_title(est.item_info_, text, counts=counts)
    _note(f"{text!r} -> {hit.title} (item {hit.item}, {hit.ratings:,} ratings)")
    return hit


def _resolve_titles(est, pairs: list[str]) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for pair in pairs:
        title, _, value = pair.rpartition("=")
        if not title.strip():
            raise ValueError(f"--rate-title takes \"TITLE=RATING\", got {pair!r}")
        try:
            rating = float(value)
        except ValueError:
            raise ValueError(f"rating {value!r} for title {title!r} is not a number") from None
        hit = _match_title(est, title)
        if hit.item in out:
            raise ValueError(f"--rate-title {title!r} matched {hit.title}, which is already rated")
        out[hit.item] = rating
    return out


def _item_key(est, item: str) -> Any:
    return int(item) if est.item_map_.ids.dtype.kind in "iu" and item.strip().lstrip("-").isdigit() else item


def _parse_rates(est, pairs: list[str]) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for pair in pairs:
        item, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"--rate takes ITEM=RATING, got {pair!r}")
        key = _item_key(est, item)
        if key in out:  # a dict would keep only the last one, silently
            raise ValueError(f"item {item!r} is rated twice by --rate")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"rating {value!r} for item {item!r} is not a number") from None
    return out


def _with_predicted_rating(est, df: pd.DataFrame, item_bias_weight: float) -> pd.DataFrame:
    """Rating models: add ``predicted_rating``, the model's rating estimate clipped to its scale
    (``score`` ranks, and with item_bias_weight != 1 it is not a rating). Ranking models: unchanged."""
    if est.kind != "rating" or df.empty:
        return df
    idx = est.item_map_.lookup(df["item"].to_numpy())
    pred = df["score"].to_numpy(dtype=np.float64) + (1.0 - item_bias_weight) * est.item_bias_[idx].astype(np.float64)
    lo, hi = est.rating_scale_
    df.insert(df.columns.get_loc("score") + 1, "predicted_rating", np.clip(pred, lo, hi))
    return df


def _recommendation_table(est, df: pd.DataFrame) -> Table:
    """Rating models show the 'predicted rating' (inside the scale); ranking models the 'score'."""
    cols = [c for c in df.columns if c not in ("score", "predicted_rating")]
    value = "predicted_rating" if "predicted_rating" in df.columns else "score"
    cols.insert(1, value)
    shown = df[cols].rename(columns={"predicted_rating": "predicted rating"})
    return _frame_table(shown, title="recommendations")


@app.command(epilog=TITLE_RULE)
def recommend(
    model_file: Path = typer.Argument(..., help="A model file written by `mfrec train`."),
    user: Optional[str] = typer.Option(None, help="A known user id."),
    all_users: bool = typer.Option(False, "--all-users", help="Top-n for every user (with --out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With --all-users: CSV or Parquet file to write."),
    rate: list[str] = typer.Option([], "--rate", help="ITEM=RATING for a new user (repeatable)."),
    rate_title: list[str] = typer.Option([], "--rate-title", help='"TITLE=RATING" for a new user (repeatable); see below.'),
    n: int = typer.Option(10, "-n", help="How many items."),
    explain: int = typer.Option(0, help="For a new user: list this many rated items behind each recommendation."),
    item_bias_weight: float = typer.Option(1.0, help="< 1 ranks less by general acclaim, more by personal taste."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recommend for a known user, for a new user from a few ratings (fold-in, no retraining), or
    for every user at once (--all-users --out recs.csv).

    Rating models show each film's predicted rating (clipped to the model's rating scale;
    --json and CSV add "predicted_rating" next to the ranking "score"); ranking models
    (implicit-als) show a score, which is not a rating.

    Examples:
      mfrec recommend model.mfrec --user 1 -n 5
      mfrec recommend model.mfrec --all-users -n 10 --out recs.csv
      mfrec recommend model.mfrec --rate-title "Toy Story=5" --rate-title "Lion King=5" --explain 2
    """
    from mfrec.persist import load_model

    if sum([user is not None, bool(rate or rate_title), all_users]) > 1:
        raise ValueError("give one of --user, --rate/--rate-title or --all-users")
    if all_users:
        if out is None:
            raise ValueError("--all-users needs --out FILE (.csv or .parquet)")
        _check_output(out, example="recs.csv")
    elif out is not None:
        raise ValueError("--out goes with --all-users")
    est = load_model(model_file)
    if all_users:
        with _progress(as_json) as progress:
            task = progress.add_task("recommend_many", total=len(est.user_map_), info="")
            df = est.recommend_many(n=n, item_bias_weight=item_bias_weight,
                                    callback=lambda done, total: progress.update(task, completed=done))
        df = _with_predicted_rating(est, df.drop(columns=[c for c in ("genres",) if c in df.columns]), item_bias_weight)
        _write_table(df, out)
        if as_json:
            _emit_json({"out": str(out), "rows": len(df), "users": int(df["user"].nunique())})
        else:
            console.print(f"wrote {len(df):,} recommendations for {df['user'].nunique():,} users to {out}")
        return
    if user is not None:
        uid: Any = int(user) if est.user_map_.ids.dtype.kind in "iu" and user.lstrip("-").isdigit() else user
        df = est.recommend(uid, n=n, item_bias_weight=item_bias_weight)
    elif rate or rate_title:
        ratings = _parse_rates(est, rate)
        for item, value in _resolve_titles(est, rate_title).items():
            if item in ratings:
                raise ValueError(f"item {item} is rated by both --rate and --rate-title")
            ratings[item] = value
        df = est.recommend_new(ratings, n=n, explain=explain, item_bias_weight=item_bias_weight)
    else:
        raise ValueError("give --user ID, or --rate ITEM=RATING / --rate-title \"TITLE=RATING\"")
    df = _with_predicted_rating(est, df, item_bias_weight)
    if as_json:
        _emit_json(df.to_dict(orient="records"))
    else:
        console.print(_recommendation_table(est, df))


@app.command(epilog=TITLE_RULE)
def similar(
    model_file: Path = typer.Argument(..., help="A model file."),
    item: Optional[str] = typer.Option(None, help="Item id."),
    title: Optional[str] = typer.Option(None, help="Title text (needs a model with titles; see below)."),
    n: int = typer.Option(10, "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Nearest items in the latent space (cosine similarity).

    Example: mfrec similar model.mfrec --title "Toy Story"
    """
    from mfrec.persist import load_model

    if (item is None) == (title is None):
        raise ValueError("give exactly one of --item or --title")
    est = load_model(model_file)
    key = _match_title(est, title).item if title is not None else _item_key(est, item)
    df = est.similar_items(key, n=n)
    if as_json:
        _emit_json(df.to_dict(orient="records"))
    else:
        console.print(_frame_table(df, title=f"similar to {key}"))


# ----------------------------------------------------------------------------- plot
@app.command()
def plot(
    model_file: Path = typer.Argument(..., help="A model file."),
    kind: str = typer.Option("learning-curve", help="learning-curve, latent-space, bias-popularity, error-by-activity"),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    test: Optional[Path] = typer.Option(None, help="Test ratings file (for error-by-activity)."),
    sep: SepOpt = ",",
) -> None:
    """Plots of a saved model (matplotlib, PNG).

    Examples:
      mfrec plot model.mfrec --kind latent-space --out latent.png
      mfrec plot model.mfrec --kind error-by-activity --test test.csv --out errors.png
    """
    from mfrec import plots
    from mfrec.persist import load_model

    makers = {"learning-curve": plots.learning_curve, "latent-space": plots.latent_space,
              "bias-popularity": plots.bias_vs_popularity, "error-by-activity": None}
    if kind not in makers:
        raise ValueError(f"unknown plot kind {kind!r}; choose from {', '.join(makers)}")
    if kind == "error-by-activity" and test is None:
        raise ValueError("--kind error-by-activity needs --test FILE (held-out ratings)")
    _check_output(out, example=f"{kind}.png")
    est = load_model(model_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "error-by-activity":
        plots.error_by_activity(est, _read_ratings_file(test, sep, option="--test"), out)
    else:
        makers[kind](est, out)
    console.print(f"wrote {out}")


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    dataset: str = typer.Option("ml-latest-small", help="Dataset to use."),
    out_dir: Path = typer.Option(Path("out"), help="Where to save the models and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """The tour: train, compare with the Baseline, predict, recommend for two new guests, save.

    Example: mfrec demo --out-dir out
    """
    from mfrec.demo import run_demo

    _check_output(out_dir, "--out-dir", directory=True)
    run_demo(dataset, out_dir, console=console, progress=_progress(quiet), fit=lambda m, tr, va: _fit_with_progress(m, tr, va, quiet))


# ----------------------------------------------------------------------------- serve
@app.command()
def serve(
    model_file: Path = typer.Argument(..., help="A model file (e.g. out/implicit-als.mfrec from `mfrec demo`)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="TCP port."),
    db: str = typer.Option("sqlite:///ratings.db", help="Ratings store: sqlite:///FILE or postgresql://USER@HOST/DB."),
    workers: int = typer.Option(1, help="Worker processes (uvicorn)."),
    api_key_file: Optional[Path] = typer.Option(None, help="File holding the API key for writes (else $MFREC_API_KEY)."),
    train_data: Optional[str] = typer.Option(None, help="Training data (dataset name or ratings file): retraining, users' history."),
    state_dir: Optional[Path] = typer.Option(None, help="Where retrained models go (default MODEL.serve/)."),
) -> None:
    """Run the recommendation service (needs `pip install 'mfrec[serve]'`): a guest web page at /,
    the JSON API, OpenAPI docs at /docs.

    Examples:
      mfrec serve out/implicit-als.mfrec --train-data ml-latest-small
      MFREC_API_KEY=... mfrec serve model.mfrec --db postgresql://mfrec@db/mfrec --workers 4
    """
    from mfrec.serve.run import run_server

    run_server(model_file, host=host, port=port, db=db, workers=workers, api_key_file=api_key_file,
               train_data=train_data, state_dir=state_dir, echo=lambda m: err_console.print(m, highlight=False, markup=False))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
