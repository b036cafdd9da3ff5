#!/usr/bin/env python
"""The core accuracy/speed benchmark: mfrec models and peers on the same splits, in one run.

    .venv/bin/python benchmarks/run_core.py --peer-python benchmarks/.env/bin/python

Splits: ml-100k u1.base/u1.test (official) and ml-latest-small random 80/20 (seed 0), written
once to a temporary folder as CSV and read by both sides. Peers run under ``--peer-python``
(scikit-surprise, cmfrec); mfrec under this interpreter. Results are appended as JSON lines to
``benchmarks/results/core.jsonl`` (with the machine, versions and command) and rendered into
``benchmarks/RESULTS.md`` by ``render_results.py``.
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


def write_splits(folder: Path) -> dict[str, tuple[Path, Path]]:
    import mfrec

    out = {}
    ds = mfrec.load_dataset("ml-100k")
    train, test = ds.official_split("u1")
    small = mfrec.load_dataset("ml-latest-small").ratings
    s_train, s_test = mfrec.split.random_split(small, test_size=0.2, seed=0)
    for name, (a, b) in {"ml-100k/u1": (train, test), "ml-latest-small/random-80-20": (s_train, s_test)}.items():
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
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    print(f"  ({time.time() - t0:.0f} s, {len(rows)} results)", file=sys.stderr, flush=True)
    return rows


def machine() -> dict:
    import numba
    import numpy

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__, "platform": platform.platform()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", str(HERE / ".env/bin/python")))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--tuned", default=str(HERE / "tuned_params.json"),
                   help="JSON {split: {model: params}} of tuned settings, run with label 'tuned'")
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    meta_base = {"run": run_id, "machine": machine(), "command": " ".join([Path(sys.executable).name] + sys.argv)}
    rows: list[dict] = []
    tuned = json.loads(Path(args.tuned).read_text()) if Path(args.tuned).exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        splits = write_splits(Path(tmp))
        for split, (train, test) in splits.items():
            meta = dict(meta_base, split=split)
            common = ["--train", str(train), "--test", str(test), "--repeats", str(args.repeats),
                      "--threads", str(args.threads)]
            if not args.skip_peers:
                peers = "surprise-svd,surprise-svdpp,cmfrec-als" if split.startswith("ml-100k") else "surprise-svd,cmfrec-als"
                rows += run([args.peer_python, str(HERE / "peers.py"), "--models", peers, "--factors", "100",
                             "--epochs", "20", "--tune-lambda"] + common, meta)
            rows += run([sys.executable, str(HERE / "bench_models.py"), "--models",
                         "baseline,funk-mf,biased-mf,svdpp,als", "--label", "default"] + common, meta)
            if split in tuned:
                rows += run([sys.executable, str(HERE / "bench_models.py"), "--models", ",".join(tuned[split]),
                             "--params", json.dumps(tuned[split]), "--label", "tuned"] + common, meta)
        # first-call compile cost, measured once with an empty Numba cache
        train, test = splits["ml-100k/u1"]
        rows += run([sys.executable, str(HERE / "bench_models.py"), "--models", "biased-mf,svdpp,als",
                     "--cold-cache", "--label", "cold-cache", "--train", str(train), "--test", str(test),
                     "--repeats", "1", "--threads", str(args.threads)], dict(meta_base, split="ml-100k/u1"))
    with open(RESULTS / "core.jsonl", "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} rows to {RESULTS / 'core.jsonl'} (run {run_id})", file=sys.stderr)


if __name__ == "__main__":
    main()
