"""Readers for ratings files: delimited text (any separator, `::` too) and Parquet.

Reading is vectorized (pandas' C parser, numpy); errors name the file, the line and the column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mfrec._optional import require_parquet
from mfrec.data.idmap import IdMap
from mfrec.errors import DataError

if TYPE_CHECKING:  # readers build the keyword arguments; mfrec.data.ratings builds the Ratings
    from mfrec.data.ratings import DuplicatePolicy, Ratings

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


def _head_lines(path: Path, encoding: str, k: int = 2) -> list[str]:
    """The first ``k`` lines (fewer when the file is shorter), line ends and a BOM removed."""
    out = []
    with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
        for _ in range(k):
            line = fh.readline()
            if not line:
                break
            out.append(line.rstrip("\r\n").lstrip("\ufeff") if not out else line.rstrip("\r\n"))
    return out


#: leading bytes of files that are not delimited text: (magic, what it is)
_MAGIC = ((b"\x1f\x8b", "a gzip-compressed file"), (b"PK\x03\x04", "a zip archive"), (b"BZh", "a bzip2-compressed file"),
          (b"\xfd7zXZ\x00", "an xz-compressed file"), (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
          (b"PAR1", "a Parquet file (read it with Ratings.read_parquet)"))


def check_text_file(path: Any, what: str = "ratings") -> Path:
    """``path`` as a Path to a non-empty regular file of text, or a clear error.

    TypeError for a path that is not a str/bytes/PathLike; FileNotFoundError; DataError for a
    directory or device, an empty file, a compressed or Parquet file (by its magic bytes) and a
    file holding NUL bytes (binary data, or UTF-16 text), with the byte offset and line of the
    first one. The NUL scan is a memchr over a memory map: no copy of the file.
    """
    import mmap

    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} file path must be a str or os.PathLike, not {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        kind = ("a directory" if path.is_dir() else "a FIFO (named pipe)" if path.is_fifo()
                else "a device" if path.is_char_device() or path.is_block_device() else "a socket or other special file")
        raise DataError(f"not a regular file: this is {kind}", source=str(path))
    if path.stat().st_size == 0:
        raise DataError(f"no {what}: the file is empty", source=str(path))
    with open(path, "rb") as fh:
        head = fh.read(8)
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                raise DataError(f"this is {kind}, not delimited text; decompress or convert it first", source=str(path))
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            nul = mm.find(b"\x00")
            if nul >= 0:
                line = mm[:nul].count(b"\n") + 1
                raise DataError(
                    f"NUL byte at byte offset {nul}: this is binary data (or UTF-16 text), not a text file "
                    "(convert UTF-16 to UTF-8 first)", source=str(path), line=line,
                )
    return path


def _check_csv_args(sep: Any, header: Any, encoding: Any, refs: dict[str, Any]) -> None:
    """ValueError naming the argument for a bad separator, header flag, encoding or column."""
    import codecs

    if not isinstance(sep, str) or not sep or sep in ("\n", "\r", '"'):
        raise ValueError(f"sep must be a non-empty string such as ',', '\\t' or '::' (not a quote or newline), not {sep!r}")
    if header is not None and not isinstance(header, (bool, np.bool_)):
        raise ValueError(f"header must be True, False or None (guess), not {header!r}")
    try:
        if not isinstance(encoding, str):
            raise LookupError
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"encoding must be the name of a text encoding ('utf-8', 'latin-1', ...), not {encoding!r}") from None
    for name, ref in refs.items():
        if name == "timestamp" and isinstance(ref, bool):
            continue
        if ref is not None and (isinstance(ref, (bool, np.bool_)) or not isinstance(ref, (str, int, np.integer))):
            raise ValueError(f"{name} must be a column name (str) or 0-based position (int), not {ref!r}")


def _looks_numeric(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


#: the tokens pandas reads as missing by default; kept for ratings and timestamps (ids: only "")
_NA_TOKENS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
              "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_KNOWN_NAMES = {n.lower() for n in USER_NAMES + ITEM_NAMES + RATING_NAMES + TIME_NAMES}


class RowLines:
    """Maps 0-based data rows of a delimited text file to 1-based file lines.

    Without quoted fields a row is one line; with a quote character in the file the rows are
    re-read with the csv module (only when an error is reported), so a quoted field holding a
    newline does not shift the lines that follow.
    """

    def __init__(
        self, path: Path, encoding: str, delimiter: str, header_lines: int, *, quoting: bool = True,
        skip_blank: bool = False,
    ) -> None:
        self.path, self.encoding, self.delimiter, self.header_lines = path, encoding, delimiter, header_lines
        self.quoting, self.skip_blank = quoting, skip_blank  # as the parser was told (blank lines skipped?)
        self._starts: list[int] | None = None

    def _scan(self) -> list[int]:
        import csv

        with open(self.path, "rb") as fh:
            quoted = self.quoting and b'"' in fh.read()
        if not quoted and not self.skip_blank:
            return []
        starts: list[int] = []
        with open(self.path, "r", encoding=self.encoding, errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter[0], quotechar='"',
                                quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
            prev = 0
            try:
                for k, record in enumerate(reader):
                    if k >= self.header_lines and (record or not self.skip_blank):
                        starts.append(prev + 1)
                    prev = reader.line_num
            except csv.Error:  # an over-long field: lines after it fall back to one row per line
                pass
        return starts

    def __call__(self, row: int) -> int:
        if self._starts is None:
            self._starts = self._scan()
        if self._starts and 0 <= row < len(self._starts):
            return self._starts[row]
        return int(row) + 1 + self.header_lines

    def text(self, line: int) -> str:
        """The text of a 1-based file line ('' past the end)."""
        with open(self.path, "r", encoding=self.encoding, errors="replace", newline="") as fh:
            for k, text in enumerate(fh, start=1):
                if k == line:
                    return text.rstrip("\r\n")
        return ""


def decode_error(path: Path, encoding: str) -> DataError:
    """A DataError naming the first byte of ``path`` that is not valid ``encoding``: its file
    offset and line (pandas reports offsets within its read buffer)."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        hint = "; if it is Latin-1 (ISO-8859-1) text, pass encoding='latin-1'" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else ""
        return DataError(
            f"the file is not valid {encoding} text: byte 0x{raw[exc.start]:02x} at byte offset {exc.start} "
            f"cannot be decoded ({exc.reason}){hint}",
            source=str(path), line=line,
        )
    return DataError(f"the file is not valid {encoding} text; pass encoding=", source=str(path))


