"""Warnings point at the caller's line, whatever the call path (`mfrec._warnings.warn_user`): a
fixed stacklevel pointed inside mfrec or pytest for all but one path."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import mfrec
from mfrec._warnings import warn_user


def _caught(fn) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fn()
    assert rec, "no warning"
    return rec


def test_data_model_and_evaluation_warnings_name_this_file(tmp_path):
    df = pd.DataFrame({"user": [1, 1, 2, 3], "item": [1, 1, 2, 3], "rating": [4.0, 5.0, 3.0, 2.0]})
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    data = mfrec.synthetic(30, 20, 300, seed=1)
    model = mfrec.Baseline().fit(data)
    calls = {
        "duplicates, DataFrame": lambda: mfrec.Ratings.from_dataframe(df, duplicates="mean"),
        "duplicates, CSV": lambda: mfrec.Ratings.read_csv(path, duplicates="mean"),
        "timestamp fractions": lambda: mfrec.Ratings.from_arrays([1], [1], [1.0], timestamps=[1.5]),
        "unknown rated items": lambda: model.recommend_new({data.item_map.ids[0]: 4.0, "nothing": 3.0}, n=2),
        "training pairs in the test": lambda: mfrec.evaluate(model, data, metrics=["rmse"]),
    }
    for what, call in calls.items():
        rec = _caught(call)
        assert {r.filename for r in rec} == {__file__}, (what, [(r.filename, str(r.message)) for r in rec])


def test_warn_user_outside_mfrec_is_a_plain_warning():
    with pytest.warns(UserWarning, match="hello") as rec:
        warn_user("hello")
    assert rec[0].filename == __file__
    with pytest.warns(DeprecationWarning):
        warn_user("old", DeprecationWarning)
