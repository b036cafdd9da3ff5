"""The `mfrec` command line: data, train, evaluate, tune, recommend, similar, plot, demo.

Every command prints one clear line on stderr and exits non-zero on bad arguments, missing files
or bad data (no tracebacks); ``--json`` gives machine-readable output, ``--quiet`` hides
progress bars.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mfrec.errors import DataError, DatasetNotFoundError, ModelFileError, NotFittedError, TrainingDivergedError

app = typer.Typer(help="mfrec: fast matrix-factorization recommenders.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Datasets: summaries and downloads.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

EXPECTED_ERRORS = (DataError, DatasetNotFoundError, ModelFileError, NotFittedError, TrainingDivergedError, FileNotFoundError,
                   KeyError, ValueError, TypeError, ImportError)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and exit code 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except EXPECTED_ERRORS as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            _fail(str(msg).replace("[", "\\["))

    return wrapper


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=err_console, disable=quiet, transient=False)


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# ----------------------------------------------------------------------------- helpers
def _load_dataset(name: str, quiet: bool = True):
    from mfrec.data.datasets import load_dataset

    return load_dataset(name, progress=not quiet)


def _sep(sep: str) -> str:
    """Separators as typed on a command line: '\\t' or 'tab' mean a tab."""
    return "\t" if sep in ("\\t", "tab") else sep


def _read_ratings_file(path: Path, sep: str, user_col: Optional[str], item_col: Optional[str],
                       rating_col: Optional[str]):
    from mfrec.data.ratings import Ratings

    if path.suffix in (".parquet", ".pq"):
        return Ratings.read_parquet(path, user=user_col or "user", item=item_col or "item", rating=rating_col or "rating")
    return Ratings.read_csv(path, sep=sep, user=user_col, item=item_col, rating=rating_col)


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


def _build_model(name: str, params: dict[str, Any]):
    from mfrec.models import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    cls = MODEL_NAMES[name]
    valid = set(cls._param_names())
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; valid: {', '.join(sorted(valid))}")
    return cls(**params)


def _fit_with_progress(model, train, validation, quiet: bool, label: str = "fit"):
    n = int(getattr(model, model._epochs_param))
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


def _frame_table(df, title: str = "", columns: Optional[list[str]] = None) -> Table:
    table = Table(title=title or None)
    cols = columns or list(df.columns)
    for c in cols:
        table.add_column(str(c), overflow="fold")
    for row in df[cols].itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)) and not float(v).is_integer():
                cells.append(f"{v:.3f}")
            elif isinstance(v, (list, tuple)):
                cells.append(", ".join(map(str, v)))
            else:
                cells.append(str(v))
        table.add_row(*cells)
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
@_guard
def data_info(name: str = typer.Argument(..., help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest-small, ml-latest"),
              download: bool = typer.Option(True, help="Download when not found locally."),
              as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Dataset summary: users, items, ratings, sparsity, rating histogram.

    Example: mfrec data info ml-100k
    """
    from mfrec.data.datasets import load_dataset

    ds = load_dataset(name, download=download, progress=not as_json)
    summary = ds.ratings.summary()
    if as_json:
        _emit_json(dict(summary, dataset=name, path=str(ds.path)))
    else:
        console.print(_summary_table(f"{name} ({ds.path})", summary))


