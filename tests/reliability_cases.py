"""Machinery shared by the bad-input batteries (test_reliability_inputs.py, test_reliability_round2.py).

A :class:`Case` names an entry point, the bad input in words, the error it must raise and
the substrings its message must contain; its ``build(ctx)`` prepares the input in the case's
own folder and returns either a callable (the Python API) or a :class:`Cli` (a command line).
Each battery keeps its own runner, since their checks differ; they share the records, the
registry, the folder snapshot and the in-process command runner.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alignrec_lite.cli import main
from alignrec_lite.data.toy import toy_path
from alignrec_lite.errors import AlignRecError

SMOKE = toy_path("smoke")


@dataclass
class Cli:
    """A command line to run: the handler must raise, ``main`` must print one line and exit 2.

    ``free_memory``: run it as if the machine had only this many bytes free (the memory
    estimates at the door must refuse before any work).
    """

    argv: list[str]
    free_memory: int | None = None


@contextlib.contextmanager
def free_memory(n_bytes: int | None):
    """Make :func:`alignrec_lite.checks.check_memory` see ``n_bytes`` free (nothing when None)."""
    import alignrec_lite.checks.memory as memory

    if n_bytes is None:
        yield
        return
    old = memory.free_memory_bytes
    memory.free_memory_bytes = lambda: n_bytes
    try:
        yield
    finally:
        memory.free_memory_bytes = old


@dataclass
class Case:
    id: str
    entry: str  # the entry point, for the table
    what: str  # the bad input, in words
    error: type[AlignRecError] | None  # None: argparse's own usage error (exit 2)
    where: tuple[str, ...]  # substrings the message must contain: file, "line N", key
    build: Callable[[Ctx], Callable[[], object] | Cli]


class Cases(list):
    """A battery's cases; ``@cases.case(id, entry, what, error, *where)`` registers a builder."""

    def case(self, id: str, entry: str, what: str, error, *where: str):
        def deco(build):
            self.append(Case(id, entry, what, error, where, build))
            return build

        return deco


class Ctx:
    """What a case may use: its own folder, copies of the smoke data and of a finished run."""

    def __init__(self, tmp: Path, run: Path) -> None:
        self.tmp = tmp
        self._run = run

    def smoke(self, name: str = "shop") -> Path:
        dst = self.tmp / name
        shutil.copytree(SMOKE, dst, symlinks=True)
        return dst

    def run(self, name: str = "run") -> Path:
        """A copy of the finished run (its data stays where the run was made)."""
        dst = self.tmp / name
        shutil.copytree(self._run, dst)
        return dst


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``folder`` (hidden ones, links, FIFOs included): mode, size, mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            st = os.lstat(p)
            out[str(p.relative_to(folder))] = (st.st_mode, st.st_size if not p.is_dir() else -1, st.st_mtime_ns)
    return out


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``alignrec-lite argv`` in this process: ``(exit code, stdout, stderr)``."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()
