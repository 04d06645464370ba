"""Similarity between embeddings: dot product, cosine, nearest neighbours, popularity bias.

A recommender that scores ``s(u, i) = u . i`` (matrix factorisation, LightGCN)
rewards long item vectors: ``u . i = ||u|| ||i|| cos(u, i)``, and training
with BPR tends to make the vectors of popular items longer (they receive more
positive gradient). Cosine similarity divides the length out. The functions
here measure that effect and retrieve neighbours for the notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..utils import as_tensor

METRICS = ("cosine", "dot")


def similarity(a: Any, b: Any, metric: str = "cosine") -> torch.Tensor:
    """All-pairs similarity of the rows of ``a`` and ``b``.

    Args:
        a, b: ``(n, d)`` and ``(m, d)`` arrays or tensors.
        metric: ``"cosine"`` or ``"dot"``.

    Returns:
        ``(n, m)`` float32 tensor.

    Raises:
        ConfigError: unknown metric.
    """
    at, bt = as_tensor(a), as_tensor(b)
    if metric == "cosine":
        at, bt = F.normalize(at, dim=1), F.normalize(bt, dim=1)
    elif metric != "dot":
        raise ConfigError(f"unknown metric {metric!r}", row="metric", fix=f"use one of {list(METRICS)}")
    return at @ bt.T  # (n, m)


def nearest_items(item_emb: Any, item: int, k: int = 5, metric: str = "cosine") -> np.ndarray:
    """The ``k`` items most similar to ``item`` (itself excluded), best first.

    Shape:
        item_emb: ``(n_items, d)``; returns ``(k,)`` int64.
    """
    sims = similarity(item_emb, as_tensor(item_emb)[item : item + 1], metric)[:, 0]  # (n_items,)
    sims[item] = -float("inf")
    return sims.topk(min(k, len(sims) - 1)).indices.numpy()


def label_precision(emb: Any, labels: Sequence[Any], k: int = 10, metric: str = "cosine") -> float:
    """Mean share of each item's ``k`` nearest neighbours (itself excluded) sharing its label.

    Args:
        emb: ``(n, d)`` vectors.
        labels: ``(n,)`` labels (e.g. the category of each item).
        k: neighbours per item.
        metric: ``"cosine"`` or ``"dot"``.

    Returns:
        Precision@k in ``[0, 1]``; compare with :func:`chance_precision`.
    """
    sims = similarity(emb, emb, metric)  # (n, n)
    sims.fill_diagonal_(-float("inf"))
    top = sims.topk(k, dim=1).indices.numpy()  # (n, k)
    lab = np.asarray(labels)
    return float((lab[top] == lab[:, None]).mean())


def chance_precision(labels: Sequence[Any]) -> float:
    """Expected :func:`label_precision` of a random ranking: ``mean_i (n_{c(i)} - 1) / (n - 1)``."""
    lab = np.asarray(labels)
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    return float(((counts[inverse] - 1) / max(1, len(lab) - 1)).mean())


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).statistic)


def popularity_of_top_k(
    user_emb: Any, item_emb: Any, popularity: Any, k: int = 10, metric: str = "dot", exclude: Any = None
) -> float:
    """Mean training popularity of the items each user gets in her top ``k``.

    Args:
        user_emb: ``(n_users, d)``.
        item_emb: ``(n_items, d)``.
        popularity: ``(n_items,)`` training interactions per item.
        k: list length.
        metric: ``"dot"`` (what MF ranks by) or ``"cosine"`` (item length divided out;
            the user's length does not change a user's ranking).
        exclude: optional ``(n_users, n_items)`` scipy CSR matrix of items to skip
            (the user's training items).

    Returns:
        The mean popularity of the recommended items (compare with the catalogue mean).
    """
    scores = similarity(user_emb, item_emb, metric)  # (n_users, n_items)
    if exclude is not None:
        coo = exclude.tocoo()
        scores[torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long)] = -float("inf")
    top = scores.topk(k, dim=1).indices.numpy()  # (n_users, k)
    return float(np.asarray(popularity, dtype=float)[top].mean())


def triplet_similarities(encode: Any, triplets: Sequence[tuple[str, str, str]]) -> np.ndarray:
    """Cosine similarities of ``(anchor, same meaning, shares a word)`` text triplets.

    Args:
        encode: a function mapping a list of texts to ``(n, d)`` vectors.
        triplets: ``(anchor, paraphrase, distractor)``: the paraphrase means the
            same with other words, the distractor shares a word but means
            something else.

    Returns:
        ``(n_triplets, 2)``: column 0 = cos(anchor, paraphrase), column 1 =
        cos(anchor, distractor). A model "prefers meaning" where column 0 > column 1.
    """
    texts = [t for trip in triplets for t in trip]
    vec = F.normalize(as_tensor(encode(texts)), dim=1).reshape(len(triplets), 3, -1)  # (n, 3, d)
    pos = (vec[:, 0] * vec[:, 1]).sum(dim=1)  # (n,)
    neg = (vec[:, 0] * vec[:, 2]).sum(dim=1)  # (n,)
    return torch.stack([pos, neg], dim=1).numpy()
