"""Explorers for embedding geometry: pick a loss and a temperature, see the circle or sphere.

The notebook trains the grid of models beforehand (small and fast in SMOKE);
the widget only switches between the stored embeddings and redraws with
:func:`alignrec_lite.plots.plot_circle` (2-D) or :func:`~alignrec_lite.plots.plot_sphere` (3-D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def require_ipywidgets():
    """Import and return ``ipywidgets``, or raise an ``ImportError`` that says how to get it."""
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the interactive explorers need ipywidgets: pip install -e '.[notebooks]'") from exc
    return ipywidgets


def geometry_explorer(
    results: Mapping[str, Mapping[float, Any]],
    labels: Sequence[Any] | None = None,
    *,
    param_name: str = "temperature",
    stats: Mapping[str, Mapping[float, Mapping[str, float]]] | None = None,
) -> Any:
    """A dropdown (loss) and a slider (temperature) over precomputed 2-D or 3-D embeddings.

    Args:
        results: ``{loss name: {temperature: (n, 2) or (n, 3) embeddings}}``. Losses that
            have no temperature can hold a single entry; the slider then offers
            only that value.
        labels: a label per point (colours), e.g. the item categories.
        param_name: the slider's name.
        stats: optional ``{loss: {temperature: {"align": ..., "uniform": ...}}}``
            written in the plot title.

    Returns:
        An ``ipywidgets.VBox``; its ``redraw()`` method draws the current
        selection (called once at creation), and ``controls`` holds
        ``(dropdown, slider)`` for scripted use.

    Raises:
        ValueError: ``results`` is empty (or the embeddings are not 2-D / 3-D, when drawn).
    """
    import matplotlib.pyplot as plt

    from ..plots import plot_circle, plot_sphere
    from .static import attach_static, show_figure

    widgets = require_ipywidgets()
    if not results or not all(results.values()):
        raise ValueError("geometry_explorer needs at least one loss with one embedding")
    losses = list(results)
    dropdown = widgets.Dropdown(options=losses, value=losses[0], description="loss")
    first = sorted(results[losses[0]])
    slider = widgets.SelectionSlider(
        options=first, value=first[len(first) // 2], description=param_name, continuous_update=False
    )
    out = widgets.Output()

    def draw(loss: str, t: float):
        """The figure for one loss and one temperature (the nearest stored one)."""
        t = min(results[loss], key=lambda v: abs(v - t))
        title = f"{loss}, {param_name} = {t:g}"
        if stats and loss in stats and t in stats[loss]:
            s = stats[loss][t]
            title += f"\nalign {s['align']:.2f}, uniform {s['uniform']:.2f}"
        z = results[loss][t]
        fig = plt.figure(figsize=(4.0, 4.0))
        if z.shape[1] == 3:
            plot_sphere(z, labels, ax=fig.add_subplot(projection="3d"), title=title, legend=False)
        else:
            plot_circle(z, labels, ax=fig.add_subplot(), title=title, legend=False)
        return fig

    def redraw(*_: Any) -> None:
        loss, t = dropdown.value, slider.value
        show_figure(out, draw(loss, t), text=f"<{loss}, {param_name} = {t:g}>")

    def on_loss(change: Mapping[str, Any]) -> None:
        options = sorted(results[change["new"]])
        current = slider.value
        slider.unobserve(redraw, names="value")
        slider.options = options
        slider.value = min(options, key=lambda v: abs(v - current))
        slider.observe(redraw, names="value")
        redraw()

    dropdown.observe(on_loss, names="value")
    slider.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([dropdown, slider]), out])
    box.redraw = redraw
    box.draw = draw
    box.controls = (dropdown, slider)
    redraw()
    temps = sorted({t for per_loss in results.values() for t in per_loss})
    return attach_static(
        box,
        [("loss", losses), (param_name, temps)],
        draw,
        start=[0, temps.index(min(temps, key=lambda v: abs(v - slider.value)))],
    )
