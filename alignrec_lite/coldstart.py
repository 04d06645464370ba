"""Cold start: new items scored from content, new users folded in from a few items.

The episode notes that embeddings promise to handle cold start "naturally", and
wishes the AlignRec paper (Liu et al., CIKM 2024) had a new-user experiment. MMRec's
protocol drops cold-start users and has no cold-item protocol (ALIGNREC_SPEC §6),
so the kit defines both. The splits are in :mod:`alignrec_lite.data.split`, the
training-free baselines in :mod:`alignrec_lite.scorers`, and the experiments that
train models for them end to end in :mod:`alignrec_lite.experiments`.

**New items** (:func:`~alignrec_lite.data.split.item_disjoint_split`). A share of the
items is held out *with all their interactions*: the model trains on the other items
only, and the test set is every interaction with a held-out item by a user who still
has training rows. The held-out items are then ranked **among themselves**
(:func:`~alignrec_lite.scorers.restrict_candidates`, :func:`evaluate_cold_items`):

* by a model's content path (:func:`content_path_scores`: ``encode_content`` of
  AlignRec and VBPR; content features of new items are known, interactions are not);
* by the ID model as is (its vectors of held-out items never got a gradient);
* by training-free baselines: content kNN (:func:`~alignrec_lite.scorers.item_knn_scores`,
  ItemKNN-CBF restricted to warm neighbours), the popularity of an item's content
  neighbours (:func:`~alignrec_lite.scorers.neighbour_popularity_scores` — the plain
  popularity of a new item is 0 for all of them), and random.

**New users** (:func:`~alignrec_lite.data.split.user_coldstart_split`). A share of the
users (those with at least ``max_given + 1`` interactions) is held out of training
entirely. Each is given a fixed random order of their items; at inference the first
``g`` of them are revealed (``g`` in 0, 1, 2, 3, 5) and the model folds the user in
without retraining (:func:`alignrec_lite.serve.fold_in_users`: ``mean`` or
``gradient``; :func:`model_fold_in`). The targets are the same for every ``g``: the
items after position ``max_given``, so the curve (:func:`cold_user_curve`) only shows
what the revealed items are worth. ``g = 0`` falls back to popularity for every method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data.mmrec import RecDataset
from .data.split import ColdItemSplit, ColdUserSplit
from .evaluate import ScoreFn, metrics_of_lists, topk_stable
from .longtail import topk_lists
from .scorers import knn_similarity, restrict_candidates
from .serve import final_vectors, fold_in_users, new_item_vectors, score_new_users

GIVEN_COUNTS = (0, 1, 2, 3, 5)
FoldInFn = Callable[[Sequence[np.ndarray]], torch.Tensor]


# ------------------------------------------------------------------ new items
@contextlib.contextmanager
def forget_items(model, items: np.ndarray) -> Iterator[Any]:
    """Within the block, the ID embeddings of ``items`` are zero (restored afterwards).

    A held-out item has no interaction to learn an ID vector from. In ID models
    its embedding is still its random initial value; in AlignRec it can also have
    moved, but only as a *neighbour* of warm items in the content graph (the
    purifier gates it by content), never from its own interactions. Zeroing it
    states "this item has no ID vector" exactly, so that nothing but content and
    the warm items reaches its score. Models without an ``item_emb`` table are
    left as they are.

    >>> with forget_items(model, cold):  # doctest: +SKIP
    ...     vecs = model.encode_content(features[cold])
    """
    emb = getattr(model, "item_emb", None)
    if not isinstance(emb, torch.nn.Embedding):
        yield model
        return
    idx = torch.as_tensor(np.asarray(items, dtype=np.int64), device=emb.weight.device)
    saved = emb.weight.detach()[idx].clone()
    try:
        with torch.no_grad():
            emb.weight[idx] = 0.0
        model.invalidate_cache()
        yield model
    finally:
        with torch.no_grad():
            emb.weight[idx] = saved
        model.invalidate_cache()


def content_path_scores(model, features: np.ndarray, items: np.ndarray, *, forget: bool = True) -> ScoreFn:
    """Score ``items`` from their content alone through the model's content path.

    The model's user vectors are kept; the vectors of ``items`` are
    ``model.encode_content(features[items])`` (AlignRec: attached to the frozen
    kNN graph by content similarity; VBPR: ``[0; W x + b]``). Other items score ``-inf``.

    Args:
        model: a trained model with a content path (``model.has_content_path``).
        features: ``(n_items, d_f)`` in the model's feature space.
        items: the items to score (e.g. the cold items).
        forget: first zero the ID embeddings of ``items`` (:func:`forget_items`).

    Raises:
        ConfigError: the model has no content path.
    """
    items = np.asarray(items, dtype=np.int64)
    with forget_items(model, items) if forget else contextlib.nullcontext(model):
        vecs = new_item_vectors(model, np.asarray(features)[items])  # (m, d)
        user_e, item_e = final_vectors(model)
    n_items = item_e.shape[0]
    cols = torch.from_numpy(items)

    def score(users: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(users), n_items), -torch.inf)
        out[:, cols] = user_e[users] @ vecs.T  # (b, m)
        return out

    return score


def evaluate_cold_items(
    scorers: Mapping[str, ScoreFn], split: ColdItemSplit, *, ks: Sequence[int] = (10, 20), batch_users: int = 1024
) -> pd.DataFrame:
    """Recall/NDCG@K on the cold items only, ranked among themselves.

    Returns:
        One row per scorer: ``method``, ``recall@K``, ``ndcg@K``, ``users``.
    """
    ds = split.dataset
    truth = ds.interaction_matrix("test")
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    rows = []
    for name, fn in scorers.items():
        fn_c = restrict_candidates(fn, split.cold_items, ds.n_items)
        u, lists = topk_lists(fn_c, ds, users, k=max(ks), batch_users=batch_users)
        rows.append({"method": name, **metrics_of_lists(lists, u, truth, ks), "users": int(len(u))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ new users
def popularity_fold_in(dataset: RecDataset) -> FoldInFn:
    """Baseline: the training popularity ranking, revealed items removed."""
    pop = dataset.item_popularity("train").astype(np.float32)

    def fn(given: Sequence[np.ndarray]) -> torch.Tensor:
        return _pop_masked(pop, given)

    return fn


def _pop_masked(pop: np.ndarray, given: Sequence[np.ndarray]) -> torch.Tensor:
    s = torch.from_numpy(pop).expand(len(given), -1).clone()  # (n, n_items)
    return _mask_given(s, given)


def model_fold_in(model, dataset: RecDataset, method: str = "mean", **kw: Any) -> FoldInFn:
    """Fold new users into a trained model (:func:`~alignrec_lite.serve.fold_in_users`).

    Negatives for the gradient method are the items with a training interaction.
    """
    _, item_e = final_vectors(model)
    pop = dataset.item_popularity("train")
    kw.setdefault("negatives", np.flatnonzero(pop > 0))

    def fn(given: Sequence[np.ndarray]) -> torch.Tensor:
        u = fold_in_users(item_e, given, method, **kw)  # (n, d)
        return score_new_users(u, item_e, given, pop)

    return fn


def knn_fold_in(features: np.ndarray, dataset: RecDataset, *, k: int = 10) -> FoldInFn:
    """Training-free content kNN on the revealed items (popularity when none is revealed)."""
    pop = dataset.item_popularity("train").astype(np.float32)
    everything = np.arange(dataset.n_items)
    w = knn_similarity(features, k, rows=everything, candidates=everything).T.tocsr()  # w[i, j]: i near j

    def fn(given: Sequence[np.ndarray]) -> torch.Tensor:
        rows = np.concatenate([np.full(len(g), r) for r, g in enumerate(given)] + [np.zeros(0, np.int64)])
        cols = np.concatenate([np.asarray(g, dtype=np.int64) for g in given] + [np.zeros(0, np.int64)])
        h = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(given), dataset.n_items))
        s = torch.from_numpy(np.asarray((h @ w).todense(), dtype=np.float32))  # (n, n_items)
        s = s + 1e-6 * torch.from_numpy(pop / max(1.0, pop.max()))  # popularity breaks ties
        empty = torch.as_tensor([len(g) == 0 for g in given])
        s[empty] = torch.from_numpy(pop)
        return _mask_given(s, given)

    return fn


def _mask_given(s: torch.Tensor, given: Sequence[np.ndarray]) -> torch.Tensor:
    for r, g in enumerate(given):
        if len(g):
            s[r, torch.as_tensor(np.asarray(g, dtype=np.int64))] = -torch.inf
    return s


def cold_user_curve(
    methods: Mapping[str, FoldInFn],
    split: ColdUserSplit,
    *,
    given_counts: Sequence[int] = GIVEN_COUNTS,
    ks: Sequence[int] = (20,),
    batch_users: int = 1024,
) -> pd.DataFrame:
    """Metrics on the target items vs the number of revealed items, for several fold-in methods.

    Args:
        methods: name -> fold-in function (:func:`model_fold_in`,
            :func:`popularity_fold_in`, :func:`knn_fold_in`).
        split: from :func:`user_coldstart_split`.
        given_counts: numbers of revealed items (each ``<= split.max_given``).
        ks: cut-offs.
        batch_users: cold users scored at once.

    Returns:
        Long table: ``method``, ``given``, ``recall@K``, ``ndcg@K``, ``users``.
    """
    truth = split.targets()  # (n_cold, n_items)
    rows = []
    kmax = max(ks)
    for name, fn in methods.items():
        for g in given_counts:
            given = split.given(g)
            lists = []
            for s in range(0, len(given), batch_users):
                with torch.no_grad():
                    scores = fn(given[s : s + batch_users])  # (b, n_items)
                top = topk_stable(scores, kmax)
                vals = torch.gather(scores, 1, top)
                t = top.numpy().copy()
                t[~torch.isfinite(vals).numpy()] = -1
                lists.append(t)
            lists_np = np.concatenate(lists)
            rows.append(
                {
                    "method": name,
                    "given": int(g),
                    **metrics_of_lists(lists_np, np.arange(len(given)), truth, ks),
                    "users": len(given),
                }
            )
    return pd.DataFrame(rows)


__all__ = [
    "GIVEN_COUNTS",
    "FoldInFn",
    "forget_items",
    "content_path_scores",
    "evaluate_cold_items",
    "popularity_fold_in",
    "model_fold_in",
    "knn_fold_in",
    "cold_user_curve",
]
