#!/usr/bin/env python
"""Render the latest benchmark runs (benchmarks/results/*.jsonl) into benchmarks/RESULTS.md.

Each generated block goes between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers; the
hand-written rest of RESULTS.md is left alone (a missing block is appended at the end). Blocks:

* ``core``: the latest run of ``run_core.py`` on the primary splits (RMSE, MAE, fit time, memory,
  speed ratios against Surprise SVD and cmfrec ALS of the same run) and the compile-cost table;
* ``ranking``: ranking metrics@10 of the same run, mfrec and peers scored by the same code;
* ``folds``: per fold family (ml-100k u1-u5, ml-latest-small 5-fold) the mean +- std over the
  folds and the per-fold rows (collapsed);
* ``plots``: RMSE and ndcg@10 against fit time, PNGs written to ``benchmarks/results/``;
* ``scale``, ``recommend``: ``bench_scale.py`` and ``bench_recommend.py``.

Every number comes from the JSON lines; nothing is typed in by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PRIMARY = ("ml-100k/u1", "ml-latest-small/random-80-20")
RANKING = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "novelty@10", "arp@10"]
PLOTS = {"rmse": "rmse_vs_fit_time.png", "ndcg@10": "ndcg_vs_fit_time.png"}


# ---------------------------------------------------------------------------- loading
def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_latest(path: Path, keep_errors: bool = False) -> list[dict]:
    rows = _read(path)
    if not rows:
        raise SystemExit(f"{path} is empty")
    last = max(r["run"] for r in rows)
    return [r for r in rows if r["run"] == last and (keep_errors or "error" not in r)]


def section_of(r: dict) -> str:
    """Rows written before sections existed: cold-cache by label, everything else core."""
    if "section" in r:
        return r["section"]
    return "cold-cache" if r.get("label") == "cold-cache" else "core"


# ---------------------------------------------------------------------------- formatting
def fmt_s(r: dict) -> str:
    if r.get("repeats", 3) == 1 or r["fit_seconds_min"] == r["fit_seconds_max"]:
        return f"{r['fit_seconds_median']:.3f}"
    return f"{r['fit_seconds_median']:.3f} ({r['fit_seconds_min']:.3f}-{r['fit_seconds_max']:.3f})"


def fmt_ratio(v: float) -> str:
    if v >= 10:
        return f"{v:.0f}x"
    if v >= 1:
        return f"{v:.1f}x"
    return f"{v:.2f}x"


def fmt_num(v, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def label_of(r: dict) -> str:
    if r.get("label"):
        return r["label"]
    if r["library"] == "cmfrec":
        return "lambda=%g" % r["params"].get("lambda_")
    return ""


def point_name(r: dict) -> str:
    """Short name for plots: 'mfrec svdpp', 'mfrec svdpp (tuned)', 'surprise-svd'."""
    name = r["model"] if r["library"] != "mfrec" else f"mfrec {r['model']}"
    return f"{name} (tuned)" if r.get("label") == "tuned" else name


def run_header(rows: list[dict], meta: dict | None) -> list[str]:
    first = meta or rows[0]
    m = first["machine"]
    versions = [f"Python {m['python']}", f"numpy {m['numpy']}", f"numba {m['numba']}"]
    mfrec_v = m.get("mfrec") or next((r["version"] for r in rows if r.get("library") == "mfrec"), None)
    if mfrec_v:
        versions.insert(0, f"mfrec {mfrec_v}")
    peer = first.get("peer_env") or {}
    for lib, dist in (("surprise", "scikit-surprise"), ("cmfrec", "cmfrec")):
        v = peer.get(dist) or next((r["version"] for r in rows if r.get("library") == lib), None)
        if v:
            versions.append(f"{dist} {v}")
    if peer.get("numpy"):
        versions.append(f"peers' env: Python {peer['python']}, numpy {peer['numpy']}")
    mem = f", {m['memory_gib']} GiB RAM" if m.get("memory_gib") else ""
    out = [f"Run `{first['run']}` on {m['cpu']} ({m['cores']} cores{mem}; {m.get('platform', '')}).",
           "",
           f"Versions: {', '.join(versions)}.",
           "",
           f"Command: `{first['command']}`"
           + (f" (driver: `{first['driver_command']}`)" if first.get("driver_command", first["command"]) != first["command"] else "")
           + "."]
    if meta and "wall_seconds" in meta:
        out[-1] += f" Whole suite (all splits, folds, ranking, compile cost): {meta['wall_seconds'] / 60:.1f} min wall time."
    return out + [""]


# ---------------------------------------------------------------------------- core
def render(rows: list[dict], meta: dict | None = None) -> str:
    repeats = (meta or {}).get("repeats", 3)
    out = run_header(rows, meta) + [
        f"Fit seconds: median of {repeats} timed fits after one warm-up fit (min-max in brackets); "
        "peak RSS: extra resident memory while fitting and predicting (VmHWM method, see "
        "`benchmarks/memory.py`). Ratios are measured in this run: peer median / mfrec median "
        "(above 1 = that row is faster than the peer).",
        "",
    ]
    core = [r for r in rows if section_of(r) == "core" and r.get("rmse") is not None]
    for split in dict.fromkeys(r["split"] for r in core):
        srows = [r for r in core if r["split"] == split]
        peers = {r["model"]: r for r in srows if r["library"] != "mfrec"}
        ref, cm = peers.get("surprise-svd"), peers.get("cmfrec-als")
        out += [f"### {split}", "",
                "| library | model | label | k | epochs/iters | RMSE | MAE | fit s median (min-max) | peak RSS MB | vs Surprise SVD | vs cmfrec ALS |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in srows:
            ratio = fmt_ratio(ref["fit_seconds_median"] / r["fit_seconds_median"]) if ref else "-"
            ratio2 = fmt_ratio(cm["fit_seconds_median"] / r["fit_seconds_median"]) if cm else "-"
            out.append(
                f"| {r['library']} | {r['model']} | {label_of(r)} | {(r.get('params') or {}).get('factors', r['factors'])} | "
                f"{r['epochs_or_iterations']} | "
                f"{r['rmse']:.4f} | {r['mae']:.4f} | {fmt_s(r)} | {r['peak_rss_mb']:.1f} | {ratio} | {ratio2} |"
            )
        out.append("")
    cold = [r for r in rows if section_of(r) == "cold-cache"]
    if cold:
        out += ["### First-call compile cost (empty Numba cache, ml-100k u1)", "",
                "| model | first fit s (compile + fit) | fit s | compile s |", "|---|---:|---:|---:|"]
        for r in cold:
            out.append(f"| {r['model']} | {r['first_fit_seconds']:.2f} | {r['fit_seconds_median']:.3f} | "
                       f"{r['compile_seconds']:.2f} |")
        out.append("")
    errors = [r for r in rows if "error" in r]
    if errors:
        out += ["Failed in this run: " + ", ".join(f"{r.get('model')} on {r.get('split')}" for r in errors) + ".", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- head to head
def render_speed(rows: list[dict]) -> str:
    speed = [r for r in rows if section_of(r) == "speed"]
    if not speed:
        return "No head-to-head rounds in this run."
    out = ["Surprise SVD and mfrec BiasedMF (k=100, 20 epochs, mfrec on 2 threads), each round a fresh "
           "process per side, the sides alternating which runs first. Ratio = median of all Surprise fit "
           "times / median of all mfrec fit times of the run.", "",
           "| split | rounds | Surprise SVD fits: median s (min-max) | mfrec BiasedMF fits: median s (min-max) | "
           "ratio | per-round ratios | RMSE Surprise / mfrec |",
           "|---|---:|---:|---:|---:|---|---|"]
    for split in dict.fromkeys(r["split"] for r in speed):
        srows = [r for r in speed if r["split"] == split]
        side = {lib: [r for r in srows if r["library"] == lib] for lib in ("surprise", "mfrec")}
        if not side["surprise"] or not side["mfrec"]:
            continue
        times = {lib: sorted(t for r in rs for t in r.get("fit_seconds_all", [r["fit_seconds_median"]]))
                 for lib, rs in side.items()}
        med = {lib: ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])
               for lib, ts in times.items()}
        rounds = sorted({r["round"] for r in srows})
        per_round = []
        for rnd in rounds:
            a = [r for r in side["surprise"] if r["round"] == rnd]
            b = [r for r in side["mfrec"] if r["round"] == rnd]
            if a and b:
                per_round.append(a[0]["fit_seconds_median"] / b[0]["fit_seconds_median"])
        rmse = f"{side['surprise'][0]['rmse']:.4f} / {side['mfrec'][0]['rmse']:.4f}"
        out.append(f"| {split} | {len(rounds)} | {med['surprise']:.3f} ({times['surprise'][0]:.3f}-"
                   f"{times['surprise'][-1]:.3f}) | {med['mfrec']:.3f} ({times['mfrec'][0]:.3f}-{times['mfrec'][-1]:.3f}) | "
                   f"{fmt_ratio(med['surprise'] / med['mfrec'])} | {', '.join(f'{x:.1f}' for x in per_round)} | {rmse} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------- ranking
def render_ranking(rows: list[dict]) -> str:
    ranked = [r for r in rows if section_of(r) == "core" and r.get("ranking")]
    if not ranked:
        return "No ranking metrics in the latest run."
    thr = ranked[0].get("relevance_threshold", 4.0)
    out = [f"Same run as section 1 (`{ranked[0]['run']}`). Relevant = test rating >= {thr:g}; "
           "lists of 10 over the training items the user did not rate in training; accuracy "
           "metrics averaged over the test users with a relevant test item (`users w/ relevant`), novelty and "
           "ARP over all ranked users, coverage = distinct recommended items / training items. "
           "Fit s: as in section 1 (median).", ""]
    short = {"precision@10": "P@10", "recall@10": "R@10", "ndcg@10": "NDCG@10", "map@10": "MAP@10",
             "hit_rate@10": "HR@10", "coverage@10": "cov@10", "novelty@10": "novelty@10", "arp@10": "ARP@10"}
    for split in dict.fromkeys(r["split"] for r in ranked):
        srows = [r for r in ranked if r["split"] == split]
        out += [f"### {split}", "",
                "| library | model | label | fit s | " + " | ".join(short[m] for m in RANKING) + " | users w/ relevant |",
                "|---|---|---|---:|" + "---:|" * len(RANKING) + "---:|"]
        for r in srows:
            g = r["ranking"]
            vals = [fmt_num(g.get(m), 2 if m == "arp@10" else (3 if m == "novelty@10" else 4)) for m in RANKING]
            out.append(f"| {r['library']} | {r['model']} | {label_of(r)} | {r['fit_seconds_median']:.3f} | "
                       + " | ".join(vals) + f" | {g.get('n_users_relevant', '-')} |")  # users with a relevant test item
        out.append("")
    checks = [r["topn_check_max_abs_diff"] for r in ranked if r.get("topn_check_max_abs_diff") is not None]
    if checks:
        out += [f"Peer lists: largest difference between the numpy score used for ranking and the library's "
                f"own (unclipped) prediction on sampled test pairs: {max(checks):.1e}.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- fold families
def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def render_folds(rows: list[dict], meta: dict | None = None) -> str:
    fold_rows = [r for r in rows if r.get("family") and section_of(r) in ("core", "folds")
                 and r.get("label", "default") in ("default", "") and r.get("rmse") is not None]
    if not [r for r in fold_rows if section_of(r) == "folds"]:
        return "No fold runs in the latest run."
    fold_repeats = (meta or {}).get("fold_repeats", 1)
    fits = "one timed fit" if fold_repeats == 1 else f"the median of {fold_repeats} timed fits"
    out = [f"Same run as section 1. Mean over the folds +- population standard deviation (ddof=0, as "
           f"Surprise and `mfrec.cross_validate` report it). Fit s: mean over the folds of the per-fold "
           f"fit time; the folds other than the primary split (u1) have {fits} "
           f"after one warm-up fit, u1 the median of section 1, so these times are noisier than "
           f"section 1's. cmfrec lambda: tuned on the first fold, reused on the others.", ""]
    for family in dict.fromkeys(r["family"] for r in fold_rows):
        frows = [r for r in fold_rows if r["family"] == family]
        n_folds = len({r["fold"] for r in frows})
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in frows:
            groups.setdefault((r["library"], r["model"]), []).append(r)
        out += [f"### {family}", "",
                "| library | model | folds | RMSE mean +- std | MAE mean +- std | fit s mean |",
                "|---|---|---:|---:|---:|---:|"]
        for (lib, model), g in groups.items():
            if len(g) < n_folds:
                continue  # run on some folds only (e.g. Surprise SVD++ and funk-mf: u1 only)
            rm, rs = _mean_std([r["rmse"] for r in g])
            mm, ms = _mean_std([r["mae"] for r in g])
            fm, _ = _mean_std([r["fit_seconds_median"] for r in g])
            name = model + (" (lambda=%g)" % g[0]["params"]["lambda_"] if lib == "cmfrec" else "")
            out.append(f"| {lib} | {name} | {len(g)} | {rm:.4f} +- {rs:.4f} | {mm:.4f} +- {ms:.4f} | {fm:.3f} |")
        out += ["", f"<details><summary>{family}: every fold</summary>", "",
                "| fold | split | library | model | RMSE | MAE | fit s | timed fits |",
                "|---:|---|---|---|---:|---:|---:|---:|"]
        for (lib, model), g in groups.items():
            if len(g) < n_folds:
                continue
            for r in sorted(g, key=lambda r: r["fold"]):
                out.append(f"| {r['fold']} | {r['split']} | {lib} | {model} | {r['rmse']:.4f} | {r['mae']:.4f} | "
                           f"{r['fit_seconds_median']:.3f} | {r.get('repeats', '-')} |")
        out += ["", "</details>", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- plots
MARKERS = {"baseline": "v", "funk-mf": "P", "biased-mf": "o", "svdpp": "D", "als": "s", "implicit-als": "*",
           "surprise-svd": "o", "surprise-svdpp": "D", "cmfrec-als": "s"}
COLORS = {"mfrec": "tab:blue", "surprise": "tab:orange", "cmfrec": "tab:green"}


def _style(r: dict) -> dict:
    """Colour by library, marker by model, hollow marker for tuned settings."""
    color = COLORS.get(r["library"], "gray")
    tuned = r.get("label") == "tuned"
    return {"marker": MARKERS.get(r["model"], "X"), "edgecolors": color, "linewidths": 1.4,
            "facecolors": "none" if tuned else color, "s": 70 if r["model"] == "implicit-als" else 42}


def make_plots(rows: list[dict], folder: Path) -> dict[str, Path]:
    """One PNG per metric (RMSE, ndcg@10), one panel per primary split: metric against median
    fit seconds (log x), one point per library/model/label, identified by colour (library) and
    marker (model; hollow = tuned settings) in one legend. Returns {metric: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    core = [r for r in rows if section_of(r) == "core"]
    written = {}
    for metric, fname in PLOTS.items():
        def value(r):
            return r.get("rmse") if metric == "rmse" else (r.get("ranking") or {}).get(metric)

        splits = [s for s in PRIMARY if any(r["split"] == s and value(r) is not None for r in core)]
        if not splits:
            continue
        fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits) + 2.2, 4.4), squeeze=False)
        legend: dict[str, object] = {}
        for ax, split in zip(axes[0], splits):
            pts = [r for r in core if r["split"] == split and value(r) is not None]
            for r in pts:
                h = ax.scatter(r["fit_seconds_median"], value(r), zorder=3, **_style(r))
                legend.setdefault(point_name(r), h)
            ax.set_xscale("log")
            ax.set_xlabel("fit seconds (median of the timed fits, log scale)")
            ax.set_ylabel("test RMSE (lower is better)" if metric == "rmse" else f"{metric} (higher is better)")
            ax.set_title(split, fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.margins(x=0.15, y=0.1)
        fig.legend(list(legend.values()), list(legend.keys()), loc="center left", bbox_to_anchor=(0.80, 0.5),
                   fontsize=8, frameon=False)
        fig.suptitle(f"{'RMSE' if metric == 'rmse' else metric} vs fit time (run {pts[0]['run']})", fontsize=10)
        fig.tight_layout(rect=(0, 0, 0.80, 1))
        folder.mkdir(exist_ok=True)
        path = folder / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written[metric] = path
    return written


def render_plots(paths: dict[str, Path]) -> str:
    if not paths:
        return "No plots (no core rows)."
    out = []
    for metric, path in paths.items():
        rel = path.relative_to(HERE).as_posix()
        title = "RMSE" if metric == "rmse" else metric
        out += [f"![{title} vs fit time]({rel})", ""]
    return "\n".join(out).rstrip()


# ---------------------------------------------------------------------------- scale, recommend
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


# ---------------------------------------------------------------------------- RESULTS.md
def _section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def _latest(path: Path) -> list[dict]:
    rows = _read(path)
    if not rows:
        return []
    last = max(r["run"] for r in rows)
    return [r for r in rows if r["run"] == last]


def render_io(rows: list[dict]) -> str:
    out = ["| case | ratings | file MB | seconds | ratings/s |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if "seconds" in r:
            out.append(f"| {r['case']} | {r['ratings']:,} | {r['bytes'] / 2**20:,.0f} | {r['seconds']:.1f} | "
                       f"{r['ratings_per_second'] / 1e6:.1f}M |")
    for r in rows:
        if "save_seconds" in r:
            out += ["", f"Model file of a {r['case']} trained on {r['ratings']:,} ratings: {r['bytes'] / 2**20:,.0f} MB, "
                        f"save {r['save_seconds']:.2f} s, load {r['load_seconds']:.2f} s (median of 3)."]
    return "\n".join(out)


def main() -> None:
    target = HERE / "RESULTS.md"
    text = target.read_text() if target.exists() else "# Benchmark results\n"
    if (RESULTS / "core.jsonl").exists():
        everything = load_latest(RESULTS / "core.jsonl", keep_errors=True)
        meta = next((r for r in everything if r.get("section") == "meta"), None)
        rows = [r for r in everything if r.get("section") != "meta"]
        ok = [r for r in rows if "error" not in r]
        text = _section(text, "core", render(rows, meta))
        text = _section(text, "speed", render_speed(ok))
        text = _section(text, "ranking", render_ranking(ok))
        text = _section(text, "folds", render_folds(ok, meta))
        text = _section(text, "plots", render_plots(make_plots(ok, RESULTS)))
    scale = _read(RESULTS / "scale.jsonl")
    if scale:
        latest = {}
        for r in scale:  # the latest run of each (suite, case)
            latest[(r["suite"], json.dumps(r["case"], sort_keys=True))] = r
        text = _section(text, "scale", render_scale(list(latest.values())))
    rec = _latest(RESULTS / "recommend.jsonl")
    if rec:
        text = _section(text, "recommend", render_recommend(rec))
    io_rows = _latest(RESULTS / "io.jsonl")
    if io_rows:
        text = _section(text, "io", render_io(io_rows))
    if (RESULTS / "cmf.md").exists():  # written by bench_cmf.py; its links are relative to results/
        cmf = (RESULTS / "cmf.md").read_text().replace("](cmf_", "](results/cmf_")
        cmf = "\n".join(line for line in cmf.splitlines() if not line.startswith("## "))
        text = _section(text, "cmf", cmf.strip())
    target.write_text(text)
    print(f"updated {target}")


if __name__ == "__main__":
    main()
