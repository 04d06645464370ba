"""The kit's own exceptions.

Every error that user input can cause is raised as an :class:`AlignRecError`
(or a subclass) whose message names *where* the problem is (file, row or key),
*what* was expected and *how* to fix it. The command line prints such errors in
one or two lines and exits with status 2; anything else is a bug in the kit.
"""

from __future__ import annotations

from pathlib import Path


class AlignRecError(Exception):
    """Base class for every error the kit raises on bad input.

    Args:
        message: what is wrong, in one sentence.
        path: the file or folder concerned, if any.
        row: the 1-based line number in the file (an int, rendered "line N"),
            or a key or other location (a str, rendered as given).
        fix: how the user can fix it, in one sentence.

    >>> str(AlignRecError("x_label must be 0, 1 or 2", path="a.inter", row=3,
    ...                   fix="use 0 = train, 1 = valid, 2 = test"))
    'a.inter, line 3: x_label must be 0, 1 or 2. Fix: use 0 = train, 1 = valid, 2 = test'
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.row = row
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
        if self.row is not None:
            label = f"line {self.row}" if isinstance(self.row, int) else f"{self.row}"
            where = f"{where}, {label}" if where else label
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text = f"{text.rstrip('.')}. Fix: {self.fix}"
        return text


class DataError(AlignRecError):
    """A dataset folder, interaction file, feature file or image is invalid."""


class ConfigError(AlignRecError):
    """A configuration key, value or command-line argument is invalid."""


class DownloadError(AlignRecError):
    """A download failed, was refused, or did not match its checksum."""


class CheckpointError(AlignRecError):
    """A checkpoint or run folder is missing, incomplete or incompatible."""
