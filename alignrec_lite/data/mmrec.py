"""MMRec-format dataset folders: the dataset in memory (:class:`RecDataset`) and loading a folder.

Each file is read, validated and written by :mod:`alignrec_lite.data.mmrec_files`.

The format is the one MMRec (Zhou et al., 2023) and the official AlignRec code
read (see ALIGNREC_SPEC §3.3)::

    DIR/
      <name>.inter          tab-separated, header; userID itemID x_label [rating] [timestamp]
                            x_label: 0 = train, 1 = valid, 2 = test; IDs 0-based, contiguous
      image_feat.npy        optional, (n_items, d_img), row i = itemID i
      text_feat.npy         optional, (n_items, d_txt)
      mm_feat.npy           optional, (n_items, d_mm): the fused stage-1 (MMEnc) feature
      i_id_mapping.csv      optional, tab-separated: <raw id> itemID
      u_id_mapping.csv      optional, tab-separated: <raw id> userID
    and, written by the kit's builders (raw content, so features can be recomputed):
      items.csv             itemID, raw_id, text, image (path relative to DIR), [category, ...]
      images/               item images
      dataset.json          the dataset card: source, statistics, seed

Every problem is reported as a :class:`~alignrec_lite.errors.DataError` naming the
file, the line and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..checks import check_regular_file, entry_exists
from ..errors import DataError
from ..utils import fuse_features
from .mmrec_files import FEATURE_FILES, find_inter_file, read_feature, read_id_mapping, read_inter, read_items_table

SPLITS = {"train": 0, "valid": 1, "test": 2}


@dataclass
class RecDataset:
    """An implicit-feedback dataset in MMRec's layout, held in memory.

    Attributes:
        name: dataset name (the stem of the ``.inter`` file).
        n_users: ``max(userID) + 1``.
        n_items: ``max(itemID) + 1``.
        train, valid, test: interaction arrays of shape ``(n, 2)`` holding
            ``[userID, itemID]`` rows (int64).
        path: the folder it was loaded from, if any.
        features: modality name (``"image"``, ``"text"``, ``"mm"``) -> float32
            array of shape ``(n_items, d)``.
        items: the raw-content table (indexed by itemID) if the folder has one.
        user_raw_ids, item_raw_ids: raw IDs (strings) indexed by userID/itemID.
        timestamps: optional ``{"train": ..., ...}`` arrays aligned with the splits.
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    path: Path | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    items: pd.DataFrame | None = None
    user_raw_ids: np.ndarray | None = None
    item_raw_ids: np.ndarray | None = None
    timestamps: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ views
    def split(self, name: str) -> np.ndarray:
        """Return the ``(n, 2)`` interaction array of ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {name!r}")
        return getattr(self, name)

    def interaction_matrix(self, split: str = "train") -> sp.csr_matrix:
        """Binary user x item CSR matrix of one split.

        Shape:
            ``(n_users, n_items)``, float32, duplicates collapsed to 1.
        """
        arr = self.split(split)
        m = sp.csr_matrix(
            (np.ones(len(arr), dtype=np.float32), (arr[:, 0], arr[:, 1])),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def item_popularity(self, split: str = "train") -> np.ndarray:
        """Number of interactions per item in ``split``. Shape: ``(n_items,)``."""
        return np.bincount(self.split(split)[:, 1], minlength=self.n_items)

    def user_degree(self, split: str = "train") -> np.ndarray:
        """Number of interactions per user in ``split``. Shape: ``(n_users,)``."""
        return np.bincount(self.split(split)[:, 0], minlength=self.n_users)

    def feature(self, source: str = "auto") -> tuple[np.ndarray, str]:
        """Pick the content feature a model should use.

        Args:
            source: ``"mm"``, ``"image"``, ``"text"``, ``"image+text"`` or ``"auto"``
                (``mm`` when present, else the L2-normalised concatenation of the
                image and text features that exist).

        Returns:
            ``(feature matrix (n_items, d) float32, the source actually used)``.

        Raises:
            DataError: the requested feature file is missing.
        """
        if source == "auto":
            if "mm" in self.features:
                return self.features["mm"], "mm"
            have = [m for m in ("image", "text") if m in self.features]
            if not have:
                raise DataError(
                    "the dataset has no feature file (image_feat.npy, text_feat.npy or mm_feat.npy)",
                    path=self.path,
                    fix="run `alignrec-lite features DIR` or `alignrec-lite pretrain-ica DIR` first",
                )
            source = "+".join(have)
        parts = source.split("+")
        for part in parts:
            if part not in FEATURE_FILES:
                raise DataError(
                    f"unknown feature source {source!r}",
                    fix="use one of mm, image, text, image+text, auto",
                )
            if part not in self.features:
                raise DataError(
                    f"feature {FEATURE_FILES[part]} is missing",
                    path=self.path,
                    fix=f"create it with `alignrec-lite features` or choose another source "
                    f"(available: {sorted(self.features) or 'none'})",
                )
        if len(parts) == 1:
            return self.features[parts[0]].astype(np.float32, copy=False), source
        return fuse_features([self.features[p] for p in parts]), source

    def stats(self) -> dict:
        """Counts and sparsity, as printed by ``alignrec-lite data check``."""
        n_inter = len(self.train) + len(self.valid) + len(self.test)
        pop = self.item_popularity("train")
        return {
            "name": self.name,
            "users": int(self.n_users),
            "items": int(self.n_items),
            "interactions": int(n_inter),
            "train": int(len(self.train)),
            "valid": int(len(self.valid)),
            "test": int(len(self.test)),
            "sparsity_percent": round(100.0 * (1 - n_inter / max(1, self.n_users * self.n_items)), 4),
            "items_without_train_interactions": int((pop == 0).sum()),
            "features": {k: list(v.shape) for k, v in self.features.items()},
            "has_items_table": self.items is not None,
        }

    def raw_item_id(self, item: np.ndarray | int) -> np.ndarray | str:
        """Map itemIDs to raw IDs (identity strings when there is no mapping)."""
        if self.item_raw_ids is None:
            return np.asarray(item).astype(str) if np.ndim(item) else str(item)
        return self.item_raw_ids[item]

    def raw_user_id(self, user: np.ndarray | int) -> np.ndarray | str:
        """Map userIDs to raw IDs (identity strings when there is no mapping)."""
        if self.user_raw_ids is None:
            return np.asarray(user).astype(str) if np.ndim(user) else str(user)
        return self.user_raw_ids[user]

    def image_path(self, item: int) -> Path | None:
        """Absolute path of an item's image, if the folder has an items table with images."""
        if self.items is None or "image" not in self.items.columns or self.path is None:
            return None
        rel = self.items.at[int(item), "image"]
        if not isinstance(rel, str) or not rel:
            return None
        return self.path / rel

    def item_text(self, item: int) -> str:
        """An item's text (title etc.) from the items table, or ``""``."""
        if self.items is None or "text" not in self.items.columns:
            return ""
        value = self.items.at[int(item), "text"]
        return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------- loading
