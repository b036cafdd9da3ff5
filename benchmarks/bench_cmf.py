#!/usr/bin/env python
"""CMF with side information on ml-100k: warm accuracy and speed, cold start, few-ratings curve.

    .venv/bin/python benchmarks/bench_cmf.py [--threads 2] [--repeats 3] [--peer-python PY] [--only-cold]
                                             [--cmfrec-lambda L | --no-peers]

Attributes: users ``age`` (standardized), ``gender``, ``occupation`` (one-hot); items ``genres``
(multi-hot), ``year`` (standardized; missing for one item). mfrec encodes them with
``mfrec.data.attributes.AttributeEncoder``; cmfrec gets the same encoded matrices as numeric CSVs
(NaN = unobserved) through ``benchmarks/peers.py --models cmfrec-cmf``.

1. Warm (ml-100k u1.base / u1.test): ``CMF()`` (defaults, with attributes), ``CMF()`` without
   attributes, ``ALS()`` defaults, and cmfrec ``CMF(method="als", k=50)`` with the same attributes
   and lambda tuned by peers.py (``--tune-lambda``: seeded 10% carve-out of u1.base) unless
   ``--cmfrec-lambda`` is given. RMSE on u1.test; fit seconds: one untimed warm-up fit, then the
   median of ``--repeats`` timed fits (mfrec in this process; cmfrec in a fresh subprocess).
2. Cold users: all ml-100k ratings, ``mfrec.split.holdout_users(ratings, 0.2, seed)``. Models
   are trained on the 80% users with the attributes of those users only (and of the items in
   training); every held-out user's ratings are predicted from their attributes alone
   (``CMF.predict_new(items, user_attributes=...)``; the default ``user_cold_start="regression"``
   and the attribute block alone, ``"collective"``). References: the global mean, ``Baseline`` on
   the 80% users (an unknown user gets ``mu + b_i``), and cmfrec's ``predict_cold_multiple`` with
   the attributes. ``--only-cold``: just this comparison over ``--cold-seeds`` seeds (markdown on
   stdout), with the u1 warm RMSE of both modes.
3. Few ratings: the same held-out users, each user's ratings in a random order (seed); the first
   n in (0, 1, 3, 5, 10) are folded in (``predict_new(items, ratings=..., user_attributes=...)``)
   and RMSE is measured on the ratings after the first 10 (the same evaluation set for every n),
   with and without the attributes; ALS fold-in (ratings only) for reference.
4. Cold items: 20% of the items in u1.base (seed) are removed from training; their u1.base ratings
   are predicted from the item attributes alone (``CMF.predict_new_item``) vs ``Baseline``
   (``mu + b_u``).

Output: JSON lines on stdout and appended to ``benchmarks/results/cmf.jsonl``; a markdown
snippet ``benchmarks/results/cmf.md`` and the plot ``benchmarks/results/cmf_fewratings.png``.
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

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FEW = (0, 1, 3, 5, 10)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder holding ml-100k (default: MFREC_DATA_DIR / cache)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    default_peer = "/work/benchenv/bin/python" if Path("/work/benchenv/bin/python").exists() else str(
        HERE / ".env" / "bin" / "python")
    p.add_argument("--peer-python", default=default_peer, help="interpreter with cmfrec (runs peers.py)")
    p.add_argument("--cmfrec-factors", type=int, default=50)
    p.add_argument("--cmfrec-lambda", type=float, default=None, help="fixed lambda (default: tune it)")
    p.add_argument("--no-peers", action="store_true", help="skip cmfrec")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--cold-seeds", type=int, default=5,
                   help="seeds of the multi-seed cold-user table (0..N-1)")
    p.add_argument("--only-cold", action="store_true",
                   help="only the multi-seed cold-user accuracy table (no timing, no peers): markdown on stdout")
    return p.parse_args(argv)


def cold_user_seeds(ds, users: pd.DataFrame, items: pd.DataFrame, seeds: int, threads: int) -> list[dict]:
    """Cold users over several seeds: for each, ``holdout_users(ratings, 0.2, seed)``; RMSE on the
    held-out users' ratings of the global mean, the item-bias baseline (``Baseline``: an unknown
    user gets ``mu + b_i``), CMF with the default cold start (``user_cold_start="regression"``)
    and with the attribute block alone (``"collective"``), predicted from attributes only.
    Warm users: u1.base -> u1.test RMSE of both CMF variants (fitted the same way)."""
    import mfrec
    from mfrec import Baseline
    from mfrec.models.cmf import CMF

    out = []
    for seed in range(seeds):
        warm80, cold20 = mfrec.split.holdout_users(ds.ratings, 0.2, seed=seed)
        wu, wi = np.unique(warm80.raw_users), np.unique(warm80.raw_items)
        cdf = cold20.to_dataframe()[["user", "item", "rating"]].reset_index(drop=True)
        y = cdf["rating"].to_numpy()
        row = {"part": "cold_user_seeds", "seed": seed, "n_users": int(cdf.user.nunique()), "n_ratings": len(y),
               "global_mean": rmse(np.full(len(y), warm80.values.mean()), y),
               "item_bias_baseline": rmse(Baseline().fit(warm80).predict(cdf["user"], cdf["item"]), y)}
        for mode in ("regression", "collective"):
            m = CMF(threads=threads, user_cold_start=mode).fit(warm80, user_attributes=users.loc[wu],
                                                               item_attributes=items.loc[wi])
            pred = np.empty(len(y))
            for uid, g in cdf.groupby("user"):
                pred[g.index.to_numpy()] = m.predict_new(g["item"].to_numpy(), user_attributes=users.loc[uid])
            row[f"cmf_{mode}"] = rmse(pred, y)
        out.append(row)
    return out


def cold_seeds_markdown(rows: list[dict], warm: dict[str, float]) -> str:
    lines = ["| seed | users / ratings | global mean | item-bias baseline (mu + b_i) | CMF attributes, "
             "regression (default) | CMF attributes, collective block only | default vs baseline |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['n_users']} / {r['n_ratings']} | {r['global_mean']:.4f} | "
                     f"{r['item_bias_baseline']:.4f} | {r['cmf_regression']:.4f} | {r['cmf_collective']:.4f} | "
                     f"{r['cmf_regression'] - r['item_bias_baseline']:+.4f} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("global_mean", "item_bias_baseline", "cmf_regression", "cmf_collective")}
    lines.append(f"| mean | | {mean['global_mean']:.4f} | {mean['item_bias_baseline']:.4f} | "
                 f"{mean['cmf_regression']:.4f} | {mean['cmf_collective']:.4f} | "
                 f"{mean['cmf_regression'] - mean['item_bias_baseline']:+.4f} |")
    lines += ["", "Warm users (u1.base -> u1.test, the same attributes): CMF regression cold start "
              f"{warm['regression']:.4f}, collective {warm['collective']:.4f} (training is the same; the "
              "cold-start map is fitted afterwards)."]
    return "\n".join(lines) + "\n"


def only_cold(args) -> int:
    import mfrec
    from mfrec.models.cmf import CMF

    ds = mfrec.load_dataset("ml-100k", data_dir=args.data_dir, progress=False)
    users = ds.users[["age", "gender", "occupation"]]
    items = ds.items[["genres", "year"]]
    rows = cold_user_seeds(ds, users, items, args.cold_seeds, args.threads)
    for r in rows:
        print(json.dumps(r), file=sys.stderr, flush=True)
    train, test = ds.official_split("u1")
    warm = {mode: CMF(threads=args.threads, user_cold_start=mode).fit(
        train, user_attributes=users, item_attributes=items).score(test) for mode in ("regression", "collective")}
    print(cold_seeds_markdown(rows, warm), end="")
    return 0


def rmse(pred, true) -> float:
    err = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(err ** 2)))


def timed_fits(make, fit, repeats: int):
    """One untimed warm-up fit, then ``repeats`` timed ones; returns (last model, seconds list)."""
    fit(make())
    times, model = [], None
    for _ in range(repeats):
        model = make()
        t0 = time.perf_counter()
        fit(model)
        times.append(time.perf_counter() - t0)
    return model, times


def encoded_csv(table: pd.DataFrame, path: Path, id_name: str) -> None:
    """The AttributeEncoder's features as a numeric CSV (NaN = unobserved) for cmfrec."""
    from mfrec.data.attributes import AttributeEncoder

    enc = AttributeEncoder().fit(table)
    V, M = enc.transform(table)
    V = np.where(M, V, np.nan)
    df = pd.DataFrame(V, columns=enc.feature_names_)
    df.insert(0, id_name, table.index.to_numpy())
    df.to_csv(path, index=False)


