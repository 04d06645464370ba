"""Command-line commands for the models: ``alignrec-lite search``.

Registered by :mod:`alignrec_lite.cli` when this module exists. Training itself is
``alignrec-lite train DIR --model {bpr,lightgcn,vbpr,freedom,alignrec}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import ConfigError

SEARCH_EXAMPLE = """examples:
  alignrec-lite search data/toy --model alignrec \\
      --grid learning_rate=0.001,0.0005 --grid cl_loss=0.01,0.1 --budget 6 \\
      --set epochs=50 --set max_minutes=5 --out runs/search-alignrec
  alignrec-lite search data/ml --model freedom --mode random --budget 4 --seed 1 \\
      --grid dropout=0.8,0.9 --grid reg_weight=0,1e-4,1e-3 --out runs/search-freedom

The trial with the best VALID recall@20 is selected (never test: MMRec issue #64).
Every trial's record is written to OUT/trials/NNN.json and OUT/trials.jsonl, the choice
to OUT/best.json; rerunning the same command resumes an interrupted search."""


def _cmd_search(args: argparse.Namespace) -> int:
    from .config import parse_set_args
    from .data.mmrec import load_mmrec
    from .evaluate import format_metrics
    from .search import parse_grid_args, search

    space = parse_grid_args(args.grid)
    if not space:
        raise ConfigError("nothing to search", row="--grid", fix="give at least one --grid key=v1,v2")
    base = parse_set_args(args.set)
    clash = sorted(set(space) & set(base))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is both searched (--grid) and fixed (--set)", row=clash[0],
                          fix="keep it in one of the two")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file", row="--out", fix="pass a folder")
    ds = load_mmrec(args.dir)
    keys = ("recall@20", "ndcg@20")

    def show(rec: dict) -> None:
        if args.quiet:
            return
        params = " ".join(f"{k}={v}" for k, v in rec["params"].items())
        print(f"trial {rec['trial']:3d}  {params:40s}  valid {format_metrics(rec['valid'], keys)}  "
              f"(epoch {rec['best_epoch']}, {rec['seconds']:.0f} s)", flush=True)

    best = search(ds, args.model, space, budget=args.budget, mode=args.mode, seed=args.seed, out=out,
                  base_overrides=base, progress=False, keep_runs=args.keep_runs, on_trial=show)
    params = " ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"best on valid: trial {best['best_trial']} of {best['n_trials']}: {params}")
    print("  valid " + format_metrics(best["valid"], keys))
    print("  test  " + format_metrics(best["test"], keys) + "   (reported, not used for the choice)")
    print(f"records: {out / 'trials.jsonl'}, choice: {out / 'best.json'}")
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``search`` to the ``alignrec-lite`` sub-commands."""
    s = sub.add_parser(
        "search",
        help="hyper-parameter search (grid or random) selected on valid recall@20",
        description="Train one run per setting and pick the best on the VALIDATION split.",
        epilog=SEARCH_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("dir", help="MMRec dataset folder")
    s.add_argument("--model", required=True, help="bpr, lightgcn, vbpr, freedom or alignrec")
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="values to try for a setting (repeatable)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting shared by all trials (repeatable)")
    s.add_argument("--budget", type=int, default=None, help="at most this many trials (default: the whole grid)")
    s.add_argument("--mode", choices=["grid", "random"], default="grid",
                   help="grid: in order; random: a seeded draw from the grid")
    s.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    s.add_argument("--out", required=True, help="folder for trials.jsonl, trials/*.json and best.json")
    s.add_argument("--keep-runs", action="store_true", help="also keep each trial's checkpoints")
    s.add_argument("--quiet", action="store_true", help="print only the result")
    s.set_defaults(func=_cmd_search)
