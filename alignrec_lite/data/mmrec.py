"""MMRec-format dataset folders: load, validate, write.

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

import io as _io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..checks import check_regular_file, entry_exists
from ..errors import DataError
from ..io import atomic_write, save_npy, write_json

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
OPTIONAL_COLUMNS = ("rating", "timestamp")
FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy", "mm": "mm_feat.npy"}
SPLITS = {"train": 0, "valid": 1, "test": 2}
MAX_BYTES_INTER = 4 << 30


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
        blocks = [_l2_rows(self.features[p]) for p in parts]
        return _l2_rows(np.concatenate(blocks, axis=1)), source

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


def _l2_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


# ---------------------------------------------------------------------- loading
def find_inter_file(folder: str | Path) -> Path:
    """Return the single ``*.inter`` file of an MMRec folder."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError("folder does not exist", path=folder, fix="check the path or build the dataset first")
    if not folder.is_dir():
        raise DataError("expected a dataset folder, got a file", path=folder, fix="pass the folder that holds <name>.inter")
    found = sorted(folder.glob("*.inter"))
    if not found:
        raise DataError(
            "no <name>.inter interaction file in the folder",
            path=folder,
            fix="build one with `alignrec-lite data build …` or copy MMRec's <name>.inter here",
        )
    if len(found) > 1:
        raise DataError(
            f"more than one .inter file ({', '.join(p.name for p in found)})",
            path=folder,
            fix="keep exactly one <name>.inter per folder",
        )
    return check_regular_file(found[0], "interaction file")


