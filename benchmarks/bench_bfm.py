#!/usr/bin/env python
"""BayesianFM against myFM (and BayesianMF) on the same splits, features and number of samples.

    PYTHONPATH=src MFREC_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_bfm.py \\
        [--splits ml-100k/u1,ml-latest-small/random-80-20] [--folds] [--iterations 200] \\
        [--burn-in 20] [--peers-python /work/benchenv/bin/python] [--out benchmarks/results/bfm.jsonl]

Per split (the benchmark's splits, written by ``run_core.write_splits``): myFM through
``benchmarks/peers.py`` (models ``myfm``: ids only; ``myfm-implicit``: ids + rated set + rater
set, from the training ratings only; with the ml-100k attribute tables also
``myfm-implicit`` + attributes), then mfrec's ``BayesianFM`` with the same features
(``implicit=False`` / ``True`` / ``+ attributes``) and ``BayesianMF`` (its defaults). Both FMs:
rank ``--factors`` (10), ``--iterations`` sweeps of which the first ``--burn-in`` are not kept.
The attribute tables (ml-100k: user age, gender, occupation; item genres, year) are encoded
once by ``mfrec.AttributeEncoder`` and the same numeric columns go to myFM. Fit times: one
fit each (myFM's median of ``--repeats``), measured in the same run, so their *ratio* is the
figure to read on a busy machine. ``--folds`` adds ml-100k u1-u5 and ml-latest-small 5-fold
(mean and std); ``--no-peers`` runs only BayesianFM with the implicit features. ``--costs`` instead measures, on all of ml-latest-small, BayesianFM's fit
time, fitted-array memory and ``recommend_new`` latency (10 ratings, 9.7k items; the loop of
``bench_recommend.latency``) next to BiasedMF's. Prints a Markdown table and appends JSON lines
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mfrec  # noqa: E402
from run_core import write_splits  # noqa: E402

HERE = Path(__file__).resolve().parent


def attribute_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    ds = mfrec.load_dataset("ml-100k")
    users = ds.users[["age", "gender", "occupation"]]
    items = ds.items[["genres", "year"]].copy()
    items["year"] = items["year"].astype("float64")
    return users, items


def encoded_csv(table: pd.DataFrame, kind: str, path: Path) -> None:
    """The table as AttributeEncoder features (unobserved -> 0), one numeric column each."""
    values, observed = mfrec.AttributeEncoder().fit_transform(table)
    frame = pd.DataFrame(np.where(observed, values, 0.0), columns=[f"f{j}" for j in range(values.shape[1])])
    frame.insert(0, kind, table.index.astype(str))
    frame.to_csv(path, index=False)


def run_myfm(args, train_csv: Path, test_csv: Path, model: str, attrs: tuple[Path, Path] | None,
             seed: int = 0) -> dict:
    cmd = [args.peers_python, str(HERE / "peers.py"), "--train", str(train_csv), "--test", str(test_csv),
           "--models", model, "--seed", str(seed), "--factors", str(args.factors), "--myfm-iter", str(args.iterations),
           "--myfm-burn-in", str(args.burn_in), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if attrs:
        cmd += ["--user-attributes", str(attrs[0]), "--item-attributes", str(attrs[1])]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"model": model, "error": f"exit {proc.returncode}"}


def run_mfrec(model, train, test, **fit_kw) -> dict:
    t0 = time.perf_counter()
    model.fit(train, **fit_kw)
    seconds = time.perf_counter() - t0
    return {"rmse": model.score(test), "fit_seconds": seconds}


def one_split(args, name: str, train_csv: Path, test_csv: Path, attrs) -> list[dict]:
    ids = {"user": str, "item": str}
    tr_df, te_df = pd.read_csv(train_csv, dtype=ids), pd.read_csv(test_csv, dtype=ids)
    if name.startswith("ml-100k"):  # int ids, as the attribute tables
        tr_df[["user", "item"]] = tr_df[["user", "item"]].astype(int)
        te_df[["user", "item"]] = te_df[["user", "item"]].astype(int)
    train = mfrec.Ratings.from_dataframe(tr_df)
    test = mfrec.Ratings.from_dataframe(te_df)
    rows = []
    fm = dict(factors=args.factors, iterations=args.iterations, burn_in=args.burn_in)
    configs = [("ids", "myfm", None, dict(implicit=False)), ("ids+implicit", "myfm-implicit", None, {})]
    if attrs is not None and name.startswith("ml-100k"):
        configs.append(("ids+implicit+attributes", "myfm-implicit", attrs, {}))
    if args.no_peers:  # mfrec's BayesianFM with the implicit features only (fold families)
        configs = [configs[1]]
    if args.features:
        configs = [c for c in configs if c[0] in args.features.split(",")]
    for features, peer, peer_attrs, kw in configs:
        for seed in [int(x) for x in args.seeds.split(",")]:
            m = {}
            if not args.no_peers and args.side in ("both", "myfm"):
                m = run_myfm(args, train_csv, test_csv, peer, peer_attrs[1] if peer_attrs else None, seed)
            fit_kw = {}
            if peer_attrs:
                fit_kw = dict(user_attributes=peer_attrs[0][0], item_attributes=peer_attrs[0][1])
            ours = {}
            if args.side in ("both", "bfm"):
                ours = run_mfrec(mfrec.BayesianFM(**fm, **kw, seed=seed, **args.bfm_kw), train, test, **fit_kw)
            rows.append({"split": name, "features": features, "seed": seed, "myfm_rmse": m.get("rmse"),
                         "myfm_fit_seconds": m.get("fit_seconds_median"), "myfm_version": m.get("version"),
                         "bfm_rmse": ours.get("rmse"), "bfm_fit_seconds": ours.get("fit_seconds"),
                         "bfm_params": args.bfm_kw, "error": m.get("error")})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.no_peers or args.no_bmf or args.side != "both":
        return rows
    bmf = run_mfrec(mfrec.BayesianMF(), train, test)
    rows.append({"split": name, "features": "bayesian-mf (defaults)", "bfm_rmse": bmf["rmse"],
                 "bfm_fit_seconds": bmf["fit_seconds"]})
    return rows


def costs(args) -> list[dict]:
    import warnings

    from bench_recommend import latency

    warnings.simplefilter("ignore")
    ratings = mfrec.load_dataset("ml-latest-small").ratings
    rows = []
    for name, model in (("BiasedMF", mfrec.BiasedMF()), ("BayesianFM", mfrec.BayesianFM())):
        t0 = time.perf_counter()
        model.fit(ratings)
        seconds = time.perf_counter() - t0
        mb = sum(a.nbytes for a in model.get_state().arrays.values()) / 2**20
        lat = latency(model, name, args.requests)
        rows.append({"part": "costs", "model": name, "fit_seconds": seconds, "fitted_arrays_mb": mb,
                     "recommend_new_median_ms": lat["median_ms"], "recommend_new_p99_ms": lat["p99_ms"]})
    print("| model | fit s | fitted arrays MB | recommend_new median / p99 ms |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['fit_seconds']:.2f} | {r['fitted_arrays_mb']:.1f} | "
              f"{r['recommend_new_median_ms']:.2f} / {r['recommend_new_p99_ms']:.2f} |")
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splits", default="ml-100k/u1,ml-latest-small/random-80-20")
    p.add_argument("--folds", action="store_true")
    p.add_argument("--costs", action="store_true")
    p.add_argument("--no-peers", action="store_true", help="BayesianFM (ids + implicit) only, no myFM")
    p.add_argument("--seeds", default="0", help="comma-separated seeds: each fit (both sides) once per seed")
    p.add_argument("--features", default="", help="comma-separated subset of ids,ids+implicit,ids+implicit+attributes")
    p.add_argument("--side", choices=("both", "myfm", "bfm"), default="both",
                   help="run only one side (accuracy only: time ratios need --side both)")
    p.add_argument("--no-bmf", action="store_true", help="skip the BayesianMF row")
    p.add_argument("--bfm", default="", help="extra BayesianFM parameters, e.g. max_draws=180")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--factors", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--burn-in", type=int, default=20)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--peers-python", default="/work/benchenv/bin/python")
    p.add_argument("--out", default=str(HERE / "results" / "bfm.jsonl"))
    args = p.parse_args()
    args.bfm_kw = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.bfm.split(",") if kv}
    if args.costs:
        rows = costs(args)
        with open(args.out, "a") as fh:
            for row in rows:
                fh.write(json.dumps(dict(row, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))) + "\n")
        return 0
    names = [s for s in args.splits.split(",") if s]
    if args.folds:
        names += [f"ml-100k/u{i}" for i in range(2, 6)] + [f"ml-latest-small/5-fold/{i}" for i in range(1, 6)]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_bfm_") as tmp:
        folder = Path(tmp)
        splits = write_splits(folder)
        users, items = attribute_tables()
        encoded_csv(users, "user", folder / "users.csv")
        encoded_csv(items, "item", folder / "items.csv")
        attrs = ((users, items), (folder / "users.csv", folder / "items.csv"))
        for name in names:
            rows += one_split(args, name, *splits[name], attrs)
    for family in ("ml-100k/u", "ml-latest-small/5-fold/", "ml-latest-small/random"):
        for features in ("ids", "ids+implicit", "ids+implicit+attributes"):
            for side in ("bfm", "myfm"):
                vals = [r[f"{side}_rmse"] for r in rows if r["split"].startswith(family) and r["features"] == features
                        and r.get(f"{side}_rmse") is not None]
                if len(vals) > 1:
                    print(f"{family}* {features} {side}: mean {np.mean(vals):.4f} std {np.std(vals):.4f} "
                          f"over {len(vals)} fits", file=sys.stderr)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "a") as fh:
        for row in rows:
            fh.write(json.dumps(dict(row, date=stamp, iterations=args.iterations, burn_in=args.burn_in,
                                     factors=args.factors)) + "\n")
    print("| split | features | seed | BayesianFM RMSE | myFM RMSE | fit time BayesianFM / myFM |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = (f"{r['bfm_fit_seconds'] / r['myfm_fit_seconds']:.2f} ({r['bfm_fit_seconds']:.1f} s / "
                 f"{r['myfm_fit_seconds']:.1f} s)" if r.get("myfm_fit_seconds") and r.get("bfm_fit_seconds")
                 else "-")
        myfm = f"{r['myfm_rmse']:.4f}" if r.get("myfm_rmse") else "-"
        bfm = f"{r['bfm_rmse']:.4f}" if r.get("bfm_rmse") else "-"
        print(f"| {r['split']} | {r['features']} | {r.get('seed', 0)} | {bfm} | {myfm} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
