#!/usr/bin/env python
"""Find tuned settings on validation carve-outs of the training data (never the test sets) and
write them to benchmarks/tuned_params.json for run_core.py ("tuned" rows).

    .venv/bin/python benchmarks/tune_best.py [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import mfrec

HERE = Path(__file__).resolve().parent
SPACE = {"factors": [50, 100, 200], "epochs": [40, 60, 80], "learning_rate": ("log", 0.002, 0.015),
         "regularization": ("log", 0.03, 0.2), "learning_rate_decay": [0.95, 0.97, 0.99],
         "bias_regularization": ("log", 0.005, 0.1)}
SPACES = {"svdpp": (mfrec.SVDpp, SPACE), "biased-mf": (mfrec.BiasedMF, SPACE)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=30)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    u1_train, _ = mfrec.load_dataset("ml-100k").official_split("u1")
    small_train, _ = mfrec.split.random_split(mfrec.load_dataset("ml-latest-small").ratings, test_size=0.2, seed=0)
    out: dict = {}
    for split, train in {"ml-100k/u1": u1_train, "ml-latest-small/random-80-20": small_train}.items():
        out[split] = {}
        for name, (cls, space) in SPACES.items():
            res = mfrec.tune(cls, train, space, trials=args.trials, validation=0.1, seed=1, early_stopping=None)
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in res.best_params.items()}
            out[split][name] = params
            print(split, name, f"validation RMSE {res.best_score:.4f}", params, flush=True)
    (HERE / "tuned_params.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
