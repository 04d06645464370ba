"""Offline serving: top-K export, new users by fold-in, new items from content, timing.

The episode's suggestion: AlignRec's inference cost makes it a good *offline*
engine (nightly top-K lists for e-mails and marketing jobs) rather than a
real-time one. This module holds what such a job needs:

* :func:`export_topk` writes every user's top-K with raw IDs, training items
  removed and the scores, **streamed chunk by chunk** (memory is bounded by
  ``batch_users x n_items`` scores plus one chunk of rows);
* :func:`fold_in_users` builds vectors for users the model never saw from a few
  items they chose, without retraining — ``"mean"``: the average of the given
  items' final vectors; ``"gradient"``: a fresh vector fitted by a few Adam steps
  on the BPR loss ``-log σ(u·h_i - u·h_j)`` with the item vectors frozen;
  :func:`recommend_new_user` wraps it for a list of raw item IDs;
* :func:`new_item_vectors` / :func:`score_new_item` put an item with no
  interactions into the model's space from its content (models with a content
  path: ``encode_content(features)`` of AlignRec and VBPR); with the encoders installed the
  content can be an image and a text;
* :func:`measure_serving` times whole-catalogue export and single-user requests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .data.mmrec import RecDataset
from .errors import ConfigError, DataError
from .evaluate import iter_topk, topk_stable
from .io import atomic_path

FOLD_IN_METHODS = ("mean", "gradient")


# ------------------------------------------------------------------ export
def _chunk_frames(model, dataset: RecDataset, *, k: int, users: np.ndarray | None, exclude_valid: bool,
                  batch_users: int):
    from .checks import check_export_args

    # 0 crashed in range(); a negative step silently exported nothing; users=[-1] labelled the last user -1
    k, batch_users, users = check_export_args(dataset, k, batch_users, users)
    users = np.arange(dataset.n_users) if users is None else users
    exclude = [dataset.interaction_matrix("train")]
    if exclude_valid:
        exclude.append(dataset.interaction_matrix("valid"))
    for chunk, top, scores in iter_topk(model.full_sort_scores, users, k, exclude, batch_users):
        kk = top.shape[1]
        df = pd.DataFrame({
            "userID": np.repeat(chunk, kk),
            "rank": np.tile(np.arange(1, kk + 1), len(chunk)),
            "itemID": top.numpy().ravel(),
            "score": scores.numpy().ravel().astype(np.float32),
        })
        df = df[np.isfinite(df["score"].to_numpy(dtype=float))]  # fewer unseen items than k
        df.insert(1, "user", np.asarray(dataset.raw_user_id(df["userID"].to_numpy()), dtype=object))
        df.insert(4, "item", np.asarray(dataset.raw_item_id(df["itemID"].to_numpy()), dtype=object))
        yield df.reset_index(drop=True)


def topk_frame(model, dataset: RecDataset, *, k: int = 20, users: np.ndarray | None = None,
               exclude_valid: bool = False, batch_users: int = 1024) -> pd.DataFrame:
    """Top-``k`` recommendations as a long table (one row per user and rank).

    Args:
        model: a trained :class:`~alignrec_lite.models.base.Recommender` (or anything
            with ``full_sort_scores``).
        dataset: the dataset; its training items are removed from the lists.
        k: list length.
        users: which users (default: all).
        exclude_valid: also remove validation items (off = MMRec's test protocol).
        batch_users: users per chunk.

    Returns:
        DataFrame with ``userID``, ``user`` (raw), ``rank`` (1-based), ``itemID``,
        ``item`` (raw) and ``score``.
    """
    frames = list(_chunk_frames(model, dataset, k=k, users=users, exclude_valid=exclude_valid,
                                batch_users=batch_users))
    if not frames:
        return pd.DataFrame(columns=["userID", "user", "rank", "itemID", "item", "score"])
    return pd.concat(frames, ignore_index=True)


def export_topk(model, dataset: RecDataset, out: str | Path, *, k: int = 20, batch_users: int = 1024,
                exclude_valid: bool = False, progress: bool = True, users: np.ndarray | None = None) -> Path:
    """Write every user's top-``k`` to ``out`` (``.csv`` or ``.parquet``), atomically and in chunks.

    Rows are written as each chunk of ``batch_users`` users is ranked, so the
    whole table is never held in memory. The file appears only when complete.

    Args:
        model: anything with ``full_sort_scores``.
        dataset: the dataset (training items are removed from the lists).
        out: the output file; its suffix chooses the format.
        k: list length.
        batch_users: users per chunk.
        exclude_valid: also remove validation items.
        progress: print the row count and time when done.
        users: only these users (default: all).

    Returns:
        The path written.
    """
    from .checks import check_export_args, check_out_file

    out = check_out_file(out, "--out", suffixes=(".csv", ".parquet"))
    k, batch_users, users = check_export_args(dataset, k, batch_users, users)  # before the file is opened
    t0 = time.perf_counter()
    n_rows = 0
    with atomic_path(out) as tmp:
        writer = None
        try:
            for i, df in enumerate(_chunk_frames(model, dataset, k=k, users=users, exclude_valid=exclude_valid,
                                                 batch_users=batch_users)):
                df = df.astype({"user": str, "item": str})
                n_rows += len(df)
                if out.suffix == ".csv":
                    df.to_csv(tmp, index=False, mode="w" if i == 0 else "a", header=i == 0)
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(df, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
            if n_rows == 0 and out.suffix == ".csv":
                pd.DataFrame(columns=["userID", "user", "rank", "itemID", "item", "score"]).to_csv(tmp, index=False)
        finally:
            if writer is not None:
                writer.close()
    if progress:
        print(f"exported {n_rows:,} rows in {time.perf_counter() - t0:.2f} s")
    return out


def read_topk(path: str | Path) -> pd.DataFrame:
    """Read a file written by :func:`export_topk` (``.csv`` or ``.parquet``), raw IDs kept as strings.

    Raises:
        DataError: missing file, unknown type, or not an export (columns missing).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such export file", path=path, fix="run export_topk (alignrec-lite recommend) first")
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype={"user": str, "item": str})
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise DataError(f"unsupported export type {path.suffix!r}", path=path, fix="read a .csv or .parquet export")
    need = ["userID", "user", "rank", "itemID", "item", "score"]
    if list(df.columns) != need:
        raise DataError(f"not a top-K export: columns {list(df.columns)[:8]}", path=path,
                        fix="pass a file written by export_topk")
    return df


