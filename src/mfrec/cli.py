"""The `mfrec` command line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from mfrec.errors import DataError, DatasetNotFoundError

app = typer.Typer(help="mfrec: matrix-factorization recommenders.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Datasets: summaries and downloads.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _summary_table(name: str, summary: dict) -> Table:
    table = Table(title=f"{name}", show_header=False)
    for key in ("ratings", "users", "items", "density", "sparsity", "mean", "min", "max"):
        value = summary[key]
        table.add_row(key, f"{value:.4%}" if key in ("density", "sparsity") else f"{value:,}" if isinstance(value, int) else f"{value:.3f}")
    hist = summary.get("histogram") or {}
    total = max(sum(hist.values()), 1)
    for value, count in hist.items():
        bar = "#" * int(40 * count / max(hist.values()))
        table.add_row(f"rating {value:g}", f"{count:>7,} {count / total:6.1%} {bar}")
    return table


@data_app.command("info")
def data_info(name: str = typer.Argument(..., help="Dataset name, e.g. ml-latest-small or ml-100k."),
              download: bool = typer.Option(True, help="Download when not found locally.")) -> None:
    """Print a dataset summary: users, items, ratings, sparsity and the rating histogram."""
    from mfrec.data.datasets import load_dataset

    try:
        ds = load_dataset(name, download=download)
    except (DatasetNotFoundError, DataError, ValueError) as exc:
        _fail(str(exc))
    console.print(_summary_table(name, ds.ratings.summary()))


@app.command()
def demo(dataset: str = typer.Option("ml-latest-small", help="Dataset to load.")) -> None:
    """Load a MovieLens dataset and print its summary (the main job of `make demo`)."""
    data_info(dataset, download=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
