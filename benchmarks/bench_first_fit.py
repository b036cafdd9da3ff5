#!/usr/bin/env python
"""First-call cost per model family (issue 18, section 4): cold and warm first fit.

For each family a fresh Python process imports mfrec and fits a small synthetic set (2,000
ratings) then makes one ``recommend_many`` call; *cold* runs with an empty ``NUMBA_CACHE_DIR``
(a new temporary directory: every kernel the fit touches compiles), *warm* is a second fresh
process on the cache the cold one left. Both include ``import mfrec``; the import alone is
measured too. On a busy machine the cold figures stretch with the load (compilation is
single-threaded CPU work); record the 1-minute load beside them.

    PYTHONPATH=src python benchmarks/bench_first_fit.py [--families BiasedMF,ImplicitALS]
        [--out benchmarks/results/first_fit.jsonl]
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
FAMILIES = ("Baseline", "FunkMF", "BiasedMF", "SVDpp", "ALS", "ImplicitALS", "BPR", "BayesianMF", "CMF")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import mfrec
t1 = time.perf_counter()
r = mfrec.synthetic(200, 100, 2000, seed=1)
model = getattr(mfrec, sys.argv[1])(seed=1, threads=2)
t2 = time.perf_counter()
model.fit(r)
t3 = time.perf_counter()
model.recommend_many(n=10)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "fit_s": t3 - t2, "recommend_many_s": t4 - t3}))
"""


def run(family: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, family], env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    return {k: round(v, 3) for k, v in res.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--out", default=str(HERE / "results" / "first_fit.jsonl"))
    args = p.parse_args(argv)
    rows = []
    for family in [f for f in args.families.split(",") if f]:
        with tempfile.TemporaryDirectory() as cache:
            load = round(os.getloadavg()[0], 2)
            cold = run(family, cache)
            warm = run(family, cache)
        row = {"bench": "first-fit", "family": family, "load_1min": load, "cold": cold, "warm": warm}
        rows.append(row)
        print(json.dumps(row), flush=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps({"time": stamp, **row}) + "\n")


if __name__ == "__main__":
    main()
