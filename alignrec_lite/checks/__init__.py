"""Checks at the door: numbers, paths, files, memory, locks and data fingerprints.

Everything here runs *before* a command or API call starts its work, so bad
input ends in one :class:`~alignrec_lite.errors.AlignRecError` (one line naming
the flag, key or file and the fix) and nothing on disk changes (issue 16):

* :func:`check_int`, :func:`check_float` — a typed value inside a range with sane
  upper bounds (a ``bool`` is never a number, NaN/inf never pass);
* :func:`check_out_file`, :func:`check_out_dir` — an output path whose parent is a
  writable folder and which is not itself a folder (file) or a file (folder);
* :func:`check_regular_file`, :func:`entry_exists` — a path that is a folder, a
  dangling or looping symlink, a FIFO or device, or unreadable, is named and
  refused (a FIFO would block a reader forever);
* :func:`check_memory` (:mod:`.memory`) — an estimate of what a setting will allocate,
  refused with the estimate and the machine's free memory when it cannot fit;
* :func:`out_lock` — a lock file beside an output folder, so a second writer
  fails at once (locks of dead processes are taken over);
* :func:`dataset_fingerprint` — hashes of what a run was trained on.
"""

from __future__ import annotations

import errno
import hashlib
import math
import numbers
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .memory import (
    ESTIMATES,
    WORKING_MEMORY,
    GiB,
    MiB,
    activation_bytes,
    check_batched_memory,
    check_memory,
    estimate_extraction_bytes,
    estimate_feature_eval_bytes,
    estimate_stage1_bytes,
    estimate_training_bytes,
    format_bytes,
    free_memory_bytes,
    rss_bytes,
)


