"""One harness for running the notebooks in tests: SMOKE runs shared by a session, and what each draws.

Every numbered notebook runs at most once per test session in SMOKE on the toy shop
(:class:`SmokeRuns`, used by ``test_notebooks.py`` for the recorded numbers and what a
reader sees, and by ``test_browser.py`` for the static site). The kernels get:

* no ``MPLBACKEND`` (ipykernel then uses its inline backend: figures are ``image/png``);
* one torch thread (``NOTEBOOK_THREADS``): on a shared 2-core machine two OpenMP threads
  stall on every small op (measured: notebook 07 on MovieLens, SMOKE, 65 s with 2 threads,
  27 s with 1, same load);
* ``ALIGNREC_STATIC_EXPLORERS=1``, so the explorers also carry their kernel-less version;
* a per-session ``ALIGNREC_CACHE`` and ``TQDM_DISABLE=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

from alignrec_lite import nbtools
from alignrec_lite.nbtools import NotebookRun, list_notebooks, run_notebook
from alignrec_lite.widgets.static import STATIC_ENV

# image/png outputs each notebook is written to draw in its cells (one per cell tagged
# "figure"), and the explorers (cells tagged "explorer", one figure each in their widget)
FIGURES = {"01": 6, "02": 5, "03": 5, "04": 7, "05": 3, "06": 3, "07": 6, "08": 5}
EXPLORERS = {"03": 1, "08": 1}
KERNEL_THREADS = os.environ.get("NOTEBOOK_THREADS", "1")


def notebook_path(key: str) -> Path:
    """The notebook whose file name starts with ``key`` (``"03"``)."""
    (path,) = [p for p in list_notebooks() if p.name.startswith(key + "_")]
    return path


def kernel_env(**extra: str):
    """The kernels' variables (see the module docstring) via :func:`alignrec_lite.nbtools.kernel_env`."""
    return nbtools.kernel_env(**{"OMP_NUM_THREADS": KERNEL_THREADS, "TQDM_DISABLE": "1", STATIC_ENV: "1", **extra})


class SmokeRuns:
    """Each notebook executed once in SMOKE on the toy shop, on first request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache = folder / "cache"
        self.runs: dict[str, NotebookRun] = {}

    def get(self, key: str) -> NotebookRun:
        """The run of notebook ``key`` (executed now if it has not been yet)."""
        if key not in self.runs:
            src = notebook_path(key)
            with kernel_env(ALIGNREC_CACHE=str(self.cache)):
                self.runs[key] = run_notebook(src, self.folder, {"SMOKE": True}, timeout=600, cwd=src.parent)
        return self.runs[key]
