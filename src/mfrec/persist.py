"""Model files: one zip with a JSON manifest and .npy arrays. No pickle anywhere.

Layout of ``model.mfrec`` (a plain zip: numeric arrays stored uncompressed so they load at disk
speed; the manifest and text arrays (ids, item titles, genres) deflated, at the highest level whose
ratio the loader's zip-bomb limit accepts)::

    manifest.json        format, versions, model class, hyperparameters, rating scale, training
                         summary, history, metrics, and the SHA-256 of every array member
    arrays/<name>.npy    fitted arrays, id maps (int64 or unicode), seen-items CSR, item table

Writes are atomic and durable (`mfrec._files.atomic_write`). Loading treats the file as untrusted
data and checks, in this order, before anything becomes part of a model:

1. the path is a regular file (not a directory, device or FIFO), opened without blocking;
2. the zip's members: no encryption, stored or deflated only, no duplicates, every member named
   in the manifest, declared sizes within limits (the manifest at most `MAX_MANIFEST_BYTES`, a
   deflated member at most `MAX_DEFLATE_RATIO` times its compressed size);
3. the manifest: format name and version, every key and its type, the model class, parameters
   that are exactly the class's and pass its own ``validate_params``;
4. every array's npy header against the class's declared arrays (``_array_specs``: names,
   dtypes, shapes consistent with the id maps and with each other) and its declared size, all
   before reading any array data; then the data is read in bounded chunks into the array itself;
5. the SHA-256 of every member, then the values: finite floats, unique ids, a monotone seen-items
   CSR with item indices in range; then the class builds the model (``from_state``: declared
   arrays only, and its own consistency checks).

Every failure is a :class:`mfrec.errors.ModelFileError` naming the file and what is wrong. The
checksums detect corruption, not tampering: anyone can rewrite a member and its checksum, so load
only model files you trust (the checks above keep a crafted file from crashing the process or
running code, not from making a model that recommends what its author wants).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import math
import numbers
import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.idmap import IdMap
from mfrec.errors import ModelFileError
from mfrec._files import atomic_write
from mfrec.models.registry import model_class
from mfrec.models.state import ModelState
from mfrec._warnings import warn_user

FORMAT = "mfrec-model"
FORMAT_VERSION = 1

#: the manifest is small JSON (history and metrics included); more than this is not one of ours
MAX_MANIFEST_BYTES = 16 * 2**20
#: a deflated member may declare at most this many times its compressed size (plus 64 KiB):
#: fitted arrays hardly compress; a higher ratio is a zip bomb, not a model
MAX_DEFLATE_RATIO = 64
#: a model file has ~20 members (manifest, ids, seen CSR, item table, the class's arrays)
MAX_MEMBERS = 256
#: npy headers are ~128 bytes
MAX_NPY_HEADER = 2**16
#: ids index int32 arrays (the seen-items CSR)
MAX_ROWS = 2**31 - 1
_CHUNK = 8 * 2**20

#: arrays every model file has: id maps and the seen-items CSR (see `_check_headers` for kinds)
_COMMON_SPECS: dict[str, tuple[str, tuple]] = {
    "user_ids": ("ids", ("users",)),
    "item_ids": ("ids", ("items",)),
    "seen_indptr": ("int64", ("users+1",)),
    "seen_indices": ("index", ("nnz",)),
}
#: the item table's arrays (present when the manifest's ``item_table`` lists the column)
_TABLE_SPECS: dict[str, tuple[str, tuple]] = {
    "item_info_known": ("bool", ("items",)),
    "item_title": ("str", ("items",)),
    "item_genres": ("str", ("items",)),
    "item_year": ("int64", ("items",)),
}
_TABLE_COLUMNS = ("title", "genres", "year")

_KINDS: dict[str, tuple[str, ...]] = {
    "float": ("float32", "float64"),
    "int64": ("int64",),
    "index": ("int32", "int64"),
    "bool": ("bool",),
}


def _model_class(name: str) -> type | None:
    """The registered model class a manifest names (`mfrec.models.registry`), None if unknown."""
    try:
        return model_class(name)
    except KeyError:
        return None


def _ids_array(ids: np.ndarray, what: str) -> np.ndarray:
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    if all(isinstance(x, str) for x in ids):
        return ids.astype(str)
    types = sorted({type(x).__name__ for x in ids})
    if len(types) == 1:
        detail = f"are {types[0]}" + (" beyond int64" if types[0] == "int" else "")
    else:
        detail = f"mix types ({types})"
    raise ModelFileError(f"{what} ids {detail}: a model file keeps int64 ids or str ids; "
                         "give all-int64 or all-str ids to save a model")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _inflate_allowed(file_size: int, compress_size: int) -> bool:
    """The zip-bomb limit on a deflated member, shared by save and load."""
    return file_size <= 2**16 + MAX_DEFLATE_RATIO * compress_size


#: deflate levels tried for a text member, best first; a member none of them fits is stored
_DEFLATE_LEVELS = (9, 6, 3, 1)


def _member_compression(data: bytes, text: bool) -> tuple[int, int | None]:
    """(zip compression, level) for one member: text (JSON, unicode arrays) is deflated at the
    highest level whose ratio :func:`_inflate_allowed` accepts, when that saves space; numeric
    arrays hardly compress and are stored, so they load at disk speed."""
    if text:
        for level in _DEFLATE_LEVELS:
            c = zlib.compressobj(level, zlib.DEFLATED, -15)  # raw deflate, as zipfile writes it
            size = len(c.compress(data)) + len(c.flush())
            if size < len(data) and _inflate_allowed(len(data), size):
                return zipfile.ZIP_DEFLATED, level
    return zipfile.ZIP_STORED, None


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name  # dtype=np.float32 is stored as "float32"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- array specs
def _specs(cls: type, item_table: list[str] | None) -> dict[str, tuple[str, tuple]]:
    """Every array a file of ``cls`` holds: the class's declared arrays, ids, seen CSR, item table."""
    specs = {**_COMMON_SPECS, **cls._array_specs}
    if item_table is not None:
        specs["item_info_known"] = _TABLE_SPECS["item_info_known"]
        for col in item_table:
            specs[f"item_{col}"] = _TABLE_SPECS[f"item_{col}"]
    return specs