def _check_contiguous(ids: np.ndarray, name: str, path: Path) -> int:
    n = int(ids.max()) + 1
    if n > 50_000_000:  # checked before allocating n flags: a stray huge ID must not exhaust memory
        raise DataError(
            f"{name} {n - 1} is implausibly large",
            path=path,
            row=int(np.argmax(ids)) + 2,
            fix=f"re-index {name}s as 0..N-1",
        )
    seen = np.zeros(n, dtype=bool)
    seen[ids] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise DataError(
            f"{name}s are not contiguous: {len(missing)} of 0..{n - 1} never occur (first missing: {int(missing[0])})",
            path=path,
            fix=f"re-index {name}s as 0..N-1 (MMRec sets n = max({name}) + 1)",
        )
    return n


def load_mmrec(
    folder: str | Path,
    *,
    load_features: bool = True,
    allow_cold_users: bool = False,
    drop_cold_users: bool = True,
) -> RecDataset:
    """Load and validate an MMRec dataset folder.

    Args:
        folder: the folder holding ``<name>.inter`` (see the module docstring).
        load_features: also load ``image_feat.npy`` / ``text_feat.npy`` / ``mm_feat.npy``.
        allow_cold_users: accept users that have no training row at all (used by
            cold-start experiments). Otherwise such users are an error.
        drop_cold_users: MMRec's ``filter_out_cod_start_users``: valid/test rows of
            users without training rows are dropped (only relevant when
            ``allow_cold_users`` is True).

    Returns:
        A :class:`RecDataset`.

    Raises:
        DataError: with file, line and fix for any invalid input.
    """
    folder = Path(folder)
    inter_path = find_inter_file(folder)
    df = read_inter(inter_path)
    n_users = _check_contiguous(df["userID"].to_numpy(), "userID", inter_path)
    n_items = _check_contiguous(df["itemID"].to_numpy(), "itemID", inter_path)
    ui = df[["userID", "itemID"]].to_numpy(dtype=np.int64)
    lab = df["x_label"].to_numpy()
    train_users = np.zeros(n_users, dtype=bool)
    train_users[ui[lab == 0, 0]] = True
    if not train_users.all():
        cold = np.flatnonzero(~train_users)
        if not allow_cold_users:
            first_line = int(np.flatnonzero(df["userID"].to_numpy() == cold[0])[0]) + 2
            raise DataError(
                f"{len(cold)} user(s) have no training rows (x_label 0), e.g. userID {int(cold[0])}",
                path=inter_path,
                row=first_line,
                fix="every user needs at least one training interaction; re-split the data "
                "(MMRec's split keeps >= 3 per user) or drop those users",
            )
    keep = np.ones(len(df), dtype=bool)
    if allow_cold_users and drop_cold_users:
        keep = train_users[ui[:, 0]]
    splits = {name: ui[(lab == code) & keep] for name, code in SPLITS.items()}
    timestamps = None
    if "timestamp" in df.columns:
        ts = df["timestamp"].to_numpy(dtype=np.int64)
        timestamps = {name: ts[(lab == code) & keep] for name, code in SPLITS.items()}
    ds = RecDataset(
        name=inter_path.stem,
        n_users=n_users,
        n_items=n_items,
        path=folder.resolve(),
        timestamps=timestamps,
        **splits,
    )
    imap, umap = folder / "i_id_mapping.csv", folder / "u_id_mapping.csv"
    # entry_exists, not Path.exists: a dangling symlink is an error, never "absent"
    if entry_exists(imap):
        ds.item_raw_ids = read_id_mapping(imap, "itemID", n_items)
    if entry_exists(umap):
        ds.user_raw_ids = read_id_mapping(umap, "userID", n_users)
    items = folder / "items.csv"
    if entry_exists(items):
        ds.items = read_items_table(items, n_items)
    if load_features:
        for modality, fname in FEATURE_FILES.items():
            fpath = folder / fname
            if entry_exists(fpath):
                ds.features[modality] = read_feature(fpath, n_items)
    return ds


