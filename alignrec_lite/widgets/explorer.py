"""The user explorer of notebook 08: a user's history beside two models' recommendations.

Pick a user; see the images (posters on MovieLens) of the items they interacted
with in training, and the top-K of each model, the items that are in the user's
test split framed in green. Every top-K list is computed once when the widget is
built (:func:`alignrec_lite.longtail.topk_lists`), so moving the slider only redraws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .embeddings import require_ipywidgets


def precompute_lists(dataset, scorers: Mapping[str, Any], users: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Top-``k`` lists of ``users`` for every scorer (a model or a score function).

    Returns:
        ``{name: (len(users), k) itemIDs}`` (training items masked; ``-1`` = empty slot).
    """
    from ..longtail import topk_lists

    out = {}
    for name, s in scorers.items():
        fn = s.full_sort_scores if hasattr(s, "full_sort_scores") else s
        out[name] = topk_lists(fn, dataset, users, k=k)[1]
    return out


def user_panel(
    dataset,
    user: int,
    lists: Mapping[str, Sequence[int]],
    *,
    history: int = 10,
    split: str = "test",
    axes=None,
    size: int = 64,
):
    """Draw one user's recent history and each model's list, one row each.

    Args:
        dataset: the data (images from its items table).
        user: the userID.
        lists: ``{model name: top-K itemIDs of this user}``.
        history: how many training items to show (the user's first ones by itemID order
            when there are no timestamps, else the most recent).
        split: the split whose items count as hits (green frames).
        axes: ``1 + len(lists)`` Axes to draw into (default: a new figure).
        size: image height in pixels.

    Returns:
        The list of Axes.
    """
    import matplotlib.pyplot as plt

    from ..plots import plot_items

    train = dataset.train
    mine = np.flatnonzero(train[:, 0] == user)
    if dataset.timestamps is not None and len(dataset.timestamps.get("train", [])) == len(train):
        mine = mine[np.argsort(dataset.timestamps["train"][mine], kind="stable")][::-1]  # most recent first
    seen = train[mine[:history], 1]
    truth = set(dataset.split(split)[dataset.split(split)[:, 0] == user, 1].tolist())
    if axes is None:
        _, axes = plt.subplots(1 + len(lists), 1, figsize=(max(6.0, 0.5 * max(history, 10)), 1.5 * (1 + len(lists))))
    axes = list(np.atleast_1d(axes))
    plot_items(
        dataset,
        seen,
        ax=axes[0],
        size=size,
        title=f"user {dataset.raw_user_id(int(user))}: {len(mine)} training items (showing {len(seen)})",
    )
    for ax, (name, items) in zip(axes[1:], lists.items()):
        items = [int(i) for i in items if int(i) >= 0]
        hits = [i in truth for i in items]
        plot_items(
            dataset,
            items,
            ax=ax,
            size=size,
            hits=hits,
            title=f"{name}: {sum(hits)} of {len(items)} in the user's {split} items (green)",
        )
    return axes


def user_explorer(
    dataset,
    scorers: Mapping[str, Any],
    *,
    users: np.ndarray | None = None,
    k: int = 10,
    history: int = 10,
    split: str = "test",
    draw: bool = True,
    static_users: int = 8,
) -> Any:
    """An ipywidgets explorer: a user slider, their history and each model's top-K side by side.

    Args:
        dataset: the data.
        scorers: ``{name: trained model or score function}`` (two models read best).
        users: the users offered (default: those with an interaction in ``split``).
        k: list length.
        history: training items shown.
        split: the split whose items are framed as hits.
        draw: draw the first user's panel now (otherwise on the first slider move).
        static_users: how many users the static (kernel-less) page version offers
            (see :mod:`alignrec_lite.widgets.static`).

    Returns:
        An ``ipywidgets.VBox``; ``redraw()`` draws the current user, ``controls``
        holds the slider, ``lists`` the precomputed top-K.
    """
    from .static import attach_static, show_figure

    draw_now = draw
    widgets = require_ipywidgets()
    if users is None:
        users = np.unique(dataset.split(split)[:, 0])
    users = np.asarray(users, dtype=np.int64)
    if len(users) == 0:
        raise ValueError("user_explorer needs at least one user")
    lists = precompute_lists(dataset, scorers, users, k=k)
    row_of = {int(u): r for r, u in enumerate(users)}
    slider = widgets.SelectionSlider(
        options=[int(u) for u in users], value=int(users[0]), description="userID", continuous_update=False
    )
    out = widgets.Output()

    def draw(u: int):
        """The panel of one user as a figure."""
        axes = user_panel(dataset, int(u), {n: lists[n][row_of[int(u)]] for n in lists}, history=history, split=split)
        fig = axes[0].figure
        fig.tight_layout()
        return fig

    def redraw(*_: Any) -> None:
        show_figure(out, draw(int(slider.value)), text=f"<user {int(slider.value)}>")

    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, out])
    box.redraw = redraw
    box.draw = draw
    box.controls = (slider,)
    box.lists = lists
    if draw_now:
        redraw()
    shown = [int(u) for u in users[:static_users]]
    return attach_static(
        box,
        [("userID", shown)],
        draw,
        hint=f"Static preview of the first {len(shown)} users, drawn in advance. Run the "
        "notebook in JupyterLab (make lab) to explore every user live.",
    )


__all__ = ["precompute_lists", "user_panel", "user_explorer"]
