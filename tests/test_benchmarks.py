"""The benchmark scripts run end to end on the bundled smoke shop and write what their docs say.

Their numbers are not checked (speed is measured by running them on real data, see
docs/BENCHMARKS.md); these tests only keep the scripts from rotting as the library changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "datasets" / "smoke-shop"


def run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_bench_eval_times_every_user(tmp_path):
    out = tmp_path / "eval.json"
    run("bench_eval.py", "--data", str(SMOKE), "--threads", "1", "--repeats", "2", "--json", str(out))
    rec = json.loads(out.read_text())
    (row,) = rec["results"]
    assert row["users"] == rec["users_evaluated"] > 0
    assert len(row["evaluate_all_s"]) == 2 and all(t > 0 for t in row["evaluate_all_s"])
    assert set(row["breakdown_s"]) == {"scores", "mask", "topk", "metrics"}
    assert 0.0 <= row["recall@20"] <= 1.0


def test_bench_train_writes_a_row_per_model(tmp_path):
    out, md = tmp_path / "b.jsonl", tmp_path / "b.md"
    run(
        "bench_train.py",
        "--movielens",
        str(SMOKE),
        "--models",
        "lightgcn,alignrec",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
        "--markdown",
        str(md),
    )
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == ["lightgcn", "alignrec"]
    assert all(r["seconds_per_epoch_median"] > 0 and r["epochs"] == 2 for r in rows)
    assert rows[1]["feature_source"] == "image+text"
    assert md.read_text().count("| movielens |") == 2


def test_bench_speed_interleaves_old_and_new_checkouts(tmp_path):
    import numpy as np

    data = tmp_path / "race"
    (data / "baby").mkdir(parents=True)
    (data / "baby" / "baby.inter").write_text((SMOKE / "toy.inter").read_text())
    n_items = len(np.load(SMOKE / "image_feat.npy"))
    np.save(data / "baby" / "image_feat.npy", np.random.default_rng(0).normal(size=(n_items, 16)).astype(np.float32))
    out = tmp_path / "speed.jsonl"
    args = ["--base", str(ROOT), "--data", str(data), "--variants", "frozen,lightgcn", "--rounds", "1"]
    stdout = run("bench_speed.py", *args, "--epochs", "1", "--out", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["variant"], r["side"]) for r in rows] == [
        ("frozen", "old"),
        ("frozen", "new"),
        ("lightgcn", "old"),
        ("lightgcn", "new"),
    ]
    assert all(len(r["timed"]) == 1 and r["timed"][0] > 0 for r in rows)
    assert rows[0]["loss_history"] == rows[1]["loss_history"]  # the same code on both sides
    assert stdout.count("| frozen |") == 1 and "old / new" in stdout


def test_bench_speed_spmm_mode_times_every_kernel_on_the_same_product(tmp_path):
    data = tmp_path / "race"
    (data / "baby").mkdir(parents=True)
    (data / "baby" / "baby.inter").write_text((SMOKE / "toy.inter").read_text())
    stdout = run("bench_speed.py", "--mode", "spmm", "--data", str(data), "--rounds", "2", "--batches", "2")
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 6 and rows[0][0] == "| kit (MKL CSR, 32-bit indices, written once)"
    assert all(float(r[1]) >= float(r[2]) > 0 for r in rows)  # median >= least > 0
    assert all(float(r[3].rstrip(" |")) < 1e-5 for r in rows)  # every kernel computes the same product


def test_reg_weights_searches_on_valid_then_runs_preset_and_chosen_seeds(tmp_path):
    out = tmp_path / "rw.jsonl"
    args = ["--dataset", str(SMOKE), "--models", "bpr", "--grid", "0.0001,1", "--seeds", "2", "--preset", "none"]
    stdout = run("reg_weights.py", *args, "--out", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    search = {r["reg_weight"]: r["valid"] for r in rows if r["stage"] == "search"}
    chosen = max(search, key=search.get)
    seeds = [(r["reg_weight"], r["seed"]) for r in rows if r["stage"] == "seeds"]
    regs = [1e-4] if chosen == 1e-4 else [1e-4, 1.0]  # the preset's value (BPR's default 1e-4), then the chosen
    expected = [(reg, seed) for seed in (2024, 2025) for reg in regs]
    assert set(search) == {1e-4, 1.0} and seeds == expected
    first = [r for r in rows if r["stage"] == "seeds" and r["seed"] == 2024]  # the search's own runs, reused
    assert all(r["reused_search_run"] and r["valid"] == search[r["reg_weight"]] for r in first)
    assert f"| bpr | 0.001 | 0.0001 | 0.0001: {search[1e-4]:.4f}, 1: {search[1.0]:.4f} | {chosen:g} |" in stdout
    assert run("reg_weights.py", *args, "--out", str(out)).count("| bpr |") == 1  # a rerun resumes: nothing new
    assert len(out.read_text().splitlines()) == len(rows)


def test_movielens_models_tunes_on_valid_then_runs_seeds(tmp_path):
    out = tmp_path / "ml"
    stdout = run(
        "movielens_models.py",
        "--data",
        str(SMOKE),
        "--out",
        str(out),
        "--models",
        "bpr,alignrec",
        "--epochs",
        "2",
        "--rows",
        "main,abl0",
        "--stage",
        "all",
    )
    for model in ("bpr", "alignrec"):
        best = json.loads((out / f"search-{model}" / "best.json").read_text())
        assert best["selected_on"] == "valid" and best["n_trials"] == 4
    runs = [json.loads(x) for x in (out / "seeds.jsonl").read_text().splitlines()]
    assert sorted({(r["row"], r["seed"]) for r in runs}) == sorted(
        (row, s) for row in ("BPR", "AlignRec", "AlignRec w/o CCA (α = 0)") for s in (1, 2, 3)
    )
    table = (out / "table.md").read_text()
    assert table.count("| 3 |") == 3 and "AlignRec w/o CCA" in stdout


def test_peers_runs_the_kit_side_and_tables_both(tmp_path):
    # the originals are not here (GPL, never vendored): the kit side runs, the table is checked on made-up records
    out = tmp_path / "peers.jsonl"
    args = ["--dataset", "smoke", "--source", str(SMOKE), "--models", "bpr,vbpr", "--seeds", "1"]
    stdout = run("peers.py", str(tmp_path / "scratch"), *args, "--sides", "kit", "--set", "epochs=2", "--out", str(out))
    runs = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted((r["model"], r["seed"]) for r in runs) == [("bpr", 1), ("vbpr", 1)]
    assert all(r["side"] == "kit" and r["epochs_run"] == 2 and 0 <= r["test"]["recall@20"] <= 1 for r in runs)
    assert runs[0]["config"]["epochs"] == 2 and runs[0]["config"]["train_batch_size"] == 2048
    assert "| smoke |" not in stdout  # no original runs: no row to compare
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers

    recs = [{"dataset": "d", "model": "m", "side": side, "test": {"recall@20": v, "ndcg@20": v / 2},
             "epochs_run": 10, "seconds": 1.0} for side, v in [("original", 0.2), ("original", 0.3), ("kit", 0.25),
                                                                ("kit", 0.36)]]  # fmt: skip
    table = peers.table(recs)
    assert "| d | m | test recall@20 | 0.2500 ± 0.0707 | 0.3050 ± 0.0778 | 0.2000–0.3000 | **no** | 0.54 |" in table
    assert "| d | m | test ndcg@20 | 0.1250 ± 0.0354 | 0.1525 ± 0.0389 | 0.1000–0.1500 | **no** | 0.54 |" in table
    cfg = peers.their_config(peers.settings("alignrec", "movielens", 3))
    assert cfg["learning_rate_scheduler"] == [0.96, 50] and cfg["seed"] == 3 and "finetune_features" not in cfg
