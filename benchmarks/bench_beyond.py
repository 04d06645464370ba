"""Evaluation beyond accuracy on MovieLens with posters: long tail, new items, new users, export time.

The measurements behind docs/benchmarks/beyond.md. For each seed:

1. ``longtail``: BPR, LightGCN, VBPR and AlignRec trained on the standard split; one
   top-20 ranking per model (and popularity), read as Recall@20/NDCG@20 per popularity
   bucket (tail/mid/head and 5 quantile buckets) and as coverage, Gini, APLT, novelty;
2. ``coldItems``: :func:`alignrec_lite.experiments.item_coldstart_experiment` (20 % of
   the items held out with all their interactions; the split's seed is the seed);
3. ``coldUsers``: :func:`alignrec_lite.experiments.user_coldstart_experiment` (20 % of
   the users with > 5 interactions held out; fold-in with 0, 1, 2, 3, 5 items);
4. ``export``: all users' top-20 written with :func:`alignrec_lite.serve.export_topk`
   and timed with :func:`alignrec_lite.serve.measure_serving` (LightGCN and AlignRec of
   the long-tail step).

Every record is appended to ``OUT/results.jsonl`` as soon as it is measured (a rerun
skips what is there), with the load average, so the numbers can be judged on a shared
machine. ``--report`` turns the file into the markdown tables (mean ± sample std over seeds).

Example::

    python benchmarks/bench_beyond.py --data /tmp/ml_features --out benchmarks/out/beyond --seeds 0 1 2
    python benchmarks/bench_beyond.py --out benchmarks/out/beyond --report > tables.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SETTINGS = {"epochs": 80, "stopping_step": 10, "learning_rate": 0.005, "embedding_size": 64}
LONGTAIL_MODELS = {"BPR": "bpr", "LightGCN": "lightgcn", "VBPR": "vbpr", "AlignRec": "alignrec"}


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out.add((r["step"], r["seed"]))
    return out


def _append(path: Path, rec: dict) -> None:
    """Add one finished step to the JSONL file (rewritten atomically: a crash loses at most that step)."""
    from alignrec_lite.files import atomic_write

    rec["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_write(path) as fh:
        fh.write(old + json.dumps(rec, default=float) + "\n")


def run(args: argparse.Namespace) -> None:
    import torch

    from alignrec_lite import experiments, longtail, serve
    from alignrec_lite.data import open_dataset
    from alignrec_lite.scorers import popularity_scores
    from alignrec_lite.train import train

    torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.jsonl"
    done = _done(res)
    base = {**SETTINGS, "epochs": args.epochs}
    for seed in args.seeds:
        if ("longtail", seed) not in done:
            t0 = time.perf_counter()
            nets, runs = {}, {}
            for label, name in LONGTAIL_MODELS.items():
                nets[label], runs[label] = train(ds, name, {**base, "seed": seed}, progress=False)
            scorers = {k: v.full_sort_scores for k, v in nets.items()}
            scorers["popularity"] = popularity_scores(ds)
            pop = ds.item_popularity("train")
            coarse, overall = longtail.long_tail_report(scorers, ds, buckets=longtail.popularity_buckets(pop))
            fine, _ = longtail.long_tail_report(scorers, ds, buckets=longtail.popularity_buckets(pop, n_buckets=5))
            _append(
                res,
                {
                    "step": "longtail",
                    "seed": seed,
                    "coarse": coarse.to_dict("records"),
                    "fine": fine.to_dict("records"),
                    "overall": overall.to_dict("records"),
                    "buckets": longtail.popularity_buckets(pop).table().to_dict("records"),
                    "runs": {
                        k: {
                            "best_epoch": r["best_epoch"],
                            "epochs_run": r["epochs_run"],
                            "seconds_per_epoch": r["seconds_per_epoch"],
                            "test": r["test"],
                        }
                        for k, r in runs.items()
                    },
                    "seconds": time.perf_counter() - t0,
                },
            )
            if ("export", seed) not in done:
                for label in ("LightGCN", "AlignRec"):
                    with tempfile.TemporaryDirectory() as tmp:
                        t1 = time.perf_counter()
                        path = serve.export_topk(nets[label], ds, Path(tmp) / "topk.csv", k=20, progress=False)
                        export_s = time.perf_counter() - t1
                        size = path.stat().st_size
                    timing = serve.measure_serving(nets[label], ds, k=20, n_single=100, repeats=5)
                    _append(
                        res,
                        {
                            "step": "export",
                            "seed": seed,
                            "model": label,
                            "export_seconds": export_s,
                            "export_bytes": size,
                            **timing,
                        },
                    )
        for step, experiment in (
            ("coldItems", experiments.item_coldstart_experiment),
            ("coldUsers", experiments.user_coldstart_experiment),
        ):
            if (step, seed) not in done:
                t0 = time.perf_counter()
                table, _ = experiment(ds, ("lightgcn", "alignrec"), share=0.2, seed=seed, overrides=base)
                _append(
                    res,
                    {
                        "step": step,
                        "seed": seed,
                        "table": table.to_dict("records"),
                        "seconds": time.perf_counter() - t0,
                    },
                )


def _md(df, index: bool = True) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    if index:
        df = df.reset_index()
    cells = [[str(c) for c in df.columns]] + [
        [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in cells[0]) + "|")
    return "\n".join(lines)


def report(args: argparse.Namespace) -> None:
    import pandas as pd

    from alignrec_lite.longtail import mean_std

    recs = [json.loads(line) for line in (Path(args.out) / "results.jsonl").read_text().splitlines()]
    fmt = "{:.4f}"

    def frame(step: str, key: str) -> pd.DataFrame:
        rows = []
        for r in recs:
            if r["step"] == step:
                rows += [{**x, "seed": r["seed"]} for x in r[key]]
        return pd.DataFrame(rows)

    seeds = sorted({r["seed"] for r in recs})
    print(f"seeds: {seeds}\n")
    coarse = frame("longtail", "coarse")
    t = mean_std(coarse, ["model", "bucket"], ["recall@20", "ndcg@20"], fmt=fmt)
    print("### Long tail: per bucket\n")
    for metric in ("recall@20", "ndcg@20"):
        print(metric + "\n")
        print(_md(t.pivot(index="model", columns="bucket", values=metric)[["tail", "mid", "head"]]) + "\n")
    fine = frame("longtail", "fine")
    f = mean_std(fine, ["model", "bucket"], ["recall@20"], fmt=fmt)
    print(_md(f.pivot(index="model", columns="bucket", values="recall@20")) + "\n")
    overall = frame("longtail", "overall")
    cols = ["recall@20", "ndcg@20", "coverage@20", "gini@20", "aplt@20", "novelty@20", "avg_pop@20"]
    print("### Beyond accuracy\n")
    print(_md(mean_std(overall, ["model"], cols, fmt="{:.3f}").drop(columns="n"), index=False) + "\n")
    first = next(r for r in recs if r["step"] == "longtail")
    print(_md(pd.DataFrame(first["buckets"]), index=False) + "\n")
    items = frame("coldItems", "table")
    print("### New items\n")
    print(_md(mean_std(items, ["method"], ["recall@10", "recall@20", "ndcg@20"], fmt=fmt), index=False) + "\n")
    users = frame("coldUsers", "table")
    u = mean_std(users, ["method", "given"], ["recall@20", "ndcg@20"], fmt=fmt)
    print("### New users\n")
    for metric in ("recall@20", "ndcg@20"):
        print(metric + "\n")
        print(_md(u.pivot(index="method", columns="given", values=metric)) + "\n")
    ex = pd.DataFrame([r for r in recs if r["step"] == "export"])
    if len(ex):
        print("### Export\n")
        cols = ["export_seconds", "prepare_seconds", "all_users_seconds", "per_user_ms_batched", "single_user_ms"]
        print(_md(mean_std(ex, ["model"], cols, fmt="{:.4f}"), index=False) + "\n")
    runs = [(r["seed"], k, v) for r in recs if r["step"] == "longtail" for k, v in r["runs"].items()]
    print("### Runs\n")
    print(
        _md(
            pd.DataFrame(
                [
                    {
                        "seed": s,
                        "model": k,
                        "best_epoch": v["best_epoch"],
                        "epochs_run": v["epochs_run"],
                        "seconds_per_epoch": v["seconds_per_epoch"],
                        "test recall@20": v["test"]["recall@20"],
                    }
                    for s, k, v in runs
                ]
            ),
            index=False,
        )
    )
    loads = [r["loadavg"][0] for r in recs]
    secs = {s: sum(r.get("seconds", 0) for r in recs if r["step"] == s) for s in ("longtail", "coldItems", "coldUsers")}
    print(f"\nload average (1 min) at the records: min {min(loads)}, max {max(loads)}; step seconds {secs}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="MovieLens-with-posters folder with image_feat.npy / text_feat.npy, or `movielens`")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true", help="print the markdown tables of OUT/results.jsonl")
    args = p.parse_args()
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
