"""``alignrec-lite tour``: the kit's main job end to end (``make tour``; also ``python -m alignrec_lite.tour``).

Builds nothing by hand: the dataset comes from the catalogue, LightGCN and AlignRec are
trained, evaluated and exported, and every notebook is rendered into the course site
(:func:`alignrec_lite.tour.run_tour`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import DATASET_HELP, Subcommands, add_command


def _cmd_tour(args: argparse.Namespace) -> int:
    from ..tour import render_tour_notebooks, run_tour

    if args.notebooks_only:
        rep = render_tour_notebooks(args.dataset, Path(args.build_dir))
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "records"} for k, v in rep.items()}, indent=1))
        return 0
    run_tour(args.dataset, Path(args.build_dir), notebooks=not args.no_notebooks, epochs=args.epochs)
    return 0


def register(sub: Subcommands) -> None:
    """Add ``tour`` to the ``alignrec-lite`` parser."""
    from ..tour import REPO

    p = add_command(
        sub,
        "tour",
        "the main job end to end: train, evaluate, export, render every notebook",
        "alignrec-lite tour --dataset toy --no-notebooks",
    )
    p.add_argument("--dataset", default="toy", help=f"{DATASET_HELP} (default toy)")
    p.add_argument("--build-dir", default=str(REPO / "_build"), help="where runs, exports and the site go")
    p.add_argument("--notebooks-only", action="store_true", help="only render the notebooks")
    p.add_argument("--no-notebooks", action="store_true", help="skip rendering the notebooks")
    p.add_argument("--epochs", type=int, default=200, help="most training epochs (early stopping on valid)")
    p.set_defaults(func=_cmd_tour)
