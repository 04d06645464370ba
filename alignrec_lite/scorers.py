"""Training-free scorers: the yardsticks every trained model is compared with.

Each function returns a *score function* ``users (b,) -> scores (b, n_items)`` that
:func:`alignrec_lite.evaluate.evaluate`, :func:`alignrec_lite.longtail.long_tail_report`
and the cold-start protocols (:mod:`alignrec_lite.coldstart`) accept in place of a
model's ``full_sort_scores``:

* :func:`popularity_scores` — every user gets the items ranked by training count;
* :func:`zero_shot_scores` — a user is the mean of the L2-normalised features of her
  training items, items are ranked by the dot product with that profile (AlignRec's
  zero-shot intermediate metric);
* :func:`item_knn_scores` — content item-kNN (ItemKNN-CBF) on a sparse kNN graph of
  the item features (:func:`knn_similarity`), either MMRec's ItemKNNCBF (each item a
  user touched passes its similarity on to its ``k`` nearest items) or the cold-start
  form (each target item collects from its ``k`` nearest source items);
* :func:`neighbour_popularity_scores` — a new item's score is the mean popularity of
  its nearest warm items (non-personal);
* :func:`random_scores` — chance level, fixed per (user, item) and seed;
* :func:`restrict_candidates` wraps any scorer so that only some items can be ranked.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .data.mmrec import RecDataset
from .errors import ConfigError
from .evaluate import ScoreFn
from .utils import l2_normalise_rows

KNN_NEIGHBOURS = ("target", "history")


# ---------------------------------------------------------------------- popularity, random
def popularity_scores(dataset: RecDataset) -> ScoreFn:
    """The popularity baseline: every user gets the items ranked by training count.

    Returns:
        A score function ``(b,) -> (b, n_items)``.
    """
    pop = torch.from_numpy(dataset.item_popularity("train").astype(np.float32))  # (n_items,)

    def score(users: torch.Tensor) -> torch.Tensor:
        return pop.expand(len(users), -1).clone()  # (b, n_items)

    return score


def random_scores(n_items: int, seed: int = 0) -> ScoreFn:
    """Random scores, fixed per (user, item) for a given seed — the chance level."""

    def score(users: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(users), n_items)
        for r, u in enumerate(users.tolist()):
            g = torch.Generator().manual_seed(seed * 1_000_003 + int(u))
            out[r] = torch.rand(n_items, generator=g)
        return out

    return score


def restrict_candidates(score_fn: ScoreFn, candidates: np.ndarray, n_items: int) -> ScoreFn:
    """Wrap a scorer so that only ``candidates`` can be ranked (others get ``-inf``).

    Used by the cold-start protocols: rank the held-out items among themselves.
    """
    keep = torch.zeros(n_items, dtype=torch.bool)
    keep[torch.as_tensor(np.asarray(candidates, dtype=np.int64))] = True

    def wrapped(users: torch.Tensor) -> torch.Tensor:
        s = score_fn(users).float().clone()  # (b, n_items)
        s[:, ~keep.to(s.device)] = -torch.inf
        return s

    return wrapped


# ---------------------------------------------------------------------- content
def zero_shot_scores(dataset: RecDataset, features: np.ndarray) -> ScoreFn:
    """Training-free scorer: user profile = mean normalised feature of her training items.

    Args:
        dataset: supplies the training interactions.
        features: item features, row i = itemID i.

    Returns:
        ``score_fn(users (b,)) -> (b, n_items)`` for :func:`~alignrec_lite.evaluate.evaluate`.

    Shape:
        features: ``(n_items, d)``.
    """
    items = l2_normalise_rows(np.asarray(features, dtype=np.float32))  # (n_items, d)
    r = dataset.interaction_matrix("train")  # (n_users, n_items)
    deg = np.asarray(r.sum(axis=1)).ravel()
    inv = sp.diags((1.0 / np.maximum(deg, 1)).astype(np.float32))
    users = torch.from_numpy(np.asarray(inv @ r @ items, dtype=np.float32))  # (n_users, d)
    item_t = torch.from_numpy(items)

    def score(u: torch.Tensor) -> torch.Tensor:
        return users[u] @ item_t.T  # (b, n_items)

    return score


def knn_similarity(
    features: np.ndarray,
    k: int = 10,
    *,
    shrink: float | None = None,
    rows: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    chunk: int = 2048,
) -> sp.csr_matrix:
    """Sparse item-item kNN graph of content features: row ``i`` holds its ``k`` most similar candidates.

    The similarity is the cosine of the L2-normalised rows (``shrink=None``) or MMRec's
    ItemKNNCBF form on the raw rows, ``f_i·f_j / (||f_i|| ||f_j|| + shrink)``. An item is
    never its own neighbour; a row keeps fewer than ``k`` entries when fewer candidates exist.

    Args:
        features: ``(n_items, d)`` content features.
        k: neighbours kept per row.
        shrink: ``None`` for the cosine, or MMRec's shrink term (``>= 0``).
        rows: the items whose neighbours are searched (default: all; other rows stay empty).
        candidates: the items that may be neighbours (default: all).
        chunk: rows compared at once (bounds memory at ``chunk x n_candidates``).

    Returns:
        ``S`` of shape ``(n_items, n_items)``, CSR float32: ``S[i, j] = sim(i, j)`` when ``j``
        is among the ``k`` nearest candidates of row ``i``, else 0.

    >>> f = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_similarity(f, k=1).nonzero()[1].tolist()  # each item's nearest other item
    [1, 0, 1]
    """
    from .checks import check_float, check_int

    k = check_int(k, "knn_k", 1, 10000, example=10)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))  # (n, d)
    n = x.shape[0]
    if shrink is None:
        x = torch.nn.functional.normalize(x, dim=1)
    else:
        shrink = check_float(shrink, "shrink", 0.0, 1e12, example=10)  # NaN gave a wrong score with exit 0
        norms = x.norm(dim=1)  # (n,)
    row_ids = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    cand_ids = np.arange(n) if candidates is None else np.asarray(candidates, dtype=np.int64)
    xc = x if candidates is None else x[torch.from_numpy(cand_ids)]  # (n_cand, d)
    kk = min(k, len(cand_ids))
    out_r, out_c, out_v = [], [], []
    for s in range(0, len(row_ids), chunk):
        r = row_ids[s : s + chunk]
        xr = x[s : s + len(r)] if rows is None else x[torch.from_numpy(r)]  # (c, d)
        sim = xr @ xc.T  # (c, n_cand)
        if shrink is not None:
            nc = norms if candidates is None else norms[torch.from_numpy(cand_ids)]
            sim = sim / (norms[torch.from_numpy(r)][:, None] * nc[None, :] + shrink + 1e-12)
        sim[torch.from_numpy(cand_ids)[None, :] == torch.from_numpy(r)[:, None]] = -torch.inf  # no self
        v, j = torch.topk(sim, kk, dim=1)  # (c, kk)
        ok = torch.isfinite(v).numpy()
        out_r.append(np.repeat(r, kk).reshape(len(r), kk)[ok])
        out_c.append(cand_ids[j.numpy()][ok])
        out_v.append(v.numpy()[ok])
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return sp.csr_matrix(
        (np.concatenate(out_v + [empty_f]), (np.concatenate(out_r + [empty_i]), np.concatenate(out_c + [empty_i]))),
        shape=(n, n),
        dtype=np.float32,
    )


def item_knn_scores(
    features: np.ndarray,
    history: sp.csr_matrix,
    *,
    k: int = 10,
    shrink: float | None = None,
    neighbours: str = "target",
    targets: np.ndarray | None = None,
    sources: np.ndarray | None = None,
    chunk: int = 2048,
) -> ScoreFn:
    """Content item-kNN (ItemKNN-CBF): ``score(u, j) = sum_{i in H_u} S(i, j)`` on a kNN graph.

    Two neighbourhoods (:func:`knn_similarity` computes both):

    * ``neighbours="history"`` — MMRec's ItemKNNCBF: each item ``i`` a user touched
      passes its similarity on to its own ``k`` nearest items (use ``shrink=10``
      for MMRec's similarity);
    * ``neighbours="target"`` — for items without interactions: each target item
      ``j`` collects from its ``k`` nearest *source* items (by default the items
      with a training interaction), so a new item is scored through warm neighbours.

    Args:
        features: ``(n_items, d)`` content features.
        history: user x item matrix of what each user interacted with (train).
        k: neighbours per item.
        shrink: ``None`` (cosine) or MMRec's shrink term (see :func:`knn_similarity`).
        neighbours: ``"target"`` or ``"history"`` (see above).
        targets: items to score (default all); others score ``-inf``.
        sources: items that may pass on a score (default: ``"target"``: items with a
            training interaction; ``"history"``: all).
        chunk: rows of the similarity compared at once (see :func:`knn_similarity`).

    Returns:
        A score function ``(b,) -> (b, n_items)``.
    """
    if neighbours not in KNN_NEIGHBOURS:
        raise ConfigError(
            f"unknown kNN neighbourhood {neighbours!r}", row="neighbours", fix=f"use one of {', '.join(KNN_NEIGHBOURS)}"
        )
    n_items = history.shape[1]
    is_target = np.ones(n_items, dtype=bool)
    if targets is not None:
        is_target[:] = False
        is_target[np.asarray(targets)] = True
    if neighbours == "history":
        w = knn_similarity(features, k, shrink=shrink, rows=sources, candidates=targets, chunk=chunk)  # (n, n)
    else:
        if sources is None:
            sources = np.flatnonzero(np.asarray(history.sum(axis=0)).ravel() > 0)
        rows = np.arange(n_items) if targets is None else np.asarray(targets)
        w = knn_similarity(features, k, shrink=shrink, rows=rows, candidates=sources, chunk=chunk).T.tocsr()
    hist = history.tocsr()

    def score(users: torch.Tensor) -> torch.Tensor:
        s = np.asarray((hist[users.cpu().numpy()] @ w).todense(), dtype=np.float32)  # (b, n_items)
        s[:, ~is_target] = -np.inf
        return torch.from_numpy(s)

    return score


def neighbour_popularity_scores(
    features: np.ndarray, popularity: np.ndarray, targets: np.ndarray, *, k: int = 10
) -> ScoreFn:
    """Non-personal baseline: a target's score is the mean popularity of its ``k`` nearest warm items."""
    pop = np.asarray(popularity, dtype=np.float32)
    warm = np.flatnonzero(pop > 0)
    w = knn_similarity(features, k, rows=targets, candidates=warm).T.tocsr()  # (n_items, n_items)
    w.data[:] = 1.0
    denom = np.maximum(np.asarray(w.sum(axis=0)).ravel(), 1.0)
    est = np.asarray(w.T @ pop).ravel() / denom  # (n_items,)
    s = np.full(len(pop), -np.inf, dtype=np.float32)
    s[targets] = est[targets]
    base = torch.from_numpy(s)

    def score(users: torch.Tensor) -> torch.Tensor:
        return base.expand(len(users), -1).clone()

    return score


__all__ = [
    "popularity_scores",
    "random_scores",
    "restrict_candidates",
    "zero_shot_scores",
    "knn_similarity",
    "item_knn_scores",
    "neighbour_popularity_scores",
    "KNN_NEIGHBOURS",
]
