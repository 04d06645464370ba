"""Safe archive extraction: a zip unpacked into a folder atomically, members checked one by one.

:func:`extract_zip` refuses members that would land outside the folder (absolute paths, ``..``,
symlinks) and archives that would unpack to more than ``max_bytes``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..errors import DownloadError
from ..files import atomic_dir
from .download import CHUNK


def _member_parts(name: str) -> tuple[str, ...]:
    """Validate one archive member name; return its path components."""
    if "\x00" in name:
        raise ValueError("contains a NUL byte")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise ValueError("is an absolute path")
    parts = tuple(p for p in PurePosixPath(norm).parts if p not in ("", "."))
    if ".." in parts:
        raise ValueError("climbs out of the target folder with '..'")
    return parts


def extract_zip(
    archive: str | Path,
    dest: str | Path,
    *,
    strip_components: int = 0,
    overwrite: bool = False,
    check: Callable[[Path], None] | None = None,
    max_bytes: int = 8 << 30,
) -> Path:
    """Extract a zip archive into ``dest`` safely and atomically.

    Every member name is checked before anything is written: absolute paths,
    ``..`` components and symbolic links are refused. The files are written into
    a temporary folder that replaces ``dest`` only when everything (including
    ``check``) succeeded.

    Args:
        archive: the ``.zip`` file.
        dest: the folder to create.
        strip_components: drop this many leading path components of every member
            (``1`` turns ``ml-latest-small/ratings.csv`` into ``ratings.csv``).
        overwrite: replace an existing ``dest``.
        check: called with the temporary folder before it is renamed; raise to abort.
        max_bytes: refuse archives that expand beyond this size (zip bombs).

    Returns:
        ``dest``.

    Raises:
        DownloadError: not a zip file, an unsafe member, a CRC error or too large.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(
            f"not a readable zip archive ({exc})", path=archive, fix="delete the file and download it again"
        ) from None
    with zf:
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        total = 0
        for info in zf.infolist():
            try:
                parts = _member_parts(info.filename)
            except ValueError as exc:
                raise DownloadError(
                    f"refusing unsafe archive member {info.filename!r}: it {exc}",
                    path=archive,
                    row=info.filename,
                    fix="the archive is corrupt or malicious; download it from the official source",
                ) from None
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise DownloadError(
                    f"refusing archive member {info.filename!r}: it is a symbolic link",
                    path=archive,
                    row=info.filename,
                    fix="the archive is corrupt or malicious; download it from the official source",
                )
            parts = parts[strip_components:]
            if not parts:
                continue
            total += info.file_size
            plan.append((info, parts))
        if total > max_bytes:
            raise DownloadError(
                f"the archive expands to {total:,} bytes (limit {max_bytes:,})",
                path=archive,
                fix="check that this is the right file",
            )
        if dest.exists() and not overwrite:
            raise DownloadError("the target folder already exists", path=dest, fix="delete it or pass overwrite=True")
        with atomic_dir(dest, overwrite=overwrite) as tmp:
            root = tmp.resolve()
            for info, parts in plan:
                target = tmp.joinpath(*parts)
                if not target.resolve().is_relative_to(root):  # belt and braces
                    raise DownloadError(
                        f"refusing archive member {info.filename!r}",
                        path=archive,
                        row=info.filename,
                        fix="download the archive from the official source",
                    )
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "wb") as out:
                        while block := src.read(CHUNK):
                            out.write(block)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise DownloadError(
                        f"archive member {info.filename!r} is corrupt ({exc})",
                        path=archive,
                        row=info.filename,
                        fix="delete the archive and download it again",
                    ) from None
            if check is not None:
                check(tmp)
    return dest


__all__ = ["extract_zip"]
