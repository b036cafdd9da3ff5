"""Readers never lose or change data silently (issue 13, section 3) and keep the declared scale.

Each test fails on the code before the fix: a row read as a header, ids wrapped or merged,
ratings turned into inf, timestamps in the wrong unit, error locations off by some lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from mfrec.data.datasets import load_dataset
from mfrec.data.ratings import Ratings
from mfrec.data.splits import kfold, random_split, temporal_split, user_split
from mfrec.errors import DataError
from mfrec.models import MODEL_NAMES
from tests.conftest import dataset_dir


def write(tmp_path: Path, text: str, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parquet(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "r.parquet"
    pq.write_table(table, path)
    return path


# ---------------------------------------------------------------------------- headers
@pytest.mark.parametrize("first", ["1,2,", "1,2,x", "1,2,abc"])
def test_headerless_first_row_with_bad_rating_is_an_error_not_a_header(tmp_path, first):
    path = write(tmp_path, f"{first}\n2,3,4\n3,4,5\n")
    with pytest.raises(DataError) as exc:
        Ratings.read_csv(path)
    assert exc.value.line == 1 and exc.value.column == "2"


@pytest.mark.parametrize("text", ["a,b,c\n1,2,3\n", "user,item,rating\n1,2,x\n", "userId,movieId,rating\n1,2,3\n"])
def test_real_headers_are_still_found(tmp_path, text):
    path = write(tmp_path, text)
    if "x" in text:
        with pytest.raises(DataError, match="'x' is not a number") as exc:
            Ratings.read_csv(path)
        assert exc.value.line == 2
    else:
        assert len(Ratings.read_csv(path)) == 1


def test_columns_given_by_name_imply_a_header(tmp_path):
    r = Ratings.read_csv(write(tmp_path, "u,i,score\n1,2,3\n"), user="u", item="i", rating="score")
    assert r.values.tolist() == [3.0]


def test_duplicate_header_names_are_an_error(tmp_path):
    with pytest.raises(DataError, match="duplicate column name 'rating'") as exc:
        Ratings.read_csv(write(tmp_path, "rating,item,rating\n1,2,3\n"))
    assert exc.value.line == 1


def test_one_column_in_two_roles_is_an_error(tmp_path):
    with pytest.raises(DataError, match="both the user and the rating"):
        Ratings.read_csv(write(tmp_path, "rating,item,other\n1,2,3\n"))


# ---------------------------------------------------------------------------- extra fields
@pytest.mark.parametrize(
    "text, line",
    [
        ("user,item,rating\n1,2,3,9\n2,3,4\n", 2),  # the first data row only
        ("user,item,rating\n1,2,3,9\n2,3,4,8\n", 2),  # every row
        ("user,item,rating\n1,2,3\n2,3,4,8\n", 3),  # a later row
        ("1,2,3\n2,3,4,8\n", 2),  # headerless: more than the first line
    ],
)
def test_extra_fields_are_an_error_naming_the_line(tmp_path, text, line):
    with pytest.raises(DataError, match="4 fields, expected 3") as exc:
        Ratings.read_csv(write(tmp_path, text))
    assert exc.value.line == line


def test_colon_inside_a_double_colon_field(tmp_path):
    path = write(tmp_path, "1::10::4::100\n1::2:x::3::4\n", "r.dat")
    with pytest.raises(DataError, match="a ':' inside a field") as exc:
        Ratings.read_csv(path, sep="::")
    assert exc.value.line == 2
    with pytest.raises(DataError, match="5 fields, expected 4"):
        Ratings.read_csv(write(tmp_path, "1::10::4::100\n2::11::3::101::9\n", "s.dat"), sep="::")


# ---------------------------------------------------------------------------- ratings overflow
BIG = [1e39, 1e300]


@pytest.mark.parametrize("value", BIG)
def test_float32_overflow_csv(tmp_path, value):
    with pytest.raises(DataError, match="too large") as exc:
        Ratings.read_csv(write(tmp_path, f"user,item,rating\n1,1,4\n1,2,{value!r}\n"))
    assert (exc.value.line, exc.value.column) == (3, "rating")


@pytest.mark.parametrize("value", BIG)
def test_float32_overflow_dataframe_parquet_sparse(tmp_path, value):
    df = pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [4.0, value]})
    with pytest.raises(DataError, match="too large") as exc:
        Ratings.from_dataframe(df)
    assert exc.value.row == 1
    with pytest.raises(DataError, match="too large"):
        Ratings.read_parquet(parquet(tmp_path, pa.Table.from_pandas(df)))
    with pytest.raises(DataError, match=r"entry \(1, 0\).*too large"):
        Ratings.from_sparse(sp.csr_matrix(np.array([[4.0, 0.0], [value, 0.0]])))
    with pytest.raises(DataError, match=r"entry \(0, 1\).*finite"):
        Ratings.from_sparse(sp.csr_matrix(np.array([[4.0, np.inf], [0.0, 1.0]])))


# ---------------------------------------------------------------------------- ids
def test_huge_integer_ids_stay_exact(tmp_path):
    r = Ratings.read_csv(write(tmp_path, "user,item,rating\n12345678901234567890,1,3\n1,1,4\n"))
    assert sorted(r.users.tolist()) == ["1", "12345678901234567890"]  # text: int64 cannot hold them
    big = np.array([2**64 - 1, 2**63, 1], dtype=np.uint64)
    r = Ratings.from_arrays(big, [1, 1, 1], [1, 2, 3])
    assert sorted(r.raw_users.tolist()) == [1, 2**63, 2**64 - 1] and r.n_users == 3
    r = Ratings.read_parquet(parquet(tmp_path, pa.table({"user": pa.array(big), "item": [1, 1, 1], "rating": [1.0, 2, 3]})))
    assert sorted(r.raw_users.tolist()) == [1, 2**63, 2**64 - 1]
    r = Ratings.from_arrays([12345678901234567890, -1], [1, 1], [1, 2])  # numpy would make these floats
    assert sorted(r.raw_users.tolist()) == [-1, 12345678901234567890]


def test_float_ids_beyond_int64_are_not_merged():
    r = Ratings.from_arrays([1e20, 2e20], [1, 1], [1, 2])
    assert r.n_users == 2
    r = Ratings.from_dataframe(pd.DataFrame({"user": [1e20, 2e20, 3.0], "item": [1.5, 1.5, 2.5], "rating": [1, 2, 3]}))
    assert r.n_users == 3 and r.n_items == 2
    assert Ratings.from_arrays([1.0, 2.0], [1, 1], [1, 2]).users.dtype == np.int64  # whole floats: ints


def test_text_ids_keep_leading_zeros(tmp_path):
    r = Ratings.read_csv(write(tmp_path, "user,item,rating\n007,1,3\n7,1,4\n"))
    assert r.n_users == 2 and sorted(r.users.tolist()) == ["007", "7"]
    assert r.items.tolist() == [1] and r.items.dtype == np.int64  # the item column is plain integers
    r = Ratings.read_csv(write(tmp_path, "1,1.0,3\n2,1,4\n", "b.csv"))
    assert sorted(r.items.tolist()) == ["1", "1.0"]
    r = Ratings.read_csv(write(tmp_path, "-5, 12,3\n 6,12 ,4\n", "c.csv"))
    assert r.users.tolist() == [-5, 6] and r.items.tolist() == [12]


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, {1, 2}])
def test_unhashable_ids_name_the_row(bad):
    with pytest.raises(DataError, match="cannot be an id") as exc:
        Ratings.from_dataframe(pd.DataFrame({"user": pd.Series([1, bad], dtype=object), "item": [1, 1], "rating": [1, 2]}))
    assert (exc.value.row, exc.value.column) == (1, "user")


# ---------------------------------------------------------------------------- timestamps
def test_timestamp_overflow_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not fit") as exc:
        Ratings.read_csv(write(tmp_path, "user,item,rating,timestamp\n1,1,3,5\n1,2,4,99999999999999999999\n"))
    assert (exc.value.line, exc.value.column) == (3, "timestamp")
    with pytest.raises(DataError, match="does not fit") as exc:
        Ratings.from_arrays([1, 2], [1, 1], [1, 2], np.array([1, 2**64 - 1], dtype=np.uint64))
    assert exc.value.row == 1
    with pytest.raises(DataError, match="does not fit"):
        Ratings.from_arrays([1, 2], [1, 1], [1, 2], [1.0, 1e20])


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_parquet_timestamps_are_seconds(tmp_path, unit):
    seconds = np.array([1_600_000_000, 1_600_000_123])
    t = pa.array(seconds * {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]).cast(pa.timestamp(unit))
    table = pa.table({"user": [1, 2], "item": [1, 1], "rating": [1.0, 2.0], "ts": t})
    assert Ratings.read_parquet(parquet(tmp_path, table), timestamp="ts").timestamps.tolist() == seconds.tolist()
    assert Ratings.from_dataframe(table, timestamp="ts").timestamps.tolist() == seconds.tolist()


def test_pandas_datetimes_are_seconds():
    when = pd.to_datetime(["2020-01-01 00:00:00", "2020-01-02 00:00:01"])
    df = pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1, 2], "t": when})
    assert Ratings.from_dataframe(df, timestamp="t").timestamps.tolist() == [1577836800, 1577923201]
    df["t"] = when.tz_localize("Europe/Paris")
    assert Ratings.from_dataframe(df, timestamp="t").timestamps.tolist() == [1577833200, 1577919601]
    df["t"] = [when[0], pd.NaT]
    with pytest.raises(DataError, match="missing") as exc:
        Ratings.from_dataframe(df, timestamp="t")
    assert exc.value.row == 1


# ---------------------------------------------------------------------------- error locations
def test_lines_after_a_quoted_newline(tmp_path):
    text = 'user,item,rating\n1,"a\nb",3\n2,x,4\n3,y,5,6\n'
    with pytest.raises(DataError, match="4 fields, expected 3") as exc:
        Ratings.read_csv(write(tmp_path, text))
    assert exc.value.line == 5
    text = 'user,item,rating\n1,"a\nb\nc",3\n2,x,4\n3,y,zz\n'
    with pytest.raises(DataError, match="'zz' is not a number") as exc:
        Ratings.read_csv(write(tmp_path, text, "b.csv"))
    assert exc.value.line == 6


def test_latin1_file_reports_the_true_offset_and_line(tmp_path):
    body = "".join(f"{k},{k % 7},3\n" for k in range(100_000))
    raw = ("user,item,rating\n" + body).encode() + "9,caf\xe9,4\n".encode("latin-1")
    path = tmp_path / "latin.csv"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=f"byte 0xe9 at byte offset {raw.index(bytes([0xE9]))}.*encoding='latin-1'") as exc:
        Ratings.read_csv(path)
    assert exc.value.line == 100_002
    assert "caf\xe9" in Ratings.read_csv(path, encoding="latin-1").items.tolist()


MOVIES = "movieId,title,genres\n1,Toy Story (1995),Animation\n2,\"Two\nlines (1995)\",Drama\n{bad},Heat (1995),Action\n"
RATINGS = "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n"


@pytest.mark.parametrize("bad", ["x3", "3.5"])
def test_bad_movie_id_in_movies_csv_names_its_line(tmp_path, monkeypatch, bad):
    folder = tmp_path / "data" / "ml-latest-small"
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text(RATINGS)
    (folder / "movies.csv").write_text(MOVIES.format(bad=bad))
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=f"item id '{bad}' is not an integer") as exc:
        load_dataset("ml-latest-small", data_dir=folder.parent, download=False)
    assert exc.value.line == 5 and exc.value.source.endswith("movies.csv")


# ---------------------------------------------------------------------------- fit on nothing
@pytest.mark.parametrize("name", sorted(MODEL_NAMES))
def test_fit_on_zero_ratings_is_one_clear_error(name):
    r = Ratings.from_arrays([1, 2, 3], [1, 2, 3], [1, 2, 3])
    empty = r.subset(np.zeros(len(r), dtype=bool))
    with pytest.raises(DataError, match="no ratings to train on"):
        MODEL_NAMES[name]().fit(empty)


# ---------------------------------------------------------------------------- rating_scale
def test_declared_scale_is_stored_and_kept_by_pieces(tmp_path):
    n = 60
    rng = np.random.default_rng(0)
    r = Ratings.from_arrays(np.arange(n) % 6, np.arange(n) // 6, rng.integers(1, 5, n), np.arange(n), rating_scale=(1, 5))
    assert r.rating_scale == (1.0, 5.0) and r.rating_range[1] <= 4.0
    assert r.subset([0, 1]).rating_scale == (1.0, 5.0)
    pieces = [*random_split(r), *user_split(r), *temporal_split(r), *next(kfold(r, 3))]
    assert all(p.rating_scale == (1.0, 5.0) for p in pieces)
    assert Ratings.from_arrays([1], [1], [3]).rating_scale is None
    path = write(tmp_path, "user,item,rating\n1,1,4\n")
    assert Ratings.read_csv(path, rating_scale=(0.5, 5)).rating_scale == (0.5, 5.0)
    assert Ratings.from_sparse(sp.csr_matrix(np.array([[4.0]])), rating_scale=(1, 5)).rating_scale == (1.0, 5.0)
    with pytest.raises(ValueError, match="rating_scale"):
        Ratings.from_arrays([1], [1], [3], rating_scale=(5, 1))


@pytest.mark.parametrize("name", ["baseline", "biased-mf", "als", "cmf"])
def test_models_use_the_declared_scale(name):
    n = 200
    rng = np.random.default_rng(1)
    key = np.unique(rng.integers(0, 20 * 15, n))
    u, i = key // 15, key % 15
    r = Ratings.from_arrays(u, i, 1 + 3 * (i >= 7), rating_scale=(1, 5))  # no 5 in training
    model = MODEL_NAMES[name]().fit(r)
    assert model.rating_scale_ == (1.0, 5.0)
    undeclared = Ratings.from_arrays(u, i, 1 + 3 * (i >= 7))
    assert MODEL_NAMES[name]().fit(undeclared).rating_scale_ == (1.0, 4.0)


def test_movielens_loaders_declare_their_scale(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    root = dataset_dir("ml-100k").parent
    ds = load_dataset("ml-100k", data_dir=root, download=False)
    assert ds.ratings.rating_scale == (1.0, 5.0)
    train, test = ds.official_split("u1")
    assert train.rating_scale == test.rating_scale == (1.0, 5.0)
    if (root / "ml-latest-small").is_dir():
        assert load_dataset("ml-latest-small", data_dir=root, download=False).ratings.rating_scale == (0.5, 5.0)


def test_huge_ids_round_trip_through_parquet(tmp_path):
    from mfrec.data.readers import write_ratings_parquet

    r = Ratings.from_arrays([12345678901234567890, 1], [1, 1], [1, 2], [5, 6])
    write_ratings_parquet(r, tmp_path / "w.parquet")
    back = Ratings.read_parquet(tmp_path / "w.parquet", timestamp="timestamp")
    pd.testing.assert_frame_equal(back.to_dataframe(), r.to_dataframe())
    with pytest.raises(DataError, match="neither int64 nor uint64"):
        write_ratings_parquet(Ratings.from_arrays([2**64, -1], [1, 1], [1, 2]), tmp_path / "x.parquet")


def test_other_multicharacter_separators_are_literal(tmp_path):
    r = Ratings.read_csv(write(tmp_path, "1|;2|;3\n2|;2|;4\n", "r.txt"), sep="|;")
    assert r.raw_users.tolist() == [1, 2] and r.values.tolist() == [3.0, 4.0]
    with pytest.raises(DataError, match="4 fields, expected 3") as exc:
        Ratings.read_csv(write(tmp_path, "1|;2|;3\n2|;2|;4|;5\n", "s.txt"), sep="|;")
    assert exc.value.line == 2


def test_empty_trailing_field_is_harmless_but_a_value_there_is_not(tmp_path):
    assert len(Ratings.read_csv(write(tmp_path, "user,item,rating\n1,2,3,\n"))) == 1
    with pytest.raises(DataError, match="4 fields, expected 3") as exc:
        Ratings.read_csv(write(tmp_path, "user,item,rating\n1,2,3,\n2,2,4,NA\n", "b.csv"))
    assert exc.value.line == 3


def test_quoted_separator_in_the_first_row(tmp_path):
    r = Ratings.read_csv(write(tmp_path, '1,"a,b",3\n2,c,4\n'))
    assert r.timestamps is None and sorted(r.items.tolist()) == ["a,b", "c"]
    with pytest.raises(DataError, match="4 fields, expected 3") as exc:
        Ratings.read_csv(write(tmp_path, 'user,item,rating\n1,"a,b",3\n2,"c,d",4,5\n', "b.csv"))
    assert exc.value.line == 3


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("data,match", [
    (b"1,2,3\n2,3\x00,4\n", r"line 2: NUL byte at byte offset 9"),
    ("user,item,rating\n1,2,3\n".encode("utf-16"), "NUL byte.*UTF-16"),
    (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
    (b"PK\x03\x04rest", "zip archive"),
    (b"PAR1rest", "Parquet file.*read_parquet"),
])
def test_binary_and_compressed_files_are_refused_at_once(tmp_path, data, match):
    """A NUL inside a field used to become part of an id ('3\\x00'); gzip files said 'found ['0']'."""
    path = tmp_path / "r.csv"
    path.write_bytes(data)
    with pytest.raises(DataError, match=match):
        Ratings.read_csv(path)


def test_a_field_beyond_the_csv_field_limit_is_a_data_error(tmp_path):
    path = write(tmp_path, "1,2,3\n" + "9" * 200_000 + ",2,3\n")
    with pytest.raises(DataError, match="line 2"):
        Ratings.read_csv(path)


@pytest.mark.parametrize("text,col", [("1,2,3\n2,3," + "9" * 400 + "\n", "rating"),
                                      ("1,2,3,5\n2,3,4," + "9" * 400 + "\n", "timestamp")])
def test_integers_beyond_float64_are_reported_not_an_overflow_error(tmp_path, text, col):
    with pytest.raises(DataError, match="line 2"):
        Ratings.read_csv(write(tmp_path, text))


@pytest.mark.parametrize("kw,match", [
    ({"encoding": "nope"}, "encoding must be"), ({"sep": None}, "sep must be"), ({"sep": ""}, "sep must be"),
    ({"header": "yes"}, "header must be"), ({"user": 1.5}, "user must be a column name"),
    ({"rating": True}, "rating must be a column name"),
])
def test_bad_reader_arguments_name_the_argument(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        Ratings.read_csv(write(tmp_path, "1,2,3\n"), **kw)


def test_bad_path_types(tmp_path):
    with pytest.raises(TypeError, match="path must be a str"):
        Ratings.read_csv(5)
    path = write(tmp_path, "1,2,3\n2,3,4\n")
    assert len(Ratings.read_csv(str(path).encode())) == 2


@pytest.mark.parametrize("text,sep_hint", [("1;2;3\n2;3;4\n", "';'"), ("1\t2\t3\n", "'\\\\t'"), ("1::2::3\n", "'::'")])
def test_too_few_columns_shows_the_line_and_suggests_the_separator(tmp_path, text, sep_hint):
    with pytest.raises(DataError, match=f"1 field.*pass sep={sep_hint}"):
        Ratings.read_csv(write(tmp_path, text))


@pytest.mark.parametrize("text", ["user,item,rating,\n1,2,3,\n2,3,4,\n", "1,2,3,\n2,3,4,\n"])
def test_a_trailing_separator_is_not_an_empty_timestamp_column(tmp_path, text):
    r = Ratings.read_csv(write(tmp_path, text))
    assert r.timestamps is None and r.values.tolist() == [3.0, 4.0]


def test_a_real_fourth_column_with_gaps_is_still_an_error(tmp_path):
    with pytest.raises(DataError, match="timestamp missing"):
        Ratings.read_csv(write(tmp_path, "1,2,3,100\n2,3,4,\n"))


def test_complex_ratings_are_refused():
    with pytest.raises(DataError, match="complex"):
        Ratings.from_arrays([1, 2], [1, 2], np.array([1 + 1j, 2]))
    with pytest.raises(DataError, match="complex"):
        Ratings.from_sparse(sp.csr_matrix(np.eye(2, dtype=complex)))


@pytest.mark.parametrize("args,what", [((1, 2, 3), "users"), ((None, [1], [1.0]), "users"),
                                       (([1], [1], "5"), "ratings"), (((x for x in [1]), [1], [1.0]), "users"),
                                       (({1, 2}, [1, 2], [1.0, 2.0]), "users"), (([1, 2], [1, 2], {1: 2, 2: 3}), "ratings")])
def test_non_sequences_are_named_not_misreported_as_length_mismatches(args, what):
    """A scalar, None, a str, a set or a generator became a 1-element array: 'differ in length'."""
    with pytest.raises(DataError, match=f"{what} must be a 1-D sequence"):
        Ratings.from_arrays(*args)


@pytest.mark.parametrize("seed", [-1, "abc", 1.5, True])
def test_split_and_synthetic_seeds_name_the_parameter(seed):
    from mfrec import synthetic

    r = synthetic(20, 20, 100, seed=0)
    for call in (lambda: random_split(r, seed=seed), lambda: user_split(r, seed=seed),
                 lambda: list(kfold(r, seed=seed)), lambda: synthetic(20, 20, 100, seed=seed)):
        with pytest.raises(ValueError, match="seed must be"):
            call()


def test_parquet_round_trip_keeps_the_declared_scale(tmp_path):
    from mfrec.data.readers import write_ratings_parquet

    r = Ratings.from_arrays([1, 2], [1, 2], [1.0, 4.0], rating_scale=(0.5, 5))
    write_ratings_parquet(r, tmp_path / "s.parquet")
    back = Ratings.read_parquet(tmp_path / "s.parquet")
    assert back.rating_scale == (0.5, 5.0)
    with pytest.raises(DataError, match="outside the scale"):  # an explicit scale still wins and is checked
        Ratings.read_parquet(tmp_path / "s.parquet", rating_scale=(2, 5))
    plain = Ratings.from_arrays([1, 2], [1, 2], [1.0, 4.0])
    write_ratings_parquet(plain, tmp_path / "p.parquet")
    assert Ratings.read_parquet(tmp_path / "p.parquet").rating_scale is None


def test_score_takes_a_dataframe_and_refuses_empty_data():
    from mfrec import BiasedMF, synthetic

    r = synthetic(20, 20, 100, seed=0)
    m = BiasedMF(factors=2, epochs=2, seed=0, threads=1).fit(r)
    assert m.score(r.to_dataframe()) == pytest.approx(m.score(r), rel=1e-6)
    with pytest.raises(DataError, match="no ratings to score"):
        m.score(r.subset(np.zeros(len(r), dtype=bool)))


def test_special_files_are_named_for_what_they_are(tmp_path):
    """A FIFO or /dev/zero was called "not a regular file (a directory?)"."""
    import os

    fifo = tmp_path / "ff"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), (Path("/dev/zero"), "device"), (tmp_path, "directory")):
        with pytest.raises(DataError, match=f"not a regular file: this is a.*{kind}"):
            Ratings.read_csv(path)
