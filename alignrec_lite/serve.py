"""Offline serving: export every user's top-K, in batches with bounded memory.

The episode's suggestion: AlignRec's inference cost makes it a good *offline*
engine (nightly top-K lists for e-mails and marketing jobs) rather than a
real-time one. :func:`export_topk` writes such a list for all users with raw IDs,
training items removed and the scores, chunk by chunk.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .data.mmrec import RecDataset
from .errors import ConfigError
from .evaluate import iter_topk
from .io import atomic_path


def topk_frame(model, dataset: RecDataset, *, k: int = 20, users: np.ndarray | None = None,
               exclude_valid: bool = False, batch_users: int = 4096) -> pd.DataFrame:
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
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", row="--k", fix="e.g. --k 20")
    users = np.arange(dataset.n_users) if users is None else np.asarray(users, dtype=np.int64)
    exclude = [dataset.interaction_matrix("train")]
    if exclude_valid:
        exclude.append(dataset.interaction_matrix("valid"))
    frames = []
    for chunk, top, scores in iter_topk(model.full_sort_scores, users, k, exclude, batch_users):
        kk = top.shape[1]
        frames.append(pd.DataFrame({
            "userID": np.repeat(chunk, kk),
            "rank": np.tile(np.arange(1, kk + 1), len(chunk)),
            "itemID": top.numpy().ravel(),
            "score": scores.numpy().ravel().astype(np.float32),
        }))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["userID", "rank", "itemID", "score"])
    df = df[np.isfinite(df["score"].to_numpy(dtype=float))]  # fewer unseen items than k
    df.insert(1, "user", np.asarray(dataset.raw_user_id(df["userID"].to_numpy())))
    df.insert(4, "item", np.asarray(dataset.raw_item_id(df["itemID"].to_numpy())))
    return df.reset_index(drop=True)


def export_topk(model, dataset: RecDataset, out: str | Path, *, k: int = 20, batch_users: int = 4096,
                exclude_valid: bool = False, progress: bool = True) -> Path:
    """Write every user's top-``k`` to ``out`` (``.csv`` or ``.parquet``), atomically.

    Returns:
        The path written. The export time is printed when ``progress`` is on.
    """
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"unsupported output type {out.suffix!r}", row="--out", fix="use a .csv or .parquet file name")
    t0 = time.perf_counter()
    df = topk_frame(model, dataset, k=k, batch_users=batch_users, exclude_valid=exclude_valid)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    if progress:
        print(f"exported {len(df):,} rows in {time.perf_counter() - t0:.2f} s")
    return out
