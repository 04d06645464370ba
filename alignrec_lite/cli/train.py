"""``alignrec-lite train``, ``search`` and ``evaluate``: fit a recommender, tune it on valid, score a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import (
    Subcommands,
    add_command,
    add_dataset,
    add_device,
    add_overwrite,
    add_preset,
    add_quiet,
    add_run,
    add_seed,
    add_settings,
    dataset_folder,
    preset_kw,
    training_overrides,
)

RUN_FILES = ("last.pt", "best.pt", "metrics.json", "config.json")
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
MODELS_HELP = "bpr, lightgcn, vbpr, freedom or alignrec"

SEARCH_EXAMPLE = """examples:
  alignrec-lite search data/toy --model alignrec \\
      --grid learning_rate=0.001,0.0005 --grid cl_loss=0.01,0.1 --budget 6 \\
      --set epochs=50 --set max_minutes=5 --out runs/search-alignrec
  alignrec-lite search data/ml --model freedom --mode random --budget 4 --seed 1 \\
      --grid dropout=0.8,0.9 --grid reg_weight=0,1e-4,1e-3 --out runs/search-freedom

The trial with the best VALID recall@20 is selected (never test: MMRec issue #64).
Every trial's record is written to OUT/trials/NNN.json and OUT/trials.jsonl, the choice
to OUT/best.json; rerunning the same command resumes an interrupted search."""


# ---------------------------------------------------------------------- handlers
def _cmd_train(args: argparse.Namespace) -> int:
    from ..config import resolve_config
    from ..data.mmrec import load_mmrec
    from ..evaluate import format_metrics
    from ..files import out_lock, replace_dir
    from ..train import train

    overrides = training_overrides(args)
    if args.out is None and args.resume:
        raise ConfigError("--resume needs --out RUN", row="--resume", fix="pass the run folder to continue")
    if args.resume and args.overwrite:
        raise ConfigError(
            "--resume and --overwrite exclude each other",
            row="--overwrite",
            fix="--resume continues the run in --out; --overwrite starts it again",
        )
    ds = load_mmrec(dataset_folder(args))
    preset = preset_kw(args)
    resolve_config(args.model, overrides, ds.name, **preset)  # every setting checked before the lock and the work
    out = Path(args.out) if args.out else None
    with out_lock(out) if out is not None else _NoLock():
        holds_run = out is not None and any((out / f).exists() for f in RUN_FILES)
        if holds_run and not args.resume and not args.overwrite:
            raise ConfigError(
                f"run folder {out} already holds a run",
                row="--out",
                fix="use --resume to continue it, --overwrite to start again, or another --out",
            )
        kw = dict(progress=not args.quiet, verbose=args.verbose, **preset)
        if holds_run and args.overwrite:  # build the new run beside the old one; swap only when complete
            with replace_dir(out, overwrite=True) as stage:
                _, record = train(ds, args.model, overrides, out=stage, **kw)
        else:
            _, record = train(ds, args.model, overrides, out=out, resume=args.resume, **kw)
    print(
        f"{record['model']} on {record['dataset']}: best epoch {record['best_epoch']} "
        f"of {record['epochs_run']}, {record['seconds_per_epoch']:.2f} s/epoch"
    )
    print("  valid " + format_metrics(record["valid"], KEYS))
    print("  test  " + format_metrics(record["test"], KEYS))
    if out is not None:
        print(f"run record: {out / 'metrics.json'}")
    return 0


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _cmd_search(args: argparse.Namespace) -> int:
    from ..data.mmrec import load_mmrec
    from ..evaluate import format_metrics
    from ..tuning import parse_grid_args, search

    space = parse_grid_args(args.grid)
    if not space:
        raise ConfigError("nothing to search", row="--grid", fix="give at least one --grid key=v1,v2")
    base = training_overrides(args, flags=("device",))  # --seed seeds the draw of trials, not the training
    clash = sorted(set(space) & set(base))
    if clash:
        raise ConfigError(
            f"{', '.join(clash)} is both searched (--grid) and fixed (--set)",
            row=clash[0],
            fix="keep it in one of the two",
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file", row="--out", fix="pass a folder")
    ds = load_mmrec(dataset_folder(args))
    keys = ("recall@20", "ndcg@20")

    def show(rec: dict) -> None:
        if args.quiet:
            return
        params = " ".join(f"{k}={v}" for k, v in rec["params"].items())
        print(
            f"trial {rec['trial']:3d}  {params:40s}  valid {format_metrics(rec['valid'], keys)}  "
            f"(epoch {rec['best_epoch']}, {rec['seconds']:.0f} s)",
            flush=True,
        )

    best = search(
        ds,
        args.model,
        space,
        budget=args.budget,
        mode=args.mode,
        seed=args.seed,
        out=out,
        base_overrides=base,
        progress=False,
        keep_runs=args.keep_runs,
        on_trial=show,
        **preset_kw(args),
    )
    params = " ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"best on valid: trial {best['best_trial']} of {best['n_trials']}: {params}")
    print("  valid " + format_metrics(best["valid"], keys))
    print("  test  " + format_metrics(best["test"], keys) + "   (reported, not used for the choice)")
    print(f"records: {out / 'trials.jsonl'}, choice: {out / 'best.json'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate, format_metrics
    from ..runs import load_run

    net, record, ds = load_run(args.run)
    mask_valid = bool(record["config"].get("mask_valid_at_test", False))  # as the run was evaluated
    splits = ("valid", "test") if args.split == "both" else (args.split,)
    print(f"{record['model']} on {ds.name} (run {args.run}):")
    for split in splits:
        m = evaluate(net.full_sort_scores, ds, split, mask_valid=mask_valid, batch_users=args.batch_users)
        print(f"  {split:5s} " + format_metrics(m, KEYS))
    return 0


# ---------------------------------------------------------------------- registration
def register(sub: Subcommands) -> None:
    """Add ``train``, ``search`` and ``evaluate`` to the ``alignrec-lite`` parser."""
    t = add_command(
        sub,
        "train",
        "train a recommender with early stopping on valid",
        "alignrec-lite train toy --model lightgcn --set epochs=50 --seed 7 --out runs/lgcn",
    )
    add_dataset(t)
    t.add_argument("--model", required=True, help=MODELS_HELP)
    add_settings(t)
    add_seed(t, None, "training seed (same as --set seed=N)")
    add_device(t, None, "auto, cpu or cuda (same as --set device=...)")
    add_preset(t)
    t.add_argument("--out", help="run folder for checkpoints and metrics.json")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_overwrite(t, "start again in an existing run folder")
    add_quiet(t, "no progress bar")
    t.add_argument("--verbose", action="store_true", help="one line per epoch")
    t.set_defaults(func=_cmd_train)

    s = add_command(
        sub, "search", "hyper-parameter search (grid or random) selected on valid recall@20", "", epilog=SEARCH_EXAMPLE
    )
    s.description = "Train one run per setting and pick the best on the VALIDATION split."
    add_dataset(s)
    s.add_argument("--model", required=True, help=MODELS_HELP)
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="values to try for a setting (repeatable)")
    add_settings(s, "a setting shared by all trials (repeatable)")
    s.add_argument("--budget", type=int, default=None, help="at most this many trials (default: the whole grid)")
    s.add_argument(
        "--mode", choices=["grid", "random"], default="grid", help="grid: in order; random: a seeded draw from the grid"
    )
    add_seed(s, 0, "seed of the random draw")
    add_device(s, None, "auto, cpu or cuda for every trial (same as --set device=...)")
    add_preset(s)
    s.add_argument("--out", required=True, help="folder for trials.jsonl, trials/*.json and best.json")
    s.add_argument("--keep-runs", action="store_true", help="also keep each trial's checkpoints")
    add_quiet(s, "print only the result")
    s.set_defaults(func=_cmd_search)

    e = add_command(
        sub,
        "evaluate",
        "evaluate a finished run again (MMRec's full ranking)",
        "alignrec-lite evaluate runs/lgcn --split both",
    )
    add_run(e)
    e.add_argument("--split", choices=["valid", "test", "both"], default="test")
    e.add_argument("--batch-users", type=int, default=1024)
    e.set_defaults(func=_cmd_evaluate)
