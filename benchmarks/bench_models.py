#!/usr/bin/env python
"""Time and score mfrec models on a fixed train/test split, the same way peers.py does for peers.

    python benchmarks/bench_models.py --train TRAIN.csv --test TEST.csv \
        --models biased-mf,svdpp,als --repeats 3 --threads 2 [--params '{"als": {"factors": 100}}']

Each model runs in a fresh subprocess: one untimed warm-up fit (it also loads or compiles the
Numba kernels), then ``--repeats`` timed fits (``time.perf_counter`` around ``fit`` only; the
Ratings container is built once outside the timed region, as the peers' Trainset is).
``first_fit_seconds`` is the warm-up fit; with ``--cold-cache`` the child gets an empty
NUMBA_CACHE_DIR, so the warm-up includes the full compile and ``compile_seconds`` =
first fit - median fit. Peak memory: the same VmHWM method as peers.py (see PeakRSS there).
Output: one JSON object per model on stdout.

``--ranking precision@10,ndcg@10,...``: after the timed fits and the peak-memory reading, the
last fitted model is scored with ``mfrec.evaluate(model, test, metrics=..., train=train,
relevance_threshold=--relevance-threshold)``: every test user known in training gets the
model's own ``recommend_many`` top-k with its training items excluded; the values go to
``ranking`` in the JSON line (with ``n_users_ranked``, ``n_users_relevant``), the time to
``ranking_seconds``. ``implicit-als`` (``mfrec.ImplicitALS``, a ranking model) has no rating
predictions: its ``rmse``/``mae`` are null.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {
    "baseline": "Baseline",
    "funk-mf": "FunkMF",
    "biased-mf": "BiasedMF",
    "svdpp": "SVDpp",
    "als": "ALS",
    "bayesian-mf": "BayesianMF",
    "implicit-als": "ImplicitALS",
    "bpr": "BPR",
    "cmf": "CMF",
}


def _ranks_only(model) -> bool:
    """A ranking model (preference scores, no rating error): the public ``kind`` tag."""
    kind = getattr(model, "kind", None)
    return kind == "ranking" if kind is not None else not getattr(model, "_predicts_ratings", True)


def _n_epochs(model) -> int:
    params = model.get_params()
    return int(params["epochs"] if "epochs" in params else params["iterations"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--models", default="biased-mf,svdpp,als")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--params", default="{}", help="JSON: {model: {param: value}}")
    p.add_argument("--label", default="", help="free text stored with each result (e.g. 'tuned')")
    p.add_argument("--cold-cache", action="store_true", help="empty Numba cache: warm-up includes compiling")
    p.add_argument("--ranking", default="", help="comma-separated ranking metrics, e.g. ndcg@10,recall@10")
    p.add_argument("--relevance-threshold", type=float, default=4.0)
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _load(path: str):
    import pandas as pd

    from mfrec import Ratings

    df = pd.read_csv(path, dtype={"user": str, "item": str})
    return Ratings.from_dataframe(df, "user", "item", "rating", source=path)


def run_single(args) -> dict:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from memory import PeakRSS  # the same method as peers.py

    import mfrec

    train, test = _load(args.train), _load(args.test)
    params = json.loads(args.params).get(args.single, {})
    params.setdefault("threads", args.threads)
    cls = getattr(mfrec, MODELS[args.single])
    peak = PeakRSS()
    peak.start()
    t0 = time.perf_counter()
    cls(**params).fit(train)
    first = time.perf_counter() - t0
    times, rmses, maes = [], [], []
    model = None
    for _ in range(args.repeats):
        model = None
        t0 = time.perf_counter()
        model = cls(**params).fit(train)
        times.append(time.perf_counter() - t0)
        if _ranks_only(model):
            continue  # ImplicitALS: preference scores, no rating error
        pred = model.predict(test.raw_users, test.raw_items)
        err = pred - test.values.astype(np.float64)
        rmses.append(float(np.sqrt(np.mean(err**2))))
        maes.append(float(np.mean(np.abs(err))))
    peak_mb = peak.stop_mb()
    n_updates = len(train) * _n_epochs(model)
    median = float(np.median(times))
    extra = {}
    if args.ranking:
        metrics = [m.strip() for m in args.ranking.split(",") if m.strip()]
        t0 = time.perf_counter()
        res = mfrec.evaluate(model, test, metrics=metrics, train=train,
                             relevance_threshold=args.relevance_threshold)
        extra = {"ranking": {k: (float(v) if isinstance(v, float) else v) for k, v in res.items()},
                 "ranking_seconds": time.perf_counter() - t0,
                 "ranking_method": "mfrec.evaluate (recommend_many, training items excluded)",
                 "relevance_threshold": args.relevance_threshold}
    unknown = getattr(model, "unknown_", None) or {}
    row = {
        "library": "mfrec",
        "model": args.single,
        "version": mfrec.__version__,
        "factors": int(model.factors_),
        "epochs_or_iterations": _n_epochs(model),
        "params": model.get_params(),
        "rmse": rmses[-1] if rmses else None,
        "mae": maes[-1] if maes else None,
        "rmse_per_fit": rmses,
        "fit_seconds_median": median,
        "fit_seconds_min": float(min(times)),
        "fit_seconds_max": float(max(times)),
        "fit_seconds_all": times,
        "first_fit_seconds": first,
        "compile_seconds": max(0.0, first - median) if args.cold_cache else None,
        "ratings_per_second": n_updates / median,
        "peak_rss_mb": peak_mb,
        "peak_rss_method": peak.method,
        "n_unknown": int(unknown.get("users", 0) + unknown.get("items", 0)) if unknown else None,
        "n_train": len(train),
        "n_test": len(test),
        "threads": args.threads,
        "label": args.label,
        "repeats": args.repeats,
    }
    row.update(extra)
    return row


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.single:
        print(json.dumps(run_single(args)), flush=True)
        return
    for name in args.models.split(","):
        name = name.strip()
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}; choose from {sorted(MODELS)}")
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        cmd = [sys.executable, __file__, "--single", name, "--train", args.train, "--test", args.test,
               "--repeats", str(args.repeats), "--threads", str(args.threads), "--params", args.params,
               "--label", args.label, "--ranking", args.ranking,
               "--relevance-threshold", str(args.relevance_threshold)] + (["--cold-cache"] if args.cold_cache else [])
        with tempfile.TemporaryDirectory() as cache:
            if args.cold_cache:
                env["NUMBA_CACHE_DIR"] = cache
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(json.dumps({"library": "mfrec", "model": name, "error": out.stderr.strip()[-2000:]}), flush=True)
        else:
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
