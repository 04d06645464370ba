"""The files of an MMRec-format folder, one at a time: read and validate each, write them all.

:func:`~alignrec_lite.data.mmrec.load_mmrec` reads a whole folder through these readers
(the format is described in :mod:`alignrec_lite.data.mmrec`); the builders write a folder with
:func:`write_mmrec_files`. Every problem is reported as a :class:`~alignrec_lite.errors.DataError`
naming the file, the line and the fix.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import check_regular_file, entry_exists
from ..errors import DataError
from ..files import atomic_write, read_json, save_npy, write_json

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
OPTIONAL_COLUMNS = ("rating", "timestamp")
FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy", "mm": "mm_feat.npy"}
MAX_BYTES_INTER = 4 << 30


# ---------------------------------------------------------------------- reading
def find_inter_file(folder: str | Path) -> Path:
    """Return the single ``*.inter`` file of an MMRec folder."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError("folder does not exist", path=folder, fix="check the path or build the dataset first")
    if not folder.is_dir():
        raise DataError(
            "expected a dataset folder, got a file", path=folder, fix="pass the folder that holds <name>.inter"
        )
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
        raise DataError(
            "the file is empty",
            path=path,
            fix="write a header line `userID\\titemID\\tx_label` and one row per interaction",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            "the file is not UTF-8 text", path=path, row=line, fix="save it as UTF-8 tab-separated text"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(
            "the file contains NUL bytes (a binary or corrupt file)", path=path, row=line, fix="re-create the file"
        )
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
        hint = (
            " (the header looks comma-separated; MMRec files use tabs)"
            if "," in lines[0] and "\t" not in lines[0]
            else ""
        )
        raise DataError(
            f"missing required column(s) {', '.join(missing)}{hint}; the header is {lines[0][:120]!r}",
            path=path,
            row=1,
            fix="the first line must name the tab-separated columns userID, itemID, x_label "
            "(rating and timestamp are optional)",
        )
    if len(set(header)) != len(header):
        raise DataError(
            "duplicate column names in the header", path=path, row=1, fix="give every column a distinct name"
        )
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
    df = pd.read_csv(
        io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3, engine="c", lineterminator="\n"
    )
    df.columns = header
    out = pd.DataFrame(index=df.index)
    for col in REQUIRED_COLUMNS:
        out[col] = _int_column(df[col], col, path)
    if "timestamp" in df.columns:
        out["timestamp"] = _int_column(df["timestamp"], "timestamp", path, allow_float=True)
    if "rating" in df.columns:
        vals = pd.to_numeric(df["rating"].str.strip(), errors="coerce")
        _refuse_first_bad_line(
            ~np.isfinite(vals.to_numpy(dtype=float)),
            path,
            lambda i: f"rating {df['rating'].iloc[i]!r} is not a number",
            fix="ratings must be finite numbers (or drop the column)",
        )
        out["rating"] = vals.astype(float)
    _refuse_first_bad_line(
        ~out["x_label"].isin([0, 1, 2]).to_numpy(),
        path,
        lambda i: f"x_label is {out['x_label'].iloc[i]}, expected 0, 1 or 2",
        fix="use 0 = train, 1 = valid, 2 = test",
    )
    dup = out.duplicated(subset=["userID", "itemID"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        u, it = int(out["userID"].iloc[i]), int(out["itemID"].iloc[i])
        first = int(np.flatnonzero(((out["userID"] == u) & (out["itemID"] == it)).to_numpy())[0])
        raise DataError(
            f"duplicate interaction (userID {u}, itemID {it}), first seen on line {first + 2}",
            path=path,
            row=i + 2,
            fix="keep one row per (user, item) pair",
        )
    return out


def _int_column(col: pd.Series, name: str, path: Path, allow_float: bool = False) -> pd.Series:
    s = col.str.strip()
    ok = s.str.fullmatch(r"-?[0-9]{1,18}")  # ASCII digits only: \d also matches e.g. Arabic-Indic digits
    if allow_float:
        ok = ok | s.str.fullmatch(r"-?[0-9]{1,18}\.0*")
    _refuse_first_bad_line(
        ~ok.to_numpy(dtype=bool),
        path,
        lambda i: f"{name} {col.iloc[i]!r} is not an integer",
        fix=f"{name} values must be whole numbers",
    )
    vals = s.str.replace(r"\.0*$", "", regex=True).astype(np.int64)
    if name in ("userID", "itemID"):
        _refuse_first_bad_line(
            (vals < 0).to_numpy(),
            path,
            lambda i: f"{name} {vals.iloc[i]} is negative",
            fix="IDs are 0-based non-negative integers; re-index them from 0",
        )
    return vals


def _refuse_first_bad_line(bad: np.ndarray, path: Path, message: Callable[[int], str], *, fix: str) -> None:
    """Raise :class:`DataError` at the first row ``i`` where ``bad`` is true (line ``i + 2``: after the header),
    with ``message(i)`` and ``fix``; nothing when no row is bad."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(message(i), path=path, row=i + 2, fix=fix)


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
        raise DataError(
            f"cannot parse the mapping ({type(exc).__name__})",
            path=path,
            fix="it must be tab-separated with a header: raw_id<TAB>" + id_col,
        ) from None
    if id_col not in df.columns or len(df.columns) != 2:
        raise DataError(
            f"expected two tab-separated columns, one named {id_col}; found {list(df.columns)[:5]}",
            path=path,
            row=1,
            fix=f"write the header as `<raw id name>\\t{id_col}`",
        )
    raw_col = [c for c in df.columns if c != id_col][0]
    ids = _int_column(df[id_col], id_col, path)
    if len(df) != n or set(ids.tolist()) != set(range(n)):
        raise DataError(
            f"the mapping has {len(df)} rows but the interaction file has {n} {id_col}s (0..{n - 1})",
            path=path,
            fix="regenerate the mapping together with the .inter file",
        )
    dup = df[raw_col].duplicated(keep="first").to_numpy()
    if dup.any():  # two IDs sharing one raw ID would label two items (users) alike in every export
        i = int(np.flatnonzero(dup)[0])
        raw = df[raw_col].iloc[i]
        first = int(np.flatnonzero((df[raw_col] == raw).to_numpy())[0])
        raise DataError(
            f"raw ID {raw!r} is given to two {id_col}s ({ids.iloc[first]} on line {first + 2} and {ids.iloc[i]})",
            path=path,
            row=i + 2,
            fix="every raw ID must map to exactly one " + id_col + "; regenerate the mapping",
        )
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
        raise DataError(
            msg, path=path, fix="save a numeric array with np.save(path, array.astype('float32'))"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(
            f"not a valid .npy file ({type(exc).__name__}: {exc})",
            path=path,
            fix="re-create it; the file may be truncated",
        ) from None
    except Exception as exc:
        raise DataError(
            f"not a valid .npy file (damaged header: {type(exc).__name__})",
            path=path,
            fix="re-create it with np.save(path, array.astype('float32'))",
        ) from None
    if not isinstance(arr, np.ndarray):
        raise DataError(
            "expected a single .npy array, found an archive", path=path, fix="save with np.save, not np.savez"
        )
    if arr.ndim != 2:
        raise DataError(
            f"expected a 2-D array (n_items, d), got shape {arr.shape}", path=path, fix="save one row per itemID"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"expected numbers, got dtype {arr.dtype}", path=path, fix="save a float32 array")
    if arr.shape[0] != n_items:
        raise DataError(
            f"has {arr.shape[0]} rows but the dataset has {n_items} items",
            path=path,
            fix="row i must be the feature of itemID i; re-extract the features for this folder",
        )
    if arr.shape[1] == 0:
        raise DataError("has zero columns", path=path, fix="re-extract the features")
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > 4:
        with np.errstate(all="ignore"):  # |x| > 3.4e38 would become inf with a RuntimeWarning
            too_big = (np.abs(arr) > np.finfo(np.float32).max) & np.isfinite(arr)
        if too_big.any():
            i = int(np.flatnonzero(too_big.any(axis=1))[0])
            raise DataError(
                f"row {i} (itemID {i}) holds values too large for float32 (|x| > 3.4e38)",
                path=path,
                row=f"itemID {i}",
                fix="rescale the features (e.g. L2-normalise the rows) and save them as float32",
            )
    arr = np.array(arr, dtype=np.float32)  # a plain in-memory copy; the file is closed
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"row {i} (itemID {i}) contains NaN or inf ({int((~finite).sum())} bad rows in all)",
            path=path,
            row=f"itemID {i}",
            fix="re-extract the features or replace missing items by the mean vector, as MMRec does",
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
        raise DataError(
            f"cannot parse the items table ({type(exc).__name__})",
            path=path,
            fix="it must be a CSV with columns itemID, raw_id, text, image",
        ) from None
    if "itemID" not in df.columns:
        raise DataError("missing column itemID", path=path, row=1, fix="the header must include itemID")
    ids = _int_column(df["itemID"].astype(str), "itemID", path)  # 1.5 must not silently become 1
    if len(df) != n_items or set(ids.tolist()) != set(range(n_items)):
        raise DataError(
            f"expected one row per itemID 0..{n_items - 1}, found {len(df)} rows",
            path=path,
            fix="rebuild the dataset so items.csv matches the .inter file",
        )
    df["itemID"] = ids
    return df.set_index("itemID").sort_index()


def read_card(folder: str | Path) -> dict:
    """Return ``dataset.json`` of a folder, or ``{}`` when there is none."""
    p = Path(folder) / "dataset.json"
    if not entry_exists(p):
        return {}
    card = read_json(p, "dataset card", fix="rebuild the dataset or delete dataset.json")
    if not isinstance(card, dict):
        raise DataError(
            f"expected a JSON object, found a {type(card).__name__}",
            path=p,
            fix="rebuild the dataset or delete dataset.json",
        )
    return card


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

    Use it inside :func:`alignrec_lite.files.atomic_dir` so that a failure leaves nothing
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
            raise DataError(
                f"raw ID {r!r} is given to two {id_name}s ({seen[r]} and {i})",
                path=path,
                fix="every raw ID must map to exactly one " + id_name,
            )
    with atomic_write(path, newline="") as fh:
        fh.write(f"{raw_name}\t{id_name}\n")
        for i, r in enumerate(raw):
            r = str(r)
            if "\t" in r or "\n" in r or "\r" in r:  # they would split the row when read back
                raise DataError(f"raw ID {r!r} contains a tab or line break", path=path, fix="clean the raw IDs")
            fh.write(f"{r}\t{i}\n")
