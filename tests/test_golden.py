"""Behaviour unchanged by the restructuring of issue 15: today's numbers equal the golden run, bit for bit.

Bit for bit on a machine whose CPU kernels use the golden run's instruction set (``golden.json``'s
``machine``: AVX-512); on another (AVX2 rounds float32 sums differently) floats are compared to
``golden.CROSS_MACHINE_REL`` relative and everything else stays exact.

``tests/golden.json`` was recorded by ``python tests/golden.py --write`` before the first move.
Three parts: every model on the SMOKE toy shop, one AlignRec run on MovieLens with posters, and
every notebook's recorded values in SMOKE (the notebooks run once per session, shared with
``test_notebooks.py``). A difference names the first value that changed.
"""

from __future__ import annotations

import golden
import pytest


def test_golden_file_has_every_part() -> None:
    g = golden.load()
    assert set(g) == {"models", "movielens", "notebooks", "machine"}
    assert set(g["notebooks"]) == set(golden.NOTEBOOKS) == {f"{i:02d}" for i in range(1, 9)}
    assert all(g["models"][m]["valid"]["recall@20"] > 0 for m in g["models"])


def test_first_difference_finds_a_changed_float() -> None:
    a = {"m": {"valid": {"recall@20": 0.25}, "losses": [1.0, 0.5]}}
    assert golden.first_difference(a, a) is None
    b = {"m": {"valid": {"recall@20": 0.25}, "losses": [1.0, 0.5000000000000001]}}
    assert golden.first_difference(a, b) == "/m/losses[1]: was 0.5, now 0.5000000000000001"
    assert "missing now" in golden.first_difference(a, {"m": {"valid": {}, "losses": [1.0, 0.5]}})


def test_a_machine_with_another_instruction_set_compares_floats_to_a_tolerance() -> None:
    a = {"align": 0.002527027390897274, "epochs": 3, "name": "x"}
    b = {"align": 0.002527001779526472, "epochs": 3, "name": "x"}  # AVX-512 vs AVX2, notebook 03
    assert golden.first_difference(a, b) is not None  # bit for bit on the golden run's kind of machine
    assert golden.first_difference(a, b, rel=golden.CROSS_MACHINE_REL) is None
    assert golden.first_difference(a, {**b, "align": 0.00256}, rel=golden.CROSS_MACHINE_REL) is not None
    assert golden.first_difference(a, {**b, "epochs": 4}, rel=golden.CROSS_MACHINE_REL) == "/epochs: was 3, now 4"
    here = golden.cpu_capability()
    assert golden.tolerance({"machine": {"cpu_capability": here}}) == 0.0
    assert golden.tolerance({"machine": {"cpu_capability": here + "-other"}}) == golden.CROSS_MACHINE_REL
    mixed = {"machine": {"cpu_capability": here + "-other", "parts": {"notebooks/06": here}}}
    assert golden.tolerance(mixed, "notebooks/06") == 0.0 and golden.tolerance(mixed, "notebooks/05") > 0


def test_writing_one_notebook_keeps_the_others_and_records_its_machine(tmp_path, monkeypatch) -> None:
    old = {
        "machine": {"cpu_capability": "AVX512", "parts": {"notebooks/06": "AVX2"}},
        "models": {"bpr": 1},
        "notebooks": {"06": {"a": 1.0}, "08": {"b": 2.0}},
    }
    monkeypatch.setattr(golden, "GOLDEN", tmp_path / "golden.json")
    golden.GOLDEN.write_text(golden.json.dumps(old))
    monkeypatch.setattr(golden, "_notebook_records", lambda work, keys: {k: {"b": 3.0} for k in keys})
    monkeypatch.setattr(golden, "cpu_capability", lambda: "AVX2")
    assert golden.main(["--write", "--parts", "notebooks/08", "--work", str(tmp_path / "w")]) == 0
    new = golden.load()
    assert new["notebooks"] == {"06": {"a": 1.0}, "08": {"b": 3.0}} and new["models"] == {"bpr": 1}
    assert new["machine"] == {"cpu_capability": "AVX512", "parts": {"notebooks/06": "AVX2", "notebooks/08": "AVX2"}}
    assert golden.main(["--parts", "notebooks/08", "--work", str(tmp_path / "w")]) == 0  # compared alone: equal
    monkeypatch.setattr(golden, "_notebook_records", lambda work, keys: {k: {"b": 4.0} for k in keys})
    assert golden.main(["--parts", "notebooks/08", "--work", str(tmp_path / "w")]) == 1


def test_models_match_golden_run() -> None:
    expected = golden.load()["models"]
    now = golden.model_runs()
    d = golden.first_difference(expected, now, rel=golden.tolerance(part="models"))
    assert d is None, d


@pytest.mark.realdata
def test_movielens_run_matches_golden_run(real_data, tmp_path) -> None:
    expected = golden.load()["movielens"]
    now = golden.movielens_run(real_data, tmp_path)
    d = golden.first_difference(expected, now, rel=golden.tolerance(part="movielens"))
    assert d is None, d


@pytest.mark.notebook
@pytest.mark.parametrize("key", golden.NOTEBOOKS)
def test_notebook_records_match_golden_run(smoke_runs, key: str) -> None:
    expected = golden.load()["notebooks"][key]
    now = golden.stable_records(smoke_runs.get(key).records)
    d = golden.first_difference(expected, now, rel=golden.tolerance(part=f"notebooks/{key}"))
    assert d is None, d
