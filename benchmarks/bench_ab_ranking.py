#!/usr/bin/env python
"""Interleaved A/B in one process: this tree's ImplicitALS CG kernel and batch top-n against the
previous ones (issue 18, RESULTS.md section 11), so a busy machine loads both sides alike.

* fit: ``ImplicitALS`` (k=64, 15 iterations, CG, 2 threads) on synthetic interactions, seconds
  per iteration, with the kernel of ``--old-rev`` (``git show REV:src/mfrec/kernels/als.py``,
  loaded as a separate module) and with this tree's; the final training loss of both is printed
  (they must agree).
* top-n: ``recommend_many(n=20)`` for every user of ml-latest-small positives (ratings >= 4),
  old path (argpartition ``top_n``, BLAS on its default threads) against this tree's (one BLAS
  thread, the parallel Numba ``top_n``); the lists must agree.

    PYTHONPATH=src python benchmarks/bench_ab_ranking.py [--interactions 1000000] [--rounds 4]
        [--old-rev a3fffea] [--out benchmarks/results/ab_ranking.jsonl]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def old_top_n(scores: np.ndarray, n: int):
    """The previous `mfrec.recommend.top_n` (argpartition, stable argsort, gathers)."""
    m, width = scores.shape
    n_eff = min(n, width)
    if n_eff == 0:
        return np.empty((m, 0), dtype=np.int64), np.empty((m, 0), dtype=scores.dtype)
    part = np.argpartition(-scores, n_eff - 1, axis=1)[:, :n_eff] if n_eff < width else np.tile(np.arange(width), (m, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    return np.where(np.isfinite(vals), idx, -1), vals


def load_old_kernel(rev: str, tmp: Path):
    src = subprocess.run(["git", "-C", str(HERE.parent), "show", f"{rev}:src/mfrec/kernels/als.py"],
                         capture_output=True, text=True, check=True).stdout
    name = f"mfrec_old_als_{rev}"
    path = tmp / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return lambda *a: mod.implicit_half_step(*a[:9])  # the old signature: no want_loss / n_threads


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interactions", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--old-rev", default="a3fffea")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "ab_ranking.jsonl"))
    args = p.parse_args(argv)
    import mfrec
    import mfrec.models.implicit as impmod
    import mfrec.models.recommend as recmod

    rows = []
    with tempfile.TemporaryDirectory() as d:
        old_k, new_k = load_old_kernel(args.old_rev, Path(d)), impmod.implicit_half_step
        n = args.interactions
        r = mfrec.synthetic(max(1000, n // 100), max(500, n // 1000), n, seed=42)
        fit = {"old": [], "new": []}
        loss = {}
        for rnd in range(args.rounds + 1):  # round 0 warms (compiles) both and is not counted
            for side in (("old", "new") if rnd % 2 else ("new", "old")):
                impmod.implicit_half_step = old_k if side == "old" else new_k
                m = mfrec.ImplicitALS(factors=64, iterations=15, threads=args.threads, seed=42)
                t0 = time.perf_counter()
                m.fit(r)
                if rnd:
                    fit[side].append((time.perf_counter() - t0) / 15)
                loss[side] = float(m.history_["loss"].iloc[-1])
        impmod.implicit_half_step = new_k
        row = {"bench": "ab-implicit-cg", "interactions": n, "old_rev": args.old_rev, "threads": args.threads,
               "old_s_per_it": round(float(np.median(fit["old"])), 4), "new_s_per_it": round(float(np.median(fit["new"])), 4),
               "old_runs": [round(x, 4) for x in fit["old"]], "new_runs": [round(x, 4) for x in fit["new"]],
               "final_loss": loss}
        rows.append(row)
        print(json.dumps(row), flush=True)

        pos = mfrec.load_dataset("ml-latest-small").ratings
        keep = np.flatnonzero(pos.values >= 4)
        pos = mfrec.Ratings.from_dataframe(pos.subset(keep).to_dataframe()[["user", "item", "rating"]])
        m = mfrec.ImplicitALS(factors=64, iterations=15, threads=args.threads, seed=42).fit(pos)
        real_top_n, real_limits = recmod.top_n, recmod.kernel_threads
        rec = {"old": [], "new": []}
        lists = {}
        for rnd in range(args.rounds * 2 + 1):
            for side in (("old", "new") if rnd % 2 else ("new", "old")):
                if side == "old":
                    recmod.top_n, recmod.kernel_threads = old_top_n, lambda t: contextlib.nullcontext()
                t0 = time.perf_counter()
                out = m.recommend_many(n=20)
                dt = time.perf_counter() - t0
                recmod.top_n, recmod.kernel_threads = real_top_n, real_limits
                if rnd:
                    rec[side].append(dt)
                lists[side] = out
        same = bool((lists["old"]["item"].to_numpy() == lists["new"]["item"].to_numpy()).mean() > 0.999)
        users = pos.n_users
        row = {"bench": "ab-recommend-many", "dataset": "ml-latest-small positives", "users": users,
               "items": pos.n_items, "n": 20, "threads": args.threads,
               "old_users_per_s": round(users / float(np.median(rec["old"])), 1),
               "new_users_per_s": round(users / float(np.median(rec["new"])), 1), "lists_agree": same}
        rows.append(row)
        print(json.dumps(row), flush=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps({"time": stamp, "load_1min": round(os.getloadavg()[0], 2), **row}) + "\n")


if __name__ == "__main__":
    main()
