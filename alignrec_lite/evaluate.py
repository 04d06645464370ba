"""Full-ranking evaluation exactly as MMRec does it (ALIGNREC_SPEC §4).

For every user with at least one interaction in the evaluated split, all items
are scored, the user's *training* items are masked, the top-``max(K)`` list is
taken, and Recall, NDCG, Precision, MAP and Hit at each K are averaged over
users. With ``T_u`` the user's items in the split and ``r_k`` = 1 when the k-th
ranked item is in ``T_u``::

    Recall@K    = sum_{k<=K} r_k / |T_u|
    Precision@K = sum_{k<=K} r_k / K
    NDCG@K      = sum_{k<=K} r_k / log2(k+1)  /  sum_{k<=min(|T_u|,K)} 1 / log2(k+1)
    MAP@K       = sum_{k<=K} P(k) r_k / min(|T_u|, K),  P(k) = sum_{j<=k} r_j / k
    Hit@K       = 1 if sum_{k<=K} r_k > 0

MMRec does **not** mask validation items when it evaluates the test split (a
validation positive can take a test top-K slot); that is the default here and
``mask_valid=True`` is offered as an option. Ties are broken towards the lower
itemID, so results never depend on ``torch.topk``'s unspecified order.

Users are scored in chunks of ``batch_users``, so memory is bounded by
``batch_users x n_items`` scores, never ``n_users x n_items``.

Per-user metrics and their means are computed in **float64** (MMRec computes them
with NumPy) before the means are rounded to 4 decimals: a float32 mean can fall on
the other side of a rounding boundary (0.082749993 → 0.0827, where MMRec's
0.08275000000000014 → 0.0828), and early stopping compares the rounded values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .data.mmrec import RecDataset

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_KS = (5, 10, 20, 50)
METRICS = ("recall", "ndcg", "precision", "map", "hit")


def mask_rows(scores: torch.Tensor, rows: np.ndarray, csr: sp.csr_matrix, value: float = -np.inf) -> None:
    """Set ``scores[r, j] = value`` for every item ``j`` of ``csr[rows[r]]`` (in place).

    Shape:
        scores: ``(b, n_items)``; rows: ``(b,)`` user IDs.
    """
    sub = csr[rows].tocoo()  # only the chunk's rows
    if sub.nnz == 0:
        return
    r = torch.from_numpy(sub.row.astype(np.int64))
    c = torch.from_numpy(sub.col.astype(np.int64))
    scores[r, c] = value


def topk_stable(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Top-``k`` item indices per row, ties broken towards the lower index.

    Uses ``torch.topk`` and falls back to a stable full sort only for the rows
    that contain a tie among the first ``k + 1`` values.

    Shape:
        scores: ``(b, n_items)``. Returns ``(b, min(k, n_items))`` int64.
    """
    n = scores.shape[1]
    k = min(k, n)
    kk = min(k + 1, n)
    vals, idx = torch.topk(scores, kk, dim=1)  # (b, kk), sorted descending
    tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1) if kk > 1 else torch.zeros(len(vals), dtype=torch.bool)
    idx = idx[:, :k]
    if tied.any():
        rows = torch.nonzero(tied).squeeze(1)
        exact = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :k]
        idx = idx.clone()
        idx[rows] = exact
    return idx