def read_inter(path: str | Path) -> pd.DataFrame:
    """Read and validate an MMRec ``.inter`` file.

    Returns:
        DataFrame with int64 columns ``userID``, ``itemID``, ``x_label`` and, when
        present, ``rating`` (float64) and ``timestamp`` (int64), in file order.

    Raises:
        DataError: naming the file and line for every kind of malformed input.
    """
    path = check_regular_file(path, "interaction file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", path=path, fix="check permissions") from None
    if not raw.strip():
        raise DataError("the file is empty", path=path, fix="write a header line `userID\\titemID\\tx_label` and one row per interaction")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError("the file is not UTF-8 text", path=path, row=line, fix="save it as UTF-8 tab-separated text") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError("the file contains NUL bytes (a binary or corrupt file)", path=path, row=line, fix="re-create the file")
    text = text.removeprefix("\ufeff")  # a byte-order mark written by some Windows editors
    # One definition of a line for checking *and* parsing: "\n", "\r\n" or "\r" ends it, nothing
    # else (str.splitlines also splits on \x0b, \x1c, \u2028, ..., which pandas does not: rows
    # that passed the checks could be re-read shifted).
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    header = lines[0].split("\t")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = " (the header looks comma-separated; MMRec files use tabs)" if "," in lines[0] and "\t" not in lines[0] else ""
        raise DataError(
            f"missing required column(s) {', '.join(missing)}{hint}; the header is {lines[0][:120]!r}",
            path=path,
            row=1,
            fix="the first line must name the tab-separated columns userID, itemID, x_label "
            "(rating and timestamp are optional)",
        )
    if len(set(header)) != len(header):
        raise DataError("duplicate column names in the header", path=path, row=1, fix="give every column a distinct name")
    n_cols = len(header)
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise DataError("empty line", path=path, row=i, fix="remove blank lines")
        if line.count("\t") != n_cols - 1:
            raise DataError(
                f"expected {n_cols} tab-separated fields, found {line.count(chr(9)) + 1}",
                path=path,
                row=i,
                fix="every row must have one value per header column, separated by tabs",
            )
    if len(lines) < 2:
        raise DataError("the file has a header but no interactions", path=path, fix="add one row per interaction")
    df = pd.read_csv(_io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3, engine="c",
                     lineterminator="\n")
    df.columns = header
    out = pd.DataFrame(index=df.index)
    for col in REQUIRED_COLUMNS:
        out[col] = _int_column(df[col], col, path)
    if "timestamp" in df.columns:
        out["timestamp"] = _int_column(df["timestamp"], "timestamp", path, allow_float=True)
    if "rating" in df.columns:
        vals = pd.to_numeric(df["rating"].str.strip(), errors="coerce")
        bad = ~np.isfinite(vals.to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"rating {df['rating'].iloc[i]!r} is not a number",
                path=path, row=i + 2, fix="ratings must be finite numbers (or drop the column)",
            )
        out["rating"] = vals.astype(float)
    bad = ~out["x_label"].isin([0, 1, 2]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"x_label is {out['x_label'].iloc[i]}, expected 0, 1 or 2",
            path=path, row=i + 2, fix="use 0 = train, 1 = valid, 2 = test",
        )
    dup = out.duplicated(subset=["userID", "itemID"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        u, it = int(out["userID"].iloc[i]), int(out["itemID"].iloc[i])
        first = int(np.flatnonzero(((out["userID"] == u) & (out["itemID"] == it)).to_numpy())[0])
        raise DataError(
            f"duplicate interaction (userID {u}, itemID {it}), first seen on line {first + 2}",
            path=path, row=i + 2, fix="keep one row per (user, item) pair",
        )
    return out


def _int_column(col: pd.Series, name: str, path: Path, allow_float: bool = False) -> pd.Series:
    s = col.str.strip()
    ok = s.str.fullmatch(r"-?[0-9]{1,18}")  # ASCII digits only: \d also matches e.g. Arabic-Indic digits
    if allow_float:
        ok = ok | s.str.fullmatch(r"-?[0-9]{1,18}\.0*")
    ok = ok.to_numpy(dtype=bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{name} {col.iloc[i]!r} is not an integer",
            path=path, row=i + 2, fix=f"{name} values must be whole numbers",
        )
    vals = s.str.replace(r"\.0*$", "", regex=True).astype(np.int64)
    if name in ("userID", "itemID") and (vals < 0).any():
        i = int(np.flatnonzero((vals < 0).to_numpy())[0])
        raise DataError(
            f"{name} {vals.iloc[i]} is negative",
            path=path, row=i + 2, fix="IDs are 0-based non-negative integers; re-index them from 0",
        )
    return vals


def _check_contiguous(ids: np.ndarray, name: str, path: Path) -> int:
    n = int(ids.max()) + 1
    if n > 50_000_000:  # checked before allocating n flags: a stray huge ID must not exhaust memory
        raise DataError(f"{name} {n - 1} is implausibly large", path=path, row=int(np.argmax(ids)) + 2,
                        fix=f"re-index {name}s as 0..N-1")
    seen = np.zeros(n, dtype=bool)
    seen[ids] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise DataError(
            f"{name}s are not contiguous: {len(missing)} of 0..{n - 1} never occur "
            f"(first missing: {int(missing[0])})",
            path=path,
            fix=f"re-index {name}s as 0..N-1 (MMRec sets n = max({name}) + 1)",
        )
    return n


def read_id_mapping(path: Path, id_col: str, n: int) -> np.ndarray:
    """Read ``i_id_mapping.csv`` / ``u_id_mapping.csv`` into an array of raw IDs.

    Args:
        path: the tab-separated file (header ``<raw name>\\t<id_col>``).
        id_col: ``"itemID"`` or ``"userID"``.
        n: the number of IDs the interaction file implies.

    Returns:
        Object array of raw-ID strings of length ``n``, indexed by the integer ID.
    """
    check_regular_file(path, "mapping file")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"cannot parse the mapping ({type(exc).__name__})", path=path,
                        fix="it must be tab-separated with a header: raw_id<TAB>" + id_col) from None
    if id_col not in df.columns or len(df.columns) != 2:
        raise DataError(
            f"expected two tab-separated columns, one named {id_col}; found {list(df.columns)[:5]}",
            path=path, row=1, fix=f"write the header as `<raw id name>\\t{id_col}`",
        )
    raw_col = [c for c in df.columns if c != id_col][0]
    ids = _int_column(df[id_col], id_col, path)
    if len(df) != n or set(ids.tolist()) != set(range(n)):
        raise DataError(
            f"the mapping has {len(df)} rows but the interaction file has {n} {id_col}s (0..{n - 1})",
            path=path, fix="regenerate the mapping together with the .inter file",
        )
    dup = df[raw_col].duplicated(keep="first").to_numpy()
    if dup.any():  # two IDs sharing one raw ID would label two items (users) alike in every export
        i = int(np.flatnonzero(dup)[0])
        raw = df[raw_col].iloc[i]
        first = int(np.flatnonzero((df[raw_col] == raw).to_numpy())[0])
        raise DataError(f"raw ID {raw!r} is given to two {id_col}s ({ids.iloc[first]} on line {first + 2} "
                        f"and {ids.iloc[i]})", path=path, row=i + 2,
                        fix="every raw ID must map to exactly one " + id_col + "; regenerate the mapping")
    out = np.empty(n, dtype=object)
    out[ids.to_numpy()] = df[raw_col].to_numpy()
    return out


def read_feature(path: Path, n_items: int) -> np.ndarray:
    """Load and validate one feature file (``allow_pickle=False``).

    Returns:
        float32 array of shape ``(n_items, d)``.

    Raises:
        DataError: unreadable, pickled, not 2-D numeric, wrong row count, NaN or inf.
    """
    check_regular_file(path, "feature file")
    try:
        # memory-mapped first: the shape in a damaged or hostile header is checked against the
        # file size before anything is allocated; the data is copied only after validation
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        if "Python objects" in str(exc) or ("pickle" in str(exc) and _head(path, 1) == b"\x80"):
            msg = "it holds Python objects (pickle), which the kit never loads"
        elif "pickle" in str(exc):  # numpy's word for "not .npy, not .npz"
            msg = "not a .npy file (it does not start with the .npy signature)"
        elif "greater than file size" in str(exc):
            msg = "the file is shorter than its header says (truncated: an interrupted save or download?)"
        else:
            msg = f"not a valid .npy file ({exc})"
        raise DataError(msg, path=path, fix="save a numeric array with np.save(path, array.astype('float32'))") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"not a valid .npy file ({type(exc).__name__}: {exc})", path=path,
                        fix="re-create it; the file may be truncated") from None
    except Exception as exc:  # noqa: BLE001 - a damaged header also raises SyntaxError, tokenize.TokenError, ...
        raise DataError(f"not a valid .npy file (damaged header: {type(exc).__name__})", path=path,
                        fix="re-create it with np.save(path, array.astype('float32'))") from None
    if not isinstance(arr, np.ndarray):
        raise DataError("expected a single .npy array, found an archive", path=path, fix="save with np.save, not np.savez")
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D array (n_items, d), got shape {arr.shape}", path=path,
                        fix="save one row per itemID")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"expected numbers, got dtype {arr.dtype}", path=path, fix="save a float32 array")
    if arr.shape[0] != n_items:
        raise DataError(
            f"has {arr.shape[0]} rows but the dataset has {n_items} items",
            path=path, fix="row i must be the feature of itemID i; re-extract the features for this folder",
        )
    if arr.shape[1] == 0:
        raise DataError("has zero columns", path=path, fix="re-extract the features")
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > 4:
        with np.errstate(all="ignore"):  # |x| > 3.4e38 would become inf with a RuntimeWarning
            too_big = (np.abs(arr) > np.finfo(np.float32).max) & np.isfinite(arr)
        if too_big.any():
            i = int(np.flatnonzero(too_big.any(axis=1))[0])
            raise DataError(f"row {i} (itemID {i}) holds values too large for float32 (|x| > 3.4e38)",
                            path=path, row=f"itemID {i}",
                            fix="rescale the features (e.g. L2-normalise the rows) and save them as float32")
    arr = np.array(arr, dtype=np.float32)  # a plain in-memory copy; the file is closed
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"row {i} (itemID {i}) contains NaN or inf ({int((~finite).sum())} bad rows in all)",
            path=path, row=f"itemID {i}", fix="re-extract the features or replace missing items by the mean vector, as MMRec does",
        )
    return arr


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def read_items_table(path: Path, n_items: int) -> pd.DataFrame:
    """Load ``items.csv`` (raw content), indexed by itemID."""
    check_regular_file(path, "items table")
    try:
        df = pd.read_csv(path, dtype={"itemID": str, "raw_id": str, "text": str, "image": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"cannot parse the items table ({type(exc).__name__})", path=path,
                        fix="it must be a CSV with columns itemID, raw_id, text, image") from None
    if "itemID" not in df.columns:
        raise DataError("missing column itemID", path=path, row=1, fix="the header must include itemID")
    ids = _int_column(df["itemID"].astype(str), "itemID", path)  # 1.5 must not silently become 1
    if len(df) != n_items or set(ids.tolist()) != set(range(n_items)):
        raise DataError(
            f"expected one row per itemID 0..{n_items - 1}, found {len(df)} rows",
            path=path, fix="rebuild the dataset so items.csv matches the .inter file",
        )
    df["itemID"] = ids
    return df.set_index("itemID").sort_index()


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
                path=inter_path, row=first_line,
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
            raise DataError(f"image of itemID {item} cannot be read ({exc.message})", path=p,
                            fix="replace the file with a valid JPEG/PNG or clear the `image` cell in items.csv") from None
        try:
            with Image.open(p) as im:
                im.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"image of itemID {item} cannot be read ({type(exc).__name__})",
                path=p, fix="replace the file with a valid JPEG/PNG or clear the `image` cell in items.csv",
            ) from None
        n += 1
    return n


