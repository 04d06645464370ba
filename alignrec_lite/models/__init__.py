"""Recommenders on one interface (see :mod:`alignrec_lite.models.base`).

``MODELS`` maps the names the command line accepts to ``module:Class``; classes are
imported on first use so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib

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
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:  # a model not written yet
        raise ConfigError(f"model {name!r} is not available in this version ({exc})", row="model",
                          fix=f"choose one of {', '.join(available_models())}") from None
    return getattr(mod, cls)


def available_models() -> list[str]:
    """Names of the models whose modules exist."""
    out = []
    for name, target in MODELS.items():
        if importlib.util.find_spec(f"{__name__}.{target.split(':')[0]}") is not None:
            out.append(name)
    return out


__all__ = ["MODELS", "Recommender", "get_model_class", "available_models"]
