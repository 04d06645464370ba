"""Four stage-1 features side by side: concatenation, two-tower ICA, Multiway, Multiway without pre-training.

For one MMRec dataset folder with ``items.csv`` (text + image per item), this script

1. extracts the plain features into a scratch copy (``tiny-cnn`` image tower with random
   weights, MiniLM text) — feature (a), their L2-normalised concatenation ``image+text``;
2. per seed, pre-trains (b) the two-tower ICA stand-in (:func:`alignrec_lite.ica.pretrain_ica`,
   default settings), (c) the Multiway encoder (:func:`alignrec_lite.multiway.pretrain_multiway`)
   and writes (d) the Multiway encoder's random initialisation (no masked-modelling loss,
   0 steps), each into its own folder, timing the pre-training;
3. judges every feature with the intermediate metrics of :mod:`alignrec_lite.feature_eval`
   (zero-shot, item-CF, mask-modality; test split);
4. trains AlignRec on every feature (``feature_source`` = ``image+text`` or ``mm``) once per
   seed — encoder seed ``s`` pairs with AlignRec seed ``s + 1`` — and reports test
   Recall@20 / NDCG@20 at the best-valid epoch, mean ± sample std.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_multiway.py --data datasets/toy-shop --work /tmp/bench_mw_toy \\
        --seeds 0 1 2 --json /tmp/bench_mw_toy.json

Results are appended to ``WORK/results.jsonl`` as they come, so a rerun skips finished steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FEATURES = ("concat", "ica", "multiway", "multiway-random")
KEYS = (
    "zeroshot/recall@20",
    "itemcf/recall@20",
    "mask_image/zeroshot/recall@20",
    "mask_image/itemcf/recall@20",
    "mask_text/zeroshot/recall@20",
    "mask_text/itemcf/recall@20",
    "align_user_item",
    "uniform_items",
)


def _load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def _copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache", "mm_feat*.npy"))
    return dst


def base_folder(data: Path, work: Path) -> Path:
    """A scratch copy of the data with tiny-cnn + MiniLM features (extracted once)."""
    from alignrec_lite.encoders import extract_features, read_manifest

    base = work / "base"
    if not base.exists():
        _copy(data, base)
    man = read_manifest(base)
    if man.get("image", {}).get("encoder") != "tiny-cnn" or man.get("text", {}).get("encoder") != "minilm":
        extract_features(base, "tiny-cnn", "minilm", overwrite=True, progress=False)
    return base


def pretrain(feature: str, base: Path, work: Path, seed: int, mw_epochs: int) -> dict:
    """Write one feature's mm_feat.npy into its own folder; return the timing."""
    from alignrec_lite.encoders import read_manifest
    from alignrec_lite.ica import ICAConfig, pretrain_ica
    from alignrec_lite.multiway import MultiwayConfig, pretrain_multiway

    folder = work / f"{feature}_s{seed}"
    entry = read_manifest(folder).get("mm", {}) if (folder / "mm_feat.npy").exists() else {}
    if not entry.get("sha256"):  # not pre-trained yet (a finished folder is reused: its run returns at once)
        _copy(base, folder)
    t0 = time.perf_counter()
    if feature == "ica":
        res = pretrain_ica(folder, ICAConfig(seed=seed), progress=False)
    else:
        cfg = MultiwayConfig(seed=seed, epochs=mw_epochs, pretrain=feature == "multiway")
        res = pretrain_multiway(folder, cfg, progress=False)
    return {
        "folder": str(folder),
        "wall_s": round(time.perf_counter() - t0, 2),
        "train_s": round(res["train_seconds"], 2),
        "epochs": res["epochs_run"],
        "final_loss": res["final_loss"],
        "load_avg": _load_avg(),
    }


def metrics(folder: Path, source: str) -> dict:
    from alignrec_lite.feature_eval import evaluate_features

    row = evaluate_features(folder, sources=[source], ks=(20,), reference=False)["rows"][0]
    return {k: row[k] for k in KEYS if k in row}


def mean_pool_metrics(folder: Path) -> dict:
    """Diagnostic, not the paper's read-out: the same Multiway model's mean of final token states.

    Tells whether masked modelling taught the *tokens* something that the position-0
    vector does not carry. Zero-shot and item-CF only (there are no masked views of it).
    """
    import numpy as np

    from alignrec_lite.data.mmrec import load_mmrec
    from alignrec_lite.encoders import read_manifest
    from alignrec_lite.feature_eval import evaluate_features
    from alignrec_lite.multiway import MultiwayContent, encode_items, load_multiway

    run = Path(read_manifest(folder)["mm"]["run_dir"])
    if (run / "mean_pool.npy").exists():
        feat = np.load(run / "mean_pool.npy")
    else:  # a run made before the file was written: encode again from the checkpoint
        model, cfg, vocab = load_multiway(run)
        feat = encode_items(model, MultiwayContent(load_mmrec(folder, load_features=False), cfg, vocab=vocab))
        feat = feat["mean_pool"]
    row = evaluate_features(folder, sources=["pool"], extra={"pool": feat}, ks=(20,), reference=False)["rows"][0]
    return {k: row[k] for k in KEYS if k in row}


def alignrec(folder: Path, source: str, seed: int, caps: dict) -> dict:
    from alignrec_lite.data.mmrec import load_mmrec
    from alignrec_lite.train import train

    t0 = time.perf_counter()
    _, rec = train(load_mmrec(folder), "alignrec", {**caps, "feature_source": source, "seed": seed}, progress=False)
    return {
        "test_recall@20": rec["test"]["recall@20"],
        "test_ndcg@20": rec["test"]["ndcg@20"],
        "valid_recall@20": rec["valid"]["recall@20"],
        "best_epoch": rec["best_epoch"],
        "epochs_run": rec["epochs_run"],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _ms(vals: list[float], nd: int = 4) -> str:
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{nd}f}"
    return f"{statistics.mean(vals):.{nd}f} ± {statistics.stdev(vals):.{nd}f}"


