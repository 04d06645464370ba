"""The memory of a contrastive step: measured through autograd's saved tensors, fitted, extrapolated
(notebook 02)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .contrastive import TwoTower, pair_loss


def autograd_saved_bytes(fn: Callable[[], torch.Tensor]) -> dict[str, int]:
    """Measure what autograd keeps in memory for the backward pass of ``fn()``.

    Every tensor that the forward pass saves for backward goes through a
    ``torch.autograd.graph.saved_tensors_hooks`` pack hook; their storages are
    counted once each. This is the activation memory of a training step,
    measured exactly and the same on every machine (unlike the process's RSS).

    Args:
        fn: a function running a forward pass and returning a scalar loss.

    Returns:
        ``{"saved": bytes kept for backward, "n_tensors": tensors saved}``.
    """
    seen: dict[int, int] = {}
    count = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    value.backward()
    return {"saved": int(sum(seen.values())), "n_tensors": count[0]}


def autograd_saved_tensors(fn: Callable[[], torch.Tensor]) -> list[dict[str, Any]]:
    """List the distinct tensors autograd keeps for the backward pass of ``fn()``.

    The same hook as :func:`autograd_saved_bytes`, but each storage is reported
    once with what made it, so a notebook can show *which* ``N x N`` matrices a
    contrastive step keeps (for CLIP: the two log-softmax outputs, one per
    direction; the logits themselves are not kept).

    Returns:
        One dict per storage, in the order first saved: ``shape`` (tuple),
        ``bytes`` (its storage), ``made_by`` (the name of the autograd node that
        produced it, ``None`` for a leaf or an input).
    """
    rows: dict[int, dict[str, Any]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        made_by = type(t.grad_fn).__name__ if t.grad_fn is not None else None
        rows.setdefault(storage.data_ptr(), {"shape": tuple(t.shape), "bytes": storage.nbytes(), "made_by": made_by})
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    value.backward()
    return list(rows.values())


def contrastive_step_bytes(
    model: TwoTower, image_x: torch.Tensor, text_x: torch.Tensor, temperature: float = 0.1
) -> dict[str, int]:
    """Memory of one CLIP step on ``n = len(image_x)`` pairs.

    Returns:
        ``{"n": n, "saved": bytes autograd keeps, "logits": bytes of one n x n
        float32 logit matrix}``.
    """
    n = image_x.shape[0]
    out = autograd_saved_bytes(lambda: pair_loss(model.image(image_x), model.text(text_x), "clip", temperature))
    model.zero_grad(set_to_none=True)
    return {"n": n, "saved": out["saved"], "logits": n * n * 4}


def fit_memory_model(ns: Sequence[int], bytes_: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares fit ``bytes = a n^2 + b n + c`` (the logits grow as ``n^2``).

    Returns:
        ``(a, b, c)``.
    """
    n = np.asarray(ns, dtype=np.float64)
    design = np.stack([n * n, n, np.ones_like(n)], axis=1)  # (k, 3)
    coef, *_ = np.linalg.lstsq(design, np.asarray(bytes_, dtype=np.float64), rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def transformer_activation_bytes(
    n: float | np.ndarray,
    *,
    seq_len: int = 77,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    bytes_per_value: int = 2,
) -> float:
    """Activation memory of a Transformer text encoder's training step on ``n`` texts.

    Per layer and sequence, ``s h (34 + 5 a s / h)`` bytes with 16-bit
    activations and no recomputation (Korthikanti et al., 2022, Eq. 1); scaled
    by ``bytes_per_value / 2`` for other precisions. The default is a BERT-base
    sized encoder on CLIP's 77-token texts.

    Returns:
        Bytes as a float (an array for an array ``n``), so ``n = 1e5`` overflows nothing.
    """
    per_layer = seq_len * hidden * (34 + 5 * heads * seq_len / hidden)
    out = np.asarray(n, dtype=np.float64) * layers * per_layer * bytes_per_value / 2
    return float(out) if out.ndim == 0 else out


def gib(x: float) -> float:
    """Bytes to GiB."""
    return x / 2**30