def _dim_value(term: str, bound: dict[str, int]) -> int | None:
    term = term.strip()
    if term.isdigit():
        return int(term)
    return bound.get(term)


def _eval_dim(dim: int | str, bound: dict[str, int]) -> int | None:
    """A declared dimension (an int, a symbol, or sums of products of those) under ``bound``."""
    if isinstance(dim, int):
        return dim
    total = 0
    for part in dim.split("+"):
        prod = 1
        for term in part.split("*"):
            value = _dim_value(term, bound)
            if value is None:
                return None
            prod *= value
        total += prod
    return total


def _bind_params(params: dict[str, Any]) -> dict[str, int]:
    """Integer (and bool) hyperparameters, usable as dimensions in ``_array_specs``."""
    return {k: int(v) for k, v in params.items() if isinstance(v, numbers.Integral)}


def check_array_headers(specs: dict[str, tuple[str, tuple]], headers: dict[str, tuple[np.dtype, tuple]],
                        bound: dict[str, int], factor_dtype: np.dtype) -> None:
    """Check names, dtypes and shapes of ``headers`` (name -> (dtype, shape)) against ``specs``.

    Kinds: ``factor`` (float32/float64, the model's ``dtype``), ``float``, ``int64``, ``index``
    (int32/int64), ``bool``, ``str`` (unicode), ``ids`` (int64 or unicode). Dimensions: ints,
    symbols bound in ``bound`` (``users``, ``items``, integer hyperparameters), free symbols bound
    by their first occurrence (e.g. ``draws``), and ``a*b`` / ``a+b`` of those. Raises ValueError.
    """
    unknown = sorted(set(headers) - set(specs))
    if unknown:
        raise ValueError(f"unexpected array(s) {unknown} (this model class has {sorted(specs)})")
    missing = sorted(set(specs) - set(headers))
    if missing:
        raise ValueError(f"array(s) {missing} are missing")
    for name, (kind, dims) in specs.items():
        dtype, shape = headers[name]
        if not dtype.isnative and dtype.itemsize > 1:
            raise ValueError(f"array {name} has non-native byte order ({dtype.str})")
        if kind == "factor":
            ok = dtype == factor_dtype
            want = f"{factor_dtype.name} (the model's dtype)"
        elif kind == "str":
            ok, want = dtype.kind == "U", "unicode text"
        elif kind == "ids":
            ok, want = dtype == np.int64 or dtype.kind == "U", "int64 or unicode ids"
        else:
            ok = dtype.name in _KINDS[kind]
            want = " or ".join(_KINDS[kind])
        if not ok:
            raise ValueError(f"array {name} has dtype {dtype.str}, expected {want}")
        if len(shape) != len(dims):
            raise ValueError(f"array {name} has {len(shape)} dimension(s) {shape}, expected {len(dims)}")
    bound = dict(bound)
    for name, (_, dims) in specs.items():  # free symbols: bound by their first plain occurrence
        for dim, size in zip(dims, headers[name][1]):
            if isinstance(dim, str) and dim.isidentifier() and dim not in bound:
                bound[dim] = size
    for name, (_, dims) in specs.items():
        shape = headers[name][1]
        want = tuple(_eval_dim(d, bound) for d in dims)
        if shape != want:
            sym = ", ".join(f"{d}={v}" for d, v in zip(dims, want) if isinstance(d, str))
            raise ValueError(f"array {name} has shape {shape}, expected {want} ({sym})")


