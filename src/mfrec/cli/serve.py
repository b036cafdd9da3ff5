"""``mfrec serve``: the recommendation service (needs the serve extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mfrec.cli._common import DuplicatesOpt, EncodingOpt, err_console, separator


def serve(
    model_file: Path = typer.Argument(..., help="A model file (e.g. out/implicit-als.mfrec from `mfrec demo`)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="TCP port."),
    db: str = typer.Option("sqlite:///ratings.db", help="Ratings store: sqlite:///FILE or postgresql://USER@HOST/DB."),
    workers: int = typer.Option(1, help="Worker processes (uvicorn)."),
    api_key_file: Optional[Path] = typer.Option(None, help="File holding the API key for writes (else $MFREC_API_KEY)."),
    train_data: Optional[str] = typer.Option(None, help="Training data (dataset name or ratings file): retraining, users' history."),
    state_dir: Optional[Path] = typer.Option(None, help="Where retrained models go (default MODEL.serve/)."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Separator of the --train-data file (default: by its suffix)."),
    duplicates: DuplicatesOpt = "error",
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Run the recommendation service (needs `pip install 'mfrec\\[serve]'`): a guest web page at /,
    the JSON API, OpenAPI docs at /docs.

    Examples:
      mfrec serve out/implicit-als.mfrec --train-data ml-latest-small
      MFREC_API_KEY=... mfrec serve model.mfrec --db postgresql://mfrec@db/mfrec --workers 4
    """
    from mfrec.serve.run import run_server

    read = {"sep": separator(sep) if sep is not None else None,
            "duplicates": None if duplicates == "error" else duplicates,
            "encoding": None if encoding == "utf-8" else encoding}
    if train_data is None and any(v is not None for v in read.values()):
        raise ValueError("--sep, --duplicates and --encoding read the --train-data file: give --train-data")
    run_server(model_file, host=host, port=port, db=db, workers=workers, api_key_file=api_key_file,
               train_data=train_data, state_dir=state_dir, echo=lambda m: err_console.print(m, highlight=False, markup=False),
               train_read={k: v for k, v in read.items() if v is not None})
