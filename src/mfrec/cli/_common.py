"""What the commands share: output (consoles, progress bars, strict JSON, tables), paths checked
before any work, the data options and the one ratings loader, model construction from the
registry, and the one conversion of command-line ids to a model's ids.

Only the standard library, typer and rich are imported here at module level: numpy, pandas and
the models are imported inside the functions that need them, so ``mfrec --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

    from mfrec.data.ratings import DuplicatePolicy
    from mfrec.models.base import FactorModel
    from rich.progress import Progress
    from rich.table import Table

console = Console()
err_console = Console(stderr=True)


# ----------------------------------------------------------------------------- output
def progress(quiet: bool) -> "Progress":
    """The progress bar every long command draws on stderr (hidden by ``quiet``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=err_console, disable=quiet, transient=False)


def finite(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays made plain and NaN, inf and missing values made None."""
    import numpy as np
    import pandas as pd

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): walk(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, np.ndarray)):
            return [walk(v) for v in obj]
        if isinstance(obj, np.generic):
            obj = obj.item()
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if obj is pd.NA or obj is pd.NaT:
            return None
        return obj

    return walk(obj)


def emit_json(obj: Any) -> None:
    """Print strict JSON (never NaN or Infinity: undefined values are null)."""
    print(json.dumps(finite(obj), allow_nan=False, default=str))


def note(message: str) -> None:
    """A line on stderr that does not belong in the (possibly JSON) output."""
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def cell(v: Any, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` decimals ('-' when undefined), lists joined, the rest str()."""
    import numpy as np

    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}" if math.isfinite(v) else "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def frame_table(df: "pd.DataFrame", title: str = "", columns: Optional[list[str]] = None) -> "Table":
    """A DataFrame as a rich table (ints stay ints: rows are read column-typed, not as float rows)."""
    from rich.table import Table

    table = Table(title=title or None)
    cols = columns or list(df.columns)
    for c in cols:
        table.add_column(str(c), overflow="fold")
    for row in df[cols].itertuples(index=False):
        table.add_row(*[cell(v) for v in row])
    return table


# ----------------------------------------------------------------------------- paths
def check_output(path: Path, option: str = "--out", directory: bool = False, example: str = "model.mfrec",
                 inputs: "tuple[Path | None, ...]" = (), suffixes: "tuple[str, ...]" = ()) -> None:
    """Fail now (before any training) when ``path`` cannot be written: it is a directory (or, with
    ``directory``, a file), a parent is a file, or the nearest existing parent is not writable;
    it is one of the command's ``inputs`` (writing it would destroy them); or its suffix is not
    one of ``suffixes`` (case-insensitive; the format follows the name, never a silent other).
    Missing parent folders are fine: they are created when the output is written."""
    for given in inputs:
        if given is not None and path.exists() and Path(given).exists() and os.path.samefile(path, given):
            raise ValueError(f"{option} {path} is an input of this command ({given}): writing it would destroy "
                             "it; give another file name")
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
    if not directory and parent == path.parent:  # a real probe: root passes os.access on /sys, /proc
        import tempfile

        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as exc:
            raise ValueError(f"{option} {path}: cannot write in {parent} ({exc.strerror or exc})") from None
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{option} {path}: give a file name ending in {' or '.join(suffixes)} (the format follows "
                         f"the name), e.g. {path.with_suffix(suffixes[0]).name}")
    if not suffixes and example.endswith(".mfrec"):
        from mfrec.persist import check_model_path

        try:
            check_model_path(path)
        except ValueError as exc:
            raise ValueError(f"{option} {exc}") from None


