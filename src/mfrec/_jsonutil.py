"""JSON that refuses a key repeated in one object (the standard parser keeps the last, silently)."""

from __future__ import annotations

import json
from typing import Any


class DuplicateKeyError(ValueError):
    """A key appears twice in one JSON object; ``key`` names it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def loads_unique(data: str | bytes) -> Any:
    """``json.loads`` that raises `DuplicateKeyError` for a repeated key (JSONDecodeError as usual)."""
    return json.loads(data, object_pairs_hook=_unique)
