"""Raw ids (int or str) <-> dense indices 0..n-1."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd


_INT64_MAX = np.iinfo(np.int64).max
#: floats in [-2**63, 2**63) that are whole numbers convert to int64 exactly
_TWO63 = 2.0**63


_MIXED_BOOLS = "ids mix bools with other ids: True and 1 would be one id; use ints or text"


def as_id_array(values: Any) -> np.ndarray:
    """Raw ids as a 1-D numpy array, without changing any id.

    int64 when every id is an integer that fits int64 (whole floats included); ids that do not fit
    (uint64 above 2**63 - 1, Python ints of any size) stay exact as Python ints in an object array;
    floats that are not whole numbers, or too large for int64, stay float (so ``1e20`` and ``2e20``
    remain two ids); strings and other hashable objects stay objects. Never wraps or merges ids.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    elif isinstance(values, (Iterator, range)) or (isinstance(values, Iterable) and not isinstance(
            values, (str, bytes, np.ndarray, list, tuple, dict))):  # a generator, a set ...: its ids, not itself
        values = list(values)
    listlike = isinstance(values, (list, tuple))
    if listlike and any(isinstance(v, (bool, np.bool_)) for v in values) and \
            not all(isinstance(v, (bool, np.bool_)) for v in values):
        raise ValueError(_MIXED_BOOLS)
    try:
        arr = np.asarray(values)
    except (ValueError, OverflowError):  # ragged or huge nested input
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if listlike and arr.ndim == 1 and (arr.dtype.kind in "US" or (
            arr.dtype.kind == "f" and not all(isinstance(v, (float, np.floating)) for v in values))):
        # numpy would turn 1 and "a" into "1" and "a", drop a text's trailing NULs ("a\x00" -> "a"),
        # and make 2**53 + 1 beside 2.5 the float 2**53: keep every id as given (ints beside whole
        # floats are ints, as whole floats alone are: see below)
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
        if not any(isinstance(v, str) for v in values):
            whole = [_as_int(v) for v in values]
            if None not in whole:
                return np.array(whole, dtype=np.int64)
    if arr.ndim != 1:
        if listlike:  # a list of lists/tuples: one object per id (reported as unhashable later)
            obj = np.empty(len(values), dtype=object)
            obj[:] = [v for v in values]
            return obj
        raise ValueError(f"ids must be a 1-D sequence, got an array of shape {arr.shape}")
    if listlike and arr.dtype.kind == "f" and pd.api.types.infer_dtype(values, skipna=True) == "integer":
        arr = np.array(values, dtype=object)  # Python ints beyond int64: numpy would make them float
    if arr.dtype.kind == "b":
        return arr.astype(object)
    if arr.dtype.kind == "u":
        if len(arr) and arr.max() > _INT64_MAX:
            return arr.astype(object)  # exact Python ints
        return arr.astype(np.int64)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < _TWO63)
        if whole.all():
            return arr.astype(np.int64)
        return arr
    if arr.dtype.kind in "UST":
        return arr.astype(object)
    if arr.dtype == object and len(arr) and pd.api.types.infer_dtype(arr, skipna=False) in ("mixed-integer", "mixed") \
            and any(isinstance(v, (bool, np.bool_)) for v in arr.tolist()):
        raise ValueError(_MIXED_BOOLS)
    if arr.dtype == object and len(arr) and pd.api.types.infer_dtype(arr, skipna=False) == "integer":
        try:
            return arr.astype(np.int64)
        except OverflowError:
            return arr  # Python ints beyond int64: kept exact
    return arr


def _hashable(value: Any) -> bool:
    try:
        hash(value)
        return True
    except TypeError:
        return False


def _unhashable(value: Any) -> TypeError:
    """The error for an id that cannot be one (error path only)."""
    return TypeError(f"id {value!r} is a {type(value).__name__}, which cannot be an id "
                     "(ids must be hashable: int, str, ...)")


