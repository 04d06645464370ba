"""Old code against new code, interleaved: what a speed change buys on one training epoch.

Issue 14, item 4. On a shared machine only an *interleaved* comparison means anything:
this script times a baseline checkout of the kit (``--base``, e.g. a ``git worktree`` of
the last commit) against the working tree, one process per measurement, alternating
old, new, old, new, ... at ``--threads`` threads, and reports medians, their ratio and
the 1-minute load average (``os.getloadavg()``) around every process.

Two modes:

* ``--mode epoch`` (default): the normal trainer (:func:`alignrec_lite.train.train`, the
  same call as ``benchmarks/race.py``'s kit worker) on the race's Baby data: one warm-up
  epoch (not counted: one-off work such as the squared-cosine cache), ``--epochs`` timed
  epochs, and one last epoch whose end holds the evaluation (not counted). An epoch is
  ``pre_epoch`` + 59 batches of forward, backward and Adam step + the scheduler step.
* ``--mode batch``: the trainer's step (``net.loss``, ``backward``, Adam) inside
  :func:`~alignrec_lite.train.deterministic_cpu` on ``--batches`` batches after 3 warm-up
  batches; wall and process-CPU milliseconds per batch. Quicker, for one change at a time.

* ``--mode spmm``: LightGCN's sparse product alone (the normalised adjacency times a 64-column
  dense matrix, in this process, the working tree's kit): the kit's kernel against the other
  ways to compute it (64-bit CSR indices, COO, SciPy's CSR, the bipartite adjacency's two
  halves, and a reverse Cuthill-McKee reordering of the nodes without the gathers it would
  need), interleaved over ``--rounds`` rounds of ``--batches`` products each; median and
  least process-CPU milliseconds per product, and each result's largest difference from the kit's.

* ``--mode profile``: ``torch.profiler`` over ``--batches`` trainer steps of the *new* checkout only
  (after 3 warm-up batches), one table per variant, ops grouped by name and sorted by self CPU time,
  plus the process-CPU milliseconds per batch of an unprofiled pass over the same batches.

Data: ``--data`` is a folder holding ``baby/baby.inter`` and ``baby/image_feat.npy`` (the
seeded random 7,050 x 768 feature ``benchmarks/race.py`` writes into
``SCRATCH/race_data/alignrec/``), read as the ``mm`` feature.

Example (docs/benchmarks/models.md §1.3)::

    git worktree add --detach /tmp/speed_base HEAD     # the old code, before the change
    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py --base /tmp/speed_base \\
        --data /work/scratch/race_data/alignrec --variants frozen,official,lightgcn \\
        --rounds 3 --epochs 2 --threads 1 --out benchmarks/out/speed.jsonl

``--variants``: ``frozen`` (AlignRec, default ``finetune_features=false``), ``official``
(AlignRec, ``finetune_features=true``: the official code's maths), ``lightgcn``.
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

VARIANTS: dict[str, tuple[str, dict]] = {
    "frozen": ("alignrec", {}),
    "official": ("alignrec", {"finetune_features": True}),
    "lightgcn": ("lightgcn", {"n_layers": 2, "reg_weight": 1e-4}),
}


def _dataset(data: str, model: str):
    import numpy as np

    from alignrec_lite.data.mmrec import load_mmrec

    folder = Path(data) / "baby"
    ds = load_mmrec(str(folder), load_features=False)
    if model == "alignrec":
        ds.features["mm"] = np.load(folder / "image_feat.npy")
    return ds


def spmm_kernels(args: argparse.Namespace) -> str:
    """Time the ways to compute ``A @ X`` for LightGCN's adjacency (``--mode spmm``); a Markdown table."""
    import numpy as np
    import torch
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    from alignrec_lite import graphs

    torch.set_num_threads(args.threads)
    ds = _dataset(args.data, "lightgcn")
    a = graphs.normalized_adjacency(ds.interaction_matrix("train")).tocsr().astype(np.float32)
    x = torch.randn(a.shape[0], 64, generator=torch.Generator().manual_seed(0))
    n_u = ds.n_users
    kit = graphs.to_torch(a)
    idx64 = torch.sparse_csr_tensor(
        torch.from_numpy(a.indptr.astype(np.int64)), torch.from_numpy(a.indices.astype(np.int64)),
        torch.from_numpy(a.data), a.shape, check_invariants=False,
    )  # fmt: skip
    coo = kit.to_sparse_coo().coalesce()
    r_half, rt_half = graphs.to_torch(a[:n_u, n_u:].tocsr()), graphs.to_torch(a[n_u:, :n_u].tocsr())
    x_u, x_i, x_np = x[:n_u].contiguous(), x[n_u:].contiguous(), x.numpy()
    perm = torch.from_numpy(reverse_cuthill_mckee(a, symmetric_mode=True).astype(np.int64))
    rcm, x_rcm = graphs.to_torch(a[perm.numpy()][:, perm.numpy()].tocsr()), x[perm].contiguous()
    kit_name, rcm_name = "kit (MKL CSR, 32-bit indices, written once)", "RCM-reordered nodes (gathers not counted)"
    kernels = {
        kit_name: lambda: graphs._sparse_times_dense(kit, x),
        "torch.sparse.mm, 64-bit CSR indices": lambda: torch.sparse.mm(idx64, x),
        "torch.sparse.mm, COO": lambda: torch.sparse.mm(coo, x),
        "SciPy CSR": lambda: torch.from_numpy(a @ x_np),
        "two bipartite halves (R X_i, R^T X_u)": lambda: torch.cat(
            [graphs._sparse_times_dense(r_half, x_i), graphs._sparse_times_dense(rt_half, x_u)]
        ),
        rcm_name: lambda: graphs._sparse_times_dense(rcm, x_rcm),  # rows in the reordered nodes' order
    }
    ref = kernels[kit_name]()
    expected = {rcm_name: ref[perm]}  # the kit's rows, reordered like the RCM kernel's
    gaps = {k: float((f() - expected.get(k, ref)).abs().max()) for k, f in kernels.items()}
    times: dict[str, list[float]] = {k: [] for k in kernels}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, f in kernels.items():
            start = time.process_time()
            for _ in range(args.batches):
                f()
            times[name].append(1000 * (time.process_time() - start) / args.batches)
    lines = [
        f"{a.shape[0]:,} x {a.shape[0]:,} adjacency, {a.nnz:,} entries, times 64 columns; {args.threads} thread(s); "
        f"{args.rounds} rounds of {args.batches} products; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}",
        "",
        "| kernel | median CPU ms / product | least | largest difference from the kit's |",
        "|---|---|---|---|",
    ]
    for name, t in times.items():
        lines.append(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {gaps[name]:.1e} |")
    return "\n".join(lines)


def worker(args: argparse.Namespace) -> dict:
    """One measurement in this process (the kit imported from ``args.root``)."""
    sys.path.insert(0, args.root)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import alignrec_lite

    assert Path(alignrec_lite.__file__).resolve().is_relative_to(Path(args.root).resolve()), alignrec_lite.__file__
    model, variant = VARIANTS[args.variant]
    ds = _dataset(args.data, model)
    load0 = os.getloadavg()[0]
    rec: dict = {}
    if args.mode == "epoch":
        from alignrec_lite.models import get_model_class
        from alignrec_lite.train import train

        starts: list[float] = []
        cpu: list[float] = []
        cls = get_model_class(model)
        original = cls.pre_epoch

        def pre_epoch(self, epoch, rng):  # the trainer calls it first thing in every epoch
            starts.append(time.perf_counter())
            cpu.append(time.process_time())
            return original(self, epoch, rng)

        cls.pre_epoch = pre_epoch
        n = args.epochs + 2  # warm-up + timed + one whose end also evaluates (not used)
        cfg = {"epochs": n, "eval_step": n, "stopping_step": 10**6, "seed": 999, "device": "cpu"}
        cfg.update({"learning_rate": 0.001, **variant})
        _, run = train(ds, model, cfg, progress=False, preset="none")
        wall = [b - a for a, b in zip(starts[:-1], starts[1:])]
        cpus = [b - a for a, b in zip(cpu[:-1], cpu[1:])]
        rec.update(
            {
                "epoch_seconds": [round(x, 3) for x in wall],
                "timed": [round(x, 3) for x in wall[1:]],
                "timed_cpu": [round(x, 3) for x in cpus[1:]],
                "loss_history": [h.get("loss") for h in run["history"]],
            }
        )
    else:
        import contextlib

        import alignrec_lite.train as trainer
        from alignrec_lite.models import build_model

        torch.manual_seed(0)
        net = build_model(model, ds, {**variant})
        # the trainer's optimiser and allocator setting, where the checkout has them
        if hasattr(trainer, "make_optimizer"):
            opt = trainer.make_optimizer(net, {"learning_rate": 1e-3, "weight_decay": 0.0})
        else:
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        keep = getattr(trainer, "keep_freed_memory", None)
        batches = list(trainer.BPRSampler(ds, np.random.default_rng(0)).epoch(2048))
        wall, cpus, losses = [], [], []

        def step(b):
            terms = net.loss(*b)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            return terms

        if args.mode == "profile":
            from torch.profiler import ProfilerActivity, profile

            with trainer.deterministic_cpu(True), keep(True) if keep else contextlib.nullcontext():
                net.train()
                for b in batches[:3]:
                    step(b)
                c0 = time.process_time()
                for b in batches[3 : 3 + args.batches]:
                    step(b)
                plain = 1000 * (time.process_time() - c0) / args.batches
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for b in batches[3 : 3 + args.batches]:
                        step(b)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=44)
            print(table, file=sys.stderr)
            return {
                "cpu_ms_per_batch": round(plain, 1),
                "table": table,
                "loadavg_before": round(load0, 2),
                "loadavg_after": round(os.getloadavg()[0], 2),
            }
        with trainer.deterministic_cpu(True), keep(True) if keep else contextlib.nullcontext():
            net.train()
            for i, b in enumerate(batches[: 3 + args.batches]):
                t0, c0 = time.perf_counter(), time.process_time()
                terms = net.loss(*b)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt.step()
                losses.append(float(terms["loss"].detach()))
                if i >= 3:
                    wall.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
        rec.update(
            {
                "timed": [round(1000 * x, 2) for x in wall],
                "timed_cpu": [round(1000 * x, 2) for x in cpus],
                "losses": losses,
            }
        )
    rec.update({"loadavg_before": round(load0, 2), "loadavg_after": round(os.getloadavg()[0], 2)})
    return rec


