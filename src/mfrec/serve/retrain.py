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

A lock file keeps two retrains (from different workers) from running at once. The outcome is
written as JSON to ``--status``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

POINTER = "current.json"


def load_training(spec: str):
    """Training ratings from a dataset name (``ml-latest-small``) or a ratings file (CSV/TSV/Parquet)."""
    from mfrec.data.datasets import DATASETS, load_dataset
    from mfrec.data.ratings import Ratings

    if spec in DATASETS:
        return load_dataset(spec, progress=False).ratings
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"training data {spec!r} is neither a dataset name ({', '.join(DATASETS)}) nor a file")
    if path.suffix in (".parquet", ".pq"):
        return Ratings.read_parquet(path)
    sep = "\t" if path.suffix in (".tsv", ".tab") else ","
    return Ratings.read_csv(path, sep=sep)


def _as_kind(values: np.ndarray, kind: str) -> np.ndarray:
    """Text ids as int64 when ``kind`` is "i", else as str objects."""
    if kind == "i":
        return values.astype(np.int64)
    return values.astype(str).astype(object)


def _int_like(values: pd.Series) -> bool:
    return bool(values.astype(str).str.fullmatch(r"-?\d+").all())


def merge_ratings(train, stored: pd.DataFrame, deletions: pd.DataFrame, scale: tuple[float, float]):
    """``train`` overlaid by the store (a Ratings set on the training scale): returns (merged
    Ratings, train DataFrame with the same id types, the shared id maps). Users stay ints when
    every id is."""
    from mfrec.data.idmap import IdMap

    tdf = train.to_dataframe()[["user", "item", "rating"]]
    user_int = tdf["user"].dtype.kind in "iu" and _int_like(stored["user"]) and _int_like(deletions["user"])
    item_int = tdf["item"].dtype.kind in "iu"
    ukind, ikind = ("i" if user_int else "s"), ("i" if item_int else "s")
    tdf = tdf.assign(user=_as_kind(tdf["user"].to_numpy(), ukind), item=_as_kind(tdf["item"].to_numpy(), ikind))
    sdf = pd.DataFrame({"user": _as_kind(stored["user"].to_numpy(), ukind),
                        "item": _as_kind(stored["item"].to_numpy(), ikind),
                        "rating": stored["rating"].to_numpy(dtype=np.float64)})
    ddf = pd.DataFrame({"user": _as_kind(deletions["user"].to_numpy(), ukind),
                        "item": _as_kind(deletions["item"].to_numpy(), ikind)})
    drop = pd.concat([sdf[["user", "item"]], ddf], ignore_index=True)
    key = pd.MultiIndex.from_frame(tdf[["user", "item"]])
    keep = ~key.isin(pd.MultiIndex.from_frame(drop)) if len(drop) else np.ones(len(tdf), bool)
    merged = pd.concat([tdf[keep], sdf], ignore_index=True)
    # one pair of id maps for every set fitted here (the union of all ids): the reference and the
    # candidate must differ only by the data, not by the rows of their factor matrices
    maps = (IdMap.factorize(pd.concat([tdf["user"], sdf["user"]], ignore_index=True).to_numpy())[0],
            IdMap.factorize(pd.concat([tdf["item"], sdf["item"]], ignore_index=True).to_numpy())[0])
    ratings = build(merged, scale, maps, "training data + stored ratings")
    return ratings, tdf, maps


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
            holdout: float = 0.1, tolerance: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """Run one retrain (see the module docstring); returns the outcome (also for refusals)."""
    from mfrec.persist import load_model
    from mfrec.serve.store import open_store
    from mfrec.split import random_split

    t0 = time.time()
    state_dir = Path(state_dir)
    pointer = read_pointer(state_dir)
    current_path = Path(pointer["path"]) if pointer else Path(model_path)
    version = int(pointer["version"]) if pointer else 0
    current = load_model(current_path)
    train = load_training(train_spec)
    with open_store(db_url) as store:
        stored, deletions = store.current(), store.deletions()
    scale = tuple(current.rating_scale_)
    merged, tdf, maps = merge_ratings(train, stored, deletions, scale)
    base = build(tdf, scale, maps, "training data")
    _, test = random_split(base, test_size=holdout, seed=seed)
    hold = pd.MultiIndex.from_frame(test.to_dataframe()[["user", "item"]])
    fit_base = build(tdf[~pd.MultiIndex.from_frame(tdf[["user", "item"]]).isin(hold)], scale, maps, "training data")
    mdf = merged.to_dataframe()[["user", "item", "rating"]]
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
        "holdout_ratings": len(test), "train_ratings": len(base), "stored_ratings": int(len(stored)),
        "merged_ratings": len(merged), "from_version": version,
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
                                  "metric": metric, "holdout": cand_score, "reference": ref_score})
        outcome.update(version=new_version, path=str(out))
    outcome["seconds"] = time.time() - t0
    return outcome


def read_pointer(state_dir: str | Path) -> dict[str, Any] | None:
    """The current-model pointer of a state folder, or None when there is none yet."""
    path = Path(state_dir) / POINTER
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


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
                              tolerance=args.tolerance, seed=args.seed)
        except Exception as exc:  # reported to the service, which keeps the current model
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    with atomic_path(Path(args.status)) as tmp:
        Path(tmp).write_text(json.dumps(outcome))
    return 0 if outcome["status"] in ("accepted", "refused") else 1


if __name__ == "__main__":
    sys.exit(main())
