#!/usr/bin/env python
"""Before/after record for a refactor of the model internals (issue 17): every model's test RMSE,
ranking metrics and fit time on the primary splits, with the defaults, in one run.

    MFREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_contract.py --label before
    ... (change the code) ...
    MFREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_contract.py --label after

Each model goes through ``bench_models.py`` (a fresh process per model, one warm-up fit, then
``--repeats`` timed fits; ranking metrics by ``mfrec.evaluate`` with training items excluded).
Rows are appended to ``benchmarks/results/contract.jsonl`` with the label, the git commit and the
load average, so two labels compare like with like only when both ran on a quiet machine.
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
MODELS = "baseline,funk-mf,biased-mf,svdpp,als,bayesian-mf,implicit-als,bpr,cmf"
SPLITS = ("ml-100k/u1", "ml-latest-small/random-80-20")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", required=True)
    p.add_argument("--models", default=MODELS)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "contract.jsonl"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from run_core import write_splits

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip())
    run = time.strftime("%Y-%m-%dT%H:%M:%S")
    with tempfile.TemporaryDirectory() as tmp, open(args.out, "a") as out:
        splits = write_splits(Path(tmp))
        for split in SPLITS:
            train, test = splits[split]
            load = os.getloadavg()[0]
            res = subprocess.run([sys.executable, str(HERE / "bench_models.py"), "--train", str(train), "--test",
                                  str(test), "--models", args.models, "--repeats", str(args.repeats),
                                  "--threads", str(args.threads), "--ranking", "precision@10,ndcg@10",
                                  "--label", args.label], capture_output=True, text=True, check=True)
            for line in res.stdout.strip().splitlines():
                row = json.loads(line)
                row.update(run=run, split=split, label=args.label, commit=commit + ("+dirty" if dirty else ""),
                           load_before=load, load_after=os.getloadavg()[0])
                out.write(json.dumps(row) + "\n")
                out.flush()
                shown = {k: row.get(k) for k in ("model", "rmse", "fit_seconds_median")}
                shown["ndcg@10"] = (row.get("ranking") or {}).get("ndcg@10")
                print(split, shown, flush=True)


if __name__ == "__main__":
    main()
