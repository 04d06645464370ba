"""Smaller copies of a dataset: a share of the users in memory, or a few items in a scratch folder.

* :func:`subsample_users` keeps a random share of the users with all their rows, in memory
  (cost curves, SMOKE runs on real data).
* :func:`working_copy` copies a folder's interactions and items table (no features) to a
  scratch folder, optionally keeping only the most-interacted items, for notebooks that
  write features or pre-train encoders.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..files import atomic_dir
from .mmrec import RecDataset, load_mmrec
from .mmrec_files import read_card, write_mmrec_files


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
        dataset,
        n_users=len(users),
        n_items=len(items),
        timestamps=None,
        **remap,
        features={k: v[items] for k, v in dataset.features.items()},
        items=None if dataset.items is None else dataset.items.loc[items].reset_index(drop=True).rename_axis("itemID"),
        user_raw_ids=None if dataset.user_raw_ids is None else dataset.user_raw_ids[users],
        item_raw_ids=None if dataset.item_raw_ids is None else dataset.item_raw_ids[items],
    )


def working_copy(src: str | Path, dest: str | Path | None = None, *, max_items: int | None = None) -> Path:
    """Copy a dataset folder's interactions and items table (no features) to a scratch folder.

    Notebooks that write features or pre-train encoders (``extract_features``,
    ``pretrain_ica``) work on such a copy, never on the bundled data. Image paths
    in ``items.csv`` become absolute, so the images themselves are not copied.

    Args:
        src: an MMRec dataset folder.
        dest: destination (default: a new temporary folder); replaced if it exists.
        max_items: keep only the ``max_items`` most-interacted items (ties by
            itemID), re-indexed, and the users that keep a training interaction —
            a small, fast version of a real dataset for SMOKE runs.

    Returns:
        The new folder.

    Raises:
        DataError: ``src`` is not a valid dataset folder, or ``max_items < 2``.
    """
    ds = load_mmrec(src, load_features=False)

    ds = load_mmrec(src, load_features=False)
    splits = [ds.train, ds.valid, ds.test]
    inter = pd.DataFrame(np.concatenate(splits), columns=["userID", "itemID"])
    inter["x_label"] = np.concatenate([np.full(len(a), k) for k, a in enumerate(splits)])
    if ds.timestamps:
        inter["timestamp"] = np.concatenate([ds.timestamps[k] for k in ("train", "valid", "test")])
    keep_items = np.arange(ds.n_items)
    if max_items:
        if max_items < 2:
            raise DataError(f"max_items must be at least 2, got {max_items}", row="max_items", fix="use e.g. 300")
        counts = np.bincount(inter["itemID"], minlength=ds.n_items)
        keep_items = np.sort(np.argsort(-counts, kind="stable")[:max_items])
        inter = inter[inter["itemID"].isin(keep_items)]
        users_with_train = inter.loc[inter["x_label"] == 0, "userID"].unique()
        inter = inter[inter["userID"].isin(users_with_train)]
    keep_users = np.sort(inter["userID"].unique())
    inter = inter.assign(
        userID=np.searchsorted(keep_users, inter["userID"]), itemID=np.searchsorted(keep_items, inter["itemID"])
    )
    items = None
    if ds.items is not None:
        items = ds.items.sort_index().loc[keep_items].copy()
        items.index = np.arange(len(keep_items))
        items.index.name = "itemID"
        if "image" in items.columns and ds.path is not None:
            items["image"] = [str((ds.path / p).resolve()) if isinstance(p, str) and p else "" for p in items["image"]]
    card = dict(read_card(src)) if (Path(src) / "dataset.json").exists() else {}
    card.update({"derived_from": str(Path(src).resolve()), "max_items": max_items})
    dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="alignrec-nb-")) / Path(src).name
    with atomic_dir(dest, overwrite=True) as tmp:
        write_mmrec_files(
            tmp,
            name=ds.name,
            inter=inter.sort_values(["userID", "x_label"], kind="stable"),
            user_raw_ids=None if ds.user_raw_ids is None else ds.user_raw_ids[keep_users],
            item_raw_ids=None if ds.item_raw_ids is None else ds.item_raw_ids[keep_items],
            items=items,
            card=card,
        )
    return dest


__all__ = ["subsample_users", "working_copy"]
