"""Figures about embeddings: vectors, similarities, the sphere, maps, memory and sweeps.

Every function draws into the ``ax`` it is given (or a new small figure when
``ax`` is None), returns that ``Axes`` and never calls ``plt.show()``, so a
notebook can arrange several panels itself (STYLE §2.5). Continuous values use
the colour-blind-safe ``cividis`` map; categories use the Okabe-Ito palette
(Okabe & Ito, 2008), which stays distinguishable under the common colour-vision
deficiencies. Scatter plots subsample to ``max_points`` with a fixed seed, so
figures stay fast and do not change from run to run.

The circle and sphere figures follow Wang & Isola (ICML 2020, Fig. 2): unit
vectors drawn on the circle with a density estimate of their angles.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils import subsample_indices

#: Okabe-Ito colours (black last, it is used for the circle itself).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
SMALL = (4.0, 3.0)
WIDE = (6.0, 3.0)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _axes(ax, figsize=SMALL, projection: str | None = None):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    return fig.add_subplot(111, projection=projection) if projection else fig.add_subplot(111)


def _subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` points (the same draw as the geometry measures)."""
    idx = subsample_indices(n, max_points, seed)
    return np.arange(n) if idx is None else idx


def _palette_lookup(values: Sequence[Any], palette: Mapping[Any, Any] | None) -> dict[Any, Any]:
    """Label -> colour: ``palette`` where it names the label, Okabe-Ito (by sorted position) elsewhere."""
    palette = palette or {}
    return {v: palette.get(v, OKABE_ITO[i % len(OKABE_ITO)]) for i, v in enumerate(values)}


def category_colours(labels: Sequence[Any], palette: Mapping[Any, Any] | None = None
                     ) -> tuple[np.ndarray, list[Any]]:
    """Map labels to colours: Okabe-Ito (cycled past 8 values), or the label's own colour.

    Args:
        labels: a label per point.
        palette: optional label -> colour (any matplotlib colour), for labels that *are*
            colours (the toy shop's "black" drawn black, "white" white); labels it does not
            name keep their Okabe-Ito colour.

    Returns:
        ``(colours (n,), the distinct labels sorted)``.
    """
    arr = np.asarray(labels)
    values = sorted(set(arr.tolist()), key=str)
    lookup = _palette_lookup(values, palette)
    out = np.empty(len(arr), dtype=object)
    out[:] = [lookup[v] for v in arr.tolist()]
    return out, values


def _legend_for(ax, values: Sequence[Any], title: str | None = None, palette: Mapping[Any, Any] | None = None,
                **kw) -> None:
    from matplotlib.lines import Line2D

    lookup = _palette_lookup(values, palette)
    edge = {"markeredgecolor": "0.3", "markeredgewidth": 0.5} if palette else {}
    handles = [Line2D([], [], marker="o", ls="", color=lookup[v], label=str(v), **edge) for v in values]
    ax.legend(handles=handles, title=title, fontsize=7, title_fontsize=7, frameon=False, **kw)


