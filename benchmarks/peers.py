"""The kit against the original code on the same data and settings: test Recall@20 / NDCG@20 over seeds.

Issue 14, item 2. For each model, one process per (side, seed): the original (MMRec's
``BPR``, ``LightGCN``, ``VBPR``, ``FREEDOM``; the official ``ALIGNREC`` with
``--ui_cosine_loss``) trains with its own ``Trainer.fit`` (validation every epoch, early
stopping on valid Recall@20, test at the best-valid epoch), and the kit trains with
:func:`alignrec_lite.train.train` on the **same files** with the **same** settings. The
settings are the kit's tuned preset for the dataset (``config.TUNED_DEFAULTS``), written
into both configurations; the kit's AlignRec runs in the official-maths mode
(``finetune_features=true``, the feature table trainable as in the official code).

Data (written once under ``SCRATCH/peer_data/``, never into the repository):

* ``movielens``: a stage-1 ICA working copy of MovieLens with posters
  (``open_stage1("movielens", "ica", seed=2024)``, what notebooks 05-08 read): its
  ``.inter`` file (+ the ``timestamp`` column the official loader reads by name), the raw
  tiny-cnn ``image_feat.npy`` and MiniLM ``text_feat.npy`` (VBPR, FREEDOM), and, in a
  second folder ``movielens-mm``, the ICA vector ``mm_feat.npy`` saved as the
  ``image_feat.npy`` the official AlignRec reads (its one "BEiT-3" feature).
* ``baby``: MMRec's Amazon Baby split (BPR and LightGCN only: no features needed).

The originals need a dataset yaml for a dataset they do not ship: a run with the original side
writes ``src/configs/dataset/<name>.yaml`` into each clone (a copy of their ``baby.yaml`` with the
file name changed), beside race.py's device edits (``race.py SCRATCH --prepare``). Usage::

    python benchmarks/race.py SCRATCH --prepare
    python benchmarks/peers.py SCRATCH --dataset movielens --source <ICA copy folder> \\
        --models bpr,lightgcn,vbpr,freedom,alignrec --seeds 1,2,3 --out benchmarks/out/peers.jsonl
    python benchmarks/peers.py SCRATCH --dataset baby --source $ALIGNREC_DATA/amazon-baby-mmrec \\
        --models bpr,lightgcn --seeds 999 --set learning_rate=0.005 --out benchmarks/out/peers_baby.jsonl
    python benchmarks/peers.py SCRATCH --table benchmarks/out/peers.jsonl

Runs are appended to ``--out`` one JSON line each and skipped when already there, so a
rerun resumes. Sides alternate (kit, original) within each seed so that load falls on both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from race import ROOT, copy_inter, kit_dataset, open_original, run_worker  # the sibling script: shims, data, workers

#: model -> (original repository, original model name, extra command-line flags, kit features -> file).
PEERS: dict[str, tuple[str, str, list[str], dict[str, str]]] = {
    "bpr": ("MMRec", "BPR", [], {}),
    "lightgcn": ("MMRec", "LightGCN", [], {}),
    "vbpr": ("MMRec", "VBPR", [], {"image": "image", "text": "text"}),
    "freedom": ("MMRec", "FREEDOM", [], {"image": "image", "text": "text"}),
    "alignrec": ("AlignRec_CIKM24", "ALIGNREC", ["--ui_cosine_loss"], {"mm": "image"}),
}
#: Caps, the same on both sides (MMRec's overall.yaml stops after 20 non-improving epochs).
CAPS = {"epochs": 300, "stopping_step": 20}
#: Kit settings that are not hyper-parameters of the original (or have another name there).
KIT_ONLY = {
    "batch_size",
    "weight_decay",
    "lr_decay",
    "lr_decay_step",
    "eval_step",
    "eval_batch_users",
    "mask_valid_at_test",
    "valid_metric",
    "device",
    "max_minutes",
    "model",
    "feature_source",
    "branches",
    "finetune_features",
    "use_ln",
    "warmup_ui",
    "sim_cache_mb",
    "cl_temperature",
}


def settings(model: str, dataset: str, seed: int, overrides: dict | None = None) -> dict:
    """The kit's resolved config for ``model`` on ``dataset`` (its preset), with the caps, seed and overrides."""
    from alignrec_lite.config import resolve_config

    extra = {"finetune_features": True, "feature_source": "mm"} if model == "alignrec" else {}
    over = {**CAPS, **extra, **(overrides or {}), "seed": seed, "device": "cpu"}
    return resolve_config(model, over, dataset)  # the preset named like the dataset, if there is one


