"""The ``alignrec-lite`` command (also ``python -m alignrec_lite``): a thin face over the library.

Every command has ``--help`` with an example. Errors caused by input (bad files,
bad settings) are printed in one or two lines and exit with status 2; nothing
half-written is left behind.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import AlignRecError, ConfigError

EXIT_INPUT_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong and where to look) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        first = (message.splitlines() or ["invalid arguments"])[0].rstrip(".")
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {first}. Fix: see `{self.prog} --help`\n")


# ---------------------------------------------------------------------- checks at the door
#: (kind, low, high, low_open, high_open) of every numeric flag, by command ("*": any command).
#: Checked in :func:`main` before a handler runs, so nothing starts with a number out of range.
_I, _F = "int", "float"
NUMERIC_FLAGS: dict[str, dict[str, tuple[str, float, float, bool, bool]]] = {
    "*": {"seed": (_I, 0, 2**32 - 1, False, False), "timeout": (_F, 0, 86400, True, False),
          "retries": (_I, 0, 100, False, False), "workers": (_I, 1, 256, False, False),
          "rate": (_F, 0, 1000, True, False), "k": (_I, 1, 100000, False, False),
          "batch_users": (_I, 1, 10**7, False, False)},
    "data build amazon": {"k": (_I, 1, 1000, False, False)},
    "timing": {"n_single": (_I, 1, 10**6, False, False)},
    "longtail": {"buckets": (_I, 0, 1000, False, False)},
    "coldstart": {"share": (_F, 0, 1, True, True)},
    "features": {"batch_size": (_I, 1, 65536, False, False)},
    "pretrain-ica": {"embed_dim": (_I, 1, 8192, False, False), "epochs": (_I, 1, 10**5, False, False),
                     "batch_size": (_I, 2, 65536, False, False), "lr": (_F, 0, 10, True, False),
                     "mask_weight": (_F, 0, 1000, False, False), "mask_prob": (_F, 0, 1, False, False),
                     "layers": (_I, 1, 64, False, False)},
    "evaluate-features": {"mask_ratio": (_F, 0, 1, True, False), "knn_k": (_I, 1, 10000, False, False),
                          "shrink": (_F, 0, 1e12, False, False)},
    "search": {"budget": (_I, 1, 10**6, False, False)},
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
    if parts[0] == "data":  # ("source" is also evaluate-features' --source list)
        parts += [getattr(args, a, None) for a in ("data_command", "source", "download_source")]
    return " ".join(p for p in parts if isinstance(p, str) and p)


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> None:
    """Range-check every numeric flag and every output path of a parsed command line.

    Raises:
        ConfigError: naming the flag, its range (or the path's problem) and the fix.
    """
    from .checks import check_float, check_int, check_out_dir, check_out_file

    cmd = command_name(args)
    sub = _subparser(parser or build_parser(), cmd.split())
    specs = {**NUMERIC_FLAGS["*"], **NUMERIC_FLAGS.get(cmd, {})}
    for dest, value in sorted(vars(args).items()):
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        kind, lo, hi, lo_open, hi_open = specs.get(dest, (_I if isinstance(value, int) else _F, 0, 10**9, False,
                                                          False))
        flag = "--" + dest.replace("_", "-")
        example = sub.get_default(dest) if sub is not None and sub.get_default(dest) is not None else \
            _example(lo, hi, lo_open)
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
                raise ConfigError("the output folder already exists", path=path, row=flag,
                                  fix="pass --overwrite to replace it (the old one is kept until the new one is "
                                  "complete), or choose another --out")


def _subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser | None:
    """The sub-parser of a command path (for its defaults, shown as examples)."""
    for name in path:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or name not in subs[0].choices:
            return None
        parser = subs[0].choices[name]
    return parser


def _example(lo: float, hi: float, lo_open: bool) -> Any:
    if not lo_open:
        return int(lo) if float(lo).is_integer() else lo
    return hi / 2 if hi <= 1 else 1


def _parser(sub: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------- handlers
def _cmd_build_toy(args: argparse.Namespace) -> int:
    from .data.toy import build_toy

    path = build_toy(args.out, size=args.size, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    return _print_check(path)


def _cmd_build_movielens(args: argparse.Namespace) -> int:
    from .data.movielens import build_movielens

    path = build_movielens(args.out, ratings_dir=args.ratings_dir, posters_dir=args.posters_dir, seed=args.seed,
                           overwrite=args.overwrite, progress=not args.quiet)
    return _print_check(path)


def _print_check(path: Path, images: bool = False) -> int:
    from .data.mmrec import check_images, format_stats, load_mmrec

    ds = load_mmrec(path)
    n_img = check_images(ds) if images else None
    print(format_stats(ds.stats()))
    if n_img is not None:
        print(f"images       {n_img:,} checked, all readable")
    print(f"ok: {ds.path}")
    return 0


def _resolve_dir(name_or_path: str) -> Path:
    """A dataset folder, or the name of one registered with ``alignrec-lite data import``."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    from .data.amazon import resolve_dataset

    return resolve_dataset(name_or_path)


def _cmd_check(args: argparse.Namespace) -> int:
    return _print_check(_resolve_dir(args.dir), images=not args.no_images)


RUN_FILES = ("last.pt", "best.pt", "metrics.json", "config.json")


def _cmd_train(args: argparse.Namespace) -> int:
    from .checks import out_lock, staging_dir, swap_dir
    from .config import parse_set_args, resolve_config
    from .data.mmrec import load_mmrec
    from .evaluate import format_metrics
    from .train import train

    overrides = parse_set_args(args.set)
    if args.out is None and args.resume:
        raise ConfigError("--resume needs --out RUN", row="--resume", fix="pass the run folder to continue")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other", row="--overwrite",
                          fix="--resume continues the run in --out; --overwrite starts it again")
    ds = load_mmrec(_resolve_dir(args.dir))
    resolve_config(args.model, overrides, ds.name)  # every setting checked before the lock and the work
    out = Path(args.out) if args.out else None
    with out_lock(out) if out is not None else _no_lock():
        holds_run = out is not None and any((out / f).exists() for f in RUN_FILES)
        if holds_run and not args.resume and not args.overwrite:
            raise ConfigError(f"run folder {out} already holds a run", row="--out",
                              fix="use --resume to continue it, --overwrite to start again, or another --out")
        kw = dict(progress=not args.quiet, verbose=args.verbose)
        if holds_run and args.overwrite:  # build the new run beside the old one; swap only when complete
            stage = staging_dir(out)
            try:
                _, record = train(ds, args.model, overrides, out=stage, **kw)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
            swap_dir(stage, out)
        else:
            _, record = train(ds, args.model, overrides, out=out, resume=args.resume, **kw)
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    print(f"{record['model']} on {record['dataset']}: best epoch {record['best_epoch']} "
          f"of {record['epochs_run']}, {record['seconds_per_epoch']:.2f} s/epoch")
    print("  valid " + format_metrics(record["valid"], keys))
    print("  test  " + format_metrics(record["test"], keys))
    if out is not None:
        print(f"run record: {out / 'metrics.json'}")
    return 0


