#!/usr/bin/env python
"""Ranking head to head: mfrec's ImplicitALS and BPR against implicit (benfred) ALS (CG) and BPR.

Protocol (issue 18): ratings >= 4 are positives; 20% of each user's positives are held out
(``mfrec.split.user_split``, seed 42); the lists exclude the training items; P@10, NDCG@10 and
recall@20 are scored by ``mfrec.metrics`` for both libraries, from each library's own top-n
(mfrec ``recommend_many``, implicit's batched ``recommend`` with ``filter_already_liked_items``).
Both libraries get the same factors, iterations and threads (implicit ``num_threads``).

Tuning: a validation carve-out of the training positives (again 20% per user, seed 42); every
library gets the same grid size over regularization and confidence (ALS) or learning rate and
regularization (BPR), picked by validation NDCG@10, then refit on all training positives. The
ALS confidence grids are the same confidence values: mfrec's binary confidence is
``1 + alpha``, implicit's is ``alpha`` (it scales the 0/1 matrix by alpha), so mfrec's alpha
grid is implicit's minus one.

Timings (fit seconds, medians of ``--repeats`` fits, mfrec and implicit interleaved; fit
seconds per iteration on synthetic 1M interactions, 25M with ``--big``; ``recommend_many``
users/s for every user against implicit's batched ``recommend``) depend on the load of the
machine: the ratios of one run are the comparable figures.

implicit runs in the peers' virtualenv (``--peer-python``, default /work/benchenv/bin/python)
in a subprocess: this script re-invokes itself there with ``--child`` (that mode imports only
numpy, scipy and implicit); data pass as .npz files of dense indices.

    PYTHONPATH=src python benchmarks/bench_ranking.py [--datasets ml-100k,ml-latest-small]
        [--factors 64] [--iterations 15] [--bpr-iterations 100] [--threads 2] [--repeats 3]
        [--models als,bpr] [--big] [--no-synthetic] [--no-tune] [--out benchmarks/results/ranking.jsonl]
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

import numpy as np

HERE = Path(__file__).resolve().parent
N_LIST = 20
ALS_REG = (0.1, 1.0, 10.0, 50.0, 200.0)
ALS_CONF = (2.0, 4.0, 8.0, 16.0, 32.0)  # confidence of a positive (mfrec alpha = conf - 1)
BPR_LR = (0.003, 0.01, 0.03, 0.1)
BPR_REG = (0.001, 0.01, 0.03)


# ====================================================================== child (implicit)
def child(spec_path: str) -> None:
    """Fit implicit models as the spec says; write each config's lists and timings."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import scipy.sparse as sp
    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    spec = json.loads(Path(spec_path).read_text())
    data = np.load(spec["data"])
    shape = tuple(int(x) for x in data["shape"])
    X = sp.csr_matrix((np.ones(len(data["u"]), dtype=np.float32), (data["u"], data["i"])), shape=shape)
    users = data["users"] if "users" in data.files else np.arange(shape[0])
    out = []
    for job in spec["jobs"]:
        kind, params = job["kind"], dict(job["params"])
        times, lists, rec_s = [], None, None
        for _ in range(int(job.get("repeats", 1))):
            if kind == "als":
                m = AlternatingLeastSquares(factors=spec["factors"], iterations=spec["iterations"], use_cg=True,
                                            num_threads=spec["threads"], random_state=spec["seed"], **params)
            else:
                m = BayesianPersonalizedRanking(factors=spec["factors"], iterations=spec["bpr_iterations"],
                                                num_threads=spec["threads"], random_state=spec["seed"], **params)
            t0 = time.perf_counter()
            m.fit(X, show_progress=False)
            times.append(time.perf_counter() - t0)
        if job.get("lists", True):
            t0 = time.perf_counter()
            ids, _ = m.recommend(users, X[users], N=spec["n"], filter_already_liked_items=True)
            rec_s = time.perf_counter() - t0
            lists = ids
        row = {"kind": kind, "params": params, "fit_seconds": times, "recommend_seconds": rec_s,
               "version": implicit.__version__}
        if lists is not None:
            path = f"{spec['out']}.{len(out)}.npy"
            np.save(path, np.asarray(lists, dtype=np.int64))
            row["lists"] = path
        out.append(row)
    Path(spec["out"]).write_text(json.dumps(out))


# ====================================================================== parent (mfrec)
def run_implicit(args, tmp: Path, data_path: Path, jobs: list[dict], users: np.ndarray | None = None) -> list[dict]:
    spec = {"data": str(data_path), "factors": args.factors, "iterations": args.iterations,
            "bpr_iterations": args.bpr_iterations, "threads": args.threads, "seed": 42, "n": N_LIST,
            "jobs": jobs, "out": str(tmp / f"out{time.monotonic_ns()}.json")}
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH="")
    subprocess.run([args.peer_python, __file__, "--child", str(spec_path)], check=True, env=env)
    return json.loads(Path(spec["out"]).read_text())