def _colour_points(ax, x, y, values, categorical: bool | None, cmap: str, s: float, title: str | None,
                   legend: bool = True, **scatter_kw):
    """Scatter coloured by categorical or continuous ``values`` (or a single colour)."""
    if values is None:
        return ax.scatter(x, y, s=s, color=OKABE_ITO[4], **scatter_kw)
    vals = np.asarray(values)
    if categorical is None:
        categorical = vals.dtype.kind in "OUSb" or len(np.unique(vals)) <= 8
    if categorical:
        colours, uniq = category_colours(vals)
        sc = ax.scatter(x, y, s=s, c=colours, **scatter_kw)
        if legend:
            _legend_for(ax, uniq, title, loc="best")
        return sc
    sc = ax.scatter(x, y, s=s, c=vals.astype(float), cmap=cmap, **scatter_kw)
    if legend:
        cb = ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(title or "", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return sc


# ------------------------------------------------------------------ notebook 01
def plot_vectors_2d(vectors: Any, names: Sequence[str] | None = None, *, colours: Sequence[str] | None = None,
                    ax=None, title: str = "Vectors in 2-D") -> Any:
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
    v = _to_numpy(vectors).astype(float)
    ax = _axes(ax)
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
    ax.set_xlabel("dimension 1")
    ax.set_ylabel("dimension 2")
    ax.set_title(title, fontsize=10)
    return ax


def plot_norm_vs_popularity(norms: Any, popularity: Any, *, ax=None, max_points: int | None = 3000,
                            seed: int = 0, title: str = "Item vector length vs popularity") -> Any:
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
    n, p = _to_numpy(norms).astype(float), _to_numpy(popularity).astype(float)
    idx = _subsample(len(n), max_points, seed)
    ax = _axes(ax)
    ax.scatter(p[idx] + 1, n[idx], s=8, alpha=0.6, color=OKABE_ITO[4])
    ax.set_xscale("log")
    ax.set_xlabel("training interactions + 1 (log)")
    ax.set_ylabel("‖item vector‖")
    ax.set_title(title, fontsize=10)
    return ax


def plot_image_grid(rows: Sequence[Sequence[Any]], *, captions: Sequence[Sequence[str]] | None = None,
                    row_labels: Sequence[str] | None = None, ax=None, cell: int = 64, pad: int = 6,
                    title: str = "Nearest neighbours") -> Any:
    """Draw rows of images (e.g. a query and its neighbours) as one mosaic in one ``Axes``.

    Args:
        rows: a list of rows, each a list of images (PIL images, ``(h, w, 3)``
            arrays or file paths; ``None`` or an unreadable file leaves a blank cell).
        captions: optional text under each image (same nesting as ``rows``), wrapped
            at word boundaries on up to two lines (a longer one ends in "…" after a whole word).
        row_labels: optional label left of each row.
        ax: where to draw (default: a figure sized to the grid).
        cell: side in pixels each image is resized to.
        pad: gap between images in pixels.
        title: axes title.

    Returns:
        The ``Axes``.
    """
    from PIL import Image

    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=1)
    width = max(8, round(cell / 3.6))  # characters per caption line at fontsize 5.5 under a `cell`-px image
    wrapped = None if captions is None else [
        ["\n".join(textwrap.wrap(str(t), width, max_lines=2, placeholder=" …")) if t else "" for t in row]
        for row in captions]
    lines = max((t.count("\n") + 1 for row in wrapped or [] for t in row if t), default=0)
    pitch = cell + pad + 8 * lines  # row height in canvas pixels, with room for the caption lines
    h = n_rows * pitch + pad
    w = n_cols * (cell + pad) + pad
    canvas = np.full((h, w, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if isinstance(img, (str, Path)):
                try:
                    with Image.open(img) as im:
                        img = im.convert("RGB")
                except (OSError, ValueError):
                    img = None
            if img is None:
                continue
            pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
            pil = pil.convert("RGB")
            pil.thumbnail((cell, cell))
            arr = np.asarray(pil)
            y0 = pad + r * pitch + (cell - arr.shape[0]) // 2
            x0 = pad + c * (cell + pad) + (cell - arr.shape[1]) // 2
            canvas[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
    fig_w = min(1.25 * n_cols + 0.6, 12)
    ax = _axes(ax, figsize=(fig_w, fig_w * h / w + 0.4))
    ax.imshow(canvas, interpolation="nearest")
    if wrapped is not None:
        for r, row in enumerate(wrapped):
            for c, text in enumerate(row):
                if text:
                    ax.text(pad + c * (cell + pad) + cell / 2, pad + r * pitch + cell + pad * 0.4,
                            text, fontsize=5.5, ha="center", va="top", linespacing=1.0)
    if row_labels is not None:
        ax.set_yticks([pad + r * pitch + cell / 2 for r in range(n_rows)])
        ax.set_yticklabels(row_labels, fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    return ax


def plot_bars(table: Mapping[str, Mapping[str, float]], *, ax=None, ylabel: str = "",
              title: str = "Measured values",
              ylim: tuple[float, float] | None = None, chance: Mapping[str, float] | None = None) -> Any:
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
    ax = _axes(ax, figsize=(max(4.0, 1.1 * len(groups) + 1.5), 3.0))
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
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return ax


def plot_similarity_matrix(sim: Any, *, row_labels: Sequence[str] | None = None,
                           col_labels: Sequence[str] | None = None, ax=None, title: str = "Similarity",
                           cbar_label: str = "cosine", annotate: bool | None = None,
                           vmin: float | None = None, vmax: float | None = None) -> Any:
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
    s = _to_numpy(sim).astype(float)
    ax = _axes(ax, figsize=(4.2, 3.4))
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
                ax.text(j, i, f"{s[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if s[i, j] > mid else "white")
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


# ------------------------------------------------------------------ notebook 02
def plot_sweep(rows: Sequence[Mapping[str, float]], x: str, ys: Sequence[str], *, ax=None, logx: bool = False,
               xlabel: str | None = None, ylabel: str = "", title: str | None = None) -> Any:
    """Line plot of several measured quantities against one swept setting.

    Args:
        rows: one dict per run (e.g. the output of
            :func:`alignrec_lite.contrastive.temperature_sweep`).
        x: the key swept (x axis).
        ys: keys plotted as lines.
        ax: where to draw.
        logx: logarithmic x axis.
        xlabel, ylabel, title: labels (default title: "<ys> vs <x>").

    Returns:
        The ``Axes``.
    """
    ax = _axes(ax)
    title = title if title is not None else f"{', '.join(ys)} vs {x}"
    xs = np.array([float(r[x]) for r in rows])
    for i, key in enumerate(ys):
        ax.plot(xs, [float(r[key]) for r in rows], marker="o", ms=4, color=OKABE_ITO[(i + 4) % 8], label=key)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return ax


def plot_memory_scaling(ns: Sequence[float], measured: Mapping[str, Sequence[float]],
                        curves: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None, *,
                        budget_gib: float | None = 80.0, ax=None,
                        title: str = "Memory of one contrastive step") -> Any:
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
    ax = _axes(ax, figsize=(5.0, 3.4))
    gib = 2.0 ** 30
    for i, (label, vals) in enumerate(measured.items()):
        ax.plot(ns, np.asarray(vals, dtype=float) / gib, "o", ms=5, color=OKABE_ITO[i], label=f"{label} (measured)")
    for i, (label, (xs, vals)) in enumerate((curves or {}).items()):
        ax.plot(xs, np.asarray(vals, dtype=float) / gib, "-", lw=1.5, color=OKABE_ITO[(i + 4) % 8], label=label)
    if budget_gib is not None:
        ax.axhline(budget_gib, color="0.3", ls="--", lw=1)
        ax.text(0.99, budget_gib * 1.3, f"{budget_gib:g} GiB (one large GPU) ", fontsize=7, color="0.3",
                ha="right", transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size N (pairs)")
    ax.set_ylabel("GiB")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6.5, frameon=False, loc="upper left")
    return ax


# ------------------------------------------------------------------ notebook 03
def plot_circle(z: Any, labels: Sequence[Any] | None = None, *, ax=None, density: bool = True,
                max_points: int | None = 1000, seed: int = 0, bandwidth: float = 0.15,
                title: str = "Embeddings on the unit circle", legend: bool = True) -> Any:
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
    pts = _to_numpy(z).astype(float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"plot_circle needs (n, 2) points, got shape {pts.shape}")
    pts = pts / np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-12)
    ax = _axes(ax, figsize=(4.0, 4.0))
    t = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(t), np.sin(t), color="0.75", lw=1, zorder=0)
    if density:
        ang = np.arctan2(pts[:, 1], pts[:, 0])
        kern = np.exp(np.cos(t[:, None] - ang[None, :]) / bandwidth**2)  # (361, n) von Mises
        dens = kern.mean(axis=1)
        dens = dens / (dens.max() + 1e-12)
        r = 1.12 + 0.45 * dens
        ax.plot(r * np.cos(t), r * np.sin(t), color=OKABE_ITO[4], lw=1.2)
    idx = _subsample(len(pts), max_points, seed)
    lab = None if labels is None else np.asarray(labels)[idx]
    _colour_points(ax, pts[idx, 0], pts[idx, 1], lab, True, "cividis", 10, None, legend=legend, alpha=0.8,
                   zorder=2)
    ax.set_xlim(-1.7, 1.7)
    ax.set_ylim(-1.7, 1.7)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return ax


def plot_sphere(z: Any, labels: Sequence[Any] | None = None, *, ax=None, max_points: int | None = 800,
                seed: int = 0, title: str = "Embeddings on the unit sphere", legend: bool = True,
                elev: float = 20, azim: float = 35, palette: Mapping[Any, Any] | None = None) -> Any:
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
    pts = _to_numpy(z).astype(float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"plot_sphere needs (n, 3) points, got shape {pts.shape}")
    pts = pts / np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-12)
    ax = _axes(ax, figsize=(4.0, 4.0), projection="3d")
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
    idx = _subsample(len(pts), max_points, seed)
    if labels is None:
        ax.scatter(pts[idx, 0], pts[idx, 1], pts[idx, 2], s=8, color=OKABE_ITO[4], depthshade=False)
    else:
        colours, uniq = category_colours(np.asarray(labels)[idx], palette)
        edge = {"edgecolors": "0.3", "linewidths": 0.3} if palette else {}
        ax.scatter(pts[idx, 0], pts[idx, 1], pts[idx, 2], s=8, c=list(colours), depthshade=False, **edge)
        if legend:
            _legend_for(ax, uniq, None, palette, loc="upper left")
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    ax.set_title(title, fontsize=10)
    return ax


def plot_align_uniform_plane(runs: Mapping[str, Sequence[Mapping[str, float]]], *, ax=None,
                             title: str = "Training paths in the (align, uniform) plane") -> Any:
    """Trajectories of ``(align, uniform)`` during training, one line per run (start o, end x).

    Lower-left is better on both: pairs close together, points spread out.

    Args:
        runs: ``{name: history}``; each history row has ``align`` and ``uniform``.
        ax: where to draw.
        title: axes title.

    Returns:
        The ``Axes``.
    """
    ax = _axes(ax, figsize=(4.5, 3.4))
    for i, (name, hist) in enumerate(runs.items()):
        a = [float(h["align"]) for h in hist]
        u = [float(h["uniform"]) for h in hist]
        c = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(a, u, "-", color=c, lw=1.3, label=name)
        ax.plot(a[0], u[0], "o", color=c, ms=4)
        ax.plot(a[-1], u[-1], "x", color=c, ms=6, mew=2)
    ax.set_xlabel("ℓ_align (lower = pairs closer)")
    ax.set_ylabel("ℓ_uniform (lower = more spread)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return ax


def plot_history(history: Sequence[Mapping[str, float]], keys: Sequence[str], *, x: str = "epoch", ax=None,
                 title: str = "Training history", ylabel: str = "") -> Any:
    """Curves of logged quantities over training.

    Args:
        history: rows with ``x`` and every key in ``keys``.
        keys: quantities to draw.
        x: the x-axis key (``"epoch"`` or ``"step"``).
        ax: where to draw.
        title, ylabel: labels.

    Returns:
        The ``Axes``.
    """
    ax = _axes(ax)
    xs = [float(h[x]) for h in history]
    for i, key in enumerate(keys):
        ax.plot(xs, [float(h[key]) for h in history], color=OKABE_ITO[(i + 4) % 8], lw=1.4, label=key)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return ax


def plot_pair_distances(x: Any, y: Any, *, ax=None, bins: int = 30, title: str = "Positive-pair distances",
                        label: str | None = None) -> Any:
    """Histogram of ``||x̂_k - ŷ_k||`` over matched rows (Wang & Isola, Fig. 2 bottom).

    Shape:
        x, y: ``(n, d)`` (normalised here).

    Returns:
        The ``Axes``.
    """
    a, b = _to_numpy(x).astype(float), _to_numpy(y).astype(float)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    d = np.linalg.norm(a - b, axis=1)
    ax = _axes(ax)
    ax.hist(d, bins=bins, range=(0, 2), color=OKABE_ITO[4], alpha=0.8, label=label)
    ax.set_xlabel("‖x̂ − ŷ‖ of matched pairs")
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=10)
    if label:
        ax.legend(fontsize=7, frameon=False)
    return ax


def project_2d(x: Any, method: str = "umap", *, seed: int = 0, n_neighbors: int = 15,
               metric: str = "cosine") -> np.ndarray:
    """Reduce ``(n, d)`` vectors to 2-D for a map: UMAP (McInnes et al., 2018) or PCA.

    UMAP compiles its numba kernels on first use (tens of seconds on a small
    CPU), so SMOKE runs use ``"pca"``.

    Args:
        x: ``(n, d)`` vectors.
        method: ``"umap"`` or ``"pca"``.
        seed: UMAP's random state (fixed, so maps repeat).
        n_neighbors: UMAP's neighbourhood size (clipped to ``n - 1``).
        metric: UMAP's metric.

    Returns:
        ``(n, 2)`` float32 coordinates.

    Raises:
        ConfigError: unknown method.
        ImportError: ``umap-learn`` is missing (install the ``notebooks`` extra).
    """
    from ..errors import ConfigError

    a = _to_numpy(x).astype(np.float32)
    if method == "pca":
        c = a - a.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        return (c @ vt[:2].T).astype(np.float32)  # (n, 2)
    if method != "umap":
        raise ConfigError(f"unknown projection {method!r}", row="method", fix="use 'umap' or 'pca'")
    import warnings

    try:
        import umap
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("project_2d(method='umap') needs umap-learn: pip install -e '.[notebooks]'") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state, etc.
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(a) - 1), random_state=seed, metric=metric)
        return reducer.fit_transform(a).astype(np.float32)