@data_app.command("fetch")
@_guard
def data_fetch(name: str = typer.Argument(..., help="Dataset name."),
               quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Download a dataset into the cache (verifying its checksum), or find it locally.

    Example: mfrec data fetch ml-1m
    """
    from mfrec.data.datasets import locate_dataset

    path = locate_dataset(name, download=True, progress=not quiet)
    console.print(f"{name}: {path}")


# ----------------------------------------------------------------------------- train
@app.command()
@_guard
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write."),
    model: str = typer.Option("biased-mf", "--model", "-m", help="baseline, funk-mf, biased-mf, svdpp, als, implicit-als"),
    dataset: Optional[str] = typer.Option(None, help="Dataset name (e.g. ml-latest-small)."),
    ratings: Optional[Path] = typer.Option(None, help="Ratings file (CSV/TSV/:: text or Parquet)."),
    sep: str = typer.Option(",", help="Separator of --ratings (e.g. '\\t', '::')."),
    user_col: Optional[str] = typer.Option(None, help="User column name or 0-based position."),
    item_col: Optional[str] = typer.Option(None, help="Item column name or position."),
    rating_col: Optional[str] = typer.Option(None, help="Rating column name or position."),
    factors: Optional[int] = typer.Option(None, help="Number of latent factors."),
    epochs: Optional[int] = typer.Option(None, help="SGD epochs."),
    iterations: Optional[int] = typer.Option(None, help="ALS iterations."),
    learning_rate: Optional[float] = typer.Option(None, help="SGD learning rate."),
    regularization: Optional[float] = typer.Option(None, help="L2 regularization."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="Threads (default: all cores)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Any other hyperparameter as key=value."),
    validation: float = typer.Option(0.0, help="Hold out this fraction for a validation RMSE per epoch."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train a model and save it to one file.

    Examples:
      mfrec train --dataset ml-latest-small --model biased-mf --out bmf.mfrec
      mfrec train --ratings r.tsv --sep '\\t' --model als --factors 64 --validation 0.1 --out als.mfrec
    """
    from mfrec.split import random_split

    if (dataset is None) == (ratings is None):
        raise ValueError("give exactly one of --dataset or --ratings")
    items = None
    if dataset:
        ds = _load_dataset(dataset, quiet or as_json)
        data, items = ds.ratings, ds.items
    else:
        data = _read_ratings_file(ratings, _sep(sep), user_col, item_col, rating_col)
    params = {k: v for k, v in dict(factors=factors, epochs=epochs, iterations=iterations, learning_rate=learning_rate,
                                      regularization=regularization).items() if v is not None}
    params.update(seed=seed, threads=threads)
    params.update(_parse_params(param))
    est = _build_model(model, params)
    val = None
    train_data = data
    if validation:
        if not 0 < validation < 1:
            raise ValueError(f"--validation must be a fraction in (0, 1), got {validation}")
        train_data, val = random_split(data, test_size=validation, seed=seed)
        if not est._predicts_ratings:
            val = None
    t0 = time.perf_counter()
    _fit_with_progress(est, train_data, val, quiet or as_json)
    seconds = time.perf_counter() - t0
    if items is not None:
        est.attach_items(items)
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
@app.command()
@_guard
def evaluate(
    dataset: Optional[str] = typer.Option(None, help="Dataset to split and train on."),
    split: str = typer.Option("random", help="u1..u5, ua, ub (ml-100k), random (80/20) or kfold (5 folds)."),
    model: str = typer.Option("biased-mf", "--model", "-m", help="Model to train (with --dataset)."),
    model_file: Optional[Path] = typer.Option(None, help="A saved model to evaluate on --test."),
    test: Optional[Path] = typer.Option(None, help="Test ratings file (with --model-file)."),
    sep: str = typer.Option(",", help="Separator of --test."),
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
      mfrec evaluate --model-file bmf.mfrec --test test.csv --metrics rmse,mae,ndcg@10
    """
    from mfrec.evaluate import cross_validate
    from mfrec.evaluate import evaluate as run_evaluate
    from mfrec.persist import load_model
    from mfrec.split import random_split

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    result: dict[str, Any]
    if model_file is not None:
        if test is None:
            raise ValueError("--model-file needs --test FILE")
        est = load_model(model_file)
        test_data = _read_ratings_file(test, _sep(sep), None, None, None)
        result = run_evaluate(est, test_data, metrics=names)
        result.update(model=type(est).__name__, params=est.get_params(), dataset=str(test), split="file",
                      fit_seconds=est.metrics_.get("fit_seconds") if hasattr(est, "metrics_") else None)
    elif dataset is not None:
        ds = _load_dataset(dataset, quiet or as_json)
        params = dict(seed=seed, threads=threads, **_parse_params(param))
        est = _build_model(model, params)
        if split == "kfold":
            cv = cross_validate(est, ds.ratings, folds=5, metrics=names, seed=seed)
            result = dict(cv["mean"])
            result["std"] = cv["std"]
            result["fit_seconds"] = float(cv["folds"]["fit_seconds"].mean())
        else:
            if split == "random":
                tr, te = random_split(ds.ratings, test_size=0.2, seed=seed)
            else:
                tr, te = ds.official_split(split)
            t0 = time.perf_counter()
            _fit_with_progress(est, tr, None, quiet or as_json)
            fit_seconds = time.perf_counter() - t0
            result = run_evaluate(est, te, metrics=names, train=tr)
            result["fit_seconds"] = fit_seconds
        result.update(model=model, params=est.get_params(), dataset=dataset, split=split)
    else:
        raise ValueError("give --dataset NAME or --model-file MODEL --test FILE")
    if as_json:
        _emit_json(result)
    else:
        table = Table(title=f"{result['model']} on {result['dataset']} ({result['split']})", show_header=False)
        for key, value in result.items():
            if key in ("params", "std", "model", "dataset", "split") or value is None:
                continue
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(table)


# ----------------------------------------------------------------------------- tune
@app.command()
@_guard
def tune(
    dataset: str = typer.Option(..., help="Dataset name."),
    model: str = typer.Option("biased-mf", "--model", "-m"),
    space: str = typer.Option(..., help='JSON search space, e.g. \'{"factors": [50, 100], "regularization": ["log", 0.01, 0.2]}\''),
    trials: int = typer.Option(20),
    method: str = typer.Option("random", help="random, grid or optuna"),
    validation: float = typer.Option(0.1, help="Validation fraction carved out of the data."),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="Save the best model here."),
    as_json: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Hyperparameter search (random/grid built in; Optuna when installed).

    Example: mfrec tune --dataset ml-100k --model biased-mf --space '{"regularization": ["log", 0.01, 0.2]}' --trials 10
    """
    from mfrec.models import MODEL_NAMES
    from mfrec.tune import tune as run_tune

    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODEL_NAMES)}")
    try:
        space_obj = json.loads(space)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--space is not valid JSON: {exc}") from None
    space_obj = {k: tuple(v) if isinstance(v, list) and v and v[0] == "log" else v for k, v in space_obj.items()}
    ds = _load_dataset(dataset, quiet or as_json)
    res = run_tune(MODEL_NAMES[model], ds.ratings, space_obj, trials=trials, validation=validation, seed=seed, method=method)
    if out is not None:
        res.best_model.attach_items(ds.items).save(out, metrics={"validation_rmse": res.best_score})
    if as_json:
        _emit_json({"best_params": res.best_params, "best_score": res.best_score,
                    "trials": res.trials.to_dict(orient="records")})
    else:
        console.print(_frame_table(res.trials, title="trials"))
        console.print(f"best score {res.best_score:.4f} with {res.best_params}")