def save_data(path: Path, ratings, users: np.ndarray | None = None) -> None:
    extra = {} if users is None else {"users": users}
    np.savez(path, u=ratings.user_indices.astype(np.int64), i=ratings.item_indices.astype(np.int64),
             shape=np.array([ratings.n_users, ratings.n_items]), **extra)


def lists_frame(ratings, users: np.ndarray, ids: np.ndarray):
    """implicit's index lists as the ``user, item, rank`` frame that mfrec.metrics scores."""
    import pandas as pd

    rank = np.broadcast_to(np.arange(1, ids.shape[1] + 1), ids.shape)
    ok = ids >= 0
    return pd.DataFrame({"user": ratings.user_map.to_raw(np.repeat(users, ok.sum(axis=1))),
                         "item": ratings.item_map.to_raw(ids[ok]), "rank": rank[ok]})


def score(recs, test) -> dict:
    from mfrec.evaluation.metrics import ranking_metrics

    res = ranking_metrics(recs, test, ("precision@10", "ndcg@10", "recall@20"), relevance_threshold=0.0)
    return {k: round(float(res[k]), 4) for k in ("precision@10", "ndcg@10", "recall@20")}


def mfrec_model(kind: str, args, params: dict):
    import mfrec

    if kind == "als":
        p = dict(params)
        if "confidence" in p:
            p["alpha"] = p.pop("confidence") - 1.0
        return mfrec.ImplicitALS(factors=args.factors, iterations=args.iterations, threads=args.threads, seed=42, **p)
    return mfrec.BPR(factors=args.factors, iterations=args.bpr_iterations, threads=args.threads, seed=42, **params)


def grids(kind: str) -> tuple[list[dict], list[dict]]:
    """(mfrec configs, implicit configs) of the same size and the same values."""
    if kind == "als":
        cfg = [{"regularization": r, "confidence": c} for r in ALS_REG for c in ALS_CONF]
        return cfg, [{"regularization": r, "alpha": c} for r in ALS_REG for c in ALS_CONF]
    cfg = [{"learning_rate": lr, "regularization": r} for lr in BPR_LR for r in BPR_REG]
    return cfg, [dict(c) for c in cfg]


def mfrec_lists(model, users_raw, n=N_LIST):
    return model.recommend_many(users_raw, n=n)


def positives(name: str):
    import mfrec

    r = mfrec.load_dataset(name).ratings
    keep = np.flatnonzero(r.values >= 4)
    df = r.subset(keep).to_dataframe()[["user", "item", "rating"]]
    return mfrec.Ratings.from_dataframe(df)  # fresh maps: only users/items with a positive


