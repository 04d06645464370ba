"""Cold start: new items scored from content, new users folded in from a few items.

The episode notes that embeddings promise to handle cold start "naturally", and
wishes the AlignRec paper (Liu et al., CIKM 2024) had a new-user experiment. MMRec's
protocol drops cold-start users and has no cold-item protocol (ALIGNREC_SPEC §6),
so the kit defines both:

**New items** (:func:`item_disjoint_split`). A share of the items is held out
*with all their interactions*: the model trains on the other items only (their
train/valid split is unchanged), and the test set is every interaction with a
held-out item by a user who still has training rows. The held-out items are then
ranked **among themselves** (:func:`~alignrec_lite.beyond.restrict_candidates`):

* by a model's content path (``encode_content`` of AlignRec and VBPR; content
  features of new items are known, interactions are not);
* by the ID model as is (its vectors of held-out items never got a gradient);
* by training-free baselines: content kNN (:func:`item_knn_scores`, ItemKNN-CBF
  restricted to warm neighbours), the popularity of an item's content
  neighbours (:func:`neighbour_popularity_scores` — the plain popularity of a
  new item is 0 for all of them), and random.

**New users** (:func:`user_coldstart_split`). A share of the users (those with at
least ``max_given + 1`` interactions) is held out of training entirely. Each is
given a fixed random order of their items; at inference the first ``g`` of them
are revealed (``g`` in 0, 1, 2, 3, 5) and the model folds the user in without
retraining (:func:`alignrec_lite.serve.fold_in_users`: ``mean`` or ``gradient``).
The targets are the same for every ``g``: the items after position ``max_given``,
so the curve only shows what the revealed items are worth. ``g = 0`` falls back
to popularity for every method.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .beyond import restrict_candidates, topk_lists
from .data.mmrec import RecDataset
from .errors import ConfigError
from .evaluate import ScoreFn, metrics_from_hits, topk_stable
from .serve import final_vectors, fold_in_users, has_content_path, score_new_users

GIVEN_COUNTS = (0, 1, 2, 3, 5)
FoldInFn = Callable[[Sequence[np.ndarray]], torch.Tensor]


def _check_share(share: float) -> None:
    if not 0 < share < 1:
        raise ConfigError(f"share must be in (0, 1), got {share}", row="share", fix="e.g. share=0.2")


def _with_splits(ds: RecDataset, train: np.ndarray, valid: np.ndarray, test: np.ndarray) -> RecDataset:
    return dataclasses.replace(ds, train=train, valid=valid, test=test, timestamps=None)


# ------------------------------------------------------------------ new items
@dataclass
class ColdItemSplit:
    """An item-disjoint split.

    Attributes:
        dataset: train/valid hold warm items only (as in the original split); test
            holds every interaction with a cold item by a user with training rows.
        cold_items: the held-out itemIDs.
        warm_items: the others.
        original: the dataset before the split.
    """

    dataset: RecDataset
    cold_items: np.ndarray
    warm_items: np.ndarray
    original: RecDataset


def item_disjoint_split(dataset: RecDataset, share: float = 0.2, *, seed: int = 0,
                        min_interactions: int = 1) -> ColdItemSplit:
    """Hold out a random share of the items with all their interactions.

    Args:
        dataset: any dataset (all three splits are pooled per item).
        share: fraction of the eligible items to hold out.
        seed: seed of the draw.
        min_interactions: only items with at least this many interactions in all
            splits together are eligible (so each cold item can be a target).

    Returns:
        A :class:`ColdItemSplit`. No held-out item occurs in its train or valid split.
    """
    _check_share(share)
    all_pairs = np.concatenate([dataset.train, dataset.valid, dataset.test])
    count = np.bincount(all_pairs[:, 1], minlength=dataset.n_items)
    eligible = np.flatnonzero(count >= min_interactions)
    n_cold = int(round(share * len(eligible)))
    if n_cold < 1 or n_cold >= dataset.n_items:
        raise ConfigError(f"share {share} holds out {n_cold} of {len(eligible)} eligible items",
                          row="share", fix="choose a share that keeps at least one cold and one warm item")
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(eligible, size=n_cold, replace=False))
    is_cold = np.zeros(dataset.n_items, dtype=bool)
    is_cold[cold] = True
    train = dataset.train[~is_cold[dataset.train[:, 1]]]
    valid = dataset.valid[~is_cold[dataset.valid[:, 1]]]
    has_train = np.zeros(dataset.n_users, dtype=bool)
    has_train[train[:, 0]] = True
    valid = valid[has_train[valid[:, 0]]]
    test = all_pairs[is_cold[all_pairs[:, 1]]]
    test = test[has_train[test[:, 0]]]
    test = test[np.lexsort((test[:, 1], test[:, 0]))]
    ds = _with_splits(dataset, train, valid, test)
    return ColdItemSplit(dataset=ds, cold_items=cold, warm_items=np.flatnonzero(~is_cold), original=dataset)


def _normalised(features: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=1)


def knn_weights(features: np.ndarray, sources: np.ndarray, targets: np.ndarray, k: int = 10,
                chunk: int = 2048) -> sp.csr_matrix:
    """Cosine kNN from each target item to its ``k`` most similar *source* items.

    Args:
        features: ``(n_items, d)`` content features.
        sources: items that may be neighbours (e.g. the warm items).
        targets: items to score.
        k: neighbours kept per target (a target is never its own neighbour).

    Returns:
        ``W`` of shape ``(n_items, n_items)``, CSR: ``W[i, j] = cos(i, j)`` when
        source ``i`` is among the ``k`` nearest sources of target ``j``, else 0.
    """
    x = _normalised(features)  # (n_items, d)
    n = x.shape[0]
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    kk = min(k, len(sources))
    rows, cols, vals = [], [], []
    xs = x[torch.from_numpy(sources)]  # (n_src, d)
    for s in range(0, len(targets), chunk):
        t = targets[s : s + chunk]
        sim = x[torch.from_numpy(t)] @ xs.T  # (c, n_src)
        sim[torch.from_numpy(sources)[None, :] == torch.from_numpy(t)[:, None]] = -torch.inf  # no self
        v, j = torch.topk(sim, kk, dim=1)  # (c, kk)
        ok = torch.isfinite(v)
        rows.append(sources[j.numpy()][ok.numpy()])
        cols.append(np.repeat(t, kk).reshape(len(t), kk)[ok.numpy()])
        vals.append(v[ok].numpy())
    data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    return sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32)


def item_knn_scores(features: np.ndarray, history: sp.csr_matrix, *, k: int = 10,
                    targets: np.ndarray | None = None, sources: np.ndarray | None = None) -> ScoreFn:
    """Content kNN (ItemKNN-CBF): ``score(u, j) = sum_{i in N_u} W[i, j]`` (see :func:`knn_weights`).

    Args:
        features: ``(n_items, d)`` content features.
        history: user x item matrix of what each user interacted with (train).
        k: neighbours per target item.
        targets: items to score (default all); others score ``-inf``.
        sources: allowed neighbours (default: items with a training interaction).

    Returns:
        A score function ``(b,) -> (b, n_items)``.
    """
    n_items = history.shape[1]
    targets = np.arange(n_items) if targets is None else np.asarray(targets)
    if sources is None:
        sources = np.flatnonzero(np.asarray(history.sum(axis=0)).ravel() > 0)
    w = knn_weights(features, sources, targets, k=k)  # (n_items, n_items)
    is_target = np.zeros(n_items, dtype=bool)
    is_target[targets] = True
    hist = history.tocsr()

    def score(users: torch.Tensor) -> torch.Tensor:
        s = np.asarray((hist[users.cpu().numpy()] @ w).todense(), dtype=np.float32)  # (b, n_items)
        s[:, ~is_target] = -np.inf
        return torch.from_numpy(s)

    return score


def neighbour_popularity_scores(features: np.ndarray, popularity: np.ndarray, targets: np.ndarray,
                                *, k: int = 10) -> ScoreFn:
    """Non-personal baseline: a target's score is the mean popularity of its ``k`` nearest warm items."""
    pop = np.asarray(popularity, dtype=np.float32)
    warm = np.flatnonzero(pop > 0)
    w = knn_weights(features, warm, targets, k=k)
    w.data[:] = 1.0
    denom = np.maximum(np.asarray(w.sum(axis=0)).ravel(), 1.0)
    est = np.asarray(w.T @ pop).ravel() / denom  # (n_items,)
    s = np.full(len(pop), -np.inf, dtype=np.float32)
    s[targets] = est[targets]
    base = torch.from_numpy(s)

    def score(users: torch.Tensor) -> torch.Tensor:
        return base.expand(len(users), -1).clone()

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
        model._cache = None
        yield model
    finally:
        with torch.no_grad():
            emb.weight[idx] = saved
        model._cache = None


