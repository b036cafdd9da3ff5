#!/usr/bin/env python
"""I/O at scale: reading 25M ratings from CSV, '::' text and Parquet; saving and loading a model
trained on them.

    .venv/bin/python benchmarks/bench_io.py [--ratings 25000000]

The files are written from `mfrec.synthetic` (ml-25m shape) into a temporary folder. Each read is
timed once after the file is in the page cache (one untimed read first); model save/load are
timed as the median of 3. Results: JSON lines appended to benchmarks/results/io.jsonl.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    out = None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    import mfrec
    from mfrec.data.readers import write_ratings_parquet

    p = argparse.ArgumentParser()
    p.add_argument("--ratings", type=int, default=25_000_000)
    args = p.parse_args()
    n_users, n_items = (162_000, 59_000) if args.ratings >= 10_000_000 else (10_000, 5_000)
    ratings = mfrec.synthetic(n_users, n_items, args.ratings, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        df = ratings.to_dataframe()
        csv, dat, pq = tmp / "ratings.csv", tmp / "ratings.dat", tmp / "ratings.parquet"
        pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), csv)
        with open(dat, "w") as fh:  # ml-1m style, '::' separated, no header
            for start in range(0, len(df), 2_000_000):
                part = df.iloc[start:start + 2_000_000]
                fh.write("\n".join(part["user"].astype(str) + "::" + part["item"].astype(str) + "::"
                                   + part["rating"].astype(str)) + "\n")
        write_ratings_parquet(ratings, pq)
        for label, path, fn in [
            ("read_csv", csv, lambda: mfrec.Ratings.read_csv(csv)),
            ("read_csv '::'", dat, lambda: mfrec.Ratings.read_csv(dat, sep="::")),
            ("read_parquet", pq, lambda: mfrec.Ratings.read_parquet(pq)),
        ]:
            fn()
            seconds, r = timed(fn)
            assert len(r) == len(ratings)
            rows.append({"case": label, "ratings": len(r), "bytes": path.stat().st_size, "seconds": seconds,
                         "ratings_per_second": len(r) / seconds})
            print(json.dumps(rows[-1]), flush=True)
        model = mfrec.BiasedMF(factors=100, epochs=1).fit(ratings)
        path = tmp / "model.mfrec"
        save_s, _ = timed(lambda: model.save(path), repeats=3)
        load_s, loaded = timed(lambda: mfrec.load_model(path), repeats=3)
        assert np.array_equal(loaded.item_factors_, model.item_factors_)
        rows.append({"case": "model save/load (BiasedMF k=100)", "ratings": len(ratings), "bytes": path.stat().st_size,
                     "save_seconds": save_s, "load_seconds": load_s})
        print(json.dumps(rows[-1]), flush=True)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "io.jsonl", "a") as fh:
        for row in rows:
            fh.write(json.dumps(dict(row, run=run_id)) + "\n")


if __name__ == "__main__":
    main()