def their_config(cfg: dict) -> dict:
    """The same settings under the originals' names."""
    out = {k: v for k, v in cfg.items() if k not in KIT_ONLY}
    out["train_batch_size"] = cfg["batch_size"]
    out["learning_rate_scheduler"] = [cfg["lr_decay"], cfg["lr_decay_step"]]
    out["weight_decay"] = cfg["weight_decay"]
    if cfg["model"] == "alignrec" and cfg["cl_temperature"] != 0.2:
        raise SystemExit("the official ALIGNREC hard-codes the InfoNCE temperature 0.2")
    return out


# ------------------------------------------------------------------ data
def peer_data(scratch: Path, dataset: str, source: Path) -> Path:
    """``SCRATCH/peer_data/<dataset>/<dataset>/`` (and ``<dataset>-mm``), written once from ``source``."""
    root = scratch / "peer_data"
    main = root / dataset / dataset
    if not (main / f"{dataset}.inter").exists():
        main.mkdir(parents=True, exist_ok=True)
        inters = sorted(source.glob("*.inter"))
        if len(inters) != 1:
            raise SystemExit(f"{source}: expected one .inter file, found {[p.name for p in inters]}")
        for name in ("image_feat.npy", "text_feat.npy"):
            if (source / name).exists():
                shutil.copyfile(source / name, main / name)
        copy_inter(inters[0], main / f"{dataset}.inter")  # last: its presence marks a finished copy
    mm = root / f"{dataset}-mm" / dataset
    if (source / "mm_feat.npy").exists() and not (mm / f"{dataset}.inter").exists():
        mm.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "mm_feat.npy", mm / "image_feat.npy")
        shutil.copyfile(main / f"{dataset}.inter", mm / f"{dataset}.inter")
    return root


def prepare_yaml(scratch: Path, dataset: str) -> list[str]:
    """Write ``configs/dataset/<dataset>.yaml`` into each clone (their ``baby.yaml``, file name changed)."""
    done = []
    for repo in ("MMRec", "AlignRec_CIKM24"):
        folder = scratch / repo / "src" / "configs" / "dataset"
        path = folder / f"{dataset}.yaml"
        if dataset == "baby" or path.exists():
            continue
        text = (folder / "baby.yaml").read_text(encoding="utf-8")
        if text.count("inter_file_name: 'baby.inter'") != 1:
            raise SystemExit(f"{folder / 'baby.yaml'}: no inter_file_name line; is this the fetched commit?")
        path.write_text(text.replace("'baby.inter'", f"'{dataset}.inter'"), encoding="utf-8")
        done.append(f"{repo}: {path.relative_to(scratch / repo)}")
    return done


def data_folder(root: Path, dataset: str, model: str) -> Path:
    return root / (f"{dataset}-mm" if model == "alignrec" else dataset)


