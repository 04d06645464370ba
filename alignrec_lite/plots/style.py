"""What every figure shares: the Okabe-Ito palette, the ``ax=None`` rule, subsampling, colours and labels.

Continuous values use the colour-blind-safe ``cividis`` map; categories use the Okabe-Ito palette
(Okabe & Ito, 2008), which stays distinguishable under the common colour-vision deficiencies.
Scatter plots subsample to ``max_points`` with a fixed seed, so figures stay fast and do not change
from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..utils import subsample_indices

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection

#: Okabe-Ito colours (black last, it is used for the circle itself).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
SMALL = (4.0, 3.0)
WIDE = (6.0, 3.0)


def okabe_ito(i: int) -> str:
    """The ``i``-th Okabe-Ito colour, cycled past 8."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def to_numpy(x: Any) -> np.ndarray:
    """An array of a tensor (detached, on the CPU), an array or a list."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def get_axes(ax: Axes | None, figsize: tuple[float, float] = SMALL, projection: str | None = None) -> Axes:
    """``ax`` itself, or the one ``Axes`` of a new figure of ``figsize`` (``projection="3d"`` for 3-D)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    return fig.add_subplot(111, projection=projection) if projection else fig.add_subplot(111)


def label_axes(
    ax: Axes,
    title: str,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: bool = False,
    ticks: bool = True,
) -> Axes:
    """Finish an ``Axes`` the kit's way: axis labels, a title (fontsize 10), a small frameless legend.

    Args:
        ax: the ``Axes``.
        title: its title.
        xlabel, ylabel: axis labels (left alone when None).
        legend: draw the legend of the labelled artists.
        ticks: keep the ticks (``False`` for maps, whose coordinates mean nothing).

    Returns:
        ``ax``.
    """
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=7, frameon=False)
    return ax


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` points (the same draw as the geometry measures)."""
    idx = subsample_indices(n, max_points, seed)
    return np.arange(n) if idx is None else idx


def _palette_lookup(values: Sequence[Any], palette: Mapping[Any, Any] | None) -> dict[Any, Any]:
    """Label -> colour: ``palette`` where it names the label, Okabe-Ito (by sorted position) elsewhere."""
    palette = palette or {}
    return {v: palette.get(v, OKABE_ITO[i % len(OKABE_ITO)]) for i, v in enumerate(values)}


def category_colours(labels: Sequence[Any], palette: Mapping[Any, Any] | None = None) -> tuple[np.ndarray, list[Any]]:
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


def category_legend(
    ax: Axes, values: Sequence[Any], title: str | None = None, palette: Mapping[Any, Any] | None = None, **kw: Any
) -> None:
    """A legend with one round marker per category, coloured as :func:`category_colours` colours them."""
    from matplotlib.lines import Line2D

    lookup = _palette_lookup(values, palette)
    edge = {"markeredgecolor": "0.3", "markeredgewidth": 0.5} if palette else {}
    handles = [Line2D([], [], marker="o", ls="", color=lookup[v], label=str(v), **edge) for v in values]
    ax.legend(handles=handles, title=title, fontsize=7, title_fontsize=7, frameon=False, **kw)


def colour_points(
    ax: Axes,
    x: Any,
    y: Any,
    values: Any,
    categorical: bool | None,
    cmap: str,
    s: float,
    title: str | None,
    legend: bool = True,
    **scatter_kw: Any,
) -> PathCollection:
    """Scatter coloured by categorical or continuous ``values`` (or a single colour when None).

    Args:
        ax: where to draw.
        x, y: coordinates.
        values: a category or a number per point, or None.
        categorical: force the kind of ``values`` (default: strings, booleans or <= 8 distinct values).
        cmap: colour map of continuous values.
        s: marker size.
        title: legend / colour-bar title.
        legend: draw the legend (categories) or the colour bar (numbers).
        **scatter_kw: passed to ``ax.scatter``.

    Returns:
        The scatter's collection.
    """
    if values is None:
        return ax.scatter(x, y, s=s, color=OKABE_ITO[4], **scatter_kw)
    vals = np.asarray(values)
    if categorical is None:
        categorical = vals.dtype.kind in "OUSb" or len(np.unique(vals)) <= 8
    if categorical:
        colours, uniq = category_colours(vals)
        sc = ax.scatter(x, y, s=s, c=colours, **scatter_kw)
        if legend:
            category_legend(ax, uniq, title, loc="best")
        return sc
    sc = ax.scatter(x, y, s=s, c=vals.astype(float), cmap=cmap, **scatter_kw)
    if legend:
        cb = ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(title or "", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return sc
