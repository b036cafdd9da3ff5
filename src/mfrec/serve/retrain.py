"""Background retraining: the training data plus the stored ratings, validated on a holdout.

Runs in its own process (``python -m mfrec.serve.retrain ...``, started by the service's
``POST /admin/retrain``), so a fit never blocks or slows the request threads beyond sharing the
CPU. Steps:

1. read the training data (``--train-data``: a dataset name or a ratings file) and the store's
   current ratings; merge them: a stored rating replaces the training rating of the same pair,
   a stored deletion removes it, new pairs and new users are added;
2. hold out a random ``holdout`` fraction of the *training* ratings (seeded) and fit two models
   with the serving model's class and hyperparameters: the reference on the training data
   without the holdout, the candidate on the merged data without the holdout. The candidate is
   accepted only if it does not predict the holdout worse than the reference (RMSE for rating
   models, NDCG@10 for ranking models, within ``tolerance``): stored ratings that would make the
   model worse (spam, a bug in a client) are refused;
3. an accepted candidate is refitted on all merged data, written atomically
   (``model-v<N>.mfrec`` via temporary file + rename), read back (checksums), and only then the
   pointer ``current.json`` is replaced atomically; every service worker watches the pointer and
   swaps the new model in between requests.

A retrain of exactly the data the serving retrained model was fitted on (nothing stored or
deleted since) writes nothing: its outcome is ``unchanged`` (the pointer records a fingerprint of
each version's data). A lock file keeps two retrains (from different workers) from running at once. The outcome is
written as JSON to ``--status``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

POINTER = "current.json"


def load_training(spec: str, read: dict[str, Any] | None = None):
    """Training ratings from a dataset name (``ml-latest-small``) or a ratings file (CSV/TSV/Parquet),
    read with ``read`` (``sep``, ``duplicates``, ``encoding``: the options the model's own
    training file needed; ``mfrec serve --sep/--duplicates/--encoding``)."""
    from mfrec.data.datasets import DATASETS, load_dataset
    from mfrec.data.ratings import Ratings

    read = {k: v for k, v in (read or {}).items() if v is not None}
    if spec in DATASETS:
        if read:
            raise ValueError(f"{', '.join('--' + k for k in read)} go(es) with a training file, not the dataset {spec!r}")
        return load_dataset(spec, progress=False).ratings
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"training data {spec!r} is neither a dataset name ({', '.join(DATASETS)}) nor a file")
    return Ratings.read_file(path, sep=read.get("sep"), duplicates=read.get("duplicates", "error"),
                             encoding=read.get("encoding", "utf-8"))


def _typed_ids(texts: np.ndarray, as_int: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stored id texts in the training data's id type: (ids, which of them are valid). As ints
    (``as_int``), by the one rule lookups use (`mfrec.data.idmap.int_text`); else as str."""
    from mfrec.data.idmap import integer_ids

    texts = np.asarray(texts, dtype=object)
    if not as_int:
        return texts.astype(str).astype(object), np.ones(len(texts), dtype=bool)
    ok, num = integer_ids(texts)
    return num, ok


