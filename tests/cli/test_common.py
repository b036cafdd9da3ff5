"""The shared helpers of mfrec.cli._common."""

from __future__ import annotations

from tests.cli.helpers import strict_json


def test_emit_json_helper_makes_non_finite_values_null(capsys):
    import numpy as np
    import pandas as pd

    from mfrec.cli._common import emit_json as _emit_json

    _emit_json({"a": float("nan"), "b": [np.float32("inf"), 1.5, -np.inf], "c": np.array([np.nan, 2.0]),
                "d": pd.NA, "e": np.int64(3), "f": {"g": np.float64("nan")}})
    assert strict_json(capsys.readouterr().out) == {"a": None, "b": [None, 1.5, None], "c": [None, 2.0], "d": None,
                                                    "e": 3, "f": {"g": None}}
