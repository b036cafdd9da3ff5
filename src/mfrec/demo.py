"""`mfrec demo`: the seed notebooks' story, done right, in under a minute.

Trains the default rating model (BiasedMF) next to the Baseline on an 80/20 split, shows
actual-vs-predicted rows, then the notebook's two guests (ten children's films rated 5, ten
dramas rated 5; the demo lists them) get recommendations from ImplicitALS folded in without
retraining. :func:`readme_tables` renders the results as the README's tables.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

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


def kernels_cached() -> bool | None:
    """Whether Numba's on-disk cache holds the demo's main kernels (True: no compile wait);
    None when it cannot tell (a Numba without the cache attributes used here)."""
    import os

    from mfrec.kernels import als, predict, sgd

    try:
        kernels = (als.bias_als_step, sgd.parallel_epoch.variants[False], als.implicit_half_step.variants[True], predict.score_items)
        return all(os.path.exists(k._cache._cache_file._index_path) for k in kernels)
    except AttributeError:
        return None


def compile_notice() -> str | None:
    """The line to print before the first fit when Numba will compile (None when cached). ~6 s on
    the machine of benchmarks/RESULTS.md 11.2, ~10 s on the slower one of 11.6: the cold first fits
    of Baseline, BiasedMF and ImplicitALS plus the first top-n (a cold `mfrec demo` took 20.4 s
    there against 9.9 s warm)."""
    cached = kernels_cached()
    if cached:
        return None
    if cached is None:
        return "compiling kernels if needed (first run only, up to ~10 s)..."
    return "compiling kernels (first run only, ~6-10 s; cached afterwards)..."


def guest_rated_titles(items: pd.DataFrame) -> dict[str, list[str]]:
    """The titles each guest rated (5.0), in id order."""
    return {name: [str(items.at[i, "title"]) for i in genre_guest(items, genre)] for name, genre in GUESTS.items()}


def _film(r: Any) -> str:
    return f"{r.title} ({', '.join(r.genres)})"


def readme_tables(recs: dict[str, pd.DataFrame], rated: dict[str, list[str]], shares: dict[str, float]) -> str:
    """The README's guest tables (markdown) from the demo's results: the shares, the ten films
    each guest rated, the two top-20 lists. ``tests/test_demo.py`` checks the README against it."""
    kids_name, drama_name = GUESTS
    kids, drama = shares["children_or_animation_share_kids_guest"], shares["drama_share_drama_guest"]
    lines = [
        f"| | {kids_name} | {drama_name} |",
        "|---|---|---|",
        f"| Children or Animation titles in the top 20 | **{kids:.0%}** (catalogue base rate "
        f"{shares['children_or_animation_share_catalogue']:.0%}) | |",
        f"| Drama titles in the top 20 | {shares['drama_share_kids_guest']:.0%} | **{drama:.0%}** "
        f"({(drama - shares['drama_share_kids_guest']) * 100:.0f} points more) |",
        f"| titles the two lists share | {shares['shared_titles']} | {shares['shared_titles']} |",
        "",
        textwrap.fill(f"For contrast, BiasedMF (a rating model, biases included; the demo's model, fitted on its 80% "
        f"split) gives the two guests lists that share {shares['biasedmf_shared_titles']} of 20 titles, with "
        f"{shares['biasedmf_children_or_animation_share_kids_guest']:.0%} Children/Animation for the children's "
        f"guest ({', '.join(shares['biasedmf_top_kids_guest'])}, ...): the \"universally acclaimed\" list "
        "the notebook saw.", width=100),
        "",
        f"| rated 5.0 | {kids_name} | {drama_name} |",
        "|---|---|---|",
    ]
    a, b = rated[kids_name], rated[drama_name]
    lines += [f"| {k} | {x} | {y} |" for k, (x, y) in enumerate(zip(a, b), 1)]
    lines += ["", f"| # | {kids_name} | {drama_name} |", "|---|---|---|"]
    lists = [[_film(r) for r in recs[name].itertuples()] for name in GUESTS]
    lines += [f"| {k} | {x} | {y} |" for k, (x, y) in enumerate(zip(*lists), 1)]
    return "\n".join(lines) + "\n"


def run_demo(dataset: str, out_dir: Path, console: Any, progress: Any, fit: Callable) -> dict:
    from rich.table import Table

    from mfrec.data.datasets import load_dataset
    from mfrec.evaluation import fit_and_score
    from mfrec.models import Baseline, BiasedMF, ImplicitALS
    from mfrec.split import random_split

    ds = load_dataset(dataset)
    s = ds.ratings.summary()
    console.print(f"[bold]{dataset}[/]: {s['ratings']:,} ratings, {s['users']:,} users, {s['items']:,} items, "
                  f"sparsity {s['sparsity']:.2%}")
    train, test = random_split(ds.ratings, test_size=0.2, seed=0)
    notice = compile_notice()
    if notice:
        console.print(notice)
    table = Table(title="held-out 20% (random split, seed 0)")
    for col in ("model", "RMSE", "MAE"):
        table.add_column(col)
    results = {}
    model = BiasedMF(seed=0)
    for est in (Baseline(), model):  # fitted with the test part as validation (the plotted curve)
        scores = fit_and_score(est, train, test, metrics=("rmse", "mae"), validation=test, fit=fit).scores
        results[type(est).__name__] = (scores["rmse"], scores["mae"])
        table.add_row(type(est).__name__, f"{scores['rmse']:.4f}", f"{scores['mae']:.4f}")
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
    rated = guest_rated_titles(ds.items)
    t = Table(title="the two guests: the ten films each rated 5.0 (the first ten of the genre by id)")
    t.add_column("#")
    for name in GUESTS:
        t.add_column(name, overflow="fold")
    for k, pair in enumerate(zip(*rated.values()), 1):
        t.add_row(str(k), *pair)
    console.print(t)
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
        "children_or_animation_share_catalogue": genre_share(ds.items, ("Children", "Animation")),
    }
    # for contrast: the rating model's lists for the same guests
    rating_recs = guest_recommendations(model.attach_items(ds.items), ds.items, n=20)
    r_kids, r_drama = rating_recs["children's films lover"], rating_recs["drama lover"]
    shares["biasedmf_shared_titles"] = len(set(r_kids["item"]) & set(r_drama["item"]))
    shares["biasedmf_children_or_animation_share_kids_guest"] = genre_share(r_kids, ("Children", "Animation"))
    shares["biasedmf_top_kids_guest"] = [str(t) for t in r_kids["title"][:3]]
    console.print(f"for contrast, BiasedMF (a rating model) gives them lists sharing {shares['biasedmf_shared_titles']} "
                  f"of 20 titles, {shares['biasedmf_children_or_animation_share_kids_guest']:.0%} children/animation "
                  f"for the children's guest ({', '.join(shares['biasedmf_top_kids_guest'])}, ...)")
    console.print(f"children/animation share of the children's guest: {shares['children_or_animation_share_kids_guest']:.0%}; "
                  f"drama share: {shares['drama_share_drama_guest']:.0%} (drama guest) vs "
                  f"{shares['drama_share_kids_guest']:.0%} (children's guest); shared titles: {shares['shared_titles']}")

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "biased-mf.mfrec", metrics={"rmse": results["BiasedMF"][0]})
    ranker.save(out_dir / "implicit-als.mfrec")
    saved = [out_dir / "biased-mf.mfrec", out_dir / "implicit-als.mfrec"]
    try:
        from mfrec.plots import learning_curve

        learning_curve(model, out_dir / "learning-curve.png")
        saved.append(out_dir / "learning-curve.png")
    except ImportError:
        console.print("(matplotlib not installed: no learning-curve plot; pip install 'mfrec[plot]')")
    console.print("saved " + ", ".join(str(p) for p in saved))
    return {"results": results, "shares": shares, "rated": rated, "recommendations": recs,
            "readme": readme_tables(recs, rated, shares)}
