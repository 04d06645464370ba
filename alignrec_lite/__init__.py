"""alignrec-lite: multimodal recommendation with AlignRec (Liu et al., CIKM 2024), for teaching and for real.

``import alignrec_lite as arl`` gives the helpers every notebook starts with
(:func:`show_versions`, :func:`get_device`, :func:`seed_everything`) and the
sub-modules on first use (``arl.losses``, ``arl.evaluate``, ``arl.data`` …), so the
import itself stays cheap and runs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import AlignRecError, CheckpointError, ConfigError, DataError, DownloadError
from .utils import get_device, seed_everything, show_versions, versions

__version__ = "0.1.0"

_SUBMODULES = {
    "cli",
    "coldstart",
    "config",
    "data",
    "encoders",
    "evaluate",
    "exercises",
    "experiments",
    "feature_eval",
    "files",
    "geometry",
    "graphs",
    "ica",
    "longtail",
    "losses",
    "models",
    "multiway",
    "nbtools",
    "plots",
    "runs",
    "scorers",
    "serve",
    "teach",
    "train",
    "tuning",
    "utils",
    "widgets",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'alignrec_lite' has no attribute {name!r}")


__all__ = [
    "AlignRecError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DownloadError",
    "get_device",
    "seed_everything",
    "show_versions",
    "versions",
    "__version__",
]
