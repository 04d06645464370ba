"""Committed notebooks are clean sources (STYLE.md §2.1 and §2.3).

No outputs, blank execution counts, no papermill metadata or injected-parameters
cell (an executed copy committed by mistake), kernelspec ``python3``, one
``parameters``-tagged cell holding literals only with ``SMOKE = False`` first,
collapsed solution cells, the record cell last, imports limited to the standard
library, numpy, torch, matplotlib and ``alignrec_lite``, and nothing that
installs packages or assumes a GPU. ``nbstripout --verify`` (the pre-commit
hook's settings) must find nothing to strip.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import nbformat
import pytest

from alignrec_lite.nbtools import notebooks_dir

NB_DIR = notebooks_dir()
ALL = sorted(NB_DIR.glob("*.ipynb"))
NUMBERED = [p for p in ALL if p.name[:2].isdigit()]
ALLOWED_IMPORTS = {"numpy", "torch", "matplotlib", "alignrec_lite"} | set(sys.stdlib_module_names)
MAX_CELL_LINES = 18  # "about 15" (STYLE §2.1); a few comment lines of slack
STRIP_KEYS = "metadata.papermill cell.metadata.papermill"


def _ids(paths):
    return [p.name for p in paths]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _strip_magics(src: str) -> str:
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_notebooks_exist():
    assert (NB_DIR / "_template.ipynb").exists()
    assert {p.name[:2] for p in NUMBERED} >= {"01", "02", "03", "04"}


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_clean_source(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "papermill" not in nb.metadata
    for i, cell in enumerate(nb.cells):
        assert "papermill" not in cell.metadata, f"cell {i} has papermill metadata"
        assert "injected-parameters" not in cell.metadata.get("tags", []), f"cell {i} was injected by papermill"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs"
            assert cell.execution_count is None, f"cell {i} has an execution count"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    cell = tagged[0]
    assert cell.cell_type == "code" and cell is _code(nb)[0], "the parameters cell is the first code cell"
    body = ast.parse(cell.source).body
    assert body, "the parameters cell is empty"
    for node in body:  # literals only: papermill overrides by injecting a cell after it
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        assert node.targets[0].id.isupper(), f"parameter {node.targets[0].id} is not UPPER_CASE"
        ast.literal_eval(node.value)
    first = body[0]
    assert first.targets[0].id == "SMOKE" and ast.literal_eval(first.value) is False
    for line in cell.source.splitlines():  # papermill's parameter inspection skips lines with two '='
        assert line.count("=") <= 1, f"papermill cannot parse (no '=' in comments): {line!r}"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_structure(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for needle in ("Learning goals", "Prerequisites", "Runs in", "## Summary", "What's next", "## References"):
        assert needle in text, f"missing {needle!r}"
    last = _code(nb)[-1]
    assert last.source.startswith("# Record results for tests"), "the last code cell records results"
    if path.name[:2].isdigit():
        assert path.name[:2] == nb.cells[0].source[2:4], "the title number matches the file name"
        assert "record(" in last.source


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_exercises_have_hidden_solutions(path):
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    solutions = [c for c in code if c.source.startswith("# Solution")]
    checks = [c for c in code if "exercises.check_" in c.source and not c.source.startswith("# Solution")]
    assert 1 <= len(solutions) <= 3, "one to three exercises"
    assert len(checks) == len(solutions), "every exercise has a check cell and a solution"
    for cell in solutions:
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, "solution cells are collapsed"
        assert "exercises.check_" in cell.source, "the solution runs the same check"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_code_rules(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(_code(nb)):
        src = cell.source
        assert "!pip" not in src and "%pip" not in src, f"cell {i} installs packages"
        assert ".cuda()" not in src, f"cell {i} assumes a GPU (use get_device)"
        assert "sys.path" not in src, f"cell {i} edits sys.path (install the kit with pip install -e .)"
        assert "plt.show()" not in src
        assert len(src.splitlines()) <= MAX_CELL_LINES, f"cell {i} has {len(src.splitlines())} lines"
        for node in ast.walk(ast.parse(_strip_magics(src))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in ALLOWED_IMPORTS, f"cell {i} imports {name}"


def test_nbstripout_finds_nothing_to_strip():
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", "--extra-keys", STRIP_KEYS, *map(str, ALL)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
