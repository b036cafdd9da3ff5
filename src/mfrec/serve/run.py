"""Running the service with uvicorn (``mfrec serve``): one or more worker processes.

The settings travel to the workers in the environment variable ``MFREC_SERVE_CONFIG`` (JSON) and
the API key in ``MFREC_API_KEY``; each worker builds its app with :func:`app_from_env`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from mfrec.serve.keys import read_api_key

CONFIG_ENV = "MFREC_SERVE_CONFIG"


def app_from_env() -> Any:
    """The app factory uvicorn calls in each worker."""
    from mfrec.serve.app import create_app

    cfg = json.loads(os.environ[CONFIG_ENV])
    return create_app(cfg["model"], cfg["db"], os.environ.get("MFREC_API_KEY") or None,
                      train_data=cfg.get("train_data"), state_dir=cfg.get("state_dir"),
                      train_read=cfg.get("train_read"))


def _check_address(host: str, port: int) -> None:
    """Fail now, before "serving ...", when ``host`` does not resolve or ``port`` is taken
    (uvicorn would log its own error and exit with code 3 after the announcement)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"--host {host!r}: cannot resolve it ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise ValueError(f"--port {port} on {host}: {exc.strerror or exc}") from None


def run_server(model_file: str | Path, host: str = "127.0.0.1", port: int = 8000, db: str = "sqlite:///ratings.db",
               workers: int = 1, api_key_file: str | Path | None = None, train_data: str | None = None,
               state_dir: str | Path | None = None, echo: Callable[[str], None] = print,
               train_read: dict[str, Any] | None = None) -> None:
    """Check the model file and the store, then run uvicorn (blocks until stopped)."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError("the service needs the serve extra: pip install 'mfrec[serve]'") from None
    from mfrec.persist import load_model
    from mfrec.serve.store import StoreError, open_store

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if not 0 < port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {port}")
    _check_address(host, port)
    key = read_api_key(api_key_file)  # before the store: a refused command leaves no database behind
    model = load_model(model_file)  # a bad file fails here with one clear line, not in every worker
    if train_data:  # the training data read and checked against the model once, before "serving ..."
        from mfrec.serve.retrain import check_training, load_training

        check_training(model, load_training(train_data, train_read), repr(str(train_data)))
    try:
        open_store(db).close()  # creates or migrates the schema once, before the workers start
    except StoreError as exc:  # one line on the command line, like every other bad argument
        raise ValueError(str(exc)) from None
    if key is None:
        key = secrets.token_urlsafe(24)
        echo(f"no API key given (--api-key-file or MFREC_API_KEY): writes need this one for this run: {key}")
    os.environ["MFREC_API_KEY"] = key
    os.environ[CONFIG_ENV] = json.dumps({"model": str(Path(model_file).resolve()), "db": db, "train_data": train_data,
                                         "state_dir": str(state_dir) if state_dir else None,
                                         "train_read": train_read or {}})
    echo(f"serving {model_file} on http://{host}:{port}/ (API docs at /docs), store {db.split('@')[-1]}")
    try:
        uvicorn.run("mfrec.serve.run:app_from_env", factory=True, host=host, port=port, workers=workers,
                    access_log=False, log_level="warning", timeout_graceful_shutdown=10)
    except SystemExit as exc:  # uvicorn could not start (the port taken since the check): one line, exit 1
        if exc.code not in (0, None):
            raise ValueError(f"the server on {host}:{port} could not start (uvicorn exit code {exc.code}; "
                             "its message is above)") from None
        raise
