"""Experiments end to end: train the models a protocol needs, then run the protocol.

The protocols themselves (:mod:`alignrec_lite.coldstart`, :mod:`alignrec_lite.longtail`)
only score and count; the training they need is done here, one layer above, so that
the command line (``alignrec-lite coldstart``), the benchmarks and notebook 07 call the
same code:

* :func:`item_coldstart_experiment` — item-disjoint split, train on the warm items,
  rank the cold ones by every model, its content path and the training-free baselines;
* :func:`user_coldstart_experiment` — hold users out, train on the others, fold them
  in with 0..5 revealed items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .coldstart import (
    GIVEN_COUNTS,
    FoldInFn,
    cold_user_curve,
    content_path_scores,
    evaluate_cold_items,
    knn_fold_in,
    model_fold_in,
    popularity_fold_in,
)
from .data.mmrec import RecDataset
from .data.split import (
    ColdItemSplit,
    ColdUserSplit,
    item_disjoint_split,
    user_coldstart_split,
)
from .evaluate import ScoreFn
from .scorers import item_knn_scores, neighbour_popularity_scores, random_scores


def train_models(
    dataset: RecDataset,
    models: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    preset: str | None = "auto",
) -> dict:
    """Train every named model on ``dataset`` (early stopping on its valid split).

    Args:
        dataset: the training data (e.g. a cold-start split's ``dataset``).
        models: registered model names.
        overrides: settings for every model.
        model_overrides: per-model settings (they win over ``overrides``).
        progress: training progress bars.
        preset: the tuned preset of every model (see :func:`alignrec_lite.train.train`).

    Returns:
        ``{model name: trained model}``.
    """
    from .train import train

    out = {}
    for name in models:
        ov = {**(overrides or {}), **((model_overrides or {}).get(name, {}))}
        out[name] = train(dataset, name, ov, progress=progress, preset=preset)[0]
    return out


def _content_features(dataset: RecDataset, source: str = "auto") -> np.ndarray | None:
    if not dataset.features:
        return None
    return dataset.feature(source)[0]


def item_coldstart_experiment(
    dataset: RecDataset,
    models: Sequence[str] = ("lightgcn", "alignrec"),
    *,
    share: float = 0.2,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    knn_k: int = 10,
    ks: Sequence[int] = (10, 20),
    progress: bool = False,
    trained: Mapping[str, Any] | None = None,
    split: ColdItemSplit | None = None,
    preset: str | None = "auto",
) -> tuple[pd.DataFrame, dict]:
    """The new-item experiment end to end: split, train on warm items, rank the cold ones.

    Methods in the table: every model as trained (``"lightgcn"``: its held-out
    items' ID vectors are untrained), every model with a content path through it
    (``"alignrec · content"``, :func:`~alignrec_lite.coldstart.content_path_scores`), and the baselines
    ``content kNN``, ``neighbour popularity`` (both need features) and ``random``.

    Args:
        dataset: the full data.
        models: registered model names to train.
        share, seed: of :func:`~alignrec_lite.data.split.item_disjoint_split` (``seed`` also seeds training).
        overrides: settings for every model (e.g. ``{"epochs": 50}``).
        model_overrides: per-model settings.
        knn_k: neighbours of the content baselines.
        ks: cut-offs.
        progress: training progress bars.
        trained: already trained models on ``split`` (skips training).
        split: an existing split (default: made here).
        preset: the tuned preset of every model (see :func:`alignrec_lite.train.train`).

    Returns:
        ``(table with one row per method, {model name: trained model})``.
    """
    split = split or item_disjoint_split(dataset, share, seed=seed)
    ov = {"seed": seed, **(overrides or {})}
    nets = (
        dict(trained)
        if trained is not None
        else train_models(split.dataset, models, ov, model_overrides, progress, preset)
    )
    scorers: dict[str, ScoreFn] = {}
    for name, net in nets.items():
        scorers[name] = net.full_sort_scores
        if net.has_content_path:
            feat = net.content_features(split.dataset)  # the rows its content path reads (VBPR: raw)
            scorers[f"{name} · content"] = content_path_scores(net, feat, split.cold_items)
    feat = _content_features(split.dataset)
    if feat is not None:
        scorers["content kNN"] = item_knn_scores(
            feat, split.dataset.interaction_matrix("train"), k=knn_k, targets=split.cold_items
        )
        scorers["neighbour popularity"] = neighbour_popularity_scores(
            feat, split.dataset.item_popularity("train"), split.cold_items, k=knn_k
        )
    scorers["random"] = random_scores(dataset.n_items, seed)
    table = evaluate_cold_items(scorers, split, ks=ks)
    table.insert(1, "seed", seed)
    return table, nets


def user_coldstart_experiment(
    dataset: RecDataset,
    models: Sequence[str] = ("lightgcn", "alignrec"),
    *,
    share: float = 0.2,
    seed: int = 0,
    methods: Sequence[str] = ("mean", "gradient"),
    given_counts: Sequence[int] = GIVEN_COUNTS,
    overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    knn_k: int = 10,
    ks: Sequence[int] = (20,),
    progress: bool = False,
    fold_in_kw: Mapping[str, Any] | None = None,
    trained: Mapping[str, Any] | None = None,
    split: ColdUserSplit | None = None,
    preset: str | None = "auto",
) -> tuple[pd.DataFrame, dict]:
    """The new-user experiment end to end: hold users out, train, fold them in with 0..5 items.

    Args:
        dataset: the full data.
        models: registered model names to train on the warm users.
        share, seed: of :func:`~alignrec_lite.data.split.user_coldstart_split` (``seed`` also seeds training).
        methods: fold-in methods for every model (``mean``, ``gradient``).
        given_counts: numbers of revealed items (``max`` = the split's ``max_given``).
        overrides, model_overrides: training settings.
        knn_k: neighbours of the content-kNN baseline.
        ks: cut-offs.
        progress: training progress bars.
        fold_in_kw: passed to :func:`~alignrec_lite.serve.fold_in_users`.
        trained: already trained models (skips training); split: an existing split.
        preset: the tuned preset of every model (see :func:`alignrec_lite.train.train`).

    Returns:
        ``(long table: method ("lightgcn · mean", "popularity", ...), model, fold_in, given,
        recall@K, ndcg@K, users, seed; {model name: trained model})``.
    """
    split = split or user_coldstart_split(dataset, share, seed=seed, max_given=max(given_counts))
    ov = {"seed": seed, **(overrides or {})}
    nets = (
        dict(trained)
        if trained is not None
        else train_models(split.dataset, models, ov, model_overrides, progress, preset)
    )
    fns: dict[str, FoldInFn] = {"popularity": popularity_fold_in(split.dataset)}
    labels: dict[str, tuple[str, str]] = {"popularity": ("popularity", "-")}
    feat = _content_features(split.dataset)
    if feat is not None:
        fns["content kNN"] = knn_fold_in(feat, split.dataset, k=knn_k)
        labels["content kNN"] = ("content kNN", "-")
    for name, net in nets.items():
        for m in methods:
            key = f"{name} · {m}"
            fns[key] = model_fold_in(net, split.dataset, m, seed=seed, **(fold_in_kw or {}))
            labels[key] = (name, m)
    table = cold_user_curve(fns, split, given_counts=given_counts, ks=ks)
    table.insert(1, "model", [labels[m][0] for m in table["method"]])
    table.insert(2, "fold_in", [labels[m][1] for m in table["method"]])
    table["seed"] = seed
    return table, nets


__all__ = ["train_models", "item_coldstart_experiment", "user_coldstart_experiment"]