def plot_embedding_map(coords: Any, values: Sequence[Any] | None = None, *, categorical: bool | None = None,
                       ax=None, title: str = "Map of embeddings", value_name: str | None = None,
                       max_points: int | None = 3000, seed: int = 0, log: bool = False,
                       legend: bool = True) -> Any:
    """Scatter of 2-D map coordinates (from :func:`project_2d`) coloured by a value.

    Args:
        coords: ``(n, 2)``.
        values: a category (Okabe-Ito colours) or number (cividis) per point.
        categorical: force the kind of ``values`` (default: strings or <= 8 distinct values).
        ax: where to draw.
        title: axes title.
        value_name: legend / colour-bar title.
        max_points: subsample (fixed ``seed``).
        log: colour by ``log10(1 + value)`` (for popularity).
        legend: draw the legend / colour bar.

    Returns:
        The ``Axes``.
    """
    c = _to_numpy(coords).astype(float)
    idx = _subsample(len(c), max_points, seed)
    vals = None
    if values is not None:
        vals = np.asarray(values)[idx]
        if log:
            vals = np.log10(1.0 + vals.astype(float))
            categorical = False
    ax = _axes(ax)
    _colour_points(ax, c[idx, 0], c[idx, 1], vals, categorical, "cividis", 7, value_name, legend=legend, alpha=0.85)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return ax


