"""Figures about attention inside the Multiway encoder (:mod:`alignrec_lite.multiway`).

Same rules as the other plot modules: draw into ``ax`` (or a new small figure),
return the ``Axes``, never call ``plt.show()``; continuous values in ``cividis``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .style import get_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_patch_attention(
    maps: Sequence[dict[str, Any]], *, ax: Axes | None = None, title: str | None = None, wrap: int = 18
) -> Axes:
    """Which image patches a title token attends to, for a few items side by side.

    Each item is one column: its image on top, underneath the attention of one title
    token over the image's patches (``cividis``, brighter = more attention), then the
    token and the title. Each map is stretched from its own minimum to its own maximum,
    so compare *where* each token looks, not how much.

    Args:
        maps: from :func:`alignrec_lite.multiway.title_patch_attention`: dicts with
            ``"image"`` ``(S, S, 3)`` in [0, 1], ``"attention"`` ``(g, g)``, ``"token"``, ``"title"``.
        ax: where to draw (a new figure when None).
        title: figure title (default says what is shown).
        wrap: characters per line of the item titles.

    Returns:
        The ``Axes``.
    """
    if not maps:
        raise ValueError("plot_patch_attention needs at least one item")
    n = len(maps)
    ax = get_axes(ax, figsize=(1.7 * n + 0.4, 4.4))
    s = maps[0]["image"].shape[0]
    gap = s * 0.08
    for i, m in enumerate(maps):
        x0 = i * (s + gap)
        ax.imshow(np.asarray(m["image"]), extent=(x0, x0 + s, s, 0), interpolation="nearest")
        att = np.asarray(m["attention"], dtype=float)
        span = att.max() - att.min()
        att = (att - att.min()) / span if span > 0 else np.zeros_like(att)
        ax.imshow(
            att, extent=(x0, x0 + s, 2 * s + gap, s + gap), cmap="cividis", vmin=0, vmax=1, interpolation="nearest"
        )
        label = f"“{m['token']}”\n" + "\n".join(textwrap.wrap(str(m["title"]), wrap)[:2])
        ax.text(x0 + s / 2, 2 * s + 2 * gap, label, ha="center", va="top", fontsize=7)
    ax.set_xlim(-gap / 2, n * (s + gap) - gap / 2)
    ax.set_ylim(2.55 * s, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title or "Attention of a title token over the patches (top block; bright = more)", fontsize=9)
    return ax