# ------------------------------------------------------------------ vectors
@torch.no_grad()
def final_vectors(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's final user and item vectors (eval mode), on the CPU.

    Shape:
        returns ``(n_users, d)``, ``(n_items, d)``.
    """
    model.prepare_eval()
    cached = getattr(model, "_cache", None)  # the base class caches forward() in prepare_eval
    user_e, item_e = cached if cached is not None else model.forward()
    return user_e.detach().float().cpu(), item_e.detach().float().cpu()


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

    Shape:
        item_emb: ``(n_items, d)``; returns ``(len(given), d)``.
    """
    if method not in FOLD_IN_METHODS:
        raise ConfigError(f"unknown fold-in method {method!r}", row="method", fix=f"use one of {FOLD_IN_METHODS}")
    item_emb = item_emb.detach().float()
    idx, mask = _pad(given)  # (n, g)
    m = mask.float().unsqueeze(-1)  # (n, g, 1)
    counts = mask.sum(1, keepdim=True).clamp(min=1).float()  # (n, 1)
    if method == "mean":
        return (item_emb[idx] * m).sum(1) / counts  # (n, d)
    with torch.enable_grad():  # callers may hold torch.no_grad()
        return _fit_users(item_emb, idx, mask, steps=steps, lr=lr, reg=reg, negatives=negatives, seed=seed)


def _fit_users(item_emb: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor, *, steps: int, lr: float,
               reg: float, negatives: np.ndarray | None, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cand = torch.arange(item_emb.shape[0]) if negatives is None else torch.as_tensor(np.asarray(negatives, dtype=np.int64))
    user = torch.zeros(len(idx), item_emb.shape[1], requires_grad=True)  # (n, d)
    opt = torch.optim.Adam([user], lr=lr)
    pos_e = item_emb[idx]  # (n, g, d)
    n_valid = mask.sum().clamp(min=1)
    for _ in range(steps):
        neg = cand[torch.randint(len(cand), idx.shape, generator=gen)]  # (n, g)
        diff = ((pos_e - item_emb[neg]) * user.unsqueeze(1)).sum(-1)  # (n, g)
        # -log σ(x) = softplus(-x); F.logsigmoid is ~50x slower on small tensors on a busy 2-core CPU
        loss = (torch.nn.functional.softplus(-diff) * mask).sum() / n_valid
        loss = loss + reg * (user ** 2).sum(1).mean()
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
    """
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
            raise DataError(f"item {key!r} is not in the dataset", path=dataset.path, row=f"item {key}",
                            fix="use raw IDs from i_id_mapping.csv (e.g. MovieLens movieIds)")
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
    """
    from .checks import check_int

    k = check_int(k, "k", 1, 100000, example=20)
    given = item_ids_from_raw(dataset, items) if raw_ids else np.asarray(items, dtype=np.int64)
    if (given < 0).any() or (given >= dataset.n_items).any():
        raise DataError("an itemID is out of range", row="items", fix=f"itemIDs are 0..{dataset.n_items - 1}")
    _, item_e = final_vectors(model)
    user = fold_in_users(item_e, [given], method, **fold_in_kw)  # (1, d)
    scores = score_new_users(user, item_e, [given], dataset.item_popularity("train"))  # (1, n_items)
    top = topk_stable(scores, k)[0]
    vals = scores[0, top]
    keep = torch.isfinite(vals)
    top, vals = top[keep].numpy(), vals[keep].numpy()
    return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "itemID": top,
                         "item": np.asarray(dataset.raw_item_id(top), dtype=object), "score": vals})


