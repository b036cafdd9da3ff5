"""Ratings, readers and IdMap: every bad input is a DataError saying what and where."""

from __future__ import annotations

import warnings

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mfrec.data.idmap import IdMap
from mfrec.data.ratings import Ratings
from mfrec.data.readers import write_ratings_parquet
from mfrec.errors import DataError


def write(tmp_path: Path, text: str, name: str = "ratings.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def raises_data_error(match: str | None = None):
    return pytest.raises(DataError, match=match)


# ---------------------------------------------------------------------------- bad input
def test_data_error_is_value_error() -> None:
    assert issubclass(DataError, ValueError)
    err = DataError("bad", source="f.csv", line=3, column="rating")
    assert str(err) == "f.csv, line 3, column 'rating': bad"
    assert (err.source, err.line, err.column, err.reason) == ("f.csv", 3, "rating", "bad")


def test_missing_column_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item,score\n1,10,4\n")
    with raises_data_error("missing rating column 'rating'") as exc:
        Ratings.read_csv(path, rating="rating")
    assert str(path) in str(exc.value) and "score" in str(exc.value)


def test_missing_column_dataframe() -> None:
    df = pd.DataFrame({"user": [1], "item": [2], "score": [3.0]})
    with raises_data_error(r"missing column\(s\) \['rating'\]") as exc:
        Ratings.from_dataframe(df)
    assert "score" in str(exc.value)


def test_missing_column_parquet(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user": [1], "item": [2], "score": [3.0]}).to_parquet(path)
    with raises_data_error("missing column") as exc:
        Ratings.read_parquet(path)
    assert exc.value.source == str(path) and "'rating'" in str(exc.value)


def test_non_numeric_rating_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,11,abc,101\n2,10,3,102\n")
    with raises_data_error("'abc' is not a number") as exc:
        Ratings.read_csv(path)
    err = exc.value
    assert (err.source, err.line, err.column) == (str(path), 3, "rating")
    assert f"{path}, line 3, column 'rating'" in str(err)


def test_non_numeric_rating_in_arrays_names_row() -> None:
    with raises_data_error("'x' is not a number") as exc:
        Ratings.from_arrays([1, 2, 3], [1, 2, 3], ["4", "5", "x"])
    assert exc.value.row == 2 and exc.value.column == "rating"


@pytest.mark.parametrize("value, what", [("nan", "missing"), ("inf", "inf, not a finite"), ("-inf", "-inf, not a finite")])
def test_nan_and_inf_ratings(tmp_path: Path, value: str, what: str) -> None:
    path = write(tmp_path, f"user,item,rating\n1,10,4\n2,11,{value}\n")
    with raises_data_error(what) as exc:
        Ratings.read_csv(path)
    assert (exc.value.line, exc.value.column) == (3, "rating")


def test_nan_rating_in_arrays() -> None:
    with raises_data_error("missing") as exc:
        Ratings.from_arrays([1, 2], [1, 2], [4.0, np.nan])
    assert exc.value.row == 1


def test_out_of_scale_rating(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item,rating\n1,10,4\n2,11,9\n3,12,0\n")
    with raises_data_error(r"rating 9 is outside the scale \[0.5, 5\] \(2 such rows") as exc:
        Ratings.read_csv(path, rating_scale=(0.5, 5.0))
    assert exc.value.line == 3
    assert len(Ratings.read_csv(path)) == 3  # no scale, no check


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with raises_data_error("empty") as exc:
        Ratings.read_csv(path)
    assert exc.value.source == str(path)


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating\n")
    with raises_data_error("no data rows") as exc:
        Ratings.read_csv(path)
    assert exc.value.source == str(path)


def test_empty_dataframe_and_arrays() -> None:
    with raises_data_error("empty"):
        Ratings.from_dataframe(pd.DataFrame({"user": [], "item": [], "rating": []}))
    with raises_data_error("empty"):
        Ratings.from_arrays([], [], [])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Ratings.read_csv(tmp_path / "nope.csv")


def test_missing_user_id(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating\n1,10,4\n,11,3\n")
    with raises_data_error("missing user id") as exc:
        Ratings.read_csv(path)
    assert (exc.value.line, exc.value.column) == (3, "userId")


@pytest.mark.parametrize("text, column, line", [
    ("userId,movieId,rating\n1,10,4\n2,   ,3\n", "movieId", 3),
    ("userId,movieId,rating\n1,10,4\n\t,11,3\n", "userId", 3),
    ("userId,movieId,rating\nalice,10,4\n  ,x,3\n", "userId", 3),  # text ids too
])
def test_an_id_of_spaces_only_is_missing_not_the_empty_id(tmp_path: Path, text: str, column: str, line: int) -> None:
    """An id of spaces was stripped to '' and became a real id, shared by every such row."""
    path = write(tmp_path, text)
    with raises_data_error("missing") as exc:
        Ratings.read_csv(path)
    assert (exc.value.line, exc.value.column) == (line, column)


DUPS = "userId,movieId,rating,timestamp\n1,10,4,100\n2,11,3,101\n1,10,5,102\n1,12,1,103\n"


def test_duplicates_error_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, DUPS)
    with raises_data_error("duplicate") as exc:
        Ratings.read_csv(path)
    err = exc.value
    assert err.line == 4 and "line 2" in str(err) and "duplicates='last'" in str(err)


def test_duplicates_in_arrays_name_rows() -> None:
    with raises_data_error("duplicate") as exc:
        Ratings.from_arrays(["a", "b", "a"], ["x", "x", "x"], [1, 2, 3])
    assert exc.value.row == 2 and "row 0" in str(exc.value)


def test_duplicates_last(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="merged 1 duplicate"):
        r = Ratings.read_csv(write(tmp_path, DUPS), duplicates="last")
    df = r.to_dataframe().sort_values(["user", "item"]).reset_index(drop=True)
    assert df[["user", "item"]].values.tolist() == [[1, 10], [1, 12], [2, 11]]
    assert df["rating"].tolist() == [5.0, 1.0, 3.0]
    assert df["timestamp"].tolist() == [102, 103, 101]


def test_duplicates_mean(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="merged 2 duplicate"):
        r = Ratings.from_arrays([1, 1, 2, 1], [10, 10, 11, 10], [4.0, 5.0, 3.0, 1.5], duplicates="mean")
    df = r.to_dataframe().sort_values(["user", "item"])
    assert df["rating"].tolist() == pytest.approx([3.5, 3.0])
    assert len(r) == 2


def test_bad_duplicate_policy() -> None:
    with pytest.raises(ValueError, match="duplicates must be"):
        Ratings.from_arrays([1, 1], [1, 1], [1, 2], duplicates="first")  # type: ignore[arg-type]


def test_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating\n1,10,4\n2,11,3,7,8\n3,12,5\n")
    with raises_data_error("malformed row: 5 fields, expected 3") as exc:
        Ratings.read_csv(path)
    assert exc.value.source == str(path) and exc.value.line == 3


def test_too_many_fields_double_colon(tmp_path: Path) -> None:
    path = write(tmp_path, "1::10::4::100\n2::11::3::101::9\n", "ratings.dat")
    with raises_data_error("5 fields, expected 4") as exc:
        Ratings.read_csv(path, sep="::")
    assert exc.value.source == str(path) and exc.value.line == 2


def test_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "userId,movieId,rating\n1,10,4\n2,11\n3,12,5\n")
    with raises_data_error("rating is missing") as exc:
        Ratings.read_csv(path)
    assert (exc.value.source, exc.value.line, exc.value.column) == (str(path), 3, "rating")


def test_unknown_id_vs_given_map(tmp_path: Path) -> None:
    path = write(tmp_path, "user,item,rating\n1,10,4\n2,99,3\n")
    with raises_data_error("item id 99 is not in the given item map") as exc:
        Ratings.read_csv(path, item_map=IdMap([10, 11]))
    assert (exc.value.line, exc.value.column) == (3, "item")
    with raises_data_error("user id 'z' is not in the given user map"):
        Ratings.from_arrays(["a", "z"], [1, 2], [3, 4], user_map=IdMap(["a", "b"]))


def test_from_sparse_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        Ratings.from_sparse(np.eye(2))
    with raises_data_error("no stored entries"):
        Ratings.from_sparse(sp.csr_matrix((2, 2)))
    with raises_data_error("must be finite"):
        Ratings.from_sparse(sp.csr_matrix(np.array([[1.0, np.nan], [0, 0]])))
    with raises_data_error("2 x 2"):
        Ratings.from_sparse(sp.eye(2, format="csr"), user_ids=["a"])


# ---------------------------------------------------------------------------- good input
def test_header_auto_detection(tmp_path: Path) -> None:
    with_header = Ratings.read_csv(write(tmp_path, "userId,movieId,rating,timestamp\n1,10,4.5,100\n2,10,3,101\n"))
    without = Ratings.read_csv(write(tmp_path, "1,10,4.5,100\n2,10,3,101\n", "b.csv"))
    for r in (with_header, without):
        assert len(r) == 2
        assert r.values.tolist() == [4.5, 3.0]
        assert r.timestamps.tolist() == [100, 101]
        assert r.raw_users.tolist() == [1, 2]


def test_header_columns_found_by_name_in_any_order(tmp_path: Path) -> None:
    r = Ratings.read_csv(write(tmp_path, "rating,movieId,userId\n4,10,1\n2,11,1\n"))
    assert r.raw_users.tolist() == [1, 1]
    assert r.raw_items.tolist() == [10, 11]
    assert r.values.tolist() == [4.0, 2.0]


def test_double_colon_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n", "ratings.dat")
    r = Ratings.read_csv(path, sep="::")
    assert len(r) == 3 and r.n_users == 2 and r.n_items == 2
    assert r.raw_items.tolist() == [1193, 661, 1193]
    assert r.values.tolist() == [5.0, 3.0, 4.0]
    assert r.timestamps.tolist() == [978300760, 978302109, 978298413]


def test_tab_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n", "u.data")
    r = Ratings.read_csv(path, sep="\t")
    assert r.raw_users.tolist() == [196, 186] and r.timestamps is not None
    assert Ratings.read_csv(path, sep="\t", timestamp=False).timestamps is None


def test_string_ids(tmp_path: Path) -> None:
    r = Ratings.read_csv(write(tmp_path, "user,item,rating\nalice,matrix,4\nbob,matrix,3.5\nalice,alien,2\n"))
    assert r.user_map.to_list() == ["alice", "bob"]
    assert r.item_map.to_list() == ["alien", "matrix"]
    assert r.raw_users.tolist() == ["alice", "bob", "alice"]
    assert r.by_user[r.user_map.index_of("alice"), r.item_map.index_of("matrix")] == 4.0


def test_from_sparse() -> None:
    m = sp.csr_matrix(np.array([[0, 4.0, 0], [1.5, 0, 2.0]]))
    r = Ratings.from_sparse(m, user_ids=["u1", "u2"], item_ids=[10, 20, 30])
    assert len(r) == 3 and r.n_users == 2 and r.n_items == 3
    assert set(zip(r.raw_users.tolist(), r.raw_items.tolist(), r.values.tolist())) == {
        ("u1", 20, 4.0), ("u2", 10, 1.5), ("u2", 30, 2.0)
    }
    assert (r.by_user.toarray() == m.toarray()).all()


def test_from_dataframe_with_timestamps() -> None:
    df = pd.DataFrame({"u": ["a", "b", "a"], "i": [1, 1, 2], "r": [5, 4, 3], "t": [10, 20, 30]})
    r = Ratings.from_dataframe(df, "u", "i", "r", "t")
    assert r.values.dtype == np.float32
    assert r.raw_users.tolist() == ["a", "b", "a"]
    assert r.timestamps.tolist() == [10, 20, 30]


def test_parquet_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"user": [3, 1, 3], "item": ["x", "y", "y"], "rating": [1.0, 2.5, 5.0], "ts": [7, 8, 9]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    r = Ratings.read_parquet(path, timestamp="ts")
    assert r.raw_users.tolist() == [3, 1, 3]
    assert r.raw_items.tolist() == ["x", "y", "y"]
    assert r.values.tolist() == [1.0, 2.5, 5.0]
    assert r.timestamps.tolist() == [7, 8, 9]
    assert len(Ratings.read_parquet(path)) == 3

    out = tmp_path / "out.parquet"
    write_ratings_parquet(r, out)
    back = Ratings.read_parquet(out, timestamp="timestamp")
    pd.testing.assert_frame_equal(back.to_dataframe(), r.to_dataframe())


def test_not_a_parquet_file(tmp_path: Path) -> None:
    with raises_data_error("not a Parquet file"):
        Ratings.read_parquet(write(tmp_path, "user,item,rating\n1,2,3\n"))


@pytest.fixture
def small() -> Ratings:
    return Ratings.from_arrays(
        ["a", "b", "a", "c", "b"], [10, 10, 20, 30, 30], [5, 3, 4, 1, 2], [1, 2, 3, 4, 5]
    )


def test_subsets_share_maps(small: Ratings) -> None:
    part = small.subset([0, 3])
    masked = small.subset(np.array([False, True, True, False, False]))
    assert part.user_map is small.user_map and part.item_map is small.item_map
    assert masked.user_map is small.user_map
    assert part.n_users == small.n_users == 3
    assert part.raw_users.tolist() == ["a", "c"] and masked.values.tolist() == [3.0, 4.0]
    assert part.timestamps.tolist() == [1, 4]
    with pytest.raises(ValueError):
        small.subset(np.array([True, False]))


def test_csr_views(small: Ratings) -> None:
    dense = np.zeros((3, 3), dtype=np.float32)
    dense[small.user_indices, small.item_indices] = small.values
    assert small.by_user.shape == (3, 3) and small.by_item.shape == (3, 3)
    np.testing.assert_array_equal(small.by_user.toarray(), dense)
    np.testing.assert_array_equal(small.by_item.toarray(), dense.T)
    assert small.by_user.has_sorted_indices
    a = small.user_map.index_of("a")
    row = small.by_user[a]
    assert small.item_map.to_raw(row.indices).tolist() == [10, 20] and row.data.tolist() == [5.0, 4.0]
    np.testing.assert_array_equal(small.user_counts, [2, 2, 1])
    np.testing.assert_array_equal(small.item_counts, [2, 1, 2])


def test_to_dataframe_round_trip(small: Ratings) -> None:
    df = small.to_dataframe()
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    back = Ratings.from_dataframe(df, timestamp="timestamp")
    pd.testing.assert_frame_equal(back.to_dataframe(), df)
    assert back.user_map == small.user_map and back.item_map == small.item_map


def test_summary(small: Ratings) -> None:
    s = small.summary()
    assert (s["ratings"], s["users"], s["items"]) == (5, 3, 3)
    assert s["histogram"] == {1.0: 1, 2.0: 1, 3.0: 1, 4.0: 1, 5.0: 1}


def test_idmap_lookup() -> None:
    m = IdMap([30, 10, 20])
    assert m.lookup([10, 99, 30]).tolist() == [1, -1, 0]
    assert m.lookup(["20", "x"]).tolist() == [2, -1]  # numeric strings find int ids
    assert m.index_of(20) == 2 and 10 in m and 99 not in m
    with pytest.raises(KeyError, match="unknown user 99"):
        m.index_of(99, "user")
    s = IdMap(["a", "b"])
    assert s.lookup(["b", "zz", 1]).tolist() == [1, -1, -1]
    assert m.to_raw([2, 0]).tolist() == [20, 30]
    assert m.extend([10, 40]).to_list() == [30, 10, 20, 40]
    with pytest.raises(ValueError, match="duplicate id"):
        IdMap([1, 1])


@pytest.mark.parametrize("size", [1, 200])  # the small-query dict path and the vectorized path
def test_idmap_reads_text_as_an_int_by_one_strict_rule(size: int) -> None:
    """ASCII decimal digits (leading zeros allowed) name an int id; nothing else does: no spaces,
    signs, exponents, decimal points, non-ASCII digits, bools, or values beyond int64."""
    m = IdMap([1, 7, 10, 2**62])
    named = {"1": 0, "007": 1, "-0": -1, str(2**62): 3, "0" + str(2**62): 3, 1.0: 0, np.int64(7): 1}
    not_named = ["+1", " 1", "1 ", "1e0", "1.0", "1.0000000000000001", "1_0", "\u0661", "\uff11", "0x1",
                 "9999999999999999999", "", True, np.True_, 1.5]
    for q, want in list(named.items()) + [(q, -1) for q in not_named]:
        got = m.lookup([q] * size)
        assert got.tolist() == [want] * size, (q, got[:3])
    assert IdMap([0]).lookup(["-0", "00"]).tolist() == [0, 0]
    assert m.conform(["007", "10"]).tolist() == [7, 10]


def test_mixed_id_lists_keep_their_types() -> None:
    from mfrec.data.idmap import as_id_array

    arr = as_id_array([1, "a"])  # numpy alone would make the int 1 the text "1"
    assert arr.dtype == object and arr.tolist() == [1, "a"] and isinstance(arr[0], int)
    assert as_id_array(["a", "b"]).tolist() == ["a", "b"]


def test_idmap_factorize_sorts() -> None:
    m, codes = IdMap.factorize(np.array([5, 3, 5, 9]))
    assert m.to_list() == [3, 5, 9] and codes.tolist() == [1, 0, 1, 2]


def test_from_sparse_refuses_duplicate_entries_instead_of_summing_them() -> None:
    import scipy.sparse as sp

    coo = sp.coo_matrix(([4.0, -4.0, 3.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    with pytest.raises(DataError, match=r"sparse matrix entry \(0, 1\).*duplicate"):
        Ratings.from_sparse(coo)
    merged = Ratings.from_sparse(coo, duplicates="last").to_dataframe().sort_values("user")
    assert merged["rating"].tolist() == [-4.0, 3.0]  # the later entry, never the sum 0.0
    csr = sp.csr_matrix((np.array([4.0, 3.0]), np.array([1, 1]), np.array([0, 2, 2])), shape=(2, 2))
    with pytest.raises(DataError, match="duplicate"):
        Ratings.from_sparse(csr)


def test_ids_are_kept_exactly_as_given() -> None:
    big = 2**53
    r = Ratings.from_arrays([big + 1, big, 2.5], [1, 1, 1], [1, 2, 3])  # a float id beside ints
    assert r.n_users == 3 and sorted(map(str, r.raw_users)) == sorted(map(str, [big + 1, big, 2.5]))
    assert Ratings.from_arrays(["a\x00", "a", "b"], [1, 2, 3], [5, 1, 3]).n_users == 3  # numpy drops trailing NULs
    assert Ratings.from_arrays([1, "1"], [1, 2], [1, 2]).n_users == 2


def test_bool_ids_beside_other_ids_are_refused_not_merged() -> None:
    """True == 1 in Python: a user True beside a user 1 would silently become one user."""
    with pytest.raises(DataError, match="ids mix bools"):
        Ratings.from_arrays([1, True], [1, 2], [3, 4])
    with pytest.raises(DataError, match="ids mix bools"):
        Ratings.from_dataframe(pd.DataFrame({"user": pd.Series([0, False, "x"], dtype=object), "item": [1, 2, 3],
                                             "rating": [1.0, 2.0, 3.0]}))


def test_read_file_picks_the_reader_by_the_name(tmp_path) -> None:
    tsv = tmp_path / "r.TSV"
    tsv.write_text("user\titem\trating\n1\t2\t3\n2\t3\t4\n")
    assert Ratings.read_file(tsv).n_users == 2  # a tab for .tsv, in any case
    semi = tmp_path / "r.csv"
    semi.write_text("user;item;rating\n1;2;3\n")
    assert len(Ratings.read_file(semi, sep=";")) == 1
    pytest.importorskip("pyarrow")
    pq = tmp_path / "r.PQ"
    pd.DataFrame({"user": [1, 1], "item": [2, 2], "rating": [3.0, 5.0]}).to_parquet(pq)
    with pytest.raises(DataError, match="duplicate"):
        Ratings.read_file(pq)
    assert Ratings.read_file(pq, duplicates="mean").values.tolist() == [4.0]


def test_subset_refuses_repeated_positions_and_int_masks():
    """An int 0/1 "mask" repeated rows 0 and 1 (duplicate pairs, then a misleading divergence)."""
    r = Ratings.from_arrays([1, 2, 3, 4], [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="0/1 mask; pass it as bool"):
        r.subset(np.array([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="repeats a position"):
        r.subset([0, 0, 2])
    with pytest.raises(ValueError, match="repeats a position"):
        r.subset([3, -1])  # -1 is 3
    with pytest.raises(IndexError):
        r.subset([4])
    with pytest.raises(ValueError, match="mask has shape"):
        r.subset(np.array([True, False]))
    with pytest.raises(ValueError, match="1-D array of positions"):
        r.subset(np.array([0.0, 1.0]))
    assert len(r.subset([])) == 0 and len(r.subset(np.array([3, 0]))) == 2
    assert r.subset(np.array([True, False, True, False])).values.tolist() == [1.0, 3.0]


def test_parquet_round_trip_keeps_the_timestamps(tmp_path):
    pytest.importorskip("pyarrow")
    r = Ratings.from_arrays([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0], timestamps=[10, 20, 30])
    write_ratings_parquet(r, tmp_path / "rt.parquet")
    for back in (Ratings.read_parquet(tmp_path / "rt.parquet"), Ratings.read_file(tmp_path / "rt.parquet")):
        assert back.timestamps.tolist() == [10, 20, 30]
    assert Ratings.read_parquet(tmp_path / "rt.parquet", timestamp=False).timestamps is None


def test_repeated_columns_and_bad_parquet_scale_name_the_problem(tmp_path):
    df = pd.DataFrame([[1, 1, 2, 4.0]], columns=["user", "user", "item", "rating"])
    with pytest.raises(DataError, match=r"column\(s\) \['user'\] appear more than once"):
        Ratings.from_dataframe(df)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for bad in (b"[5, 1]", b'["NaN", 2]'):
        table = pa.table({"user": [1], "item": [1], "rating": [3.0]}).replace_schema_metadata({b"mfrec.rating_scale": bad})
        pq.write_table(table, tmp_path / "s.parquet")
        with pytest.raises(DataError, match="s.parquet.*bad mfrec.rating_scale"):
            Ratings.read_parquet(tmp_path / "s.parquet")


def test_subset_refuses_a_reordered_bool_series_and_names_the_range() -> None:
    r = Ratings.from_arrays([1, 2, 3, 4], [1, 1, 2, 2], [5.0, 4.0, 3.0, 2.0])
    mask = pd.Series([True, False, False, False], index=[3, 2, 1, 0])
    with pytest.raises(ValueError, match="index is not 0..n-1"):
        r.subset(mask)
    assert len(r.subset(mask.reset_index(drop=True))) == 1
    assert r.subset([-1]).values.tolist() == [2.0]  # numpy's negative positions
    with pytest.raises(IndexError, match=r"outside -4..3"):
        r.subset([4])


def test_synthetic_flags_must_be_bools() -> None:
    from mfrec import synthetic

    for name in ("timestamps", "return_truth"):
        with pytest.raises(ValueError, match=f"{name} must be True or False"):
            synthetic(10, 10, 20, **{name: "no"})


def test_bool_ratings_text_scales_and_fractional_timestamps_are_not_coerced_silently() -> None:
    """Bool ratings became 1.0/0.0, ("1", "5") was a scale, and timestamp 1.5 became 1, all silently."""
    with raises_data_error("ratings are booleans"):
        Ratings.from_arrays([1, 2], [1, 2], np.array([True, False]))
    with raises_data_error("ratings are booleans"):
        Ratings.from_dataframe(pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": pd.Series([True, False], dtype=object)}))
    with pytest.raises(ValueError, match="rating_scale must be a"):
        Ratings.from_arrays([1, 2], [1, 2], [1.0, 2.0], rating_scale=("1", "5"))
    with pytest.warns(UserWarning, match=r"1 timestamp\(s\) had fractions of a second, dropped .* 1.5 at position 1"):
        r = Ratings.from_arrays([1, 2], [1, 2], [1.0, 2.0], timestamps=[1, 1.5])
    assert r.timestamps.tolist() == [1, 1]


def test_datetime_timestamps_with_fractions_of_a_second_warn_too() -> None:
    """Datetimes lost their milliseconds silently where numbers warned."""
    stamps = np.array(["1969-12-31T23:59:59.5", "2020-01-01T00:00:01"], dtype="datetime64[ms]")
    with pytest.warns(UserWarning, match=r"1 timestamp\(s\) had fractions of a second, dropped .* at position 0") as rec:
        r = Ratings.from_arrays([1, 2], [1, 2], [1.0, 2.0], timestamps=stamps)
    assert rec[0].filename == __file__  # points at the caller, not inside mfrec
    assert r.timestamps.tolist() == [-1, 1577836801]  # floored, as numbers are
    df = pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [1.0, 2.0],
                       "timestamp": pd.to_datetime(["2020-01-01 00:00:00.250", "2020-01-01 00:00:00.000"]).tz_localize("UTC")})
    with pytest.warns(UserWarning, match="fractions of a second"):
        assert Ratings.from_dataframe(df, timestamp="timestamp").timestamps.tolist() == [1577836800] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole seconds: nothing to say
        Ratings.from_arrays([1], [1], [1.0], timestamps=np.array(["2020-01-01T00:00:01"], dtype="datetime64[ns]"))


@pytest.mark.parametrize("blank", ["", "  ", "\u00a0", "\t"])
def test_blank_text_ids_are_missing_from_any_source(blank: str) -> None:
    """Parquet and DataFrames trained a user ' ' that a CSV reads as missing."""
    df = pd.DataFrame({"user": ["a", blank, "b"], "item": ["x", "y", "z"], "rating": [1.0, 2.0, 3.0]})
    with raises_data_error("missing user id: an id of spaces only") as exc:
        Ratings.from_dataframe(df)
    assert exc.value.column == "user"
    with raises_data_error("missing item id"):
        Ratings.from_dataframe(df.assign(user="a", item=["x", "y", blank]))
    mixed = np.array([1, "2", True], dtype=object)
    with raises_data_error("ratings are booleans"):
        Ratings.from_arrays([1, 2, 3], [1, 2, 3], mixed)
    nullable = pd.Series([True, False, True], index=[2, 1, 0], dtype="boolean")
    with pytest.raises(ValueError, match="index is not 0..n-1"):
        Ratings.from_arrays([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0]).subset(nullable)
