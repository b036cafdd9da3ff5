#!/usr/bin/env python
"""Parallel SGD against LibMF, and on a busy machine (issue 18, section 3).

    PYTHONPATH=src MFREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_libmf.py
    ... --suite throughput        # synthetic 10M ratings: mfrec BiasedMF vs LibMF, k=64/128, 1/2 threads
    ... --suite busy              # ml-100k u1 BiasedMF k=100, 20 epochs, threads 1/2, with and without
                                  # one busy-loop process beside the fit
    ... --baseline REV            # also run mfrec at git revision REV (e.g. the kernel before a change)
    ... --suite busy --busy-data synthetic3m   # the busy suite on synthetic 3M ratings (60k users x
                                  # 12k items, larger than the cache), BiasedMF k=64, 5 epochs

LibMF is the `libmf` package (cjlin1/libmf's C++ source, compiled at install) in the peers'
virtualenv (`--libmf-python`, default /work/benchenv/bin/python), e.g.
``CFLAGS="-O3 -march=native -DUSESSE -DUSEOMP -fopenmp" LDFLAGS=-fopenmp pip install
--no-build-isolation --no-binary libmf libmf`` (its own Makefile's flags; without
``--no-build-isolation`` pip 26 builds in an isolated environment that drops the flags, and the
result is the scalar code without OpenMP: check with ``nm -D .../libmf*.so | grep GOMP``). The
scalar build is 2.4x slower and reaches a lower held-out RMSE (0.675 against 0.764 after 5
epochs at k=64 here): a different code path, not the same algorithm vectorized.

Busy: per side and round, one period with (or without) one busy-loop process beside the fits,
its 1-thread and 2-thread fits in turn, 1-2 then 2-1 and so on (the host's speed moves between
periods by more than the gap measured), each row with the thread count the 2-thread model follows (``grid_threads``: 1
when the fit started with the cores taken, `mfrec.threads.start_threads`). Before 2026-12-04
22:00 UTC each (busy, threads) cell had its own period.

Each side is a persistent worker process (JSON commands on stdin, one JSON row per fit on
stdout); the orchestrator runs the rounds interleaved (every round runs every side and
configuration once, in turn), so the ratios compare like with like on a loaded machine.
Throughput: LibMF exposes no per-epoch time, so every side is timed the same way: whole fits
with 1 and with 5 epochs, and epochs 2-5 take the difference; updates/s = 4 x training ratings /
that difference (mfrec's own per-epoch timings, `history_["seconds"]` of epochs 2-5, are
recorded too, as ``history_updates_per_second``: on a loaded machine the difference of two
whole fits is noisier than the sum of four epochs). One unmeasured 1-epoch fit per side first. RMSE on
a random 10% of the ratings held out (seed 0). Rows are appended to
``benchmarks/results/libmf.jsonl``; medians per configuration are printed as a table.
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
ROOT = HERE.parent
SYNTH = dict(n_users=100_000, n_items=20_000, n_ratings=10_000_000, factors=10, seed=0)
BUSY_SYNTH = dict(n_users=60_000, n_items=12_000, n_ratings=3_000_000, seed=0)
#: the busy suite's data sets: (factors, epochs) of its BiasedMF fits
BUSY_FITS = {"u1": (100, 20), "synthetic3m": (64, 5)}
BUSY_SECONDS = 600.0  # upper bound on a busy loop's life (it is stopped after its fits)


# ------------------------------------------------------------------------------------- workers
def _mfrec_worker(data_dir: Path) -> None:
    """Fit mfrec BiasedMF on the commands read from stdin (the mfrec tree on sys.path)."""
    import numpy as np

    import mfrec

    cache: dict = {}

    def data(name: str):
        if name not in cache:
            if name == "synthetic":
                d = np.load(data_dir / "synthetic.npz")
                ratings = mfrec.Ratings.from_arrays(d["users"], d["items"], d["values"], rating_scale=(1.0, 5.0))
                test_mask = d["test"]
                cache[name] = (ratings.subset(~test_mask), ratings.subset(test_mask))
            elif name == "synthetic3m":
                ratings = mfrec.synthetic(**BUSY_SYNTH)
                test_mask = np.random.default_rng(0).random(len(ratings)) < 0.1
                cache[name] = (ratings.subset(~test_mask), ratings.subset(test_mask))
            else:  # ml-100k u1
                cache[name] = mfrec.load_dataset("ml-100k").official_split("u1")
        return cache[name]

    tiny = mfrec.synthetic(200, 100, 3000, seed=1)
    for t in (1, 2):  # compile (or load from the cache) outside the measurements
        mfrec.BiasedMF(factors=8, epochs=1, threads=t).fit(tiny)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        train, test = data(cmd["data"])
        params = dict(factors=cmd["k"], epochs=cmd["epochs"], threads=cmd["threads"], **cmd.get("params", {}))
        t0 = time.perf_counter()
        model = mfrec.BiasedMF(**params).fit(train)
        seconds = time.perf_counter() - t0
        row = {"fit_seconds": seconds, "epoch_seconds": [float(s) for s in model.history_["seconds"]],
               "rmse": float(model.score(test)), "n_train": len(train),
               # the thread count the model follows (None: a tree before it was recorded)
               "grid_threads": int(model.history_["threads"].iloc[0]) if "threads" in model.history_ else None}
        print(json.dumps(row), flush=True)


def _libmf_worker(data_dir: Path) -> None:
    """Fit LibMF (the `libmf` package's ctypes binding) on the commands read from stdin."""
    import contextlib
    import io

    import numpy as np

    with contextlib.redirect_stdout(io.StringIO()):  # the binding prints the path of its .so
        from libmf import mf

    d = np.load(data_dir / "synthetic.npz")
    test = d["test"]
    u, i, v = d["users"], d["items"], d["values"]
    train_x = np.column_stack([u[~test], i[~test], v[~test]]).astype(np.float32)
    tu, ti, tv = u[test], i[test], v[test].astype(np.float64)
    del u, i, v, d
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        opts = dict(k=cmd["k"], nr_threads=cmd["threads"], nr_iters=cmd["epochs"], quiet=True)
        opts.update(cmd.get("params", {}))
        model = mf.MF(**opts)
        t0 = time.perf_counter()
        model.fit(train_x)
        seconds = time.perf_counter() - t0
        P, Q = model.p_factors(), model.q_factors()
        known = (tu < P.shape[0]) & (ti < Q.shape[0])
        pred = np.full(len(tu), float(model.model.b))
        for s in range(0, len(tu), 1 << 20):
            sl = slice(s, s + (1 << 20))
            kk = known[sl]
            pred[sl][kk] = np.einsum("ij,ij->i", P[tu[sl][kk]], Q[ti[sl][kk]])
        pred = np.clip(pred, 1.0, 5.0)  # the rating scale, as mfrec's predictions
        row = {"fit_seconds": seconds, "rmse": float(np.sqrt(np.mean((pred - tv) ** 2))), "n_train": len(train_x)}
        print(json.dumps(row), flush=True)


# -------------------------------------------------------------------------------- orchestrator
class Worker:
    def __init__(self, name: str, argv: list[str], env: dict) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited (rc={self.proc.wait()})")
        return json.loads(line)

    def fit(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _busy_loop() -> subprocess.Popen:
    """One process spinning on one core (bounded: it ends by itself after BUSY_SECONDS)."""
    code = f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.3)
    return proc


def _write_synthetic(data_dir: Path) -> None:
    import numpy as np

    import mfrec

    ratings = mfrec.synthetic(**SYNTH)
    test = np.random.default_rng(0).random(len(ratings)) < 0.1
    np.savez(data_dir / "synthetic.npz", users=ratings.user_indices.astype(np.int32),
             items=ratings.item_indices.astype(np.int32), values=ratings.values.astype(np.float32), test=test)


def _export_revision(rev: str, dest: Path) -> Path:
    """The ``src`` tree of git revision ``rev`` under ``dest``."""
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="throughput,busy")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fits", type=int, default=5, help="busy suite: fits per cell and round")
    p.add_argument("--baseline", default=None, help="git revision of mfrec to run beside the working tree")
    p.add_argument("--libmf-python", default="/work/benchenv/bin/python")
    p.add_argument("--libmf-params", default='{"nr_bins": 20, "lambda_p1": 0, "lambda_q1": 0, '
                                             '"lambda_p2": 0.1, "lambda_q2": 0.1, "eta": 0.1}',
                   help="LibMF options (JSON; default: LibMF's own command-line defaults)")
    p.add_argument("--ks", default="64,128")
    p.add_argument("--busy-data", choices=sorted(BUSY_FITS), default="u1", help="busy suite: the data")
    p.add_argument("--out", default=str(HERE / "results" / "libmf.jsonl"))
    p.add_argument("--worker", choices=["mfrec", "libmf"], help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        (_mfrec_worker if args.worker == "mfrec" else _libmf_worker)(Path(args.data_dir))
        return

    suites = args.suite.split(",")
    run = time.strftime("%Y-%m-%dT%H:%M:%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    libmf_params = json.loads(args.libmf_params)
    with tempfile.TemporaryDirectory() as tmp, open(args.out, "a") as out:
        tmp = Path(tmp)
        if "throughput" in suites:
            print("generating synthetic 10M ratings ...", file=sys.stderr, flush=True)
            _write_synthetic(tmp)
        me = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(tmp), "--worker"]
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        sides = {"mfrec": (me + ["mfrec"], dict(base_env, PYTHONPATH=str(ROOT / "src")))}
        if args.baseline:
            old_src = _export_revision(args.baseline, tmp)
            sides[f"mfrec@{args.baseline}"] = (me + ["mfrec"], dict(
                base_env, PYTHONPATH=str(old_src), NUMBA_CACHE_DIR=str(tmp / "numba_baseline")))
        if "throughput" in suites:
            sides["libmf"] = ([args.libmf_python] + me[1:] + ["libmf"], base_env)
        workers = {name: Worker(name, argv_, env) for name, (argv_, env) in sides.items()}
        rows: list[dict] = []

        def record(row: dict) -> None:
            row.update(run=run, commit=commit, load=os.getloadavg()[0])
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()

        try:
            if "throughput" in suites:  # first touch of the data, page faults, allocations: not measured
                for name, w in workers.items():
                    w.fit(data="synthetic", k=64, threads=2, epochs=1, params=libmf_params if name == "libmf" else {})
            for rnd in range(args.rounds):
                if "throughput" in suites:
                    for k in (int(x) for x in args.ks.split(",")):
                        for threads in (1, 2):
                            for name, w in workers.items():
                                params = libmf_params if name == "libmf" else {}
                                one = w.fit(data="synthetic", k=k, threads=threads, epochs=1, params=params)
                                five = w.fit(data="synthetic", k=k, threads=threads, epochs=5, params=params)
                                diff = five["fit_seconds"] - one["fit_seconds"]
                                row = dict(suite="throughput", side=name, k=k, threads=threads, round=rnd,
                                           fit1_seconds=one["fit_seconds"], fit5_seconds=five["fit_seconds"],
                                           updates_per_second=4 * five["n_train"] / diff, rmse=five["rmse"])
                                if "epoch_seconds" in five:
                                    row["history_updates_per_second"] = 4 * five["n_train"] / sum(
                                        five["epoch_seconds"][1:5])
                                record(row)
                                print(json.dumps(row), file=sys.stderr, flush=True)
                if "busy" in suites:
                    # per side and busy setting one period (one busy loop), its 1- and 2-thread fits in
                    # turn: the host's speed moves between periods by more than the gap measured
                    # (benchmarks/RESULTS.md 11.11-11.12), so the pair shares the period
                    for busy in (False, True):
                        for name, w in workers.items():
                            if name == "libmf":
                                continue
                            k, epochs = BUSY_FITS[args.busy_data]
                            fits: dict[int, list[dict]] = {1: [], 2: []}
                            loop = _busy_loop() if busy else None
                            try:
                                for j in range(args.fits):  # 1, 2, then 2, 1, ...: neither always goes first
                                    for threads in ((1, 2) if j % 2 == 0 else (2, 1)):
                                        fits[threads].append(w.fit(data=args.busy_data, k=k, threads=threads,
                                                                   epochs=epochs))
                            finally:
                                if loop is not None:
                                    loop.kill()
                                    loop.wait()
                            for threads, done in fits.items():
                                row = dict(suite="busy", side=name, data=args.busy_data, busy_processes=int(busy),
                                           threads=threads, paired=True,
                                           round=rnd, fit_seconds=[f["fit_seconds"] for f in done],
                                           epochs_seconds=[sum(f["epoch_seconds"]) for f in done],
                                           grid_threads=[f.get("grid_threads") for f in done],
                                           median_seconds=_median([f["fit_seconds"] for f in done]),
                                           rmse=done[-1]["rmse"])
                                record(row)
                                print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            for w in workers.values():
                w.close()
    _summary(rows)


def _summary(rows: list[dict]) -> None:
    """Medians over the rounds, per configuration, with the ratios within the run."""
    thr = [r for r in rows if r["suite"] == "throughput"]
    if thr:
        print("| k | threads | side | updates/s (fit 5 - fit 1, median) | vs LibMF | mfrec per-epoch timings | RMSE (held-out 10%) |")
        print("|---:|---:|---|---:|---:|---:|---:|")
        keys = sorted({(r["k"], r["threads"]) for r in thr})
        for k, t in keys:
            cell = {s: [r for r in thr if (r["k"], r["threads"], r["side"]) == (k, t, s)]
                    for s in dict.fromkeys(r["side"] for r in thr)}
            lib = _median([r["updates_per_second"] for r in cell.get("libmf", [])]) if cell.get("libmf") else None
            for s, rs in cell.items():
                ups = _median([r["updates_per_second"] for r in rs])
                ratio = f"{ups / lib:.2f}x" if lib else "-"
                hist = [r["history_updates_per_second"] for r in rs if "history_updates_per_second" in r]
                hist_s = f"{_median(hist) / 1e6:.1f}M" if hist else "-"
                print(f"| {k} | {t} | {s} | {ups / 1e6:.1f}M | {ratio} | {hist_s} | {rs[-1]['rmse']:.4f} |")
    busy = [r for r in rows if r["suite"] == "busy"]
    if busy:
        print("| side | busy processes | threads | fit s (median of all fits) | 2 / 1 threads | RMSE (held out) |")
        print("|---|---:|---:|---:|---:|---:|")
        for s in dict.fromkeys(r["side"] for r in busy):
            for b in (0, 1):
                med = {}
                for t in (1, 2):
                    fits = [x for r in busy if (r["side"], r["busy_processes"], r["threads"]) == (s, b, t)
                            for x in r["fit_seconds"]]
                    if fits:
                        med[t] = _median(fits)
                for t in (1, 2):
                    if t in med:
                        rmse = [r["rmse"] for r in busy if (r["side"], r["busy_processes"], r["threads"]) == (s, b, t)]
                        ratio = f"{med[2] / med[1]:.2f}" if t == 2 and 1 in med else ""
                        print(f"| {s} | {b} | {t} | {med[t]:.4f} | {ratio} | {rmse[-1]:.4f} |")
        print("\n2 / 1 threads per period (one busy loop, the fits in turn): median (min-max); the 2-thread "
              "fits' grid threads")
        for s in dict.fromkeys(r["side"] for r in busy):
            for b in (0, 1):
                cells = {(r["round"], r["threads"]): r for r in busy if (r["side"], r["busy_processes"]) == (s, b)}
                ratios = [cells[(rnd, 2)]["median_seconds"] / cells[(rnd, 1)]["median_seconds"]
                          for rnd, t in cells if t == 1 and (rnd, 2) in cells]
                grids = [g for (rnd, t), r in cells.items() if t == 2 for g in r.get("grid_threads", [])]
                if ratios:
                    counts = {g: grids.count(g) for g in dict.fromkeys(grids)}
                    print(f"  {s}, busy processes {b}: {_median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}), "
                          f"grid threads {counts}")


if __name__ == "__main__":
    main()
