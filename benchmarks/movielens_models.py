"""Tune BPR, LightGCN, VBPR, FREEDOM and AlignRec on VALID, then test them over seeds, plus ablations.

The experiment behind the models table of docs/benchmarks/models.md:

1. ``tune``: for each model, :func:`alignrec_lite.tuning.search` over a 2 x 2 grid
   (the learning rate x one model-specific setting, 4 trials each, training seed
   999), selected on **valid** Recall@20;
2. ``seeds``: each tuned model, and the AlignRec ablations built on AlignRec's
   tuned setting (the last one, AlignRec on the stage-1 ICA feature ``mm``, runs
   only on a folder that holds ``mm_feat.npy``), trained with seeds 1, 2, 3; test Recall@20 / NDCG@20 at the
   best-valid epoch, reported as mean ± std (sample std, n = 3).

Every run uses the same caps (``--epochs``, ``--stopping-step``,
``--max-minutes``). Results go to ``OUT/search-<model>/`` and ``OUT/seeds.jsonl``
(one line per run, appended after each run, so rerunning resumes), and the
table to ``OUT/table.md``.

Example::

    python benchmarks/movielens_models.py --data /tmp/ml --out benchmarks/out/ml --stage all
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

GRIDS: dict[str, dict[str, list]] = {
    "bpr": {"learning_rate": [0.001, 0.005], "reg_weight": [1e-4, 1e-2]},
    "lightgcn": {"learning_rate": [0.001, 0.005], "n_layers": [2, 3]},
    "vbpr": {"learning_rate": [0.001, 0.005], "reg_weight": [1e-4, 1e-2]},
    "freedom": {"learning_rate": [0.001, 0.005], "reg_weight": [1e-4, 1e-2]},
    "alignrec": {"learning_rate": [0.001, 0.005], "cl_loss": [0.01, 0.1]},
}
ABLATIONS: dict[str, dict] = {
    "AlignRec w/o CCA (α = 0)": {"cl_loss": 0.0},
    "AlignRec w/o UIA (γ = 0)": {"ui_cosine_loss_weight": 0.0},
    "AlignRec w/o L_sim (β = 0)": {"sim_weight": 0.0},
    "AlignRec ID branch only": {"branches": "id"},
    "AlignRec content branch only": {"branches": "content"},
    "AlignRec, image feature only": {"feature_source": "image"},
    "AlignRec, text feature only": {"feature_source": "text"},
    # needs a folder with the stage-1 multimodal encoder's mm_feat.npy (alignrec-lite pretrain-ica DIR);
    # on a folder without it the row is skipped
    "AlignRec on the stage-1 ICA feature (mm)": {"feature_source": "mm"},
    # why the ID-only row trails LightGCN: the same row with the UIA term off
    "AlignRec ID branch only, w/o UIA (γ = 0)": {"branches": "id", "ui_cosine_loss_weight": 0.0},
}
NAMES = {"bpr": "BPR", "lightgcn": "LightGCN", "vbpr": "VBPR", "freedom": "FREEDOM", "alignrec": "AlignRec"}
SEEDS = (1, 2, 3)


def caps(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "stopping_step": args.stopping_step, "max_minutes": args.max_minutes}


def tune(ds, args) -> dict[str, dict]:
    from alignrec_lite.tuning import search

    chosen = {}
    for model in args.models:
        t0 = time.perf_counter()
        grid = dict(GRIDS[model])
        if args.learning_rates:
            grid["learning_rate"] = [float(x) for x in args.learning_rates.split(",")]
        best = search(
            ds, model, grid, out=Path(args.out) / f"search-{model}", progress=False, base_overrides=caps(args)
        )
        chosen[model] = best["params"]
        print(
            f"{model:9s} valid-chosen {best['params']}  valid R@20 {best['valid']['recall@20']:.4f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return chosen


def load_chosen(out: Path, models) -> dict[str, dict]:
    chosen = {}
    for model in models:
        path = out / f"search-{model}" / "best.json"
        if path.exists():
            chosen[model] = json.loads(path.read_text())["params"]
    return chosen


def seed_runs(ds, args, chosen: dict[str, dict]) -> None:
    from alignrec_lite.files import atomic_write
    from alignrec_lite.train import train

    out = Path(args.out)
    path = out / "seeds.jsonl"
    done = []
    if path.exists():
        done = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows: list[tuple[str, str, dict]] = []
    if "main" in args.rows:
        rows += [(NAMES[m], m, chosen[m]) for m in args.models if m in chosen]
    if "alignrec" in chosen and not args.no_ablations:
        rows += [
            (name, "alignrec", {**chosen["alignrec"], **extra})
            for i, (name, extra) in enumerate(ABLATIONS.items())
            if "ablations" in args.rows or f"abl{i}" in args.rows
        ]
    for name, model, params in rows:
        if params.get("feature_source") == "mm" and "mm" not in ds.features:
            print(
                f"{name}: skipped, {ds.name} has no mm_feat.npy (run `alignrec-lite pretrain-ica` on the folder)",
                flush=True,
            )
            continue
        for seed in SEEDS:
            if any(d["row"] == name and d["seed"] == seed and d["params"] == params for d in done):
                continue
            t0 = time.perf_counter()
            _, rec = train(ds, model, {**caps(args), **params, "seed": seed}, progress=False)
            line = {
                "row": name,
                "model": model,
                "params": params,
                "seed": seed,
                "valid": rec["valid"],
                "test": rec["test"],
                "best_epoch": rec["best_epoch"],
                "epochs_run": rec["epochs_run"],
                "seconds": round(time.perf_counter() - t0, 1),
                "seconds_per_epoch": rec["seconds_per_epoch"],
                "feature_source": rec["feature_source"],
            }
            done.append(line)
            with atomic_write(path) as fh:
                for d in done:
                    fh.write(json.dumps(d) + "\n")
            print(
                f"{name:32s} seed {seed}  test R@20 {rec['test']['recall@20']:.4f}  N@20 "
                f"{rec['test']['ndcg@20']:.4f}  (best epoch {rec['best_epoch']}/{rec['epochs_run']}, "
                f"{line['seconds']:.0f} s)",
                flush=True,
            )


def table(args) -> str:
    out = Path(args.out)
    lines = [
        json.loads(x)
        for f in [out / "seeds.jsonl", *map(Path, args.merge)]
        if f.exists()
        for x in f.read_text().splitlines()
        if x.strip()
    ]
    order: list[str] = []
    for d in lines:
        if d["row"] not in order:
            order.append(d["row"])

    def ms(vals):
        return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else f"{vals[0]:.4f}"

    md = [
        "| model | settings (chosen on valid) | feature | test Recall@20 | test NDCG@20 | valid Recall@20 "
        "| best epoch (mean) | s/epoch | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in order:
        runs = [d for d in lines if d["row"] == row]
        params = ", ".join(f"{k}={v}" for k, v in runs[0]["params"].items())
        md.append(
            f"| {row} | {params} | {runs[0]['feature_source'] or '-'} | "
            f"{ms([r['test']['recall@20'] for r in runs])} | {ms([r['test']['ndcg@20'] for r in runs])} | "
            f"{ms([r['valid']['recall@20'] for r in runs])} | "
            f"{statistics.mean(r['best_epoch'] for r in runs):.0f} | "
            f"{statistics.median(r['seconds_per_epoch'] for r in runs):.2f} | {len(runs)} |"
        )
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="MovieLens-with-posters MMRec folder (with features)")
    p.add_argument("--out", required=True)
    p.add_argument("--stage", choices=["tune", "seeds", "table", "all"], default="all")
    p.add_argument("--models", default="bpr,lightgcn,vbpr,freedom,alignrec")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--stopping-step", type=int, default=20)
    p.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock cap per run (0 = none)")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument(
        "--merge",
        action="append",
        default=[],
        help="more seeds.jsonl files (from parallel runs) to include in the table",
    )
    p.add_argument(
        "--learning-rates",
        default=None,
        help="comma-separated learning rates replacing the grids' (e.g. 0.005,0.01 for the toy set)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--rows",
        default="main,ablations",
        help="which seed runs: main, ablations, or single ablations abl0..abl8 (comma-separated)",
    )
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    args.rows = args.rows.split(",")

    import torch

    torch.set_num_threads(args.threads)
    from alignrec_lite.data import open_dataset
    from alignrec_lite.files import atomic_write

    ds = open_dataset(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {len(ds.train)} train; features "
        f"{ {k: v.shape for k, v in ds.features.items()} }; {platform.processor()} x{os.cpu_count()}",
        flush=True,
    )
    if args.stage in ("tune", "all"):
        tune(ds, args)
    if args.stage in ("seeds", "all"):
        seed_runs(ds, args, load_chosen(out, args.models))
    if args.stage in ("table", "seeds", "all"):
        md = table(args)
        with atomic_write(out / "table.md") as fh:
            fh.write(md)
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