def content_path_scores(model, features: np.ndarray, items: np.ndarray, *, forget: bool = True) -> ScoreFn:
    """Score ``items`` from their content alone through the model's content path.

    The model's user vectors are kept; the vectors of ``items`` are
    ``model.encode_content(features[items])`` (AlignRec: attached to the frozen
    kNN graph by content similarity; VBPR: ``[0; W x + b]``). Other items score ``-inf``.

    Args:
        model: a trained model with ``encode_content``.
        features: ``(n_items, d_f)`` in the model's feature space.
        items: the items to score (e.g. the cold items).
        forget: first zero the ID embeddings of ``items`` (:func:`forget_items`).

    Raises:
        ConfigError: the model has no content path.
    """
    from .serve import new_item_vectors

    items = np.asarray(items, dtype=np.int64)
    if not has_content_path(model):
        new_item_vectors(model, np.asarray(features)[items[:1]])  # raises the ConfigError
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


def evaluate_cold_items(scorers: Mapping[str, ScoreFn], split: ColdItemSplit, *, ks: Sequence[int] = (10, 20),
                        batch_users: int = 1024) -> pd.DataFrame:
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
        rows.append({"method": name, **_metrics(lists, u, truth, ks), "users": int(len(u))})
    return pd.DataFrame(rows)


