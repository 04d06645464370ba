"""New users without retraining: fold-in from a few items they chose.

:func:`fold_in_users` builds vectors for users the model never saw from a few
items they chose — ``"mean"``: the average of the given items' final vectors;
``"gradient"``: a fresh vector fitted by a few Adam steps on the BPR loss
``-log σ(u·h_i - u·h_j)`` with the item vectors frozen; :func:`score_new_users`
ranks items for them (popularity when nothing was given) and
:func:`recommend_new_user` wraps both for a list of raw item IDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import check_float, check_int, check_item_ids
from ..data.mmrec import RecDataset
from ..errors import ConfigError, DataError
from ..evaluate import topk_stable
from .export import final_vectors

FOLD_IN_METHODS = ("mean", "gradient")
#: the keyword arguments of :func:`fold_in_users` that :func:`recommend_new_user` passes on
FOLD_IN_OPTIONS = frozenset({"steps", "lr", "reg", "negatives", "seed"})


def _check_item_vectors(item_emb: Any) -> torch.Tensor:
    if not isinstance(item_emb, torch.Tensor) or item_emb.ndim != 2 or item_emb.shape[0] == 0:
        got = tuple(item_emb.shape) if hasattr(item_emb, "shape") else type(item_emb).__name__
        raise ConfigError(
            f"item_emb must be a (n_items, d) tensor, got {got}",
            row="item_emb",
            fix="pass the model's final item vectors: serve.final_vectors(model)[1]",
        )
    return item_emb


def _check_given(given: Any, n_items: int) -> list[np.ndarray]:
    """One ``int64`` array of itemIDs in ``0..n_items-1`` per new user, else :class:`ConfigError`.

    ``given`` must be a list (one entry per user) of lists or arrays of itemIDs.
    """
    if isinstance(given, (str, bytes, dict)) or not hasattr(given, "__iter__"):
        raise ConfigError(
            f"given must be a list with one list of itemIDs per new user, got {type(given).__name__}",
            row="given",
            fix="e.g. given=[[0, 5], [3]]",
        )
    return [check_item_ids(g, n_items, f"given[{r}]") for r, g in enumerate(given)]


def _pad(given: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    gmax = max([len(g) for g in given] + [1])
    idx = torch.zeros(len(given), gmax, dtype=torch.long)
    mask = torch.zeros(len(given), gmax, dtype=torch.bool)
    for r, g in enumerate(given):
        if len(g):
            idx[r, : len(g)] = torch.as_tensor(np.asarray(g, dtype=np.int64))
            mask[r, : len(g)] = True
    return idx, mask  # (n, gmax) each


def fold_in_users(
    item_emb: torch.Tensor,
    given: Sequence[np.ndarray],
    method: str = "mean",
    *,
    steps: int = 50,
    lr: float = 0.05,
    reg: float = 1e-3,
    negatives: np.ndarray | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Vectors for new users from the items they interacted with, without retraining.

    Args:
        item_emb: the model's final item vectors, ``(n_items, d)``, kept frozen.
        given: one array of itemIDs per new user (may be empty).
        method: ``"mean"`` — ``u = mean_{i in G} h_i``; ``"gradient"`` — start from
            ``u = 0`` and take ``steps`` Adam steps on
            ``mean_{i in G} -log σ(u·h_i - u·h_j) + reg ||u||²`` with a fresh uniform
            negative ``j`` per given item and step.
        steps: Adam steps (gradient).
        lr: Adam learning rate (gradient).
        reg: L2 weight on the user vector (gradient).
        negatives: candidate negative items (default: all items).
        seed: seed of the negative draws.

    Returns:
        ``(n_new, d)`` user vectors; a user with no given item gets the zero vector
        (callers fall back to popularity, see :func:`score_new_users`).

    Raises:
        ConfigError: an unknown method, an itemID outside ``0..n_items-1`` (in ``given`` or
            ``negatives``), or ``steps`` (1..100000), ``lr`` (0..10], ``reg`` (>= 0) or
            ``seed`` out of range — named, with a valid example.

    Shape:
        item_emb: ``(n_items, d)``; returns ``(len(given), d)``.
    """
    if method not in FOLD_IN_METHODS:
        raise ConfigError(f"unknown fold-in method {method!r}", row="method", fix=f"use one of {FOLD_IN_METHODS}")
    item_emb = _check_item_vectors(item_emb)
    given = _check_given(given, item_emb.shape[0])
    steps = check_int(steps, "steps", 1, 100000, example=50)
    lr = check_float(lr, "lr", 0.0, 10.0, lo_open=True, example=0.05)
    reg = check_float(reg, "reg", 0.0, 1e6, example=0.001)
    seed = check_int(seed, "seed", 0, 2**63 - 1, example=0)
    if negatives is not None:
        negatives = check_item_ids(negatives, item_emb.shape[0], "negatives")
        if not len(negatives):
            raise ConfigError(
                "negatives is empty: no item to draw negatives from", row="negatives", fix="pass None (all items)"
            )
    item_emb = item_emb.detach().float()
    idx, mask = _pad(given)  # (n, g)
    m = mask.float().unsqueeze(-1)  # (n, g, 1)
    counts = mask.sum(1, keepdim=True).clamp(min=1).float()  # (n, 1)
    if method == "mean":
        return (item_emb[idx] * m).sum(1) / counts  # (n, d)
    with torch.enable_grad():  # callers may hold torch.no_grad()
        return _fit_users(item_emb, idx, mask, steps=steps, lr=lr, reg=reg, negatives=negatives, seed=seed)