def check_images(ds: RecDataset, *, max_items: int | None = None) -> int:
    """Open every item image listed in ``items.csv`` and fail on the first unreadable one.

    Returns:
        The number of images checked.
    """
    from PIL import Image, UnidentifiedImageError

    if ds.items is None or "image" not in ds.items.columns:
        return 0
    n = 0
    for item, rel in ds.items["image"].items():
        if max_items is not None and n >= max_items:
            break
        if not isinstance(rel, str) or not rel:
            continue
        p = ds.path / rel
        try:
            if entry_exists(p):  # a missing file is PIL's FileNotFoundError below; a FIFO would block PIL
                check_regular_file(p, f"image of itemID {item}")
        except DataError as exc:
            raise DataError(
                f"image of itemID {item} cannot be read ({exc.message})",
                path=p,
                fix="replace the file with a valid JPEG/PNG or clear the `image` cell in items.csv",
            ) from None
        try:
            with Image.open(p) as im:
                im.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"image of itemID {item} cannot be read ({type(exc).__name__})",
                path=p,
                fix="replace the file with a valid JPEG/PNG or clear the `image` cell in items.csv",
            ) from None
        n += 1
    return n


def format_stats(stats: Mapping) -> str:
    """Human-readable multi-line summary of :meth:`RecDataset.stats`."""
    lines = [
        f"dataset      {stats['name']}",
        f"users        {stats['users']:,}",
        f"items        {stats['items']:,}",
        f"interactions {stats['interactions']:,} "
        f"(train {stats['train']:,} / valid {stats['valid']:,} / test {stats['test']:,})",
        f"sparsity     {stats['sparsity_percent']:.4f} %",
    ]
    if stats.get("items_without_train_interactions"):
        lines.append(f"items with no training interaction: {stats['items_without_train_interactions']:,}")
    feats = stats.get("features") or {}
    lines.append("features     " + (", ".join(f"{k} {tuple(v)}" for k, v in feats.items()) or "none"))
    return "\n".join(lines)
