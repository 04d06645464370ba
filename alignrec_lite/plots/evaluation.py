"""Figures for notebooks 05-08: training terms, Table 2 bars, long tail, cold start, cost, posters.

Every function follows the kit's convention: data in, ``ax: Axes | None = None`` keyword, the
Axes out, a figure only when no ``ax`` is given, never ``plt.show()``. Colours
are the Okabe-Ito palette (safe for colour-blind readers); continuous scales use
``cividis``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .style import OKABE_ITO, get_axes, okabe_ito

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NOTEBOOK_SIZE = (4.5, 3.0)  # the default figure of these plots


def _grouped_bars(
    ax, groups: Sequence[str], series: Sequence[str], values: np.ndarray, errors: np.ndarray | None
) -> None:
    n_s = max(1, len(series))
    width = 0.8 / n_s
    x = np.arange(len(groups))
    for j, name in enumerate(series):
        err = None if errors is None else errors[:, j]
        ax.bar(
            x + (j - (n_s - 1) / 2) * width,
            values[:, j],
            width,
            yerr=err,
            capsize=2 if err is not None else 0,
            label=str(name),
            color=okabe_ito(j),
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([str(g) for g in groups])


def _pivot(df: pd.DataFrame, index: str, columns: str, value: str) -> pd.DataFrame:
    order_i = list(dict.fromkeys(df[index]))
    order_c = list(dict.fromkeys(df[columns]))
    return df.pivot_table(index=index, columns=columns, values=value, aggfunc="mean", sort=False).reindex(
        index=order_i, columns=order_c
    )


# ------------------------------------------------------------------ long tail
def plot_popularity_curve(
    popularity: np.ndarray,
    item_bucket: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    log: bool = True,
) -> Axes:
    """Items sorted by training popularity (the long-tail curve), buckets shaded.

    Args:
        popularity: interactions per item, ``(n_items,)``.
        item_bucket: bucket index per item (``PopularityBuckets.item_bucket``).
        labels: bucket names, least popular first.
        ax: where to draw.
        log: log-scale y axis.
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    pop = np.asarray(popularity)
    order = np.argsort(-pop, kind="stable")
    ranks = np.arange(1, len(pop) + 1)
    ax.plot(ranks, np.maximum(pop[order], 0.5 if log else 0), color="black", lw=1.2)
    if item_bucket is not None:
        b = np.asarray(item_bucket)[order]
        for j in np.unique(b):
            r = ranks[b == j]
            name = labels[j] if labels is not None else f"bucket {j}"
            ax.axvspan(
                r.min() - 0.5, r.max() + 0.5, color=okabe_ito(int(j)), alpha=0.18, label=f"{name} ({len(r)} items)"
            )
        ax.legend(fontsize=8, frameon=False)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("items, most popular first")
    ax.set_ylabel("training interactions")
    ax.set_title("The long tail of item popularity")
    return ax


