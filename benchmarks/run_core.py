#!/usr/bin/env python
"""The core accuracy/speed benchmark: mfrec models and peers on the same splits, in one run.

    .venv/bin/python benchmarks/run_core.py --peer-python benchmarks/.env/bin/python

Splits, written once to a temporary folder as CSV (``user,item,rating``) and read by both sides:

* primary: ml-100k ``u1.base``/``u1.test`` (official) and ml-latest-small random 80/20
  (``mfrec.split.random_split(..., test_size=0.2, seed=0)``);
* fold families: ml-100k ``u1`` .. ``u5`` (official) and ml-latest-small 5-fold
  (``mfrec.split.kfold(ratings, k=5, seed=0)``).

Primary splits (``section: core``): Surprise SVD (and SVD++ on u1 only), cmfrec ALS with
``--tune-lambda``, mfrec baseline, funk-mf, biased-mf, svdpp, als and implicit-als with the
default parameters, plus the tuned rows of ``--tuned`` (``tuned_params.json``); ``--repeats``
timed fits (default 3) after one warm-up fit. Ranking metrics (``RANKING``, relevance = test
rating >= 4.0) on the same splits:

* mfrec: ``mfrec.evaluate(model, test, metrics=RANKING, train=train)`` inside
  ``bench_models.py --ranking`` (the model's own ``recommend_many``, training items excluded);
* peers: ``peers.py --topn-out`` writes each test user's top-10 over the training items the
  user did not rate in training, computed with numpy from the fitted parameters (see the
  "Top-n lists" section of peers.py); this script then scores those CSV lists with
  ``mfrec.metrics.ranking_metrics(recs, test, RANKING, train=train, relevance_threshold=4.0,
  catalog_size=<training items>)``, with ``test`` restricted to the users present in training.
  That is what ``evaluate`` does for mfrec (it ranks only users known in training, takes novelty
  and arp popularity from ``train`` and divides coverage by the model's item count, which is the
  number of training items here because the model is fit on the training CSV), so both sides go
  through the same metric code on the same users.

Head to head (``section: speed``): on each primary split, ``--speed-rounds`` (default 5) rounds
that each run Surprise SVD and mfrec BiasedMF (k=100, 20 epochs; ``--repeats`` timed fits after a
warm-up, each in a fresh process), the two alternating which goes first. This VM's speed drifts
between runs by up to 2x for memory-bound code (other tenants on the host), so one block of
fits per side can land in different phases; the rounds spread both sides over the same phases,
and the rendered ratio is the median of all of Surprise's fits over the median of all of mfrec's
(the per-round ratios are shown too).

Fold families (``section: folds``): the folds other than u1 run with ``--fold-repeats`` (default
1: one warm-up + one timed fit) for Surprise SVD, cmfrec ALS and mfrec baseline, biased-mf,
svdpp, als. cmfrec's lambda is tuned (``--tune-lambda``) on the family's first fold only and
reused with ``--lambda`` on the others (for ml-100k the first fold is the primary u1 run). The
ml-100k family reuses the u1 rows of the primary run (median of ``--repeats`` fits).

Finally the first-call compile cost is measured once with an empty Numba cache on u1.

Peers run under ``--peer-python`` (scikit-surprise, cmfrec); mfrec under this interpreter.
Results are appended as JSON lines to ``benchmarks/results/core.jsonl`` (each with ``run``,
``section``, ``split``, the machine, versions and the command; one ``section: meta`` line holds
the wall time of the whole run) and rendered into ``benchmarks/RESULTS.md`` by
``render_results.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RANKING = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "novelty@10", "arp@10"]
RELEVANCE = 4.0
PRIMARY = ("ml-100k/u1", "ml-latest-small/random-80-20")
FAMILIES = {
    "ml-100k/u1-u5": [f"ml-100k/u{i}" for i in range(1, 6)],
    "ml-latest-small/5-fold": [f"ml-latest-small/5-fold/{i}" for i in range(1, 6)],
}
FOLD_PEERS = "surprise-svd,cmfrec-als"
FOLD_MODELS = "baseline,biased-mf,svdpp,als,bayesian-mf"


def write_splits(folder: Path) -> dict[str, tuple[Path, Path]]:
    import mfrec

    pieces = {}
    ds = mfrec.load_dataset("ml-100k")
    for i in range(1, 6):
        pieces[f"ml-100k/u{i}"] = ds.official_split(f"u{i}")
    small = mfrec.load_dataset("ml-latest-small").ratings
    pieces["ml-latest-small/random-80-20"] = mfrec.split.random_split(small, test_size=0.2, seed=0)
    for i, (a, b) in enumerate(mfrec.split.kfold(small, k=5, seed=0), start=1):
        pieces[f"ml-latest-small/5-fold/{i}"] = (a, b)
    out = {}
    for name, (a, b) in pieces.items():
        stem = name.replace("/", "_")
        pa, pb = folder / f"{stem}_train.csv", folder / f"{stem}_test.csv"
        a.to_dataframe()[["user", "item", "rating"]].to_csv(pa, index=False)
        b.to_dataframe()[["user", "item", "rating"]].to_csv(pb, index=False)
        out[name] = (pa, pb)
    return out


def run(cmd: list[str], meta: dict) -> list[dict]:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            row.update(meta)
            rows.append(row)
            if "error" in row:
                print(f"  ERROR {row.get('model')}: {str(row['error'])[-500:]}", file=sys.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    print(f"  ({time.time() - t0:.0f} s, {len(rows)} results)", file=sys.stderr, flush=True)
    return rows


def score_peer_topn(row: dict, train_csv: Path, test_csv: Path) -> None:
    """Score a peer's top-n CSV with mfrec.metrics.ranking_metrics (see the module docstring);
    adds ``ranking`` to ``row`` in place."""
    import pandas as pd

    from mfrec.evaluation.metrics import ranking_metrics

    ids = {"user": str, "item": str}
    train = pd.read_csv(train_csv, dtype=ids)
    test = pd.read_csv(test_csv, dtype=ids)
    recs = pd.read_csv(row["topn_file"], dtype=ids)
    known = test["user"].isin(set(train["user"]))
    res = ranking_metrics(recs, test[known], RANKING, relevance_threshold=RELEVANCE, train=train,
                          catalog_size=int(train["item"].nunique()))
    res["n_test"] = int(len(test))
    res["n_users_ranked"] = int(recs["user"].nunique())
    res["n_unknown_users"] = int(test.loc[~known, "user"].nunique())
    row["ranking"] = res
    row["ranking_method"] = ("peers.py --topn-out lists (numpy, fitted parameters, training items excluded) "
                             "scored by mfrec.metrics.ranking_metrics")
    row["relevance_threshold"] = RELEVANCE
    del row["topn_file"]  # a temporary file


def machine() -> dict:
    import numba
    import numpy

    import mfrec

    cpu, mem = "unknown", None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__, "mfrec": mfrec.__version__,
            "platform": platform.platform()}


def peer_versions(peer_python: str) -> dict:
    code = ("import json, platform; from importlib.metadata import version as v; "
            "print(json.dumps({'python': platform.python_version(), 'numpy': v('numpy'), "
            "'scikit-surprise': v('scikit-surprise'), 'cmfrec': v('cmfrec')}))")
    try:
        out = subprocess.run([peer_python, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        return {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", str(HERE / ".env/bin/python")))
    p.add_argument("--repeats", type=int, default=3, help="timed fits on the primary splits")
    p.add_argument("--fold-repeats", type=int, default=1, help="timed fits on the other folds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speed-rounds", type=int, default=5,
                   help="alternating rounds of the Surprise SVD / BiasedMF head-to-head timing")
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--skip-folds", action="store_true")
    p.add_argument("--tuned", default=str(HERE / "tuned_params.json"),
                   help="JSON {split: {model: params}} of tuned settings, run with label 'tuned'")
    args = p.parse_args()
    t_start = time.time()
    RESULTS.mkdir(exist_ok=True)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    driver = " ".join([Path(sys.executable).name] + sys.argv)
    meta_base = {"run": run_id, "machine": machine(), "command": os.environ.get("BENCH_COMMAND") or driver,
                 "driver_command": driver}
    if not args.skip_peers:
        meta_base["peer_env"] = peer_versions(args.peer_python)
    rows: list[dict] = []
    tuned = json.loads(Path(args.tuned).read_text()) if Path(args.tuned).exists() else {}
    family_of = {s: (f, i) for f, splits in FAMILIES.items() for i, s in enumerate(splits, start=1)}
    ranking = ",".join(RANKING)
    with tempfile.TemporaryDirectory() as tmp:
        splits = write_splits(Path(tmp))
        first_lambda: dict[str, float] = {}

        def fold_meta(split: str, section: str) -> dict:
            meta = dict(meta_base, split=split, section=section)
            if split in family_of:
                meta["family"], meta["fold"] = family_of[split]
            return meta

        # ---- primary splits: all models, repeats, ranking metrics
        for split in PRIMARY:
            train, test = splits[split]
            meta = fold_meta(split, "core")
            common = ["--train", str(train), "--test", str(test), "--repeats", str(args.repeats),
                      "--threads", str(args.threads)]
            if not args.skip_peers:
                peers = "surprise-svd,surprise-svdpp,cmfrec-als" if split.startswith("ml-100k") else FOLD_PEERS
                topn = Path(tmp) / f"{split.replace('/', '_')}_topn_{{model}}.csv"
                prow = run([args.peer_python, str(HERE / "peers.py"), "--models", peers, "--factors", "100",
                            "--epochs", "20", "--tune-lambda", "--topn-out", str(topn), "--topn", "10"] + common, meta)
                for r in prow:
                    if "topn_file" in r:
                        score_peer_topn(r, train, test)
                    if r.get("model") == "cmfrec-als" and "error" not in r and "family" in meta:
                        first_lambda[meta["family"]] = r["params"]["lambda_"]
                rows += prow
            rows += run([sys.executable, str(HERE / "bench_models.py"), "--models",
                         "baseline,funk-mf,biased-mf,svdpp,als,bayesian-mf,implicit-als", "--label", "default",
                         "--ranking", ranking] + common, meta)
            if split in tuned:
                rows += run([sys.executable, str(HERE / "bench_models.py"), "--models", ",".join(tuned[split]),
                             "--params", json.dumps(tuned[split]), "--label", "tuned", "--ranking", ranking]
                            + common, meta)

        # ---- head to head: Surprise SVD and mfrec BiasedMF (k=100, 20 epochs) in alternating rounds
        if not args.skip_peers:
            for split in PRIMARY:
                train, test = splits[split]
                common = ["--train", str(train), "--test", str(test), "--repeats", str(args.repeats),
                          "--threads", str(args.threads)]
                peer = [args.peer_python, str(HERE / "peers.py"), "--models", "surprise-svd", "--factors", "100",
                        "--epochs", "20"] + common
                ours = [sys.executable, str(HERE / "bench_models.py"), "--models", "biased-mf", "--label",
                        "default"] + common
                for rnd in range(1, args.speed_rounds + 1):
                    meta = dict(fold_meta(split, "speed"), round=rnd)
                    for cmd in ([peer, ours] if rnd % 2 else [ours, peer]):
                        rows += run(cmd, meta)

        # ---- the other folds of each family: fewer models, one timed fit
        if not args.skip_folds:
            for family, fsplits in FAMILIES.items():
                for split in fsplits:
                    if split in PRIMARY:
                        continue
                    train, test = splits[split]
                    meta = fold_meta(split, "folds")
                    common = ["--train", str(train), "--test", str(test), "--repeats", str(args.fold_repeats),
                              "--threads", str(args.threads)]
                    if not args.skip_peers:
                        lam = (["--lambda", repr(first_lambda[family])] if family in first_lambda
                               else ["--tune-lambda"])
                        prow = run([args.peer_python, str(HERE / "peers.py"), "--models", FOLD_PEERS,
                                    "--factors", "100", "--epochs", "20"] + lam + common, meta)
                        for r in prow:
                            if r.get("model") == "cmfrec-als" and "error" not in r and family not in first_lambda:
                                first_lambda[family] = r["params"]["lambda_"]
                        rows += prow
                    rows += run([sys.executable, str(HERE / "bench_models.py"), "--models", FOLD_MODELS,
                                 "--label", "default"] + common, meta)

        # ---- first-call compile cost, measured once with an empty Numba cache
        train, test = splits["ml-100k/u1"]
        rows += run([sys.executable, str(HERE / "bench_models.py"), "--models", "biased-mf,svdpp,als",
                     "--cold-cache", "--label", "cold-cache", "--train", str(train), "--test", str(test),
                     "--repeats", "1", "--threads", str(args.threads)],
                    dict(meta_base, split="ml-100k/u1", section="cold-cache"))
    wall = time.time() - t_start
    rows.append(dict(meta_base, section="meta", wall_seconds=wall, repeats=args.repeats,
                     fold_repeats=args.fold_repeats, threads=args.threads, ranking_metrics=RANKING,
                     relevance_threshold=RELEVANCE, cmfrec_lambda_per_family=first_lambda))
    with open(RESULTS / "core.jsonl", "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    n_err = sum("error" in r for r in rows)
    print(f"wrote {len(rows)} rows ({n_err} errors) to {RESULTS / 'core.jsonl'} (run {run_id}, {wall:.0f} s)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
