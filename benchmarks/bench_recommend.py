#!/usr/bin/env python
"""Recommendation benchmarks on ml-latest-small: fold-in quality, latency, batch throughput.

    .venv/bin/python benchmarks/bench_recommend.py [--requests 2000] [--threads 2]

1. Fold-in quality: hold out 20% of users entirely (``holdout_users``, seed 0). Each held-out
   user's ratings are halved at random (seed 0): half A is "what the guest rated", half B is
   scored. Fold-in: train on the other 80% of users, fold each held-out user in from half A
   (``fold_in``), RMSE on half B. Trained: train on the 80% plus every half A (so the users are
   in the model), RMSE on the same half B.
2. Latency of ``recommend_new`` for a 10-rating guest (random items and ratings, seeded) at
   k=100 over all ml-latest-small items: median and p99 over ``--requests`` in-process calls
   after 50 warm-up calls.
3. ``recommend_many`` for all users (n=10): users per second, median of 3.
Results: JSON lines appended to benchmarks/results/recommend.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def fold_in_quality(ratings, models) -> list[dict]:
    import mfrec

    train80, held = mfrec.split.holdout_users(ratings, fraction=0.2, seed=0)
    rng = np.random.default_rng(0)
    coin = rng.random(len(held)) < 0.5
    half_a, half_b = held.subset(coin), held.subset(~coin)
    keep = np.isin(half_b.user_indices, np.unique(half_a.user_indices))
    half_b = half_b.subset(keep)
    train_plus = mfrec.Ratings(np.concatenate([train80.user_indices, half_a.user_indices]),
                               np.concatenate([train80.item_indices, half_a.item_indices]),
                               np.concatenate([train80.values, half_a.values]), ratings.user_map, ratings.item_map)
    truth = half_b.values.astype(np.float64)
    rows = []
    a_df = half_a.to_dataframe()
    b_df = half_b.to_dataframe()
    for name, make in models.items():
        folded = make().fit(train80)
        preds = np.empty(len(b_df))
        for user, group in b_df.groupby("user", sort=False):
            fold = folded.fold_in(a_df.loc[a_df["user"] == user, ["item", "rating"]].reset_index(drop=True))
            items = folded.item_map_.lookup(group["item"].to_numpy())
            known = items >= 0
            p = np.full(len(group), folded.global_mean_ + fold.bias, dtype=np.float64)
            p[known] += folded.item_bias_[items[known]] + folded.item_factors_[items[known]] @ fold.factors
            lo, hi = folded.rating_scale_
            preds[group.index.to_numpy()] = np.clip(p, lo, hi)
        trained = make().fit(train_plus)
        rows.append({
            "part": "fold_in_quality", "model": name,
            "heldout_users": int(len(np.unique(half_b.user_indices))), "heldout_test_ratings": len(half_b),
            "rmse_fold_in": float(np.sqrt(np.mean((preds - truth) ** 2))),
            "rmse_trained": trained.score(half_b),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def latency(model, name: str, requests: int) -> dict:
    rng = np.random.default_rng(0)
    items = model.item_map_.ids
    guests = [{items[j]: float(rng.integers(1, 11)) / 2 for j in rng.choice(len(items), 10, replace=False)}
              for _ in range(requests + 50)]
    times = []
    for k, guest in enumerate(guests):
        t0 = time.perf_counter()
        model.recommend_new(guest, n=10)
        if k >= 50:
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    row = {"part": "recommend_new_latency", "model": name, "factors": model.factors_, "items": len(items),
           "requests": requests, "median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
           "max_ms": float(ms.max())}
    print(json.dumps(row), flush=True)
    return row


def batch(model, name: str) -> dict:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.recommend_many(n=10)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    row = {"part": "recommend_many", "model": name, "users": model.user_factors_.shape[0], "seconds_median": med,
           "users_per_second": model.user_factors_.shape[0] / med}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    import mfrec

    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    ds = mfrec.load_dataset("ml-latest-small")
    t = args.threads
    rows = fold_in_quality(ds.ratings, {
        "BiasedMF": lambda: mfrec.BiasedMF(threads=t),
        "ALS": lambda: mfrec.ALS(threads=t),
        "SVDpp": lambda: mfrec.SVDpp(threads=t),
    })
    for name, model in {"BiasedMF": mfrec.BiasedMF(factors=100, threads=t),
                        "ImplicitALS": mfrec.ImplicitALS(factors=100, threads=t)}.items():
        model.fit(ds.ratings)
        rows.append(latency(model, name, args.requests))
        rows.append(batch(model, name))
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "recommend.jsonl", "a") as fh:
        for row in rows:
            fh.write(json.dumps(dict(row, run=run_id, threads=t)) + "\n")


if __name__ == "__main__":
    main()
