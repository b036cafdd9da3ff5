"""Plots (matplotlib, PNG): learning curves, the latent space, item bias vs popularity,
error by user activity. Needs the ``plot`` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfrec._files import atomic_path


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'mfrec[plot]'") from exc
    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def learning_curve(model: Any, path: str | Path) -> Path:
    """Training loss and (when recorded) validation RMSE per epoch."""
    plt = _plt()
    h = model.history_
    if h is None or len(h) == 0:
        raise ValueError("the model has no training history")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(h["epoch"], h["train_rmse"], marker="o", label="training RMSE (running)")
    if "validation_rmse" in h:
        ax.plot(h["epoch"], h["validation_rmse"], marker="o", label="validation RMSE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax2 = ax.twinx()
    ax2.plot(h["epoch"], h["loss"], color="gray", linestyle="--", label="loss (per rating, right axis)")
    ax2.set_ylabel("loss")
    lines = ax.get_legend_handles_labels()
    extra = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="upper right")
    ax.set_title(f"{type(model).__name__} learning curve")
    return _save(fig, path)


def latent_space(model: Any, path: str | Path, genres: tuple[str, ...] = ("Children", "Drama", "Horror", "Documentary"),
                 label: int = 12) -> Path:
    """Item factors projected to 2-D by PCA, coloured by genre, the most-rated titles labelled."""
    plt = _plt()
    Q = model.item_factors_.astype(np.float64)
    if Q.shape[1] < 2:
        raise ValueError("the latent-space plot needs at least 2 factors")
    counts = np.asarray(model.seen_.sum(axis=0)).ravel()
    keep = counts >= max(1, np.percentile(counts, 50))
    if keep.sum() < 2:  # a tiny catalogue: the median leaves one item; plot every rated one
        keep = counts >= 1
    if keep.sum() < 2:
        raise ValueError(f"the latent-space plot needs at least 2 items with training ratings, the model has "
                         f"{int(keep.sum())}")
    X = Q[keep] - Q[keep].mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    xy = X @ vt[:2].T
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.scatter(xy[:, 0], xy[:, 1], s=4, color="lightgray", label="other")
    info = model.item_info_
    idx = np.flatnonzero(keep)
    if info is not None and "genres" in info:
        g = info["genres"].to_numpy()[idx]
        for genre in genres:
            m = np.array([genre in (x or []) for x in g])
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=8, label=genre)
        top = np.argsort(-counts[idx])[:label]
        for t in top:
            ax.annotate(str(info["title"].to_numpy()[idx[t]])[:30], xy[t], fontsize=7)
    ax.legend(markerscale=2)
    ax.set_title("item factors, first two principal components")
    return _save(fig, path)


def bias_vs_popularity(model: Any, path: str | Path) -> Path:
    """Item bias against the number of training ratings (log scale)."""
    if not np.any(np.asarray(model.item_bias_) != 0):
        raise ValueError(f"{type(model).__name__} has no item biases (all are 0): the bias-popularity plot needs "
                         "a model with biases (biased-mf, svd++, als, cmf, baseline)")
    plt = _plt()
    counts = np.asarray(model.seen_.sum(axis=0)).ravel()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(np.maximum(counts, 1), model.item_bias_, s=4, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("training ratings of the item")
    ax.set_ylabel("item bias")
    ax.set_title("item bias vs popularity")
    return _save(fig, path)


def error_by_activity(model: Any, test: Any, path: str | Path, bins: int = 8) -> Path:
    """RMSE on ``test`` by the user's number of training ratings (quantile bins)."""
    plt = _plt()
    from mfrec.evaluation.metrics import rating_error_by_group

    pred = model.predict(test.raw_users, test.raw_items)
    uidx = model.user_map_.lookup(test.raw_users)
    counts = np.asarray(model.seen_.sum(axis=1)).ravel()
    activity = np.where(uidx >= 0, counts[np.maximum(uidx, 0)], 0)
    edges = np.unique(np.quantile(activity, np.linspace(0, 1, bins + 1)))
    if len(edges) == 1:  # every user equally active: one bin
        edges = np.repeat(edges, 2)
    which = np.clip(np.searchsorted(edges, activity, side="right") - 1, 0, len(edges) - 2)
    rmse = rating_error_by_group("rmse", pred, test.values, which, len(edges) - 1)  # NaN: an empty bin
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(len(rmse)), rmse)
    ax.set_xticks(range(len(rmse)), [f"{int(edges[b])}-{int(edges[b + 1])}" for b in range(len(rmse))], rotation=45)
    ax.set_xlabel("user's training ratings")
    ax.set_ylabel("test RMSE")
    ax.set_title("error by user activity")
    return _save(fig, path)
