#!/usr/bin/env python
"""Render the latest run of benchmarks/results/core.jsonl into benchmarks/RESULTS.md.

The tables go between ``<!-- BEGIN core -->`` and ``<!-- END core -->``; the rest of RESULTS.md
(hand-written notes, scale runs) is left alone. Speed ratios compare rows of the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN core -->", "<!-- END core -->"


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


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "core.jsonl"
    target = HERE / "RESULTS.md"
    body = render(load_latest(src))
    text = target.read_text() if target.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    target.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print(f"updated {target}")


if __name__ == "__main__":
    main()