# ------------------------------------------------------------------ workers (one process each)
def worker_kit(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from alignrec_lite.train import train

    ds = kit_dataset(Path(args.data) / args.dataset, PEERS[args.model][3])
    cfg = settings(args.model, args.dataset, args.seed, json.loads(args.overrides))
    t0 = time.perf_counter()
    _, rec = train(ds, args.model, {k: v for k, v in cfg.items() if k != "model"}, progress=False)
    return {
        "valid": {k: rec["valid"][k] for k in ("recall@20", "ndcg@20")},
        "test": {k: rec["test"][k] for k in ("recall@20", "ndcg@20")},
        "epochs_run": rec["epochs_run"],
        "best_epoch": rec["best_epoch"],
        "seconds": round(time.perf_counter() - t0, 1),
        "config": their_config(cfg),
    }


def worker_original(args: argparse.Namespace) -> dict:
    import runpy

    import torch

    torch.set_num_threads(args.threads)
    repo, name, argv, _ = PEERS[args.model]
    src = open_original(Path(args.scratch), repo)
    import utils.quick_start as quick_start_module  # the original package, from the scratch clone

    out: dict = {}
    cfg = their_config(settings(args.model, args.dataset, args.seed, json.loads(args.overrides)))

    def one_point(model, dataset, config_dict, save_model=True, mg=False):
        # quick_start's steps for one grid point, with the kit's settings written over the yaml's
        from utils.configurator import Config
        from utils.dataloader import EvalDataLoader, TrainDataLoader
        from utils.dataset import RecDataset
        from utils.utils import get_model, get_trainer, init_seed

        config = Config(model, dataset, {**config_dict, "data_path": str(Path(args.data)) + "/"})
        for key, value in cfg.items():
            config[key] = value
        data = RecDataset(config)
        str(data)  # quick_start logs it; __str__ also sets inter_num, which the loader reads
        train_ds, valid_ds, test_ds = data.split()
        for part in (train_ds, valid_ds, test_ds):
            str(part)  # as quick_start's logging does: sets inter_num
        train_data = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"], shuffle=True)
        bs = config["eval_batch_size"]
        valid_data = EvalDataLoader(config, valid_ds, additional_dataset=train_ds, batch_size=bs)
        test_data = EvalDataLoader(config, test_ds, additional_dataset=train_ds, batch_size=bs)
        init_seed(config["seed"])
        train_data.pretrain_setup()
        net = get_model(config["model"])(config, train_data).to(config["device"])
        trainer = get_trainer()(config, net)
        epochs = [0]
        inner = trainer._train_epoch

        def counted(*a, **k):
            epochs[0] += 1
            return inner(*a, **k)

        trainer._train_epoch = counted
        t0 = time.perf_counter()
        _, best_valid, best_test = trainer.fit(train_data, valid_data=valid_data, test_data=test_data, saved=False)
        out.update(
            {
                "valid": {k: float(best_valid[k]) for k in ("recall@20", "ndcg@20")},
                "test": {k: float(best_test[k]) for k in ("recall@20", "ndcg@20")},
                "epochs_run": epochs[0],
                "seconds": round(time.perf_counter() - t0, 1),
                "config": cfg,
            }
        )

    quick_start_module.quick_start = one_point
    sys.argv = ["main.py", "--model", name, "--dataset", args.dataset, *argv]
    runpy.run_path(str(src / "main.py"), run_name="__main__")
    return out


# ------------------------------------------------------------------ driver
def run_one(args: argparse.Namespace, side: str, model: str, seed: int, data: Path) -> dict:
    argv = [str(Path(__file__).resolve()), str(args.scratch), "--worker", side,
            "--model", model, "--seed", str(seed), "--dataset", args.dataset, "--data", str(data),
            "--threads", str(args.threads), "--overrides", args.overrides]  # fmt: skip
    rec, process = run_worker(argv, args.threads, args.timeout, f"{side} {model} seed {seed}")
    rec.update({"dataset": args.dataset, "model": model, "side": side, "seed": seed, "threads": args.threads,
                "loadavg_start": process["loadavg_start"], "loadavg_end": process["loadavg_end"]})  # fmt: skip
    print(
        f"  {args.dataset} {model:8s} {side:8s} seed {seed}: test R@20 {rec['test']['recall@20']:.4f} "
        f"N@20 {rec['test']['ndcg@20']:.4f}  ({rec['epochs_run']} epochs, {rec['seconds']} s, load "
        f"{rec['loadavg_start']} -> {rec['loadavg_end']})",
        flush=True,
    )
    return rec


def table(records: list[dict]) -> str:
    """Markdown: per dataset, model and metric, each side's mean ± std; is the kit's mean inside the originals'
    range of seeds, and Welch's t-test of kit against original (p; needs two runs a side)."""
    from alignrec_lite.longtail import welch_t

    def ms(vals: list[float]) -> str:
        return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else f"{vals[0]:.4f}"

    lines = [
        "| dataset | model | metric | original (mean ± std) | kit (mean ± std) | original's range | kit's mean inside? "
        "| Welch p, kit vs original | n (orig / kit) | epochs (orig / kit) | s per run (orig / kit) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = []
    for r in records:
        if (r["dataset"], r["model"]) not in keys:
            keys.append((r["dataset"], r["model"]))
    for dataset, model in keys:
        runs = {
            s: [r for r in records if (r["dataset"], r["model"], r["side"]) == (dataset, model, s)]
            for s in ("original", "kit")
        }
        if not runs["original"] or not runs["kit"]:
            continue
        for metric in ("recall@20", "ndcg@20"):
            o = [r["test"][metric] for r in runs["original"]]
            k = [r["test"][metric] for r in runs["kit"]]
            inside = min(o) <= statistics.mean(k) <= max(o)
            p = f"{welch_t(k, o)['p']:.2f}" if min(len(o), len(k)) > 1 else "–"
            lines.append(
                f"| {dataset} | {model} | test {metric} | {ms(o)} | {ms(k)} | {min(o):.4f}–{max(o):.4f} | "
                f"{'yes' if inside else '**no**'} | {p} | {len(o)} / {len(k)} | "
                f"{statistics.mean(r['epochs_run'] for r in runs['original']):.0f} / "
                f"{statistics.mean(r['epochs_run'] for r in runs['kit']):.0f} | "
                f"{statistics.median(r['seconds'] for r in runs['original']):.0f} / "
                f"{statistics.median(r['seconds'] for r in runs['kit']):.0f} |"
            )
    return "\n".join(lines) + "\n"


def read_records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scratch", type=Path, help="folder holding the AlignRec_CIKM24 and MMRec clones")
    ap.add_argument("--dataset", default="movielens", help="its name: movielens, baby (the kit's presets) or other")
    ap.add_argument("--source", type=Path, help="the MMRec-format folder the data copy is made from")
    ap.add_argument("--models", default="bpr,lightgcn,vbpr,freedom,alignrec")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--sides", default="kit,original")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=7200)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for both sides over the preset (kit names, e.g. learning_rate=0.005)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "peers.jsonl")
    ap.add_argument("--table", type=Path, help="only print the table of this JSON-lines file")
    ap.add_argument("--worker", choices=["kit", "original"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.set:
        args.overrides = json.dumps(dict(item.split("=", 1) for item in args.set))
    if args.worker:
        rec = (worker_kit if args.worker == "kit" else worker_original)(args)
        print(json.dumps(rec))
        return 0
    if args.table:
        print(table(read_records(args.table)), end="")
        return 0
    if args.source is None:
        ap.error("--source is required to run")
    for line in prepare_yaml(args.scratch, args.dataset) if "original" in args.sides else []:
        print("dataset yaml:", line)
    root = peer_data(args.scratch, args.dataset, args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = read_records(args.out)
    for model in args.models.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for side in args.sides.split(","):
                if any((r["dataset"], r["model"], r["side"], r["seed"]) == (args.dataset, model, side, seed)
                       for r in done):  # fmt: skip
                    continue
                rec = run_one(args, side, model, seed, data_folder(root, args.dataset, model))
                done.append(rec)
                with args.out.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")
    print(table(done), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