_CANONICAL_INT = r"^-?(0|[1-9][0-9]*)$"
_ZERO, _NINE, _MINUS = ord("0"), ord("9"), ord("-")
_ID_CHUNK = 1 << 20  # rows per vectorized pass: bounds the fixed-width copy of a column


def _canonical_chunk(text: np.ndarray) -> tuple[bool, np.ndarray | None]:
    """(all canonical integer literals?, their int64 values or None when too wide for int64) for a
    fixed-width unicode array ``text`` (already stripped), checked on its UTF-32 code points."""
    n, width = len(text), text.dtype.itemsize // 4
    if width == 0:  # every id is the empty string
        return False, None
    codes = text.view(np.uint32).reshape(n, width)
    digit = codes - np.uint32(_ZERO)  # wraps around below "0": a digit iff <= 9
    is_digit = digit <= 9
    length = np.strings.str_len(text)  # counts NULs inside a string, which are not digits
    negative = codes[:, 0] == _MINUS
    n_digits = length - negative
    second = codes[np.arange(n), negative.view(np.int8)]  # the first digit
    ok = (np.count_nonzero(is_digit, axis=1) == n_digits) & (n_digits >= 1) & ((n_digits == 1) | (second != _ZERO))
    if not ok.all():
        return False, None
    if width > 18:  # may not fit int64: the caller converts exactly
        return True, None
    value = np.zeros(n, dtype=np.int64)
    for j in range(width):  # Horner over the (at most 18) character positions, vectorized over ids
        value = np.where(is_digit[:, j], value * 10 + digit[:, j], value)
    return True, np.where(negative, -value, value)