def check_input(path: Path, option: str, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a {what}")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


#: the table files the commands write
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def write_table(df: "pd.DataFrame", out: Path) -> None:
    """CSV, or Parquet for .parquet/.pq; parent folders created, written atomically."""
    from mfrec._files import atomic_path

    if is_parquet(out):
        from mfrec._optional import require_parquet

        require_parquet()
    with atomic_path(out) as tmp:
        if is_parquet(out):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


# ----------------------------------------------------------------------------- data options and the loader
RATINGS_FORMAT = "CSV/TSV/'::' text or Parquet"
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Dataset name (e.g. ml-latest-small, ml-100k).")]
RatingsOpt = Annotated[Optional[Path], typer.Option("--ratings", help=f"Your own ratings file ({RATINGS_FORMAT}).")]
SepOpt = Annotated[str, typer.Option("--sep", help="Separator of the ratings file(s) (e.g. '\\t', '::').")]
DuplicatesOpt = Annotated[str, typer.Option("--duplicates", help="A (user, item) pair rated twice: error, last or mean.")]
EncodingOpt = Annotated[str, typer.Option("--encoding", help="Text encoding of the ratings file(s) (e.g. latin-1).")]
RatingScaleOpt = Annotated[Optional[str], typer.Option(
    "--rating-scale", help="The ratings' scale as LOW,HIGH (e.g. 1,10): predictions are clipped to it and a "
                           "rating outside it is an error (default: the range of the ratings read).")]
UserColOpt = Annotated[Optional[str], typer.Option("--user-col", help="User column name or 0-based position.")]
ItemColOpt = Annotated[Optional[str], typer.Option("--item-col", help="Item column name or position.")]
RatingColOpt = Annotated[Optional[str], typer.Option("--rating-col", help="Rating column name or position.")]
ItemsOpt = Annotated[Optional[Path], typer.Option(
    "--items", help="Items file for --ratings, to show titles and allow --rate-title: MovieLens movies.csv format "
                    "(header movieId,title,genres; genres joined by '|'), or movies.dat / u.item.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide the progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (strict: undefined values are null).")]


@dataclass
class Data:
    """What --dataset / --ratings gave: the ratings, the item table (titles) if any, a label for
    reports, and the dataset (for its official splits)."""

    ratings: Any
    items: Optional["pd.DataFrame"]
    label: str
    dataset: Any = None


def separator(sep: str) -> str:
    """Separators as typed on a command line: '\\t' or 'tab' mean a tab."""
    return "\t" if sep in ("\\t", "tab") else sep


def parse_rating_scale(text: Optional[str]) -> tuple[float, float] | None:
    """``--rating-scale LOW,HIGH`` as a pair of finite numbers with LOW < HIGH (None: not given)."""
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        low = high = float("nan")
    if len(parts) != 2 or not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"--rating-scale must be LOW,HIGH with finite numbers LOW < HIGH (e.g. 1,5 or 0.5,5), "
                         f"not {text!r}")
    return low, high


def read_ratings_file(path: Path, sep: str = ",", user_col: Optional[str] = None, item_col: Optional[str] = None,
                      rating_col: Optional[str] = None, option: str = "--ratings", duplicates: str = "error",
                      encoding: str = "utf-8", rating_scale: Optional[str] = None) -> Any:
    """A ratings file by its format: Parquet (.parquet/.pq) by column name, else delimited text."""
    from mfrec import Ratings

    scale = parse_rating_scale(rating_scale)
    check_input(path, option, f"ratings file ({RATINGS_FORMAT})")
    if duplicates not in ("error", "last", "mean"):
        raise ValueError(f"--duplicates must be error, last or mean, not {duplicates!r}")
    return Ratings.read_file(path, sep=separator(sep), user=user_col, item=item_col, rating=rating_col,
                             duplicates=cast("DuplicatePolicy", duplicates), encoding=encoding,  # checked above
                             rating_scale=scale)


def locate(name: str, download: bool, show_progress: bool) -> Path:
    """The dataset folder; a cache folder that is a file is named as the problem."""
    from mfrec.data.datasets import default_cache_dir, locate_dataset

    try:
        return locate_dataset(name, download=download, progress=show_progress)
    except OSError:
        cache = default_cache_dir()
        if cache.exists() and not cache.is_dir():
            raise ValueError(f"the cache folder {cache} is a file, not a folder; remove it or point "
                             "MFREC_CACHE_DIR at a folder") from None
        raise


def load_dataset(name: str, quiet: bool = True, download: bool = True) -> Any:
    import mfrec

    locate(name, download, not quiet)
    return mfrec.load_dataset(name, download=False, progress=not quiet)


def load_data(dataset: Optional[str], ratings: Optional[Path], sep: str, user_col: Optional[str],
              item_col: Optional[str], rating_col: Optional[str], items: Optional[Path] = None,
              quiet: bool = True, duplicates: str = "error", encoding: str = "utf-8",
              rating_scale: Optional[str] = None) -> Data:
    """The one loader behind --dataset / --ratings [--sep --user-col --item-col --rating-col --items]."""
    check_data_choice(dataset, ratings)
    if dataset is not None:
        if items is not None:
            raise ValueError("--items goes with --ratings (a dataset brings its own titles)")
        given = [name for name, v in (("--sep", sep != ","), ("--user-col", user_col), ("--item-col", item_col),
                                      ("--rating-col", rating_col), ("--duplicates", duplicates != "error"),
                                      ("--encoding", encoding != "utf-8"), ("--rating-scale", rating_scale)) if v]
        if given:
            raise ValueError(f"{', '.join(given)} go(es) with --ratings FILE, not --dataset")
        ds = load_dataset(dataset, quiet)
        return Data(ds.ratings, ds.items, dataset, ds)
    assert ratings is not None
    data = read_ratings_file(ratings, sep, user_col, item_col, rating_col, duplicates=duplicates, encoding=encoding,
                             rating_scale=rating_scale)
    table = None
    if items is not None:
        import pandas as pd

        import mfrec

        check_input(items, "--items", "items file (movieId,title,genres)")
        table = mfrec.read_items(items)
        known = pd.Index(data.item_map.ids).isin(table.index)
        if not known.any():
            raise ValueError(f"--items {items}: none of the {len(known):,} rated item ids appears in it "
                             f"(its ids look like {list(table.index[:3])})")
    return Data(data, table, str(ratings))


