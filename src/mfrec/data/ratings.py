"""`Ratings`: an immutable set of (user, item, rating[, timestamp]) triples with raw ids."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.idmap import IdMap, as_id_array, plain
from mfrec._warnings import warn_user
from mfrec.errors import DataError

DuplicatePolicy = Literal["error", "last", "mean"]
Locator = Callable[[int], dict]


def _describe(fail, pos: int) -> str:
    """'line N' or 'row N' for a position, as the locator names it."""
    err = fail("", pos, None)
    if err.line is not None:
        return f"line {err.line}"
    return f"row {err.row}" if err.row is not None else str(err.source)


def _row_locator(offset: int = 0) -> Locator:
    """Rows of an in-memory table, 0-based as pandas shows them."""
    return lambda i: {"row": int(i) + offset}


_F32_MAX = float(np.finfo(np.float32).max)


def _check_scale(scale: Any) -> tuple[float, float] | None:
    """A declared rating scale as (low, high) floats; ValueError unless finite with low < high."""
    if scale is None:
        return None
    try:
        if isinstance(scale, (str, bytes)) or any(isinstance(x, (str, bytes, bool, np.bool_)) for x in scale):
            raise TypeError  # "1", "5" (or True) read as numbers
        lo, hi = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ValueError(f"rating_scale must be a (low, high) pair of numbers, not {scale!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"rating_scale must be finite with low < high, not {scale!r}")
    return lo, hi


def _isna(arr: np.ndarray) -> np.ndarray:
    """Missing ids (None, NaN, NaT, pd.NA); objects pandas cannot test (lists ...) count as present."""
    if arr.dtype != object:
        return pd.isna(arr)
    try:
        return np.asarray(pd.isna(arr), dtype=bool).reshape(len(arr))
    except (TypeError, ValueError):
        return np.array([v is None or (isinstance(v, float) and v != v) for v in arr], dtype=bool)


def _is_sequence(value: Any) -> bool:
    """Whether ``value`` is an ordered, sized 1-D-or-more sequence (not a scalar, str, dict, set
    or one-shot iterator, which numpy would take as a single element)."""
    if value is None or isinstance(value, (str, bytes, dict, set, frozenset)):
        return False
    if not (hasattr(value, "__len__") and hasattr(value, "__getitem__")):
        return False
    try:
        return np.ndim(value) > 0
    except ValueError:  # ragged nested lists: a sequence (of unhashable ids)
        return True


def _first_unhashable(arr: np.ndarray) -> int | None:
    """Position of the first unhashable value (error path only)."""
    for k, v in enumerate(arr):
        try:
            hash(v)
        except TypeError:
            return k
    return None


def _blank_ids(id_map: IdMap) -> np.ndarray:
    """Indices of the map's ids that are empty text or spaces only ("", "  "): no id at all (the
    CSV reader reads such a field as missing)."""
    ids = id_map.ids
    if ids.dtype != object or not len(ids):
        return np.empty(0, dtype=np.int64)
    text = pd.Series(ids, dtype=object)
    is_str = (text.map(type) == str).to_numpy()
    if not is_str.any():
        return np.empty(0, dtype=np.int64)
    blank = np.zeros(len(ids), dtype=bool)
    blank[is_str] = text[is_str].str.strip().to_numpy() == ""
    return np.flatnonzero(blank)


def _to_float64(values: np.ndarray) -> np.ndarray:
    """Object/text values as float64, NaN where a value is not a number. Integers beyond the
    float64 range (a 400-digit field) become +-inf, for the callers' range checks to report,
    instead of pandas' OverflowError."""
    series = pd.Series(values, dtype=object)
    try:
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    except OverflowError:
        text = series.astype(str).str.strip()
        return pd.to_numeric(text.where(~text.str.fullmatch(r"[+-]?\d{300,}"), text + "e0"), errors="coerce").to_numpy(
            dtype=np.float64)