def _metrics(lists: np.ndarray, users: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int]) -> dict[str, float]:
    from .evaluate import hits_matrix

    hits = torch.from_numpy(hits_matrix(lists, users, truth))
    n_pos = torch.from_numpy(np.diff(truth[users].indptr).astype(np.int64))
    if hits.shape[1] < max(ks):
        hits = torch.nn.functional.pad(hits, (0, max(ks) - hits.shape[1]))
    m = metrics_from_hits(hits, n_pos, ks)
    return {name: float(m[name].mean()) for k in ks for name in (f"recall@{k}", f"ndcg@{k}")}


# ------------------------------------------------------------------ new users
@dataclass
class ColdUserSplit:
    """A user cold-start split.

    Attributes:
        dataset: the training data with the cold users' interactions removed from
            every split (warm users keep their original train/valid/test).
        cold_users: the held-out userIDs.
        orders: for each cold user, all their itemIDs in a fixed random order; the
            first ``g`` are revealed, the items after ``max_given`` are the targets.
        max_given: the largest number of revealed items.
        original: the dataset before the split.
    """

    dataset: RecDataset
    cold_users: np.ndarray
    orders: list[np.ndarray]
    max_given: int
    original: RecDataset

    def given(self, g: int) -> list[np.ndarray]:
        """The first ``g`` items of every cold user."""
        if not 0 <= g <= self.max_given:
            raise ConfigError(f"g must be in 0..{self.max_given}, got {g}", row="given", fix="use a smaller g")
        return [o[:g] for o in self.orders]

    def targets(self) -> sp.csr_matrix:
        """Cold user (row = position in ``cold_users``) x item matrix of the target items."""
        rows = np.concatenate([np.full(len(o) - self.max_given, r) for r, o in enumerate(self.orders)])
        cols = np.concatenate([o[self.max_given:] for o in self.orders])
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                             shape=(len(self.orders), self.original.n_items))


def user_coldstart_split(dataset: RecDataset, share: float = 0.2, *, seed: int = 0,
                         max_given: int = 5) -> ColdUserSplit:
    """Hold out a random share of the users (with more than ``max_given`` interactions).

    Args:
        dataset: the data; all three splits of a cold user are pooled.
        share: fraction of the eligible users to hold out.
        seed: seed of the draw and of each user's item order.
        max_given: the most items ever revealed; eligible users have at least
            ``max_given + 1`` interactions so that one target is left.

    Returns:
        A :class:`ColdUserSplit`.
    """
    _check_share(share)
    all_pairs = np.concatenate([dataset.train, dataset.valid, dataset.test])
    deg = np.bincount(all_pairs[:, 0], minlength=dataset.n_users)
    eligible = np.flatnonzero(deg > max_given)
    n_cold = int(round(share * len(eligible)))
    if n_cold < 1 or n_cold >= dataset.n_users:
        raise ConfigError(f"share {share} holds out {n_cold} of {len(eligible)} eligible users",
                          row="share", fix="choose a share that keeps at least one cold and one warm user")
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(eligible, size=n_cold, replace=False))
    is_cold = np.zeros(dataset.n_users, dtype=bool)
    is_cold[cold] = True
    order = np.lexsort((all_pairs[:, 1], all_pairs[:, 0]))
    pairs = all_pairs[order]
    pairs = pairs[is_cold[pairs[:, 0]]]
    starts = np.searchsorted(pairs[:, 0], cold)
    ends = np.searchsorted(pairs[:, 0], cold, side="right")
    orders = [rng.permutation(pairs[s:e, 1]) for s, e in zip(starts, ends)]
    ds = _with_splits(dataset, *(a[~is_cold[a[:, 0]]] for a in (dataset.train, dataset.valid, dataset.test)))
    return ColdUserSplit(dataset=ds, cold_users=cold, orders=orders, max_given=max_given, original=dataset)


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
    w = knn_weights(features, np.arange(dataset.n_items), np.arange(dataset.n_items), k=k).tocsr()

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


