"""A same-machine speed race: the kit against the official AlignRec code and MMRec.

Issue 14, item 3. The kit and the original code train on the **same** data (MMRec's
Baby split, 19,445 users x 7,050 items, 59 batches of 2,048) with the **same**
seeded random features, one process per contender, interleaved (ours, theirs,
ours, theirs, ...), at each thread count. Each process builds its model (not
timed), runs one warm-up epoch (not counted: one-off work such as AlignRec's
squared-cosine cache), then ``--epochs`` timed epochs. An epoch is what each
trainer does per epoch: ``pre_epoch`` (FREEDOM's edge dropping), every batch's
forward, backward and Adam step, and the scheduler step; no evaluation. The
report gives the median seconds per epoch of each contender, the ratio
``theirs / ours`` and the 1-minute load average (``os.getloadavg()``) before and
after every process, because the machine is shared.

Races (``--races``):

* ``alignrec``: the official ``ALIGNREC`` (``sjtulyf123/AlignRec_CIKM24``, run as its
  ``scripts.sh`` does: ``--ui_cosine_loss``, lr 0.001, cl_loss 0.01, sim_weight 0.1,
  n_layers 1, knn_k 10, seed 999) against the kit's ``alignrec`` with
  ``finetune_features=true`` (the official maths) and, as a second row, the kit's
  default (frozen features). Feature: a seeded random 768-d ``image_feat.npy``.
* ``lightgcn``: MMRec's ``LightGCN`` against the kit's (2 layers, reg 1e-4).
* ``freedom``: MMRec's ``FREEDOM`` against the kit's (dropout 0.8, reg 1e-4, knn 10,
  trainable feature tables on both sides), with seeded random 4,096-d image and
  384-d text features (the sizes of MMRec's Baby features).

The original code is **not** part of the kit (GPL / no licence). The script takes
the folder that holds the two clones and edits nothing but the device lines listed
in :data:`DEVICE_EDITS` (``--prepare`` applies them; docs/benchmarks/peers.md has
the recipe). Three run-time shims stand in for what today's environment lacks (an
empty ``lmdb`` module for MMRec's unused import; SciPy's removed
``dok_matrix._update``; NumPy's removed ``np.float`` alias), and the data copy gets the ``timestamp`` column the
official loader reads by name::

    git clone <fetched AlignRec_CIKM24> SCRATCH/AlignRec_CIKM24
    git clone <fetched MMRec> SCRATCH/MMRec
    python benchmarks/race.py SCRATCH --prepare
    python benchmarks/race.py SCRATCH --baby $ALIGNREC_DATA/amazon-baby-mmrec \\
        --races alignrec --threads 1,2 --rounds 2 --epochs 2 \\
        --out benchmarks/out/race.jsonl --markdown benchmarks/out/race.md
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
ROOT = HERE.parent

#: The only edits the originals need to run on a CPU: ``(repo folder, file, old text, new text)``.
DEVICE_EDITS: list[tuple[str, str, str, str]] = [
    (
        "AlignRec_CIKM24",
        "src/models/alignrec.py",
        "self.mm_original_adj = mm_adj.cuda()",
        "self.mm_original_adj = mm_adj.to(self.device)",
    ),
    (
        "AlignRec_CIKM24",
        "src/utils/utils.py",
        "torch.zeros(num_nodes,dtype=edge_weight.dtype).cuda()",
        "torch.zeros(num_nodes,dtype=edge_weight.dtype,device=edge_weight.device)",
    ),
    ("AlignRec_CIKM24", "src/configs/overall.yaml", "use_gpu: True", "use_gpu: False"),
    ("MMRec", "src/configs/overall.yaml", "use_gpu: True", "use_gpu: False"),
]

#: Per race: the original repository, its model name, its extra command-line flags and
#: the scalar hyper-parameters (the yaml grids' lists replaced by one point, as
#: quick_start does for one grid point); the kit's model and settings.
RACES: dict[str, dict] = {
    "alignrec": {
        "repo": "AlignRec_CIKM24",
        "their_model": "ALIGNREC",
        "argv": ["--ui_cosine_loss"],
        "their_config": {
            "learning_rate": 0.001,
            "cl_loss": 0.01,
            "sim_weight": 0.1,
            "n_layers": 1,
            "knn_k": 10,
            "seed": 999,
        },
        "features": {"image": 768},
        "kit_model": "alignrec",
        "kit_variants": {
            "kit, official maths (finetune_features=true)": {"finetune_features": True},
            "kit, frozen features (default)": {},
        },
        "kit_features": {"mm": "image"},
    },
    "lightgcn": {
        "repo": "MMRec",
        "their_model": "LightGCN",
        "argv": [],
        "their_config": {"learning_rate": 0.001, "n_layers": 2, "reg_weight": 1e-4, "seed": 999},
        "features": {},
        "kit_model": "lightgcn",
        "kit_variants": {"kit": {"n_layers": 2, "reg_weight": 1e-4}},
        "kit_features": {},
    },
    "freedom": {
        "repo": "MMRec",
        "their_model": "FREEDOM",
        "argv": [],
        "their_config": {"learning_rate": 0.001, "dropout": 0.8, "reg_weight": 1e-4, "seed": 999},
        "features": {"image": 4096, "text": 384},
        "kit_model": "freedom",
        "kit_variants": {"kit": {"dropout": 0.8, "reg_weight": 1e-4, "finetune_features": True}},
        "kit_features": {"image": "image", "text": "text"},
    },
}


# ------------------------------------------------------------------ preparation
def prepare(scratch: Path) -> list[str]:
    """Apply :data:`DEVICE_EDITS` in the clones under ``scratch`` (idempotent); return what changed."""
    done = []
    for repo, rel, old, new in DEVICE_EDITS:
        path = scratch / repo / rel
        text = path.read_text(encoding="utf-8")
        if new in text and old not in text:
            continue
        if text.count(old) != 1:
            raise SystemExit(f"{path}: expected exactly one {old!r}; is this the fetched commit?")
        path.write_text(text.replace(old, new), encoding="utf-8")
        done.append(f"{repo}/{rel}: {old!r} -> {new!r}")
    return done


def copy_inter(source: Path, dest: Path) -> None:
    """Copy an MMRec ``.inter`` file, adding ``timestamp = 0`` when it has none (the official loader reads it)."""
    import pandas as pd

    df = pd.read_csv(source, sep="\t")
    if "timestamp" not in df.columns:  # MMRec's shipped files have one, the shared copies do not
        df["timestamp"] = 0
    df.to_csv(dest, sep="\t", index=False)


def kit_dataset(folder: Path, features: dict[str, str]):
    """The kit's dataset of an MMRec folder, with ``features`` (kit name -> ``<file>_feat.npy``) loaded."""
    import numpy as np

    from alignrec_lite.data.mmrec import load_mmrec

    ds = load_mmrec(str(folder), load_features=False)
    for kit_name, file_name in features.items():
        ds.features[kit_name] = np.load(folder / f"{file_name}_feat.npy")
    return ds


