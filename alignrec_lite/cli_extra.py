"""Evaluation-beyond-accuracy and serving commands of ``alignrec-lite``.

``longtail``, ``coldstart``, ``new-user`` and ``timing``, registered by
:func:`alignrec_lite.cli.build_parser` through :func:`register_commands`. Each
handler returns the exit status; input errors are raised as
:class:`~alignrec_lite.errors.AlignRecError` and printed by the CLI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import ConfigError


def _parser(sub: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _write_table(df, out: str | None) -> None:
    from .io import atomic_path

    if out is None:
        return
    path = Path(out)
    if path.suffix != ".csv":
        raise ConfigError(f"unsupported table type {path.suffix!r}", row="--out", fix="use a .csv file name")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    print(f"wrote {path}")


# ---------------------------------------------------------------------- handlers
def cmd_longtail(args: argparse.Namespace) -> int:
    """``alignrec-lite longtail RUN``: Recall/NDCG per popularity bucket + coverage, Gini, APLT, novelty."""
    from .beyond import long_tail_report, popularity_buckets, popularity_scores
    from .train import load_run

    net, record, ds = load_run(args.run)
    pop = ds.item_popularity("train")
    buckets = popularity_buckets(pop, n_buckets=args.buckets) if args.buckets else popularity_buckets(pop)
    scorers = {record["model"]: net.full_sort_scores, "popularity": popularity_scores(ds)}
    per_bucket, overall = long_tail_report(scorers, ds, split=args.split, buckets=buckets, k=args.k)
    print(buckets.table().to_string(index=False))
    print()
    print(per_bucket.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print()
    print(overall.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    _write_table(per_bucket, args.out)
    return 0


def cmd_coldstart(args: argparse.Namespace) -> int:
    """``alignrec-lite coldstart DIR``: the new-item or new-user experiment."""
    from .coldstart import item_coldstart_experiment, user_coldstart_experiment
    from .config import parse_set_args
    from .data.mmrec import load_mmrec

    ds = load_mmrec(Path(args.dir))
    overrides = parse_set_args(args.set)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError("no model given", row="--models", fix="e.g. --models lightgcn,alignrec")
    if args.kind == "items":
        table, _ = item_coldstart_experiment(ds, models, share=args.share, seed=args.seed, overrides=overrides,
                                             progress=not args.quiet)
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    else:
        table, _ = user_coldstart_experiment(ds, models, share=args.share, seed=args.seed, overrides=overrides,
                                             progress=not args.quiet)
        wide = table.pivot(index="method", columns="given", values="recall@20")
        print("recall@20 on the held-out users' remaining items, by number of items given:")
        print(wide.to_string(float_format=lambda x: f"{x:.4f}"))
    _write_table(table, args.out)
    return 0


def cmd_new_user(args: argparse.Namespace) -> int:
    """``alignrec-lite new-user RUN --items ...``: recommend for a user from a few raw item IDs."""
    from .serve import recommend_new_user
    from .train import load_run

    net, _, ds = load_run(args.run)
    rec = recommend_new_user(net, ds, args.items, k=args.k, method=args.method)
    if ds.items is not None and "title" in ds.items.columns:
        rec["title"] = ds.items["title"].to_numpy()[rec["itemID"].to_numpy()]
    print(rec.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def cmd_timing(args: argparse.Namespace) -> int:
    """``alignrec-lite timing RUN``: time the whole-catalogue export and single-user requests."""
    from .serve import measure_serving
    from .train import load_run

    net, _, ds = load_run(args.run)
    t = measure_serving(net, ds, k=args.k, batch_users=args.batch_users, n_single=args.n_single)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in t.items()}, indent=2))
    return 0


# ---------------------------------------------------------------------- registration
def register_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``longtail``, ``coldstart``, ``new-user`` and ``timing`` to the ``alignrec-lite`` parser."""
    p = _parser(sub, "longtail", "accuracy per item-popularity bucket and coverage/Gini/APLT/novelty of a run",
                "alignrec-lite longtail runs/lgcn --buckets 5 --out buckets.csv")
    p.add_argument("run", help="run folder written by `train --out`")
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--buckets", type=int, default=0, help="N equal-quantile buckets (default: tail/mid/head)")
    p.add_argument("--out", help="write the per-bucket table to this .csv")
    p.set_defaults(func=cmd_longtail)

    p = _parser(sub, "coldstart", "new items (item-disjoint split) or new users (fold-in with 0-5 items)",
                "alignrec-lite coldstart data/toy --kind users --models lightgcn,alignrec --set epochs=30")
    p.add_argument("dir", help="MMRec dataset folder")
    p.add_argument("--kind", choices=["items", "users"], default="items")
    p.add_argument("--models", default="lightgcn", help="comma-separated model names")
    p.add_argument("--share", type=float, default=0.2, help="share of items/users held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="training setting for every model")
    p.add_argument("--out", help="write the table to this .csv")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_coldstart)

    p = _parser(sub, "new-user", "recommend for a user who is not in the data, from items they liked",
                "alignrec-lite new-user runs/lgcn --items 318 593 2571 --k 10")
    p.add_argument("run", help="run folder written by `train --out`")
    p.add_argument("--items", nargs="*", default=[], help="raw item IDs (none: the popularity list)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--method", choices=["mean", "gradient"], default="mean")
    p.set_defaults(func=cmd_new_user)

    p = _parser(sub, "timing", "time top-K for every user (offline) and for one user at a time",
                "alignrec-lite timing runs/lgcn --k 20")
    p.add_argument("run", help="run folder written by `train --out`")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--batch-users", type=int, default=1024)
    p.add_argument("--n-single", type=int, default=50, help="users timed one at a time")
    p.set_defaults(func=cmd_timing)
