"""Charts of measured values: grouped bars, sweeps of one setting, memory against batch size.
Same rules as every plot module (:mod:`.style`)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .style import OKABE_ITO, get_axes, label_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_bars(
    table: Mapping[str, Mapping[str, float]],
    *,
    ax: Axes | None = None,
    ylabel: str = "",
    title: str = "Measured values",
    ylim: tuple[float, float] | None = None,
    chance: Mapping[str, float] | None = None,
) -> Axes:
    """Grouped bar chart: one colour per series (outer keys), one group per inner key.

    Args:
        table: ``{series: {group: value}}``, e.g. ``{"MiniLM": {"category": 0.7, ...}}``.
        ax: where to draw.
        ylabel, title: labels.
        ylim: y range.
        chance: optional ``{group: value}`` drawn as a dashed tick per group
            (e.g. the precision of a random ranking).

    Returns:
        The ``Axes``.
    """
    series = list(table)
    groups = list(dict.fromkeys(g for s in series for g in table[s]))
    ax = get_axes(ax, figsize=(max(4.0, 1.1 * len(groups) + 1.5), 3.0))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, s in enumerate(series):
        vals = [table[s].get(g, np.nan) for g in groups]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=s, color=OKABE_ITO[i % len(OKABE_ITO)])
    if chance is not None:
        for j, g in enumerate(groups):
            if g in chance:
                ax.hlines(chance[g], j - 0.45, j + 0.45, colors="0.3", linestyles="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([textwrap.fill(str(g), 14) for g in groups], fontsize=8)  # long names on two lines
    if ylim is not None:
        ax.set_ylim(*ylim)
    return label_axes(ax, title, ylabel=ylabel, legend=True)


def plot_sweep(
    rows: Sequence[Mapping[str, float]],
    x: str,
    ys: Sequence[str],
    *,
    ax: Axes | None = None,
    logx: bool = False,
    xlabel: str | None = None,
    ylabel: str = "",
    title: str | None = None,
) -> Axes:
    """Line plot of several measured quantities against one swept setting.

    Args:
        rows: one dict per run (e.g. the output of
            :func:`alignrec_lite.teach.contrastive.temperature_sweep`).
        x: the key swept (x axis).
        ys: keys plotted as lines.
        ax: where to draw.
        logx: logarithmic x axis.
        xlabel, ylabel, title: labels (default title: "<ys> vs <x>").

    Returns:
        The ``Axes``.
    """
    ax = get_axes(ax)
    title = title if title is not None else f"{', '.join(ys)} vs {x}"
    xs = np.array([float(r[x]) for r in rows])
    for i, key in enumerate(ys):
        ax.plot(xs, [float(r[key]) for r in rows], marker="o", ms=4, color=OKABE_ITO[(i + 4) % 8], label=key)
    if logx:
        ax.set_xscale("log")
    return label_axes(ax, title, xlabel=xlabel or x, ylabel=ylabel, legend=True)


def plot_memory_scaling(
    ns: Sequence[float],
    measured: Mapping[str, Sequence[float]],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    *,
    budget_gib: float | None = 80.0,
    ax: Axes | None = None,
    title: str = "Memory of one contrastive step",
) -> Axes:
    """Log-log plot of memory against the batch size ``N``: measured points and model curves.

    Args:
        ns: batch sizes that were measured.
        measured: ``{label: bytes per N}`` measured values (markers).
        curves: ``{label: (N values, bytes)}`` fitted or extrapolated curves (lines).
        budget_gib: draw a horizontal line at this memory (an 80 GB GPU by default).
        ax: where to draw.
        title: axes title.

    Returns:
        The ``Axes``.
    """
    ax = get_axes(ax, figsize=(5.0, 3.4))
    gib = 2.0**30
    for i, (label, vals) in enumerate(measured.items()):
        ax.plot(ns, np.asarray(vals, dtype=float) / gib, "o", ms=5, color=OKABE_ITO[i], label=f"{label} (measured)")
    for i, (label, (xs, vals)) in enumerate((curves or {}).items()):
        ax.plot(xs, np.asarray(vals, dtype=float) / gib, "-", lw=1.5, color=OKABE_ITO[(i + 4) % 8], label=label)
    if budget_gib is not None:
        ax.axhline(budget_gib, color="0.3", ls="--", lw=1)
        ax.text(
            0.99,
            budget_gib * 1.3,
            f"{budget_gib:g} GiB (one large GPU) ",
            fontsize=7,
            color="0.3",
            ha="right",
            transform=ax.get_yaxis_transform(),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_axes(ax, title, xlabel="batch size N (pairs)", ylabel="GiB")
    ax.legend(fontsize=6.5, frameon=False, loc="upper left")
    return ax
