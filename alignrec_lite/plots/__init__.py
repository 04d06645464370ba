"""Figures for the notebooks: ``plot_x(data..., *, ax=None, **kw) -> Axes``, never ``plt.show()``.

Each function draws into the ``Axes`` it is given, or into a new small figure
when ``ax`` is None, and returns the ``Axes``; notebooks arrange the panels.
Topics live in submodules (:mod:`.embeddings`, ...); every public ``plot_*``
function is re-exported here, so ``alignrec_lite.plots.plot_circle(...)`` works.
"""

from .embeddings import (
    OKABE_ITO,
    category_colours,
    plot_align_uniform_plane,
    plot_bars,
    plot_circle,
    plot_embedding_map,
    plot_history,
    plot_image_grid,
    plot_joint_map,
    plot_memory_scaling,
    plot_norm_vs_popularity,
    plot_pair_distances,
    plot_similarity_matrix,
    plot_sphere,
    plot_sweep,
    plot_vectors_2d,
    project_2d,
)
from .attention import plot_patch_attention  # noqa: E402
from .evaluation import *  # noqa: E402,F401,F403 - notebooks 05-08 (names in evaluation.__all__)

__all__ = [
    "OKABE_ITO",
    "category_colours",
    "plot_align_uniform_plane",
    "plot_bars",
    "plot_circle",
    "plot_embedding_map",
    "plot_history",
    "plot_image_grid",
    "plot_joint_map",
    "plot_memory_scaling",
    "plot_norm_vs_popularity",
    "plot_pair_distances",
    "plot_patch_attention",
    "plot_similarity_matrix",
    "plot_sphere",
    "plot_sweep",
    "plot_vectors_2d",
    "project_2d",
]
