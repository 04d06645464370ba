"""Files: atomic output (nothing half-written is ever left behind) and checked reading of JSON.

Every file the kit writes (datasets, features, checkpoints, run records,
exports) goes through :func:`atomic_write` or :func:`atomic_dir`: the content is
written to a temporary name in the same folder and renamed into place only when
it is complete, so a killed process leaves the previous version intact.
:func:`read_json` reads a JSON file the kit wrote, refusing anything but a regular file.
:func:`out_lock` keeps two commands from writing to one output folder, and
:func:`staging_dir` / :func:`swap_dir` replace a folder (``--overwrite``) only once the new one is complete
(:func:`replace_dir` does all three).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_regular_file
from .errors import CheckpointError, ConfigError, DataError


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (no window for other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _default_mode(tmp: str | Path, is_dir: bool = False) -> None:
    """Give a temporary file or folder the permissions :func:`open` / ``mkdir`` would.

    ``mkstemp`` / ``mkdtemp`` create 0600 / 0700 entries; renamed into place they
    would make datasets and runs unreadable to the user's group (shared lab
    folders, a JupyterHub), unlike every other file the user creates.
    """
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kw: Any) -> Iterator[Any]:
    """Open a temporary file next to ``path``; rename it to ``path`` on success.

    Args:
        path: the final file name.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kw: passed to :func:`open` (e.g. ``encoding``, ``newline``).

    Yields:
        The open file object. If the block raises, the temporary file is removed
        and ``path`` is left untouched.
    """
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kw) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    For writers that want a file name rather than a file object
    (``torch.save``, ``np.save``, ``DataFrame.to_parquet``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _default_mode(tmp)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        full = isinstance(exc, (OSError, RuntimeError)) and disk_full(path.parent)  # before the unlink frees space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full and not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            # torch and pandas report a full disk as RuntimeError("... unexpected pos ...") and the like
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a whole folder under a temporary name, then swap it into place.

    Args:
        path: the final folder.
        overwrite: replace an existing folder (the old one is kept until the new
            one is complete). If False and ``path`` exists, :class:`FileExistsError`.

    Yields:
        The temporary folder to fill. On an exception it is deleted and ``path``
        is unchanged.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _default_mode(tmp, is_dir=True)
        yield tmp
        swap_dir(tmp, path)  # the old folder is kept until the new one is complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def disk_full(folder: str | Path, margin: int = 64 << 10) -> bool:
    """Whether the filesystem holding ``folder`` has (almost) no space left for an unprivileged writer."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def read_json(path: str | Path, kind: str, *, fix: str, invalid: str = "invalid JSON") -> Any:
    """Parse a JSON file, refusing a folder, FIFO or dangling link with a message naming ``kind``.

    Args:
        path: the file (the caller decides what a missing file means: check
            :func:`~alignrec_lite.checks.entry_exists` first).
        kind: what the file is, for the message (e.g. ``"dataset card"``).
        fix: the fix named when the content is not valid JSON.
        invalid: the message's start when the content is not valid JSON.

    Returns:
        The parsed value (any JSON type: the caller checks its layout).

    Raises:
        DataError: not a regular file, or not valid UTF-8 JSON (``"<invalid> (<reason>)"``).
    """
    check_regular_file(path, kind)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{invalid} ({exc})", path=path, fix=fix) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save a numeric array as ``.npy`` atomically (never pickled)."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_checkpoint_file(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``) with a clear error if it is damaged.

    Checks the zip container's CRCs first: ``torch.load`` does not, so a flipped
    byte would otherwise load silently as wrong weights.

    Raises:
        CheckpointError: missing, damaged or not loadable without pickled code.
    """
    import zipfile

    import torch

    from .errors import CheckpointError

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise CheckpointError(
                    f"checksum mismatch in {bad} (the file is damaged)",
                    path=path,
                    fix="restore the file from a copy or retrain",
                )
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError("checkpoint not found", path=path, fix="train first (alignrec-lite train …)") from None
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"cannot load the checkpoint ({type(exc).__name__})",
            path=path,
            fix="the file is damaged or not a kit checkpoint; retrain or restore it",
        ) from None


# ---------------------------------------------------------------------- locks
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this host (a lock or journal of a dead one is stale)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(out: Path) -> Path:
    """The lock file of an output folder: a hidden file beside it (``.NAME.lock``)."""
    return out.parent / f".{out.name}.lock"


def _read_lock(path: Path) -> tuple[int, str]:
    try:
        text = path.read_text(encoding="utf-8").split()
        return int(text[0]), (text[1] if len(text) > 1 else "")
    except (OSError, ValueError, IndexError):
        return -1, ""


#: locks this process holds: lock file -> the thread that took it (``out_lock(reentrant=True)``)
_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def out_lock(out: str | Path, flag: str = "--out", *, reentrant: bool = False) -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``out`` while a command writes there.

    A second writer to the same folder fails at once with a :class:`CheckpointError`
    naming the process that holds it; the lock of a process that no longer runs
    (same host) is taken over. Leftovers of an interrupted ``--overwrite`` swap are
    repaired while the lock is held.

    Args:
        out: the folder written to.
        flag: the option named in the messages.
        reentrant: when the calling thread already holds this lock (the CLI takes it
            before calling :func:`alignrec_lite.train.train`, which takes it too), go on
            without taking it again; any other holder still refuses.
    """
    out = Path(out)
    path = lock_path(out)
    key = path.absolute()
    if reentrant and _HELD.get(key) == threading.get_ident():
        yield path
        return
    host = socket.gethostname()
    me = f"{os.getpid()} {host}\n"
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid, where = _read_lock(path)
            if (where in ("", host)) and not pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # stale: its process is gone
                continue
            raise CheckpointError(
                f"another process (pid {pid}{' on ' + where if where else ''}) is writing to {out}",
                path=path,
                row=flag,
                fix="wait for it to finish or use another --out; delete the lock file only if that process is gone",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create the lock file ({exc.strerror})",
                path=path,
                row=flag,
                fix="choose an --out in a folder you can write to",
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(me)
        break
    else:
        raise CheckpointError(
            f"cannot take the lock of {out}",
            path=path,
            row=flag,
            fix="delete the lock file if no other command is writing there",
        )
    _HELD[key] = threading.get_ident()
    try:
        recover_swap(out)
        yield path
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            if _read_lock(path)[0] == os.getpid():
                os.unlink(path)


def recover_swap(out: Path) -> None:
    """Repair what a killed :func:`swap_dir` left: restore the old folder, drop half-built ones."""
    parent = out.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{out.name}.old-*"))
    if olds and not os.path.lexists(out):
        os.replace(olds[0], out)
        olds = olds[1:]
    for stale in [*olds, *parent.glob(f".{out.name}.new-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def staging_dir(out: Path) -> Path:
    """Where ``--overwrite`` builds the new run beside the old one."""
    return out.parent / f".{out.name}.new-{os.getpid()}"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or the filesystem cannot (then nothing happened).
    """
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # not supported here: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def swap_dir(new: Path, out: Path) -> None:
    """Put the complete folder ``new`` at ``out``; the old ``out`` is kept until then.

    On Linux the two folders are exchanged in one atomic step, so at every instant
    ``out`` is either the whole old folder or the whole new one. Elsewhere it takes
    two renames; a kill between them leaves ``.NAME.old-PID``, which :func:`recover_swap`
    moves back at the next command on that folder (:func:`out_lock`).
    """
    if os.path.lexists(out):
        if _exchange(new, out):
            shutil.rmtree(new, ignore_errors=True)  # now the old folder
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, out)


@contextlib.contextmanager
def replace_dir(out: str | Path, *, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Build a whole folder beside ``out`` under its lock and swap it into place only when complete.

    What ``--overwrite`` of ``train`` does, for any folder (the dataset builders use it):
    :func:`out_lock` (a second writer fails at once; leftovers of a killed swap are
    repaired), a staging folder :func:`staging_dir`, then :func:`swap_dir`.

    Args:
        out: the final folder.
        overwrite: replace an existing folder.
        flag: the option named in the messages.

    Yields:
        The staging folder to fill. On an exception it is removed and ``out`` is
        unchanged; after a kill the next :func:`out_lock` on ``out`` removes it.

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is False.
        CheckpointError: another process is writing to ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out_lock(out, flag, reentrant=True):
        if os.path.lexists(out) and not overwrite:
            raise ConfigError(
                "the output folder already exists",
                path=out,
                row=flag,
                fix="pass overwrite=True (--overwrite) or choose another folder",
            )
        stage = staging_dir(out)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        try:
            _default_mode(stage, is_dir=True)
            yield stage
            swap_dir(stage, out)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