# ---------------------------------------------------------------------- numbers
def check_int(value: Any, name: str, lo: int, hi: int, *, example: Any = None) -> int:
    """``value`` as an ``int`` in ``lo..hi``, else :class:`ConfigError` naming ``name``.

    Accepts Python/NumPy integers and integral floats (``2.0``); refuses ``bool``,
    fractions, NaN, inf and text.

    >>> check_int(3, "k", 1, 10)
    3
    """
    example = lo if example is None else example
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise ConfigError(f"expected a whole number, got {value!r}", row=name, fix=f"e.g. {name} {example}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or not f.is_integer():
            raise ConfigError(f"expected a whole number, got {value!r}", row=name, fix=f"e.g. {name} {example}")
        v = int(f)
    if not lo <= v <= hi:
        raise ConfigError(f"must be a whole number in {lo} .. {hi}, got {v}", row=name, fix=f"e.g. {name} {example}")
    return v


def check_float(
    value: Any, name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, example: Any = None
) -> float:
    """``value`` as a finite ``float`` in the range, else :class:`ConfigError` naming ``name``.

    >>> check_float(0.5, "share", 0, 1, lo_open=True, hi_open=True)
    0.5
    """
    example = lo if example is None else example
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise ConfigError(f"expected a number, got {value!r}", row=name, fix=f"e.g. {name} {example}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"must be a finite number, got {v}", row=name, fix=f"e.g. {name} {example}")
    too_low = v <= lo if lo_open else v < lo
    too_high = v >= hi if hi_open else v > hi
    if too_low or too_high:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"must be in {rng}, got {v:g}", row=name, fix=f"e.g. {name} {example}")
    return v


# ---------------------------------------------------------------------- reading
def entry_exists(path: str | Path) -> bool:
    """Whether anything is at ``path``: a file, a folder or a symlink (even a dangling one).

    ``Path.exists`` follows links, so a dangling ``i_id_mapping.csv`` would look
    "absent" and the data would silently load without its raw IDs.
    """
    return os.path.lexists(path)


def check_regular_file(path: str | Path, what: str = "file", *, error: type = DataError) -> Path:
    """Refuse anything but a readable regular file, without opening it (a FIFO would block).

    Raises:
        DataError (or ``error``): missing, a folder, a dangling or looping symlink,
        a FIFO/socket/device, or unreadable.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(
                f"the {what} is a dangling symlink (it points to {os.readlink(path)!r}, which does not exist)",
                path=path,
                fix="restore the file it points to, or replace the link by the file",
            ) from None
        raise error(f"the {what} does not exist", path=path, fix="check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"the {what} is a symlink that loops", path=path, fix="replace the link by the file") from None
        raise error(
            f"cannot read the {what} ({exc.strerror})", path=path, fix="check the path and permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"expected a {what}, found a folder", path=path, fix=f"put the {what} there, not a folder")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise error(
            f"expected a regular {what}, found {kind}",
            path=path,
            fix="replace it by a regular file (the kit never reads from pipes or devices)",
        )
    if not os.access(path, os.R_OK):
        raise error(f"the {what} is not readable (permission denied)", path=path, fix="check its permissions")
    return path


# ---------------------------------------------------------------------- writing
def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_parent(path: Path, flag: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    anc = _nearest_existing(parent)
    if anc.is_symlink() and not anc.exists():
        raise ConfigError(f"{anc} is a dangling symlink", path=path, row=flag, fix="choose another output path")
    if not anc.is_dir():
        raise ConfigError(
            f"its parent {anc} is a file, not a folder",
            path=path,
            row=flag,
            fix="choose an output path inside a folder",
        )
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the folder {anc} is not writable", path=path, row=flag, fix="choose a folder you can write to"
        )


def check_out_file(path: str | Path, flag: str = "--out", *, suffixes: tuple[str, ...] | None = None) -> Path:
    """An output *file*: the right suffix, not a folder, inside a writable folder.

    The file itself may exist (it is replaced atomically when the command succeeds).
    """
    path = Path(path)
    if suffixes is not None and path.suffix not in suffixes:
        raise ConfigError(
            f"unsupported output type {path.suffix!r}", row=flag, fix=f"use a {' or '.join(suffixes)} file name"
        )
    if path.is_dir():
        raise ConfigError(
            "the output path is an existing folder",
            path=path,
            row=flag,
            fix=f"give a file name inside it, e.g. {flag} {path / ('out' + (suffixes[0] if suffixes else path.suffix))}",  # noqa: E501
        )
    if os.path.lexists(path) and not path.is_file():
        raise ConfigError(
            "the output path exists and is not a regular file",
            path=path,
            row=flag,
            fix="remove it or choose another name",
        )
    _check_parent(path, flag)
    return path


def check_out_dir(path: str | Path, flag: str = "--out", *, what: str = "output folder") -> Path:
    """An output *folder*: not an existing file, inside a writable folder (created if missing)."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(
            f"the {what} is an existing file",
            path=path,
            row=flag,
            fix=f"pass a folder name for the {what.split()[0]} (it is created if missing)",
        )
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the {what} is not writable", path=path, row=flag, fix="choose a folder you can write to"
            )
        _check_parent(path, flag)  # the swap of --overwrite renames inside the parent
        return path
    _check_parent(path, flag)
    return path


# ---------------------------------------------------------------------- fingerprints
def _hash_array(h: Any, arr: np.ndarray | None) -> None:
    if arr is None:
        h.update(b"none")
        return
    arr = np.asarray(arr)
    if arr.dtype == object:
        h.update("\x00".join(map(str, arr.tolist())).encode("utf-8", "surrogatepass"))
    else:
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))


def dataset_fingerprint(dataset: Any) -> dict[str, str]:
    """SHA-256 (16 hex digits) of each part of a dataset a model depends on.

    Keys: ``interactions`` (the ``.inter`` splits and sizes), ``user_ids`` and
    ``item_ids`` (the mappings), and one per feature file (``image``, ``text``,
    ``mm``). Two loads of unchanged files give the same fingerprint; any change to
    those files (or a feature file appearing or disappearing) changes it.
    """
    out: dict[str, str] = {}
    h = hashlib.sha256(f"{int(dataset.n_users)}x{int(dataset.n_items)}".encode())
    for split in (dataset.train, dataset.valid, dataset.test):
        _hash_array(h, np.asarray(split, dtype=np.int64))
    out["interactions"] = h.hexdigest()[:16]
    for key, arr in (("user_ids", dataset.user_raw_ids), ("item_ids", dataset.item_raw_ids)):
        h = hashlib.sha256()
        _hash_array(h, arr)
        out[key] = h.hexdigest()[:16]
    for name in sorted(getattr(dataset, "features", {}) or {}):
        h = hashlib.sha256()
        _hash_array(h, np.asarray(dataset.features[name], dtype=np.float32))
        out[f"{name}_features"] = h.hexdigest()[:16]
    return out


