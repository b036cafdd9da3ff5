"""Warnings that point at the user's line: the first frame outside the mfrec package (a fixed
``stacklevel`` is right for one call path only: ``Ratings.from_arrays`` and
``Ratings.from_dataframe`` reach the same check at different depths)."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the innermost caller outside mfrec."""
    level = 2  # warnings.warn(stacklevel=2): the caller of warn_user
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
