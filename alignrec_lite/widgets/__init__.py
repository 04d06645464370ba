"""Interactive explorers for the notebooks (ipywidgets, imported only when used).

Importing :mod:`alignrec_lite.widgets` does not import ipywidgets; building a
widget does, and raises a clear ``ImportError`` naming the ``notebooks`` extra
when it is missing. Every explorer is precomputed: moving a control only
redraws, it never trains, so it also works in a rendered page's kernel-less
preview of the initial state.
"""

from .embeddings import geometry_explorer, require_ipywidgets

__all__ = ["geometry_explorer", "require_ipywidgets"]