def iter_topk(
    score_fn: ScoreFn,
    users: np.ndarray,
    k: int,
    exclude: Sequence[sp.csr_matrix] = (),
    batch_users: int = 1024,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield ``(users_chunk, topk_items, topk_scores)`` chunk by chunk.

    Args:
        score_fn: maps a LongTensor of user IDs ``(b,)`` to scores ``(b, n_items)``.
        users: the users to rank for.
        k: list length.
        exclude: CSR matrices whose items are masked (training items, ...).
        batch_users: users per chunk (bounds memory at ``batch_users x n_items``).
    """
    for start in range(0, len(users), batch_users):
        chunk = users[start : start + batch_users]
        with torch.no_grad():
            scores = score_fn(torch.from_numpy(chunk)).float().cpu()  # (b, n_items)
            if scores._base is not None or not scores.is_contiguous():
                scores = scores.contiguous().clone()  # never write into the scorer's own tensor
            for m in exclude:
                mask_rows(scores, chunk, m)
            top = topk_stable(scores, k)  # (b, k)
            top_scores = torch.gather(scores, 1, top)
            del scores  # free this (b, n_items) block before the next one is scored: peak is one block, not two
        yield chunk, top, top_scores


def hits_matrix(lists: np.ndarray, users: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Whether each recommended item is a relevant one.

    Args:
        lists: ``(n, k)`` item IDs (``-1`` = empty slot).
        users: ``(n,)`` user IDs (rows of ``truth``).
        truth: user x item relevance matrix (e.g. the test split).

    Returns:
        ``(n, k)`` bool.
    """
    n_items = truth.shape[1]
    sub = truth[users].tocoo()  # (n, n_items)
    keys = sub.row.astype(np.int64) * n_items + sub.col
    lk = np.arange(len(users), dtype=np.int64)[:, None] * n_items + lists
    return np.isin(lk, keys) & (lists >= 0)


def metrics_from_hits(hits: torch.Tensor, n_pos: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics from a hit matrix.

    Args:
        hits: ``(b, K)`` bool, whether the k-th ranked item is relevant.
        n_pos: ``(b,)`` number of relevant items per user (``|T_u| >= 1``).
        ks: cut-offs, each ``<= K``.

    Returns:
        ``{"recall@10": (b,) float64 tensor, ...}`` for every metric and K (float64,
        as MMRec's NumPy metrics, so that the mean rounds as MMRec's does).
    """
    h = hits.double()  # (b, K)
    kmax = h.shape[1]
    ranks = torch.arange(1, kmax + 1, dtype=torch.float64)
    disc = 1.0 / torch.log2(ranks + 1.0)  # (K,)
    cum_hits = h.cumsum(1)  # (b, K)
    dcg = (h * disc).cumsum(1)
    idcg_table = disc.cumsum(0)  # idcg for 1..K relevant items
    ap = (h * cum_hits / ranks).cumsum(1)
    n_pos_f = n_pos.double()
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        c = cum_hits[:, k - 1]
        denom_k = torch.clamp(n_pos, max=k)
        out[f"recall@{k}"] = c / n_pos_f
        out[f"precision@{k}"] = c / k
        out[f"hit@{k}"] = (c > 0).double()
        out[f"ndcg@{k}"] = dcg[:, k - 1] / idcg_table[denom_k - 1]
        out[f"map@{k}"] = ap[:, k - 1] / denom_k.double()
    return out


def metrics_of_lists(
    lists: np.ndarray,
    users: np.ndarray,
    truth: sp.csr_matrix,
    ks: Sequence[int],
    metrics: Sequence[str] = ("recall", "ndcg"),
) -> dict[str, float]:
    """Mean metrics of ready top-K lists (the evaluator's formulas, :func:`metrics_from_hits`).

    For protocols that rank themselves (cold start, long tail): no masking or
    rounding here, and lists shorter than ``max(ks)`` count the missing slots as misses.

    Args:
        lists: ``(n, K)`` item IDs (``-1`` = empty slot).
        users: ``(n,)`` rows of ``truth`` (each with at least one relevant item).
        truth: user x item relevance matrix.
        ks: cut-offs.
        metrics: which of :data:`METRICS` to return.

    Returns:
        ``{"recall@20": float, "ndcg@20": float, ...}`` (float64 means over the users),
        in the order metric-major within each K.
    """
    hits = torch.from_numpy(hits_matrix(lists, users, truth))  # (n, K)
    n_pos = torch.from_numpy(np.diff(truth[users].indptr).astype(np.int64))
    if hits.shape[1] < max(ks):  # fewer items than K: pad with misses
        hits = torch.nn.functional.pad(hits, (0, max(ks) - hits.shape[1]))
    m = metrics_from_hits(hits, n_pos, ks)
    return {name: float(m[name].mean()) for k in ks for name in (f"{x}@{k}" for x in metrics)}


def evaluate(
    score_fn: ScoreFn,
    dataset: RecDataset,
    split: str = "test",
    *,
    ks: Sequence[int] = DEFAULT_KS,
    mask_valid: bool = False,
    batch_users: int = 1024,
    round_to: int | None = 4,
    users: np.ndarray | None = None,
    return_per_user: bool = False,
) -> dict:
    """Evaluate a scorer with MMRec's full-ranking protocol.

    Args:
        score_fn: user IDs ``(b,)`` -> scores ``(b, n_items)`` (any model's
            ``full_sort_scores``, or a training-free scorer).
        dataset: the dataset; ``train`` items are always masked.
        split: ``"valid"`` or ``"test"``.
        ks: cut-offs (MMRec: 5, 10, 20, 50).
        mask_valid: when evaluating ``"test"``, also mask validation items
            (off by default = MMRec's behaviour).
        batch_users: users scored at once.
        round_to: round the float64 averages to this many decimals (MMRec rounds
            to 4 and early-stops on the rounded value); ``None`` keeps full precision.
        users: evaluate only these users (default: every user with an
            interaction in ``split``).
        return_per_user: also return ``"per_user"`` arrays and ``"users"``.

    Returns:
        ``{"recall@20": float, ..., "n_users": int, "seconds": float}``.
    """
    from .checks import check_evaluate_args

    ks, batch_users, users = check_evaluate_args(dataset, split, ks, batch_users, users, round_to)
    t0 = time.perf_counter()
    gt = dataset.interaction_matrix(split)
    exclude = [dataset.interaction_matrix("train")]
    if split == "test" and mask_valid:
        exclude.append(dataset.interaction_matrix("valid"))
    if users is None:
        users = np.flatnonzero(np.diff(gt.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    kmax = max(ks)
    n_relevant = np.diff(gt.indptr).astype(np.int64)  # |T_u| of every user
    per_user: dict[str, list[torch.Tensor]] = {}
    for chunk, top, _ in iter_topk(score_fn, users, kmax, exclude, batch_users):
        hits_t = torch.from_numpy(hits_matrix(top.numpy(), chunk, gt))  # (b, K)
        n_pos = torch.from_numpy(n_relevant[chunk])
        if hits_t.shape[1] < kmax:  # fewer items than K: pad with misses
            hits_t = torch.nn.functional.pad(hits_t, (0, kmax - hits_t.shape[1]))
        for name, val in metrics_from_hits(hits_t, n_pos, ks).items():
            per_user.setdefault(name, []).append(val)
    result: dict = {}
    for name in (f"{m}@{k}" for m in METRICS for k in ks):
        vals = torch.cat(per_user[name]) if per_user else torch.zeros(0, dtype=torch.float64)  # (n_users,)
        mean = float(vals.mean()) if len(vals) else 0.0  # float64 mean, then rounded
        result[name] = round(mean, round_to) if round_to is not None else mean
    result["n_users"] = int(len(users))
    result["seconds"] = time.perf_counter() - t0
    if return_per_user:
        result["per_user"] = {k: torch.cat(v).numpy() for k, v in per_user.items()}
        result["users"] = users
    return result


def format_metrics(metrics: dict, keys: Sequence[str] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")) -> str:
    """One line such as ``recall@20 0.0754  ndcg@20 0.0328``."""
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)
