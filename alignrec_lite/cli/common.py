"""What every ``alignrec-lite`` command shares: the parser, the argument groups and the checks at the door.

* :class:`OneLineParser`, :func:`add_subcommands` and :func:`add_command` (one help text, one
  example per command);
* the argument groups, so that a flag means the same everywhere: :func:`add_dataset`
  (a dataset name or folder, resolved by :func:`alignrec_lite.data.catalog.resolve_dataset`),
  :func:`add_run`, :func:`add_seed`, :func:`add_overwrite`, :func:`add_quiet`,
  :func:`add_device`, :func:`add_preset`, :func:`add_settings`, :func:`add_network`;
* the door: :data:`NUMERIC_FLAGS` (the range of every numeric flag) and
  :data:`OUTPUT_PATHS` (output files and folders), checked by :func:`check_args`
  before a handler runs, so nothing starts with a number out of range.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError

EXIT_INPUT_ERROR = 2
DATASET_HELP = (
    "dataset: toy, toy-smoke, movielens, a name registered with `alignrec-lite data import`, or an MMRec folder"
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong and where to look) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        first = (message.splitlines() or ["invalid arguments"])[0].rstrip(".")
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {first}. Fix: see `{self.prog} --help`\n")


class Subcommands(Protocol):
    """What :func:`add_subcommands` returns (argparse's sub-parser action, which has no public type name)."""

    choices: dict[str, argparse.ArgumentParser]

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one sub-command's parser."""


def add_subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str) -> Subcommands:
    """Give ``parser`` sub-commands (their name is stored in ``args.<dest>``); :func:`subparser` can walk them."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    parser.subcommands = sub  # type: ignore[attr-defined]
    return sub


def add_command(
    sub: Subcommands, name: str, help: str, example: str, *, epilog: str | None = None
) -> argparse.ArgumentParser:
    """Add a sub-command whose help shows ``help`` and an example (or a whole ``epilog``).

    Args:
        sub: the sub-parsers to add to.
        name: the command's name.
        help: one line: what the command does.
        example: one command line (shown under ``example:``).
        epilog: replaces the example block (several examples and notes).
    """
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=epilog if epilog is not None else f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------- argument groups
def add_dataset(p: argparse.ArgumentParser, help: str = DATASET_HELP) -> None:
    """The positional dataset (``args.dir``): any name the catalogue knows, or a folder."""
    p.add_argument("dir", metavar="DATASET", help=help)


def add_run(p: argparse.ArgumentParser) -> None:
    """The positional run folder (``args.run``) written by ``alignrec-lite train --out``."""
    p.add_argument("run", help="run folder written by `train --out`")


def add_seed(p: argparse.ArgumentParser, default: int | None = 0, help: str = "random seed") -> None:
    """``--seed N`` (checked against :data:`NUMERIC_FLAGS`: 0 .. 2**32 - 1)."""
    p.add_argument("--seed", type=int, default=default, help=help if default is None else f"{help} (default {default})")


def add_overwrite(p: argparse.ArgumentParser, help: str = "replace an existing output") -> None:
    """``--overwrite``: replace what is there (the old output is kept until the new one is complete)."""
    p.add_argument("--overwrite", action="store_true", help=help)


def add_quiet(p: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    """``--quiet``: no progress output."""
    p.add_argument("--quiet", action="store_true", help=help)


def add_device(
    p: argparse.ArgumentParser, default: str | None = "auto", help: str = "auto, cpu or cuda (auto: cuda if available)"
) -> None:
    """``--device``: where the work runs."""
    p.add_argument("--device", default=default, help=help)


def add_preset(p: argparse.ArgumentParser) -> None:
    """``--preset``: which tuned preset the training starts from (:func:`alignrec_lite.config.pick_preset`)."""
    p.add_argument(
        "--preset",
        default=None,
        help="tuned preset: auto (the one named like the dataset, the default), "
        "none, or a preset name (see alignrec_lite.config.TUNED_DEFAULTS)",
    )


def add_settings(p: argparse.ArgumentParser, help: str = "override a setting (repeatable)") -> None:
    """``--set KEY=VALUE`` (repeatable): training settings (:mod:`alignrec_lite.config`)."""
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


def add_network(p: argparse.ArgumentParser) -> None:
    """``--timeout``, ``--retries`` and ``--quiet`` of the commands that download."""
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for data (default 30)")
    p.add_argument("--retries", type=int, default=4, help="extra attempts after a network error (default 4)")
    add_quiet(p)


def dataset_folder(args: argparse.Namespace) -> Path:
    """The folder ``args.dir`` names (a folder, toy, movielens or a registered name)."""
    from ..data.catalog import resolve_dataset

    return resolve_dataset(args.dir, progress=not getattr(args, "quiet", False))


def training_overrides(args: argparse.Namespace, flags: tuple[str, ...] = ("seed", "device")) -> dict[str, Any]:
    """The training settings of ``--set`` plus those of ``flags`` (``--seed``, ``--device``) that were given.

    Args:
        args: the parsed command line.
        flags: the flags that are training settings in this command (``search --seed``
            seeds the draw of trials, not the training, so search passes only ``device``).

    Raises:
        ConfigError: a setting given twice (``--seed 3 --set seed=4``).
    """
    from ..config import parse_set_args

    overrides: dict[str, Any] = parse_set_args(getattr(args, "set", None))
    for key in flags:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in overrides:
            raise ConfigError(
                f"{key} is given twice (--{key} and --set {key}=)",
                row=f"--{key}",
                fix=f"keep one of --{key} and --set {key}=...",
            )
        overrides[key] = value
    return overrides


def preset_kw(args: argparse.Namespace) -> dict[str, Any]:
    """``{"preset": ...}`` when ``--preset`` was given (otherwise the library's default, ``"auto"``)."""
    preset = getattr(args, "preset", None)
    return {} if preset is None else {"preset": preset}


def write_table(df: Any, out: str | None) -> None:
    """Write a result table to a ``.csv`` file atomically (nothing when ``out`` is None)."""
    from ..files import atomic_path

    if out is None:
        return
    path = Path(out)
    if path.suffix != ".csv":
        raise ConfigError(f"unsupported table type {path.suffix!r}", row="--out", fix="use a .csv file name")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    print(f"wrote {path}")


# ---------------------------------------------------------------------- checks at the door
#: (kind, low, high, low_open, high_open) of every numeric flag, by command ("*": any command).
#: Checked in :func:`alignrec_lite.cli.main` before a handler runs, so nothing starts with a number out of range.
_I, _F = "int", "float"
NUMERIC_FLAGS: dict[str, dict[str, tuple[str, float, float, bool, bool]]] = {
    "*": {
        "seed": (_I, 0, 2**32 - 1, False, False),
        "timeout": (_F, 0, 86400, True, False),
        "retries": (_I, 0, 100, False, False),
        "workers": (_I, 1, 256, False, False),
        "rate": (_F, 0, 1000, True, False),
        "k": (_I, 1, 100000, False, False),
        "batch_users": (_I, 1, 10**7, False, False),
    },
    "data build amazon": {"k": (_I, 1, 1000, False, False)},
    "timing": {"n_single": (_I, 1, 10**6, False, False)},
    "longtail": {"buckets": (_I, 0, 1000, False, False)},
    "coldstart": {"share": (_F, 0, 1, True, True)},
    "features": {"batch_size": (_I, 1, 65536, False, False)},
    "pretrain-ica": {
        "embed_dim": (_I, 1, 8192, False, False),
        "epochs": (_I, 1, 10**5, False, False),
        "batch_size": (_I, 2, 65536, False, False),
        "lr": (_F, 0, 10, True, False),
        "mask_weight": (_F, 0, 1000, False, False),
        "mask_prob": (_F, 0, 1, False, False),
        "layers": (_I, 1, 64, False, False),
    },
    "evaluate-features": {
        "mask_ratio": (_F, 0, 1, True, False),
        "knn_k": (_I, 1, 10000, False, False),
        "shrink": (_F, 0, 1e12, False, False),
    },
    "search": {"budget": (_I, 1, 10**6, False, False)},
    "tour": {"epochs": (_I, 1, 10**5, False, False)},
}

#: output paths checked before a command starts: flag dest -> "file" (with suffixes), "dir" (may exist)
#: or "new" (a folder replaced only with --overwrite).
OUTPUT_PATHS: dict[str, list[tuple[str, str, tuple[str, ...] | None]]] = {
    "train": [("out", "dir", None)],
    "recommend": [("out", "file", (".csv", ".parquet"))],
    "longtail": [("out", "file", (".csv",))],
    "coldstart": [("out", "file", (".csv",))],
    "search": [("out", "dir", None)],
    "pretrain-ica": [("out", "dir", None)],
    "tour": [("build_dir", "dir", None)],
    "data build toy": [("out", "new", None)],
    "data build movielens": [("out", "new", None)],
    "data build amazon": [("out", "new", None), ("cache", "dir", None)],
    "data download movielens-small": [("out", "new", None), ("cache", "dir", None)],
    "data download posters": [("out", "dir", None)],
    "data import": [("registry", "file", None)],
}


def command_name(args: argparse.Namespace) -> str:
    """``"train"``, ``"data build toy"``, ... of parsed arguments."""
    parts = [getattr(args, "command", None)]
    if parts[0] == "data":
        parts += [getattr(args, a, None) for a in ("data_command", "build_source", "download_source")]
    return " ".join(p for p in parts if isinstance(p, str) and p)


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> None:
    """Range-check every numeric flag and every output path of a parsed command line.

    Raises:
        ConfigError: naming the flag, its range (or the path's problem) and the fix.
    """
    from ..checks import check_float, check_int, check_out_dir, check_out_file

    if parser is None:
        from . import build_parser

        parser = build_parser()
    cmd = command_name(args)
    sub = subparser(parser, cmd.split())
    specs = {**NUMERIC_FLAGS["*"], **NUMERIC_FLAGS.get(cmd, {})}
    for dest, value in sorted(vars(args).items()):
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        kind, lo, hi, lo_open, hi_open = specs.get(dest, (_I if isinstance(value, int) else _F, 0, 10**9, False, False))
        flag = "--" + dest.replace("_", "-")
        example = (
            sub.get_default(dest)
            if sub is not None and sub.get_default(dest) is not None
            else _example(lo, hi, lo_open)
        )
        if kind == _I:
            check_int(value, flag, int(lo), int(hi), example=example)
        else:
            check_float(value, flag, lo, hi, lo_open=lo_open, hi_open=hi_open, example=example)
    for dest, kind, suffixes in OUTPUT_PATHS.get(cmd, []):
        value = getattr(args, dest, None)
        if value is None:
            continue
        flag = "--" + dest.replace("_", "-")
        if kind == "file":
            check_out_file(Path(value).expanduser(), flag, suffixes=suffixes)
        else:
            path = check_out_dir(Path(value).expanduser(), flag)
            if kind == "new" and path.exists() and not getattr(args, "overwrite", False):
                raise ConfigError(
                    "the output folder already exists",
                    path=path,
                    row=flag,
                    fix="pass --overwrite to replace it (the old one is kept until the new one is "
                    "complete), or choose another --out",
                )


def subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser | None:
    """The sub-parser of a command path such as ``["data", "build", "toy"]`` (``None`` if there is none)."""
    for name in path:
        sub: Subcommands | None = getattr(parser, "subcommands", None)
        if sub is None or name not in sub.choices:
            return None
        parser = sub.choices[name]
    return parser


def _example(lo: float, hi: float, lo_open: bool) -> Any:
    if not lo_open:
        return int(lo) if float(lo).is_integer() else lo
    return hi / 2 if hi <= 1 else 1