def merge_ratings(train, stored: pd.DataFrame, deletions: pd.DataFrame, scale: tuple[float, float]):
    """``train`` overlaid by the store (a Ratings set on the training scale): returns (merged
    Ratings, train DataFrame with the same id types, the shared id maps, ignored), ``ignored``
    the stored events left out: ``{"events": count, "examples": [(user, item), ...]}``.

    Ids keep the training data's types: users stay ints when every stored user id names an int64
    (else every user id becomes text, ``7`` as ``"7"``: the service canonicalizes ``"007"`` to
    ``"7"`` either way, so a user keeps one id across versions). Stored events of items the
    training data does not have are left out and counted: the service stores only items of its
    model, so they come from a store kept for another catalogue."""
    from mfrec.data.idmap import IdMap

    tdf = train.to_dataframe()[["user", "item", "rating"]]
    users = np.concatenate([stored["user"].to_numpy(dtype=object), deletions["user"].to_numpy(dtype=object)])
    items = np.concatenate([stored["item"].to_numpy(dtype=object), deletions["item"].to_numpy(dtype=object)])
    user_int = tdf["user"].dtype.kind in "iu"
    if user_int:
        user_ids, ok = _typed_ids(users, True)
        user_int = bool(ok.all())
    if not user_int:
        user_ids, _ = _typed_ids(users, False)
        tdf = tdf.assign(user=tdf["user"].astype(str).astype(object))
    item_ids, item_ok = _typed_ids(items, tdf["item"].dtype.kind in "iu")
    known = item_ok & (train.item_map.lookup(item_ids) >= 0) if len(items) else item_ok
    n_stored = len(stored)
    ignored = {"events": int((~known).sum()),
               "examples": [(str(u), str(i)) for u, i in zip(users[~known][:5], items[~known][:5])]}
    keep_s, keep_d = known[:n_stored], known[n_stored:]
    sdf = pd.DataFrame({"user": user_ids[:n_stored][keep_s], "item": item_ids[:n_stored][keep_s],
                        "rating": stored["rating"].to_numpy(dtype=np.float64)[keep_s]})
    ddf = pd.DataFrame({"user": user_ids[n_stored:][keep_d], "item": item_ids[n_stored:][keep_d]})
    drop = pd.concat([sdf[["user", "item"]], ddf], ignore_index=True)
    key = pd.MultiIndex.from_frame(tdf[["user", "item"]])
    keep = ~key.isin(pd.MultiIndex.from_frame(drop)) if len(drop) else np.ones(len(tdf), bool)
    merged = pd.concat([tdf[keep], sdf], ignore_index=True)
    # one pair of id maps for every set fitted here (the union of all ids): the reference and the
    # candidate must differ only by the data, not by the rows of their factor matrices
    maps = (IdMap.factorize(pd.concat([tdf["user"], sdf["user"]], ignore_index=True).to_numpy())[0],
            IdMap.factorize(pd.concat([tdf["item"], sdf["item"]], ignore_index=True).to_numpy())[0])
    ratings = build(merged, scale, maps, "training data + stored ratings")
    return ratings, tdf, maps, ignored


def check_training(model: Any, train: Any, source: str) -> None:
    """Refuse training data the model was not trained on: every user and item of the model must be
    in it, and every (user, item) pair the model saw in training (``seen_``). A ValueError says
    what differs (a model of ml-latest-small served with ml-100k would otherwise show one
    catalogue's ratings under the other's titles, and a retrain would swap the catalogue)."""
    from mfrec.data.idmap import plain

    def sample(ids: np.ndarray) -> str:
        return ", ".join(repr(plain(x)) for x in ids[:3]) + (" ..." if len(ids) > 3 else "")

    what = (f"the training data {source} does not match the model (the model has {len(model.user_map_)} users, "
            f"{len(model.item_map_)} items and {model.seen_.nnz} training ratings; the data {train.n_users} users, "
            f"{train.n_items} items and {len(train)} ratings)")
    u = train.user_map.lookup(model.user_map_.ids)
    i = train.item_map.lookup(model.item_map_.ids)
    if (u < 0).any():
        raise ValueError(f"{what}: {int((u < 0).sum())} of the model's users are not in it: {sample(model.user_map_.ids[u < 0])}")
    if (i < 0).any():
        raise ValueError(f"{what}: {int((i < 0).sum())} of the model's items are not in it: {sample(model.item_map_.ids[i < 0])}")
    seen = model.seen_.tocoo()
    data = train.by_user.tocoo()
    n_items = np.int64(max(train.n_items, 1))
    wanted = u[seen.row].astype(np.int64) * n_items + i[seen.col]
    have = data.row.astype(np.int64) * n_items + data.col
    missing = ~np.isin(wanted, have)
    if missing.any():
        k = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{what}: {int(missing.sum())} of the model's training ratings are not in it, e.g. user "
                         f"{plain(model.user_map_.ids[seen.row[k]])!r}, item {plain(model.item_map_.ids[seen.col[k]])!r}")