def _all_finite(a: np.ndarray) -> bool:
    flat = a.reshape(-1)
    return all(bool(np.isfinite(flat[s:s + 2**22]).all()) for s in range(0, flat.size, 2**22))


#: largest magnitude a factor or bias may have in a model file (or 1000 x the rating scale's
#: largest magnitude, when that is more): trained values are orders of magnitude smaller, and
#: with it no prediction (a sum of bounded products) can overflow
MAX_ABS_PARAM = 1e6


#: the scale-dependent limit never exceeds this (a crafted scale of +-1e308 must not lift it)
MAX_ABS_CAP = 1e15


def magnitude_limit(scale: Any) -> float:
    """The bound on |factor|, |bias| and |mean| for a model of rating scale ``scale``."""
    if not scale:
        return MAX_ABS_PARAM
    return min(max(MAX_ABS_PARAM, 1e3 * max(abs(float(x)) for x in scale)), MAX_ABS_CAP)


def _max_abs(a: np.ndarray) -> float:
    flat = a.reshape(-1)
    return max((float(np.abs(flat[s:s + 2**22]).max()) for s in range(0, flat.size, 2**22)), default=0.0)


def check_array_values(specs: dict[str, tuple[str, tuple]], arrays: dict[str, np.ndarray], n_items: int,
                       scale: Any = None) -> None:
    """Values the shapes cannot express: finite floats, factors and biases below
    :data:`MAX_ABS_PARAM` in magnitude, a valid seen-items CSR. Raises ValueError."""
    for name, (kind, _) in specs.items():
        if kind in ("factor", "float") and not _all_finite(arrays[name]):
            raise ValueError(f"array {name} has NaN or infinite values")
        if kind == "factor" or name.endswith("bias_"):
            big = _max_abs(arrays[name])
            limit = magnitude_limit(scale)
            if big >= limit:
                raise ValueError(f"array {name} has a value of magnitude {big:.3g}, beyond the {limit:g} "
                                 "a trained model can hold (predictions would overflow)")
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        raise ValueError(f"seen_indptr is not a CSR row pointer (0 .. {len(indices)}, non-decreasing)")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise ValueError(f"seen_indices has item indices outside 0..{n_items - 1}")
    if len(indices) > 1:
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        step = np.diff(indices.astype(np.int64))
        if not (step > 0)[rows[1:] == rows[:-1]].all():  # unsorted rows: look for repeats the slow way
            key = rows * np.int64(n_items) + indices
            if len(np.unique(key)) != len(key):
                raise ValueError("seen_indices lists an item twice for one user")