# ---------------------------------------------------------------------- writing
def write_mmrec_files(
    folder: str | Path,
    *,
    name: str,
    inter: pd.DataFrame,
    user_raw_ids: Iterable[str] | None = None,
    item_raw_ids: Iterable[str] | None = None,
    raw_id_names: tuple[str, str] = ("user_id", "item_id"),
    items: pd.DataFrame | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    card: Mapping | None = None,
) -> None:
    """Write the files of an MMRec folder into an existing (usually temporary) folder.

    Use it inside :func:`alignrec_lite.io.atomic_dir` so that a failure leaves nothing
    behind. Each file is itself written atomically.

    Args:
        folder: destination folder (must exist).
        name: dataset name; the interaction file is ``<name>.inter``.
        inter: DataFrame with ``userID``, ``itemID``, ``x_label`` and optionally
            ``rating``, ``timestamp``.
        user_raw_ids, item_raw_ids: raw IDs indexed by userID / itemID.
        raw_id_names: header names of the raw-ID columns in the two mapping files.
        items: raw-content table with an ``itemID`` column (or index).
        features: ``{"image"|"text"|"mm": (n_items, d) array}``.
        card: the dataset card, written as ``dataset.json``.
    """
    folder = Path(folder)
    cols = [c for c in ("userID", "itemID", "rating", "timestamp", "x_label") if c in inter.columns]
    with atomic_write(folder / f"{name}.inter", newline="") as fh:
        inter[cols].to_csv(fh, sep="\t", index=False, lineterminator="\n")
    if user_raw_ids is not None:
        _write_mapping(folder / "u_id_mapping.csv", raw_id_names[0], "userID", list(user_raw_ids))
    if item_raw_ids is not None:
        _write_mapping(folder / "i_id_mapping.csv", raw_id_names[1], "itemID", list(item_raw_ids))
    if items is not None:
        table = items.reset_index() if "itemID" not in items.columns else items
        with atomic_write(folder / "items.csv", newline="") as fh:
            table.to_csv(fh, index=False, lineterminator="\n")
    for modality, arr in (features or {}).items():
        save_npy(folder / FEATURE_FILES[modality], np.asarray(arr, dtype=np.float32))
    if card is not None:
        write_json(folder / "dataset.json", dict(card))


