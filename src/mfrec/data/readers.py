"""Readers for ratings files: delimited text (any separator, `::` too) and Parquet.

Reading is vectorized (pandas' C parser, pyarrow); errors name the file, the line and the column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfrec.data.idmap import IdMap
from mfrec.data.ratings import DuplicatePolicy, Ratings
from mfrec.errors import DataError

ColumnRef = str | int | None

USER_NAMES = ("user", "userid", "user_id", "userId", "UserId", "uid")
ITEM_NAMES = ("item", "itemid", "item_id", "movieId", "ItemId", "movie_id", "movieid", "iid")
RATING_NAMES = ("rating", "Rating", "score", "value")
TIME_NAMES = ("timestamp", "Timestamp", "time", "ts")


def _split_multichar(sep: str) -> tuple[str, int, str]:
    """(parser separator, column stride, engine) for a separator.

    A repeated single character such as ``::`` is read with the fast C parser as ``:`` taking every
    second field; any other multi-character separator falls back to the (slower) python engine.
    """
    if len(sep) == 1:
        return sep, 1, "c"
    if sep == "\\t":
        return "\t", 1, "c"
    if len(set(sep)) == 1:
        return sep[0], len(sep), "c"
    return sep, 1, "python"


def _first_line(path: Path, encoding: str) -> str:
    with open(path, "r", encoding=encoding, errors="replace") as fh:
        return fh.readline().rstrip("\r\n")


def _looks_numeric(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _pick(names: list[str], ref: ColumnRef, candidates: tuple[str, ...], position: int | None, what: str, path: Path):
    """Resolve a column reference (name, position or None = guess) to a position."""
    if isinstance(ref, int):
        if not 0 <= ref < len(names):
            raise DataError(f"{what} column position {ref} does not exist (the file has {len(names)} columns)", source=str(path))
        return ref
    if isinstance(ref, str):
        if ref in names:
            return names.index(ref)
        raise DataError(f"missing {what} column {ref!r}; the header has {names}", source=str(path))
    lowered = [n.lower() for n in names]
    for c in candidates:
        if c.lower() in lowered:
            return lowered.index(c.lower())
    if position is not None and position < len(names):
        return position
    return None


def read_ratings_csv(
    path: str | os.PathLike,
    *,
    sep: str = ",",
    header: bool | None = None,
    user: ColumnRef = None,
    item: ColumnRef = None,
    rating: ColumnRef = None,
    timestamp: ColumnRef | bool = None,
    duplicates: DuplicatePolicy = "error",
    rating_scale: tuple[float, float] | None = None,
    encoding: str = "utf-8",
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> Ratings:
    """Read ratings from a delimited text file.

    ``sep`` may be any separator (``","``, ``"\\t"``, ``"::"`` for ml-1m, ``"|"``).
    ``header=None`` guesses: the first line is a header when its rating field is not a number.
    Columns are given by name or 0-based position; left as None they are found by common names
    (userId, movieId, rating, timestamp ...) or taken as columns 0, 1, 2 (and 3 as the timestamp
    when the file has a fourth column; pass ``timestamp=False`` to ignore it).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ratings file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError("no ratings: the file is empty", source=str(path))
    psep, stride, engine = _split_multichar(sep)
    first = _first_line(path, encoding)
    raw_fields = first.split(sep if engine == "python" or stride > 1 else psep)
    n_cols = len(raw_fields)
    if header is None:
        guess_rating = 2 if n_cols > 2 else n_cols - 1
        if isinstance(rating, int):
            guess_rating = rating
        header = not _looks_numeric(raw_fields[guess_rating].strip().strip('"')) if guess_rating < n_cols else True
    names = [f.strip().strip('"') for f in raw_fields] if header else [str(k) for k in range(n_cols)]

    if not header:
        # names are positions; allow string refs that are digits
        def norm(ref: Any) -> Any:
            return int(ref) if isinstance(ref, str) and ref.isdigit() else ref
        user, item, rating = norm(user), norm(item), norm(rating)
        timestamp = norm(timestamp) if not isinstance(timestamp, bool) else timestamp
    u_pos = _pick(names, user, USER_NAMES if header else (), 0, "user", path)
    i_pos = _pick(names, item, ITEM_NAMES if header else (), 1, "item", path)
    r_pos = _pick(names, rating, RATING_NAMES if header else (), 2, "rating", path)
    if u_pos is None or i_pos is None or r_pos is None:
        raise DataError(f"need at least three columns (user, item, rating); found {names}", source=str(path))
    if timestamp is False:
        t_pos = None
    elif timestamp is True:
        t_pos = _pick(names, None, TIME_NAMES if header else (), 3, "timestamp", path)
    else:
        t_pos = _pick(names, timestamp, TIME_NAMES if header else (), 3 if timestamp is None and n_cols > 3 else None, "timestamp", path)
        if timestamp is None and t_pos is not None and t_pos in (u_pos, i_pos, r_pos):
            t_pos = None

    positions = [p for p in (u_pos, i_pos, r_pos, t_pos) if p is not None]
    usecols = [p * stride for p in positions]
    header_lines = 1 if header else 0
    # Every column is read (not `usecols`, with which pandas silently drops extra fields of a
    # malformed row); the unused ones as cheap categoricals (the empty fillers of `::` too).
    n_raw = len(first.split(psep)) if engine == "c" else n_cols
    unused = {k: "category" for k in range(n_raw) if k not in usecols}
    try:
        df = pd.read_csv(
            path,
            sep=psep,
            header=None,
            skiprows=header_lines,
            dtype=str if engine == "python" else (unused or None),
            engine=engine,
            encoding=encoding,
            skip_blank_lines=False,
            quotechar='"',
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            want, line, saw = (int(x) for x in m.groups())
            raise DataError(
                f"malformed row: {(saw + stride - 1) // stride} fields, expected {(want + stride - 1) // stride}",
                source=str(path),
                line=line,
            ) from None
        raise DataError(f"malformed row: {exc}", source=str(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError("no ratings: the file has no data rows", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not {encoding} text ({exc.reason} at byte {exc.start}); pass encoding=", source=str(path)) from None
    except ValueError as exc:
        raise DataError(f"cannot read columns {positions}: {exc}", source=str(path)) from None
    if max(usecols) >= df.shape[1]:
        raise DataError(
            f"cannot read columns {positions}: the rows have only {(df.shape[1] + stride - 1) // stride} fields",
            source=str(path),
        )
    df = df.iloc[:, usecols]

    # trailing blank lines are harmless; any other all-empty row is reported by from_arrays
    all_na = df.isna().all(axis=1).to_numpy()
    if all_na.any():
        last_real = np.flatnonzero(~all_na)
        end = int(last_real[-1]) + 1 if len(last_real) else 0
        df = df.iloc[:end]
    cols = [df.iloc[:, k].to_numpy() for k in range(len(positions))]

    if len(df) == 0:
        raise DataError("no ratings: the file has no data rows", source=str(path))

    names_used = [names[p] for p in (u_pos, i_pos, r_pos)] + [names[t_pos] if t_pos is not None else "timestamp"]
    return Ratings.from_arrays(
        cols[0],
        cols[1],
        cols[2],
        cols[3] if t_pos is not None else None,
        user_map=user_map,
        item_map=item_map,
        duplicates=duplicates,
        rating_scale=rating_scale,
        source=str(path),
        locate=lambda i: {"line": int(i) + 1 + header_lines},
        column_names=names_used,
    )


def read_ratings_parquet(
    path: str | os.PathLike,
    *,
    user: str = "user",
    item: str = "item",
    rating: str = "rating",
    timestamp: str | None = None,
    duplicates: DuplicatePolicy = "error",
    rating_scale: tuple[float, float] | None = None,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> Ratings:
    """Read ratings from a Parquet file (pyarrow), by column names."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ratings file not found: {path}")
    try:
        schema_names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise DataError(f"not a Parquet file: {exc}", source=str(path)) from None
    wanted = [c for c in (user, item, rating, timestamp) if c is not None]
    missing = [c for c in wanted if c not in schema_names]
    if missing:
        raise DataError(f"missing column(s) {missing}; the file has {schema_names}", source=str(path))
    df = pq.read_table(path, columns=wanted).to_pandas()
    return Ratings.from_dataframe(
        df, user, item, rating, timestamp,
        duplicates=duplicates, rating_scale=rating_scale, user_map=user_map, item_map=item_map,
        source=str(path),
    )


def write_ratings_parquet(ratings: Ratings, path: str | os.PathLike) -> None:
    """Write Ratings (raw ids) to Parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mfrec.io import atomic_path

    table = pa.Table.from_pandas(ratings.to_dataframe(), preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
