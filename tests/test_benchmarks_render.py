"""The benchmark renderer (benchmarks/render_results.py) and the peer top-n scoring of
benchmarks/run_core.py, on small synthetic rows and data (no MovieLens, no peers needed)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mfrec

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load("render_results")
run_core = _load("run_core")

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 4.0, "python": "3.11", "numpy": "2.0", "numba": "0.60",
           "mfrec": "0.1.0", "platform": "Linux"}


def _row(library, model, split, rmse, fit, label="", section="core", family=None, fold=None, ranking=None, **kw):
    r = {"run": "2000-01-01T00:00:00", "machine": MACHINE, "command": "bash benchmarks/run.sh", "split": split,
         "section": section, "library": library, "model": model, "version": "1.0", "factors": 10,
         "epochs_or_iterations": 5, "params": {"lambda_": 10.0}, "rmse": rmse, "mae": None if rmse is None else rmse * 0.8,
         "fit_seconds_median": fit, "fit_seconds_min": fit * 0.9, "fit_seconds_max": fit * 1.1, "peak_rss_mb": 12.0,
         "label": label, "repeats": 3}
    if family:
        r["family"], r["fold"] = family, fold
    if ranking is not None:
        r["ranking"] = ranking
    r.update(kw)
    return r


def _rows():
    rank = {m: 0.1 for m in run_core.RANKING}
    rank["n_users_relevant"] = 7
    rows = [
        _row("surprise", "surprise-svd", "ml-100k/u1", 0.95, 0.4, family="ml-100k/u1-u5", fold=1, ranking=rank),
        _row("cmfrec", "cmfrec-als", "ml-100k/u1", 0.93, 0.5, family="ml-100k/u1-u5", fold=1, ranking=rank),
        _row("mfrec", "svdpp", "ml-100k/u1", 0.91, 0.1, label="default", family="ml-100k/u1-u5", fold=1, ranking=rank),
        _row("mfrec", "funk-mf", "ml-100k/u1", 0.94, 0.1, label="default", family="ml-100k/u1-u5", fold=1),
        _row("mfrec", "implicit-als", "ml-100k/u1", None, 0.3, label="default", ranking=rank),
        _row("mfrec", "svdpp", "ml-100k/u1", 0.912, 0.6, label="tuned", ranking=rank),
        _row("mfrec", "biased-mf", "ml-100k/u1", 0.0, 6.0, label="cold-cache", section="cold-cache",
             first_fit_seconds=6.1, compile_seconds=6.0),
    ]
    for fold, (a, b, c) in enumerate([(0.94, 0.92, 0.90), (0.93, 0.91, 0.89)], start=2):
        split = f"ml-100k/u{fold}"
        rows += [_row("surprise", "surprise-svd", split, a, 0.4, section="folds", family="ml-100k/u1-u5", fold=fold, repeats=1),
                 _row("cmfrec", "cmfrec-als", split, b, 0.5, section="folds", family="ml-100k/u1-u5", fold=fold, repeats=1),
                 _row("mfrec", "svdpp", split, c, 0.2, label="default", section="folds", family="ml-100k/u1-u5",
                      fold=fold, repeats=1)]
    return rows


def test_core_table_header_and_ratios():
    meta = {"run": "2000-01-01T00:00:00", "machine": MACHINE, "command": "bash benchmarks/run.sh", "section": "meta",
            "wall_seconds": 600.0, "repeats": 3, "peer_env": {"scikit-surprise": "1.1.5", "cmfrec": "3.5"}}
    text = render.render(_rows(), meta)
    assert "Test CPU (2 cores, 4.0 GiB RAM" in text
    assert "mfrec 0.1.0" in text and "scikit-surprise 1.1.5" in text and "cmfrec 3.5" in text
    assert "`bash benchmarks/run.sh`" in text and "10.0 min" in text
    svdpp = next(line for line in text.splitlines() if "| svdpp | default" in line)
    assert "| 4.0x | 5.0x |" in svdpp  # 0.4 / 0.1 and 0.5 / 0.1
    assert "implicit-als" not in text  # no RMSE: ranking table only
    assert "| biased-mf | 6.10 | 6.000 | 6.00 |" in text  # compile-cost table


def test_ranking_table():
    text = render.render_ranking(_rows())
    assert "| mfrec | implicit-als | default | 0.300 | 0.1000 |" in text
    assert "funk-mf" not in text  # no ranking values in that row


def test_folds_mean_std_and_partial_models():
    text = render.render_folds(_rows(), {"fold_repeats": 1})
    line = next(x for x in text.splitlines() if x.startswith("| mfrec | svdpp |"))
    vals = [0.91, 0.90, 0.89]
    mean = sum(vals) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 3)
    assert f"{mean:.4f} +- {std:.4f}" in line and "| 3 |" in line
    assert "cmfrec-als (lambda=10)" in text
    assert "funk-mf" not in text  # only on u1: left out of the summary
    assert "<details>" in text and "</details>" in text


def test_sections_keep_hand_written_text():
    text = "# T\n\nnotes\n\n<!-- BEGIN core -->\nold\n<!-- END core -->\n\nmore notes\n"
    out = render._section(text, "core", "new")
    assert "notes" in out and "more notes" in out and "new" in out and "old" not in out
    out = render._section(out, "folds", "folds body")
    assert out.index("BEGIN folds") > out.index("END core")


def test_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    paths = render.make_plots([r for r in _rows() if r["section"] != "folds"], tmp_path)
    assert set(paths) == {"rmse", "ndcg@10"}
    for p in paths.values():
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_peer_topn_scoring_matches_evaluate(tmp_path):
    """The driver's scoring of CSV top-n lists gives evaluate()'s numbers on the same lists."""
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"user": rng.integers(0, 60, n).astype(str), "item": rng.integers(0, 120, n).astype(str),
                       "rating": rng.integers(1, 6, n).astype(float)}).drop_duplicates(["user", "item"])
    cut = int(0.8 * len(df))
    train_df, test_df = df.iloc[:cut], df.iloc[cut:]
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    train_df.to_csv(train_csv, index=False)
    test_df.to_csv(test_csv, index=False)
    train = mfrec.Ratings.from_dataframe(pd.read_csv(train_csv, dtype={"user": str, "item": str}), "user", "item", "rating")
    test = mfrec.Ratings.from_dataframe(pd.read_csv(test_csv, dtype={"user": str, "item": str}), "user", "item", "rating")
    model = mfrec.BiasedMF(factors=4, epochs=3, threads=1).fit(train)
    expected = mfrec.evaluate(model, test, metrics=run_core.RANKING, train=train)
    users = [u for u in pd.unique(test.raw_users) if u in set(train.raw_users)]
    recs = model.recommend_many(users, n=10)
    recs[["user", "item", "rank"]].to_csv(tmp_path / "topn.csv", index=False)
    row = {"topn_file": str(tmp_path / "topn.csv")}
    run_core.score_peer_topn(row, train_csv, test_csv)
    for name in run_core.RANKING:
        assert row["ranking"][name] == pytest.approx(expected[name], rel=1e-12), name
    assert row["ranking"]["n_users_relevant"] == expected["n_users_relevant"]