#: how text names an integer id: ASCII decimal digits with an optional minus sign, nothing else
#: (no spaces, "+", "_", exponents, decimal points or non-ASCII digits such as "١" or "１")
INT_TEXT = re.compile(r"-?[0-9]{1,64}")
#: the same rule for texts of up to 18 digits, which always fit int64 (the vectorized path)
_SHORT_INT_TEXT = r"-?[0-9]{1,18}"


def int_text(text: str) -> int | None:
    """The integer a text id names (`INT_TEXT`, leading zeros allowed: ``"007"`` is 7), or None when
    it names none or one outside int64. The one rule every lookup of text in an int-id map uses."""
    if INT_TEXT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def integer_ids(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which ids name integers, their int64 values) for an object array of ids: ints (not bools),
    whole floats, and text by `int_text` (vectorized for text of up to 18 digits, the usual case)."""
    ok = np.zeros(len(arr), dtype=bool)
    num = np.zeros(len(arr), dtype=np.int64)
    s = pd.Series(arr, dtype=object)
    is_str = s.map(type).to_numpy() == str
    short = np.zeros(len(arr), dtype=bool)
    if is_str.any():
        text = s[is_str]
        match = text.str.fullmatch(_SHORT_INT_TEXT).to_numpy(dtype=bool)
        where = np.flatnonzero(is_str)[match]
        if len(where):
            num[where] = pd.to_numeric(text[match]).to_numpy(dtype=np.int64)
            ok[where] = True
            short[where] = True
    for n in np.flatnonzero(~short):  # other types, and long digit strings: one Python step each
        k = _as_int(arr[n])
        if k is not None:
            ok[n], num[n] = True, k
        else:
            hash(arr[n])  # an unhashable id is a TypeError (lookup names it)
    return ok, num


def _as_int(value: Any) -> int | None:
    """The int64 an id names for an int-id map, or None (see `integer_ids`)."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, str):
        return int_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None
    if isinstance(value, float) and value.is_integer() and abs(value) < _TWO63:
        return int(value)
    return None


def plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar (so messages show ``99``, not ``np.int64(99)``)."""
    return value.item() if isinstance(value, np.generic) else value


class IdMap:
    """An immutable, ordered set of raw ids with O(1) lookups in both directions.

    ``ids[k]`` is the raw id of dense index ``k``; ``lookup(raw)`` gives the indices (-1 if unknown).
    """

    __slots__ = ("_ids", "_index", "_dict")

    #: queries up to this size use a Python dict (no pandas Index construction per call)
    SMALL = 64

    def __init__(self, ids: Iterable[Any]) -> None:
        arr = as_id_array(list(ids) if not isinstance(ids, (np.ndarray, pd.Index, pd.Series, list)) else ids)
        index = pd.Index(arr, dtype=arr.dtype if arr.dtype != object else object)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(f"id map has duplicate id {plain(dup)!r}")
        arr = arr.copy()
        arr.setflags(write=False)
        self._ids = arr
        self._index = index
        self._dict: dict | None = None

    @classmethod
    def factorize(cls, values: Any) -> tuple["IdMap", np.ndarray]:
        """Build a map from the distinct values (sorted when sortable) and return the codes too."""
        arr = as_id_array(values)
        try:
            codes, uniques = pd.factorize(arr, sort=True)
        except TypeError:  # mixed, unorderable ids: keep first-seen order
            codes, uniques = pd.factorize(arr, sort=False)
        return cls(np.asarray(uniques)), codes.astype(np.int32)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: Any) -> bool:
        """Whether `lookup` finds ``raw`` (``"7" in IdMap([7])``: text names ints by `int_text`)."""
        return bool(self.lookup([raw])[0] >= 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and (
            other is self or (len(other) == len(self) and bool(np.array_equal(other._ids, self._ids)))
        )

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3])
        return f"IdMap({len(self)} ids: {head}{', ...' if len(self) > 3 else ''})"

    def lookup(self, raw: Any) -> np.ndarray:
        """Dense indices (int64) of raw ids; -1 where an id is unknown. An unhashable id (a list,
        dict ...) is a TypeError naming it."""
        try:
            return self._lookup(raw)
        except TypeError:
            values = list(raw) if isinstance(raw, (list, tuple, np.ndarray, pd.Series, pd.Index)) else [raw]
            bad = next((v for v in values if not _hashable(v)), None)
            if bad is None:
                raise
            raise _unhashable(bad) from None

    def _lookup(self, raw: Any) -> np.ndarray:
        if isinstance(raw, (list, tuple)) and 0 < len(raw) <= self.SMALL:
            return self._lookup_small(raw)
        arr = as_id_array(raw)
        if 0 < len(arr) <= self.SMALL and arr.dtype == object:
            return self._lookup_small(list(arr))
        if len(arr) == 0:
            return np.empty(0, dtype=np.int64)
        if self._ids.dtype.kind == "i" and arr.dtype == object:
            # str ids asked of an int map: try to read them as ints ("12" -> 12)
            ok, num = integer_ids(arr)
            out = np.full(len(arr), -1, dtype=np.int64)
            if ok.any():
                out[ok] = self._index.get_indexer(num[ok])
            return out
        if self._ids.dtype == object and arr.dtype.kind == "i":
            arr = arr.astype(object)
        return self._index.get_indexer(arr).astype(np.int64)

    def _lookup_small(self, raw: list | tuple) -> np.ndarray:
        if self._dict is None:
            self._dict = {k: i for i, k in enumerate(self._ids.tolist())}
        d = self._dict
        out = np.empty(len(raw), dtype=np.int64)
        numeric = self._ids.dtype.kind == "i"
        for n, key in enumerate(raw):
            key = plain(key)
            if numeric:
                as_int = _as_int(key)
                if as_int is None:
                    hash(key)  # an unhashable id is a TypeError (lookup names it); any other is unknown
                    out[n] = -1
                else:
                    out[n] = d.get(as_int, -1)
            else:
                out[n] = d.get(key, -1)
        return out

    def conform(self, raw: Any) -> np.ndarray:
        """Raw ids in this map's id type, read the way `lookup` reads them: for an int-id map, ids
        given as strings that all read as integers ("12") become ints; anything else unchanged."""
        arr = as_id_array(raw)
        if self._ids.dtype.kind == "i" and arr.dtype == object and len(arr):
            ok, num = integer_ids(arr)
            if ok.all():
                return num
        return arr

    def foreign(self, raw: Any) -> list[Any]:
        """The ids of ``raw`` whose type this map's ids do not have, in order: for an int64 map
        anything but an int within int64 (bools and text included), for a text map anything but
        text; none for a map of mixed types. A model file keeps int64 or str ids, so such ids
        would make a model unsavable (`add_user`, CMF's attribute tables refuse them)."""
        values = list(raw)
        if self._ids.dtype.kind == "i":
            def int64(v: Any) -> bool:
                v = plain(v)
                return isinstance(v, int) and not isinstance(v, bool) and -_INT64_MAX - 1 <= v <= _INT64_MAX

            return [v for v in values if not int64(v)]
        if len(self._ids) and isinstance(self._ids[0], str):
            return [v for v in values if not isinstance(v, str)]
        return []

    def index_of(self, raw: Any, what: str = "id") -> int:
        """Dense index of one raw id; KeyError naming it when unknown."""
        k = int(self.lookup([raw])[0])
        if k < 0:
            raise KeyError(f"unknown {what} {plain(raw)!r}")
        return k

    def to_raw(self, indices: Any) -> np.ndarray:
        return self._ids[np.asarray(indices, dtype=np.int64)]

    def extend(self, new_ids: Iterable[Any]) -> "IdMap":
        """A new map with ids appended (ids already present are ignored)."""
        new = as_id_array(list(new_ids))
        fresh = new[self.lookup(new) < 0]
        if len(fresh) == 0:
            return self
        fresh = pd.unique(fresh)
        if self._ids.dtype != fresh.dtype:
            merged = np.concatenate([self._ids.astype(object), np.asarray(fresh, dtype=object)])
        else:
            merged = np.concatenate([self._ids, fresh])
        return IdMap(merged)

    def to_list(self) -> list:
        return [plain(x) for x in self._ids]