def plot_joint_map(coords_a: Any, coords_b: Any, *, names: tuple[str, str] = ("image", "text"),
                   links: int = 30, ax=None, seed: int = 0, max_points: int | None = 2000,
                   title: str = "Both modalities on one map") -> Any:
    """One map of two modalities (e.g. image and text vectors of the same items).

    Rows are paired (row ``k`` of ``coords_a`` and of ``coords_b`` are the same
    item); ``links`` random pairs are joined by a thin line, so one sees
    whether an item's two vectors land close together.

    Args:
        coords_a, coords_b: ``(n, 2)`` map coordinates of a joint projection.
        names: legend names of the two sets.
        links: number of pairs joined by a line.
        ax: where to draw.
        seed: seed of the subsample and of the linked pairs.
        max_points: subsample per set.
        title: axes title.

    Returns:
        The ``Axes``.
    """
    a, b = _to_numpy(coords_a).astype(float), _to_numpy(coords_b).astype(float)
    idx = _subsample(len(a), max_points, seed)
    ax = _axes(ax)
    rng = np.random.default_rng(seed)
    for k in rng.choice(idx, size=min(links, len(idx)), replace=False):
        ax.plot([a[k, 0], b[k, 0]], [a[k, 1], b[k, 1]], color="0.7", lw=0.5, zorder=0)
    ax.scatter(a[idx, 0], a[idx, 1], s=7, color=OKABE_ITO[0], label=names[0], alpha=0.8)
    ax.scatter(b[idx, 0], b[idx, 1], s=7, color=OKABE_ITO[4], label=names[1], alpha=0.8, marker="s")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    return ax
