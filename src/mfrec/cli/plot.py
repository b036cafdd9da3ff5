"""``mfrec plot``: plots of a saved model (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mfrec.cli._common import SepOpt, DuplicatesOpt, EncodingOpt, check_output, console, read_ratings_file

KINDS = ("learning-curve", "latent-space", "bias-popularity", "error-by-activity")


def plot(
    model_file: Path = typer.Argument(..., help="A model file."),
    kind: str = typer.Option("learning-curve", help=", ".join(KINDS)),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    test: Optional[Path] = typer.Option(None, help="Test ratings file (for error-by-activity)."),
    sep: SepOpt = ",",
    duplicates: DuplicatesOpt = "error",
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Plots of a saved model (matplotlib, PNG).

    Examples:
      mfrec plot model.mfrec --kind latent-space --out latent.png
      mfrec plot model.mfrec --kind error-by-activity --test test.csv --out errors.png
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "error-by-activity" and test is None:
        raise ValueError("--kind error-by-activity needs --test FILE (held-out ratings)")
    check_output(out, example=f"{kind}.png", inputs=(model_file, test), suffixes=(".png",))
    import mfrec
    from mfrec import plots

    est = mfrec.load_model(model_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "error-by-activity":
        assert test is not None
        plots.error_by_activity(est, read_ratings_file(test, sep, option="--test",
                     duplicates=duplicates, encoding=encoding), out)
    else:
        makers = {"learning-curve": plots.learning_curve, "latent-space": plots.latent_space,
                  "bias-popularity": plots.bias_vs_popularity}
        makers[kind](est, out)
    console.print(f"wrote {out}")
