"""``mfrec demo``: the tour (train, compare with the Baseline, predict, recommend, save)."""

from __future__ import annotations

from pathlib import Path

import typer

from mfrec.cli._common import check_output, console, fit_with_progress, progress


def demo(
    dataset: str = typer.Option("ml-latest-small", help="Dataset to use."),
    out_dir: Path = typer.Option(Path("out"), help="Where to save the models and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """The tour: train, compare with the Baseline, predict, recommend for two new guests, save.

    Example: mfrec demo --out-dir out
    """
    from mfrec.demo import run_demo

    check_output(out_dir, "--out-dir", directory=True)
    run_demo(dataset, out_dir, console=console, progress=progress(quiet),
             fit=lambda m, tr, va: fit_with_progress(m, tr, va, quiet))
