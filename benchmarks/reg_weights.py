"""Is each model's regularisation weight a good one? A reg_weight search at notebook 06's settings.

Issue 14 changed BPR's, LightGCN's and VBPR's regulariser to MMRec's ``EmbLoss`` (plain Frobenius
norms of the batch's embeddings over the batch size). That term is much weaker than the squared
form it replaced, yet the presets kept their ``reg_weight`` and notebook 06 searches learning
rates only. This script asks, at notebook 06's settings (embedding 32, at most 80 epochs, stopping
step 10, the preset's learning rate, which 06's six-rate search chose):

1. **search**: one run per ``reg_weight`` of ``--grid`` (seed ``--seed``), chosen on **valid**
   Recall@20, as :func:`alignrec_lite.tuning.search` always does;
2. **seeds**: ``--seeds`` runs (``--seed`` onwards; the first is the search's run) at the preset's
   ``reg_weight`` and at the chosen one, alternating, test Recall@20 / NDCG@20 at each run's best-valid
   epoch; Welch's t of chosen against preset (:func:`alignrec_lite.longtail.welch_t`).

Every run is appended to ``--out`` as one JSON line (a rerun skips what is there), and the table is
printed. Example (the data: the stage-1 ICA copy notebooks 05-08 read)::

    OMP_NUM_THREADS=1 python benchmarks/reg_weights.py --dataset movielens \\
        --models bpr,lightgcn,vbpr,freedom,alignrec --out benchmarks/out/reg_weights.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

GRID = (1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0)
SETTINGS = {"epochs": 80, "embedding_size": 32, "stopping_step": 10, "device": "cpu"}  # notebook 06's


def _done(out: Path) -> dict[tuple, dict]:
    rows = [json.loads(x) for x in out.read_text().splitlines() if x.strip()] if out.exists() else []
    return {(r["model"], r["stage"], r["reg_weight"], r["seed"]): r for r in rows}


def _run(ds, model: str, reg: float, seed: int, preset: str) -> dict:
    from alignrec_lite.train import train

    start = time.perf_counter()
    load = os.getloadavg()[0]
    _, rec = train(ds, model, {**SETTINGS, "reg_weight": reg, "seed": seed}, preset=preset, progress=False)
    return {
        "valid": rec["valid"]["recall@20"],
        "test": {k: rec["test"][k] for k in ("recall@20", "ndcg@20")},
        "best_epoch": rec["best_epoch"],
        "learning_rate": rec["config"]["learning_rate"],
        "seconds": round(time.perf_counter() - start, 1),
        "load": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def _once(done: dict, out: Path, ds, model: str, stage: str, reg: float, seed: int, preset_reg: float, preset: str):
    """Run one (model, stage, reg_weight, seed) unless ``done`` has it; append its JSON line and print it.

    A seeds-stage run with the search's seed is the search's run of that weight (same settings, same
    seed, deterministic on a CPU): its record is reused, marked ``reused_search_run``, not trained again.
    """
    if (model, stage, reg, seed) in done:
        return
    search = done.get((model, "search", reg, seed))
    if stage == "seeds" and search is not None:
        rec = {**search, "stage": "seeds", "reused_search_run": True}
    else:
        rec = {"model": model, "stage": stage, "reg_weight": reg, "seed": seed, "preset_reg_weight": preset_reg}
        rec.update(_run(ds, model, reg, seed, preset))
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    done[(model, stage, reg, seed)] = rec
    print(f"{model:9s} {stage:6s} reg {reg:<7g} seed {seed}: valid {rec['valid']:.4f} "
          f"test {rec['test']['recall@20']:.4f} ({rec['seconds']} s)", flush=True)  # fmt: skip


def table(rows: list[dict]) -> str:
    """The Markdown table: grid on valid, chosen vs preset over seeds, Welch's t."""
    from alignrec_lite.longtail import welch_t

    lines = [
        "| model | lr | preset λ | valid Recall@20 over the grid (seed run) | chosen λ "
        "| test Recall@20, preset λ | test Recall@20, chosen λ | Welch t, p | test NDCG@20, preset / chosen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        grid = {r["reg_weight"]: r["valid"] for r in mine if r["stage"] == "search"}
        if not grid:
            continue
        chosen = max(grid, key=lambda g: (grid[g], -list(grid).index(g)))  # ties keep the earlier value
        preset = next(r["preset_reg_weight"] for r in mine)

        def at(reg: float, key: str = "recall@20", mine=mine) -> list[float]:
            return [r["test"][key] for r in mine if r["stage"] == "seeds" and r["reg_weight"] == reg]

        def ms(v: list[float]) -> str:
            return f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else "–"

        a, b = at(preset), at(chosen)
        w = welch_t(b, a) if chosen != preset and len(a) > 1 and len(b) > 1 else None
        na, nb = at(preset, "ndcg@20"), at(chosen, "ndcg@20")
        nd = f"{statistics.mean(na):.4f} / {statistics.mean(nb):.4f}" if na and nb else "–"
        lines.append(
            f"| {model} | {mine[0]['learning_rate']:g} | {preset:g} | "
            + ", ".join(f"{g:g}: {v:.4f}" for g, v in grid.items())
            + f" | {chosen:g} | {ms(a)} | {ms(b) if chosen != preset else '(same)'} | "
            + (f"{w['t']:.2f}, {w['p']:.2g}" if w else "–")
            + f" | {nd} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens", help="open_stage1's dataset name (or an MMRec folder)")
    p.add_argument("--features", default="ica", help="open_stage1's stage-1 feature")
    p.add_argument("--stage1-seed", type=int, default=2024, help="open_stage1's seed (notebooks 05-08: 2024)")
    p.add_argument("--models", default="bpr,lightgcn,vbpr,freedom,alignrec")
    p.add_argument("--grid", default=",".join(f"{g:g}" for g in GRID), help="reg_weight values")
    p.add_argument("--seed", type=int, default=2024, help="the search's seed and the first of the seeds")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--preset", default="movielens", help="the tuned preset the settings start from")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON lines, appended; a rerun resumes")
    args = p.parse_args(argv)
    import torch

    from alignrec_lite.config import resolve_config
    from alignrec_lite.data import open_stage1
    from alignrec_lite.data.mmrec import load_mmrec

    torch.set_num_threads(args.threads)
    folder = Path(args.dataset)
    ds = load_mmrec(folder) if folder.is_dir() else open_stage1(args.dataset, args.features, seed=args.stage1_seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    grid = [float(g) for g in args.grid.split(",")]
    for model in args.models.split(","):
        preset_reg = float(resolve_config(model, {}, dataset=ds.name, preset=args.preset)["reg_weight"])
        jobs = [("search", g, args.seed) for g in grid]
        for stage, reg, seed in jobs:
            _once(done, out, ds, model, stage, reg, seed, preset_reg, args.preset)
        search = {g: done[(model, "search", g, args.seed)]["valid"] for g in grid}
        chosen = max(grid, key=lambda g: (search[g], -grid.index(g)))
        regs = [preset_reg] if chosen == preset_reg else [preset_reg, chosen]
        for seed in range(args.seed, args.seed + args.seeds):
            for reg in regs:  # alternating, so that load falls on both
                _once(done, out, ds, model, "seeds", reg, seed, preset_reg, args.preset)
    print(table(list(done.values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