# ------------------------------------------------------------------ new items
def has_content_path(model) -> bool:
    """Whether the model can place an item from its content alone (``encode_content``)."""
    return callable(getattr(model, "encode_content", None))


@torch.no_grad()
def new_item_vectors(model, features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Item vectors from content features alone, through the model's content path.

    Args:
        model: a model with ``encode_content(features) -> (m, d)`` (AlignRec, VBPR).
        features: ``(m, d_f)`` rows in the same feature space the model was trained
            on (``model.feature_source``).

    Returns:
        ``(m, d)`` vectors comparable with the model's user vectors.

    Raises:
        ConfigError: the model has no content path (BPR, LightGCN).
    """
    if not has_content_path(model):
        raise ConfigError(f"model {getattr(model, 'name', type(model).__name__)!r} has no content path",
                          row="model", fix="use a content-aware model (alignrec, vbpr) for items without interactions")
    x = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, torch.Tensor) else features
    if x.ndim == 1:
        x = x.unsqueeze(0)
    model.prepare_eval()
    return model.encode_content(x.float().to(model.device_)).detach().float().cpu()


def encode_new_item(dataset: RecDataset, source: str, *, image=None, text: str | None = None,
                    layout: str = "normalised") -> np.ndarray:
    """Encode one new item's image and/or text into the dataset's feature space.

    The towers are rebuilt from the dataset's ``features.json`` (the spec, seed and
    dimension that made ``image_feat.npy`` / ``text_feat.npy``, see
    :mod:`alignrec_lite.encoders`), so the new row is comparable with the others.
    For ``image+text`` the two blocks are L2-normalised and concatenated, then
    normalised again, as :meth:`RecDataset.feature` does.

    Args:
        dataset: the dataset the model was trained on (a folder with ``features.json``).
        source: the model's feature source: ``"image"``, ``"text"`` or ``"image+text"``.
        image: path of the new item's image (needed for an ``image`` block).
        text: the new item's text (needed for a ``text`` block).
        layout: how two blocks are joined: ``"normalised"`` (as :meth:`RecDataset.feature`)
            or ``"raw-text-first"`` (VBPR's input, as MMRec); a model's ``content_layout``.

    Returns:
        ``(1, d_f)`` float32 feature row.

    Raises:
        ConfigError: ``mm`` features (they need the stage-1 encoder: pass ``feature=``),
            a missing image/text, or features that no encoder made (the toy's attributes).
        DataError: the image cannot be read, or ``features.json`` lacks the modality.
    """
    from . import encoders

    parts = [p for p in str(source).split("+") if p]
    if "mm" in parts or not parts:
        raise ConfigError(f"cannot encode a new item into the {source!r} feature space here", row="feature_source",
                          fix="mm features come from the stage-1 encoder (alignrec_lite.ica); pass feature=...")
    manifest = encoders.read_manifest(dataset.path) if dataset.path is not None else {}
    blocks = []
    for modality in parts:
        entry = manifest.get(modality)
        if not isinstance(entry, dict) or "encoder" not in entry:
            raise DataError(f"features.json has no encoder entry for {modality!r}", path=dataset.path,
                            fix="extract the features with `alignrec-lite features`, or pass feature=...")
        spec = str(entry["encoder"])
        try:
            tower = encoders.build_tower(spec, modality, seed=int(entry.get("seed") or 0),
                                         dim=int(entry.get("dim") or 128))
        except ConfigError:
            raise ConfigError(f"the {modality} features were made by {spec!r}, which is not an encoder",
                              row="feature_source", fix="pass the new item's feature row (feature=...)") from None
        if modality == "image":
            if image is None:
                raise ConfigError("the model uses image features but no image was given", row="image",
                                  fix="pass image=<path to the picture>")
            vec, missing = encoders.encode_images(tower, [Path(image)])
            if missing[0]:
                raise DataError("the image cannot be read", path=image, fix="pass a JPEG or PNG file")
        else:
            if not text:
                raise ConfigError("the model uses text features but no text was given", row="text",
                                  fix="pass text='<title and description>'")
            vec = encoders.encode_texts(tower, [text])
        blocks.append(np.asarray(vec, dtype=np.float32))
    if len(blocks) == 1:
        return blocks[0]
    if layout == "raw-text-first":
        order = sorted(range(len(parts)), key=lambda j: 0 if parts[j] == "text" else 1)
        return np.concatenate([blocks[j] for j in order], axis=1).astype(np.float32)
    unit = [b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in blocks]
    out = np.concatenate(unit, axis=1)
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def score_new_item(
    model,
    dataset: RecDataset,
    *,
    feature: np.ndarray | None = None,
    image=None,
    text: str | None = None,
    k: int = 10,
) -> dict[str, pd.DataFrame]:
    """Who would like a brand-new item, and which existing items it resembles.

    Args:
        model: a model with a content path (:func:`has_content_path`).
        dataset: its dataset.
        feature: the new item's content feature row ``(d_f,)`` in the model's
            feature space; or give ``image`` and/or ``text`` to encode it.
        image, text: raw content (needs :mod:`alignrec_lite.encoders`).
        k: rows in each table.

    Returns:
        ``{"users": top-k users by score (userID, user, score),
        "similar_items": top-k items by cosine of the model's item vectors (itemID, item, cosine)}``.
    """
    if feature is None:
        if image is None and text is None:
            raise ConfigError("nothing to score", row="feature", fix="pass feature=..., or image= and/or text=")
        feature = encode_new_item(dataset, getattr(model, "feature_source", "auto") or "auto", image=image, text=text,
                                  layout=getattr(model, "content_layout", "normalised"))
    vec = new_item_vectors(model, feature)[0]  # (d,)
    user_e, item_e = final_vectors(model)
    s = user_e @ vec  # (n_users,)
    top_u = torch.topk(s, min(k, len(s))).indices.numpy()
    cos = torch.nn.functional.cosine_similarity(item_e, vec.unsqueeze(0), dim=1)  # (n_items,)
    top_i = torch.topk(cos, min(k, len(cos))).indices.numpy()
    return {
        "users": pd.DataFrame({"userID": top_u, "user": np.asarray(dataset.raw_user_id(top_u), dtype=object),
                               "score": s[top_u].numpy()}),
        "similar_items": pd.DataFrame({"itemID": top_i, "item": np.asarray(dataset.raw_item_id(top_i), dtype=object),
                                       "cosine": cos[top_i].numpy()}),
    }


# ------------------------------------------------------------------ timing
def subsample_users(dataset: RecDataset, share: float, *, seed: int = 0) -> RecDataset:
    """A smaller copy of a dataset for cost curves: a random share of the users with all their rows.

    Users and the items they touched are re-indexed to ``0..n-1`` (raw IDs,
    features and the items table follow), so model sizes shrink with the data.

    Args:
        dataset: the full data.
        share: fraction of users kept, in ``(0, 1]``.
        seed: seed of the draw.

    Returns:
        A new :class:`RecDataset` (``name`` unchanged; ``timestamps`` dropped).
    """
    import dataclasses

    if not 0 < share <= 1:
        raise ConfigError(f"share must be in (0, 1], got {share}", row="share", fix="e.g. share=0.5")
    rng = np.random.default_rng(seed)
    n_keep = max(1, int(round(share * dataset.n_users)))
    keep_u = np.zeros(dataset.n_users, dtype=bool)
    keep_u[rng.choice(dataset.n_users, size=n_keep, replace=False)] = True
    parts = {k: dataset.split(k)[keep_u[dataset.split(k)[:, 0]]] for k in ("train", "valid", "test")}
    users = np.flatnonzero(keep_u)
    items = np.unique(np.concatenate([p[:, 1] for p in parts.values()]))
    new_u = np.full(dataset.n_users, -1, dtype=np.int64)
    new_u[users] = np.arange(len(users))
    new_i = np.full(dataset.n_items, -1, dtype=np.int64)
    new_i[items] = np.arange(len(items))
    remap = {k: np.stack([new_u[p[:, 0]], new_i[p[:, 1]]], axis=1) for k, p in parts.items()}
    return dataclasses.replace(
        dataset, n_users=len(users), n_items=len(items), timestamps=None, **remap,
        features={k: v[items] for k, v in dataset.features.items()},
        items=None if dataset.items is None else dataset.items.loc[items].reset_index(drop=True).rename_axis("itemID"),
        user_raw_ids=None if dataset.user_raw_ids is None else dataset.user_raw_ids[users],
        item_raw_ids=None if dataset.item_raw_ids is None else dataset.item_raw_ids[items],
    )


def measure_serving(model, dataset: RecDataset, *, k: int = 20, batch_users: int = 1024, n_single: int = 50,
                    repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Time offline and per-request serving on this machine.

    * ``prepare_seconds``: one forward pass that caches the final vectors;
    * ``all_users_seconds``: top-``k`` for every user in chunks of ``batch_users``
      (median of ``repeats``), and the same per user in milliseconds;
    * ``single_user_ms``: median latency of scoring + top-``k`` for one user at a
      time (``n_single`` random users) — the real-time case.

    Returns:
        A dict of the timings plus ``n_users``, ``n_items``, ``k``.
    """
    from .checks import check_export_args, check_int

    k, batch_users, _ = check_export_args(dataset, k, batch_users, None)
    n_single = check_int(n_single, "--n-single", 1, 10**6, example=50)  # 0 gave a NaN median
    repeats = check_int(repeats, "repeats", 1, 1000, example=3)
    t0 = time.perf_counter()
    model.prepare_eval()
    prepare = time.perf_counter() - t0
    exclude = [dataset.interaction_matrix("train")]
    users = np.arange(dataset.n_users)
    runs = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _chunk in iter_topk(model.full_sort_scores, users, k, exclude, batch_users):
            pass
        runs.append(time.perf_counter() - t0)
    all_s = float(np.median(runs))
    rng = np.random.default_rng(seed)
    pick = rng.choice(dataset.n_users, size=min(n_single, dataset.n_users), replace=False)
    lat = []
    for u in pick:
        t0 = time.perf_counter()
        for _chunk in iter_topk(model.full_sort_scores, np.array([u]), k, exclude, 1):
            pass
        lat.append(time.perf_counter() - t0)
    return {
        "prepare_seconds": prepare,
        "all_users_seconds": all_s,
        "per_user_ms_batched": 1000 * all_s / max(1, dataset.n_users),
        "single_user_ms": 1000 * float(np.median(lat)),
        "n_users": int(dataset.n_users),
        "n_items": int(dataset.n_items),
        "k": int(k),
    }


__all__ = [
    "topk_frame", "export_topk", "read_topk", "final_vectors", "fold_in_users", "score_new_users", "item_ids_from_raw",
    "recommend_new_user", "has_content_path", "new_item_vectors", "encode_new_item", "score_new_item",
    "measure_serving", "subsample_users", "FOLD_IN_METHODS",
]
