"""The shared helpers of mfrec.cli._common."""

from __future__ import annotations

import mfrec
from tests.cli.helpers import strict_json


def test_emit_json_helper_makes_non_finite_values_null(capsys):
    import numpy as np
    import pandas as pd

    from mfrec.cli._common import emit_json as _emit_json

    _emit_json({"a": float("nan"), "b": [np.float32("inf"), 1.5, -np.inf], "c": np.array([np.nan, 2.0]),
                "d": pd.NA, "e": np.int64(3), "f": {"g": np.float64("nan")}})
    assert strict_json(capsys.readouterr().out) == {"a": None, "b": [None, 1.5, None], "c": [None, 2.0], "d": None,
                                                    "e": 3, "f": {"g": None}}


def test_model_ids_go_through_the_id_map():
    """One conversion for --user, --rate ITEM=... and --item: IdMap.conform, each id on its own."""
    from mfrec.cli._common import model_ids

    ints = mfrec.IdMap([3, 12, 40])
    got = model_ids(ints, ["12", "3", "999", "x1"])
    assert got == [12, 3, 999, "x1"]
    assert [type(v) for v in got] == [int, int, int, str]  # plain ints (JSON, messages), not np.int64
    strs = mfrec.IdMap(["u1", "12", "film 2"])
    assert model_ids(strs, ["12", "u1", "film 2", "u9"]) == ["12", "u1", "film 2", "u9"]