def table(done: list[dict]) -> str:
    """Markdown tables: intermediate metrics (mean ± std over seeds) and AlignRec test metrics."""
    names = {
        "concat": "(a) concat tiny-cnn + MiniLM",
        "ica": "(b) two-tower ICA stand-in",
        "multiway": "(c) Multiway, masked modelling",
        "multiway-random": "(d) Multiway, random init",
    }
    lines = [
        "| feature | pre-train s | zero-shot R@20 | item-CF R@20 | zs −img | cf −img | zs −txt | cf −txt "
        "| align u-i | unif |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in FEATURES:
        rows = [d for d in done if d["feature"] == f and "metrics" in d]
        if not rows:
            continue
        t = [d["pretrain"]["train_s"] for d in rows if d.get("pretrain")]
        cells = [_ms([d["metrics"][k] for d in rows if k in d["metrics"]], 2 if k in KEYS[-2:] else 4) for k in KEYS]
        lines.append(f"| {names[f]} | {_ms(t, 1) if t else '–'} | " + " | ".join(cells) + " |")
    for f in ("multiway", "multiway-random"):
        rows = [d for d in done if d["feature"] == f and "diag_mean_pool" in d]
        if rows:
            cells = [
                _ms([d["diag_mean_pool"][k] for d in rows if k in d["diag_mean_pool"]], 2 if k in KEYS[-2:] else 4)
                for k in KEYS
            ]
            label = f"{names[f][:3]}' same model, mean of token outputs (diagnostic)"
            lines.append(f"| {label} | – | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| feature | AlignRec test Recall@20 | test NDCG@20 | valid Recall@20 | best epoch | n |",
        "|---|---|---|---|---|---|",
    ]
    for f in FEATURES:
        rows = [d["alignrec"] for d in done if d["feature"] == f and "alignrec" in d]
        if rows:
            lines.append(
                f"| {names[f]} | {_ms([r['test_recall@20'] for r in rows])} | "
                f"{_ms([r['test_ndcg@20'] for r in rows])} | {_ms([r['valid_recall@20'] for r in rows])} | "
                f"{statistics.mean(r['best_epoch'] for r in rows):.0f} | {len(rows)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="MMRec folder with items.csv (text + image)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_multiway"), help="scratch folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    p.add_argument("--mw-epochs", type=int, default=10, help="Multiway pre-training epochs")
    p.add_argument("--epochs", type=int, default=300, help="AlignRec epoch cap")
    p.add_argument("--stopping-step", type=int, default=30)
    p.add_argument("--skip-alignrec", action="store_true")
    p.add_argument("--json", type=Path, help="write everything here at the end")
    args = p.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "results.jsonl"
    done = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    info = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_avg_start": _load_avg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(info), flush=True)
    base = base_folder(args.data, args.work)
    caps = {"epochs": args.epochs, "stopping_step": args.stopping_step}

    def record(entry: dict) -> None:
        from alignrec_lite.files import atomic_write

        done[:] = [d for d in done if (d["feature"], d["seed"]) != (entry["feature"], entry["seed"])] + [entry]
        with atomic_write(log) as fh:  # one line per (feature, seed): a later, fuller run replaces the entry
            for d in done:
                fh.write(json.dumps(d) + "\n")

    for seed in args.seeds:
        for f in args.features:
            if any(
                d["feature"] == f
                and d["seed"] == seed
                and ("alignrec" in d or args.skip_alignrec)
                and d.get("caps", caps) == caps
                for d in done
            ):
                continue
            if f == "concat":
                folder, source, pre = base, "image+text", None
            else:
                pre = pretrain(f, base, args.work, seed, args.mw_epochs)
                folder, source = Path(pre["folder"]), "mm"
                print(
                    f"[{f} seed {seed}] pre-training {pre['train_s']:.1f} s ({pre['epochs']} epochs), "
                    f"load {pre['load_avg']}",
                    flush=True,
                )
            entry = {"feature": f, "seed": seed, "pretrain": pre, "metrics": metrics(folder, source), "caps": caps}
            m = entry["metrics"]
            print(
                f"[{f} seed {seed}] zero-shot R@20 {m['zeroshot/recall@20']:.4f}, item-CF {m['itemcf/recall@20']:.4f}",
                flush=True,
            )
            if not args.skip_alignrec:
                entry["alignrec"] = alignrec(folder, source, seed + 1, caps)
                a = entry["alignrec"]
                print(
                    f"[{f} seed {seed}] AlignRec test R@20 {a['test_recall@20']:.4f} N@20 "
                    f"{a['test_ndcg@20']:.4f} (best epoch {a['best_epoch']}, {a['seconds']:.0f} s)",
                    flush=True,
                )
            entry["load_avg"] = _load_avg()
            record(entry)
    changed = False
    for d in done:  # the diagnostic row for every Multiway run (also runs recorded before it existed)
        if d["feature"].startswith("multiway") and "diag_mean_pool" not in d and d.get("pretrain"):
            d["diag_mean_pool"] = mean_pool_metrics(Path(d["pretrain"]["folder"]))
            changed = True
    if changed:
        from alignrec_lite.files import atomic_write

        with atomic_write(log) as fh:
            for d in done:
                fh.write(json.dumps(d) + "\n")
    info["load_avg_end"] = _load_avg()
    md = table(done)
    print(md)
    if args.json:
        from alignrec_lite.files import write_json

        write_json(args.json, {"info": info, "runs": done, "table": md})
    return 0


if __name__ == "__main__":
    sys.exit(main())
