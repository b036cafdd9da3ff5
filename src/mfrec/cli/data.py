"""``mfrec data info`` and ``mfrec data fetch``: dataset summaries and downloads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mfrec.cli._common import console, emit_json, load_dataset, locate

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Datasets: summaries and downloads.", no_args_is_help=True)


def summary_table(name: str, summary: dict) -> "Table":
    """`Ratings.summary()` as a two-column table with a text histogram of the rating values."""
    from rich.table import Table

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


@app.command("info")
def info(name: str = typer.Argument(..., help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest-small, ml-latest"),
         download: bool = typer.Option(True, help="Download when not found locally."),
         as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Dataset summary: users, items, ratings, sparsity, rating histogram.

    Example: mfrec data info ml-100k
    """
    ds = load_dataset(name, quiet=as_json, download=download)
    summary = ds.ratings.summary()
    if as_json:
        emit_json(dict(summary, dataset=name, path=str(ds.path)))
    else:
        console.print(summary_table(f"{name} ({ds.path})", summary))


@app.command("fetch")
def fetch(name: str = typer.Argument(..., help="Dataset name."),
          quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Download a dataset into the cache (verifying its checksum), or find it locally.

    The cache is MFREC_CACHE_DIR or ~/.cache/mfrec. Example: mfrec data fetch ml-1m
    """
    path = locate(name, True, not quiet)
    console.print(f"{name}: {path}")
