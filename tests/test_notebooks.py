"""The notebooks run in SMOKE under papermill: their recorded numbers are plausible and a reader sees every figure.

Each notebook runs once per session on the bundled toy shop (``smoke_runs``, see
``tests/notebook_runs.py``: no ``MPLBACKEND``, one torch thread, static explorers on)
and, where it has a ``DATASET`` parameter, once on MovieLens with posters (real data: the
``real_data`` fixture skips outside CI when ``$ALIGNREC_DATA`` is missing). Checks:

* the recorded numbers: ranges and invariants a broken model would violate, never exact floats;
* what a reader sees (:func:`alignrec_lite.publish.check_executed`): every cell tagged
  ``figure`` has its ``image/png``, the count matches what the notebook is written to draw
  (``FIGURES``), each explorer's widget holds a picture (not the text ``<Figure ...>``), no
  error output, nothing on stderr;
* the SMOKE budget: 45 s per notebook on an idle 2-core CPU, asserted with head-room
  (``NOTEBOOK_BUDGET_S``, default 90 s) because the machines are shared.
"""

from __future__ import annotations

import math
import os
import shutil

import pytest

from alignrec_lite.nbtools import notebook_parameters, run_notebook
from alignrec_lite.publish import check_executed
from notebook_runs import EXPLORERS, FIGURES, kernel_env, notebook_path

BUDGET_S = float(os.environ.get("NOTEBOOK_BUDGET_S", 90))  # 2x the 45 s target, for loaded machines


def _in01(x) -> bool:
    return isinstance(x, (int, float)) and 0.0 <= x <= 1.0


# ----------------------------------------------------------------- per-notebook checks
def check_01(r: dict, dataset: str) -> None:
    assert _in01(r["mf_recall@20"]) and r["mf_recall@20"] > 0.02  # a broken MF scores ~chance (20/120)
    assert _in01(r["popularity_recall@20"])
    assert -1.0 <= r["norm_popularity_spearman"] <= 1.0
    assert r["top10_clicks_dot"] > 0 and r["top10_clicks_cosine"] > 0
    cat = r["category_p@10"]
    assert set(cat) == {"bag of words", "static word vectors", "MiniLM (pretrained)"}
    assert all(_in01(v) for v in cat.values())
    assert cat["MiniLM (pretrained)"] > 0.3  # chance is ~0.17 (six categories)
    assert r["probe_wins"]["bag of words"] == 0.0  # a paraphrase shares no word: BoW cosine 0
    assert r["probe_wins"]["MiniLM (pretrained)"] >= r["probe_wins"]["bag of words"]
    assert r["classifier_accuracy"] > 0.5
    clf, pix = r["classifier_p@10"], r["pixels_p@10"]
    assert clf["category"] > 0.6  # trained on categories ...
    assert clf["colour"] < pix["colour"]  # ... and forgets colour, which the pixels keep


def check_02(r: dict, dataset: str) -> None:
    n = r["n_test"]
    assert r["recall_i2t"]["recall@10"] > 2 * 10 / n  # well above chance on held-out pairs
    assert r["recall_t2i"]["recall@10"] > 2 * 10 / n
    assert r["recall_i2t"]["recall@10"] > r["recall_untrained"]["recall@10"]
    assert all(_in01(v) for v in r["negatives_sweep"].values())
    assert all(_in01(v) for v in r["temperature_sweep"].values())
    assert r["memory_bytes_per_n2"] == pytest.approx(8.0, rel=0.05)  # two N x N float32 softmaxes
    assert r["memory_gib_at_1e5"] > 70  # 8 * 1e10 bytes = 74.5 GiB from the N^2 term alone


def check_03(r: dict, dataset: str) -> None:
    c = r["circle_final"]
    assert set(c) == {"untrained", "CLIP / InfoNCE", "align + uniform", "align only"}
    for run in c.values():
        assert 0.0 <= run["align"] <= 4.0 and -4.1 <= run["uniform"] <= 0.0
    assert c["align only"]["uniform"] > -0.1  # alignment alone collapses
    assert c["CLIP / InfoNCE"]["uniform"] < c["align only"]["uniform"] - 0.2
    assert c["align + uniform"]["uniform"] < c["align only"]["uniform"] - 0.2
    assert 0.0 <= r["sphere_align"] <= 4.0 and -4.1 <= r["sphere_uniform"] <= 0.0
    assert len(r["temperature_rows"]) >= 2
    assert r["lightgcn_recall@20"] > 0.05
    assert {"align", "uniform_x", "uniform_y", "uniform"} <= set(r["user_item_geometry"])
    assert r["map_method"] == "pca"  # SMOKE never compiles UMAP


def check_04(r: dict, dataset: str) -> None:
    assert r["dataset"] == dataset
    n = r["n_items"]
    assert (n == 120) if dataset == "toy" else (50 <= n <= 200)
    assert r["recall_raw"]["recall@10"] <= 3 * 10 / n  # unaligned encoders: chance level
    assert 1.5 < r["align_raw"] < 2.5  # random directions: about 2
    assert all(_in01(v) for v in r["recall_ica"].values())
    first, last = r["ica_loss_first_last"]
    assert last < first  # ICA learns, even in three short epochs
    inter = r["intermediate"]
    assert {"popularity", "image", "text", "image+text", "mm", "mm before ICA"} <= set(inter)
    for row in inter.values():
        assert all(v is None or _in01(v) for v in row.values())
    assert inter["text"]["zero-shot"] > 0.05


