#!/usr/bin/env python
"""Scale and throughput on synthetic data (mfrec's own generator).

    .venv/bin/python benchmarks/bench_scale.py throughput   # SGD rating-updates/s, 10M ratings, k=64/128
    .venv/bin/python benchmarks/bench_scale.py scale        # BiasedMF and ALS, 10 epochs on 25M ratings
    .venv/bin/python benchmarks/bench_scale.py recommend    # recommend_many for all 162k users (25M set)

Each case runs in its own subprocess so peak memory (VmHWM, reset after the data is generated;
see benchmarks/memory.py) belongs to that case alone. Results are appended as JSON lines to
benchmarks/results/scale.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = {
    "10m": dict(n_users=100_000, n_items=20_000, n_ratings=10_000_000),
    "25m": dict(n_users=162_000, n_items=59_000, n_ratings=25_000_000),  # ml-25m shape
}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(case: dict) -> dict:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from memory import PeakRSS

    import mfrec

    t0 = time.perf_counter()
    ratings = mfrec.synthetic(**SHAPES[case["shape"]], factors=10, seed=0)
    gen_seconds = time.perf_counter() - t0
    data_mb = _rss_mb()
    # compile (or load from cache) the kernels on tiny data, outside the measurement
    tiny = mfrec.synthetic(200, 100, 2000, seed=1)
    cls = getattr(mfrec, case["model"])
    params = dict(case.get("params", {}))
    cls(**dict(params, **{cls.epochs_param: 1})).fit(tiny)
    peak = PeakRSS()
    peak.start()
    out = {"case": case, "n_ratings": len(ratings), "generate_seconds": gen_seconds, "data_rss_mb": data_mb}
    t0 = time.perf_counter()
    model = cls(**params).fit(ratings)
    out["fit_seconds"] = time.perf_counter() - t0
    h = model.history_
    out["epoch_seconds"] = h["seconds"].tolist()
    out["epoch_seconds_median"] = float(np.median(h["seconds"]))
    out["updates_per_second"] = len(ratings) / out["epoch_seconds_median"]
    out["train_rmse_last"] = float(h["train_rmse"].iloc[-1])
    if case.get("recommend"):
        t0 = time.perf_counter()
        recs = model.recommend_many(n=10)
        out["recommend_many_seconds"] = time.perf_counter() - t0
        out["recommend_many_users_per_second"] = model.user_factors_.shape[0] / out["recommend_many_seconds"]
        out["recommend_rows"] = len(recs)
    out["peak_rss_mb_above_data"] = peak.stop_mb()
    out["peak_rss_method"] = peak.method
    out["total_rss_mb"] = _rss_mb()
    return out


CASES = {
    "throughput": [
        {"shape": "10m", "model": "BiasedMF", "params": {"factors": k, "epochs": 5, "threads": t}}
        for k in (64, 128) for t in (1, 2)
    ],
    "scale": [
        {"shape": "25m", "model": "BiasedMF", "params": {"factors": 100, "epochs": 10, "threads": 2}},
        {"shape": "25m", "model": "ALS", "params": {"factors": 100, "iterations": 10, "threads": 2}},
    ],
    "recommend": [
        {"shape": "25m", "model": "BiasedMF", "params": {"factors": 64, "epochs": 1, "threads": 2}, "recommend": True},
    ],
}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--single":
        print(json.dumps(run_case(json.loads(sys.argv[2]))), flush=True)
        return
    suites = sys.argv[1:] or ["throughput", "scale"]
    (HERE / "results").mkdir(exist_ok=True)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    for suite in suites:
        for case in CASES[suite]:
            print(f"+ {suite}: {case}", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--single", json.dumps(case)], capture_output=True, text=True,
                                  env=dict(os.environ))
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row.update(run=run_id, suite=suite, command=" ".join([Path(sys.executable).name] + sys.argv))
            print(json.dumps(row), flush=True)
            with open(HERE / "results" / "scale.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
