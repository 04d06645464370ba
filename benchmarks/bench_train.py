"""Time training epochs, evaluation and peak memory of the kit's models.

Each (dataset, model) pair runs in its own Python process, so the peak RSS it
reports is that model's alone. A run trains ``--epochs`` epochs with the normal
trainer (:func:`alignrec_lite.train.train`: same sampler, batch size 2048, Adam,
loss and full forward per batch as a real run), validates once at the end, and
reports the **median** seconds per epoch (the first epoch includes one-off work
such as AlignRec's squared-cosine cache, so the median ignores it), the
evaluation time on valid, the model build time (graphs, kNN) and the peak RSS.

Datasets:

* ``baby``: MMRec's Amazon Baby split (19,445 users x 7,050 items, 119,674 train
  interactions) from ``--baby DIR``. It has no content features, so the content
  models get a seeded random 768-d ``mm`` feature — the size of AlignRec's
  BEiT-3 feature and the setting of the official-code timing (ALIGNREC_SPEC §5.5).
* ``movielens``: an MMRec folder built by ``alignrec-lite data build movielens``
  (``--movielens DIR``), with whatever feature files it holds.

Example::

    python benchmarks/bench_train.py --baby ../shared/data/amazon-baby-mmrec \\
        --models bpr,lightgcn,vbpr,freedom,alignrec --epochs 5 --threads 2 \\
        --out benchmarks/out/bench.jsonl --markdown benchmarks/out/bench.md

``--variant NAME:MODEL:key=value,key=value`` adds a configuration (for example
``alignrec-direct-sim:alignrec:sim_cache_mb=0``) to measure what one optimisation buys.
The machine is often shared: the load average before and after each run is
recorded next to the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(dataset: str, path: str, feat_dim: int):
    import numpy as np

    from alignrec_lite.data import open_dataset

    ds = open_dataset(path, features=None if dataset == "baby" else "auto")
    if dataset == "baby" and feat_dim > 0:
        rng = np.random.default_rng(0)
        ds.features["mm"] = rng.normal(size=(ds.n_items, feat_dim)).astype(np.float32)
    return ds


def worker(args: argparse.Namespace) -> dict:
    """Run one timing inside this process and return its record."""
    import torch

    torch.set_num_threads(args.threads)
    from alignrec_lite.config import resolve_config
    from alignrec_lite.models import build_model
    from alignrec_lite.train import train

    overrides = json.loads(args.overrides)
    ds = _load(args.dataset, args.path, args.feat_dim)
    cfg = {
        "epochs": args.epochs,
        "eval_step": args.epochs,
        "stopping_step": 10**6,
        "seed": 0,
        "device": "cpu",
        **overrides,
    }
    t0 = time.perf_counter()
    build_model(args.model, ds, resolve_config(args.model, cfg, ds.name))
    build_s = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    stamps: list[tuple[float, float]] = []

    def stamp(epoch, net, record) -> None:
        stamps.append((time.perf_counter(), time.process_time()))

    t0, c0 = time.perf_counter(), time.process_time()
    _, rec = train(ds, args.model, cfg, progress=False, callbacks=[stamp])
    wall = time.perf_counter() - t0
    # epoch-to-epoch wall and CPU times (the first also holds the model build, the last the evaluation)
    marks = [(t0, c0)] + stamps
    epochs = [round(b[0] - a[0], 3) for a, b in zip(marks[:-1], marks[1:])]
    cpu = [round(b[1] - a[1], 3) for a, b in zip(marks[:-1], marks[1:])]
    # CPU seconds of the middle epochs: on a shared machine this is what an idle one would take
    # (divided by the threads used, when they scale)
    mid_cpu = cpu[1:-1] if len(cpu) > 2 else cpu
    return {
        "name": args.name,
        "dataset": args.dataset,
        "model": args.model,
        "overrides": overrides,
        "users": ds.n_users,
        "items": ds.n_items,
        "train": int(len(ds.train)),
        "feature_source": rec["feature_source"],
        "epochs": args.epochs,
        "seconds_per_epoch_median": rec["seconds_per_epoch"],
        "epoch_wall_seconds": epochs,
        "epoch_cpu_seconds": cpu,
        "cpu_seconds_per_epoch_median": round(statistics.median(mid_cpu), 3),
        "eval_seconds": rec["eval_seconds"],
        "build_seconds": round(build_s, 2),
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": rec["peak_rss_mb"],
        "n_parameters": rec["n_parameters"],
        "threads": args.threads,
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "valid_recall@20": rec["valid"].get("recall@20"),
        "torch": torch.__version__,
    }


def _parse_variants(models: list[str], variants: list[str]) -> list[tuple[str, str, dict]]:
    out = [(m, m, {}) for m in models]
    for v in variants:
        try:
            name, model, sets = v.split(":", 2)
        except ValueError:
            raise SystemExit(f"--variant expects NAME:MODEL:key=value,..., got {v!r}") from None
        kv = {}
        for item in filter(None, sets.split(",")):
            k, _, val = item.partition("=")
            kv[k] = val
        out.append((name, model, kv))
    return out


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | model | feature | wall s/epoch (median) | CPU s/epoch (median) | eval valid (s) | build (s) "
        "| peak RSS (MB) | params | threads | load avg (before → after) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['name']} | {r['feature_source'] or '-'} | {r['seconds_per_epoch_median']:.2f} | "
            f"{r['cpu_seconds_per_epoch_median']:.2f} | "
            f"{r['eval_seconds']:.2f} | {r['build_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['n_parameters']:,} | "
            f"{r['threads']} | {r['loadavg_before']} → {r['loadavg_after']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baby", help="MMRec Baby folder (amazon-baby-mmrec)")
    p.add_argument("--movielens", help="MovieLens-with-posters MMRec folder")
    p.add_argument("--models", default="bpr,lightgcn,vbpr,freedom,alignrec")
    p.add_argument("--baby-models", default=None, help="models for Baby (default: --models)")
    p.add_argument("--variant", action="append", default=[], help="NAME:MODEL:key=value,...")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--feat-dim", type=int, default=768, help="random feature size for Baby (0 = none)")
    p.add_argument("--out", default=str(HERE / "out" / "bench.jsonl"))
    p.add_argument("--markdown", default=None, help="also write the table here")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from alignrec_lite.files import atomic_write

    jobs = []
    if args.baby:
        models = (args.baby_models or args.models).split(",")
        for name, model, kv in _parse_variants(models, args.variant):
            jobs.append(("baby", args.baby, name, model, kv))
    if args.movielens:
        for name, model, kv in _parse_variants(args.models.split(","), args.variant):
            jobs.append(("movielens", args.movielens, name, model, kv))
    if not jobs:
        p.error("give --baby and/or --movielens")
    rows = []
    for dataset, path, name, model, kv in jobs:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--dataset",
            dataset,
            "--path",
            path,
            "--model",
            model,
            "--name",
            name,
            "--overrides",
            json.dumps(kv),
            "--epochs",
            str(args.epochs),
            "--threads",
            str(args.threads),
            "--feat-dim",
            str(args.feat_dim),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            return res.returncode
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{dataset:9s} {name:24s} {row['seconds_per_epoch_median']:7.2f} s/epoch (CPU "
            f"{row['cpu_seconds_per_epoch_median']:.2f})  eval {row['eval_seconds']:.2f} s"
            f"  peak {row['peak_rss_mb']:.0f} MB  load {row['loadavg_before']}",
            flush=True,
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "argv": sys.argv[1:],
    }
    with atomic_write(out) as fh:
        for r in rows:
            fh.write(json.dumps({**meta, **r}) + "\n")
    if args.markdown:
        with atomic_write(Path(args.markdown)) as fh:
            fh.write(_markdown(rows))
    print(_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
