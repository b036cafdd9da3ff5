"""Side information as numbers: `AttributeEncoder` turns a user or item table into a dense float
matrix plus a boolean "observed" mask, for models that fit attributes (`mfrec.CMF`).

Each column of the table is one *attribute*, encoded by its kind:

=============  ==========================================================  ====================
kind           encoding                                                    missing value
=============  ==========================================================  ====================
numeric        standardized: ``(x - mean) / std`` with the fitted mean/std  that feature unobserved
categorical    one-hot (one feature per fitted category; an unknown        all of its features
               category at transform is all zeros, observed)               unobserved
multi          multi-hot over the fitted labels (list-valued cells, e.g.   all of its features
               ``genres``; unknown labels are ignored)                     unobserved
=============  ==========================================================  ====================

Kinds are detected from the dtypes (bool / object / category / string -> categorical, any other
numeric dtype -> numeric, cells holding lists / tuples / sets / arrays -> multi) or given with
``kinds={"occupation": "categorical"}`` (e.g. for integer-coded categories). Missing means None,
NaN or pd.NA; an empty list in a multi column is an observed "no label" (all zeros).

The fitted state is plain JSON (:meth:`AttributeEncoder.to_dict` / :meth:`from_dict`), so it can
be saved without pickle.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from mfrec.data.idmap import plain
from mfrec.errors import DataError
from mfrec._warnings import warn_user

KINDS = ("numeric", "categorical", "multi")
_LIST_TYPES = (list, tuple, set, frozenset, np.ndarray, pd.Series)


#: numeric attribute values must be smaller than this in magnitude (their squares must not overflow)
MAX_NUMERIC = 1e100


def _is_missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT (never a list-like cell)."""
    if value is None:
        return True
    if isinstance(value, _LIST_TYPES):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _json_scalar(value: Any) -> Any:
    """A JSON-friendly scalar: numpy scalars as Python scalars (:func:`mfrec.data.idmap.plain`),
    non-finite floats and other objects as str."""
    value = plain(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _sorted_labels(labels: Iterable[Any]) -> list:
    labels = list(labels)
    try:
        return sorted(labels)
    except TypeError:  # mixed, unorderable labels
        return sorted(labels, key=lambda x: (type(x).__name__, str(x)))


class AttributeEncoder:
    """Encode a table of attributes (one row per user or item) as standardized / one-hot /
    multi-hot features with an observed-mask.

    >>> enc = AttributeEncoder().fit(users)           # DataFrame: age, gender, occupation
    >>> X, observed = enc.transform(users)             # float64 (n, p), bool (n, p)
    >>> x, obs = enc.transform({"age": 31, "gender": "F"})   # one new row; occupation unobserved

    Parameters
    ----------
    kinds : {column: "numeric" | "categorical" | "multi"}, optional
        Override the detected kind of some columns.
    min_count : int
        Categories / labels seen fewer times in ``fit`` get no feature of their own (they encode
        like an unknown category: all zeros, observed).
    """

    def __init__(self, kinds: Mapping[Any, str] | None = None, min_count: int = 1) -> None:
        self.kinds = dict(kinds) if kinds else {}
        self.min_count = int(min_count)
        bad = {c: k for c, k in self.kinds.items() if k not in KINDS}
        if bad:
            raise ValueError(f"unknown attribute kind(s) {bad}; choose from {KINDS}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.columns_: list[dict] | None = None

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _detect_kind(s: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(s.dtype):
            return "numeric"
        for v in s:
            if isinstance(v, _LIST_TYPES):
                return "multi"
        return "categorical"

    def fit(self, table: pd.DataFrame) -> "AttributeEncoder":
        """Learn each column's kind, mean/std or categories/labels from ``table``."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"attributes must be a pandas DataFrame (one row per id), got {type(table).__name__}")
        unknown = [c for c in self.kinds if c not in table.columns]
        if unknown:
            raise DataError(f"kinds name column(s) {unknown} that the attribute table does not have")
        if not table.columns.is_unique:
            raise DataError("attribute table has duplicate column names")
        for name in table.columns:  # names are stored as JSON and matched again by transform
            if _json_scalar(name) != plain(name) or isinstance(plain(name), bool):
                hint = " (flatten the column MultiIndex, e.g. df.columns = ['_'.join(map(str, c)) for c in " \
                       "df.columns])" if isinstance(table.columns, pd.MultiIndex) else ""
                raise DataError(f"attribute column name {plain(name)!r} ({type(name).__name__}) is not text or a "
                                f"number{hint}")
        columns = []
        for name in table.columns:
            s = table[name]
            kind = self.kinds.get(name) or self._detect_kind(s)
            spec: dict[str, Any] = {"name": _json_scalar(name), "kind": kind}
            if kind == "numeric":
                x = self._numeric(s, name)
                obs = x[np.isfinite(x)]
                mean = float(obs.mean()) if len(obs) else 0.0
                std = float(obs.std()) if len(obs) else 1.0
                spec.update(mean=mean, std=std if std > 0 and math.isfinite(std) else 1.0)
            elif kind == "categorical":
                self._check_labels(s.to_numpy(dtype=object), name, multi=False)
                cells = [v for v in s if not _is_missing(v)]
                counts = pd.Series(cells, dtype=object).value_counts(sort=False) if cells else pd.Series(dtype=object)
                if isinstance(s.dtype, pd.CategoricalDtype):
                    order = list(s.dtype.categories)
                else:
                    order = _sorted_labels(counts.index)
                spec["categories"] = [_json_scalar(c) for c in order if counts.get(c, 0) >= self.min_count]
            else:  # multi
                self._check_labels(s.to_numpy(dtype=object), name, multi=True)
                counts: dict = {}
                for v in s:
                    if _is_missing(v):
                        continue
                    for label in ([v] if not isinstance(v, _LIST_TYPES) else v):
                        if not _is_missing(label):
                            counts[label] = counts.get(label, 0) + 1
                spec["labels"] = [_json_scalar(c) for c in _sorted_labels(counts) if counts[c] >= self.min_count]
            columns.append(spec)
        self.columns_ = columns
        self._build_lookups()
        return self

    @staticmethod
    def _numeric(s: pd.Series, name: Any) -> np.ndarray:
        """A column as float64 with NaN for missing; DataError for values that are not (real,
        finite) numbers or too large to standardize (|x| >= MAX_NUMERIC: squares would overflow)."""
        if pd.api.types.is_complex_dtype(s.dtype):
            raise DataError("complex values: a numeric attribute must be real", column=str(name), row=0)
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(x).any():
                k = int(np.flatnonzero(np.isinf(x))[0])
                raise DataError(f"value {x[k]!r} is not a finite number (numeric attribute)", column=str(name), row=k)
            return AttributeEncoder._bounded(x, name)
        raw = s.to_numpy(dtype=object)
        missing = np.fromiter((_is_missing(v) for v in raw), dtype=bool, count=len(raw))
        x = pd.to_numeric(pd.Series(np.where(missing, np.nan, raw), dtype=object), errors="coerce").to_numpy(
            dtype=np.float64)
        bad = ~missing & ~np.isfinite(x)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"value {raw[k]!r} is not a finite number (numeric attribute)", column=str(name),
                            row=k)
        return AttributeEncoder._bounded(x, name)

    @staticmethod
    def _bounded(x: np.ndarray, name: Any) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            big = np.abs(x) >= MAX_NUMERIC
        if big.any():
            k = int(np.flatnonzero(big)[0])
            raise DataError(f"value {x[k]:g} is too large for a numeric attribute (|x| < {MAX_NUMERIC:g}; "
                            "rescale the column)", column=str(name), row=k)
        return x

    @staticmethod
    def _check_labels(values: Any, name: Any, multi: bool) -> None:
        """DataError naming the first label (a category, or an element of a multi column's list
        cell) that is not hashable: it could neither be counted nor matched, and was dropped."""
        for r, v in enumerate(values):
            cells = v if multi and isinstance(v, _LIST_TYPES) else [v]
            for label in cells:
                try:
                    hash(label)
                except TypeError:
                    raise DataError(f"label {label!r} is a {type(label).__name__}, not a category (labels must be "
                                    "hashable: str, int, ...)", column=str(name), row=r) from None

    def _build_lookups(self) -> None:
        self._lookup: list[tuple[dict, dict] | None] = []
        for spec in self.columns_:
            labels = spec.get("categories", spec.get("labels"))
            if labels is None:
                self._lookup.append(None)
            else:
                self._lookup.append(({lab: j for j, lab in enumerate(labels)},
                                     {str(lab): j for j, lab in enumerate(labels)}))

    def _require_fitted(self) -> None:
        if self.columns_ is None:
            raise RuntimeError("AttributeEncoder is not fitted yet: call fit() first")

    # ------------------------------------------------------------------ description
    @staticmethod
    def _width(spec: dict) -> int:
        if spec["kind"] == "numeric":
            return 1
        return len(spec["categories"] if spec["kind"] == "categorical" else spec["labels"])

    @property
    def n_features_(self) -> int:
        self._require_fitted()
        return sum(self._width(spec) for spec in self.columns_)

    @property
    def feature_names_(self) -> list[str]:
        """``age``, ``gender=F``, ``genres=Comedy`` ... in feature order."""
        self._require_fitted()
        names = []
        for spec in self.columns_:
            if spec["kind"] == "numeric":
                names.append(str(spec["name"]))
            else:
                labels = spec["categories"] if spec["kind"] == "categorical" else spec["labels"]
                names.extend(f"{spec['name']}={lab}" for lab in labels)
        return names

    @property
    def feature_columns_(self) -> np.ndarray:
        """For each feature, the index of the attribute (column) it encodes."""
        self._require_fitted()
        return np.repeat(np.arange(len(self.columns_)), [self._width(s) for s in self.columns_])

    @property
    def attribute_names_(self) -> list:
        self._require_fitted()
        return [spec["name"] for spec in self.columns_]

    # ------------------------------------------------------------------ transform
    @staticmethod
    def _as_table(data: Any) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, pd.Series):
            return pd.DataFrame([data.to_dict()])
        if isinstance(data, Mapping):
            return pd.DataFrame([{k: v for k, v in data.items()}])
        raise TypeError("attributes must be a DataFrame (rows), or one row as a dict or Series "
                        f"{{attribute: value}}, got {type(data).__name__}")

    def transform(self, data: pd.DataFrame | pd.Series | Mapping[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(values, observed)``: float64 and bool arrays of shape (rows, n_features_).

        ``data`` is a DataFrame (one row per id) or a single row as a dict / Series. Attributes
        that are absent from ``data`` are unobserved; columns unknown to the encoder are ignored
        with a warning. Unobserved entries of ``values`` are 0.
        """
        self._require_fitted()
        table = self._as_table(data)
        names = [spec["name"] for spec in self.columns_]
        known = set(names) | {str(n) for n in names}
        extra = [c for c in table.columns if c not in known]
        if extra:
            warn_user(f"ignored attribute(s) not seen in fit: {extra[:10]}")
        n = len(table)
        values = np.zeros((n, self.n_features_), dtype=np.float64)
        observed = np.zeros((n, self.n_features_), dtype=bool)
        col = 0
        for spec, lookup in zip(self.columns_, self._lookup):
            width = self._width(spec)
            name = spec["name"]
            if name not in table.columns and str(name) in table.columns:
                name = str(name)
            if name in table.columns:
                s = table[name]
                if spec["kind"] == "numeric":
                    x = self._numeric(s, name)
                    ok = np.isfinite(x)
                    values[ok, col] = (x[ok] - spec["mean"]) / spec["std"]
                    observed[:, col] = ok
                else:
                    direct, by_str = lookup
                    self._check_labels(s.to_numpy(dtype=object), name, multi=spec["kind"] == "multi")
                    for r, v in enumerate(s.to_numpy(dtype=object)):
                        if _is_missing(v):
                            continue
                        observed[r, col:col + width] = True
                        cells = v if (spec["kind"] == "multi" and isinstance(v, _LIST_TYPES)) else [v]
                        for label in cells:
                            if _is_missing(label):
                                continue
                            j = self._find(label, direct, by_str)
                            if j >= 0:
                                values[r, col + j] = 1.0
            col += width
        return values, observed

    @staticmethod
    def _find(label: Any, direct: dict, by_str: dict) -> int:
        try:
            j = direct.get(label)
        except TypeError:  # unhashable
            j = None
        if j is None:
            j = by_str.get(str(label))
        return -1 if j is None else j

    def unseen_labels(self, data: pd.DataFrame | pd.Series | Mapping[Any, Any]) -> list[tuple[Any, Any]]:
        """(column, label) of the categorical / multi-label values in ``data`` that fit did not
        keep (never seen, or rarer than ``min_count``): `transform` encodes them as no category."""
        self._require_fitted()
        table = self._as_table(data)
        out: list[tuple[Any, Any]] = []
        for spec, lookup in zip(self.columns_, self._lookup):
            name = spec["name"] if spec["name"] in table.columns else str(spec["name"])
            if spec["kind"] == "numeric" or name not in table.columns:
                continue
            direct, by_str = lookup
            for v in table[name].to_numpy(dtype=object):
                if _is_missing(v):
                    continue
                for label in (v if (spec["kind"] == "multi" and isinstance(v, _LIST_TYPES)) else [v]):
                    if not _is_missing(label) and self._find(label, direct, by_str) < 0:
                        out.append((spec["name"], plain(label)))
        return out

    def fit_transform(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.fit(table).transform(table)

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict:
        """The fitted state as plain JSON-serializable data (see :meth:`from_dict`)."""
        self._require_fitted()
        return {"format": "mfrec-attribute-encoder", "version": 1, "min_count": self.min_count,
                "kinds": {str(k): v for k, v in self.kinds.items()},
                "columns": json.loads(json.dumps(self.columns_))}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "AttributeEncoder":
        """Rebuild a fitted encoder from :meth:`to_dict` output."""
        if state.get("format") != "mfrec-attribute-encoder":
            raise ValueError("not an AttributeEncoder state (missing format 'mfrec-attribute-encoder')")
        if state.get("version") != 1:
            raise ValueError(f"AttributeEncoder state version {state.get('version')} is not supported")
        enc = cls(kinds=state.get("kinds") or None, min_count=int(state.get("min_count", 1)))
        columns = [dict(c) for c in state["columns"]]
        for spec in columns:
            if spec.get("kind") not in KINDS:
                raise ValueError(f"bad attribute kind {spec.get('kind')!r} in encoder state")
        enc.columns_ = columns
        enc._build_lookups()
        return enc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "AttributeEncoder":
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        if self.columns_ is None:
            return f"AttributeEncoder(kinds={self.kinds!r}, min_count={self.min_count})"
        parts = ", ".join(f"{s['name']}:{s['kind']}" for s in self.columns_)
        return f"AttributeEncoder({parts}; {self.n_features_} features)"


def check_attribute_table(table: Any, id_map: Any, what: str) -> np.ndarray:
    """The ids of a side-information table (`CMF`, `BayesianFM`), in ``id_map``'s id type
    (``"12"`` -> 12 for an int-id model, as every lookup reads ids): ``table`` is a non-empty
    DataFrame indexed by ``what`` id, each id once and of the model's id type. A table none of
    whose ids is a training id warns (it changes nothing for the training users)."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what}_attributes must be a DataFrame indexed by raw {what} id, got {type(table).__name__}")
    ids = id_map.conform(table.index)
    if pd.isna(pd.Series(ids, dtype=object)).any():
        raise DataError(f"{what}_attributes has a missing {what} id in its index")
    if not pd.Index(ids).is_unique:
        dup = pd.Index(ids)[pd.Index(ids).duplicated()][0]
        raise DataError(f"{what}_attributes lists {what} {plain(dup)!r} more than once")
    if len(table) == 0:
        raise DataError(f"{what}_attributes has no rows (pass None for no attributes)")
    if table.shape[1] == 0:
        raise DataError(f"{what}_attributes has no columns (pass None for no attributes)")
    odd = id_map.foreign(ids)  # every row's id must have the model's id type
    if odd:
        raise DataError(f"{what}_attributes is indexed by {plain(odd[0])!r} ({type(odd[0]).__name__}), but the "
                        f"training {what} ids are {'integers' if id_map.ids.dtype.kind == 'i' else 'text'}: "
                        f"index it by {what} id")
    if not (id_map.lookup(ids) >= 0).any():
        warn_user(f"none of the {len(table)} rows of {what}_attributes is a training {what} (e.g. "
                  f"{plain(ids[0])!r}): the attributes help only those {what}s' cold start")
    return ids
