"""Offline top-K export: every user's list with raw IDs and scores, streamed chunk by chunk.

The episode's suggestion: AlignRec's inference cost makes it a good *offline*
engine (nightly top-K lists for e-mails and marketing jobs) rather than a
real-time one. :func:`export_topk` writes every user's top-K with raw IDs,
training items removed and the scores, **streamed chunk by chunk** (memory is
bounded by ``batch_users x n_items`` scores plus one chunk of rows);
:func:`read_topk` reads it back; :func:`final_vectors` gives the vectors that
fold-in (:mod:`.foldin`) and new items (:mod:`.newitems`) work with.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.mmrec import RecDataset
from ..errors import DataError
from ..evaluate import iter_topk
from ..files import atomic_path
from ..models.base import Recommender

EXPORT_COLUMNS = ["userID", "user", "rank", "itemID", "item", "score"]


def _chunk_frames(
    model: Recommender,
    dataset: RecDataset,
    *,
    k: int,
    users: np.ndarray | None,
    exclude_valid: bool,
    batch_users: int,
) -> Iterator[pd.DataFrame]:
    from ..checks import check_export_args

    # 0 crashed in range(); a negative step silently exported nothing; users=[-1] labelled the last user -1
    k, batch_users, users = check_export_args(dataset, k, batch_users, users)
    users = np.arange(dataset.n_users) if users is None else users
    exclude = [dataset.interaction_matrix("train")]
    if exclude_valid:
        exclude.append(dataset.interaction_matrix("valid"))
    for chunk, top, scores in iter_topk(model.full_sort_scores, users, k, exclude, batch_users):
        kk = top.shape[1]
        df = pd.DataFrame(
            {
                "userID": np.repeat(chunk, kk),
                "rank": np.tile(np.arange(1, kk + 1), len(chunk)),
                "itemID": top.numpy().ravel(),
                "score": scores.numpy().ravel().astype(np.float32),
            }
        )
        df = df[np.isfinite(df["score"].to_numpy(dtype=float))]  # fewer unseen items than k
        df.insert(1, "user", np.asarray(dataset.raw_user_id(df["userID"].to_numpy()), dtype=object))
        df.insert(4, "item", np.asarray(dataset.raw_item_id(df["itemID"].to_numpy()), dtype=object))
        yield df.reset_index(drop=True)


def topk_frame(
    model: Recommender,
    dataset: RecDataset,
    *,
    k: int = 20,
    users: np.ndarray | None = None,
    exclude_valid: bool = False,
    batch_users: int = 1024,
) -> pd.DataFrame:
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
    frames = list(_chunk_frames(model, dataset, k=k, users=users, exclude_valid=exclude_valid, batch_users=batch_users))
    if not frames:
        return pd.DataFrame(columns=EXPORT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def export_topk(
    model: Recommender,
    dataset: RecDataset,
    out: str | Path,
    *,
    k: int = 20,
    batch_users: int = 1024,
    exclude_valid: bool = False,
    progress: bool = True,
    users: np.ndarray | None = None,
) -> Path:
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
    from ..checks import check_export_args, check_out_file

    out = check_out_file(out, "--out", suffixes=(".csv", ".parquet"))
    k, batch_users, users = check_export_args(dataset, k, batch_users, users)  # before the file is opened
    t0 = time.perf_counter()
    n_rows = 0
    with atomic_path(out) as tmp:
        writer = None
        try:
            for i, df in enumerate(
                _chunk_frames(model, dataset, k=k, users=users, exclude_valid=exclude_valid, batch_users=batch_users)
            ):
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
                pd.DataFrame(columns=EXPORT_COLUMNS).to_csv(tmp, index=False)
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
    if list(df.columns) != EXPORT_COLUMNS:
        raise DataError(
            f"not a top-K export: columns {list(df.columns)[:8]}", path=path, fix="pass a file written by export_topk"
        )
    return df


@torch.no_grad()
def final_vectors(model: Recommender) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's final user and item vectors (eval mode), as float32 copies on the CPU.

    Shape:
        returns ``(n_users, d)``, ``(n_items, d)``.
    """
    user_e, item_e = model.final_vectors()
    return user_e.detach().float().cpu(), item_e.detach().float().cpu()


__all__ = ["EXPORT_COLUMNS", "topk_frame", "export_topk", "read_topk", "final_vectors"]