# ----------------------------------------------------------------------------- save
def _file_arrays(state: ModelState) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """A model state's arrays as file members: the declared arrays, ids, the seen-items CSR and
    the item table's columns."""
    arrays: dict[str, np.ndarray] = {name: np.asarray(a) for name, a in state.arrays.items()}
    arrays["user_ids"] = _ids_array(state.user_ids, "user")
    arrays["item_ids"] = _ids_array(state.item_ids, "item")
    seen = state.seen.tocsr()
    arrays["seen_indptr"] = seen.indptr.astype(np.int64)
    arrays["seen_indices"] = seen.indices.astype(np.int32)
    item_table = None
    if state.item_info is not None:
        info = state.item_info
        item_table = [c for c in _TABLE_COLUMNS if c in info.columns]
        arrays["item_info_known"] = info.notna().any(axis=1).to_numpy()
        if "title" in info:
            arrays["item_title"] = info["title"].fillna("").astype(str).to_numpy().astype(str)
        if "genres" in info:
            arrays["item_genres"] = np.array(["|".join(g) if isinstance(g, (list, tuple)) else "" for g in info["genres"]], dtype=str)
        if "year" in info:
            arrays["item_year"] = pd.to_numeric(info["year"], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    return arrays, item_table


#: file names that say another format: a model written there would pass for data (``u.data``,
#: ``r.csv``); refused by `save_model` and by the CLI's ``--out``
NOT_MODEL_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv", ".tab", ".dat", ".data", ".txt", ".json", ".jsonl",
                      ".png", ".pkl", ".pickle", ".py", ".html", ".gz", ".bz2", ".xz", ".zst",
                      # MovieLens 100k's own files: u1.base, u1.test, u.item, u.user, u.genre, u.info ...
                      ".base", ".test", ".item", ".user", ".genre", ".occupation", ".info")


def _metrics(metrics: Any) -> dict:
    """``metrics`` to save: a dict, as JSON (a NaN, say an undefined ndcg@10 of `evaluate`, as null)."""
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict {{name: number}}, got {type(metrics).__name__}")

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list):
            return [finite(x) for x in v]
        return v
    return finite(_jsonable(metrics))


def _as_path(path: Any) -> Path:
    """A model file's path: a str or os.PathLike (a TypeError saying so for bytes, file objects ...)."""
    if isinstance(path, str) or (isinstance(path, os.PathLike) and isinstance(os.fspath(path), str)):
        return Path(path)
    raise TypeError(f"a model file path must be a str or os.PathLike, got {type(path).__name__}"
                    + (" (decode it: path.decode())" if isinstance(path, bytes) else ""))


def check_model_path(path: Any) -> Path:
    """``path`` as a Path a model file may be written to: not a name of another format."""
    path = _as_path(path)
    if path.suffix.lower() in NOT_MODEL_SUFFIXES:
        raise ValueError(f"{path}: a model file is not a {path.suffix} file; give a name such as "
                         f"{path.with_suffix('.mfrec').name}")
    return path


