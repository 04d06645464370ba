"""Notebooks 05-08 run in SMOKE under papermill, and their recorded numbers are plausible.

Each notebook runs once on the bundled toy shop and once on MovieLens with posters
(real data, skipped outside CI when ``$ALIGNREC_DATA`` is missing). The checks are
ranges and invariants that a broken model or protocol would violate, never exact
floats. Durations are printed; the SMOKE budget is 45 s per notebook on an idle
2-core CPU, asserted here with head-room (``BUDGET_S``) because CI machines are shared.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from alignrec_lite.nbtools import notebooks_dir, run_notebook

BUDGET_S = float(os.environ.get("NOTEBOOK_BUDGET_S", 90))  # 2x the 45 s target, for loaded machines
# The kernels run torch with one intra-op thread: on a shared 2-core machine two OpenMP threads
# stall on every small op (measured here: notebook 07 on MovieLens, SMOKE, 65 s with 2 threads,
# 27 s with 1, same load). Set NOTEBOOK_THREADS to change it.
KERNEL_THREADS = os.environ.get("NOTEBOOK_THREADS", "1")


def _in01(x) -> bool:
    return isinstance(x, (int, float)) and 0.0 <= x <= 1.0


# ----------------------------------------------------------------- per-notebook checks
def check_05(r: dict, toy: bool) -> None:
    for key in ("alignrec_recall@20", "alignrec_no_cca_recall@20", "lightgcn_recall@20"):
        # toy: chance is 20/120 items ~ 0.17 at best for random lists, a broken model scores ~0.05;
        # MovieLens SMOKE (60 users, 2 epochs) is near chance (~20/1,500), so only the range is checked
        assert _in01(r[key]) and (r[key] > 0.05 or not toy), key
    assert {"loss_bpr", "loss_cca", "loss_uia", "loss_sim"} <= set(r["loss_terms"])
    for d in (r["align_content_id_first"], r["align_content_id_last"]):
        assert set(d) == {"AlignRec", "AlignRec w/o CCA"}
        assert all(0.0 <= v <= 4.0 for v in d.values())  # alignment of unit vectors lies in [0, 4]


def check_06(r: dict, toy: bool) -> None:
    models = {"BPR", "LightGCN", "VBPR", "FREEDOM", "AlignRec"}
    means, stds = r["recall@20_mean"], r["recall@20_std"]
    assert models <= set(means) and len(means) == 10  # five models + five ablations
    assert r["n_runs"] == 10 * 2  # SMOKE: two seeds each
    assert all(_in01(v) and (v > 0.05 or not toy) for v in means.values())
    assert all(v >= 0 for v in stds.values())
    assert r["best_baseline"] in models - {"AlignRec"}
    assert set(r["tuned_learning_rate"]) == models
    assert math.isfinite(r["relative_gain_alignrec"])


def check_07(r: dict, toy: bool) -> None:
    b = r["bucket_recall@20"]
    assert b["popularity/tail"] == 0.0  # popularity never recommends a tail item while head items are left
    assert all(_in01(v) for v in b.values())
    cov, gini = r["coverage@20"], r["gini@20"]
    assert all(cov["popularity"] < cov[m] for m in ("BPR", "LightGCN", "AlignRec"))
    assert all(gini["popularity"] > gini[m] for m in ("BPR", "LightGCN", "AlignRec"))
    cold = r["cold_item_recall@20"]
    assert {"lightgcn", "alignrec", "alignrec · content", "content kNN", "random"} <= set(cold)
    assert all(_in01(v) for v in cold.values())
    curve = r["cold_user_recall@20"]
    at0 = {v for k, v in curve.items() if k.endswith("/0")}
    assert len(at0) == 1  # with nothing given, every method is the popularity list
    assert all(_in01(v) for v in curve.values())
    assert r["n_cold_items"] >= 1


def check_08(r: dict, toy: bool) -> None:
    assert set(r["seconds_per_epoch"]) == {"BPR", "LightGCN", "VBPR", "FREEDOM", "AlignRec"}
    assert all(v > 0 for v in r["seconds_per_epoch"].values())
    assert all(0 < v < 5000 for v in r["single_user_ms"].values())
    assert r["export_rows"] == 20 * r["export_users"]  # every user gets a full top-20
    assert r["export_seconds"] > 0
    assert len(r["new_user_items"]) == 8 and len(set(r["new_user_items"])) == 8
    assert set(r["power_law_exponent"]) == {"LightGCN", "AlignRec"}


CHECKS = {
    "05_training_alignrec": check_05,
    "06_table2_on_our_data": check_06,
    "07_long_tail_and_cold_start": check_07,
    "08_efficiency_and_serving": check_08,
}


def _run(name: str, tmp_path: Path, parameters: dict) -> dict:
    src = notebooks_dir() / f"{name}.ipynb"
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = KERNEL_THREADS  # read by the kernel process at start-up
    try:
        run = run_notebook(src, tmp_path, {"SMOKE": True, **parameters}, cwd=notebooks_dir())
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
    print(f"{name} {parameters.get('DATASET', 'toy')}: {run.seconds:.1f} s")
    assert run.seconds <= BUDGET_S, f"{name} took {run.seconds:.0f} s in SMOKE (budget {BUDGET_S:.0f} s)"
    return run.records


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_smoke_toy(name, tmp_path):
    CHECKS[name](_run(name, tmp_path, {}), True)


@pytest.fixture(scope="session")
def movielens_cache(real_data, tmp_path_factory):
    """MovieLens with posters built once, with poster features, in a cache the kernels find.

    ``notebook_dataset("movielens")`` builds into ``$ALIGNREC_CACHE/movielens-posters``;
    the notebooks extract features on first use (tiny-cnn in SMOKE), which is done here
    once so that every notebook's SMOKE time measures the notebook.
    """
    from alignrec_lite.encoders import extract_features
    from alignrec_lite.nbtools import notebook_dataset

    cache = tmp_path_factory.mktemp("nbcache")
    old = os.environ.get("ALIGNREC_CACHE")
    os.environ["ALIGNREC_CACHE"] = str(cache)
    ds = notebook_dataset("movielens", smoke=True)
    extract_features(ds.path, "tiny-cnn", None, progress=False)
    yield cache
    if old is None:
        os.environ.pop("ALIGNREC_CACHE", None)
    else:
        os.environ["ALIGNREC_CACHE"] = old
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.notebook
@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_smoke_movielens(name, tmp_path, movielens_cache):
    CHECKS[name](_run(name, tmp_path, {"DATASET": "movielens"}), False)