PART_FILES = {
    "interactions": "the .inter file",
    "user_ids": "u_id_mapping.csv",
    "item_ids": "i_id_mapping.csv",
    "image_features": "image_feat.npy",
    "text_features": "text_feat.npy",
    "mm_features": "mm_feat.npy",
}


def fingerprint_changes(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The parts (as file names) that differ between two fingerprints."""
    keys = sorted(set(recorded) | set(now))
    return [PART_FILES.get(k, k) for k in keys if recorded.get(k) != now.get(k)]


# ---------------------------------------------------------------------- API arguments
def check_users(users: Any, n_users: int, name: str = "users") -> np.ndarray:
    """A 1-D array of userIDs in ``0..n_users-1`` (no bools, fractions or negatives)."""
    return check_ids(users, n_users, name, what="userID", example="users=[0, 1, 2]")


def check_item_ids(items: Any, n_items: int, name: str = "items") -> np.ndarray:
    """A 1-D array of itemIDs in ``0..n_items-1`` (no bools, fractions, text or negatives)."""
    return check_ids(items, n_items, name, what="itemID", example=f"{name}=[0, 1, 2]")


def check_ids(values: Any, n: int, name: str, *, what: str, example: str) -> np.ndarray:
    """A 1-D ``int64`` array of IDs in ``0..n-1``, else :class:`ConfigError` naming ``name``.

    Integral floats (``2.0``) are accepted; ``bool``, fractions, NaN, text and IDs
    outside the range are refused (NumPy would truncate ``2.5`` to 2, and ``-1``
    would index the last row).
    """
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise ConfigError(
            f"{name} must be a 1-D list of {what}s ({exc})", row=name, fix=f"pass e.g. {example}"
        ) from None
    if arr.ndim != 1:
        raise ConfigError(
            f"{name} must be a 1-D list of {what}s, got shape {arr.shape}", row=name, fix=f"pass e.g. {example}"
        )
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all():
            arr = arr.astype(np.int64)
        else:
            raise ConfigError(
                f"{name} must hold integer {what}s, got dtype {arr.dtype}",
                row=name,
                fix=f"{what}s are 0..{n - 1}",
            )
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise ConfigError(
            f"{name} holds {what} {int(arr[bad][0])}, outside 0..{n - 1}",
            row=name,
            fix=f"{what}s are 0..{n - 1}",
        )
    return arr


__all__ = [
    "check_int",
    "check_float",
    "entry_exists",
    "check_regular_file",
    "check_out_file",
    "check_out_dir",
    "free_memory_bytes",
    "check_memory",
    "check_batched_memory",
    "rss_bytes",
    "activation_bytes",
    "estimate_training_bytes",
    "estimate_extraction_bytes",
    "estimate_feature_eval_bytes",
    "estimate_stage1_bytes",
    "ESTIMATES",
    "WORKING_MEMORY",
    "GiB",
    "MiB",
    "format_bytes",
    "dataset_fingerprint",
    "fingerprint_changes",
    "check_users",
    "check_item_ids",
    "check_ids",
]


# ---------------------------------------------------------------------- training
def check_train_inputs(
    dataset: Any, model: Any, overrides: Any, out: Any, *, cfg: Mapping[str, Any] | None = None
) -> None:
    """What :func:`alignrec_lite.train.train` checks before any work.

    Without ``cfg``: argument types, empty valid/test splits, the output folder.
    With the resolved ``cfg``: the memory estimate of those settings.

    Raises:
        ConfigError, DataError: naming the argument, split or setting and the fix.
    """
    from ..data.mmrec import RecDataset

    if cfg is not None:
        need, key = estimate_training_bytes(dataset, cfg)
        check_memory(
            need,
            f"training {cfg.get('model', model)} on {int(dataset.n_users):,} users x "
            f"{int(dataset.n_items):,} items with these settings",
            row=key,
            fix=f"lower {key} (--set {key}=...) or use a machine with more memory",
        )
        return
    if not isinstance(dataset, RecDataset):
        raise ConfigError(
            f"dataset must be a RecDataset, got {type(dataset).__name__}",
            row="dataset",
            fix="load one with load_mmrec(DIR) or load_toy()",
        )
    if not isinstance(model, str):
        raise ConfigError(f"model must be a model name, got {model!r}", row="model", fix="e.g. model='lightgcn'")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(
            f"overrides must be a dict of settings, got {type(overrides).__name__}",
            row="overrides",
            fix="e.g. {'epochs': 50}",
        )
    for split, label in (("valid", 1), ("test", 2)):
        if len(getattr(dataset, split)) == 0:
            raise DataError(
                f"the {split} split is empty (no rows with x_label {label}): early stopping and the "
                f"reported metrics would be measured on nothing",
                path=dataset.path,
                row=f"x_label {label}",
                fix="re-split the data so that users have valid and test rows (MMRec: 8/1/1 per user)",
            )
    if out is not None:
        check_out_dir(out, "--out", what="run folder")


# ---------------------------------------------------------------------- evaluation and export
def check_ks(ks: Any, name: str = "ks") -> tuple[int, ...]:
    """A non-empty sequence of whole numbers in ``1..100000``."""
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ConfigError(f"{name} must be a list of cut-offs, got {ks!r}", row=name, fix="e.g. ks=(10, 20)")
    out = tuple(check_int(k, name, 1, 100000, example=20) for k in ks)
    if not out:
        raise ConfigError(f"{name} is empty", row=name, fix="e.g. ks=(10, 20)")
    return out


def check_evaluate_args(
    dataset: Any, split: Any, ks: Any, batch_users: Any, users: Any, round_to: Any = None
) -> tuple[tuple[int, ...], int, np.ndarray | None]:
    """What :func:`alignrec_lite.evaluate.evaluate` checks first; returns ``(ks, batch_users, users)``."""
    if split not in ("valid", "test"):
        raise ConfigError(
            f"split must be 'valid' or 'test', got {split!r}",
            row="split",
            fix="evaluate on split='valid' (model choice) or split='test' (the report); "
            "training items are masked, so 'train' cannot be measured",
        )
    ks = check_ks(ks)
    batch_users = check_int(batch_users, "batch_users", 1, 10**7, example=1024)
    if round_to is not None:
        check_int(round_to, "round_to", 0, 17, example=4)
    if users is not None:
        users = check_users(users, int(dataset.n_users))
    elif len(dataset.split(split)) == 0:
        raise DataError(
            f"the {split} split is empty: there is nothing to measure",
            path=dataset.path,
            row=f"x_label {1 if split == 'valid' else 2}",
            fix="re-split the data so that users have valid and test rows (MMRec: 8/1/1 per user)",
        )
    return ks, batch_users, users


def check_export_args(dataset: Any, k: Any, batch_users: Any, users: Any) -> tuple[int, int, np.ndarray | None]:
    """What top-K export checks first: ``(k, batch_users, users)``, the memory of one score block checked."""
    k = check_int(k, "--k", 1, 100000, example=20)
    batch_users = check_int(batch_users, "--batch-users", 1, 10**7, example=1024)
    if users is not None:
        users = check_users(users, int(dataset.n_users))
    rows = min(batch_users, max(1, int(dataset.n_users)))
    check_memory(
        4.0 * 3 * rows * int(dataset.n_items),
        f"one block of {rows:,} users x {int(dataset.n_items):,} item scores",
        row="--batch-users",
        fix="lower --batch-users (e.g. --batch-users 256)",
    )
    return k, batch_users, users
