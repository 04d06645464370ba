"""``make tour``: the kit's main job, end to end, on the bundled toy shop (or MovieLens).

1. open the dataset through the catalogue (:func:`alignrec_lite.data.open_dataset`): the bundled
   toy shop with its attribute features, or MovieLens with posters built once from ``$ALIGNREC_DATA``
   into the cache, its default content features extracted on first use;
2. train LightGCN and AlignRec (when the dataset has content features) with early stopping on valid;
3. evaluate on test with MMRec's protocol and export every user's top-20;
4. render every notebook at full settings into ``_build/notebooks/``, check that every figure
   is there, and build the course site ``_build/site/`` (open ``_build/site/index.html``);
5. print a short report of the headline numbers.

Run ``alignrec-lite tour --help`` (or ``python -m alignrec_lite.tour --help``) for the options.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_tour(
    dataset: str = "toy", build_dir: Path = REPO / "_build", notebooks: bool = True, epochs: int = 200
) -> dict:
    """Run the tour; returns the report as a dict (also written to ``_build/tour.json``)."""
    from .data.catalog import open_dataset
    from .data.mmrec import format_stats
    from .evaluate import format_metrics
    from .files import write_json
    from .serve import export_topk
    from .train import train

    report: dict = {"dataset": dataset}
    t0 = time.perf_counter()
    print(f"[1/4] opening the {dataset} dataset …", flush=True)
    ds = open_dataset(dataset, progress=sys.stderr.isatty())  # extracts the default features on first use
    print(format_stats(ds.stats()))
    report["stats"] = ds.stats()
    models = ["lightgcn"] + (["alignrec"] if ds.features else [])
    for name in models:
        print(f"[2/4] training {name} (early stopping on valid) …", flush=True)
        model, rec = train(
            ds,
            name,
            {"epochs": epochs, "stopping_step": 20},
            out=build_dir / "runs" / name,
            progress=sys.stderr.isatty(),
        )
        print(
            f"      {name}: best epoch {rec['best_epoch']}, {rec['seconds_per_epoch']:.3f} s/epoch; "
            f"test {format_metrics(rec['test'], ('recall@20', 'ndcg@20'))}"
        )
        report[name] = {
            "test": rec["test"],
            "valid": rec["valid"],
            "best_epoch": rec["best_epoch"],
            "seconds_per_epoch": rec["seconds_per_epoch"],
            "feature_source": rec.get("feature_source"),
        }
        print(f"[3/4] exporting every user's top-20 from {name} …", flush=True)
        export_topk(model, ds, build_dir / f"top20_{name}.csv", k=20, progress=True)
    if notebooks:
        report["notebooks"] = render_tour_notebooks(dataset, build_dir)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(build_dir / "tour.json", report)
    _print_report(report)
    return report


def render_tour_notebooks(dataset: str, build_dir: Path) -> dict:
    """Render every numbered notebook at full settings on ``dataset`` into ``build_dir/notebooks`` (and HTML).

    Returns:
        :func:`alignrec_lite.nbtools.render_notebooks`' report, one entry per notebook.
    """
    from .nbtools import render_notebooks

    nb_dir = REPO / "notebooks"
    names = sorted(p.name for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))
    print(f"[4/4] rendering {len(names)} notebooks at full settings into {build_dir / 'notebooks'} …", flush=True)
    params = {} if dataset == "toy" else {"DATASET": dataset}
    return render_notebooks(names, build_dir / "notebooks", parameters=params, html=True)


def _print_report(report: dict) -> None:
    print("\n=== alignrec-lite tour: headline numbers ===")
    st = report.get("stats")
    if st:
        print(
            f"dataset {st['name']}: {st['users']:,} users, {st['items']:,} items, {st['interactions']:,} interactions"
        )
    for name in ("lightgcn", "alignrec"):
        if name in report:
            t = report[name]["test"]
            print(
                f"{name:9s} test recall@20 {t['recall@20']:.4f}  ndcg@20 {t['ndcg@20']:.4f}  "
                f"({report[name]['seconds_per_epoch']:.3f} s/epoch)"
            )
    for nb, rec in (report.get("notebooks") or {}).items():
        values = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list((rec.get("records") or {}).items())[:4]
        )
        print(f"{nb}: {rec.get('seconds', float('nan')):.0f} s  {values}")
    print(f"total {report['seconds']:.0f} s; outputs in _build/ (the course site: _build/site/index.html)")


def main(argv: list[str] | None = None) -> int:
    """``python -m alignrec_lite.tour [...]`` = ``alignrec-lite tour [...]`` (:mod:`alignrec_lite.cli.tour`)."""
    from .cli import main as cli_main

    return cli_main(["tour", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
