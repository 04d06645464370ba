"""The ``alignrec-lite`` command (also ``python -m alignrec_lite``): a thin face over the library.

One module per noun, each with a ``register(sub)`` that adds its commands:

=====================  ==========================================================
:mod:`.data`           ``data build|check|download|import``
:mod:`.train`          ``train``, ``search``, ``evaluate``
:mod:`.features`       ``features``, ``pretrain-ica``, ``evaluate-features``
:mod:`.analyse`        ``longtail``, ``coldstart``
:mod:`.serve`          ``recommend``, ``new-user``, ``new-item``, ``timing``
:mod:`.tour`           ``tour``
=====================  ==========================================================

The argument groups every command shares (dataset names, ``--seed``, ``--quiet``,
``--overwrite``, ``--device`` …) and the checks at the door are in :mod:`.common`.
Every command has ``--help`` with an example. Errors caused by input (bad files,
bad settings) are printed in one or two lines and exit with status 2; nothing
half-written is left behind.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from ..errors import AlignRecError
from . import analyse, data, features, serve, tour, train
from .common import (
    EXIT_INPUT_ERROR,
    NUMERIC_FLAGS,
    OUTPUT_PATHS,
    OneLineParser,
    add_subcommands,
    check_args,
    command_name,
)

#: the command modules, in the order ``--help`` lists them (an import error is an error, never a missing command)
COMMAND_MODULES = (data, train, features, analyse, serve, tour)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: every command of :data:`COMMAND_MODULES`."""
    p = OneLineParser(
        prog="alignrec-lite",
        description="Multimodal recommendation with AlignRec: data, training, evaluation, serving.",
        epilog="example:\n  alignrec-lite data build toy --out data/toy && "
        "alignrec-lite train data/toy --model lightgcn --out runs/lgcn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="store_true", help="print versions and exit")
    sub = add_subcommands(p, "command", "COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ..utils import versions

        print(json.dumps(versions(), indent=2))
        return 0
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT_ERROR
    # numpy/torch warnings are held back: around a kit error they are noise (the error says what matters);
    # after a successful command they are shown as usual
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            check_args(args, parser)
            rc = int(func(args) or 0)
        except AlignRecError as exc:
            return _fail(str(exc))
        except MemoryError:
            return _fail(
                "ran out of memory. Fix: lower the batch sizes (--batch-users, --set eval_batch_users=..., "
                "--set batch_size=...) or embedding_size, or use a machine with more memory"
            )
        except (OSError, RuntimeError) as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            return _fail(full)
        except KeyboardInterrupt:
            print(
                "alignrec-lite: interrupted; finished files are intact, a run can continue with --resume",
                file=sys.stderr,
            )
            return 130
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return rc


def _fail(message: str) -> int:
    print(f"alignrec-lite: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def _disk_full(exc: BaseException) -> str | None:
    """The one-line message for a full disk or quota (``None`` for any other error)."""
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)) or (
        isinstance(exc, RuntimeError) and ("No space left" in str(exc) or "file write failed" in str(exc))
    )
    if not full:
        return None
    where = getattr(exc, "filename", None) or "the output"
    return (
        f"{where}: the disk is full (no space left on device); nothing half-written was kept. "
        "Fix: free disk space or write to another disk (--out)"
    )


__all__ = [
    "COMMAND_MODULES",
    "EXIT_INPUT_ERROR",
    "NUMERIC_FLAGS",
    "OUTPUT_PATHS",
    "OneLineParser",
    "build_parser",
    "check_args",
    "command_name",
    "main",
]
