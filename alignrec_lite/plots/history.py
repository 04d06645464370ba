"""Training histories: logged quantities over training and paths in the (align, uniform) plane.
Same rules as every plot module (:mod:`.style`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .style import OKABE_ITO, get_axes, label_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_history(
    history: Sequence[Mapping[str, float]],
    keys: Sequence[str],
    *,
    x: str = "epoch",
    ax: Axes | None = None,
    title: str = "Training history",
    ylabel: str = "",
) -> Axes:
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
    ax = get_axes(ax)
    xs = [float(h[x]) for h in history]
    for i, key in enumerate(keys):
        ax.plot(xs, [float(h[key]) for h in history], color=OKABE_ITO[(i + 4) % 8], lw=1.4, label=key)
    return label_axes(ax, title, xlabel=x, ylabel=ylabel, legend=True)


def plot_align_uniform_plane(
    runs: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    ax: Axes | None = None,
    title: str = "Training paths in the (align, uniform) plane",
) -> Axes:
    """Trajectories of ``(align, uniform)`` during training, one line per run (start o, end x).

    Lower-left is better on both: pairs close together, points spread out.

    Args:
        runs: ``{name: history}``; each history row has ``align`` and ``uniform``.
        ax: where to draw.
        title: axes title.

    Returns:
        The ``Axes``.
    """
    ax = get_axes(ax, figsize=(4.5, 3.4))
    for i, (name, hist) in enumerate(runs.items()):
        a = [float(h["align"]) for h in hist]
        u = [float(h["uniform"]) for h in hist]
        c = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(a, u, "-", color=c, lw=1.3, label=name)
        ax.plot(a[0], u[0], "o", color=c, ms=4)
        ax.plot(a[-1], u[-1], "x", color=c, ms=6, mew=2)
    return label_axes(
        ax, title, xlabel="ℓ_align (lower = pairs closer)", ylabel="ℓ_uniform (lower = more spread)", legend=True
    )
