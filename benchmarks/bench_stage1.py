"""Stage-1 benchmark: feature extraction throughput, ICA training time, intermediate metrics.

Measures on MovieLens with posters (or any MMRec folder with ``items.csv``):

* items/s of ``extract_features`` for the tiny CNN image tower and the MiniLM text
  tower (median over ``--repeats`` fresh extractions into a scratch copy);
* wall time of ICA pre-training for each ICA variant (median over ``--seeds``);
* zero-shot and item-CF Recall@20 / NDCG@20, mask-modality robustness and
  alignment/uniformity for (a) MiniLM text alone, (b) the untrained image tower,
  (c) the naive concatenation, (d) the ICA-fused feature of each variant (median,
  min and max over ``--seeds``), plus the ICA-trained image tower alone.

Usage::

    ALIGNREC_DATA=/path/to/data python benchmarks/bench_stage1.py --data /tmp/ml_features \\
        --work /tmp/bench_stage1 --repeats 3 --seeds 0 1 2 --json /tmp/stage1.json

``--data`` is a folder holding image_feat.npy/text_feat.npy from ``alignrec-lite features``, or a
dataset name of :func:`alignrec_lite.data.open_dataset` (``--data movielens``: MovieLens with posters,
built from $ALIGNREC_DATA and its features extracted on first use).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from alignrec_lite.data import open_dataset
from alignrec_lite.encoders import extract_features
from alignrec_lite.feature_eval import evaluate_features, format_table
from alignrec_lite.ica import ICAConfig, pretrain_ica
from alignrec_lite.utils import versions

VARIANTS = {
    "ica-mean-128": dict(),
    "ica-lit-384": dict(embed_dim=384, tower_dim=384),
    "ica-lit-384-clip-only": dict(embed_dim=384, tower_dim=384, mask_weight=0.0),
}


def _fresh_copy(src: Path, dst: Path, keep: tuple[str, ...] = ()) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache", "*_feat*.npy", "features.json"))
    for name in keep:
        shutil.copy2(src / name, dst / name)
    return dst


def _load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def bench_extraction(data: Path, work: Path, repeats: int) -> dict:
    out: dict = {"image": [], "text": []}
    for r in range(repeats):
        for modality, (img, txt) in {"image": ("tiny-cnn", None), "text": (None, "minilm")}.items():
            folder = _fresh_copy(data, work / f"extract_{modality}")
            t0, c0 = time.perf_counter(), time.process_time()
            man = extract_features(folder, img, txt, progress=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = man[modality]["shape"][0]
            out[modality].append(
                {
                    "items": n,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "items_per_s": n / wall,
                    "encode_s": man[modality]["seconds"],
                    "load_avg": _load_avg(),
                }
            )
            print(
                f"[extract {r + 1}/{repeats}] {modality}: {n} items in {wall:.1f} s ({n / wall:.1f} items/s)",
                flush=True,
            )
    return {
        m: {
            "runs": v,
            "median_items_per_s": statistics.median(x["items_per_s"] for x in v),
            "median_wall_s": statistics.median(x["wall_s"] for x in v),
        }
        for m, v in out.items()
    }


def bench_ica(data: Path, work: Path, seeds: list[int], epochs: int, variants: list[str]) -> dict:
    """Train every ICA variant once per seed (the seeds double as timing repeats)."""
    res = {}
    for name in variants:
        runs = []
        for seed in seeds:
            folder = _fresh_copy(
                data, work / f"ica_{name}_s{seed}", keep=("image_feat.npy", "text_feat.npy", "features.json")
            )
            cfg = ICAConfig(epochs=epochs, seed=seed, **VARIANTS[name])
            t0, c0 = time.perf_counter(), time.process_time()
            result = pretrain_ica(folder, cfg, progress=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs.append(
                {
                    "seed": seed,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "train_s": result["train_seconds"],
                    "final_loss": result["final_loss"],
                    "load_avg": _load_avg(),
                    "folder": str(folder),
                    "run_dir": str(result["run_dir"]),
                    "geometry_before": result["geometry_before"],
                    "geometry_after": result["geometry_after"],
                    "history": result["history"],
                }
            )
            print(
                f"[ica {name} seed {seed}] {wall:.1f} s total, {result['train_seconds']:.1f} s training, "
                f"loss {result['final_loss']:.4f}",
                flush=True,
            )
        res[name] = {
            "config": VARIANTS[name],
            "epochs": epochs,
            "runs": runs,
            "median_wall_s": statistics.median(x["wall_s"] for x in runs),
            "median_train_s": statistics.median(x["train_s"] for x in runs),
        }
    return res


def _median_row(rows: list[dict], source: str) -> dict:
    out: dict = {"source": source, "dim": rows[0]["dim"], "n_seeds": len(rows)}
    for key in rows[0]:
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if key not in ("source", "dim") and len(vals) == len(rows):
            out[key] = statistics.median(vals)
            out[f"{key}/min"], out[f"{key}/max"] = min(vals), max(vals)
    return out


def bench_metrics(data: Path, ica: dict) -> dict:
    """Intermediate metrics of (a) text, (b) untrained image, (c) concat, (d) every ICA variant (median of seeds)."""
    t0 = time.perf_counter()
    table = evaluate_features(data, sources=["text", "image", "image+text"], ks=(10, 20, 50), progress=False)
    per_seed: list[dict] = []
    for name, r in ica.items():
        fused, tower = [], []
        for run in r["runs"]:
            # judged from the run's own folder so that its masked views are used
            row = evaluate_features(run["folder"], sources=["mm"], ks=(10, 20, 50), reference=False)["rows"][0]
            row["source"] = f"{name} (seed {run['seed']})"
            fused.append(row)
            img = np.load(Path(run["run_dir"]) / "ica_image.npy")
            side = evaluate_features(data, sources=["tower"], ks=(10, 20, 50), reference=False, extra={"tower": img})[
                "rows"
            ][0]
            tower.append(side)
        per_seed += fused
        table["rows"].append(_median_row(fused, name))
        table["rows"].append(_median_row(tower, f"{name}: image tower"))
    table["per_seed"] = per_seed
    table["seconds"] = time.perf_counter() - t0
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="MovieLens folder with image/text features, or `movielens`")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_stage1"), help="scratch folder")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="ICA seeds (also the timing repeats)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--skip-extraction", action="store_true")
    p.add_argument("--json", type=Path, help="write all results here")
    args = p.parse_args(argv)
    args.data = open_dataset(args.data, progress=False).path  # a name: built and features extracted on first use
    info = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions(),
        "load_avg_start": _load_avg(),
    }
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"info": info}
    if not args.skip_extraction:
        results["extraction"] = bench_extraction(args.data, args.work, args.repeats)
    results["ica"] = bench_ica(args.data, args.work, args.seeds, args.epochs, args.variants)
    results["metrics"] = bench_metrics(args.data, results["ica"])
    info["load_avg_end"] = _load_avg()
    print(format_table(results["metrics"]))
    if args.json:
        from alignrec_lite.files import write_json

        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
