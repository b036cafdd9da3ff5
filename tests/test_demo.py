"""mfrec.demo: the guests' helpers on small tables, and `run_demo` end to end on ml-latest-small."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import mfrec
import mfrec.demo
from mfrec.demo import GUESTS, compile_notice, genre_guest, genre_share, guest_recommendations, readme_tables, run_demo
from tests.conftest import dataset_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- BEGIN demo-guests[^>]*-->\n(.*?)<!-- END demo-guests -->", re.S)


def readme_guest_block() -> str:
    """The README's generated guest tables (between the demo-guests markers)."""
    found = BLOCK.search(README.read_text(encoding="utf-8"))
    assert found, "README.md lost its <!-- BEGIN demo-guests --> ... <!-- END demo-guests --> block"
    return found.group(1)


def table_rows(block: str, first_header: str) -> list[list[str]]:
    """Cells of the markdown table in ``block`` whose header's first cell is ``first_header``."""
    lines = block.splitlines()
    start = next(k for k, line in enumerate(lines)
                 if line.startswith("|") and line.strip("|").split("|")[0].strip() == first_header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _items(n: int = 30) -> pd.DataFrame:
    genres = [["Children"], ["Drama"], ["Animation", "Children"], ["Drama", "Romance"], ["Horror"]]
    return pd.DataFrame({"title": [f"Film {k}" for k in range(n)], "genres": [genres[k % 5] for k in range(n)]},
                        index=pd.Index(range(n)[::-1], name="item"))  # ids in descending order on purpose


def test_genre_guest_rates_the_first_items_of_a_genre_by_id():
    items = _items()
    guest = genre_guest(items, "Children", n=4)
    children = sorted(i for i, g in zip(items.index, items["genres"]) if "Children" in g)
    assert list(guest) == children[:4]
    assert set(guest.values()) == {5.0}
    assert genre_guest(items, "Drama", n=3, rating=4.5) == {i: 4.5 for i in sorted(
        i for i, g in zip(items.index, items["genres"]) if "Drama" in g)[:3]}
    assert genre_guest(items, "Western") == {}


def test_genre_share():
    recs = pd.DataFrame({"item": [1, 2, 3, 4], "genres": [["Drama"], ["Children"], ["Animation"], []]})
    assert genre_share(recs, ("Drama",)) == 0.25
    assert genre_share(recs, ("Children", "Animation")) == 0.5
    assert genre_share(recs.iloc[:0], ("Drama",)) == 0.0


def test_guest_recommendations_on_synthetic_data():
    r = mfrec.synthetic(60, 30, 700, factors=3, seed=2)
    items = _items()
    m = mfrec.ImplicitALS(factors=4, iterations=3, regularization=0.5).fit(r).attach_items(items)
    recs = guest_recommendations(m, items, n=7, explain=1)
    assert set(recs) == set(GUESTS)
    for name, genre in GUESTS.items():
        df = recs[name]
        assert len(df) == 7
        assert not set(df["item"]) & set(genre_guest(items, genre))
        assert {"title", "genres", "because"} <= set(df.columns)
        assert np.all(np.diff(df["score"].to_numpy()) <= 0)


@pytest.mark.realdata
def test_run_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MFREC_DATA_DIR", str(dataset_dir("ml-latest-small").parent))
    monkeypatch.setattr(mfrec.demo, "kernels_cached", lambda: False)
    out = tmp_path / "out"
    buf = io.StringIO()
    result = run_demo("ml-latest-small", out, console=Console(file=buf, width=120), progress=None,
                      fit=lambda m, tr, va: m.fit(tr, va))
    # files: both models and the learning curve, nothing else
    assert sorted(p.name for p in out.iterdir()) == ["biased-mf.mfrec", "implicit-als.mfrec", "learning-curve.png"]
    png = (out / "learning-curve.png").read_bytes()
    assert len(png) > 1000 and png.startswith(PNG_MAGIC)
    bmf = mfrec.load_model(out / "biased-mf.mfrec")
    ranker = mfrec.load_model(out / "implicit-als.mfrec")
    assert type(bmf).__name__ == "BiasedMF" and type(ranker).__name__ == "ImplicitALS"
    assert ranker.item_info_ is not None and bmf.item_info_ is not None
    assert bmf.metrics_["rmse"] == pytest.approx(result["results"]["BiasedMF"][0])
    # the rating model beats the baseline on the held-out 20%
    (b_rmse, b_mae), (m_rmse, m_mae) = result["results"]["Baseline"], result["results"]["BiasedMF"]
    assert m_rmse < b_rmse and m_mae < b_mae and m_rmse < 0.95
    # the acceptance bounds for the two guests
    s = result["shares"]
    assert s["children_or_animation_share_kids_guest"] >= 0.5, s
    assert s["drama_share_drama_guest"] - s["drama_share_kids_guest"] >= 0.20, s
    assert s["shared_titles"] <= 5, s
    # the story was told
    text = buf.getvalue()
    for fragment in ("ml-latest-small", "held-out", "actual vs predicted", "children's films lover",
                     "drama lover", "saved"):
        assert fragment in text, fragment
    # the demo shows the ten films each guest rated, and says when kernels are compiled
    for titles in result["rated"].values():
        assert len(titles) == 10
        for title in titles:
            assert title[:20] in text, title
    assert "compiling kernels" in text  # kernels_cached() is False here (monkeypatched)
    # the README's tables are the demo's output: shares, rated films, both top-20 lists
    readme = readme_guest_block()
    computed = result["readme"]
    how = ("README.md's guest tables no longer match what `mfrec demo` computes; replace the block "
           "between the demo-guests markers with mfrec.demo.readme_tables(...) of run_demo:\n" + computed)
    shares = table_rows(readme, "")
    assert [r[1:] for r in shares] == [r[1:] for r in table_rows(computed, "")], how
    assert table_rows(readme, "rated 5.0") == table_rows(computed, "rated 5.0"), how
    for k, name in enumerate(GUESTS, 1):
        listed = [r[k] for r in table_rows(readme, "#")]
        actual = [f"{r.title} ({', '.join(r.genres)})" for r in result["recommendations"][name].itertuples()]
        assert listed == actual, f"{name}: README top 20 != demo top 20\n" + how
    contrast = f"share {s['biasedmf_shared_titles']} of 20 titles"
    assert contrast in " ".join(readme.split()), f"README's BiasedMF contrast != demo ({contrast})\n" + how
    assert s["biasedmf_shared_titles"] > 2 * s["shared_titles"], s  # the rating model's lists overlap more
    assert readme == computed, how
    # the saved ranker reproduces the guests' lists
    items = mfrec.load_dataset("ml-latest-small", progress=False).items
    again = guest_recommendations(ranker, items, n=20)
    assert len(set(again["children's films lover"]["item"]) & set(again["drama lover"]["item"])) == s["shared_titles"]


def test_readme_tables_render_the_demo_results():
    items = _items()
    recs = {name: pd.DataFrame({"item": [1, 2], "title": ["A", "B"], "genres": [["Drama"], []]}) for name in GUESTS}
    rated = {name: [f"R{k}" for k in range(10)] for name in GUESTS}
    shares = {"children_or_animation_share_kids_guest": 0.75, "drama_share_drama_guest": 0.55,
              "drama_share_kids_guest": 0.25, "shared_titles": 1, "children_or_animation_share_catalogue": 0.1,
              "biasedmf_shared_titles": 12, "biasedmf_children_or_animation_share_kids_guest": 0.05,
              "biasedmf_top_kids_guest": ["X", "Y", "Z"]}
    md = readme_tables(recs, rated, shares)
    assert "**75%** (catalogue base rate 10%)" in md and "**55%** (30 points more)" in md
    assert "share 12 of 20 titles, with 5% Children/Animation" in " ".join(md.split())
    assert table_rows(md, "rated 5.0")[9] == ["10", "R9", "R9"]
    assert table_rows(md, "#") == [["1", "A (Drama)", "A (Drama)"], ["2", "B ()", "B ()"]]
    assert len(genre_guest(items, "Children")) == 10


def test_compile_notice(monkeypatch):
    monkeypatch.setattr(mfrec.demo, "kernels_cached", lambda: True)
    assert compile_notice() is None
    monkeypatch.setattr(mfrec.demo, "kernels_cached", lambda: False)
    assert "compiling kernels (first run only" in compile_notice()
    monkeypatch.setattr(mfrec.demo, "kernels_cached", lambda: None)
    assert "compiling kernels if needed (first run only" in compile_notice()


def test_kernels_cached_sees_an_empty_numba_cache(tmp_path):
    """A cold cache (an empty NUMBA_CACHE_DIR) is detected; no kernel is compiled to find out."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(Path(mfrec.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", "from mfrec.demo import kernels_cached; print(kernels_cached())"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert not any(tmp_path.rglob("*.nbi"))
