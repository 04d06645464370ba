"""Figures about embeddings: vectors, their length, similarity matrices, the circle and the sphere.

Every function draws into the ``ax`` it is given (or a new small figure when ``ax`` is None),
returns that ``Axes`` and never calls ``plt.show()``, so a notebook can arrange several panels
itself (STYLE §2.5); colours and subsampling follow :mod:`.style`.

The circle and sphere figures follow Wang & Isola (ICML 2020, Fig. 2): unit
vectors drawn on the circle with a density estimate of their angles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..utils import l2_normalise_rows
from .style import (
    OKABE_ITO,
    category_colours,
    category_legend,
    colour_points,
    get_axes,
    label_axes,
    subsample,
    to_numpy,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_vectors_2d(
    vectors: Any,
    names: Sequence[str] | None = None,
    *,
    colours: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "Vectors in 2-D",
) -> Axes:
    """Draw 2-D vectors as arrows from the origin, with their names at the tips.

    Args:
        vectors: ``(n, 2)`` array.
        names: a label per vector.
        colours: a colour per vector (default: Okabe-Ito in order).
        ax: where to draw (a new 4x3 figure when None).
        title: axes title.

    Returns:
        The ``Axes``.
    """
    v = to_numpy(vectors).astype(float)
    ax = get_axes(ax)
    lim = max(1.0, float(np.abs(v).max()) * 1.25)
    for i, (x, y) in enumerate(v):
        c = colours[i] if colours is not None else OKABE_ITO[i % len(OKABE_ITO)]
        ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": c, "lw": 1.8})
        if names is not None:
            ax.text(x * 1.06, y * 1.06, names[i], fontsize=8, color=c, ha="center", va="center")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    return label_axes(ax, title, xlabel="dimension 1", ylabel="dimension 2")


def plot_norm_vs_popularity(
    norms: Any,
    popularity: Any,
    *,
    ax: Axes | None = None,
    max_points: int | None = 3000,
    seed: int = 0,
    title: str = "Item vector length vs popularity",
) -> Axes:
    """Scatter of each item's embedding norm against its training popularity (log x).

    Args:
        norms: ``(n_items,)`` L2 norms of the item vectors.
        popularity: ``(n_items,)`` training interactions per item.
        ax: where to draw.
        max_points: subsample (fixed ``seed``).
        title: axes title.

    Returns:
        The ``Axes``.
    """
    n, p = to_numpy(norms).astype(float), to_numpy(popularity).astype(float)
    idx = subsample(len(n), max_points, seed)
    ax = get_axes(ax)
    ax.scatter(p[idx] + 1, n[idx], s=8, alpha=0.6, color=OKABE_ITO[4])
    ax.set_xscale("log")
    return label_axes(ax, title, xlabel="training interactions + 1 (log)", ylabel="‖item vector‖")


def plot_similarity_matrix(
    sim: Any,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "Similarity",
    cbar_label: str = "cosine",
    annotate: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """Heat map of a similarity (or logit) matrix, diagonal = matched pairs.

    Args:
        sim: ``(n, m)`` matrix.
        row_labels, col_labels: tick labels (omitted when None).
        ax: where to draw.
        title, cbar_label: labels.
        annotate: write the values in the cells (default: when ``n, m <= 8``).
        vmin, vmax: colour range.

    Returns:
        The ``Axes``.
    """
    s = to_numpy(sim).astype(float)
    ax = get_axes(ax, figsize=(4.2, 3.4))
    im = ax.imshow(s, cmap="cividis", vmin=vmin, vmax=vmax)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(cbar_label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if annotate is None:
        annotate = max(s.shape) <= 8
    if annotate:
        mid = (np.nanmin(s) + np.nanmax(s)) / 2
        for i in range(s.shape[0]):
            for j in range(s.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{s[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if s[i, j] > mid else "white",
                )
    for setter, labels in ((ax.set_yticks, row_labels), (ax.set_xticks, col_labels)):
        if labels is None:
            setter([])
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels)))
        ax.set_yticklabels(row_labels, fontsize=6)
    if col_labels is not None:
        ax.set_xticks(range(len(col_labels)))
        ax.set_xticklabels(col_labels, fontsize=6, rotation=60, ha="right")
    ax.set_title(title, fontsize=10)
    return ax


def plot_circle(
    z: Any,
    labels: Sequence[Any] | None = None,
    *,
    ax: Axes | None = None,
    density: bool = True,
    max_points: int | None = 1000,
    seed: int = 0,
    bandwidth: float = 0.15,
    title: str = "Embeddings on the unit circle",
    legend: bool = True,
) -> Axes:
    """Wang & Isola's picture: 2-D unit vectors on the circle, with the density of their angles.

    The points are normalised onto the circle (radius 1); the density of the
    angles (a von Mises kernel estimate) is drawn as a ring outside it, whose
    distance from the circle is proportional to the density: a flat ring means
    uniform, a spike means collapse.

    Args:
        z: ``(n, 2)`` embeddings (normalised here).
        labels: optional label per point (colours, Okabe-Ito).
        ax: where to draw (a new 4x4 figure when None).
        density: draw the angle-density ring.
        max_points: subsample (fixed ``seed``).
        bandwidth: kernel width in radians.
        title: axes title.
        legend: show the label legend.

    Returns:
        The ``Axes``.
    """
    pts = to_numpy(z).astype(float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"plot_circle needs (n, 2) points, got shape {pts.shape}")
    pts = l2_normalise_rows(pts)
    ax = get_axes(ax, figsize=(4.0, 4.0))
    t = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(t), np.sin(t), color="0.75", lw=1, zorder=0)
    if density:
        ang = np.arctan2(pts[:, 1], pts[:, 0])
        kern = np.exp(np.cos(t[:, None] - ang[None, :]) / bandwidth**2)  # (361, n) von Mises
        dens = kern.mean(axis=1)
        dens = dens / (dens.max() + 1e-12)
        r = 1.12 + 0.45 * dens
        ax.plot(r * np.cos(t), r * np.sin(t), color=OKABE_ITO[4], lw=1.2)
    idx = subsample(len(pts), max_points, seed)
    lab = None if labels is None else np.asarray(labels)[idx]
    colour_points(ax, pts[idx, 0], pts[idx, 1], lab, True, "cividis", 10, None, legend=legend, alpha=0.8, zorder=2)
    ax.set_xlim(-1.7, 1.7)
    ax.set_ylim(-1.7, 1.7)
    ax.set_aspect("equal")
    return label_axes(ax, title, ticks=False)


def plot_sphere(
    z: Any,
    labels: Sequence[Any] | None = None,
    *,
    ax: Axes | None = None,
    max_points: int | None = 800,
    seed: int = 0,
    title: str = "Embeddings on the unit sphere",
    legend: bool = True,
    elev: float = 20,
    azim: float = 35,
    palette: Mapping[Any, Any] | None = None,
) -> Axes:
    """3-D unit vectors drawn on a wire-frame sphere.

    Args:
        z: ``(n, 3)`` embeddings (normalised here).
        labels: optional label per point.
        ax: a 3-D ``Axes`` (``projection="3d"``); a new one when None.
        max_points: subsample (fixed ``seed``).
        title: axes title.
        legend: show the label legend.
        elev, azim: view angles.
        palette: optional label -> colour, for labels that are colours (see
            :func:`category_colours`); the points then get a thin grey edge so that
            white shows on white.

    Returns:
        The 3-D ``Axes``.
    """
    pts = to_numpy(z).astype(float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"plot_sphere needs (n, 3) points, got shape {pts.shape}")
    pts = l2_normalise_rows(pts)
    ax = get_axes(ax, figsize=(4.0, 4.0), projection="3d")
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
    idx = subsample(len(pts), max_points, seed)
    if labels is None:
        ax.scatter(pts[idx, 0], pts[idx, 1], pts[idx, 2], s=8, color=OKABE_ITO[4], depthshade=False)
    else:
        colours, uniq = category_colours(np.asarray(labels)[idx], palette)
        edge = {"edgecolors": "0.3", "linewidths": 0.3} if palette else {}
        ax.scatter(pts[idx, 0], pts[idx, 1], pts[idx, 2], s=8, c=list(colours), depthshade=False, **edge)
        if legend:
            category_legend(ax, uniq, None, palette, loc="upper left")
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    ax.set_title(title, fontsize=10)
    return ax


def plot_pair_distances(
    x: Any,
    y: Any,
    *,
    ax: Axes | None = None,
    bins: int = 30,
    title: str = "Positive-pair distances",
    label: str | None = None,
) -> Axes:
    """Histogram of ``||x̂_k - ŷ_k||`` over matched rows (Wang & Isola, Fig. 2 bottom).

    Shape:
        x, y: ``(n, d)`` (normalised here).

    Returns:
        The ``Axes``.
    """
    a, b = to_numpy(x).astype(float), to_numpy(y).astype(float)
    a, b = l2_normalise_rows(a), l2_normalise_rows(b)
    d = np.linalg.norm(a - b, axis=1)
    ax = get_axes(ax)
    ax.hist(d, bins=bins, range=(0, 2), color=OKABE_ITO[4], alpha=0.8, label=label)
    return label_axes(ax, title, xlabel="‖x̂ − ŷ‖ of matched pairs", ylabel="pairs", legend=bool(label))