def save_model(model: Any, path: str | Path, *, metrics: dict | None = None) -> Path:
    """Write a fitted model to ``path`` (atomically and durably). Returns the path.

    The arrays are checked against the class's declared arrays first (the same checks as
    :func:`load_model`), so a file that could not be loaded back is never written."""
    from mfrec import __version__

    path = check_model_path(path)
    state = model.get_state()  # NotFittedError before anything is written
    cls = type(model)
    model.validate_params()  # set since the fit (set_params, attributes): load_model would refuse them
    arrays, item_table = _file_arrays(state)
    params = _jsonable(state.params)
    specs = _specs(cls, item_table)
    n_users, n_items = len(state.user_ids), len(state.item_ids)
    bound = {"users": n_users, "items": n_items, **_bind_params(params)}
    try:
        factor_dtype = np.dtype(params.get("dtype", "float32"))
        check_array_headers(specs, {k: (a.dtype, a.shape) for k, a in arrays.items()}, bound, factor_dtype)
        check_array_values(specs, arrays, n_items, state.meta["rating_scale"])
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"cannot save this {cls.__name__}: its fitted state is inconsistent ({exc})") from None
    blobs = {f"arrays/{name}.npy": _npy_bytes(arr) for name, arr in arrays.items()}
    text = {f"arrays/{name}.npy" for name, arr in arrays.items() if arr.dtype.kind in "US"}
    meta = state.meta
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mfrec_version": __version__,
        "model_class": cls.__name__,
        "params": params,
        "rating_scale": [float(x) for x in meta["rating_scale"]],
        "global_mean": float(meta["global_mean"]),
        "train_mean": float(meta["train_mean"]),
        "n_train": int(meta["n_train"]),
        "n_users": n_users,
        "n_items": n_items,
        "best_epoch": int(meta["best_epoch"]),
        "history": _jsonable(meta["history"]),
        "metrics": _metrics(metrics or meta["metrics"] or {}),
        "item_table": item_table,
        "arrays": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()},
    }
    path = Path(path)
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in {"manifest.json": json.dumps(manifest, indent=1).encode(), **blobs}.items():
                method, level = _member_compression(data, name == "manifest.json" or name in text)
                zf.writestr(name, data, compress_type=method, compresslevel=level)
    return path


# ----------------------------------------------------------------------------- load
def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file; never blocks (FIFOs, devices)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ModelFileError(f"{path}: not a model file ({kind}, not a regular file)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
        os.close(fd)
        raise ModelFileError(f"{path}: not a model file (not a regular file)")
    return os.fdopen(fd, "rb")


_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


def _check_member_info(info: zipfile.ZipInfo, archive_size: int, path: Path, limit: int | None = None) -> None:
    """Refuse encrypted, unsupported or oversized members before reading a byte of them."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: member {name} is encrypted; model files are never encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: member {name} uses unsupported compression method {info.compress_type} "
                             "(model files are stored or deflated)")
    if info.compress_size > archive_size:
        raise ModelFileError(f"{path}: member {name} claims {info.compress_size} bytes, more than the file "
                             f"({archive_size}); is it truncated?")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise ModelFileError(f"{path}: member {name} is stored but declares {info.file_size} bytes "
                             f"in {info.compress_size}")
    if info.compress_type == zipfile.ZIP_DEFLATED and not _inflate_allowed(info.file_size, info.compress_size):
        raise ModelFileError(f"{path}: member {name} would inflate {info.compress_size} bytes to {info.file_size} "
                             f"(more than {MAX_DEFLATE_RATIO}x): refusing a possible zip bomb; re-save the model "
                             "with mfrec (stored uncompressed)")
    if limit is not None and info.file_size > limit:
        raise ModelFileError(f"{path}: member {name} declares {info.file_size} bytes, more than the "
                             f"{limit} allowed")


def _read_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[bytes, np.dtype, tuple, bool]:
    """(header bytes, dtype, shape, fortran_order) from a bounded read of the member's start."""
    name = info.filename
    try:
        with zf.open(info) as f:
            head = f.read(10)
            if len(head) < 10 or head[:6] != b"\x93NUMPY":
                raise ModelFileError(f"{path}: member {name} is not an .npy array")
            version = (head[6], head[7])
            if version == (1, 0):
                hlen = struct.unpack("<H", head[8:10])[0]
            elif version == (2, 0):
                head += f.read(2)
                hlen = struct.unpack("<I", head[8:12])[0]
            else:
                raise ModelFileError(f"{path}: member {name} has unsupported .npy version {version}")
            if hlen > MAX_NPY_HEADER:
                raise ModelFileError(f"{path}: member {name} has an oversized .npy header ({hlen} bytes)")
            head += f.read(hlen)
    except ModelFileError:
        raise
    except _MEMBER_ERRORS as exc:
        raise ModelFileError(f"{path}: member {name} is damaged ({exc})") from None
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = reader(io.BytesIO(head[8:]), max_header_size=MAX_NPY_HEADER)
    except Exception as exc:  # a parser of untrusted text: whatever it raises, the header is bad
        raise ModelFileError(f"{path}: member {name} has a damaged .npy header ({str(exc)[:200]})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{path}: member {name} is not a plain array (dtype {dtype}; objects, records "
                             "and pickles are refused)")
    if any(d < 0 for d in shape):
        raise ModelFileError(f"{path}: member {name} has a negative dimension {shape}")
    return head, dtype, tuple(shape), fortran


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, head: bytes, dtype: np.dtype, shape: tuple,
                fortran: bool, digest: str, path: Path) -> np.ndarray:
    """The member's data read in bounded chunks straight into the array; SHA-256 checked."""
    name = info.filename
    count = math.prod(shape)
    flat = np.empty(count, dtype=dtype)
    raw = memoryview(flat.view(np.uint8) if count else np.empty(0, np.uint8))
    sha = hashlib.sha256()
    try:
        with zf.open(info) as f:
            if f.read(len(head)) != head:
                raise ModelFileError(f"{path}: member {name} changed while reading")
            sha.update(head)
            pos = 0
            while pos < len(raw):
                got = f.readinto(raw[pos:pos + _CHUNK])
                if not got:
                    raise ModelFileError(f"{path}: member {name} is truncated")
                sha.update(raw[pos:pos + got])
                pos += got
            if f.read(1):
                raise ModelFileError(f"{path}: member {name} has data after the array")
    except ModelFileError:
        raise
    except _MEMBER_ERRORS as exc:
        raise ModelFileError(f"{path}: member {name} is damaged ({exc})") from None
    if sha.hexdigest() != digest:
        raise ModelFileError(f"{path}: member {name} does not match its checksum (corrupted, or changed "
                             "after saving)")
    if dtype == np.bool_:
        flat = flat.view(np.uint8) != 0  # a byte other than 0/1 is not a numpy bool
    arr = flat.reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr)


