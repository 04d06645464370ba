"""What an explorer shows without a kernel: every setting drawn in advance, switched in the page.

A live explorer (:func:`~alignrec_lite.widgets.geometry_explorer`,
:func:`~alignrec_lite.widgets.explorer.user_explorer`) redraws a matplotlib figure
when a control moves. A rendered page (``make site``) has no kernel behind it, so
when :func:`static_requested` is true (the renderer sets ``ALIGNREC_STATIC_EXPLORERS=1``)
each explorer also draws every combination of its controls once, and adds to its
display a ``text/html`` block (:data:`STATIC_MIME` marks it) with plain HTML controls and
a few lines of JavaScript that switch between the stored PNGs. JupyterLab, with a
kernel, keeps showing the live widget; the site shows the static one.

Figures are sent as PNG bytes (:func:`figure_png`), never as the figure object: how a
``Figure`` displays depends on the kernel's matplotlib backend (with ``Agg`` it is the
text ``<Figure size ...>``), and an explorer must show a picture whatever the backend.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

STATIC_ENV = "ALIGNREC_STATIC_EXPLORERS"
STATIC_MIME = "application/vnd.alignrec-lite.static-explorer+json"
LIVE_HINT = (
    "Static preview: every setting was drawn in advance. Run the notebook in JupyterLab (make lab) to explore it live."
)


def static_requested() -> bool:
    """Whether explorers should also draw their static (kernel-less) version."""
    return os.environ.get(STATIC_ENV, "").lower() in ("1", "true", "yes")


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (``bbox_inches="tight"``), independent of the matplotlib backend."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def png_output(png: bytes, text: str = "<figure>") -> dict[str, Any]:
    """A notebook ``display_data`` output holding ``png`` (what an ``Output`` widget stores)."""
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text},
    }


def show_figure(out: Any, fig: Any, text: str = "<figure>") -> None:
    """Replace an ``ipywidgets.Output``'s content with ``fig`` drawn as a PNG, and close ``fig``.

    The content is set directly instead of capturing ``display()`` messages: nbclient
    (papermill) can block until its cell timeout on output captured while a cell builds
    a widget.
    """
    import matplotlib.pyplot as plt

    png = figure_png(fig)
    plt.close(fig)
    out.outputs = (png_output(png, text),)


def static_html(
    controls: Sequence[tuple[str, Sequence[Any]]],
    draw: Callable[..., Any],
    start: Sequence[int] | None = None,
    *,
    hint: str = LIVE_HINT,
) -> str:
    """Draw every combination of ``controls`` and return an HTML block that switches between them.

    Args:
        controls: ``[(name, options), ...]``; the first becomes a drop-down, the others
            range sliders over their options' positions.
        draw: ``draw(*values) -> matplotlib Figure`` for one value of each control.
        start: the option index of each control shown first (default: 0 each).
        hint: one line under the figure saying how to run it live.

    Returns:
        Self-contained HTML (images as ``data:`` URIs, no network, no kernel).
    """
    import matplotlib.pyplot as plt

    sizes = [len(opts) for _, opts in controls]
    start = list(start) if start is not None else [0] * len(controls)
    frames: dict[str, str] = {}
    for combo in itertools.product(*(range(n) for n in sizes)):
        fig = draw(*(opts[i] for (_, opts), i in zip(controls, combo)))
        png = figure_png(fig)
        plt.close(fig)
        frames["|".join(map(str, combo))] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    key0 = "|".join(map(str, start))
    parts = []
    for k, (name, opts) in enumerate(controls):
        label = html.escape(str(name))
        if k == 0 and len(controls) > 1:
            options = "".join(
                f'<option value="{i}"{" selected" if i == start[k] else ""}>{html.escape(str(o))}</option>'
                for i, o in enumerate(opts)
            )
            parts.append(f'<label>{label} <select data-k="{k}">{options}</select></label>')
        else:
            parts.append(
                f'<label>{label} <input type="range" data-k="{k}" min="0" max="{len(opts) - 1}" '
                f'step="1" value="{start[k]}"> <output>{html.escape(str(opts[start[k]]))}</output></label>'
            )
    labels = json.dumps([[str(o) for o in opts] for _, opts in controls])
    return (
        '<div class="arl-explorer" style="font-family:sans-serif">'
        f'<div class="arl-controls" style="display:flex;gap:1.5em;margin:0.3em 0">{"".join(parts)}</div>'
        f'<img class="arl-frame" alt="explorer figure" src="{frames[key0]}" style="max-width:100%">'
        f'<p class="arl-hint" style="font-size:90%;color:#555">{html.escape(hint)}</p>'
        f'<script type="application/json" class="arl-frames">{json.dumps(frames)}</script>'
        "<script>(function(){var box=document.currentScript.parentElement;"
        "var frames=JSON.parse(box.querySelector('.arl-frames').textContent);"
        f"var labels={labels};"
        "var ctl=Array.prototype.slice.call(box.querySelectorAll('[data-k]'));"
        "function show(){var key=ctl.map(function(c){return c.value;}).join('|');"
        "ctl.forEach(function(c){var o=c.parentElement.querySelector('output');"
        "if(o){o.textContent=labels[+c.dataset.k][+c.value];}});"
        "box.querySelector('.arl-frame').src=frames[key];}"
        "ctl.forEach(function(c){c.addEventListener('input',show);c.addEventListener('change',show);});"
        "})();</script></div>"
    )


def attach_static(
    box: Any,
    controls: Sequence[tuple[str, Sequence[Any]]],
    draw: Callable[..., Any],
    start: Sequence[int] | None = None,
    *,
    hint: str = LIVE_HINT,
) -> Any:
    """Give a widget its static version when :func:`static_requested` (else return it unchanged).

    The widget's display then carries, beside the live widget view, ``text/html`` with
    the static explorer (:func:`static_html`) and a :data:`STATIC_MIME` marker, so that a
    page renderer knows it may drop the widget view (see
    :func:`alignrec_lite.nbtools.prepare_for_html`).
    """
    if not static_requested():
        return box
    page = static_html(controls, draw, start, hint=hint)
    live = box._repr_mimebundle_

    def bundle(**kwargs: Any) -> Any:
        data = live(**kwargs)
        data = dict(data[0]) if isinstance(data, tuple) else dict(data or {})
        data["text/html"] = page
        data[STATIC_MIME] = {"controls": [name for name, _ in controls]}
        return data

    box._repr_mimebundle_ = bundle
    return box


__all__ = [
    "STATIC_ENV",
    "STATIC_MIME",
    "attach_static",
    "figure_png",
    "png_output",
    "show_figure",
    "static_html",
    "static_requested",
]