def race_data(scratch: Path, baby: Path, race: str) -> Path:
    """``SCRATCH/race_data/<race>/`` with ``baby/baby.inter`` and the seeded random features (made once)."""
    import numpy as np

    root = scratch / "race_data" / race
    folder = root / "baby"
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / "baby.inter"
    if not inter.exists():
        copy_inter(baby / "baby.inter", inter)
    n_items = None
    for seed, (name, dim) in enumerate(RACES[race]["features"].items()):
        path = folder / f"{name}_feat.npy"
        if path.exists():
            continue
        if n_items is None:
            import pandas as pd

            n_items = int(pd.read_csv(inter, sep="\t", usecols=["itemID"])["itemID"].max()) + 1
        rng = np.random.default_rng(seed)  # the image feature of the AlignRec race = bench_train.py's (seed 0)
        np.save(path, rng.normal(size=(n_items, dim)).astype(np.float32))
    return root


# ------------------------------------------------------------------ workers (one process each)
def open_original(scratch: Path, repo: str) -> Path:
    """Make the clone ``scratch/repo`` importable as the original does (cwd = its ``src``) with the three shims.

    The shims stand in for what today's environment lacks, not for their code: an empty ``lmdb``
    module (MMRec's ``utils/dataset.py`` imports it for end-to-end raw-image training only),
    SciPy's removed ``dok_matrix._update`` (MMRec's LightGCN / FREEDOM graph builders call it) and
    NumPy's removed aliases ``np.float`` / ``np.int`` (MMRec's ``utils/metrics.py`` NDCG and MAP use
    ``np.float``; they were the builtins ``float`` / ``int``, so restoring them changes no value).
    """
    src = scratch / repo / "src"
    os.chdir(src)
    sys.path.insert(0, str(src))
    try:
        import lmdb  # noqa: F401
    except ImportError:
        import types

        sys.modules["lmdb"] = types.ModuleType("lmdb")
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):  # SciPy >= 1.13 dropped it
        sp.dok_matrix._update = lambda self, data: self._dict.update(data)
    import numpy as np

    for alias, builtin in (("float", float), ("int", int)):  # NumPy >= 1.24 dropped them
        if alias not in np.__dict__:
            setattr(np, alias, builtin)
    return src