def plot_bucket_metrics(
    df: pd.DataFrame,
    metric: str = "recall@20",
    *,
    ax: Axes | None = None,
    model_col: str = "model",
    bucket_col: str = "bucket",
) -> Axes:
    """Grouped bars: a metric per popularity bucket (x) and model (colour).

    Args:
        df: long table with ``model``, ``bucket`` and ``metric`` columns (one row per
            model, bucket and possibly seed: seeds are averaged, their std drawn as
            error bars). A ``<metric>_mean`` / ``<metric>_std`` pair (from
            :func:`alignrec_lite.longtail.mean_std`) is used as is.
        metric: the column to draw.
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    if f"{metric}_mean" in df.columns:
        mean = _pivot(df, bucket_col, model_col, f"{metric}_mean")
        std = _pivot(df, bucket_col, model_col, f"{metric}_std")
    else:
        g = df.groupby([bucket_col, model_col], sort=False)[metric]
        agg = g.agg(["mean", "std"]).reset_index()
        mean = _pivot(agg, bucket_col, model_col, "mean")
        std = _pivot(agg, bucket_col, model_col, "std") if g.size().max() > 1 else None
    _grouped_bars(
        ax,
        list(mean.index),
        list(mean.columns),
        mean.to_numpy(),
        None if std is None else np.nan_to_num(std.to_numpy()),
    )
    ax.set_xlabel("target item's popularity bucket")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by item popularity")
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_beyond_accuracy(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("coverage@20", "aplt@20", "gini@20"),
    *,
    ax: Axes | None = None,
    model_col: str = "model",
) -> Axes:
    """Grouped bars of beyond-accuracy measures (x = measure, colour = model).

    Args:
        df: one row per model (and possibly seed) with the metric columns
            (:func:`alignrec_lite.longtail.long_tail_report`'s second table).
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    mean = df.groupby(model_col, sort=False)[list(metrics)].mean()
    std = df.groupby(model_col, sort=False)[list(metrics)].std() if df[model_col].duplicated().any() else None
    _grouped_bars(
        ax, list(metrics), list(mean.index), mean.T.to_numpy(), None if std is None else np.nan_to_num(std.T.to_numpy())
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("value (0-1)")
    ax.set_title("What the top-K lists look like")
    ax.legend(fontsize=8, frameon=False)
    return ax


# ------------------------------------------------------------------ cold start
def plot_cold_items(
    df: pd.DataFrame, metric: str = "recall@20", *, ax: Axes | None = None, method_col: str = "method"
) -> Axes:
    """Horizontal bars of a metric on the held-out (new) items, one bar per method.

    Args:
        df: :func:`alignrec_lite.experiments.item_coldstart_experiment` tables,
            possibly concatenated over seeds (std drawn as error bars).
    """
    ax = get_axes(ax, (5.0, 3.0))
    g = df.groupby(method_col, sort=False)[metric]
    mean, std = g.mean(), g.std()
    y = np.arange(len(mean))
    ax.barh(
        y,
        mean.to_numpy(),
        xerr=np.nan_to_num(std.to_numpy()) if len(df) > len(mean) else None,
        color=[okabe_ito(i) for i in range(len(mean))],
        capsize=2,
    )
    ax.set_yticks(y)
    ax.set_yticklabels(list(mean.index))
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} among the new items")
    ax.set_title("New items: ranked from content alone")
    return ax


def plot_cold_user_curve(
    df: pd.DataFrame,
    metric: str = "recall@20",
    *,
    ax: Axes | None = None,
    method_col: str = "method",
    methods: Sequence[str] | None = None,
) -> Axes:
    """Metric vs number of items a new user revealed, one line per method (band = std over seeds).

    Args:
        df: :func:`alignrec_lite.experiments.user_coldstart_experiment` tables,
            possibly concatenated over seeds.
        methods: which methods to draw (default all, in table order).
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    methods = list(methods) if methods is not None else list(dict.fromkeys(df[method_col]))
    styles = {"mean": "-", "gradient": "--"}
    for i, m in enumerate(methods):
        sub = df[df[method_col] == m].groupby("given")[metric]
        mean, std = sub.mean(), sub.std().fillna(0.0)
        ls = styles.get(str(m).rsplit("· ", 1)[-1], ":")
        ax.plot(mean.index, mean.to_numpy(), ls, marker="o", ms=3, color=okabe_ito(i), label=m)
        if len(df[df[method_col] == m]) > len(mean):
            ax.fill_between(
                mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color=okabe_ito(i), alpha=0.15
            )
    ax.set_xlabel("items the new user revealed")
    ax.set_ylabel(f"{metric} on their other items")
    ax.set_title("New users, folded in without retraining")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over the lines
    return ax


# ------------------------------------------------------------------ training (notebook 05)
def plot_loss_terms(
    history: Sequence[Mapping], *, ax: Axes | None = None, terms: Sequence[str] | None = None, log: bool = True
) -> Axes:
    """Loss terms per epoch from a run record's ``history`` (``loss_bpr``, ``loss_cca``, ...).

    Args:
        history: ``record["history"]`` of :func:`alignrec_lite.train.train`.
        terms: which ``loss_*`` keys (default: all present, plus ``loss``).
        log: log-scale y axis (terms differ by orders of magnitude).
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    keys = (
        list(terms)
        if terms is not None
        else ["loss"] + sorted({k for h in history for k in h if k.startswith("loss_")})
    )
    epochs = [h["epoch"] for h in history]
    for i, k in enumerate(keys):
        vals = [h.get(k, np.nan) for h in history]
        if np.all(np.isnan(np.asarray(vals, dtype=float))):
            continue
        ax.plot(
            epochs,
            np.abs(np.asarray(vals, dtype=float)) if log else vals,
            marker="o",
            ms=2,
            color=okabe_ito(i),
            label=k.replace("loss_", "") if k != "loss" else "total",
            lw=2 if k == "loss" else 1,
        )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss per batch" + (" (abs, log)" if log else ""))
    ax.set_title("Loss terms during training")
    ax.legend(fontsize=8, frameon=False)
    return ax


# ------------------------------------------------------------------ Table 2 (notebook 06)
def plot_model_bars(
    df: pd.DataFrame,
    metric: str = "recall@20",
    *,
    ax: Axes | None = None,
    model_col: str = "model",
    highlight: str | None = None,
) -> Axes:
    """Bars of a metric per model, mean over seeds with std error bars (Table 2 as a chart).

    Args:
        df: one row per model and seed.
        highlight: a model drawn in a stronger colour (e.g. ``"alignrec"``).
    """
    ax = get_axes(ax, (5.0, 3.0))
    g = df.groupby(model_col, sort=False)[metric]
    mean, std = g.mean(), g.std().fillna(0.0)
    x = np.arange(len(mean))
    colours = [OKABE_ITO[5] if m == highlight else OKABE_ITO[4] for m in mean.index]
    ax.bar(x, mean.to_numpy(), yerr=std.to_numpy(), capsize=3, color=colours)
    ax.set_xticks(x)
    ax.set_xticklabels(list(mean.index), rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± std over seeds")
    return ax


# ------------------------------------------------------------------ cost (notebook 08)
def fit_power_law(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``t = a · n^b`` in log-log space.

    Returns:
        ``(a, b)``.

    >>> a, b = fit_power_law([10, 100, 1000], [0.1, 1.0, 10.0])
    >>> round(b, 6), round(a, 6)
    (1.0, 0.01)
    """
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    b, log_a = np.polyfit(x, y, 1)
    return float(np.exp(log_a)), float(b)


def plot_scaling(
    sizes: Sequence[float],
    seconds: Sequence[float],
    *,
    ax: Axes | None = None,
    label: str = "",
    xlabel: str = "size",
    extrapolate_to: float | None = None,
    colour: int = 0,
) -> Axes:
    """Measured cost vs size on log-log axes with the fitted power law ``t = a n^b``.

    Args:
        sizes, seconds: the measurements.
        label: series name (the fitted exponent is appended).
        extrapolate_to: also draw the fitted line up to this size (dashed).
    """
    ax = get_axes(ax, NOTEBOOK_SIZE)
    a, b = fit_power_law(sizes, seconds)
    ax.loglog(sizes, seconds, "o", color=okabe_ito(colour), label=f"{label} (t ∝ n^{b:.2f})".strip())
    hi = max(max(sizes), extrapolate_to or 0)
    xs = np.geomspace(min(sizes), hi, 50)
    ax.loglog(xs, a * xs**b, "--" if extrapolate_to else "-", color=okabe_ito(colour), lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds")
    ax.set_title("How cost grows")
    ax.legend(fontsize=8, frameon=False)
    return ax


# ------------------------------------------------------------------ images (notebooks 07-08, explorer)
def item_montage(
    dataset: Any,
    items: Sequence[int],
    *,
    size: int = 64,
    hits: Sequence[bool] | None = None,
    columns: int | None = None,
) -> np.ndarray:
    """Thumbnails of items side by side as one RGB array (grey tiles for missing images).

    Args:
        dataset: a :class:`~alignrec_lite.data.RecDataset` with an items table.
        items: itemIDs (``-1`` = empty tile).
        size: tile height in pixels (posters keep their 2:3 shape).
        hits: per item, draw a green frame (a hit) or not.
        columns: tiles per row (default: all in one row).

    Returns:
        ``(rows * h, columns * w, 3)`` uint8.
    """
    from PIL import Image

    items = list(items)
    columns = columns or max(1, len(items))
    rows = max(1, -(-len(items) // columns))
    h = size
    w = int(round(size * 2 / 3)) if _is_poster(dataset) else size
    out = np.full((rows * (h + 2), columns * (w + 2), 3), 255, dtype=np.uint8)
    for n, item in enumerate(items):
        r, c = divmod(n, columns)
        tile = np.full((h, w, 3), 200, dtype=np.uint8)
        path = dataset.image_path(int(item)) if item is not None and int(item) >= 0 else None
        if path is not None and path.exists():
            try:
                with Image.open(path) as im:
                    tile = np.asarray(im.convert("RGB").resize((w, h)))
            except OSError:
                pass
        if hits is not None and hits[n]:
            tile = tile.copy()
            tile[:3], tile[-3:], tile[:, :3], tile[:, -3:] = (0, 158, 115), (0, 158, 115), (0, 158, 115), (0, 158, 115)
        y, x = r * (h + 2) + 1, c * (w + 2) + 1
        out[y : y + h, x : x + w] = tile
    return out


def _is_poster(dataset: Any) -> bool:
    return getattr(dataset, "name", "") == "movielens"


def plot_items(
    dataset: Any,
    items: Sequence[int],
    *,
    ax: Axes | None = None,
    title: str = "",
    hits: Sequence[bool] | None = None,
    size: int = 64,
    columns: int | None = None,
) -> Axes:
    """Draw items' images (posters) in one Axes, hits framed in green.

    Args:
        dataset: the dataset (its ``items.csv`` names the images).
        items: itemIDs, in display order.
        title: the Axes title.
        hits: per item, whether it is a hit (green frame).
    """
    ax = get_axes(ax, (max(3.0, 0.55 * len(items)), 1.4))
    ax.imshow(item_montage(dataset, items, size=size, hits=hits, columns=columns))
    ax.set_axis_off()
    ax.set_title(title, fontsize=9, loc="left")
    return ax


__all__ = [
    "plot_popularity_curve",
    "plot_bucket_metrics",
    "plot_beyond_accuracy",
    "plot_cold_items",
    "plot_cold_user_curve",
    "plot_loss_terms",
    "plot_model_bars",
    "fit_power_law",
    "plot_scaling",
    "item_montage",
    "plot_items",
]