def check_data_choice(dataset: Optional[str], ratings: Optional[Path]) -> None:
    if (dataset is None) == (ratings is None):
        raise ValueError("give exactly one of --dataset NAME or --ratings FILE")


# ----------------------------------------------------------------------------- models
def model_help(lead: str) -> str:
    """``--model`` help: ``lead``, then every registered model name (read from the registry,
    which imports no model code), then how to name a model of your own."""
    from mfrec.models.registry import names

    return (f"{lead} Registered: {', '.join(names())}; or a model class name, or package.module:ClassName "
            "for a model of your own.")


def model_class(name: str) -> type[FactorModel]:
    """The model class ``--model`` names (a registry name, a class name or package.module:ClassName)."""
    import mfrec
    from mfrec.models.registry import model_class as lookup

    cls = lookup(name)
    if not (isinstance(cls, type) and issubclass(cls, mfrec.FactorModel)):
        raise ValueError(f"--model {name!r} is {cls!r}, not an mfrec model (a subclass of mfrec.FactorModel)")
    return cls


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` strings to typed parameters (JSON literals where they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--param takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in out:  # the last would win silently
            raise ValueError(f"--param {key} given twice")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_model(name: str, params: dict[str, Any]) -> Any:
    """The model ``--model`` names with ``params``, checked before any data is read or a progress bar drawn."""
    cls = model_class(name)
    valid = set(cls.param_names())
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; valid: {', '.join(sorted(valid))}")
    model = cls(**params)
    model.validate_params()
    return model


def fit_with_progress(model: Any, train: Any, validation: Any, quiet: bool, label: str = "fit") -> Any:
    """``model.fit(train, validation)`` with a progress bar over its epochs (or iterations); the
    first fit of a model family on an empty kernel cache says, on stderr, that it is compiling
    (unless ``quiet``)."""
    if not quiet:
        from mfrec.kernels.compile import show_compile_notices

        show_compile_notices()
    n = int(getattr(model, model.epochs_param))
    with progress(quiet) as bar:
        task = bar.add_task(f"{label} {type(model).__name__}", total=n, info="")

        def on_epoch(rec: dict) -> None:
            info = f"loss {rec['loss']:.4f}"
            if "validation_rmse" in rec:
                info += f"  val RMSE {rec['validation_rmse']:.4f}"
            bar.update(task, completed=rec["epoch"], info=info)

        model.fit(train, validation, callback=on_epoch)
        bar.update(task, completed=n)
    return model


# ----------------------------------------------------------------------------- ids and titles
def model_ids(id_map: Any, texts: list[str]) -> list[Any]:
    """Ids typed on the command line in the model's id type, each read by ``IdMap.conform`` (the
    library's one string-to-id rule, the way ``IdMap.lookup`` reads ids): with int ids, "12" is
    the int 12; anything else stays as typed, so the model's own error names an unknown id."""
    from mfrec.data.idmap import plain

    return [plain(id_map.conform([text])[0]) for text in texts]


def parse_rates(model: Any, pairs: list[str]) -> dict[Any, float]:
    """``--rate ITEM=RATING`` pairs as {model item id: rating}; an item rated twice is an error."""
    split = [pair.partition("=") for pair in pairs]
    for pair, (item, _, value) in zip(pairs, split):
        if not value or not item.strip():
            raise ValueError(f"--rate takes ITEM=RATING, got {pair!r}"
                             f"{' (the item id is empty)' if value and not item.strip() else ''}")
    keys = model_ids(model.item_map_, [item.strip() for item, _, _ in split])  # " 1=5": item 1, as CSV ids read
    out: dict[Any, float] = {}
    for key, (item, _, value) in zip(keys, split):
        if key in out:  # a dict would keep only the last one, silently
            raise ValueError(f"item {item!r} is rated twice by --rate")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"rating {value!r} for item {item!r} is not a number") from None
    return out


TITLE_RULE = ("Titles match ignoring case, punctuation, a leading/trailing article and the (year): an exact title "
              "wins, else the titles containing the text; of several, the most-rated wins if it has at least twice "
              "the ratings of the next, otherwise the command lists the candidates and asks for a more specific "
              "title (add the year). The film each title matched is printed on stderr.")


def match_title(model: Any, text: str) -> Any:
    """The model's item for a title text (`mfrec.match_title` with the model's training counts)."""
    import numpy as np

    import mfrec

    if model.item_info_ is None or "title" not in model.item_info_.columns:
        raise ValueError("this model file has no item titles (train with --dataset, or --ratings with --items "
                         "movies.csv); use item ids instead")
    counts = np.bincount(model.seen_.indices, minlength=len(model.item_map_))
    hit = mfrec.match_title(model.item_info_, text, counts=counts)
    note(f"{text!r} -> {hit.title} (item {hit.item}, {hit.ratings:,} ratings)")
    return hit
