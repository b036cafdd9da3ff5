"""``mfrec recommend``: top-n for a known user, for a new user from a few ratings (fold-in), or
for every user at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mfrec.cli._common import (TABLE_SUFFIXES, TITLE_RULE, check_output, console, emit_json, frame_table, match_title, model_ids,
                               parse_rates, progress, write_table)

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

__all__ = ["TITLE_RULE", "recommend"]


def resolve_titles(model: Any, pairs: list[str]) -> dict[Any, float]:
    """``--rate-title "TITLE=RATING"`` pairs as {model item id: rating}."""
    out: dict[Any, float] = {}
    for pair in pairs:
        title, _, value = pair.rpartition("=")
        if not title.strip():
            raise ValueError(f"--rate-title takes \"TITLE=RATING\", got {pair!r}")
        try:
            rating = float(value)
        except ValueError:
            raise ValueError(f"rating {value!r} for title {title!r} is not a number") from None
        hit = match_title(model, title)
        if hit.item in out:
            raise ValueError(f"--rate-title {title!r} matched {hit.title}, which is already rated")
        out[hit.item] = rating
    return out


def recommendation_table(df: "pd.DataFrame") -> "Table":
    """Rating models show the 'predicted rating' (inside the scale); ranking models the 'score'."""
    cols = [c for c in df.columns if c not in ("score", "predicted_rating")]
    value = "predicted_rating" if "predicted_rating" in df.columns else "score"
    cols.insert(1, value)
    shown = df[cols].rename(columns={"predicted_rating": "predicted rating"})
    return frame_table(shown, title="recommendations")


def recommend(
    model_file: Path = typer.Argument(..., help="A model file written by `mfrec train`."),
    user: Optional[str] = typer.Option(None, help="A known user id."),
    all_users: bool = typer.Option(False, "--all-users", help="Top-n for every user (with --out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With --all-users: CSV or Parquet file to write."),
    rate: list[str] = typer.Option([], "--rate", help="ITEM=RATING for a new user (repeatable)."),
    rate_title: list[str] = typer.Option([], "--rate-title", help='"TITLE=RATING" for a new user (repeatable); see below.'),
    n: int = typer.Option(10, "-n", help="How many items."),
    explain: int = typer.Option(0, help="For a new user: list this many rated items behind each recommendation."),
    item_bias_weight: float = typer.Option(1.0, help="< 1 ranks less by general acclaim, more by personal taste."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recommend for a known user, for a new user from a few ratings (fold-in, no retraining), or
    for every user at once (--all-users --out recs.csv).

    Rating models show each film's predicted rating (clipped to the model's rating scale;
    --json and CSV add "predicted_rating" next to the ranking "score"); ranking models
    (implicit-als) show a score, which is not a rating.

    Examples:
      mfrec recommend model.mfrec --user 1 -n 5
      mfrec recommend model.mfrec --all-users -n 10 --out recs.csv
      mfrec recommend model.mfrec --rate-title "Toy Story=5" --rate-title "Lion King=5" --explain 2
    """
    import mfrec
    from mfrec.models.recommend import check_request, with_predicted_rating

    if sum([user is not None, bool(rate or rate_title), all_users]) > 1:
        raise ValueError("give one of --user, --rate/--rate-title or --all-users")
    check_request(n, item_bias_weight, explain)
    if explain and not (rate or rate_title):  # it was ignored there, silently
        raise ValueError("--explain goes with --rate/--rate-title (a new user's fold-in names the rated items "
                         "behind each recommendation); --user and --all-users use the trained factors")
    if all_users:
        if out is None:
            raise ValueError("--all-users needs --out FILE (.csv or .parquet)")
        check_output(out, example="recs.csv", inputs=(model_file,), suffixes=TABLE_SUFFIXES)
    elif out is not None:
        raise ValueError("--out goes with --all-users")
    est = mfrec.load_model(model_file)
    if all_users:
        assert out is not None
        _all_users(est, out, n, item_bias_weight, as_json)
        return
    if user is not None:
        df = est.recommend(model_ids(est.user_map_, [user])[0], n=n, item_bias_weight=item_bias_weight)
    elif rate or rate_title:
        ratings = parse_rates(est, rate)
        for item, value in resolve_titles(est, rate_title).items():
            if item in ratings:
                raise ValueError(f"item {item} is rated by both --rate and --rate-title")
            ratings[item] = value
        df = est.recommend_new(ratings, n=n, explain=explain, item_bias_weight=item_bias_weight)
    else:
        raise ValueError("give --user ID, or --rate ITEM=RATING / --rate-title \"TITLE=RATING\"")
    df = with_predicted_rating(est, df, item_bias_weight)
    if as_json:
        emit_json(df.to_dict(orient="records"))
    else:
        console.print(recommendation_table(df))


def _all_users(est: Any, out: Path, n: int, item_bias_weight: float, as_json: bool) -> None:
    """Every user's top-n into ``out`` (batched, with a progress bar)."""
    from mfrec.models.recommend import with_predicted_rating

    with progress(as_json) as bar:
        task = bar.add_task("recommend_many", total=len(est.user_map_), info="")
        df = est.recommend_many(n=n, item_bias_weight=item_bias_weight,
                                callback=lambda done, total: bar.update(task, completed=done))
    df = with_predicted_rating(est, df.drop(columns=[c for c in ("genres",) if c in df.columns]), item_bias_weight)
    write_table(df, out)
    if as_json:
        emit_json({"out": str(out), "rows": len(df), "users": int(df["user"].nunique())})
    else:
        console.print(f"wrote {len(df):,} recommendations for {df['user'].nunique():,} users to {out}")