def worker_kit(args: argparse.Namespace) -> dict:
    """Time the kit's trainer: ``1 + epochs`` epochs, plus one more whose end holds the evaluation."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from alignrec_lite.models import get_model_class
    from alignrec_lite.train import train

    spec = RACES[args.race]
    ds = kit_dataset(Path(args.data) / "baby", spec["kit_features"])
    starts: list[float] = []
    cls = get_model_class(spec["kit_model"])
    original = cls.pre_epoch

    cpu_starts: list[float] = []

    def pre_epoch(self, epoch, rng):  # the trainer calls it first thing in every epoch
        starts.append(time.perf_counter())
        cpu_starts.append(time.process_time())
        return original(self, epoch, rng)

    cls.pre_epoch = pre_epoch
    n = args.epochs + 2  # warm-up + timed + one whose end also evaluates (its own time is not used)
    cfg = {
        "epochs": n,
        "eval_step": n,
        "stopping_step": 10**6,
        "seed": 999,
        "device": "cpu",
        "learning_rate": 0.001,
        **json.loads(args.variant),
    }
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    _, rec = train(ds, spec["kit_model"], cfg, progress=False)
    wall = time.perf_counter() - t0
    epochs = [b - a for a, b in zip(starts[:-1], starts[1:])]  # epoch k = start k -> start k + 1
    cpu = [b - a for a, b in zip(cpu_starts[:-1], cpu_starts[1:])]
    return {
        "epoch_seconds": [round(x, 3) for x in epochs],
        "timed": [round(x, 3) for x in epochs[1:]],
        "timed_cpu": [round(x, 3) for x in cpu[1:]],
        "n_batches": int(np.ceil(len(ds.train) / 2048)),
        "wall_seconds": round(wall, 1),
        "loadavg_before": round(load0, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "feature_source": rec["feature_source"],
        "finetune_features": rec["finetune_features"],
        "torch": torch.__version__,
    }


def worker_official(args: argparse.Namespace) -> dict:
    """Time the original trainer's epoch: ``pre_epoch_processing``, ``_train_epoch``, scheduler step."""
    import runpy

    import torch

    torch.set_num_threads(args.threads)
    spec = RACES[args.race]
    src = open_original(Path(args.scratch), spec["repo"])
    import utils.quick_start as quick_start_module  # the original package, from the scratch clone

    out: dict = {}

    def timed_start(model, dataset, config_dict, save_model=True):
        # quick_start's steps up to the trainer, for one grid point, then epochs with a clock
        from utils.configurator import Config
        from utils.dataloader import TrainDataLoader
        from utils.dataset import RecDataset
        from utils.utils import get_model, get_trainer, init_seed

        config_dict = {**config_dict, "data_path": str(Path(args.data)) + "/"}
        config = Config(model, dataset, config_dict)
        for key, value in spec["their_config"].items():
            config[key] = value
        dataset = RecDataset(config)
        str(dataset)  # quick_start logs these; __str__ also sets inter_num, which the loader reads
        train_dataset, _, _ = dataset.split()
        str(train_dataset)
        train_data = TrainDataLoader(config, train_dataset, batch_size=config["train_batch_size"], shuffle=True)
        init_seed(config["seed"])
        train_data.pretrain_setup()
        net = get_model(config["model"])(config, train_data).to(config["device"])
        trainer = get_trainer()(config, net)
        load0 = os.getloadavg()[0]
        epochs, cpu = [], []
        for epoch in range(args.epochs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            net.pre_epoch_processing()
            trainer._train_epoch(train_data, epoch)
            trainer.lr_scheduler.step()
            epochs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out.update(
            {
                "epoch_seconds": [round(x, 3) for x in epochs],
                "timed": [round(x, 3) for x in epochs[1:]],
                "timed_cpu": [round(x, 3) for x in cpu[1:]],
                "n_batches": len(train_data) if hasattr(train_data, "__len__") else None,
                "loadavg_before": round(load0, 2),
                "loadavg_after": round(os.getloadavg()[0], 2),
                "device": str(config["device"]),
                "torch": torch.__version__,
            }
        )

    quick_start_module.quick_start = timed_start
    sys.argv = ["main.py", "--model", spec["their_model"], "--dataset", "baby", *spec["argv"]]
    runpy.run_path(str(src / "main.py"), run_name="__main__")
    return out


# ------------------------------------------------------------------ driver
def run_worker(argv: list[str], threads: int, timeout: float, what: str) -> tuple[dict, dict]:
    """One worker process (``python argv...``, the kit importable) at ``threads`` threads.

    Returns:
        ``(its last stdout line as JSON, {"loadavg_start", "loadavg_end", "process_seconds"})``.

    Raises:
        SystemExit: the worker failed (its stderr's tail is in the message).
    """
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-4000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return rec, {
        "process_seconds": round(time.perf_counter() - t0, 1),
        "loadavg_start": round(load0, 2),
        "loadavg_end": round(os.getloadavg()[0], 2),
    }


def run_one(
    args: argparse.Namespace, race: str, side: str, label: str, variant: dict, threads: int, data: Path
) -> dict:
    argv = [
        str(Path(__file__).resolve()),
        str(args.scratch),
        "--worker",
        side,
        "--race",
        race,
        "--threads",
        str(threads),
        "--epochs",
        str(args.epochs),
        "--data",
        str(data),
        "--variant",
        json.dumps(variant),
    ]
    rec, process = run_worker(argv, threads, args.timeout, f"{side} {race}")
    rec.update(
        {
            "race": race,
            "side": side,
            "contender": label,
            "threads": threads,
            **process,
            "median": round(statistics.median(rec["timed"]), 3),
        }
    )
    print(
        f"  {race:8s} {threads} thr  {label:48s} timed {rec['timed']} (CPU {rec.get('timed_cpu')})"
        f"  load {rec['loadavg_start']}"
        f" -> {rec['loadavg_end']}",
        flush=True,
    )
    return rec


def summarise(records: list[dict]) -> list[dict]:
    """Median s/epoch per (race, threads, contender) over all timed epochs, and the ratio to the original."""
    rows = []
    keys = sorted({(r["race"], r["threads"]) for r in records}, key=lambda k: (list(RACES).index(k[0]), k[1]))
    for race, threads in keys:
        recs = [r for r in records if r["race"] == race and r["threads"] == threads]
        theirs = [x for r in recs if r["side"] == "official" for x in r["timed"]]
        loads = [v for r in recs for v in (r["loadavg_start"], r["loadavg_end"])]
        t_med = statistics.median(theirs)
        for label in dict.fromkeys(r["contender"] for r in recs if r["side"] == "kit"):
            ours = [x for r in recs if r["contender"] == label for x in r["timed"]]
            o_med = statistics.median(ours)
            # process CPU seconds (recorded since issue 14 item 4): less sensitive to other jobs' time slices
            cpu_t = [x for r in recs if r["side"] == "official" for x in r.get("timed_cpu", [])]
            cpu_o = [x for r in recs if r["contender"] == label for x in r.get("timed_cpu", [])]
            cpu_ratio = round(statistics.median(cpu_t) / statistics.median(cpu_o), 2) if cpu_t and cpu_o else None
            rows.append(
                {
                    "race": race,
                    "threads": threads,
                    "contender": label,
                    "ours_median": round(o_med, 2),
                    "ours_epochs": ours,
                    "theirs_median": round(t_med, 2),
                    "theirs_epochs": theirs,
                    "ratio": round(t_med / o_med, 2),
                    "ours_cpu_median": round(statistics.median(cpu_o), 2) if cpu_o else None,
                    "theirs_cpu_median": round(statistics.median(cpu_t), 2) if cpu_t else None,
                    "cpu_ratio": cpu_ratio,
                    "loadavg_min": min(loads),
                    "loadavg_max": max(loads),
                }
            )
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}",
        "",
        "| race | threads | kit contender | kit s/epoch (median) | original s/epoch (median) | "
        "original / kit | CPU s/epoch, kit / original | original / kit, CPU | load average (1 min) during the race |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = (
            (f"{r['ours_cpu_median']:.2f} / {r['theirs_cpu_median']:.2f}", f"{r['cpu_ratio']:.1f}×")
            if r.get("cpu_ratio")
            else ("–", "–")
        )
        lines.append(
            f"| {r['race']} | {r['threads']} | {r['contender']} | {r['ours_median']:.2f} | "
            f"{r['theirs_median']:.2f} | **{r['ratio']:.1f}×** | {cpu[0]} | {cpu[1]} | "
            f"{r['loadavg_min']:.2f}–{r['loadavg_max']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scratch", help="folder holding the clones AlignRec_CIKM24/ and MMRec/ (outside the repo)")
    p.add_argument(
        "--baby",
        default=os.path.join(os.environ.get("ALIGNREC_DATA", "../shared/data"), "amazon-baby-mmrec"),
        help="MMRec's Baby folder (baby.inter)",
    )
    p.add_argument("--races", default="alignrec", help="comma list of alignrec, lightgcn, freedom")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (ours, theirs) per thread count")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per process (after one warm-up epoch)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per process")
    p.add_argument("--prepare", action="store_true", help="apply the device edits to the clones and exit")
    p.add_argument("--out", help="append one JSON line per process here")
    p.add_argument("--markdown", help="write the summary table here")
    # internal: one timed process
    p.add_argument("--worker", choices=("kit", "official"), help=argparse.SUPPRESS)
    p.add_argument("--race", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.scratch = Path(args.scratch).resolve()
    if args.worker:
        args.threads = int(args.threads)
        rec = worker_kit(args) if args.worker == "kit" else worker_official(args)
        print(json.dumps(rec))
        return 0
    if ROOT in args.scratch.parents or args.scratch == ROOT:
        raise SystemExit("the scratch folder must be outside the repository (the originals are GPL)")
    changed = prepare(args.scratch)
    for line in changed:
        print("device edit:", line)
    if args.prepare:
        return 0
    threads = [int(t) for t in args.threads.split(",")]
    races = [r for r in args.races.split(",") if r]
    records = []
    for race in races:
        data = race_data(args.scratch, Path(args.baby), race)
        spec = RACES[race]
        for t in threads:
            for _ in range(args.rounds):
                for label, variant in spec["kit_variants"].items():
                    records.append(run_one(args, race, "kit", label, variant, t, data))
                    if label == next(iter(spec["kit_variants"])):  # ours, theirs, (ours, second variant)
                        records.append(
                            run_one(args, race, "official", f"{spec['repo']} {spec['their_model']}", {}, t, data)
                        )
                if args.out:
                    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                    with open(args.out, "a", encoding="utf-8") as f:
                        for r in records[-(len(spec["kit_variants"]) + 1) :]:
                            f.write(json.dumps(r) + "\n")
    rows = summarise(records)
    command = "python benchmarks/race.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = markdown(rows, command)
    print(md)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(md, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