def _text_ids(col: pd.Series) -> np.ndarray:
    """Ids read as text: int64 when every id is a canonical integer literal (``7``, ``-12``; no
    ``+``, no leading zeros, no decimal point) that fits int64; otherwise every id of the column
    stays its text (so ``007`` and ``7`` are two ids, and so are ``1`` and ``1.0``; ids of 20
    digits too, which int64 cannot hold and a model file could not save as ints). Surrounding spaces are ignored; an
    id of spaces only is missing. A column with missing ids is left as it is for the validator to report. Vectorized with numpy on the ids'
    code points, a million rows at a time (no pyarrow needed)."""
    if len(col) == 0 or col.isna().any():
        return col.to_numpy(dtype=object)
    raw = col.to_numpy(dtype=object)
    parts: list[np.ndarray] = []
    exact = False
    for start in range(0, len(raw), _ID_CHUNK):
        text = np.strings.strip(raw[start:start + _ID_CHUNK].astype(str))
        if (np.strings.str_len(text) == 0).any():  # spaces only: a missing id, for the validator to report
            ids = col.astype(object).astype(str).str.strip()
            return ids.where(ids != "", None).to_numpy(dtype=object)
        canonical, values = _canonical_chunk(text)
        if not canonical:
            return col.astype(object).astype(str).str.strip().to_numpy(dtype=object)
        if values is None:
            exact = True
        else:
            parts.append(values)
    if not exact:
        return np.concatenate(parts)
    ints = [int(x) for x in pd.Series(raw).astype(str).str.strip()]  # rare: ids of 19+ digits
    try:
        return np.array(ints, dtype=np.int64)
    except OverflowError:  # beyond int64: the ids keep their text (a model file keeps int64 or str ids)
        return col.astype(object).astype(str).str.strip().to_numpy(dtype=object)


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


def _head_records(path: Path, encoding: str, psep: str, stride: int, engine: str, lines: list[str], split) -> list[list[str]]:
    """The first two records, split into fields (quoted fields may span lines)."""
    if engine == "c" and stride == 1:
        import csv
        import itertools

        with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=psep, quotechar='"')
            try:
                recs = list(itertools.islice(reader, 2))
            except csv.Error as exc:
                raise DataError(f"malformed row: {exc}", source=str(path), line=reader.line_num) from None
        if recs and recs[0]:
            recs[0][0] = recs[0][0].lstrip("\ufeff")
        return recs
    return [split(line) for line in lines]


def _guess_header(records: list[list[str]], refs: tuple, n_cols: int) -> bool:
    """Whether the first line is a header (``header=None``).

    It is when a column is given by name, or when its user, item and rating fields are all
    non-empty non-numbers and either one of its fields is a common column name (userId, rating ...)
    or the second line's rating field is a number. A data row with an empty or bad rating is
    therefore not mistaken for a header (it is reported as an error at line 1).
    """
    if any(isinstance(r, str) and not r.isdigit() for r in refs):
        return True
    u, i, r = (ref if isinstance(ref, int) else k for ref, k in zip(refs[:3], (0, 1, 2 if n_cols > 2 else n_cols - 1)))
    first = [f.strip().strip('"') for f in records[0]]
    if max(u, i, r) >= len(first):
        return False
    if not all(first[p] and not _looks_numeric(first[p]) for p in (u, i, r)):
        return False
    if any(f.lower() in _KNOWN_NAMES for f in first):
        return True
    if len(records) < 2:
        return False
    second = [f.strip().strip('"') for f in records[1]]
    return r < len(second) and _looks_numeric(second[r])


