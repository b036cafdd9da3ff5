"""The service's API key: where it comes from and how long it must be (`mfrec serve` and
`create_app` read it the same way)."""

from __future__ import annotations

import os
from pathlib import Path

#: the shortest API key accepted from a file or ``$MFREC_API_KEY`` (a guessable key guards nothing)
MIN_KEY_LENGTH = 16


def read_api_key(api_key_file: str | Path | None) -> str | None:
    """The API key from a file (first line, stripped) or ``$MFREC_API_KEY``; None when neither.
    Either must have at least `MIN_KEY_LENGTH` characters."""
    if api_key_file is not None:
        key, where = Path(api_key_file).read_text().strip(), f"the API key in {api_key_file}"
    else:
        key, where = os.environ.get("MFREC_API_KEY", "").strip(), "$MFREC_API_KEY"
        if not key:
            return None
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"{where} is shorter than {MIN_KEY_LENGTH} characters")
    return key
