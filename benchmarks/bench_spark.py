"""Spark MLlib ALS (mfrec.spark.train_als, local mode) next to mfrec's own ALS on the same data.

Accuracy: ml-100k u1.base/u1.test and ml-latest-small random 80/20 (seed 0), RMSE of the
Spark-trained model (with biases) and of ``ALS(weighted=True)`` (the same ALS-WR rule) at the
same k, iterations and regularization. Fit seconds are interleaved (Spark, mfrec, Spark, ...)
so their ratio holds on a busy machine; the Spark time is all of ``train_als`` (id numbering,
bias aggregations, ALS, collecting the model) and "ALS s" Spark's ALS fits alone (with biases,
``--bias-rounds`` + 1 fits of ``--iterations`` each: "s per iteration" divides by all of them).
``--scale 1,5,25`` adds synthetic data of that many million ratings: seconds per iteration.

Command: ``.venv/bin/python benchmarks/bench_spark.py [--repeats 3] [--scale 1,5,25] [--master local[2]]``
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np


def _peak_rss(stop: threading.Event, out: dict) -> None:
    """Peak RSS (MB) of this process's children (the Spark JVM) and of this process."""
    try:
        import psutil
    except ImportError:
        return
    me = psutil.Process()
    while not stop.is_set():
        try:
            jvm = sum(c.memory_info().rss for c in me.children(recursive=True))
            out["jvm"] = max(out.get("jvm", 0), jvm / 2**20)
            out["python"] = max(out.get("python", 0), me.memory_info().rss / 2**20)
        except Exception:  # a child ended between listing and reading
            pass
        stop.wait(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--factors", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--regularization", type=float, default=0.1)
    ap.add_argument("--bias-rounds", type=int, default=2, help="train_als's bias_rounds (outer rounds)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--scale", default="", help="comma-separated millions of synthetic ratings, e.g. 1,5,25")
    args = ap.parse_args()

    import mfrec
    from mfrec import ALS
    from mfrec.spark import train_als
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (SparkSession.builder.master(args.master).appName("mfrec-bench-spark")
             .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.sql.shuffle.partitions", "8").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    k, iters, reg = args.factors, args.iterations, args.regularization
    ml100k = mfrec.load_dataset("ml-100k", progress=False)
    small = mfrec.load_dataset("ml-latest-small", progress=False).ratings
    pieces = {"ml-100k u1": ml100k.official_split("u1"),
              "ml-latest-small 80/20": mfrec.split.random_split(small, test_size=0.2, seed=0)}
    for mill in [int(x) for x in args.scale.split(",") if x]:
        n = mill * 1_000_000
        r = mfrec.synthetic(n // 150, max(n // 1500, 1000), n, seed=0)
        pieces[f"synthetic {mill}M"] = (r, None)
    fits = args.bias_rounds + 1
    print(f"k={k}, iterations={iters} (x {fits} Spark fits: bias_rounds={args.bias_rounds}), "
          f"regularization (Spark regParam, mfrec ALS weighted=True) {reg}; "
          f"master {args.master}, driver memory {args.driver_memory}, {os.cpu_count()} cores\n")
    print("| data | ratings | Spark RMSE | mfrec ALS RMSE | Spark / mfrec RMSE | Spark s (all) | Spark ALS s "
          "| s per iteration (Spark ALS) | mfrec s | s per iteration (mfrec) | Spark / mfrec time | peak JVM MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (train, test) in pieces.items():
        spark_s, als_s, mine_s = [], [], []
        rss: dict = {}
        for _ in range(args.repeats):  # interleaved: the ratio survives a busy machine
            stop = threading.Event()
            watcher = threading.Thread(target=_peak_rss, args=(stop, rss), daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            sm = train_als(train, factors=k, iterations=iters, regularization=reg, bias_rounds=args.bias_rounds,
                           spark=spark)
            spark_s.append(time.perf_counter() - t0)
            stop.set()
            watcher.join()
            als_s.append(float(sm.history_["seconds"].iloc[-1]))
            t0 = time.perf_counter()
            mm = ALS(factors=k, iterations=iters, regularization=reg, bias_regularization=None, weighted=True,
                     solver="cholesky").fit(train)
            mine_s.append(time.perf_counter() - t0)
        s_rmse = sm.score(test) if test is not None else float("nan")
        m_rmse = mm.score(test) if test is not None else float("nan")
        med = lambda xs: float(np.median(xs))  # noqa: E731
        print(f"| {name} | {len(train):,} | {s_rmse:.4f} | {m_rmse:.4f} | {s_rmse / m_rmse:.4f} | "
              f"{med(spark_s):.1f} | {med(als_s):.1f} | {med(als_s) / (iters * fits):.2f} | {med(mine_s):.2f} | "
              f"{med(mine_s) / iters:.3f} | {med(spark_s) / med(mine_s):.0f}x | {rss.get('jvm', float('nan')):.0f} |",
              flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
