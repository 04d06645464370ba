"""LightGCN on MMRec's Amazon Baby split, hyper-parameters chosen on VALID Recall@20.

Reproduces the foundation issue's accuracy check: test Recall@20 / NDCG@20 next to
MMRec's published 0.0754 / 0.0328 (ALIGNREC_SPEC §5.1). Every trial's record is
written to ``--out/trials.jsonl``; the best-on-valid trial to ``--out/best.json``.

    python benchmarks/baby_lightgcn.py --data $ALIGNREC_DATA/amazon-baby-mmrec --out benchmarks/out/baby_lightgcn
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from alignrec_lite.data import open_dataset
from alignrec_lite.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", default="2,3")
    ap.add_argument("--reg", default="1e-4,1e-3")
    ap.add_argument("--lr", default="0.005")
    ap.add_argument("--stopping-step", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--verbose", action="store_true", help="one line per epoch")
    args = ap.parse_args()
    ds = open_dataset(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = list(
        itertools.product(
            [int(x) for x in args.layers.split(",")],
            [float(x) for x in args.reg.split(",")],
            [float(x) for x in args.lr.split(",")],
        )
    )
    best = None
    for n_layers, reg, lr in grid:
        t0 = time.time()
        _, rec = train(
            ds,
            "lightgcn",
            {
                "n_layers": n_layers,
                "reg_weight": reg,
                "learning_rate": lr,
                "stopping_step": args.stopping_step,
                "epochs": args.epochs,
            },
            out=out / f"run_l{n_layers}_r{reg}_lr{lr}",
            progress=False,
            verbose=args.verbose,
        )
        rec.pop("history", None)
        rec["wall_seconds"] = time.time() - t0
        with open(out / "trials.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(
            f"layers={n_layers} reg={reg} lr={lr}: valid R@20 {rec['valid']['recall@20']:.4f} "
            f"test R@20 {rec['test']['recall@20']:.4f} N@20 {rec['test']['ndcg@20']:.4f} "
            f"best epoch {rec['best_epoch']} ({rec['wall_seconds']:.0f} s)",
            flush=True,
        )
        if best is None or rec["valid"]["recall@20"] > best["valid"]["recall@20"]:
            best = rec
    (out / "best.json").write_text(json.dumps(best, indent=2))
    print(
        "chosen on valid:",
        best["config"]["n_layers"],
        best["config"]["reg_weight"],
        best["config"]["learning_rate"],
        "test",
        best["test"]["recall@20"],
        best["test"]["ndcg@20"],
    )


if __name__ == "__main__":
    main()
