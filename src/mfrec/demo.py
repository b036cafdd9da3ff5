"""`mfrec demo`: the seed notebooks' story, done right, in under a minute.

Trains the default rating model (BiasedMF) next to the Baseline on an 80/20 split, shows
actual-vs-predicted rows, then the notebook's two guests (ten children's films rated 5, ten
dramas rated 5) get recommendations from ImplicitALS folded in without retraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

#: the two guests of the first seed notebook: the first ten titles (by id) of a genre, rated 5
GUESTS = {"children's films lover": "Children", "drama lover": "Drama"}


def genre_guest(items: pd.DataFrame, genre: str, n: int = 10, rating: float = 5.0) -> dict[Any, float]:
    """Ratings of a guest who gives ``rating`` to the first ``n`` items (by id) of ``genre``."""
    has = items["genres"].apply(lambda g: genre in g)
    return {item: rating for item in sorted(items.index[has])[:n]}


def genre_share(recs: pd.DataFrame, genres: tuple[str, ...]) -> float:
    """Share of recommended items that have any of ``genres``."""
    if len(recs) == 0:
        return 0.0
    return float(recs["genres"].apply(lambda g: any(x in g for x in genres)).mean())


def guest_recommendations(model: Any, items: pd.DataFrame, n: int = 20, explain: int = 0) -> dict[str, pd.DataFrame]:
    """Top-n for both guests from a fitted model with an item table attached."""
    return {name: model.recommend_new(genre_guest(items, genre), n=n, explain=explain) for name, genre in GUESTS.items()}


def run_demo(dataset: str, out_dir: Path, console: Any, progress: Any, fit: Callable) -> dict:
    from rich.table import Table

    from mfrec.data.datasets import load_dataset
    from mfrec.models import Baseline, BiasedMF, ImplicitALS
    from mfrec.split import random_split

    ds = load_dataset(dataset)
    s = ds.ratings.summary()
    console.print(f"[bold]{dataset}[/]: {s['ratings']:,} ratings, {s['users']:,} users, {s['items']:,} items, "
                  f"sparsity {s['sparsity']:.2%}")
    train, test = random_split(ds.ratings, test_size=0.2, seed=0)
    baseline = fit(Baseline(), train, test)
    model = fit(BiasedMF(seed=0), train, test)
    table = Table(title="held-out 20% (random split, seed 0)")
    for col in ("model", "RMSE", "MAE"):
        table.add_column(col)
    results = {}
    for est in (baseline, model):
        pred = est.predict_ratings(test)
        err = pred - test.values
        results[type(est).__name__] = (float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err))))
        table.add_row(type(est).__name__, f"{results[type(est).__name__][0]:.4f}", f"{results[type(est).__name__][1]:.4f}")
    console.print(table)

    sample = test.to_dataframe().sample(8, random_state=0)
    sample["predicted"] = model.predict(sample["user"], sample["item"])
    sample["title"] = ds.items["title"].reindex(sample["item"]).to_numpy()
    rows = Table(title="actual vs predicted (BiasedMF)")
    for col in ("user", "title", "actual", "predicted"):
        rows.add_column(col)
    for _, r in sample.iterrows():
        rows.add_row(str(r["user"]), str(r["title"]), f"{r['rating']:.1f}", f"{r['predicted']:.2f}")
    console.print(rows)

    ranker = fit(ImplicitALS(seed=0), ds.ratings, None).attach_items(ds.items)
    recs = guest_recommendations(ranker, ds.items, n=20, explain=1)
    for name, df in recs.items():
        t = Table(title=f"{name}: top 20 (ImplicitALS fold-in, no retraining)")
        for col in ("#", "title", "genres", "because you liked"):
            t.add_column(col, overflow="fold")
        for k, r in enumerate(df.itertuples(), 1):
            t.add_row(str(k), str(r.title), ", ".join(r.genres), ", ".join(getattr(r, "because", []) or []))
        console.print(t)
    kids, drama = recs["children's films lover"], recs["drama lover"]
    shares = {
        "children_or_animation_share_kids_guest": genre_share(kids, ("Children", "Animation")),
        "drama_share_drama_guest": genre_share(drama, ("Drama",)),
        "drama_share_kids_guest": genre_share(kids, ("Drama",)),
        "shared_titles": len(set(kids["item"]) & set(drama["item"])),
    }
    console.print(f"children/animation share of the children's guest: {shares['children_or_animation_share_kids_guest']:.0%}; "
                  f"drama share: {shares['drama_share_drama_guest']:.0%} (drama guest) vs "
                  f"{shares['drama_share_kids_guest']:.0%} (children's guest); shared titles: {shares['shared_titles']}")

    out_dir.mkdir(parents=True, exist_ok=True)
    model.attach_items(ds.items).save(out_dir / "biased-mf.mfrec", metrics={"rmse": results["BiasedMF"][0]})
    ranker.save(out_dir / "implicit-als.mfrec")
    saved = [out_dir / "biased-mf.mfrec", out_dir / "implicit-als.mfrec"]
    try:
        from mfrec.plots import learning_curve

        learning_curve(model, out_dir / "learning-curve.png")
        saved.append(out_dir / "learning-curve.png")
    except ImportError:
        console.print("(matplotlib not installed: no learning-curve plot; pip install 'mfrec[plot]')")
    console.print("saved " + ", ".join(str(p) for p in saved))
    return {"results": results, "shares": shares}