def parse_ratings_csv(
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
) -> dict[str, Any]:
    """Parse a delimited text file of ratings into the keyword arguments of
    :meth:`Ratings.from_arrays` (what :meth:`Ratings.read_csv` does; this layer imports no Ratings).

    ``sep`` may be any separator (``","``, ``"\\t"``, ``"::"`` for ml-1m, ``"|"``).
    ``header=None`` guesses (see :func:`_guess_header`): the first line is a header when its
    user, item and rating fields are names, not numbers. Columns are given by name (which implies a
    header) or 0-based position; left as None they are found by common names (userId, movieId,
    rating, timestamp ...) or taken as columns 0, 1, 2 (and 3 as the timestamp when the file has a
    fourth column; pass ``timestamp=False`` to ignore it). Every row must have as many fields as the
    header (or, without one, at most as many as the first line); ids are read as text and become
    int64 only when all are plain integers (see :func:`_text_ids`); timestamps are seconds.
    """
    _check_csv_args(sep, header, encoding, {"user": user, "item": item, "rating": rating, "timestamp": timestamp})
    path = check_text_file(path)
    psep, stride, engine = _split_multichar(sep)
    real_sep = "\t" if sep == "\\t" else sep

    def split(line: str) -> list[str]:
        return line.split(real_sep)

    lines = _head_lines(path, encoding)
    if not lines:
        raise DataError("no ratings: the file is empty", source=str(path))
    records = _head_records(path, encoding, psep, stride, engine, lines, split)
    raw_fields = records[0] if records else []  # quoted fields may hold the separator
    n_cols = len(raw_fields)
    if header is None:
        header = _guess_header(records, (user, item, rating, timestamp if not isinstance(timestamp, bool) else None), n_cols)
    names = [f.strip().strip('"') for f in raw_fields] if header else [str(k) for k in range(n_cols)]
    if header:
        seen: dict[str, int] = {}
        for k, nm in enumerate(names):
            if nm in seen:
                raise DataError(
                    f"duplicate column name {nm!r} in the header (columns {seen[nm]} and {k})", source=str(path), line=1
                )
            seen[nm] = k

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
        shown = lines[0] if len(lines[0]) <= 60 else lines[0][:57] + "..."
        others = [c for c in ("\t", ";", "::", "|", ",", " ") if c != real_sep and c in lines[0]]
        hint = f"; it contains {others[0]!r}: pass sep={others[0]!r}?" if others else ""
        raise DataError(
            f"need at least three columns (user, item, rating) separated by {real_sep!r}, but the first "
            f"record has {n_cols} field(s): {shown!r}{hint}", source=str(path), line=1,
        )
    if timestamp is False:
        t_pos = None
    elif timestamp is True:
        t_pos = _pick(names, None, TIME_NAMES if header else (), 3, "timestamp", path)
    else:
        # with a header, a fourth column is a timestamp only when named like one ("price" 9.99 would
        # become the timestamp 9); without one, the fourth column is (the MovieLens layouts)
        t_pos = _pick(names, timestamp, TIME_NAMES if header else (),
                      3 if timestamp is None and n_cols > 3 and not header else None, "timestamp", path)
        if timestamp is None and t_pos is not None and t_pos in (u_pos, i_pos, r_pos):
            t_pos = None
    roles = [("user", u_pos), ("item", i_pos), ("rating", r_pos), ("timestamp", t_pos)]
    for a in range(4):
        for b in range(a + 1, 4):
            if roles[a][1] is not None and roles[a][1] == roles[b][1]:
                raise DataError(
                    f"column {names[roles[a][1]]!r} would be read as both the {roles[a][0]} and the {roles[b][0]}; "
                    f"name the columns (user=, item=, rating=)", source=str(path),
                )

    positions = [p for p in (u_pos, i_pos, r_pos, t_pos) if p is not None]
    usecols = [p * stride for p in positions]
    header_lines = 1 if header else 0
    # the python engine ignores quotes with a multi-character separator (and would take it as a regex)
    rows = RowLines(path, encoding, psep, header_lines, quoting=engine == "c")
    expected = n_cols
    # Every column is read, plus one: a row with an extra field fills it and is reported (pandas
    # would otherwise pad or drop silently). Unused columns are cheap categoricals; ids are text.
    n_raw = len(lines[0].split(psep)) if stride > 1 else n_cols
    extra = n_raw
    id_cols = {u_pos * stride, i_pos * stride}
    dtype: Any
    if engine == "python":
        dtype = str
    else:
        dtype = {k: ("category" if k not in usecols else str) for k in range(n_raw) if k not in usecols or k in id_cols}
        dtype[extra] = str
    # only an empty field is a missing id; an extra or `::`-filler field must be empty ("NA" is data)
    strict = id_cols | {extra} | {k for k in range(n_raw) if k % stride}
    na_values = {k: ([""] if k in strict else _NA_TOKENS) for k in range(n_raw + 1)}

    def bad_row(line: int) -> DataError:
        text = rows.text(line)
        if engine == "c" and stride == 1:
            import csv

            got = len(next(csv.reader([text], delimiter=psep, quotechar='"'), []))
        else:
            got = len(split(text))
        if got != expected:
            msg = f"malformed row: {got} fields, expected {expected}"
        else:
            msg = (f"malformed row: a {psep!r} inside a field; with sep={sep!r} fields cannot contain {psep!r}"
                   f" (the row splits into {len(text.split(psep))} pieces)")
        return DataError(msg, source=str(path), line=line)

    try:
        df = pd.read_csv(
            path,
            sep=psep if engine == "c" else re.escape(psep),
            header=None,
            names=list(range(n_raw + 1)),
            skiprows=header_lines,
            dtype=dtype,
            engine=engine,
            encoding=encoding,
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=na_values,
            quotechar='"',
            index_col=False,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            record = int(m.group(2))  # pandas counts records (quoted newlines do not count), header included
            raise bad_row(rows(record - 1 - header_lines)) from None
        raise DataError(f"malformed row: {exc}", source=str(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError("no ratings: the file has no data rows", source=str(path)) from None
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None
    except ValueError as exc:
        raise DataError(f"cannot read columns {positions}: {exc}", source=str(path)) from None

    # trailing blank lines are harmless; any other all-empty row is reported by from_arrays
    all_na = df.isna().all(axis=1).to_numpy()
    if all_na.any():
        last_real = np.flatnonzero(~all_na)
        end = int(last_real[-1]) + 1 if len(last_real) else 0
        df = df.iloc[:end]
    if len(df) == 0:
        raise DataError("no ratings: the file has no data rows", source=str(path))
    # fields beyond the header's (or first line's) count, and stray single characters of `::`
    check = [extra] + [k for k in range(1, n_raw, stride) if stride > 1 and k % stride]
    over = df[check].notna().any(axis=1).to_numpy()
    if over.any():
        raise bad_row(rows(int(np.flatnonzero(over)[0])))
    if max(usecols) >= n_raw:
        raise DataError(
            f"cannot read columns {positions}: the rows have only {(n_raw + stride - 1) // stride} fields",
            source=str(path),
        )
    if timestamp is None and t_pos is not None and t_pos == 3 and names[3] in ("", "3") and df[3 * stride].isna().all():
        # a trailing separator on every line ("1,2,3,"): an empty fourth column, not timestamps
        t_pos = None
        usecols = usecols[:3]
    cols = [_text_ids(df[k]) if k in id_cols else df[k].to_numpy() for k in usecols]

    names_used = [names[p] for p in (u_pos, i_pos, r_pos)] + [names[t_pos] if t_pos is not None else "timestamp"]
    return dict(
        users=cols[0],
        items=cols[1],
        ratings=cols[2],
        timestamps=cols[3] if t_pos is not None else None,
        user_map=user_map,
        item_map=item_map,
        duplicates=duplicates,
        rating_scale=rating_scale,
        source=str(path),
        locate=lambda i: {"line": rows(int(i))},
        column_names=names_used,
    )


def parse_ratings_parquet(
    path: str | os.PathLike,
    *,
    user: str = "user",
    item: str = "item",
    rating: str = "rating",
    timestamp: str | bool | None = None,
    duplicates: DuplicatePolicy = "error",
    rating_scale: tuple[float, float] | None = None,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> dict[str, Any]:
    """Parse a Parquet file (pyarrow), by column names, into the keyword arguments of
    :meth:`Ratings.from_dataframe` (what :meth:`Ratings.read_parquet` does). Without ``rating_scale`` the
    scale stored by :func:`write_ratings_parquet` (if any) is declared. Without ``timestamp``, a
    column named like one (`TIME_NAMES`, as in a CSV header; `write_ratings_parquet` writes
    ``timestamp``) is read as the timestamps, so a written file reads back whole;
    ``timestamp=False`` reads none."""
    _, pq = require_parquet()

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ratings file not found: {path}")
    try:
        schema_names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise DataError(f"not a Parquet file: {exc}", source=str(path)) from None
    if timestamp is None:
        timestamp = next((c for c in TIME_NAMES if c in schema_names and c not in (user, item, rating)), None)
    elif timestamp is False:
        timestamp = None
    wanted = [c for c in (user, item, rating, timestamp) if c is not None]
    missing = [c for c in wanted if c not in schema_names]
    if missing:
        raise DataError(f"missing column(s) {missing}; the file has {schema_names}", source=str(path))
    if rating_scale is None:
        rating_scale = _parquet_scale(path)
    df = pq.read_table(path, columns=wanted).to_pandas()
    return dict(
        df=df, user=user, item=item, rating=rating, timestamp=timestamp,
        duplicates=duplicates, rating_scale=rating_scale, user_map=user_map, item_map=item_map,
        source=str(path),
    )


#: Parquet schema metadata key holding the declared rating scale as JSON ``[low, high]``
SCALE_KEY = b"mfrec.rating_scale"


def _parquet_scale(path: Path) -> tuple[float, float] | None:
    """The rating scale :func:`write_ratings_parquet` stored in the schema metadata, or None."""
    import json

    _, pq = require_parquet()
    meta = pq.read_schema(path).metadata or {}
    if SCALE_KEY not in meta:
        return None
    try:
        lo, hi = json.loads(meta[SCALE_KEY])
        lo, hi = float(lo), float(hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError("not a finite low < high")
        return lo, hi
    except (ValueError, TypeError):
        raise DataError(f"bad {SCALE_KEY.decode()} in the Parquet metadata: {meta[SCALE_KEY][:40]!r}", source=str(path)) from None


def write_ratings_parquet(ratings: "Ratings", path: str | os.PathLike) -> None:
    """Write Ratings (raw ids) to Parquet, atomically (needs the ``parquet`` extra: pyarrow); a
    declared rating scale is kept in the schema metadata (``mfrec.rating_scale``) and restored by
    :meth:`Ratings.read_parquet`."""
    import json

    pa, pq = require_parquet()

    from mfrec._files import atomic_path

    df = ratings.to_dataframe()
    columns = {}
    for name in df.columns:
        col = df[name]
        if col.dtype == object and pd.api.types.infer_dtype(col, skipna=False) == "integer":
            # ids beyond int64 (kept exact as Python ints): uint64 when they fit, else refuse
            if all(0 <= v < 2**64 for v in (col.min(), col.max())):
                columns[name] = pa.array(col.tolist(), type=pa.uint64())
                continue
            raise DataError(f"{name} ids that fit neither int64 nor uint64 cannot be stored in Parquet; convert them to str first",
                            source=str(path))
        columns[name] = pa.array(col)
    table = pa.table(columns)
    if ratings.rating_scale is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), SCALE_KEY: json.dumps(list(ratings.rating_scale))})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
