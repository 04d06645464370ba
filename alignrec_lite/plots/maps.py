"""Maps of many items: 2-D projections (UMAP, PCA), the maps coloured by a value, both modalities on one
map, and image mosaics of items and their neighbours. Same rules as every plot module (:mod:`.style`)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .style import OKABE_ITO, colour_points, get_axes, label_axes, subsample, to_numpy

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def project_2d(
    x: Any, method: str = "umap", *, seed: int = 0, n_neighbors: int = 15, metric: str = "cosine"
) -> np.ndarray:
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

    a = to_numpy(x).astype(np.float32)
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


def plot_embedding_map(
    coords: Any,
    values: Sequence[Any] | None = None,
    *,
    categorical: bool | None = None,
    ax: Axes | None = None,
    title: str = "Map of embeddings",
    value_name: str | None = None,
    max_points: int | None = 3000,
    seed: int = 0,
    log: bool = False,
    legend: bool = True,
) -> Axes:
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
    c = to_numpy(coords).astype(float)
    idx = subsample(len(c), max_points, seed)
    vals = None
    if values is not None:
        vals = np.asarray(values)[idx]
        if log:
            vals = np.log10(1.0 + vals.astype(float))
            categorical = False
    ax = get_axes(ax)
    colour_points(ax, c[idx, 0], c[idx, 1], vals, categorical, "cividis", 7, value_name, legend=legend, alpha=0.85)
    return label_axes(ax, title, ticks=False)


def plot_joint_map(
    coords_a: Any,
    coords_b: Any,
    *,
    names: tuple[str, str] = ("image", "text"),
    links: int = 30,
    ax: Axes | None = None,
    seed: int = 0,
    max_points: int | None = 2000,
    title: str = "Both modalities on one map",
) -> Axes:
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
    a, b = to_numpy(coords_a).astype(float), to_numpy(coords_b).astype(float)
    idx = subsample(len(a), max_points, seed)
    ax = get_axes(ax)
    rng = np.random.default_rng(seed)
    for k in rng.choice(idx, size=min(links, len(idx)), replace=False):
        ax.plot([a[k, 0], b[k, 0]], [a[k, 1], b[k, 1]], color="0.7", lw=0.5, zorder=0)
    ax.scatter(a[idx, 0], a[idx, 1], s=7, color=OKABE_ITO[0], label=names[0], alpha=0.8)
    ax.scatter(b[idx, 0], b[idx, 1], s=7, color=OKABE_ITO[4], label=names[1], alpha=0.8, marker="s")
    return label_axes(ax, title, ticks=False, legend=True)


def plot_image_grid(
    rows: Sequence[Sequence[Any]],
    *,
    captions: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    cell: int = 64,
    pad: int = 6,
    title: str = "Nearest neighbours",
) -> Axes:
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
    wrapped = (
        None
        if captions is None
        else [
            ["\n".join(textwrap.wrap(str(t), width, max_lines=2, placeholder=" …")) if t else "" for t in row]
            for row in captions
        ]
    )
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
            canvas[y0 : y0 + arr.shape[0], x0 : x0 + arr.shape[1]] = arr
    fig_w = min(1.25 * n_cols + 0.6, 12)
    ax = get_axes(ax, figsize=(fig_w, fig_w * h / w + 0.4))
    ax.imshow(canvas, interpolation="nearest")
    if wrapped is not None:
        for r, row in enumerate(wrapped):
            for c, text in enumerate(row):
                if text:
                    ax.text(
                        pad + c * (cell + pad) + cell / 2,
                        pad + r * pitch + cell + pad * 0.4,
                        text,
                        fontsize=5.5,
                        ha="center",
                        va="top",
                        linespacing=1.0,
                    )
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