class _no_lock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _cmd_recommend(args: argparse.Namespace) -> int:
    from .serve import export_topk
    from .train import load_run

    net, _, ds = load_run(args.run)
    path = export_topk(net, ds, args.out, k=args.k, batch_users=args.batch_users, progress=not args.quiet)
    print(f"wrote top-{args.k} for {ds.n_users:,} users to {path}")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands registered by their modules)."""
    p = OneLineParser(
        prog="alignrec-lite",
        description="Multimodal recommendation with AlignRec: data, training, evaluation, serving.",
        epilog="example:\n  alignrec-lite data build toy --out data/toy && "
        "alignrec-lite train data/toy --model lightgcn --out runs/lgcn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="store_true", help="print versions and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = _parser(sub, "data", "build, check, download and import datasets", "alignrec-lite data check data/toy")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    build = _parser(data_sub, "build", "build an MMRec dataset folder", "alignrec-lite data build toy --out data/toy")
    build_sub = build.add_subparsers(dest="source", metavar="SOURCE")

    b = _parser(build_sub, "toy", "generate the toy shop (images + titles, seeded)",
                "alignrec-lite data build toy --out data/toy --size smoke --seed 0")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--size", choices=["smoke", "default"], default="default")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_build_toy)

    b = _parser(build_sub, "movielens", "build MovieLens (rating >= 4, 5-core) with posters",
                "alignrec-lite data build movielens --ratings-dir ml-latest-small --posters-dir posters --out data/ml")
    b.add_argument("--ratings-dir", required=True, help="folder with ratings.csv and movies.csv")
    b.add_argument("--posters-dir", required=True, help="folder with {movieId}.jpg posters")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--seed", type=int, default=999)
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_cmd_build_movielens)

    c = _parser(data_sub, "check", "validate a dataset folder and print its statistics",
                "alignrec-lite data check data/toy")
    c.add_argument("dir", help="MMRec dataset folder")
    c.add_argument("--no-images", action="store_true", help="skip opening every image")
    c.set_defaults(func=_cmd_check)

    t = _parser(sub, "train", "train a recommender with early stopping on valid",
                "alignrec-lite train data/toy --model lightgcn --set epochs=50 --set seed=7 --out runs/lgcn")
    t.add_argument("dir", help="MMRec dataset folder, or a name registered with `data import`")
    t.add_argument("--model", required=True, help="bpr, lightgcn, vbpr, freedom or alignrec")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    t.add_argument("--out", help="run folder for checkpoints and metrics.json")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="start again in an existing run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--verbose", action="store_true", help="one line per epoch")
    t.set_defaults(func=_cmd_train)

    r = _parser(sub, "recommend", "export every user's top-K (raw IDs, seen items removed)",
                "alignrec-lite recommend runs/lgcn --k 20 --out topk.csv")
    r.add_argument("run", help="run folder written by `train --out`")
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--out", required=True, help=".csv or .parquet file")
    r.add_argument("--batch-users", type=int, default=1024)
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_recommend)

    # commands that live with their modules (registered when the module exists)
    for module, fn, args in (
        ("alignrec_lite.data.cli_download", "register_data_commands", (data_sub, build_sub)),
        ("alignrec_lite.cli_features", "register_commands", (sub,)),
        ("alignrec_lite.cli_models", "register_commands", (sub,)),
        ("alignrec_lite.cli_extra", "register_commands", (sub,)),
    ):
        _register(module, fn, args)
    return p


def _register(module: str, fn: str, args: tuple) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return
        raise
    getattr(mod, fn)(*args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .utils import versions

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
            return _fail("ran out of memory. Fix: lower the batch sizes (--batch-users, --set eval_batch_users=..., "
                         "--set batch_size=...) or embedding_size, or use a machine with more memory")
        except (OSError, RuntimeError) as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            return _fail(full)
        except KeyboardInterrupt:
            print("alignrec-lite: interrupted; finished files are intact, a run can continue with --resume",
                  file=sys.stderr)
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
        isinstance(exc, RuntimeError) and ("No space left" in str(exc) or "file write failed" in str(exc)))
    if not full:
        return None
    where = getattr(exc, "filename", None) or "the output"
    return (f"{where}: the disk is full (no space left on device); nothing half-written was kept. "
            "Fix: free disk space or write to another disk (--out)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
