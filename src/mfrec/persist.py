"""Model files: one zip with a JSON manifest and .npy arrays. No pickle anywhere.

Layout of ``model.mfrec`` (a plain zip, stored uncompressed so arrays load at disk speed)::

    manifest.json        format, versions, model class, hyperparameters, rating scale, training
                         summary, history, metrics, and the SHA-256 of every array member
    arrays/<name>.npy    fitted arrays, id maps (int64 or unicode), seen-items CSR, item table

Writes are atomic (temporary file + rename). Loading checks the format name and version, every
member's checksum, and reads arrays with ``allow_pickle=False``; a truncated, tampered or
foreign file raises :class:`mfrec.errors.ModelFileError` saying what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.idmap import IdMap
from mfrec.errors import ModelFileError
from mfrec.io import atomic_path

FORMAT = "mfrec-model"
FORMAT_VERSION = 1


def _model_classes() -> dict[str, type]:
    from mfrec import models

    return {cls.__name__: cls for cls in models.MODEL_NAMES.values()}


def _ids_array(id_map: IdMap, what: str) -> np.ndarray:
    ids = id_map.ids
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    if all(isinstance(x, str) for x in ids):
        return ids.astype(str)
    raise ModelFileError(f"{what} ids mix types ({sorted({type(x).__name__ for x in ids})}); "
                         "use all-int or all-str ids to save a model")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def save_model(model: Any, path: str | Path, *, metrics: dict | None = None) -> Path:
    """Write a fitted model to ``path`` (atomically). Returns the path."""
    model._require_fitted()
    from mfrec import __version__

    arrays: dict[str, np.ndarray] = dict(model._fitted_arrays())
    arrays["user_ids"] = _ids_array(model.user_map_, "user")
    arrays["item_ids"] = _ids_array(model.item_map_, "item")
    seen = model.seen_.tocsr()
    arrays["seen_indptr"] = seen.indptr.astype(np.int64)
    arrays["seen_indices"] = seen.indices.astype(np.int32)
    item_table = None
    if model.item_info_ is not None:
        info = model.item_info_
        item_table = [c for c in ("title", "genres", "year") if c in info.columns]
        arrays["item_info_known"] = info.notna().any(axis=1).to_numpy()
        if "title" in info:
            arrays["item_title"] = info["title"].fillna("").astype(str).to_numpy().astype(str)
        if "genres" in info:
            arrays["item_genres"] = np.array(["|".join(g) if isinstance(g, (list, tuple)) else "" for g in info["genres"]], dtype=str)
        if "year" in info:
            arrays["item_year"] = pd.to_numeric(info["year"], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    blobs = {f"arrays/{name}.npy": _npy_bytes(np.asarray(arr)) for name, arr in arrays.items()}
    history = model.history_.to_dict(orient="records") if getattr(model, "history_", None) is not None else []
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mfrec_version": __version__,
        "model_class": type(model).__name__,
        "params": _jsonable(model.get_params()),
        "rating_scale": list(model.rating_scale_),
        "global_mean": float(model.global_mean_),
        "train_mean": float(model.train_mean_),
        "n_train": int(model.n_train_),
        "n_users": len(model.user_map_),
        "n_items": len(model.item_map_),
        "best_epoch": int(getattr(model, "best_epoch_", 0)),
        "history": _jsonable(history),
        "metrics": _jsonable(metrics or getattr(model, "metrics_", {}) or {}),
        "item_table": item_table,
        "arrays": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=1))
            for name, data in blobs.items():
                zf.writestr(name, data)
    return path


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise ModelFileError(f"{path}: not an mfrec model file (no manifest.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: the manifest is damaged ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an mfrec model file (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file format version {version} is not supported by this mfrec "
                             f"(reads version {FORMAT_VERSION}); saved by mfrec {manifest.get('mfrec_version')}")
    return manifest


def load_model(path: str | Path) -> Any:
    """Read a model written by :func:`save_model` (or ``model.save``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc}); is it truncated?") from None
    with zf:
        manifest = _read_manifest(zf, path)
        classes = _model_classes()
        cls = classes.get(manifest["model_class"])
        if cls is None:
            raise ModelFileError(f"{path}: unknown model class {manifest['model_class']!r}")
        arrays: dict[str, np.ndarray] = {}
        for member, digest in manifest["arrays"].items():
            try:
                data = zf.read(member)
            except (KeyError, zipfile.BadZipFile, OSError) as exc:
                raise ModelFileError(f"{path}: member {member} is missing or damaged ({exc})") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise ModelFileError(f"{path}: member {member} does not match its checksum (tampered or corrupted)")
            try:
                arrays[member[len("arrays/"):-len(".npy")]] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            except ValueError as exc:
                raise ModelFileError(f"{path}: member {member} is not a plain array ({exc})") from None
    try:
        model = cls(**manifest["params"])
    except TypeError as exc:
        raise ModelFileError(f"{path}: parameters do not fit {cls.__name__} ({exc})") from None
    model.user_map_ = IdMap(arrays.pop("user_ids").astype(object) if arrays["user_ids"].dtype.kind == "U" else arrays.pop("user_ids"))
    model.item_map_ = IdMap(arrays.pop("item_ids").astype(object) if arrays["item_ids"].dtype.kind == "U" else arrays.pop("item_ids"))
    indptr, indices = arrays.pop("seen_indptr"), arrays.pop("seen_indices")
    model.seen_ = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                                shape=(len(model.user_map_), len(model.item_map_)))
    table = {}
    if "item_title" in arrays:
        table["title"] = arrays.pop("item_title").astype(object)
    if "item_genres" in arrays:
        table["genres"] = [g.split("|") if g else [] for g in arrays.pop("item_genres")]
    if "item_year" in arrays:
        year = arrays.pop("item_year")
        table["year"] = pd.array(np.where(year < 0, None, year), dtype="Int64")
    known = arrays.pop("item_info_known", None)
    info = pd.DataFrame(table, index=pd.Index(model.item_map_.ids, name="item")) if table else None
    if info is not None and known is not None and not known.all():
        info.loc[~known, :] = np.nan  # items the attached table did not cover
    model.item_info_ = info
    for name, arr in arrays.items():
        setattr(model, name, arr)
    model.rating_scale_ = tuple(manifest["rating_scale"])
    model.global_mean_ = manifest["global_mean"]
    model.train_mean_ = manifest["train_mean"]
    model.n_train_ = manifest["n_train"]
    model.best_epoch_ = manifest["best_epoch"]
    model.history_ = pd.DataFrame.from_records(manifest["history"])
    model.metrics_ = manifest.get("metrics", {})
    model.fitted_ = True
    expected = len(model.user_map_), len(model.item_map_)
    if model.user_factors_.shape[0] != expected[0] or model.item_factors_.shape[0] != expected[1]:
        raise ModelFileError(f"{path}: factor shapes {model.user_factors_.shape}, {model.item_factors_.shape} "
                             f"do not match {expected[0]} users and {expected[1]} items")
    return model
