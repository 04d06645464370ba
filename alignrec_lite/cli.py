"""The ``alignrec-lite`` command (also ``python -m alignrec_lite``): a thin face over the library.

Every command has ``--help`` with an example. Errors caused by input (bad files,
bad settings) are printed in one or two lines and exit with status 2; nothing
half-written is left behind.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import AlignRecError, ConfigError

EXIT_INPUT_ERROR = 2


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


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import parse_set_args
    from .data.mmrec import load_mmrec
    from .evaluate import format_metrics
    from .train import train

    overrides = parse_set_args(args.set)
    ds = load_mmrec(_resolve_dir(args.dir))
    if args.out is None and args.resume:
        raise ConfigError("--resume needs --out RUN", row="--resume", fix="pass the run folder to continue")
    out = Path(args.out) if args.out else None
    if out is not None and not args.resume and (out / "last.pt").exists() and not args.overwrite:
        raise ConfigError(f"run folder {out} already holds a run", row="--out",
                          fix="use --resume to continue it, --overwrite to start again, or another --out")
    _, record = train(ds, args.model, overrides, out=out, resume=args.resume, progress=not args.quiet,
                      verbose=args.verbose)
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    print(f"{record['model']} on {record['dataset']}: best epoch {record['best_epoch']} "
          f"of {record['epochs_run']}, {record['seconds_per_epoch']:.2f} s/epoch")
    print("  valid " + format_metrics(record["valid"], keys))
    print("  test  " + format_metrics(record["test"], keys))
    if out is not None:
        print(f"run record: {out / 'metrics.json'}")
    return 0


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
    p = argparse.ArgumentParser(
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
    try:
        return int(func(args) or 0)
    except AlignRecError as exc:
        print(f"alignrec-lite: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("alignrec-lite: interrupted; finished files are intact, a run can continue with --resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