def run_one(args: argparse.Namespace, side: str, root: str, variant: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("PYTHONPATH", None)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--root",
        root,
        "--variant",
        variant,
        "--mode",
        args.mode,
        "--data",
        args.data,
        "--threads",
        str(args.threads),
        "--epochs",
        str(args.epochs),
        "--batches",
        str(args.batches),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/", timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{side} {variant} failed:\n{proc.stderr[-4000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec.update({"side": side, "variant": variant, "mode": args.mode, "threads": args.threads})
    return rec


def summarise(rows: list[dict]) -> str:
    unit = "s/epoch" if rows[0]["mode"] == "epoch" else "ms/batch"
    lines = [
        f"| variant | old {unit} (median) | new {unit} (median) | old / new | old CPU | new CPU "
        "| load average (min–max) | processes per side |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        med = {}
        for side in ("old", "new"):
            timed = [x for r in mine if r["side"] == side for x in r["timed"]]
            cpu = [x for r in mine if r["side"] == side for x in r["timed_cpu"]]
            med[side] = (statistics.median(timed), statistics.median(cpu)) if timed else (float("nan"),) * 2
        loads = [x for r in mine for x in (r["loadavg_before"], r["loadavg_after"])]
        n = sum(r["side"] == "new" for r in mine)
        lines.append(
            f"| {variant} | {med['old'][0]:.3g} | {med['new'][0]:.3g} | **{med['old'][0] / med['new'][0]:.2f}×** | "
            f"{med['old'][1]:.3g} | {med['new'][1]:.3g} | {min(loads):.2f}–{max(loads):.2f} | {n} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="checkout of the old code (a git worktree)")
    p.add_argument("--new", default=str(ROOT), help="checkout of the new code (default: this working tree)")
    p.add_argument("--data", required=True, help="folder with baby/baby.inter and baby/image_feat.npy")
    p.add_argument("--variants", default="frozen,official,lightgcn")
    p.add_argument("--mode", choices=("epoch", "batch", "profile", "spmm"), default="epoch")
    p.add_argument("--rounds", type=int, default=2, help="old+new pairs per variant")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per process (epoch mode)")
    p.add_argument("--batches", type=int, default=15, help="timed batches per process (batch mode)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--out", default=None, help="append every process's JSON line here")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.mode == "spmm":
        sys.path.insert(0, args.new)
        print(spmm_kernels(args))
        return 0
    if args.mode == "profile":
        for variant in args.variants.split(","):
            rec = run_one(args, "new", args.new, variant)
            print(
                f"## {variant}: {rec['cpu_ms_per_batch']} CPU ms / batch unprofiled, "
                f"load {rec['loadavg_before']} -> {rec['loadavg_after']}\n{rec['table']}",
                flush=True,
            )
        return 0
    if not args.base:
        p.error("--base is required")
    meta = {
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "argv": sys.argv[1:],
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    rows = []
    for r in range(args.rounds):
        for variant in args.variants.split(","):
            for side, root in (("old", args.base), ("new", args.new)):
                rec = run_one(args, side, root, variant)
                rows.append(rec)
                print(
                    f"round {r} {variant:9s} {side}: timed {rec['timed']} cpu {rec['timed_cpu']} "
                    f"load {rec['loadavg_before']} -> {rec['loadavg_after']}",
                    flush=True,
                )
                if args.out:
                    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                    with open(args.out, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({**meta, **rec}) + "\n")
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