def build(df: pd.DataFrame, scale: tuple[float, float], maps: tuple, source: str):
    """A Ratings set on the given id maps, rows in (user, item) order."""
    from mfrec.data.ratings import Ratings

    df = df.sort_values(["user", "item"], kind="stable")
    return Ratings.from_dataframe(df, user="user", item="item", rating="rating", rating_scale=tuple(scale),
                                  user_map=maps[0], item_map=maps[1], source=source)


def _holdout_score(model: Any, train, test) -> tuple[str, float, bool]:
    """Fit ``model`` on ``train``, score it on the holdout ``test``: (metric, value, higher_is_better)."""
    from mfrec.evaluation import fit_and_score

    metric = "rmse" if model.kind == "rating" else "ndcg@10"
    return metric, float(fit_and_score(model, train, test, metrics=(metric,)).scores[metric]), metric != "rmse"


def retrain(model_path: str | Path, train_spec: str, db_url: str, state_dir: str | Path, *,
            holdout: float = 0.1, tolerance: float = 0.01, seed: int = 0,
            train_read: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one retrain (see the module docstring); returns the outcome (also for refusals)."""
    from mfrec.errors import ModelFileError
    from mfrec.persist import load_model
    from mfrec.serve.store import open_store
    from mfrec.split import random_split

    t0 = time.time()
    state_dir = Path(state_dir)
    try:
        pointer = read_pointer(state_dir)
    except PointerError:  # the service serves the base model then; the new pointer repairs it
        pointer = None
    version = max(int(pointer["version"]) if pointer else 0, latest_version(state_dir))
    base = load_model(model_path)
    current = base
    if pointer:  # the newest retrained model; one that does not load is passed over, as the service does
        try:
            current = load_model(pointer["path"])
        except (ModelFileError, OSError, ValueError):
            current = base
            pointer = None
    train = load_training(train_spec, train_read)
    with open_store(db_url) as store:
        stored, deletions = store.current(), store.deletions()
    scale = tuple(current.rating_scale_)
    check_training(base, train, repr(str(train_spec)))
    merged, tdf, maps, ignored = merge_ratings(train, stored, deletions, scale)
    mdf = merged.to_dataframe()[["user", "item", "rating"]]
    fingerprint = data_fingerprint(mdf)
    counts = {"stored_ratings": int(len(stored)), "merged_ratings": len(merged), "from_version": version,
              "ignored_stored_events": ignored["events"], "ignored_examples": ignored["examples"]}
    if pointer and pointer.get("data") == fingerprint:  # the serving model was fitted on exactly this data
        return {"status": "unchanged", "version": version, **counts, "seconds": time.time() - t0}
    base = build(tdf, scale, maps, "training data")
    _, test = random_split(base, test_size=holdout, seed=seed)
    hold = pd.MultiIndex.from_frame(test.to_dataframe()[["user", "item"]])
    fit_base = build(tdf[~pd.MultiIndex.from_frame(tdf[["user", "item"]]).isin(hold)], scale, maps, "training data")
    fit_new = build(mdf[~pd.MultiIndex.from_frame(mdf[["user", "item"]]).isin(hold)], scale, maps,
                    "training data + stored ratings")
    metric, ref_score, higher = _holdout_score(current.clone(), fit_base, test)
    _, cand_score, _ = _holdout_score(current.clone(), fit_new, test)
    if higher:
        accepted = np.isfinite(cand_score) and cand_score >= ref_score * (1 - tolerance)
    else:
        accepted = np.isfinite(cand_score) and cand_score <= ref_score * (1 + tolerance)
    outcome: dict[str, Any] = {
        "status": "accepted" if accepted else "refused", "metric": metric,
        "reference": ref_score, "candidate": cand_score, "tolerance": tolerance,
        "holdout_ratings": len(test), "train_ratings": len(base), **counts,
    }
    if accepted:
        final = current.clone().fit(merged)
        if current.item_info_ is not None:
            final.attach_items(current.item_info_)
        new_version = version + 1
        out = state_dir / f"model-v{new_version}.mfrec"
        final.save(out, metrics={f"holdout_{metric}": cand_score, "reference_" + metric: ref_score})
        load_model(out)  # read back: checksums, shapes
        write_pointer(state_dir, {"version": new_version, "path": str(out.resolve()), "created": time.time(),
                                  "metric": metric, "holdout": cand_score, "reference": ref_score,
                                  "data": fingerprint})
        outcome.update(version=new_version, path=str(out))
    outcome["seconds"] = time.time() - t0
    return outcome


def data_fingerprint(df: pd.DataFrame) -> str:
    """A fingerprint of a set of (user, item, rating) rows, whatever their order: two 64-bit sums
    of pandas' row hashes (the same in every process). A retrain whose merged data has the
    fingerprint the pointer recorded would fit the serving model again: it is skipped."""
    h = pd.util.hash_pandas_object(df[["user", "item", "rating"]], index=False).to_numpy(dtype=np.uint64)
    with np.errstate(over="ignore"):
        mixed = (h ^ (h >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    return f"{len(df)}:{int(h.sum(dtype=np.uint64)):016x}{int(mixed.sum(dtype=np.uint64)):016x}"


class PointerError(ValueError):
    """The pointer file ``current.json`` exists but is damaged (the message names the file)."""


def read_pointer(state_dir: str | Path) -> dict[str, Any] | None:
    """The current-model pointer of a state folder (``version`` >= 1, ``path``), or None when there
    is none yet. A damaged pointer (not JSON, wrong fields) is a `PointerError` naming the file."""
    path = Path(state_dir) / POINTER
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PointerError(f"cannot read the model pointer {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PointerError(f"the model pointer {path} is damaged (not JSON: {exc})") from None
    version = data.get("version") if isinstance(data, dict) else None
    target = data.get("path") if isinstance(data, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1 or not isinstance(target, str) \
            or not target:
        raise PointerError(f"the model pointer {path} is damaged (it needs a version >= 1 and a model path)")
    return data


def latest_version(state_dir: str | Path) -> int:
    """The highest N of the ``model-vN.mfrec`` files in a state folder (0 when none): the next
    retrain writes N + 1 even when the pointer is damaged, never over an existing file."""
    numbers = [int(m.group(1)) for f in Path(state_dir).glob("model-v*.mfrec")
               if (m := re.fullmatch(r"model-v([0-9]{1,9})\.mfrec", f.name))]
    return max(numbers, default=0)


def write_pointer(state_dir: str | Path, data: dict[str, Any]) -> None:
    """Replace the pointer atomically (write, fsync, rename, fsync the folder)."""
    from mfrec._files import atomic_path

    path = Path(state_dir) / POINTER
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfrec.serve.retrain", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--status", required=True, help="JSON file to write the outcome to")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-read", default="{}", help="JSON: sep, duplicates, encoding of the training file")
    args = ap.parse_args(argv)
    import fcntl

    try:
        os.nice(10)  # the fit yields the CPU to the request threads of the service
    except OSError:
        pass

    from mfrec._files import atomic_path

    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    lock = open(Path(args.state_dir) / "retrain.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        outcome: dict[str, Any] = {"status": "busy", "error": "another retrain is running"}
    else:
        try:
            outcome = retrain(args.model, args.train_data, args.db, args.state_dir, holdout=args.holdout,
                              tolerance=args.tolerance, seed=args.seed, train_read=json.loads(args.train_read))
        except Exception as exc:  # reported to the service, which keeps the current model
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    with atomic_path(Path(args.status)) as tmp:
        Path(tmp).write_text(json.dumps(outcome))
    return 0 if outcome["status"] in ("accepted", "refused", "unchanged") else 1


if __name__ == "__main__":
    sys.exit(main())