def bench_dataset(args, name: str, tmp: Path, log) -> list[dict]:
    from mfrec.split import user_split

    pos = positives(name)
    train, test = user_split(pos, 0.2, seed=42)
    fit, valid = user_split(train, 0.2, seed=42)
    rows = []
    for kind in args.models.split(","):
        mf_grid, im_grid = grids(kind)
        best_mf, best_im = mf_grid[0], im_grid[0]
        tuning = {}
        if not args.no_tune:
            vusers = np.unique(valid.user_indices)
            vraw = fit.user_map.to_raw(vusers)
            save_data(tmp / "fit.npz", fit, vusers)
            scores = []
            for cfg in mf_grid:
                m = mfrec_model(kind, args, cfg).fit(fit)
                scores.append(score(mfrec_lists(m, vraw), valid)["ndcg@10"])
            best_mf = mf_grid[int(np.argmax(scores))]
            tuning["mfrec"] = {"grid": mf_grid, "validation_ndcg@10": scores}
            res = run_implicit(args, tmp, tmp / "fit.npz", [{"kind": kind, "params": c} for c in im_grid], vusers)
            iscores = [score(lists_frame(fit, vusers, np.load(r["lists"])), valid)["ndcg@10"] for r in res]
            best_im = im_grid[int(np.argmax(iscores))]
            tuning["implicit"] = {"grid": im_grid, "validation_ndcg@10": iscores}
            log(f"{name} {kind}: tuned mfrec {best_mf} ({max(scores):.4f}), implicit {best_im} ({max(iscores):.4f})")
        configs = [("default", {}, {})] if args.no_tune else [("tuned", best_mf, best_im)]
        if kind == "als" and not args.no_tune:
            configs.insert(0, ("default", {}, {}))
        tusers = np.unique(test.user_indices)
        traw = train.user_map.to_raw(tusers)
        save_data(tmp / "train.npz", train, tusers)
        for label, mf_cfg, im_cfg in configs:
            mf_times, im_times, mf_rec, im_rec = [], [], [], []
            im_res = None
            for rep in range(args.repeats):  # interleaved: mfrec fit, implicit fit, ...
                m = mfrec_model(kind, args, mf_cfg)
                t0 = time.perf_counter()
                m.fit(train)
                mf_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                recs = mfrec_lists(m, traw)
                mf_rec.append(time.perf_counter() - t0)
                im_res = run_implicit(args, tmp, tmp / "train.npz", [{"kind": kind, "params": im_cfg}], tusers)[0]
                im_times += im_res["fit_seconds"]
                im_rec.append(im_res["recommend_seconds"])
            im_recs = lists_frame(train, tusers, np.load(im_res["lists"]))
            for lib, sc, times, rec, params in (
                    ("mfrec", score(recs, test), mf_times, mf_rec, m.get_params()),
                    ("implicit", score(im_recs, test), im_times, im_rec, {**im_cfg, "version": im_res["version"]})):
                row = {"bench": "ranking", "dataset": name, "model": kind, "library": lib, "config": label,
                       **sc, "fit_seconds_median": round(float(np.median(times)), 4),
                       "recommend_users_per_s": round(len(tusers) / float(np.median(rec)), 1),
                       "factors": args.factors, "threads": args.threads,
                       "iterations": args.iterations if kind == "als" else args.bpr_iterations,
                       "params": {k: v for k, v in params.items() if not callable(v)}}
                if lib in tuning:
                    row["tuning"] = tuning[lib]
                rows.append(row)
                log(f"{name} {kind} {label} {lib}: P@10 {sc['precision@10']:.4f} NDCG@10 {sc['ndcg@10']:.4f} "
                    f"R@20 {sc['recall@20']:.4f} fit {row['fit_seconds_median']:.3f}s "
                    f"recommend {row['recommend_users_per_s']:.0f} users/s")
    return rows


def bench_synthetic(args, n: int, tmp: Path, log) -> list[dict]:
    """Fit seconds per iteration (ALS CG) and all-user batch top-10 on synthetic interactions."""
    import mfrec

    n_users, n_items = max(1000, n // 100), max(500, n // 1000)
    r = mfrec.synthetic(n_users, n_items, n, seed=42)
    users = np.arange(r.n_users)
    save_data(tmp / "syn.npz", r, users)
    mf_it, im_it, mf_rec, im_rec = [], [], [], []
    for rep in range(args.repeats):
        m = mfrec.ImplicitALS(factors=args.factors, iterations=args.iterations, threads=args.threads, seed=42)
        t0 = time.perf_counter()
        m.fit(r)
        mf_it.append((time.perf_counter() - t0) / args.iterations)
        t0 = time.perf_counter()
        m.recommend_many(n=10)
        mf_rec.append(time.perf_counter() - t0)
        res = run_implicit(args, tmp, tmp / "syn.npz", [{"kind": "als", "params": {}}], users)[0]
        im_it.append(res["fit_seconds"][0] / args.iterations)
        im_rec.append(res["recommend_seconds"])
    rows = []
    for lib, it, rec in (("mfrec", mf_it, mf_rec), ("implicit", im_it, im_rec)):
        row = {"bench": "ranking-synthetic", "interactions": n, "users": r.n_users, "items": r.n_items,
               "library": lib, "seconds_per_iteration": round(float(np.median(it)), 4),
               "recommend_users_per_s": round(r.n_users / float(np.median(rec)), 1),
               "factors": args.factors, "threads": args.threads}
        rows.append(row)
        log(f"synthetic {n}: {lib} {row['seconds_per_iteration']:.3f} s/iteration, "
            f"recommend {row['recommend_users_per_s']:.0f} users/s")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--datasets", default="ml-100k,ml-latest-small")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--bpr-iterations", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="als,bpr", help="als, bpr or both")
    p.add_argument("--big", action="store_true", help="also synthetic 25M interactions (heavy)")
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--no-tune", action="store_true", help="library defaults only")
    p.add_argument("--peer-python", default="/work/benchenv/bin/python")
    p.add_argument("--out", default=str(HERE / "results" / "ranking.jsonl"))
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in [s for s in args.datasets.split(",") if s]:
            rows += bench_dataset(args, name, tmp, log)
        if not args.no_synthetic:
            for n in (1_000_000,) + ((25_000_000,) if args.big else ()):
                rows += bench_synthetic(args, n, tmp, log)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps({"time": stamp, "load_1min": round(os.getloadavg()[0], 2), **row}) + "\n")
    log(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
