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
SPACES = {"svdpp": (mfrec.SVDpp, SPACE, "random"), "biased-mf": (mfrec.BiasedMF, SPACE, "random"),
          # every combination (grid): the noise precision is BayesianMF's one real knob
          "bayesian-mf": (mfrec.BayesianMF, {"factors": [10, 30, 50], "noise_precision": [1.0, 1.25, 1.5, 1.75, 2.0, None]},
                          "grid")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--models", default=",".join(SPACES), help="which models to tune (others keep their entry)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    u1_train, _ = mfrec.load_dataset("ml-100k").official_split("u1")
    small_train, _ = mfrec.split.random_split(mfrec.load_dataset("ml-latest-small").ratings, test_size=0.2, seed=0)
    target = HERE / "tuned_params.json"
    out: dict = json.loads(target.read_text()) if target.exists() else {}
    for split, train in {"ml-100k/u1": u1_train, "ml-latest-small/random-80-20": small_train}.items():
        out.setdefault(split, {})
        for name in args.models.split(","):
            cls, space, method = SPACES[name]
            res = mfrec.tune(cls, train, space, trials=None if method == "grid" else args.trials, validation=0.1,
                             seed=1, method=method, early_stopping=None)
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in res.best_params.items()}
            out[split][name] = params
            print(split, name, f"validation RMSE {res.best_score:.4f}", params, flush=True)
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
