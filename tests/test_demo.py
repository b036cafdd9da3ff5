"""mfrec.demo: the guests' helpers on small tables, and `run_demo` end to end on ml-latest-small."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import mfrec
from mfrec.demo import GUESTS, genre_guest, genre_share, guest_recommendations, run_demo
from tests.conftest import dataset_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    # the saved ranker reproduces the guests' lists
    items = mfrec.load_dataset("ml-latest-small", progress=False).items
    again = guest_recommendations(ranker, items, n=20)
    assert len(set(again["children's films lover"]["item"]) & set(again["drama lover"]["item"])) == s["shared_titles"]