def _write_mapping(path: Path, raw_name: str, id_name: str, raw: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, r in enumerate(map(str, raw)):  # the reader refuses a raw ID given to two IDs: never write one
        if seen.setdefault(r, i) != i:
            raise DataError(f"raw ID {r!r} is given to two {id_name}s ({seen[r]} and {i})", path=path,
                            fix="every raw ID must map to exactly one " + id_name)
    with atomic_write(path, newline="") as fh:
        fh.write(f"{raw_name}\t{id_name}\n")
        for i, r in enumerate(raw):
            r = str(r)
            if "\t" in r or "\n" in r or "\r" in r:  # they would split the row when read back
                raise DataError(f"raw ID {r!r} contains a tab or line break", path=path, fix="clean the raw IDs")
            fh.write(f"{r}\t{i}\n")


def read_card(folder: str | Path) -> dict:
    """Return ``dataset.json`` of a folder, or ``{}`` when there is none."""
    p = Path(folder) / "dataset.json"
    if not entry_exists(p):
        return {}
    check_regular_file(p, "dataset card")
    try:
        card = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON ({exc})", path=p, fix="rebuild the dataset or delete dataset.json") from None
    if not isinstance(card, dict):
        raise DataError(f"expected a JSON object, found a {type(card).__name__}", path=p,
                        fix="rebuild the dataset or delete dataset.json")
    return card


def format_stats(stats: Mapping) -> str:
    """Human-readable multi-line summary of :meth:`RecDataset.stats`."""
    lines = [
        f"dataset      {stats['name']}",
        f"users        {stats['users']:,}",
        f"items        {stats['items']:,}",
        f"interactions {stats['interactions']:,} (train {stats['train']:,} / valid {stats['valid']:,} / test {stats['test']:,})",
        f"sparsity     {stats['sparsity_percent']:.4f} %",
    ]
    if stats.get("items_without_train_interactions"):
        lines.append(f"items with no training interaction: {stats['items_without_train_interactions']:,}")
    feats = stats.get("features") or {}
    lines.append("features     " + (", ".join(f"{k} {tuple(v)}" for k, v in feats.items()) or "none"))
    return "\n".join(lines)

