#!/usr/bin/env python
"""Render the latest benchmark runs (benchmarks/results/*.jsonl) into benchmarks/RESULTS.md.

Each table goes between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers (core, scale,
recommend); the hand-written rest of RESULTS.md is left alone. Speed ratios compare rows of the
same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_latest(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path} is empty")
    last = max(r["run"] for r in rows)
    return [r for r in rows if r["run"] == last and "error" not in r]


def fmt_s(r: dict) -> str:
    return f"{r['fit_seconds_median']:.3f} ({r['fit_seconds_min']:.3f}-{r['fit_seconds_max']:.3f})"


def render(rows: list[dict]) -> str:
    m = rows[0]["machine"]
    out = [
        f"Run `{rows[0]['run']}` on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"numpy {m['numpy']}, numba {m['numba']}. Command: `{rows[0]['command']}`.",
        "",
        "Fit seconds: median of 3 timed fits after one warm-up fit (min-max in brackets); "
        "peak RSS: extra resident memory while fitting and predicting (VmHWM method, see "
        "`benchmarks/memory.py`). Ratios are measured in this run: peer median / mfrec median.",
        "",
    ]
    for split in dict.fromkeys(r["split"] for r in rows):
        srows = [r for r in rows if r["split"] == split and r.get("label") != "cold-cache"]
        peers = {r["model"]: r for r in srows if r["library"] != "mfrec"}
        ref = peers.get("surprise-svd")
        out += [f"### {split}", "",
                "| library | model | label | k | epochs/iters | RMSE | MAE | fit s median (min-max) | peak RSS MB | vs Surprise SVD | vs cmfrec ALS |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in srows:
            ratio = f"{ref['fit_seconds_median'] / r['fit_seconds_median']:.1f}x" if ref else "-"
            cm = peers.get("cmfrec-als")
            ratio2 = f"{cm['fit_seconds_median'] / r['fit_seconds_median']:.2f}x" if cm else "-"
            label = r.get("label", "") or ("lambda=%g" % r["params"].get("lambda_") if r["library"] == "cmfrec" else "")
            out.append(
                f"| {r['library']} | {r['model']} | {label} | {r['factors']} | {r['epochs_or_iterations']} | "
                f"{r['rmse']:.4f} | {r['mae']:.4f} | {fmt_s(r)} | {r['peak_rss_mb']:.1f} | {ratio} | {ratio2} |"
            )
        out.append("")
    cold = [r for r in rows if r.get("label") == "cold-cache"]
    if cold:
        out += ["### First-call compile cost (empty Numba cache, ml-100k u1)", "",
                "| model | first fit s (compile + fit) | fit s | compile s |", "|---|---:|---:|---:|"]
        for r in cold:
            out.append(f"| {r['model']} | {r['first_fit_seconds']:.2f} | {r['fit_seconds_median']:.3f} | "
                       f"{r['compile_seconds']:.2f} |")
        out.append("")
    return "\n".join(out)


def render_scale(rows: list[dict]) -> str:
    out = ["| suite | model | ratings | k | threads | epochs | fit s | median epoch s | rating updates/s | "
           "peak RSS above data MB | data RSS MB | recommend_many users/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["case"]["params"]
        epochs = p.get("epochs", p.get("iterations"))
        rec = f"{r['recommend_many_users_per_second']:,.0f}" if "recommend_many_users_per_second" in r else "-"
        out.append(f"| {r['suite']} | {r['case']['model']} | {r['n_ratings']:,} | {p['factors']} | {p['threads']} | {epochs} | "
                   f"{r['fit_seconds']:.1f} | {r['epoch_seconds_median']:.2f} | {r['updates_per_second'] / 1e6:.1f}M | "
                   f"{r['peak_rss_mb_above_data']:,.0f} | {r['data_rss_mb']:,.0f} | {rec} |")
    return "\n".join(out)


def render_recommend(rows: list[dict]) -> str:
    out = ["Fold-in quality (ml-latest-small, 20% of users held out, each folded in from a random half of "
           "their ratings; RMSE on the other half):", "",
           "| model | held-out users | test ratings | RMSE fold-in | RMSE trained in the model |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["part"] == "fold_in_quality":
            out.append(f"| {r['model']} | {r['heldout_users']} | {r['heldout_test_ratings']:,} | {r['rmse_fold_in']:.4f} | "
                       f"{r['rmse_trained']:.4f} |")
    out += ["", "`recommend_new` latency, 10-rating guests, all items, in-process:", "",
            "| model | k | items | requests | median ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["part"] == "recommend_new_latency":
            out.append(f"| {r['model']} | {r['factors']} | {r['items']:,} | {r['requests']:,} | {r['median_ms']:.2f} | "
                       f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} |")
    out += ["", "`recommend_many(n=10)` for all users (median of 3):", "",
            "| model | users | seconds | users/s |", "|---|---:|---:|---:|"]
    for r in rows:
        if r["part"] == "recommend_many":
            out.append(f"| {r['model']} | {r['users']:,} | {r['seconds_median']:.3f} | {r['users_per_second']:,.0f} |")
    return "\n".join(out)


def _section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def _latest(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return []
    last = max(r["run"] for r in rows)
    return [r for r in rows if r["run"] == last]


def main() -> None:
    results = HERE / "results"
    target = HERE / "RESULTS.md"
    text = target.read_text() if target.exists() else "# Benchmark results\n"
    if (results / "core.jsonl").exists():
        text = _section(text, "core", render(load_latest(results / "core.jsonl")))
    scale = [r for r in (json.loads(x) for x in (results / "scale.jsonl").read_text().splitlines() if x.strip())] \
        if (results / "scale.jsonl").exists() else []
    if scale:
        latest = {}
        for r in scale:  # the latest run of each (suite, case)
            latest[(r["suite"], json.dumps(r["case"], sort_keys=True))] = r
        text = _section(text, "scale", render_scale(list(latest.values())))
    rec = _latest(results / "recommend.jsonl")
    if rec:
        text = _section(text, "recommend", render_recommend(rec))
    target.write_text(text)
    print(f"updated {target}")


if __name__ == "__main__":
    main()
