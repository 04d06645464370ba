"""Recording and running notebooks (alignrec_lite.nbtools): records, parameters, finding notebooks, short errors."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from alignrec_lite import nbtools
from alignrec_lite.errors import ConfigError, DataError


def _exec_nb(cells, tmp_path, params=None):
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(
        cells=[new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nb.cells[0].metadata["tags"] = ["parameters"]
    src = tmp_path / "00_demo.ipynb"
    nbformat.write(nb, src)
    return src


@pytest.mark.notebook
def test_record_and_read_back_through_papermill(tmp_path):
    src = _exec_nb(
        [
            "X = 1",
            "from alignrec_lite.nbtools import record\nimport numpy as np\n"
            "record('x', X)\nrecord('arr', np.arange(3))\nrecord('d', {'a': np.float32(0.5)})",
        ],
        tmp_path,
    )
    run = nbtools.run_notebook(src, tmp_path / "out", {"X": 7})
    assert run.records == {"x": 7, "arr": [0, 1, 2], "d": {"a": 0.5}}
    assert nbtools.read_records(run.executed) == run.records
    assert nbtools.notebook_parameters(src) == {"X": 1}
    html = nbtools.to_html(run.executed)
    assert html.exists() and "<html" in html.read_text(encoding="utf-8").lower()


def test_read_records_from_node_and_errors(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("record(...)")
    cell.outputs = [
        new_output("display_data", data={nbtools.RECORD_MIME: {"name": "k", "value": 3}, "text/plain": "k = 3"}),
        new_output("display_data", data={nbtools.RECORD_MIME: json.dumps({"name": "k", "value": 4})}),
    ]
    assert nbtools.read_records(new_notebook(cells=[cell])) == {"k": 4}  # later wins
    with pytest.raises(DataError):
        nbtools.read_records(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError):
        nbtools.read_records(bad)


def test_record_outside_ipython_prints(capsys):
    nbtools.record("answer", np.int64(42))
    assert "answer = 42" in capsys.readouterr().out
    with pytest.raises(ConfigError):
        nbtools.record("bad", object())


def test_record_keeps_non_finite_visible(capsys):
    nbtools.record("nan", float("nan"))
    assert "'nan'" in capsys.readouterr().out


def test_find_notebooks():
    found = nbtools.find_notebooks(["01", "02_contrastive_learning", "03_alignment_and_uniformity.ipynb"])
    assert [p.name[:2] for p in found] == ["01", "02", "03"]
    assert all(p.name[:2].isdigit() for p in nbtools.list_notebooks())
    with pytest.raises(ConfigError):
        nbtools.find_notebooks(["99"])


def test_notebook_parameters_requires_tag(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    path = tmp_path / "x.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("A = 1")]), path)
    with pytest.raises(DataError, match="parameters"):
        nbtools.notebook_parameters(path)


def test_notebook_short_errors_show_the_kit_errors_in_one_line(monkeypatch):
    """In IPython the kit's input errors are shown as two lines (message with fix, hint) and the cell
    still fails; other exceptions keep their traceback; short_errors(False) switches back."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    from alignrec_lite import nbtools

    shell = InteractiveShell.instance()
    shown: list[tuple[str, str]] = []  # what the front end would display: (exception name, traceback text)
    monkeypatch.setattr(
        shell, "_showtraceback", lambda etype, value, stb: shown.append((etype.__name__, "\n".join(stb)))
    )
    bad = (
        "from alignrec_lite.errors import DataError\n"
        'raise DataError("x_label must be 0, 1 or 2", path="a.inter", row=3, fix="use 0, 1 or 2")'
    )
    try:
        assert nbtools.short_errors() is True
        res = shell.run_cell(bad)
        assert not res.success and type(res.error_in_exec).__name__ == "DataError"
        name, text = shown[-1]
        assert name == "DataError" and "a.inter, line 3: x_label must be 0, 1 or 2. Fix: use 0, 1 or 2" in text
        assert "Traceback" not in text and "short_errors(False)" in text and len(text.splitlines()) == 2
        res = shell.run_cell("1/0")
        assert not res.success and shown[-1][0] == "ZeroDivisionError" and len(shown[-1][1].splitlines()) > 2
        nbtools.short_errors(False)
        shell.run_cell(bad)
        assert shown[-1][0] == "DataError" and "short_errors(False)" not in shown[-1][1]
        assert len(shown[-1][1].splitlines()) > 2
    finally:
        nbtools.short_errors(False)
        InteractiveShell.clear_instance()
