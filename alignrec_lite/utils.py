"""Small shared helpers: device choice, seeding, versions, memory, paths, and the few numeric and text
helpers several modules need (row normalisation, array -> tensor, naive feature fusion, word tokens, bag of words).

Nothing here runs at import time (no global device choice, no argparse).
"""

from __future__ import annotations

import os
import platform
import random
import re
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


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
            raise ConfigError(
                f"device {device!r} was requested but no CUDA GPU is available",
                row="device",
                fix="use device=auto or device=cpu",
            )
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


# ---------------------------------------------------------------- numeric and text helpers
def l2_normalise_rows(x: Any, eps: float = 1e-12) -> np.ndarray:
    """Divide every row by its L2 norm (rows of norm below ``eps`` are divided by ``eps``); the dtype is kept.

    Shape:
        x: ``(n, d)``; returns ``(n, d)``.
    """
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def fuse_features(blocks: Sequence[Any]) -> np.ndarray:
    """The naive fusion of several modalities' features: L2-normalise each block, concatenate, normalise again.

    Shape:
        blocks: ``(n, d_k)`` each; returns ``(n, sum d_k)`` float32.
    """
    unit = [l2_normalise_rows(np.asarray(b, dtype=np.float32)) for b in blocks]
    return l2_normalise_rows(np.concatenate(unit, axis=1))


def as_tensor(x: Any):
    """A float32 CPU tensor of an array, a list or a tensor (detached; shares memory where it can)."""
    import torch

    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.float().cpu()


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (hyphenated words such as ``polka-dot`` stay whole); ``[]`` for a non-string.

    >>> tokenize("Kivo polka-dot Cup!")
    ['kivo', 'polka-dot', 'cup']
    """
    return _WORD.findall(text.lower()) if isinstance(text, str) else []


def bag_of_words(texts: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """Word counts of each text over ``vocab`` (:func:`tokenize`; unknown words ignored), rows L2-normalised.

    Shape:
        returns ``(len(texts), len(vocab))`` float32.
    """
    index = {w: j for j, w in enumerate(vocab)}
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for r, text in enumerate(texts):
        for tok in tokenize(text):
            if tok in index:
                out[r, index[tok]] += 1.0
    return l2_normalise_rows(out)
