#!/usr/bin/env python
"""Start-up time of the command line and of ``import mfrec`` (issue 17): before and after.

Four cases, each a fresh Python process timed from spawn to exit (wall clock):
``mfrec --help``, ``mfrec --version`` (both run the console script's own entry point,
``mfrec.cli:main``), ``python -c "import mfrec"`` and ``python -c "import mfrec; mfrec.BiasedMF"``
(the first real use of a model). Each case runs ``--runs`` times for the *before* tree and the
*after* tree, interleaved (before, after, before, ...), so machine load hits both alike; the
median of each and the after/before ratio are reported, with the 1-minute load average.
``--also NAME=SRC`` adds more trees to the same interleaving (e.g. the branch before this change,
to tell its own cost from the lazy imports'), reported as extra columns.

    PYTHONPATH=src python benchmarks/bench_startup.py [--runs 10]
        [--before-python /work/main/.venv/bin/python --before-src /work/main/src]
        [--after-python PYTHON --after-src src] [--also h-lead=/tmp/hlead/src]
        [--out benchmarks/results/startup.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: what the `mfrec` console script does (setuptools' generated script: import main, run it)
SCRIPT = "import sys; sys.argv[0] = 'mfrec'; from mfrec.cli import main; sys.exit(main())"
CASES = {
    "mfrec --help": ["-c", SCRIPT, "--help"],
    "mfrec --version": ["-c", SCRIPT, "--version"],
    'python -c "import mfrec"': ["-c", "import mfrec"],
    'python -c "import mfrec; mfrec.BiasedMF"': ["-c", "import mfrec; mfrec.BiasedMF"],
}


def once(python: str, src: str, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    t0 = time.perf_counter()
    subprocess.run([python, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--before-python", default="/work/main/.venv/bin/python")
    p.add_argument("--before-src", default="/work/main/src")
    p.add_argument("--after-python", default=sys.executable)
    p.add_argument("--after-src", default=str(HERE.parent / "src"))
    p.add_argument("--also", action="append", default=[], metavar="NAME=SRC",
                   help="another tree to time alongside (run with --before-python)")
    p.add_argument("--out", default=str(HERE / "results" / "startup.jsonl"))
    args = p.parse_args(argv)
    trees = {"before": (args.before_python, args.before_src), "after": (args.after_python, args.after_src)}
    for spec in args.also:
        name, _, src = spec.partition("=")
        trees[name] = (args.before_python, src)
    extra = [t for t in trees if t not in ("before", "after")]
    for python, src in trees.values():  # warm the file cache and any .pyc files first
        for case in CASES.values():
            once(python, src, case)
    times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in trees for c in CASES}
    load = [os.getloadavg()[0]]
    for _ in range(args.runs):
        for case, case_args in CASES.items():
            for tree, (python, src) in trees.items():
                times[tree, case].append(once(python, src, case_args))
        load.append(os.getloadavg()[0])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{stamp}, {args.runs} interleaved runs each, 1-min load {min(load):.1f}-{max(load):.1f}\n")
    print("| command | before: median s | after: median s | after / before |"
          + "".join(f" {t}: median s |" for t in extra))
    print("|---|---:|---:|---:|" + "---:|" * len(extra))
    rows = []
    for case in CASES:
        med = {t: statistics.median(times[t, case]) for t in trees}
        print(f"| `{case}` | {med['before']:.3f} | {med['after']:.3f} | {med['after'] / med['before']:.2f} |"
              + "".join(f" {med[t]:.3f} |" for t in extra))
        rows.append({"case": case, **{f"{t}_s": round(med[t], 4) for t in trees},
                     **{f"{t}_runs": [round(x, 4) for x in times[t, case]] for t in trees}})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps({"bench": "startup", "when": stamp, "runs": args.runs, "load_min": min(load),
                             "load_max": max(load), "cores": os.cpu_count(), "python": sys.version.split()[0],
                             "trees": trees, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