def check_05(r: dict, dataset: str) -> None:
    toy = dataset == "toy"
    for key in ("alignrec_recall@20", "alignrec_no_cca_recall@20", "lightgcn_recall@20"):
        # toy: chance is 20/120 items ~ 0.17 at best for random lists, a broken model scores ~0.05;
        # MovieLens SMOKE (60 users, 2 epochs) is near chance (~20/1,500), so only the range is checked
        assert _in01(r[key]) and (r[key] > 0.05 or not toy), key
    assert {"loss_bpr", "loss_cca", "loss_uia", "loss_sim"} <= set(r["loss_terms"])
    for d in (r["align_content_id_first"], r["align_content_id_last"]):
        assert set(d) == {"AlignRec", "AlignRec w/o CCA"}
        assert all(0.0 <= v <= 4.0 for v in d.values())  # alignment of unit vectors lies in [0, 4]


def check_06(r: dict, dataset: str) -> None:
    toy = dataset == "toy"
    models = {"BPR", "LightGCN", "VBPR", "FREEDOM", "AlignRec"}
    means, stds = r["recall@20_mean"], r["recall@20_std"]
    assert models <= set(means) and len(means) == 10  # five models + five ablations
    assert r["n_runs"] == 10 * 2  # SMOKE: two seeds each
    assert all(_in01(v) and (v > 0.05 or not toy) for v in means.values())
    assert all(v >= 0 for v in stds.values())
    assert r["best_baseline"] in models - {"AlignRec"}
    assert set(r["tuned_learning_rate"]) == models
    assert math.isfinite(r["relative_gain_alignrec"])


def check_07(r: dict, dataset: str) -> None:
    toy = dataset == "toy"
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


def check_08(r: dict, dataset: str) -> None:
    toy = dataset == "toy"
    assert set(r["seconds_per_epoch"]) == {"BPR", "LightGCN", "VBPR", "FREEDOM", "AlignRec"}
    assert all(v > 0 for v in r["seconds_per_epoch"].values())
    assert all(0 < v < 5000 for v in r["single_user_ms"].values())
    assert r["export_rows"] == 20 * r["export_users"]  # every user gets a full top-20
    assert r["export_seconds"] > 0
    assert len(r["new_user_items"]) == 8 and len(set(r["new_user_items"])) == 8
    assert set(r["power_law_exponent"]) == {"LightGCN", "AlignRec"}


CHECKS = {"01": check_01, "02": check_02, "03": check_03, "04": check_04,
          "05": check_05, "06": check_06, "07": check_07, "08": check_08}


def _reader_view(executed, key: str) -> None:
    view = check_executed(executed, expected_figures=FIGURES[key])
    assert not view.problems, "\n".join(view.problems)
    assert len(view.explorer_figures) == EXPLORERS.get(key, 0)
    assert all(n >= 1 for n in view.explorer_figures.values())


# -------------------------------------------------------------------------- tests
def test_every_notebook_is_known():
    from alignrec_lite.nbtools import list_notebooks

    assert sorted(p.name[:2] for p in list_notebooks()) == sorted(CHECKS) == sorted(FIGURES)


@pytest.mark.notebook
@pytest.mark.parametrize("key", sorted(CHECKS))
def test_notebook_smoke_toy(key, smoke_runs):
    run = smoke_runs.get(key)
    print(f"\n{run.source.name} SMOKE toy: {run.seconds:.1f} s (budget 45 s idle, asserted {BUDGET_S:.0f} s)")
    assert run.records, "the notebook recorded nothing"
    assert run.seconds <= BUDGET_S, f"{run.source.name} took {run.seconds:.0f} s in SMOKE (budget {BUDGET_S:.0f} s)"
    CHECKS[key](run.records, "toy")
    _reader_view(run.executed, key)


DATASET_NOTEBOOKS = sorted(k for k in CHECKS if "DATASET" in notebook_parameters(notebook_path(k)))


def test_dataset_notebooks_are_known():
    assert DATASET_NOTEBOOKS == ["04", "05", "06", "07", "08"]  # 01-03 teach on the toy shop only


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
@pytest.mark.parametrize("key", DATASET_NOTEBOOKS)
def test_notebook_smoke_movielens(key, tmp_path, movielens_cache, real_data):
    src = notebook_path(key)
    params = {"SMOKE": True, "DATASET": "movielens"}
    if "DATA_ROOT" in notebook_parameters(src):
        params["DATA_ROOT"] = str(real_data)
    with kernel_env(ALIGNREC_CACHE=str(movielens_cache), ALIGNREC_DATA=str(real_data)):
        run = run_notebook(src, tmp_path, params, timeout=600, cwd=src.parent)
    print(f"\n{src.name} SMOKE movielens: {run.seconds:.1f} s")
    assert run.seconds <= BUDGET_S, f"{src.name} took {run.seconds:.0f} s in SMOKE (budget {BUDGET_S:.0f} s)"
    CHECKS[key](run.records, "movielens")
    _reader_view(run.executed, key)


@pytest.mark.notebook
def test_kit_errors_show_as_one_line_in_a_kernel(tmp_path):
    """In a real kernel (papermill), a notebook that imports nbtools shows the kit's input errors as the
    message with its fix (no traceback), and the run still fails with that error."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import alignrec_lite.nbtools"),
                nbformat.v4.new_code_cell("from alignrec_lite.errors import DataError\n"
                                          "raise DataError('x_label must be 0, 1 or 2', path='a.inter', row=3, "
                                          "fix='use 0, 1 or 2')")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), progress_bar=False,
                            kernel_name="python3")
    assert info.value.ename == "DataError"
    (err,) = [o for o in nbformat.read(tmp_path / "out.ipynb", 4).cells[-1].outputs if o.output_type == "error"]
    assert "a.inter, line 3: x_label must be 0, 1 or 2. Fix: use 0, 1 or 2" in err.traceback[0]
    assert len(err.traceback) == 2 and not any("Traceback" in line for line in err.traceback)
