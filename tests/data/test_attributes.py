"""AttributeEncoder: standardized numbers, one-hot categories, multi-hot lists, missing values,
unknown categories at transform, and the JSON state round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from mfrec.data.attributes import AttributeEncoder
from mfrec.errors import DataError


@pytest.fixture()
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20.0, 30.0, np.nan, 50.0],
            "gender": ["M", "F", "F", None],
            "genres": [["Action", "Drama"], [], None, ["Drama"]],
            "member": [True, False, True, True],
        },
        index=pd.Index([10, 11, 12, 13], name="user"),
    )


def block(enc: AttributeEncoder, values: np.ndarray, name: str) -> np.ndarray:
    cols = [j for j, f in enumerate(enc.feature_names_) if f == name or f.startswith(name + "=")]
    return values[:, cols]


def test_kinds_and_feature_names(table):
    enc = AttributeEncoder().fit(table)
    assert [c["kind"] for c in enc.columns_] == ["numeric", "categorical", "multi", "categorical"]
    assert enc.feature_names_ == ["age", "gender=F", "gender=M", "genres=Action", "genres=Drama",
                                  "member=False", "member=True"]
    assert enc.n_features_ == 7
    assert enc.feature_columns_.tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert enc.attribute_names_ == ["age", "gender", "genres", "member"]


def test_numeric_is_standardized_over_observed_values(table):
    enc = AttributeEncoder().fit(table)
    V, M = enc.transform(table)
    age, obs = block(enc, V, "age")[:, 0], block(enc, M, "age")[:, 0]
    assert obs.tolist() == [True, True, False, True]
    observed = np.array([20.0, 30.0, 50.0])
    np.testing.assert_allclose(age[obs], (observed - observed.mean()) / observed.std())
    assert age[~obs] == 0.0
    assert abs(age[obs].mean()) < 1e-12 and abs(age[obs].std() - 1) < 1e-12


def test_constant_numeric_column_does_not_divide_by_zero():
    enc = AttributeEncoder().fit(pd.DataFrame({"x": [3.0, 3.0, 3.0]}))
    V, M = enc.transform(pd.DataFrame({"x": [3.0, 4.0]}))
    assert np.isfinite(V).all() and M.all()
    np.testing.assert_allclose(V[:, 0], [0.0, 1.0])


def test_one_hot_and_missing_category(table):
    enc = AttributeEncoder().fit(table)
    V, M = enc.transform(table)
    g, gm = block(enc, V, "gender"), block(enc, M, "gender")
    np.testing.assert_array_equal(g, [[0, 1], [1, 0], [1, 0], [0, 0]])
    np.testing.assert_array_equal(gm, [[True, True]] * 3 + [[False, False]])  # None: the whole attribute unobserved
    m = block(enc, V, "member")
    np.testing.assert_array_equal(m, [[0, 1], [1, 0], [0, 1], [0, 1]])


def test_multi_hot_lists_and_missing(table):
    enc = AttributeEncoder().fit(table)
    V, M = enc.transform(table)
    g, gm = block(enc, V, "genres"), block(enc, M, "genres")
    np.testing.assert_array_equal(g, [[1, 1], [0, 0], [0, 0], [0, 1]])
    # an empty list is an observed "no label"; None is unobserved
    np.testing.assert_array_equal(gm[:, 0], [True, True, False, True])
    assert (gm[:, 0] == gm[:, 1]).all()


def test_unknown_category_and_label_at_transform_are_observed_zeros(table):
    enc = AttributeEncoder().fit(table)
    V, M = enc.transform({"gender": "X", "genres": ["Sci-Fi", "Drama"], "age": 40})
    assert V.shape == (1, enc.n_features_)
    np.testing.assert_array_equal(block(enc, V, "gender"), [[0, 0]])
    np.testing.assert_array_equal(block(enc, M, "gender"), [[True, True]])
    np.testing.assert_array_equal(block(enc, V, "genres"), [[0, 1]])  # Sci-Fi ignored, Drama kept
    # an attribute absent from the row is unobserved
    np.testing.assert_array_equal(block(enc, M, "member"), [[False, False]])


def test_single_row_as_dict_series_or_frame_agree(table):
    enc = AttributeEncoder().fit(table)
    row = {"age": 30.0, "gender": "F", "genres": [], "member": False}
    a = enc.transform(row)
    b = enc.transform(pd.Series(row, dtype=object))
    c = enc.transform(table.loc[[11]])
    for x, y in ((a, b), (a, c)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])


def test_unknown_columns_warn_and_bad_numbers_raise(table):
    enc = AttributeEncoder().fit(table)
    with pytest.warns(UserWarning, match="gendr"):
        enc.transform({"gendr": "F"})
    with pytest.raises(DataError, match="age"):
        enc.transform({"age": "old"})


def test_categorical_dtype_string_dtype_and_kind_override():
    df = pd.DataFrame({
        "occ": pd.Categorical(["b", "a", "b"], categories=["b", "a", "c"]),
        "code": [3, 1, 3],
        "city": pd.array(["x", "y", pd.NA], dtype="string"),
    })
    enc = AttributeEncoder(kinds={"code": "categorical"}).fit(df)
    assert enc.feature_names_ == ["occ=b", "occ=a", "code=1", "code=3", "city=x", "city=y"]  # 'c' never seen
    V, M = enc.transform(df)
    np.testing.assert_array_equal(V[:, 2:4], [[0, 1], [1, 0], [0, 1]])
    assert not M[2, 4:].any() and M[:2, 4:].all()
    with pytest.raises(ValueError, match="unknown attribute kind"):
        AttributeEncoder(kinds={"code": "ordinal"})


def test_min_count_drops_rare_categories():
    df = pd.DataFrame({"c": ["a", "a", "b"], "g": [["x"], ["x", "y"], ["x"]]})
    enc = AttributeEncoder(min_count=2).fit(df)
    assert enc.feature_names_ == ["c=a", "g=x"]
    V, M = enc.transform(df)
    np.testing.assert_array_equal(V, [[1, 1], [1, 1], [0, 1]])
    assert M.all()


def test_state_round_trip_is_plain_json(table):
    enc = AttributeEncoder(kinds={"member": "categorical"}).fit(table)
    state = enc.to_dict()
    text = json.dumps(state)  # plain JSON, no pickle
    back = AttributeEncoder.from_dict(json.loads(text))
    assert back.feature_names_ == enc.feature_names_
    for data in (table, {"gender": "X", "genres": ["Drama"], "age": 41}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a, b = enc.transform(data), back.transform(data)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert AttributeEncoder.from_json(enc.to_json()).to_dict() == state
    with pytest.raises(ValueError, match="not an AttributeEncoder state"):
        AttributeEncoder.from_dict({"columns": []})


def test_transform_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        AttributeEncoder().transform({"a": 1})


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("table,match", [
    (pd.DataFrame({"age": [20.0, 1e300, 30.0]}), r"row 1, column 'age'.*too large"),
    (pd.DataFrame({"c": [1 + 1j, 2, 3]}), "complex"),
    (pd.DataFrame({"g": [{"a": 1}, "F", "M"]}), r"row 0, column 'g'.*dict, not a category"),
    (pd.DataFrame({"genres": [["a", ["b"]], ["c"], []]}), r"row 0, column 'genres'.*list, not a category"),
])
def test_fit_refuses_attribute_values_it_cannot_encode(table, match):
    """1e300 overflowed the standardization (garbage factors); a complex column lost its imaginary
    part; an unhashable category was a deep pandas TypeError."""
    from mfrec.data.attributes import AttributeEncoder

    with pytest.raises(DataError, match=match):
        AttributeEncoder().fit(table)


def test_transform_refuses_an_unhashable_category_instead_of_ignoring_it():
    from mfrec.data.attributes import AttributeEncoder

    enc = AttributeEncoder().fit(pd.DataFrame({"g": ["F", "M"], "year": [1990, 2000]}))
    with pytest.raises(DataError, match="list, not a category"):
        enc.transform({"g": ["F"]})
    with pytest.raises(DataError, match="too large"):
        enc.transform({"year": 1e300})