def _rating_values(r_in: np.ndarray, fail, rcol: str) -> np.ndarray:
    """Ratings as float64, refusing non-numbers, NaN/inf and values that do not fit float32."""
    if r_in.dtype.kind == "c":
        raise fail("ratings are complex numbers; ratings must be real", 0, rcol)
    if r_in.dtype.kind == "b" or (r_in.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in r_in)):
        # True -> 1.0 would pass silently; refused as for timestamps
        raise fail("ratings are booleans, not numbers (pass them as numbers, e.g. astype(int), if 1/0 is meant)",
                   0, rcol)
    if r_in.dtype.kind in "fiu":
        r = r_in.astype(np.float64, copy=False)
    else:
        r = _to_float64(r_in)
        bad = np.isnan(r) & ~_isna(r_in)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise fail(f"rating {plain(r_in[pos])!r} is not a number ({int(bad.sum())} such rows in all)", pos, rcol)
    notfinite = ~np.isfinite(r)
    if notfinite.any():
        pos = int(np.flatnonzero(notfinite)[0])
        what = "missing (empty or NaN)" if np.isnan(r[pos]) else f"{r[pos]:g}, not a finite number"
        raise fail(
            f"rating is {what} ({int(notfinite.sum())} missing or non-finite ratings in all); ratings must be finite",
            pos, rcol,
        )
    huge = np.abs(r) > _F32_MAX
    if huge.any():
        pos = int(np.flatnonzero(huge)[0])
        raise fail(
            f"rating {r[pos]:g} is too large: ratings are stored as float32 (at most {_F32_MAX:.4g}) "
            f"({int(huge.sum())} such rows in all)", pos, rcol,
        )
    return r


def _warn_fractions(cut: np.ndarray, t_in: np.ndarray) -> None:
    """Seconds are whole: say so (``cut``: the timestamps that had fractions) rather than drop
    the fractions silently."""
    if cut.any():
        pos = int(np.flatnonzero(cut)[0])
        warn_user(f"{int(cut.sum())} timestamp(s) had fractions of a second, dropped (timestamps are whole "
                  f"seconds; the first: {plain(t_in[pos])!r} at position {pos})")


def _seconds(timestamps: Any, n: int, fail, tcol: str) -> np.ndarray:
    """Timestamps as int64 seconds since the epoch.

    Numbers are taken as seconds (fractions are floored, with a warning); datetime64 values (any unit, pandas
    datetime columns, Parquet ``timestamp[s|ms|us|ns]``) are converted to seconds; timezone-aware
    datetimes are converted to UTC. Missing, non-numeric or out-of-int64 values are errors.
    """
    if isinstance(timestamps, pd.Series) and isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        timestamps = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
    t_in = timestamps.to_numpy() if isinstance(timestamps, (pd.Series, pd.Index)) else np.asarray(timestamps)
    if t_in.ndim != 1 or len(t_in) != n:
        raise fail(f"timestamps ({t_in.size}) and ratings ({n}) differ in length", None, tcol)
    if t_in.dtype == object and len(t_in) and pd.api.types.infer_dtype(t_in, skipna=True).startswith("datetime"):
        try:
            t_in = pd.to_datetime(pd.Series(t_in), utc=True).dt.tz_localize(None).to_numpy()
        except (TypeError, ValueError, OverflowError):
            pass  # reported below as not a number
    kind = t_in.dtype.kind
    if kind == "M":
        nat = np.isnat(t_in)
        if nat.any():
            raise fail("timestamp missing (NaT)", int(np.flatnonzero(nat)[0]), tcol)
        seconds = t_in.astype("datetime64[s]")  # floors, as for numbers
        _warn_fractions(seconds != t_in, t_in)
        return seconds.astype(np.int64)
    if kind == "m":
        raise fail("timestamps are durations (timedelta), not points in time", 0, tcol)
    if kind == "b":
        raise fail("timestamps are booleans, not numbers", 0, tcol)
    if kind == "i":
        return t_in.astype(np.int64, copy=False)
    if kind == "u":
        big = t_in > np.iinfo(np.int64).max
        if big.any():
            pos = int(np.flatnonzero(big)[0])
            raise fail(f"timestamp {plain(t_in[pos])} does not fit a 64-bit integer of seconds", pos, tcol)
        return t_in.astype(np.int64)
    if kind == "f":
        t = t_in.astype(np.float64, copy=False)
    else:
        try:
            num = pd.to_numeric(pd.Series(t_in, dtype=object), errors="coerce")
        except OverflowError:
            num = pd.Series(_to_float64(t_in))
        if num.dtype.kind in "iu":
            return _seconds(num.to_numpy(), n, fail, tcol)
        t = num.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(t)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        shown = "missing" if pd.isna(t_in[pos]) else f"{plain(t_in[pos])!r} is not a number"
        raise fail(f"timestamp {shown}", pos, tcol)
    whole = np.floor(t)
    _warn_fractions(whole != t, t_in)
    t = whole
    big = (t >= 2.0**63) | (t < -(2.0**63))
    if big.any():
        pos = int(np.flatnonzero(big)[0])
        raise fail(f"timestamp {plain(t_in[pos])!r} does not fit a 64-bit integer of seconds", pos, tcol)
    return t.astype(np.int64)


