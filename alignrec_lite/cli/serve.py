"""``alignrec-lite recommend``, ``new-user``, ``new-item`` and ``timing``: serving a finished run."""

from __future__ import annotations

import argparse
import json

from .common import Subcommands, add_command, add_quiet, add_run, add_seed


# ---------------------------------------------------------------------- handlers
def _cmd_recommend(args: argparse.Namespace) -> int:
    from ..runs import load_run
    from ..serve import export_topk

    net, _, ds = load_run(args.run)
    path = export_topk(net, ds, args.out, k=args.k, batch_users=args.batch_users, progress=not args.quiet)
    print(f"wrote top-{args.k} for {ds.n_users:,} users to {path}")
    return 0


def _cmd_new_user(args: argparse.Namespace) -> int:
    from ..runs import load_run
    from ..serve import recommend_new_user

    net, _, ds = load_run(args.run)
    rec = recommend_new_user(net, ds, args.items, k=args.k, method=args.method, seed=args.seed)
    if ds.items is not None and "title" in ds.items.columns:
        rec["title"] = ds.items["title"].to_numpy()[rec["itemID"].to_numpy()]
    print(rec.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def _cmd_new_item(args: argparse.Namespace) -> int:
    from ..runs import load_run
    from ..serve import score_new_item

    net, _, ds = load_run(args.run)
    out = score_new_item(net, ds, image=args.image, text=args.text, k=args.k)
    titles = ds.items["title"].to_numpy() if ds.items is not None and "title" in ds.items.columns else None
    for name, table in out.items():
        if titles is not None and name == "similar_items":
            table["title"] = titles[table["itemID"].to_numpy()]
        print(f"{name.replace('_', ' ')}:")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def _cmd_timing(args: argparse.Namespace) -> int:
    from ..runs import load_run
    from ..serve import measure_serving

    net, _, ds = load_run(args.run)
    t = measure_serving(net, ds, k=args.k, batch_users=args.batch_users, n_single=args.n_single, seed=args.seed)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in t.items()}, indent=2))
    return 0


# ---------------------------------------------------------------------- registration
def register(sub: Subcommands) -> None:
    """Add ``recommend``, ``new-user``, ``new-item`` and ``timing`` to the ``alignrec-lite`` parser."""
    r = add_command(
        sub,
        "recommend",
        "export every user's top-K (raw IDs, seen items removed)",
        "alignrec-lite recommend runs/lgcn --k 20 --out topk.csv",
    )
    add_run(r)
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--out", required=True, help=".csv or .parquet file")
    r.add_argument("--batch-users", type=int, default=1024)
    add_quiet(r, "no timing line")
    r.set_defaults(func=_cmd_recommend)

    p = add_command(
        sub,
        "new-user",
        "recommend for a user who is not in the data, from items they liked",
        "alignrec-lite new-user runs/lgcn --items 318 593 2571 --k 10",
    )
    add_run(p)
    p.add_argument("--items", nargs="*", default=[], help="raw item IDs (none: the popularity list)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--method", choices=["mean", "gradient"], default="mean")
    add_seed(p, 0, "seed of the negatives of --method gradient")
    p.set_defaults(func=_cmd_new_user)

    p = add_command(
        sub,
        "new-item",
        "who would like an item that is not in the data, from its picture and/or text (content models)",
        "alignrec-lite new-item runs/alignrec --image poster.jpg --text 'Heat (1995), Action|Crime' --k 10",
    )
    add_run(p)
    p.add_argument("--image", help="the new item's picture (JPEG or PNG)")
    p.add_argument("--text", help="its title and description")
    p.add_argument("--k", type=int, default=10, help="rows in each table (default 10)")
    p.set_defaults(func=_cmd_new_item)

    p = add_command(
        sub,
        "timing",
        "time top-K for every user (offline) and for one user at a time",
        "alignrec-lite timing runs/lgcn --k 20",
    )
    add_run(p)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--batch-users", type=int, default=1024)
    p.add_argument("--n-single", type=int, default=50, help="users timed one at a time")
    add_seed(p, 0, "seed of the users timed one at a time")
    p.set_defaults(func=_cmd_timing)
