"""Time the MMRec full-ranking evaluation of every user of a dataset.

The target of issue 2: rank all 7,050 items for all Baby users (train items
masked, top-50, Recall/NDCG/Precision/MAP/Hit at 5/10/20/50) in under one
second on the project's 2-core CPU.

What is timed (``--repeats`` times, median and min reported):

* ``evaluate``: :func:`alignrec_lite.evaluate.evaluate` on ``--split`` for every
  user with an interaction in that split, exactly as the trainer calls it, with
  a LightGCN model whose final embeddings are already cached
  (:meth:`Recommender.prepare_eval`, done once per evaluation by the trainer);
* ``prepare_eval``: the LightGCN propagation that produces those embeddings
  (once per evaluation; reported separately, it is the model's cost, not the
  protocol's);
* a breakdown of one ``evaluate`` into its steps (scores = one matrix product,
  masking of train items, stable top-K, metrics), to show where the time goes.

The model is LightGCN with its initial (random) weights, or the checkpoint of
a trained run (``--run RUN``): ranking cost does not depend on the weights,
except through ties, which random float scores do not have.

Example::

    OMP_NUM_THREADS=2 python benchmarks/bench_eval.py --data ../shared/data/amazon-baby-mmrec \\
        --threads 1,2 --repeats 7 --json benchmarks/out/bench_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def breakdown(net, ds, split: str, batch_users: int) -> dict[str, float]:
    """Seconds spent in each step of one evaluation (same code path, timed step by step)."""
    import numpy as np
    import torch

    from alignrec_lite.evaluate import hits_matrix, mask_rows, metrics_from_hits, topk_stable

    gt = ds.interaction_matrix(split)
    train_m = ds.interaction_matrix("train")
    n_relevant = np.diff(gt.indptr).astype(np.int64)
    users = np.flatnonzero(n_relevant > 0)
    t = dict.fromkeys(["scores", "mask", "topk", "metrics"], 0.0)
    with torch.no_grad():
        for start in range(0, len(users), batch_users):
            chunk = users[start : start + batch_users]
            t0 = time.perf_counter()
            scores = net.full_sort_scores(torch.from_numpy(chunk)).float().contiguous()
            t1 = time.perf_counter()
            mask_rows(scores, chunk, train_m)
            t2 = time.perf_counter()
            top = topk_stable(scores, 50).numpy()
            t3 = time.perf_counter()
            metrics_from_hits(
                torch.from_numpy(hits_matrix(top, chunk, gt)), torch.from_numpy(n_relevant[chunk]), (5, 10, 20, 50)
            )
            t4 = time.perf_counter()
            t["scores"] += t1 - t0
            t["mask"] += t2 - t1
            t["topk"] += t3 - t2
            t["metrics"] += t4 - t3
    return {k: round(v, 4) for k, v in t.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="MMRec folder (e.g. ../shared/data/amazon-baby-mmrec)")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to time")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch-users", type=int, default=1024, help="users per scoring chunk (the trainer's default)")
    p.add_argument("--run", default=None, help="a trained LightGCN run folder (default: random initial weights)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    import torch

    from alignrec_lite.data import open_dataset
    from alignrec_lite.evaluate import evaluate
    from alignrec_lite.files import load_checkpoint_file
    from alignrec_lite.models import build_model
    from alignrec_lite.utils import versions

    ds = open_dataset(args.data, features=None)
    torch.manual_seed(0)
    net = build_model("lightgcn", ds, {})
    if args.run:
        state = load_checkpoint_file(Path(args.run) / "best.pt")
        net.load_state_dict(state["model"] if "model" in state else state)
    n_eval = int((ds.interaction_matrix(args.split).getnnz(axis=1) > 0).sum())
    load0 = os.getloadavg()
    rows = []
    for threads in (int(x) for x in args.threads.split(",")):
        torch.set_num_threads(threads)
        prep = _time(net.prepare_eval, args.repeats)
        res = None

        def run():
            nonlocal res
            res = evaluate(net.full_sort_scores, ds, args.split, batch_users=args.batch_users)

        run()  # warm-up (first-touch allocations)
        times = _time(run, args.repeats)
        row = {
            "threads": threads,
            "users": res["n_users"],
            "evaluate_median_s": round(statistics.median(times), 4),
            "evaluate_min_s": round(min(times), 4),
            "evaluate_all_s": [round(x, 4) for x in times],
            "prepare_eval_median_s": round(statistics.median(prep), 4),
            "breakdown_s": breakdown(net, ds, args.split, args.batch_users),
            "recall@20": res["recall@20"],
        }
        rows.append(row)
        print(
            f"threads {threads}: evaluate {row['evaluate_median_s']:.3f} s median (min {row['evaluate_min_s']:.3f}) "
            f"for {res['n_users']:,} users x {ds.n_items:,} items; prepare_eval {row['prepare_eval_median_s']:.3f} s; "
            f"steps {row['breakdown_s']}",
            flush=True,
        )
    out = {
        "command": "python benchmarks/bench_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": ds.name,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "users_evaluated": n_eval,
        "split": args.split,
        "batch_users": args.batch_users,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "load_avg_start": load0,
        "load_avg_end": os.getloadavg(),
        "versions": versions(),
        "results": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