def run_peer(args, train: Path, test: Path, users: Path, items: Path, cold: Path | None) -> dict | None:
    cmd = [args.peer_python, str(HERE / "peers.py"), "--train", str(train), "--test", str(test),
           "--models", "cmfrec-cmf", "--factors", str(args.cmfrec_factors), "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--seed", str(args.seed),
           "--user-attributes", str(users), "--item-attributes", str(items)]
    cmd += ["--lambda", repr(args.cmfrec_lambda)] if args.cmfrec_lambda is not None else ["--tune-lambda"]
    if cold is not None:
        cmd += ["--cold-users", str(cold)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(HERE))
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if proc.returncode != 0 or not rows or "error" in rows[-1]:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return rows[-1]


def fold_predictions(model, cold_df: pd.DataFrame, users: pd.DataFrame | None, n: int, seed: int,
                     als: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for every held-out user's ratings after position 10 of a seeded random order,
    folded in from the first ``n`` (and the attributes when ``users`` is given)."""
    rng = np.random.default_rng(seed)
    preds, truth = [], []
    for uid, g in cold_df.groupby("user", sort=True):
        order = rng.permutation(len(g))
        given, rest = g.iloc[order[:n]], g.iloc[order[max(FEW):]]
        ratings = dict(zip(given["item"].to_numpy(), given["rating"].to_numpy()))
        items = rest["item"].to_numpy()
        if als:
            fold = model.fold_in(ratings)
            i = model.item_map_.lookup(items)
            known = i >= 0
            p = np.full(len(items), model.global_mean_ + fold.bias)
            p[known] += model.item_bias_[i[known]] + model.item_factors_[i[known]] @ fold.factors
            p = np.clip(p, *model.rating_scale_)
        else:
            p = model.predict_new(items, ratings=ratings,
                                  user_attributes=None if users is None else users.loc[uid])
        preds.append(p)
        truth.append(rest["rating"].to_numpy())
    return np.concatenate(preds), np.concatenate(truth)


def plot(few: list[dict], path: Path, baseline: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, style in (("cmf_attributes", "CMF, ratings + attributes", "o-"),
                              ("cmf_ratings_only", "CMF, ratings only", "s--"),
                              ("als_ratings_only", "ALS, ratings only", "^:")):
        ax.plot([r["n_ratings"] for r in few], [r[key] for r in few], style, label=label)
    ax.axhline(baseline, color="grey", lw=1, label="item-bias baseline (mu + b_i)")
    ax.set_xlabel("ratings folded in per held-out user")
    ax.set_ylabel("RMSE on the user's other ratings")
    ax.set_title("ml-100k, 20% held-out users: cold start to warm")
    ax.set_xticks(list(FEW))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.only_cold:
        return only_cold(args)
    import mfrec
    from mfrec import ALS, Baseline
    from mfrec.models.cmf import CMF

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    ds = mfrec.load_dataset("ml-100k", data_dir=args.data_dir, progress=False)
    users = ds.users[["age", "gender", "occupation"]]
    items = ds.items[["genres", "year"]]
    train, test = ds.official_split("u1")
    rows: list[dict] = []
    meta = {"benchmark": "cmf", "dataset": "ml-100k", "threads": args.threads, "seed": args.seed,
            "mfrec_version": mfrec.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}

    def emit(row: dict) -> None:
        row = {**meta, **row}
        rows.append(row)
        print(json.dumps(row), flush=True)

    # ------------------------------------------------------------------ 1. warm u1
    th = args.threads
    warm_models = {
        "mfrec CMF (attributes)": (lambda: CMF(threads=th),
                                   lambda m: m.fit(train, user_attributes=users, item_attributes=items)),
        "mfrec CMF (no attributes)": (lambda: CMF(threads=th), lambda m: m.fit(train)),
        "mfrec ALS": (lambda: ALS(threads=th), lambda m: m.fit(train)),
    }
    for name, (make, fit) in warm_models.items():
        model, times = timed_fits(make, fit, args.repeats)
        emit({"part": "warm", "split": "u1", "model": name, "rmse": model.score(test),
              "fit_seconds_median": float(np.median(times)), "fit_seconds_all": times,
              "factors": model.factors, "params": {k: v for k, v in model.get_params().items() if k != "threads"}})

    tmp = Path(tempfile.mkdtemp(prefix="bench_cmf_"))
    ucsv, icsv = tmp / "users.csv", tmp / "items.csv"
    encoded_csv(users, ucsv, "user")
    encoded_csv(items, icsv, "item")
    for piece, name in ((train, "u1_train.csv"), (test, "u1_test.csv")):
        piece.to_dataframe()[["user", "item", "rating"]].to_csv(tmp / name, index=False)
    peer_warm = None
    if not args.no_peers:
        peer_warm = run_peer(args, tmp / "u1_train.csv", tmp / "u1_test.csv", ucsv, icsv, None)
        if peer_warm is not None:
            emit({"part": "warm", "split": "u1", "model": "cmfrec CMF (attributes)", "rmse": peer_warm["rmse"],
                  "fit_seconds_median": peer_warm["fit_seconds_median"],
                  "fit_seconds_all": peer_warm.get("fit_seconds_all"), "factors": peer_warm["factors"],
                  "params": {k: peer_warm["params"].get(k) for k in ("lambda_", "niter", "k", "lambda_tuning")
                             if k in peer_warm["params"]},
                  "version": peer_warm.get("version")})

    # ------------------------------------------------------------------ 2. cold users
    warm80, cold20 = mfrec.split.holdout_users(ds.ratings, 0.2, seed=args.seed)
    warm_ids = np.unique(warm80.raw_users)
    warm_items = np.unique(warm80.raw_items)
    u_warm, i_warm = users.loc[warm_ids], items.loc[warm_items]
    cold_df = cold20.to_dataframe()[["user", "item", "rating"]].reset_index(drop=True)
    y = cold_df["rating"].to_numpy()
    base = Baseline().fit(warm80)
    base_rmse = rmse(base.predict(cold_df["user"], cold_df["item"]), y)
    emit({"part": "cold_users", "model": "global mean", "rmse": rmse(np.full(len(y), warm80.values.mean()), y),
          "n_users": int(cold_df.user.nunique()), "n_ratings": len(cold_df)})
    emit({"part": "cold_users", "model": "Baseline (mu + b_i)", "rmse": base_rmse, "n_users": int(cold_df.user.nunique()),
          "n_ratings": len(cold_df)})
    for mode, label in (("regression", "mfrec CMF (attributes only)"),
                        ("collective", "mfrec CMF (attributes only, user_cold_start='collective')")):
        model = CMF(threads=th, user_cold_start=mode).fit(warm80, user_attributes=u_warm, item_attributes=i_warm)
        pred = np.empty(len(cold_df))
        for uid, g in cold_df.groupby("user"):
            pred[g.index.to_numpy()] = model.predict_new(g["item"].to_numpy(), user_attributes=users.loc[uid])
        emit({"part": "cold_users", "model": label, "rmse": rmse(pred, y),
              "n_users": int(cold_df.user.nunique()), "n_ratings": len(cold_df)})
        if mode == "regression":
            cmf80 = model
    als80 = ALS(threads=th).fit(warm80)
    emit({"part": "cold_users", "model": "mfrec ALS (unknown user: mu + b_i)",
          "rmse": rmse(als80.predict(cold_df["user"], cold_df["item"]), y),
          "n_users": int(cold_df.user.nunique()), "n_ratings": len(cold_df)})
    if not args.no_peers:
        w80 = tmp / "warm80.csv"
        c20 = tmp / "cold20.csv"
        warm80.to_dataframe()[["user", "item", "rating"]].to_csv(w80, index=False)
        cold_df.to_csv(c20, index=False)
        peer_cold = run_peer(args, w80, c20, ucsv, icsv, c20)
        if peer_cold is not None and "cold_rmse" in peer_cold:
            emit({"part": "cold_users", "model": "cmfrec CMF (attributes only)", "rmse": peer_cold["cold_rmse"],
                  "n_users": int(cold_df.user.nunique()), "n_ratings": peer_cold["n_cold"],
                  "method": peer_cold.get("cold_method"), "lambda": peer_cold["params"].get("lambda_")})

    # ------------------------------------------------------------------ 3. few ratings
    few = []
    for n in FEW:
        row = {"n_ratings": n}
        p, t = fold_predictions(cmf80, cold_df, users, n, args.seed)
        row["cmf_attributes"] = rmse(p, t)
        p, t = fold_predictions(cmf80, cold_df, None, n, args.seed)
        row["cmf_ratings_only"] = rmse(p, t)
        p, t = fold_predictions(als80, cold_df, None, n, args.seed, als=True)
        row["als_ratings_only"] = rmse(p, t)
        row["n_eval"] = len(t)
        few.append(row)
        emit({"part": "few_ratings", **row})
    # the item-bias baseline on the same evaluation ratings
    rng = np.random.default_rng(args.seed)
    eval_rows = []
    for uid, g in cold_df.groupby("user", sort=True):
        order = rng.permutation(len(g))
        eval_rows.append(g.iloc[order[max(FEW):]])
    ev = pd.concat(eval_rows)
    base_few = rmse(base.predict(ev["user"], ev["item"]), ev["rating"])
    emit({"part": "few_ratings", "n_ratings": None, "baseline_item_bias": base_few, "n_eval": len(ev)})
    plot(few, out / "cmf_fewratings.png", base_few)

    # ------------------------------------------------------------------ 4. cold items
    rng = np.random.default_rng(args.seed)
    tr_items = np.unique(train.raw_items)
    cold_items = rng.permutation(tr_items)[: len(tr_items) // 5]
    df = train.to_dataframe()[["user", "item", "rating"]]
    held = df["item"].isin(cold_items).to_numpy()
    warm_i = mfrec.Ratings.from_dataframe(df[~held])
    cold_i = df[held].reset_index(drop=True)
    yi = cold_i["rating"].to_numpy()
    base_i = Baseline().fit(warm_i)
    emit({"part": "cold_items", "model": "Baseline (mu + b_u)", "rmse": rmse(base_i.predict(cold_i.user, cold_i.item), yi),
          "n_items": int(cold_i.item.nunique()), "n_ratings": len(cold_i)})
    cmf_i = CMF(threads=th).fit(warm_i, user_attributes=users, item_attributes=items.loc[np.unique(warm_i.raw_items)])
    pred = np.empty(len(cold_i))
    for it, g in cold_i.groupby("item"):
        pred[g.index.to_numpy()] = cmf_i.predict_new_item(g["user"].to_numpy(), item_attributes=items.loc[it])
    emit({"part": "cold_items", "model": "mfrec CMF (attributes only)", "rmse": rmse(pred, yi),
          "n_items": int(cold_i.item.nunique()), "n_ratings": len(cold_i)})

    # ------------------------------------------------------------------ outputs
    with open(out / "cmf.jsonl", "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (out / "cmf.md").write_text(markdown(rows, args, time.time() - t_start))
    print(f"wrote {out / 'cmf.md'}, {out / 'cmf_fewratings.png'}, {out / 'cmf.jsonl'}", file=sys.stderr)
    return 0


def markdown(rows: list[dict], args, seconds: float) -> str:
    def part(name):
        return [r for r in rows if r["part"] == name]

    lines = [
        "## CMF: collective matrix factorization with side information (ml-100k)",
        "",
        f"`{' '.join([Path(sys.executable).name, 'benchmarks/bench_cmf.py'] + sys.argv[1:])}` "
        f"({rows[0]['date']}, {args.threads} threads, {os.cpu_count()} cores, {seconds:.0f} s). Attributes: "
        "users age / gender / occupation, items genres / year (standardized, one-hot, multi-hot).",
        "",
        "**Warm** (u1.base -> u1.test; fit seconds: median of "
        f"{args.repeats} after a warm-up fit):",
        "",
        "| model | factors | RMSE | fit s |",
        "|---|---:|---:|---:|",
    ]
    for r in part("warm"):
        lam = r.get("params", {}).get("lambda_")
        name = r["model"] + (f", lambda={lam:g}" if lam is not None else "")
        lines.append(f"| {name} | {r['factors']} | {r['rmse']:.4f} | {r['fit_seconds_median']:.3f} |")
    cold = part("cold_users")
    lines += ["", f"**Cold users** (20% of ml-100k users held out, seed {args.seed}; "
              f"{cold[0]['n_users']} users, {cold[0]['n_ratings']} ratings predicted from attributes only):", "",
              "| method | RMSE |", "|---|---:|"]
    lines += [f"| {r['model']} | {r['rmse']:.4f} |" for r in cold]
    few = [r for r in part("few_ratings") if r.get("n_ratings") is not None]
    base = [r for r in part("few_ratings") if r.get("n_ratings") is None]
    lines += ["", "**Few ratings** (the same held-out users; n random ratings folded in, RMSE on the ratings "
              f"after the first 10 of each user, {few[0]['n_eval']} ratings; item-bias baseline "
              f"{base[0]['baseline_item_bias']:.4f}):", "",
              "| n ratings | CMF ratings + attributes | CMF ratings only | ALS ratings only |",
              "|---:|---:|---:|---:|"]
    lines += [f"| {r['n_ratings']} | {r['cmf_attributes']:.4f} | {r['cmf_ratings_only']:.4f} | "
              f"{r['als_ratings_only']:.4f} |" for r in few]
    lines += ["", "![few ratings](cmf_fewratings.png)", ""]
    ci = part("cold_items")
    lines += [f"**Cold items** (20% of the u1.base items held out; {ci[0]['n_items']} items, "
              f"{ci[0]['n_ratings']} ratings predicted from genres and year only):", "",
              "| method | RMSE |", "|---|---:|"]
    lines += [f"| {r['model']} | {r['rmse']:.4f} |" for r in ci]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
