"""Recommenders on one interface (see :mod:`alignrec_lite.models.base`).

``MODELS`` maps the names the command line accepts to ``module:Class``; classes are
imported on first use so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..data.mmrec import RecDataset
from ..errors import ConfigError
from .base import Recommender

MODELS: dict[str, str] = {
    "bpr": "bpr:BPR",
    "lightgcn": "lightgcn:LightGCN",
    "vbpr": "vbpr:VBPR",
    "freedom": "freedom:FREEDOM",
    "alignrec": "alignrec:AlignRec",
}


def get_model_class(name: str) -> type[Recommender]:
    """Return the model class registered under ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}", row="model", fix=f"choose one of {', '.join(MODELS)}")
    module, cls = MODELS[key].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_model(
    name: str, dataset: RecDataset, config: Mapping[str, Any] | None = None, *, preset: str = "none"
) -> Recommender:
    """Build the model registered under ``name`` from a checked config (:meth:`Recommender.from_config`).

    Args:
        name: a registered model name (see :data:`MODELS`).
        dataset: the training data.
        config: settings; unknown keys and bad values raise :class:`ConfigError`.
        preset: ``"none"`` (default), ``"auto"`` or a tuned preset name (see
            :func:`alignrec_lite.config.pick_preset`).

    Returns:
        The new model.
    """
    return get_model_class(name).from_config(dataset, config, preset=preset)


__all__ = ["MODELS", "Recommender", "build_model", "get_model_class"]
