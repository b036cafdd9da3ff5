#!/usr/bin/env python
"""First-call cost per model family (issue 18, section 4): cold and warm first fit, before/after.

For each model a fresh Python process imports mfrec, fits a small synthetic set (2,000 ratings,
``threads=2``) and makes one all-user ``recommend_many(n=10)``; *cold* runs on an empty
``NUMBA_CACHE_DIR`` (a new temporary directory: every kernel the fit touches compiles), *warm*
is a second fresh process on the cache the cold one left. Each (model, tree) pair runs
``--repeats`` times; the trees (``--before``, default /work/main/src, and ``--after``, this
checkout's src) alternate inside each repeat so a load change hits both alike. Reported: the
medians of the fit seconds (cold / warm), of the first ``recommend_many``, of ``import mfrec``,
and how many mfrec kernel specializations Numba compiled (cold) and compiled again (warm: should
be 0); ``second_fit_s`` is a second fit in the warm process, the fit's own cost. Every run is
also appended to ``<out>.runs`` as it ends. Cold compile time is single-threaded CPU work and stretches with the machine's load; the
1-minute load average is recorded beside each row, and each child first times a fixed pure-Python
loop (``calib_s``, ``cold_calib_all_s``): a virtual machine whose host is busy runs everything
slower without any load or steal time showing inside it, and this shows it run by run.

    PYTHONPATH=src python benchmarks/bench_first_fit.py [--models BiasedMF,ALS] [--repeats 3]
        [--before /work/main/src] [--after src] [--out benchmarks/results/first_fit.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# by family: SGD; ALS-type; implicit ALS; BPR; Gibbs samplers
MODELS = ("BiasedMF", "FunkMF", "SVDpp", "ALS", "CMF", "Baseline", "ImplicitALS", "BPR", "BayesianMF", "BayesianFM")

def _most(counts) -> int | None:
    """The largest compile count of the runs (None for a tree that cannot count them)."""
    known = [c for c in counts if c is not None]
    return max(known) if known else None


CHILD = r"""
import json, sys, time
tc = time.perf_counter()
acc = 0
for i in range(3_000_000):  # a fixed pure-Python workload: the machine's speed for this run
    acc += i * i
calib_s = time.perf_counter() - tc
t0 = time.perf_counter()
try:
    from mfrec.kernels.compile import record_compiles
    compiled = record_compiles()
except ImportError:  # a tree older than record_compiles: no counts
    compiled = None
import mfrec
t1 = time.perf_counter()
name = sys.argv[1]
r = mfrec.synthetic(200, 100, 2000, seed=1)
model = getattr(mfrec, name)(seed=1, threads=2)
t2 = time.perf_counter()
model.fit(r)
t3 = time.perf_counter()
n_fit = None if compiled is None else len(compiled)
model.recommend_many(n=10)
t4 = time.perf_counter()
t5 = time.perf_counter()
getattr(mfrec, name)(seed=1, threads=2).fit(r)  # a second fit: what the fit costs without any load or compile
t6 = time.perf_counter()
print(json.dumps({"calib_s": calib_s, "second_fit_s": t6 - t5, "import_s": t1 - t0, "fit_s": t3 - t2, "recommend_many_s": t4 - t3, "compiled_fit": n_fit,
                  "compiled_all": None if compiled is None else len(compiled)}))
"""


def run(model: str, src: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=src)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{model} with {src} failed:\n{out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    return res


def cold_warm(model: str, src: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="mfrec-first-fit-") as cache:
        return run(model, src, cache), run(model, src, cache)


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def summary(runs: list[tuple[dict, dict]]) -> dict:
    cold = [c for c, _ in runs]
    warm = [w for _, w in runs]
    return {"cold_fit_s": _median(cold, "fit_s"), "warm_fit_s": _median(warm, "fit_s"), "second_fit_s": _median(warm, "second_fit_s"),
            "cold_recommend_s": _median(cold, "recommend_many_s"), "warm_recommend_s": _median(warm, "recommend_many_s"),
            "import_s": _median(warm, "import_s"), "cold_fit_all_s": [round(c["fit_s"], 2) for c in cold],
            "compiled_cold": _most(c["compiled_all"] for c in cold), "compiled_warm": _most(w["compiled_all"] for w in warm),
            "cold_calib_all_s": [round(c["calib_s"], 3) for c in cold]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--before", default="/work/main/src", help="the tree to compare against ('' to skip)")
    p.add_argument("--after", default=str(HERE.parent / "src"))
    p.add_argument("--out", default=str(HERE / "results" / "first_fit.jsonl"))
    args = p.parse_args(argv)
    trees = {"after": str(Path(args.after).resolve())}
    if args.before:
        trees = {"before": str(Path(args.before).resolve()), **trees}
    models = [m for m in args.models.split(",") if m]
    runs: dict[tuple[str, str], list] = {(m, t): [] for m in models for t in trees}
    loads: dict[str, list[float]] = {m: [] for m in models}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for rep in range(args.repeats):
        order = list(trees) if rep % 2 == 0 else list(reversed(trees))
        for model in models:
            for tree in order:
                loads[model].append(os.getloadavg()[0])
                runs[model, tree].append(cold_warm(model, trees[tree]))
                with open(args.out + ".runs", "a") as f:  # every run as it ends (a long run may be cut short)
                    f.write(json.dumps({"time": started, "model": model, "tree": tree, "repeat": rep,
                                        "load_1min": loads[model][-1], "cold": runs[model, tree][-1][0],
                                        "warm": runs[model, tree][-1][1]}) + "\n")
            print(f"repeat {rep + 1}/{args.repeats} {model}: " + ", ".join(
                f"{t} cold {runs[model, t][-1][0]['fit_s']:.2f} s warm {runs[model, t][-1][1]['fit_s']:.2f} s"
                for t in trees), file=sys.stderr, flush=True)
    rows = []
    for model in models:
        row = {"bench": "first-fit", "model": model, "repeats": args.repeats,
               "load_1min": [round(min(loads[model]), 1), round(max(loads[model]), 1)]}
        for tree in trees:
            row[tree] = summary(runs[model, tree])
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps({"time": started, **row}) + "\n")


if __name__ == "__main__":
    main()
