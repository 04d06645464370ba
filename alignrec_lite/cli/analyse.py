"""``alignrec-lite longtail`` and ``coldstart``: evaluation beyond accuracy.

``longtail RUN`` reads a finished run; ``coldstart DATASET`` trains the models its
protocol needs (:mod:`alignrec_lite.experiments`) on the cold-start split.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .common import (
    Subcommands,
    add_command,
    add_dataset,
    add_device,
    add_preset,
    add_quiet,
    add_run,
    add_seed,
    add_settings,
    dataset_folder,
    preset_kw,
    training_overrides,
    write_table,
)


def _floats(x: float) -> str:
    return f"{x:.4f}"


# ---------------------------------------------------------------------- handlers
def _cmd_longtail(args: argparse.Namespace) -> int:
    from ..longtail import long_tail_report, popularity_buckets
    from ..runs import load_run
    from ..scorers import popularity_scores

    net, record, ds = load_run(args.run)
    pop = ds.item_popularity("train")
    buckets = popularity_buckets(pop, n_buckets=args.buckets) if args.buckets else popularity_buckets(pop)
    scorers = {record["model"]: net.scores, "popularity": popularity_scores(ds)}
    per_bucket, overall = long_tail_report(scorers, ds, split=args.split, buckets=buckets, k=args.k)
    print(buckets.table().to_string(index=False))
    print()
    print(per_bucket.to_string(index=False, float_format=_floats))
    print()
    print(overall.to_string(index=False, float_format=_floats))
    write_table(per_bucket, args.out)
    return 0


def _cmd_coldstart(args: argparse.Namespace) -> int:
    from ..data.mmrec import load_mmrec
    from ..experiments import item_coldstart_experiment, user_coldstart_experiment

    overrides = training_overrides(args, flags=("device",))  # --seed seeds the split and the training
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError("no model given", row="--models", fix="e.g. --models lightgcn,alignrec")
    ds = load_mmrec(dataset_folder(args))
    experiment = item_coldstart_experiment if args.kind == "items" else user_coldstart_experiment
    table, _ = experiment(
        ds, models, share=args.share, seed=args.seed, overrides=overrides, progress=not args.quiet, **preset_kw(args)
    )
    if args.kind == "items":
        print(table.to_string(index=False, float_format=_floats))
    else:
        wide = table.pivot(index="method", columns="given", values="recall@20")
        print("recall@20 on the held-out users' remaining items, by number of items given:")
        print(wide.to_string(float_format=_floats))
    write_table(table, args.out)
    return 0


# ---------------------------------------------------------------------- registration
def register(sub: Subcommands) -> None:
    """Add ``longtail`` and ``coldstart`` to the ``alignrec-lite`` parser."""
    p = add_command(
        sub,
        "longtail",
        "accuracy per item-popularity bucket and coverage/Gini/APLT/novelty of a run",
        "alignrec-lite longtail runs/lgcn --buckets 5 --out buckets.csv",
    )
    add_run(p)
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--buckets", type=int, default=0, help="N equal-quantile buckets (default: tail/mid/head)")
    p.add_argument("--out", help="write the per-bucket table to this .csv")
    p.set_defaults(func=_cmd_longtail)

    p = add_command(
        sub,
        "coldstart",
        "new items (item-disjoint split) or new users (fold-in with 0-5 items)",
        "alignrec-lite coldstart toy --kind users --models lightgcn,alignrec --set epochs=30",
    )
    add_dataset(p)
    p.add_argument("--kind", choices=["items", "users"], default="items")
    p.add_argument("--models", default="lightgcn", help="comma-separated model names")
    p.add_argument("--share", type=float, default=0.2, help="share of items/users held out")
    add_seed(p, 0, "seed of the split and of the training")
    add_settings(p, "training setting for every model (repeatable)")
    add_device(p, None, "auto, cpu or cuda for every model (same as --set device=...)")
    add_preset(p)
    p.add_argument("--out", help="write the table to this .csv")
    add_quiet(p, "no progress bars")
    p.set_defaults(func=_cmd_coldstart)