def cold_user_curve(methods: Mapping[str, FoldInFn], split: ColdUserSplit, *,
                    given_counts: Sequence[int] = GIVEN_COUNTS, ks: Sequence[int] = (20,),
                    batch_users: int = 1024) -> pd.DataFrame:
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
            rows.append({"method": name, "given": int(g),
                         **_metrics(lists_np, np.arange(len(given)), truth, ks), "users": len(given)})
    return pd.DataFrame(rows)




# ------------------------------------------------------------------ experiments
def _train_models(dataset: RecDataset, models: Sequence[str], overrides: Mapping[str, Any] | None,
                  model_overrides: Mapping[str, Mapping[str, Any]] | None, progress: bool) -> dict:
    from .train import train

    out = {}
    for name in models:
        ov = {**(overrides or {}), **((model_overrides or {}).get(name, {}))}
        out[name] = train(dataset, name, ov, progress=progress)[0]
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
) -> tuple[pd.DataFrame, dict]:
    """The new-item experiment end to end: split, train on warm items, rank the cold ones.

    Methods in the table: every model as trained (``"lightgcn"``: its held-out
    items' ID vectors are untrained), every model with a content path through it
    (``"alignrec · content"``, :func:`content_path_scores`), and the baselines
    ``content kNN``, ``neighbour popularity`` (both need features) and ``random``.

    Args:
        dataset: the full data.
        models: registered model names to train.
        share, seed: of :func:`item_disjoint_split` (``seed`` also seeds training).
        overrides: settings for every model (e.g. ``{"epochs": 50}``).
        model_overrides: per-model settings.
        knn_k: neighbours of the content baselines.
        ks: cut-offs.
        progress: training progress bars.
        trained: already trained models on ``split`` (skips training).
        split: an existing split (default: made here).

    Returns:
        ``(table with one row per method, {model name: trained model})``.
    """
    split = split or item_disjoint_split(dataset, share, seed=seed)
    ov = {"seed": seed, **(overrides or {})}
    nets = dict(trained) if trained is not None else _train_models(split.dataset, models, ov, model_overrides,
                                                                 progress)
    scorers: dict[str, ScoreFn] = {}
    for name, net in nets.items():
        scorers[name] = net.full_sort_scores
        if has_content_path(net):
            feat = net.content_features(split.dataset)  # the rows its content path reads (VBPR: raw)
            scorers[f"{name} · content"] = content_path_scores(net, feat, split.cold_items)
    feat = _content_features(split.dataset)
    if feat is not None:
        scorers["content kNN"] = item_knn_scores(feat, split.dataset.interaction_matrix("train"), k=knn_k,
                                                 targets=split.cold_items)
        scorers["neighbour popularity"] = neighbour_popularity_scores(feat, split.dataset.item_popularity("train"),
                                                                      split.cold_items, k=knn_k)
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
) -> tuple[pd.DataFrame, dict]:
    """The new-user experiment end to end: hold users out, train, fold them in with 0..5 items.

    Args:
        dataset: the full data.
        models: registered model names to train on the warm users.
        share, seed: of :func:`user_coldstart_split` (``seed`` also seeds training).
        methods: fold-in methods for every model (``mean``, ``gradient``).
        given_counts: numbers of revealed items (``max`` = the split's ``max_given``).
        overrides, model_overrides: training settings.
        knn_k: neighbours of the content-kNN baseline.
        ks: cut-offs.
        progress: training progress bars.
        fold_in_kw: passed to :func:`~alignrec_lite.serve.fold_in_users`.
        trained: already trained models (skips training); split: an existing split.

    Returns:
        ``(long table: method ("lightgcn · mean", "popularity", ...), model, fold_in, given,
        recall@K, ndcg@K, users, seed; {model name: trained model})``.
    """
    split = split or user_coldstart_split(dataset, share, seed=seed, max_given=max(given_counts))
    ov = {"seed": seed, **(overrides or {})}
    nets = dict(trained) if trained is not None else _train_models(split.dataset, models, ov, model_overrides,
                                                                 progress)
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


__all__ = [
    "GIVEN_COUNTS", "ColdItemSplit", "item_disjoint_split", "knn_weights", "item_knn_scores",
    "neighbour_popularity_scores", "random_scores", "forget_items", "content_path_scores", "evaluate_cold_items",
    "ColdUserSplit", "user_coldstart_split", "popularity_fold_in", "model_fold_in", "knn_fold_in",
    "cold_user_curve", "has_content_path", "item_coldstart_experiment", "user_coldstart_experiment",
]
