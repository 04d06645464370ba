"""Memory at the door: estimates of what a setting will allocate, refused before any work when they cannot fit.

:func:`check_memory` compares an estimate with psutil's free memory and raises a
:class:`~alignrec_lite.errors.ConfigError` naming both, the setting that drives it and
the fix; every estimate it compared is kept in :data:`ESTIMATES` with the resident
memory at that moment, so the estimates can be set against measured peaks
(``python tests/memory_estimates.py``, docs/RELIABILITY.md §9). The estimators:
:func:`estimate_training_bytes` (``train``), :func:`estimate_extraction_bytes`
(``features``), :func:`estimate_feature_eval_bytes` (``evaluate-features``),
:func:`estimate_stage1_bytes` (``pretrain-ica``, both encoders); :func:`activation_bytes`
probes a network's layer outputs for one item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError

GiB = 1 << 30
MiB = 1 << 20

#: what the libraries take on first use in a command that runs networks over items (torch's CPU
#: kernels and allocator arenas, the tokenizer, the image decoders): the intercept of the peaks
#: measured at two batch sizes (docs/RELIABILITY.md §9); half of it where no network runs
WORKING_MEMORY = 200 * MiB


def free_memory_bytes() -> int:
    """Memory available to a new allocation (psutil's ``available``)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return 1 << 62


#: every estimate :func:`check_memory` compared in this process: ``{"what", "row", "needed", "rss"}``
#: (``rss``: resident bytes at the check), so that a measured peak can be set against it
#: (``python tests/memory_estimates.py``; the figures are in docs/RELIABILITY.md §9)
ESTIMATES: list[dict[str, Any]] = []


def rss_bytes() -> int:
    """This process's resident memory now (0 where it cannot be read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return 0


def format_bytes(n: float) -> str:
    """``"3.2 GiB"`` from 1 GiB up, else ``"250 MiB"``.

    >>> format_bytes(3.5 * GiB), format_bytes(250 * MiB)
    ('3.5 GiB', '250 MiB')
    """
    return f"{n / GiB:,.1f} GiB" if n >= GiB else f"{n / MiB:,.0f} MiB"


def check_memory(needed: float, what: str, *, row: str, fix: str, share: float = 0.9) -> None:
    """Refuse when ``needed`` bytes exceed ``share`` of the free memory, naming both."""
    del ESTIMATES[:-99]  # keep the last 100
    ESTIMATES.append({"what": what, "row": row, "needed": float(needed), "rss": rss_bytes()})
    free = free_memory_bytes()
    if needed > share * free:
        raise ConfigError(
            f"{what} needs about {format_bytes(needed)} but the machine has {format_bytes(free)} free (psutil)",
            row=row,
            fix=fix,
        )


def check_batched_memory(
    needed: float, batch_part: float, what: str, *, batch_size: int, min_batch: int = 1, more: str = ""
) -> None:
    """:func:`check_memory` for work done in batches: the fix names ``--batch-size`` when batches are most of it.

    Args:
        needed: the whole estimate in bytes.
        batch_part: the bytes that scale with the batch size.
        what: what is being done (the message's subject).
        batch_size: the batch size asked for (the fix suggests a quarter of it, at least ``min_batch``).
        min_batch: the smallest batch size the command accepts.
        more: what else the user can do when the batches are not the problem (appended to the fix).
    """
    by_batch = batch_part > needed / 2
    check_memory(
        needed,
        what,
        row="--batch-size" if by_batch else "DIR",
        fix=(
            f"lower --batch-size (e.g. --batch-size {max(min_batch, batch_size // 4)}) "
            "or use a machine with more memory"
            if by_batch
            else "use a machine with more memory" + (f" ({more})" if more else "")
        ),
    )


def estimate_training_bytes(dataset: Any, cfg: Mapping[str, Any]) -> tuple[float, str]:
    """A rough upper estimate of the memory a training run allocates, and the key that drives it.

    Model tables (weights, gradients, two Adam moments), graph propagation
    (one ``(n_users + n_items) x d`` block per layer, kept for backward), the
    evaluation score block (``eval_batch_users x n_items``) and content features.
    """
    n_u, n_i = int(dataset.n_users), int(dataset.n_items)
    n = n_u + n_i
    d = int(cfg.get("embedding_size", 64))
    parts: dict[str, float] = {}
    parts["embedding_size"] = 4.0 * 4 * n * d * 2  # weights + grad + 2 Adam moments (x2: VBPR-style tables)
    layers = int(cfg.get("n_layers", 0) or 0) + int(cfg.get("n_ui_layers", 0) or 0)
    parts["n_layers"] = 4.0 * 3 * (layers + 1) * n * d  # activations kept for backward, and their grads
    parts["eval_batch_users"] = 4.0 * 3 * min(int(cfg.get("eval_batch_users", 1024)), max(n_u, 1)) * n_i
    parts["batch_size"] = 4.0 * 16 * int(cfg.get("batch_size", 2048)) * d
    feats = getattr(dataset, "features", {}) or {}
    d_m = sum(int(v.shape[1]) for v in feats.values()) if feats else 0
    parts["feature_source"] = 4.0 * 4 * n_i * d_m + 4.0 * 2 * d_m * d
    if "knn_k" in cfg:
        parts["knn_k"] = 12.0 * 4 * n_i * int(cfg["knn_k"])
    total = sum(parts.values()) + 4.0 * 6 * len(getattr(dataset, "train", ()))
    return total, max(parts, key=parts.get)


def activation_bytes(module: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """Bytes of the outputs of every leaf layer in one forward pass: ``(sum, largest)``.

    A probe for the memory estimates: call it with a one-item input and scale by the
    batch. It runs in eval mode without gradients, then restores the module's mode and
    torch's CPU random state, so it changes nothing a later seeded run draws.
    """
    import torch

    sizes: list[int] = []

    def tensors(out: Any) -> list[Any]:
        if isinstance(out, torch.Tensor):
            return [out]
        if isinstance(out, Mapping):
            out = list(out.values())
        if isinstance(out, (list, tuple)):
            return [t for o in out for t in tensors(o)]
        return []

    def hook(_m: Any, _inp: Any, out: Any) -> None:
        sizes.extend(t.numel() * t.element_size() for t in tensors(out))

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    modes = {m: m.training for m in module.modules()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            module.eval()
            module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return sum(sizes), max(sizes, default=0)


def estimate_extraction_bytes(
    n_items: int, dim: int, batch_size: int, *, input_bytes: float, largest_layer_bytes: float
) -> float:
    """Feature extraction of one modality: one batch through a tower, then the finished matrix.

    One batch holds its pre-processed inputs twice (the list and the stacked tensor) and,
    in a forward pass without gradients, about three layer outputs at a time; the
    feature matrix exists about three times at the end (the shards read back, their
    concatenation and the float32 copy that is saved).

    Args:
        n_items, dim: the catalogue and the feature width.
        batch_size: items per forward pass.
        input_bytes: one item's pre-processed input.
        largest_layer_bytes: the largest layer output of one item (:func:`activation_bytes`).

    Plus :data:`WORKING_MEMORY`.
    """
    b = min(int(batch_size), max(1, int(n_items)))
    return WORKING_MEMORY + b * (2.0 * input_bytes + 3.0 * largest_layer_bytes) + 3.0 * 4 * n_items * dim


def estimate_feature_eval_bytes(
    n_users: int,
    n_items: int,
    widths: Sequence[int],
    *,
    batch_users: int,
    knn_rows: int,
    knn_k: int,
    geometry: bool = True,
) -> tuple[float, str]:
    """What ``evaluate-features`` allocates beyond the loaded features, and the flag that drives it.

    Per source (the widest counts): its matrix, a masked copy, the normalised items and
    the user profiles of the zero-shot scorer. One block at a time: an item-kNN
    similarity block of ``knn_rows x n_items`` (the similarity, the shrink divisor and
    the result), or a scoring block of ``batch_users x n_items`` (the scorer's scores, the
    evaluator's own copy of them, the mask and top-K),
    or the geometry's pairwise distances of at most 4,096 points. Plus the kNN graph and
    half of :data:`WORKING_MEMORY` (no network runs here).

    Returns:
        ``(bytes, "--batch-users" or "--source")``.
    """
    d = max([int(w) for w in widths] or [1])
    per_source = 4.0 * d * (3 * n_items + 2 * n_users)
    knn_block = 4.0 * 3.25 * min(knn_rows, n_items) * n_items
    score_block = 4.0 * 4 * min(batch_users, max(1, n_users)) * n_items
    m = min(4096, max(n_items, n_users))
    geometry_block = 4.0 * 3 * m * m / 2 if geometry else 0.0
    block = max(knn_block, score_block, geometry_block)
    total = WORKING_MEMORY / 2 + per_source + block + 12.0 * 2 * n_items * knn_k
    key = "--batch-users" if max(knn_block, score_block) >= per_source else "--source"
    return total, key


def estimate_stage1_bytes(
    n_items: int,
    *,
    pixel_bytes: float,
    kept_per_item: float,
    trainable_params: int,
    batch_size: int,
    batch_item_bytes: float,
    extra: float = 0.0,
    phases: Sequence[float] = (),
) -> float:
    """Stage-1 pre-training (``pretrain-ica``, both encoders): what is kept for every item, the
    optimiser and one training batch.

    Args:
        n_items: the catalogue.
        pixel_bytes: one item's pixels as kept in memory (float16).
        kept_per_item: other bytes kept per item (cached tower outputs, the vectors
            written at the end, title ids).
        trainable_params: parameters the optimiser updates (gradient and two moments each).
        batch_size: items per step.
        batch_item_bytes: one item's activations kept for the backward pass, and its inputs.
        extra: anything else that adds up (a k-means copy of the pixels, the 4,096-item
            geometry, the encoding of every item in batches of 128).
        phases: transient allocations of other phases that reuse the training batch's
            memory (only the largest of them and the batch counts).

    Plus :data:`WORKING_MEMORY`.
    """
    b = min(int(batch_size), max(1, int(n_items)))
    kept = n_items * (pixel_bytes + kept_per_item) + 4.0 * 3 * trainable_params
    return WORKING_MEMORY + kept + max([b * batch_item_bytes, *phases]) + extra