def _fit_users(
    item_emb: torch.Tensor,
    idx: torch.Tensor,
    mask: torch.Tensor,
    *,
    steps: int,
    lr: float,
    reg: float,
    negatives: np.ndarray | None,
    seed: int,
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cand = (
        torch.arange(item_emb.shape[0]) if negatives is None else torch.as_tensor(np.asarray(negatives, dtype=np.int64))
    )
    user = torch.zeros(len(idx), item_emb.shape[1], requires_grad=True)  # (n, d)
    opt = torch.optim.Adam([user], lr=lr)
    pos_e = item_emb[idx]  # (n, g, d)
    n_valid = mask.sum().clamp(min=1)
    for _ in range(steps):
        neg = cand[torch.randint(len(cand), idx.shape, generator=gen)]  # (n, g)
        diff = ((pos_e - item_emb[neg]) * user.unsqueeze(1)).sum(-1)  # (n, g)
        # -log σ(x) = softplus(-x); F.logsigmoid is ~50x slower on small tensors on a busy 2-core CPU
        loss = (torch.nn.functional.softplus(-diff) * mask).sum() / n_valid
        loss = loss + reg * (user**2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = user.detach()
    out[~mask.any(1)] = 0.0
    return out


def score_new_users(
    user_vecs: torch.Tensor,
    item_emb: torch.Tensor,
    given: Sequence[np.ndarray],
    popularity: np.ndarray,
) -> torch.Tensor:
    """Scores of every item for folded-in users; given items masked; no given item -> popularity.

    Shape:
        user_vecs: ``(n, d)``; item_emb: ``(n_items, d)``; returns ``(n, n_items)``.

    Raises:
        ConfigError: shapes that do not fit together, or an itemID outside the catalogue.
    """
    item_emb = _check_item_vectors(item_emb)
    n_items, d = item_emb.shape
    if not isinstance(user_vecs, torch.Tensor) or user_vecs.ndim != 2 or user_vecs.shape[1] != d:
        got = tuple(user_vecs.shape) if hasattr(user_vecs, "shape") else type(user_vecs).__name__
        raise ConfigError(
            f"user_vecs must be a (n, {d}) tensor (the item vectors' width), got {got}",
            row="user_vecs",
            fix="pass the output of fold_in_users(item_emb, given)",
        )
    given = _check_given(given, n_items)
    if len(given) != user_vecs.shape[0]:
        raise ConfigError(
            f"given has {len(given)} lists for {user_vecs.shape[0]} user vectors",
            row="given",
            fix="pass one list of itemIDs per new user, as to fold_in_users",
        )
    if np.shape(popularity) != (n_items,):
        raise ConfigError(
            f"popularity must hold one value per item ({n_items}), got shape {np.shape(popularity)}",
            row="popularity",
            fix="pass dataset.item_popularity('train')",
        )
    scores = user_vecs @ item_emb.T  # (n, n_items)
    empty = torch.as_tensor([len(g) == 0 for g in given], dtype=torch.bool)
    if empty.any():
        pop = torch.as_tensor(np.asarray(popularity, dtype=np.float32))
        scores[empty] = pop
    idx, mask = _pad(given)
    rows = torch.arange(len(given)).unsqueeze(1).expand_as(idx)
    scores[rows[mask], idx[mask]] = -torch.inf
    return scores


def item_ids_from_raw(dataset: RecDataset, raw_ids: Sequence[str | int]) -> np.ndarray:
    """Map raw item IDs (e.g. MovieLens movieIds) to itemIDs.

    Raises:
        DataError: a raw ID is not in the dataset (named in ``row``).
    """
    if dataset.item_raw_ids is None:
        lookup = {str(i): i for i in range(dataset.n_items)}
    else:
        lookup = {str(r): i for i, r in enumerate(dataset.item_raw_ids)}
    out = []
    for r in raw_ids:
        key = str(r).strip()
        if key not in lookup:
            raise DataError(
                f"item {key!r} is not in the dataset",
                path=dataset.path,
                row=f"item {key}",
                fix="use raw IDs from i_id_mapping.csv (e.g. MovieLens movieIds)",
            )
        out.append(lookup[key])
    return np.asarray(out, dtype=np.int64)


def recommend_new_user(
    model,
    dataset: RecDataset,
    items: Sequence[str | int],
    *,
    k: int = 20,
    method: str = "mean",
    raw_ids: bool = True,
    **fold_in_kw: Any,
) -> pd.DataFrame:
    """Top-``k`` for a user who is not in the training data, from the items they chose.

    Args:
        model: a trained recommender.
        dataset: its dataset (for the ID mapping and the popularity fallback).
        items: the items the new user liked (raw IDs, or itemIDs with ``raw_ids=False``);
            an empty list gives the popularity ranking.
        k: list length.
        method: ``"mean"`` or ``"gradient"`` (see :func:`fold_in_users`).
        raw_ids: whether ``items`` are raw IDs.
        **fold_in_kw: passed to :func:`fold_in_users`.

    Returns:
        DataFrame ``rank, itemID, item, score`` (the given items are never recommended).

    Raises:
        ConfigError: ``k`` outside 1..100000, an unknown fold-in option, an itemID out of
            range (``raw_ids=False``), or a fold-in setting out of range.
        DataError: a raw ID that is not in the dataset.
    """
    k = check_int(k, "k", 1, 100000, example=20)
    unknown = sorted(set(fold_in_kw) - FOLD_IN_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown fold-in option {unknown[0]!r}", row=unknown[0], fix=f"use {', '.join(sorted(FOLD_IN_OPTIONS))}"
        )
    if isinstance(items, (str, bytes)):
        raise ConfigError(
            f"items must be a list of item IDs, got the text {items!r}", row="items", fix=f"e.g. items=[{items!r}]"
        )
    given = item_ids_from_raw(dataset, items) if raw_ids else check_item_ids(items, dataset.n_items, "items")
    _, item_e = final_vectors(model)
    user = fold_in_users(item_e, [given], method, **fold_in_kw)  # (1, d)
    scores = score_new_users(user, item_e, [given], dataset.item_popularity("train"))  # (1, n_items)
    top = topk_stable(scores, k)[0]
    vals = scores[0, top]
    keep = torch.isfinite(vals)
    top, vals = top[keep].numpy(), vals[keep].numpy()
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "itemID": top,
            "item": np.asarray(dataset.raw_item_id(top), dtype=object),
            "score": vals,
        }
    )


__all__ = ["FOLD_IN_METHODS", "fold_in_users", "score_new_users", "item_ids_from_raw", "recommend_new_user"]
