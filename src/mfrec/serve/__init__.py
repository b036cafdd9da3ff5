"""The recommendation service: a FastAPI app (`create_app`), a durable ratings store
(`open_store`: SQLite or PostgreSQL), background retraining, and a guest web page.

Needs the ``serve`` extra: ``pip install 'mfrec[serve]'``. Started by ``mfrec serve MODEL``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: importing mfrec.serve.store must not need FastAPI
    if name == "create_app":
        from mfrec.serve.app import create_app

        return create_app
    if name in ("open_store", "RatingStore", "StoreError"):
        from mfrec.serve import store

        return getattr(store, name)
    raise AttributeError(name)


__all__ = ["create_app", "open_store", "RatingStore", "StoreError"]
