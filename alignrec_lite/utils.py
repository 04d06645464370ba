"""Small shared helpers: device choice, seeding, versions, memory, paths.

Nothing here runs at import time (no global device choice, no argparse).
"""

from __future__ import annotations

import os
import platform
import random
import resource
import sys
from pathlib import Path

import numpy as np


def get_device(device: str = "auto"):
    """Return the torch device to use; the only place the kit chooses one.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.

    Returns:
        A ``torch.device``.

    Raises:
        ConfigError: ``"cuda"`` was asked for on a machine without a GPU, or the
            name is unknown.
    """
    import torch

    from .errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was requested but no CUDA GPU is available",
                              row="device", fix="use device=auto or device=cpu")
        return torch.device(device)
    raise ConfigError(f"unknown device {device!r}", row="device", fix="use auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a CPU run repeats exactly."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def subsample_indices(n: int, k: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of ``k`` of ``n`` points drawn with ``seed``, or ``None`` when all ``n`` are kept."""
    if k is None or n <= k:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python, the kit and its main dependencies (for run records), plus ``extra`` packages."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("alignrec-lite", "torch", "numpy", "scipy", "pandas", "open_clip_torch", *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def show_versions() -> None:
    """Print :func:`versions`, one per line (first cell of every notebook)."""
    for k, v in versions().items():
        print(f"{k:16s} {v}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux/macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def data_root() -> Path | None:
    """Folder holding real datasets: ``$ALIGNREC_DATA`` if set, else ``None``."""
    root = os.environ.get("ALIGNREC_DATA")
    return Path(root).expanduser() if root else None


def cache_dir() -> Path:
    """Cache folder for downloads and built data: ``$ALIGNREC_CACHE`` or ``~/.cache/alignrec-lite``."""
    root = os.environ.get("ALIGNREC_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "alignrec-lite"