# ----------------------------------------------------------------------------- recommend / similar
def _resolve_titles(est, pairs: list[str]) -> dict[Any, float]:
    from mfrec.data.datasets import find_items

    if est.item_info_ is None:
        raise ValueError("this model file has no item titles; use --rate ITEM=RATING")
    out: dict[Any, float] = {}
    for pair in pairs:
        title, _, value = pair.rpartition("=")
        if not title:
            raise ValueError(f"--rate-title takes \"TITLE=RATING\", got {pair!r}")
        hits = find_items(est.item_info_, title, n=1)
        if hits.empty:
            raise ValueError(f"no title matches {title!r}")
        out[hits.index[0]] = float(value)
    return out


def _parse_rates(est, pairs: list[str]) -> dict[Any, float]:
    out: dict[Any, float] = {}
    kind = est.item_map_.ids.dtype.kind
    for pair in pairs:
        item, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"--rate takes ITEM=RATING, got {pair!r}")
        key: Any = int(item) if kind in "iu" and item.strip().lstrip("-").isdigit() else item
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"rating {value!r} for item {item!r} is not a number") from None
    return out


@app.command()
@_guard
def recommend(
    model_file: Path = typer.Argument(..., help="A model file written by `mfrec train`."),
    user: Optional[str] = typer.Option(None, help="A known user id."),
    all_users: bool = typer.Option(False, "--all-users", help="Top-n for every user (with --out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With --all-users: CSV or Parquet file to write."),
    rate: list[str] = typer.Option([], "--rate", help="ITEM=RATING for a new user (repeatable)."),
    rate_title: list[str] = typer.Option([], "--rate-title", help='"TITLE=RATING" for a new user (repeatable).'),
    n: int = typer.Option(10, "-n", help="How many items."),
    explain: int = typer.Option(0, help="For a new user: list this many rated items behind each recommendation."),
    item_bias_weight: float = typer.Option(1.0, help="< 1 ranks less by general acclaim, more by personal taste."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recommend for a known user, for a new user from a few ratings (fold-in, no retraining), or
    for every user at once (--all-users --out recs.csv).

    Examples:
      mfrec recommend model.mfrec --user 1 -n 5
      mfrec recommend model.mfrec --all-users -n 10 --out recs.csv
      mfrec recommend model.mfrec --rate-title "Toy Story=5" --rate-title "Lion King=5" --explain 2
    """
    from mfrec.persist import load_model

    est = load_model(model_file)
    if sum([user is not None, bool(rate or rate_title), all_users]) > 1:
        raise ValueError("give one of --user, --rate/--rate-title or --all-users")
    if all_users:
        if out is None:
            raise ValueError("--all-users needs --out FILE (.csv or .parquet)")
        with _progress(as_json) as progress:
            task = progress.add_task("recommend_many", total=len(est.user_map_), info="")
            df = est.recommend_many(n=n, item_bias_weight=item_bias_weight,
                                    callback=lambda done, total: progress.update(task, completed=done))
        df = df.drop(columns=[c for c in ("genres",) if c in df.columns])
        if out.suffix in (".parquet", ".pq"):
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, index=False)
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
        if rate_title:
            ratings.update(_resolve_titles(est, rate_title))
        df = est.recommend_new(ratings, n=n, explain=explain, item_bias_weight=item_bias_weight)
    else:
        raise ValueError("give --user ID, or --rate ITEM=RATING / --rate-title \"TITLE=RATING\"")
    if as_json:
        _emit_json(df.to_dict(orient="records"))
    else:
        console.print(_frame_table(df, title="recommendations"))


@app.command()
@_guard
def similar(
    model_file: Path = typer.Argument(..., help="A model file."),
    item: Optional[str] = typer.Option(None, help="Item id."),
    title: Optional[str] = typer.Option(None, help="Title text (needs a model trained on a dataset with titles)."),
    n: int = typer.Option(10, "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Nearest items in the latent space (cosine similarity).

    Example: mfrec similar model.mfrec --title "Toy Story"
    """
    from mfrec.data.datasets import find_items
    from mfrec.persist import load_model

    est = load_model(model_file)
    if (item is None) == (title is None):
        raise ValueError("give exactly one of --item or --title")
    if title is not None:
        if est.item_info_ is None:
            raise ValueError("this model file has no item titles; use --item")
        hits = find_items(est.item_info_, title, n=1)
        if hits.empty:
            raise ValueError(f"no title matches {title!r}")
        key: Any = hits.index[0]
    else:
        key = int(item) if est.item_map_.ids.dtype.kind in "iu" and item.lstrip("-").isdigit() else item
    df = est.similar_items(key, n=n)
    if as_json:
        _emit_json(df.to_dict(orient="records"))
    else:
        console.print(_frame_table(df, title=f"similar to {key}"))


# ----------------------------------------------------------------------------- plot
@app.command()
@_guard
def plot(
    model_file: Path = typer.Argument(..., help="A model file."),
    kind: str = typer.Option("learning-curve", help="learning-curve, latent-space, bias-popularity, error-by-activity"),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    test: Optional[Path] = typer.Option(None, help="Test ratings file (for error-by-activity)."),
    sep: str = typer.Option(",", help="Separator of --test."),
) -> None:
    """Plots of a saved model (matplotlib, PNG).

    Examples:
      mfrec plot model.mfrec --kind latent-space --out latent.png
      mfrec plot model.mfrec --kind error-by-activity --test test.csv --out errors.png
    """
    from mfrec import plots
    from mfrec.persist import load_model

    est = load_model(model_file)
    makers = {"learning-curve": plots.learning_curve, "latent-space": plots.latent_space,
              "bias-popularity": plots.bias_vs_popularity, "error-by-activity": None}
    if kind not in makers:
        raise ValueError(f"unknown plot kind {kind!r}; choose from {', '.join(makers)}")
    if kind == "error-by-activity":
        if test is None:
            raise ValueError("--kind error-by-activity needs --test FILE (held-out ratings)")
        test_data = _read_ratings_file(test, _sep(sep), None, None, None)
        plots.error_by_activity(est, test_data, out)
    else:
        makers[kind](est, out)
    console.print(f"wrote {out}")


# ----------------------------------------------------------------------------- demo
@app.command()
@_guard
def demo(
    dataset: str = typer.Option("ml-latest-small", help="Dataset to use."),
    out_dir: Path = typer.Option(Path("out"), help="Where to save the models and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """The tour: train, compare with the Baseline, predict, recommend for two new guests, save.

    Example: mfrec demo --out-dir out
    """
    from mfrec.demo import run_demo

    run_demo(dataset, out_dir, console=console, progress=_progress(quiet), fit=lambda m, tr, va: _fit_with_progress(m, tr, va, quiet))


# ----------------------------------------------------------------------------- serve
@app.command()
@_guard
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
