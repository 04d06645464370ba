"""Figures for the notebooks: ``plot_x(data..., *, ax=None, **kw) -> Axes``, never ``plt.show()``.

Each function draws into the ``Axes`` it is given, or into a new small figure
when ``ax`` is None, and returns the ``Axes``; notebooks arrange the panels.
Topics live in submodules: :mod:`.embeddings` (vectors, similarity matrices, the circle and
the sphere), :mod:`.maps` (2-D projections, maps, image mosaics), :mod:`.charts` (bars, sweeps,
memory), :mod:`.history` (training histories), :mod:`.attention` (the Multiway encoder's
attention), :mod:`.evaluation` (notebooks 05-08) and :mod:`.style` (palette and shared helpers).
Every public ``plot_*`` function is re-exported here, so ``alignrec_lite.plots.plot_circle(...)`` works.
"""

from .attention import plot_patch_attention
from .charts import plot_bars, plot_memory_scaling, plot_sweep
from .embeddings import (
    plot_circle,
    plot_norm_vs_popularity,
    plot_pair_distances,
    plot_similarity_matrix,
    plot_sphere,
    plot_vectors_2d,
)
from .evaluation import *  # noqa: F403 - notebooks 05-08 (names in evaluation.__all__)
from .history import plot_align_uniform_plane, plot_history
from .maps import plot_embedding_map, plot_image_grid, plot_joint_map, project_2d
from .style import OKABE_ITO, category_colours

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