class Ratings:
    """Immutable (user, item, rating[, timestamp]) triples.

    Raw ids of any hashable kind are mapped to dense indices by two :class:`IdMap` s; subsets made
    with :meth:`subset` share the parent's maps, so a model trained on one piece predicts on another.
    CSR views by user (:attr:`by_user`) and by item (:attr:`by_item`) are built once and cached.
    """

    def __init__(
        self,
        user_indices: np.ndarray,
        item_indices: np.ndarray,
        values: np.ndarray,
        user_map: IdMap,
        item_map: IdMap,
        timestamps: np.ndarray | None = None,
        *,
        rating_scale: tuple[float, float] | None = None,
    ) -> None:
        n = len(values)
        if len(user_indices) != n or len(item_indices) != n or (timestamps is not None and len(timestamps) != n):
            raise ValueError("users, items, ratings and timestamps must have the same length")
        self._u = np.ascontiguousarray(user_indices, dtype=np.int32)
        self._i = np.ascontiguousarray(item_indices, dtype=np.int32)
        self._r = np.ascontiguousarray(values, dtype=np.float32)
        self._t = None if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.int64)
        for a in (self._u, self._i, self._r, self._t):
            if a is not None:
                a.setflags(write=False)
        self._user_map = user_map
        self._item_map = item_map
        self._scale = _check_scale(rating_scale)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any,
        timestamps: Any = None,
        *,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        duplicates: DuplicatePolicy = "error",
        rating_scale: tuple[float, float] | None = None,
        source: str | None = None,
        locate: Locator | None = None,
        column_names: Sequence[str] = ("user", "item", "rating", "timestamp"),
    ) -> "Ratings":
        """Validate raw arrays and build Ratings.

        Every problem raises :class:`DataError` naming the source, the row (or file line) and the
        column: missing ids, non-numeric/NaN/inf ratings, ratings outside ``rating_scale``, empty
        input, ids unknown to a given map, and duplicate (user, item) pairs (``duplicates='error'``;
        ``'last'`` keeps the last one, ``'mean'`` averages them, and both say how many they merged).
        """
        locate = locate or _row_locator()
        ucol, icol, rcol, tcol = column_names
        scale = _check_scale(rating_scale)

        def fail(msg: str, pos: int | None, column: str | None) -> DataError:
            kw: dict[str, Any] = {"source": source, "column": column}
            if pos is not None:
                kw.update(locate(pos))
            return DataError(msg, **kw)

        for arg, value in (("users", users), ("items", items), ("ratings", ratings), ("timestamps", timestamps)):
            if arg == "timestamps" and value is None:
                continue
            if not _is_sequence(value):
                raise DataError(f"{arg} must be a 1-D sequence (list, numpy array, pandas Series), "
                                f"not {type(value).__name__}", source=source)
        try:
            users = as_id_array(users)
            items = as_id_array(items)
        except ValueError as exc:
            raise DataError(str(exc), source=source) from None
        r_in = np.asarray(ratings)
        n = len(users)
        if n == 0:
            raise DataError("no ratings: the input is empty", source=source)
        if len(items) != n or r_in.ndim != 1 or len(r_in) != n:
            raise DataError(
                f"users ({n}), items ({len(items)}) and ratings ({r_in.size}) differ in length", source=source
            )
        for arr, col, what in ((users, ucol, "user"), (items, icol, "item")):
            missing = _isna(arr)
            if np.any(missing):
                pos = int(np.flatnonzero(missing)[0])
                raise fail(f"missing {what} id ({int(missing.sum())} rows in all)", pos, col)

        r = _rating_values(r_in, fail, rcol)
        if scale is not None:
            lo, hi = scale
            out = (r < lo) | (r > hi)
            if out.any():
                pos = int(np.flatnonzero(out)[0])
                raise fail(
                    f"rating {r[pos]:g} is outside the scale [{lo:g}, {hi:g}] ({int(out.sum())} such rows in all)",
                    pos,
                    rcol,
                )
        t = None if timestamps is None else _seconds(timestamps, n, fail, tcol)

        u_codes = cls._encode(users, user_map, "user", ucol, fail)
        i_codes = cls._encode(items, item_map, "item", icol, fail)
        if user_map is None:
            user_map, u_codes = u_codes
        if item_map is None:
            item_map, i_codes = i_codes
        for id_map, codes, col, what in ((user_map, u_codes, ucol, "user"), (item_map, i_codes, icol, "item")):
            blank = _blank_ids(id_map)  # on the distinct ids: a pass over every row cost 0.3 s per 1M
            if len(blank):
                rows = np.isin(codes, blank)
                raise fail(f"missing {what} id: an id of spaces only or empty text ({int(rows.sum())} rows in all)",
                           int(np.flatnonzero(rows)[0]), col)

        u_codes, i_codes, r, t = cls._resolve_duplicates(
            u_codes, i_codes, r, t, len(item_map), duplicates, fail, (ucol, icol)
        )
        return cls(u_codes, i_codes, r, user_map, item_map, t, rating_scale=scale)

    @staticmethod
    def _encode(raw: np.ndarray, id_map: IdMap | None, what: str, col: str, fail) -> Any:
        try:
            if id_map is None:
                return IdMap.factorize(raw)
            codes = id_map.lookup(raw)
        except TypeError:  # an unhashable id (list, dict, set, ndarray ...)
            pos = _first_unhashable(raw)
            if pos is None:
                raise
            raise fail(
                f"{what} id {raw[pos]!r} is a {type(raw[pos]).__name__}, which cannot be an id "
                "(ids must be hashable: int, str, ...)", pos, col,
            ) from None
        unknown = codes < 0
        if unknown.any():
            pos = int(np.flatnonzero(unknown)[0])
            raise fail(f"{what} id {plain(raw[pos])!r} is not in the given {what} map ({int(unknown.sum())} rows)", pos, col)
        return codes.astype(np.int32)

    @staticmethod
    def _resolve_duplicates(u, i, r, t, n_items, policy, fail, cols):
        if policy not in ("error", "last", "mean"):
            raise ValueError(f"duplicates must be 'error', 'last' or 'mean', not {policy!r}")
        key = u.astype(np.int64) * max(n_items, 1) + i.astype(np.int64)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        dup_next = sk[1:] == sk[:-1]
        if not dup_next.any():
            return u, i, r, t
        n_extra = int(dup_next.sum())
        if policy == "error":
            k = int(np.flatnonzero(dup_next)[0])
            first, second = int(order[k]), int(order[k + 1])
            raise fail(
                f"duplicate (user, item) pair: it repeats the pair at {_describe(fail, first)} "
                f"({n_extra} duplicate rows in all); pass duplicates='last' or 'mean' to merge them",
                second,
                f"{cols[0]}, {cols[1]}",
            )
        # group boundaries in sorted order
        starts = np.flatnonzero(np.concatenate([[True], ~dup_next]))
        if policy == "last":
            ends = np.concatenate([starts[1:], [len(sk)]]) - 1
            keep = np.sort(order[ends])  # the last occurrence of each pair, in input order
            u, i, r = u[keep], i[keep], r[keep]
            t = None if t is None else t[keep]
        else:  # mean
            sums = np.add.reduceat(r[order], starts)
            counts = np.diff(np.concatenate([starts, [len(sk)]]))
            first_rows = order[starts]
            perm = np.argsort(first_rows, kind="stable")
            u, i = u[first_rows][perm], i[first_rows][perm]
            r = (sums / counts)[perm]
            t = None if t is None else np.maximum.reduceat(t[order], starts)[perm]
        warn_user(f"merged {n_extra} duplicate (user, item) rows with duplicates={policy!r}")
        return u, i, r, t

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        *,
        duplicates: DuplicatePolicy = "error",
        rating_scale: tuple[float, float] | None = None,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        source: str | None = None,
    ) -> "Ratings":
        """From a pandas (or polars) DataFrame with the named columns."""
        if not isinstance(df, pd.DataFrame):
            if hasattr(df, "to_pandas"):  # polars, pyarrow
                df = df.to_pandas()
            else:
                raise TypeError(f"expected a pandas or polars DataFrame, got {type(df).__name__}")
        wanted = [c for c in (user, item, rating, timestamp) if c is not None]
        repeated = sorted({str(c) for c in wanted if list(df.columns).count(c) > 1})
        if repeated:
            raise DataError(f"column(s) {repeated} appear more than once; the table has {list(map(str, df.columns))}",
                            source=source)
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; the table has {list(map(str, df.columns))}", source=source
            )
        return cls.from_arrays(
            df[user].to_numpy(),
            df[item].to_numpy(),
            df[rating].to_numpy(),
            None if timestamp is None else df[timestamp],
            user_map=user_map,
            item_map=item_map,
            duplicates=duplicates,
            rating_scale=rating_scale,
            source=source,
            column_names=(user, item, rating, timestamp or "timestamp"),
        )

    @classmethod
    def from_sparse(
        cls,
        matrix: Any,
        user_ids: Sequence[Any] | None = None,
        item_ids: Sequence[Any] | None = None,
        *,
        rating_scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "error",
    ) -> "Ratings":
        """From a scipy.sparse users x items matrix: every stored entry is a rating (0 included).
        Entries stored twice for one (user, item) (a COO matrix, or a CSR row naming a column twice)
        are not summed, as scipy would: they follow ``duplicates`` like every constructor's
        (default: a DataError naming the entry)."""
        if not sp.issparse(matrix):
            raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        coo = sp.coo_matrix(matrix)  # keeps duplicate entries (scipy sums them only when asked)
        n_users, n_items = coo.shape
        user_map = IdMap(np.arange(n_users) if user_ids is None else user_ids)
        item_map = IdMap(np.arange(n_items) if item_ids is None else item_ids)
        if len(user_map) != n_users or len(item_map) != n_items:
            raise DataError(
                f"matrix is {n_users} x {n_items} but got {len(user_map)} user ids and {len(item_map)} item ids"
            )
        if coo.nnz == 0:
            raise DataError("no ratings: the matrix has no stored entries")
        row, col = coo.row, coo.col
        return cls.from_arrays(
            user_map.ids[row], item_map.ids[col], coo.data, user_map=user_map, item_map=item_map,
            rating_scale=rating_scale, source="sparse matrix", duplicates=duplicates,
            locate=lambda k: {"source": f"sparse matrix entry ({int(row[k])}, {int(col[k])})", "column": None},
        )

    @classmethod
    def read_csv(cls, path: Any, **kwargs: Any) -> "Ratings":
        """Read a delimited text file; the options are those of
        :func:`mfrec.data.readers.parse_ratings_csv` (separator, header, columns, ...)."""
        from mfrec.data.readers import parse_ratings_csv

        return cls.from_arrays(**parse_ratings_csv(path, **kwargs))

    @classmethod
    def read_parquet(cls, path: Any, **kwargs: Any) -> "Ratings":
        """Read a Parquet file (pyarrow); the options are those of
        :func:`mfrec.data.readers.parse_ratings_parquet`."""
        from mfrec.data.readers import parse_ratings_parquet

        return cls.from_dataframe(**parse_ratings_parquet(path, **kwargs))

    @classmethod
    def read_file(cls, path: Any, *, sep: str | None = None, user: Any = None, item: Any = None, rating: Any = None,
                  duplicates: DuplicatePolicy = "error", encoding: str = "utf-8",
                  rating_scale: tuple[float, float] | None = None) -> "Ratings":
        """A ratings file by its name: Parquet for ``.parquet``/``.pq`` (any case; columns by name,
        default ``user``, ``item``, ``rating``), else delimited text (``sep``; None: a tab for
        ``.tsv``/``.tab``, else a comma). The one reader behind the CLI's ``--ratings`` and the
        service's ``--train-data``. ``rating_scale``: as for `read_csv`."""
        from pathlib import Path

        suffix = Path(path).suffix.lower()
        if suffix in (".parquet", ".pq"):
            return cls.read_parquet(path, user=user or "user", item=item or "item", rating=rating or "rating",
                                    duplicates=duplicates, rating_scale=rating_scale)
        if sep is None:
            sep = "\t" if suffix in (".tsv", ".tab") else ","
        return cls.read_csv(path, sep=sep, user=user, item=item, rating=rating, duplicates=duplicates,
                            encoding=encoding, rating_scale=rating_scale)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self._r)

    def __repr__(self) -> str:
        return (
            f"Ratings({len(self)} ratings, {self.n_users} users, {self.n_items} items"
            f"{', timestamps' if self._t is not None else ''}"
            f"{f', scale {self._scale[0]:g}-{self._scale[1]:g}' if self._scale is not None else ''})"
        )

    @property
    def n_users(self) -> int:
        """Users in the id map (shared by subsets, so it may count users with no rating here)."""
        return len(self._user_map)

    @property
    def n_items(self) -> int:
        return len(self._item_map)

    @property
    def user_map(self) -> IdMap:
        return self._user_map

    @property
    def item_map(self) -> IdMap:
        return self._item_map

    @property
    def users(self) -> np.ndarray:
        """Raw user ids, in dense-index order."""
        return self._user_map.ids

    @property
    def items(self) -> np.ndarray:
        return self._item_map.ids

    @property
    def user_indices(self) -> np.ndarray:
        return self._u

    @property
    def item_indices(self) -> np.ndarray:
        return self._i

    @property
    def values(self) -> np.ndarray:
        """The ratings, float32."""
        return self._r

    @property
    def timestamps(self) -> np.ndarray | None:
        """Seconds since the epoch (int64), or None."""
        return self._t

    @property
    def rating_scale(self) -> tuple[float, float] | None:
        """The declared (low, high) scale (``rating_scale=`` when reading), kept by subsets; None
        when none was declared (models then use the observed :attr:`rating_range`)."""
        return self._scale

    @property
    def raw_users(self) -> np.ndarray:
        """Raw user id of each rating."""
        return self._user_map.to_raw(self._u)

    @property
    def raw_items(self) -> np.ndarray:
        return self._item_map.to_raw(self._i)

    @cached_property
    def by_user(self) -> sp.csr_matrix:
        """users x items CSR matrix of the ratings (column indices sorted)."""
        m = sp.csr_matrix((self._r, (self._u, self._i)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sort_indices()
        return m

    @cached_property
    def seen(self) -> sp.csr_matrix:
        """users x items 0/1 CSR matrix: which items each user rated (the models' ``seen_``)."""
        by_user = self.by_user
        return sp.csr_matrix((np.ones(by_user.nnz, dtype=np.float32), by_user.indices, by_user.indptr),
                             shape=by_user.shape)

    @cached_property
    def by_item(self) -> sp.csr_matrix:
        """items x users CSR matrix of the ratings."""
        m = sp.csr_matrix((self._r, (self._i, self._u)), shape=(self.n_items, self.n_users), dtype=np.float32)
        m.sort_indices()
        return m

    @cached_property
    def user_item_order(self) -> np.ndarray:
        """Rating positions sorted by (user, item): each user's ratings as one run, items ascending
        (O(n) counting sort, computed once per Ratings like the CSR views)."""
        from mfrec.kernels.sort import order_by_user_item

        return order_by_user_item(self._u, self._i, self.n_users, self.n_items)

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.bincount(self._u, minlength=self.n_users)

    @cached_property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self._i, minlength=self.n_items)

    @cached_property
    def global_mean(self) -> float:
        return float(self._r.mean(dtype=np.float64))

    @cached_property
    def rating_range(self) -> tuple[float, float]:
        return float(self._r.min()), float(self._r.max())

    def to_dataframe(self) -> pd.DataFrame:
        """Columns ``user``, ``item``, ``rating`` (and ``timestamp`` when known), raw ids."""
        data = {"user": self.raw_users, "item": self.raw_items, "rating": self._r}
        if self._t is not None:
            data["timestamp"] = self._t
        return pd.DataFrame(data)

    def pair_at(self, position: int) -> str:
        """``"user U, item I"`` of the rating at ``position`` (raw ids), for messages."""
        k = int(position)
        return f"user {plain(self.raw_users[k])!r}, item {plain(self.raw_items[k])!r}"

    def shared_pairs(self, other: "Ratings") -> np.ndarray:
        """Positions in ``other`` of its (user, item) pairs that these ratings hold too (by raw
        id): a held-out set that shares them with its training data is not held out."""
        return pairs_in(self.seen, self._user_map, self._item_map, other)

    def subset(self, selection: Any) -> "Ratings":
        """The ratings at the given positions (index array or boolean mask), sharing the id maps.
        A position given twice is refused: a Ratings holds each (user, item) pair once (an int
        0/1 array passed as a mask repeats positions 0 and 1; pass a bool array). Positions count
        from the end when negative, as in numpy. A bool Series is a mask by position, so its index
        must be 0..n-1 (a reordered one would select other rows)."""
        if isinstance(selection, pd.Series) and pd.api.types.is_bool_dtype(selection.dtype) and \
                not selection.index.equals(pd.RangeIndex(len(selection))):
            raise ValueError("a bool Series mask is applied by position, but its index is not 0..n-1; pass "
                             "mask.to_numpy() if its order is the ratings' order, or realign it first")
        sel = np.asarray(selection)
        if sel.dtype == bool:
            if sel.ndim != 1 or len(sel) != len(self):
                raise ValueError(f"mask has shape {sel.shape}, ratings {len(self)}")
        else:
            if sel.size == 0:
                sel = sel.astype(np.int64)
            if sel.ndim != 1 or sel.dtype.kind not in "iu":
                raise ValueError(f"selection must be a 1-D array of positions or a bool mask, not {sel.dtype} "
                                 f"of shape {sel.shape}")
            n = len(self)
            if len(sel) and (sel.min() < -n or sel.max() >= n):
                raise IndexError(f"a position is outside {-n}..{n - 1} (negative ones count from the end)")
            pos = np.where(sel < 0, sel + n, sel)
            if len(np.unique(pos)) != len(pos):
                mask_like = len(sel) == n and np.isin(sel, (0, 1)).all()
                raise ValueError("selection repeats a position" + (
                    ": it looks like a 0/1 mask; pass it as bool (mask.astype(bool))" if mask_like else
                    " (a Ratings holds each pair once)"))
        return Ratings(
            self._u[sel], self._i[sel], self._r[sel], self._user_map, self._item_map,
            None if self._t is None else self._t[sel], rating_scale=self._scale,
        )

    def summary(self) -> dict:
        """Counts, sparsity and the rating histogram."""
        active_users = int((self.user_counts > 0).sum())
        active_items = int((self.item_counts > 0).sum())
        values, counts = np.unique(self._r, return_counts=True)
        return {
            "ratings": len(self),
            "users": active_users,
            "items": active_items,
            "density": len(self) / max(active_users * active_items, 1),
            "sparsity": 1.0 - len(self) / max(active_users * active_items, 1),
            "mean": self.global_mean,
            "min": float(values[0]),
            "max": float(values[-1]),
            "histogram": {float(v): int(c) for v, c in zip(values, counts)} if len(values) <= 50 else None,
        }


def pairs_in(seen: sp.csr_matrix, user_map: IdMap, item_map: IdMap, ratings: Ratings) -> np.ndarray:
    """Positions in ``ratings`` of the (user, item) pairs that are nonzero in ``seen`` (users x
    items in the index spaces of ``user_map`` / ``item_map``: a Ratings' or a model's ``seen_``)."""
    u = user_map.lookup(ratings.raw_users)
    i = item_map.lookup(ratings.raw_items)
    both = np.flatnonzero((u >= 0) & (i >= 0) & (u < seen.shape[0]) & (i < seen.shape[1]))
    if not len(both):
        return both
    return both[np.asarray(seen[u[both], i[both]]).ravel() != 0]


def as_ratings(data: Any, what: str = "train") -> Ratings:
    """Accept Ratings, or a DataFrame with columns user/item/rating (TypeError otherwise)."""
    if isinstance(data, Ratings):
        return data
    if isinstance(data, pd.DataFrame):
        return Ratings.from_dataframe(data, source=f"{what} DataFrame")
    raise TypeError(f"{what} must be mfrec.Ratings or a pandas DataFrame, got {type(data).__name__}")