def _read_manifest(zf: zipfile.ZipFile, path: Path, archive_size: int) -> dict:
    try:
        info = zf.getinfo("manifest.json")
    except KeyError:
        raise ModelFileError(f"{path}: not an mfrec model file (no manifest.json)") from None
    _check_member_info(info, archive_size, path, MAX_MANIFEST_BYTES)
    try:
        with zf.open(info) as f:
            manifest = json.loads(f.read(MAX_MANIFEST_BYTES + 1))
    except (*_MEMBER_ERRORS, RecursionError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: the manifest is damaged ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: the manifest is damaged (a JSON {type(manifest).__name__}, not an object)")
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an mfrec model file (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or not _is_int(version):  # true == 1 in Python, not in a format version
        raise ModelFileError(f"{path}: model file format version {version!r} is not supported by this mfrec "
                             f"(reads version {FORMAT_VERSION}); saved by mfrec {manifest.get('mfrec_version')!r}")
    _check_manifest(manifest, path)
    return manifest


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _check_manifest(m: dict, path: Path) -> None:
    """Every manifest key is present and of its type (ModelFileError naming the key)."""
    checks: list[tuple[str, Any, str]] = [
        ("mfrec_version", lambda v: isinstance(v, str), "a string"),
        ("model_class", lambda v: isinstance(v, str), "a string"),
        ("params", lambda v: isinstance(v, dict), "an object of hyperparameters"),
        ("rating_scale", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_num, v)) and v[0] <= v[1],
         "[low, high], two finite numbers"),
        ("global_mean", _is_num, "a finite number"),
        ("train_mean", _is_num, "a finite number"),
        ("n_train", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        ("n_users", lambda v: _is_int(v) and 1 <= v <= MAX_ROWS, f"an integer in 1..{MAX_ROWS}"),
        ("n_items", lambda v: _is_int(v) and 1 <= v <= MAX_ROWS, f"an integer in 1..{MAX_ROWS}"),
        ("best_epoch", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        ("history", lambda v: isinstance(v, list) and all(
            isinstance(r, dict) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
                                        for x in r.values()) for r in v),
         "a list of per-epoch records of numbers"),
        ("metrics", lambda v: isinstance(v, dict), "an object"),  # informational: files of before hold anything
        ("item_table", lambda v: v is None or (isinstance(v, list) and all(c in _TABLE_COLUMNS for c in v)
                                               and len(set(v)) == len(v)),
         f"null or a list of columns from {list(_TABLE_COLUMNS)}"),
        ("arrays", lambda v: isinstance(v, dict) and all(isinstance(h, str) and _HEX64.match(h) for h in v.values()),
         "an object of member name -> SHA-256 hex digest"),
    ]
    for key, ok, what in checks:
        if key not in m:
            raise ModelFileError(f"{path}: the manifest has no {key!r} (a damaged or foreign file)")
        if not ok(m[key]):
            raise ModelFileError(f"{path}: manifest key {key!r} must be {what}, got {_short(m[key])}")
    unknown = sorted(set(m) - {key for key, _, _ in checks} - {"format", "format_version"})
    if unknown:  # a newer mfrec's addition, or an edit: ignored, and said
        warn_user(f"{path}: ignored unknown manifest key(s) {unknown[:5]} (saved by mfrec "
                  f"{m.get('mfrec_version')!r})")
    limit = magnitude_limit(m["rating_scale"])
    for key in ("global_mean", "train_mean"):
        if abs(m[key]) >= limit:
            raise ModelFileError(f"{path}: manifest key {key!r} is {m[key]:.3g}, beyond the {limit:g} a model of "
                                 f"rating scale {m['rating_scale']} can hold")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _new_model(cls: type, params: dict, path: Path) -> Any:
    """An unfitted ``cls`` from the manifest's parameters: exactly the class's, valid by its own checks."""
    names = set(cls.param_names())
    extra, missing = sorted(set(params) - names), sorted(names - set(params))
    if extra or missing:
        detail = "; ".join(p for p in (f"unknown {extra}" if extra else "", f"missing {missing}" if missing else "") if p)
        raise ModelFileError(f"{path}: parameters do not fit {cls.__name__} ({detail}); was the file "
                             "relabelled as another model class?")
    try:
        model = cls(**params)
        model.validate_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid {cls.__name__} parameters in the manifest ({exc})") from None
    return model


def load_model(path: str | Path) -> Any:
    """Read a model written by :func:`save_model` (or ``model.save``); see the module docstring
    for what is checked. Raises FileNotFoundError or :class:`ModelFileError`."""
    path = _as_path(path)
    fileobj = _open_regular(path)
    with fileobj:
        archive_size = os.fstat(fileobj.fileno()).st_size
        try:
            zf = zipfile.ZipFile(fileobj)
        except (*_MEMBER_ERRORS, struct.error, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path}: not a readable model file ({exc}); is it truncated?") from None
        with zf:
            return _load(zf, path, archive_size)


def _load(zf: zipfile.ZipFile, path: Path, archive_size: int) -> Any:
    names = zf.namelist()
    if len(names) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: the zip has {len(names)} members; a model file has at most {MAX_MEMBERS}")
    if len(names) != len(set(names)):
        dup = sorted(n for n, c in collections.Counter(names).items() if c > 1)
        raise ModelFileError(f"{path}: the zip lists member(s) {dup[:5]} more than once")
    manifest = _read_manifest(zf, path, archive_size)
    cls = _model_class(manifest["model_class"]) if ":" not in manifest["model_class"] else None
    if cls is None:
        raise ModelFileError(f"{path}: unknown model class {manifest['model_class']!r}; a model class of your "
                             "own must be registered first: import its module (or list the module in the "
                             "MFREC_MODELS environment variable)")
    model = _new_model(cls, manifest["params"], path)

    # which members: exactly the manifest's arrays, each a declared array of this class
    listed = manifest["arrays"]
    strays = sorted(set(names) - set(listed) - {"manifest.json"})
    if strays:
        raise ModelFileError(f"{path}: member(s) {strays[:5]} are not listed in the manifest")
    members: dict[str, str] = {}
    for member in listed:
        m = re.fullmatch(r"arrays/([A-Za-z_][A-Za-z0-9_]*)\.npy", member)
        if m is None:
            raise ModelFileError(f"{path}: manifest lists {member!r}, not an arrays/<name>.npy member")
        members[m.group(1)] = member
    specs = _specs(cls, manifest["item_table"])
    bad = sorted(set(members) - set(specs))
    if bad:
        raise ModelFileError(f"{path}: unexpected array(s) {bad} for {cls.__name__} (it has {sorted(specs)})")
    absent = sorted(set(specs) - set(members))
    if absent:
        raise ModelFileError(f"{path}: array(s) {absent} missing from the manifest")

    # headers and declared sizes of every member, before any array data is read
    headers: dict[str, tuple[zipfile.ZipInfo, bytes, np.dtype, tuple, bool]] = {}
    for name, member in members.items():
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise ModelFileError(f"{path}: member {member} is missing") from None
        _check_member_info(info, archive_size, path)
        head, dtype, shape, fortran = _read_npy_header(zf, info, path)
        expected = len(head) + math.prod(shape) * dtype.itemsize
        if info.file_size != expected:
            raise ModelFileError(f"{path}: member {member} declares {info.file_size} bytes; its header "
                                 f"({dtype.str} {shape}) means {expected}")
        headers[name] = (info, head, dtype, shape, fortran)
    params = model.get_params()
    bound = {"users": manifest["n_users"], "items": manifest["n_items"], **_bind_params(params)}
    try:
        factor_dtype = np.dtype(params.get("dtype", "float32"))
        check_array_headers(specs, {k: (h[2], h[3]) for k, h in headers.items()}, bound, factor_dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: arrays do not fit a {cls.__name__} of {manifest['n_users']} users and "
                             f"{manifest['n_items']} items: {exc}") from None

    arrays = {name: _read_array(zf, info, head, dtype, shape, fortran, listed[members[name]], path)
              for name, (info, head, dtype, shape, fortran) in headers.items()}
    try:
        check_array_values(specs, arrays, manifest["n_items"], manifest["rating_scale"])
        model = cls.from_state(_state(arrays, manifest, params))
    except (TypeError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ModelFileError(f"{path}: inconsistent {cls.__name__} model file: {msg}") from None
    return model


def _id_map(ids: np.ndarray, what: str) -> IdMap:
    try:
        return IdMap(ids.astype(object) if ids.dtype.kind == "U" else ids)
    except ValueError as exc:
        raise ValueError(f"{what} ids: {exc}") from None


def _state(arrays: dict[str, np.ndarray], manifest: dict, params: dict) -> ModelState:
    """The checked arrays and manifest values as a `ModelState` (the class builds the model)."""
    user_ids = _id_map(arrays.pop("user_ids"), "user").ids
    item_ids = _id_map(arrays.pop("item_ids"), "item").ids
    indptr, indices = arrays.pop("seen_indptr"), arrays.pop("seen_indices")
    seen = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                         shape=(len(user_ids), len(item_ids)))
    table: dict[str, Any] = {}
    if "item_title" in arrays:
        table["title"] = arrays.pop("item_title").astype(object)
    if "item_genres" in arrays:
        table["genres"] = [g.split("|") if g else [] for g in arrays.pop("item_genres")]
    if "item_year" in arrays:
        year = arrays.pop("item_year")
        table["year"] = pd.array(np.where(year < 0, None, year), dtype="Int64")
    known = arrays.pop("item_info_known", None)
    info = pd.DataFrame(table, index=pd.Index(item_ids, name="item")) if table else None
    if info is not None and known is not None and not known.all():
        info.loc[~known, :] = np.nan  # items the attached table did not cover
    meta = {key: manifest[key] for key in ("rating_scale", "global_mean", "train_mean", "n_train", "best_epoch",
                                           "history", "metrics")}
    return ModelState(params=params, arrays=arrays, user_ids=user_ids, item_ids=item_ids, seen=seen, meta=meta,
                      item_info=info)
