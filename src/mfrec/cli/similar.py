"""``mfrec similar``: the nearest items in a model's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mfrec.cli._common import TITLE_RULE, console, emit_json, frame_table, match_title, model_ids

__all__ = ["TITLE_RULE", "similar"]


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
    import mfrec

    if (item is None) == (title is None):
        raise ValueError("give exactly one of --item or --title")
    est = mfrec.load_model(model_file)
    key = match_title(est, title).item if title is not None else model_ids(est.item_map_, [str(item)])[0]
    df = est.similar_items(key, n=n)
    if as_json:
        emit_json(df.to_dict(orient="records"))
    else:
        console.print(frame_table(df, title=f"similar to {key}"))
