"""The reader's-view plumbing: explorer figures as PNG, their static versions, checks on executed notebooks,
offline HTML pages, and the ``make lab`` command. (The browser itself is in test_browser.py.)"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from alignrec_lite import lab, publish
from alignrec_lite.widgets import static

matplotlib.use("Agg")  # drawn in the test process; under Agg a Figure would display as text, the PNG path must not

REPO = Path(__file__).resolve().parents[1]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def _results():
    rng = np.random.default_rng(0)
    return {
        "clip": {0.1: rng.normal(size=(20, 3)), 1.0: rng.normal(size=(20, 3)), 5.0: rng.normal(size=(20, 3))},
        "align + uniform": {2.0: rng.normal(size=(20, 3))},
    }


# ------------------------------------------------------------------ explorers
def test_explorer_output_is_a_png_whatever_the_backend(monkeypatch):
    monkeypatch.delenv(static.STATIC_ENV, raising=False)
    from alignrec_lite.widgets import geometry_explorer

    w = geometry_explorer(_results(), np.arange(20) % 3)
    out = w.children[1]
    (shown,) = out.outputs
    assert base64.b64decode(shown["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Figure size" not in shown["data"]["text/plain"]
    assert "text/html" not in w._repr_mimebundle_()  # no static version unless asked
    assert w.controls[1].value == 1.0
    w.controls[1].value = 5.0
    assert out.outputs[0]["data"]["image/png"] != shown["data"]["image/png"]  # the slider redraws


def test_static_explorer_draws_every_combination(monkeypatch):
    monkeypatch.setenv(static.STATIC_ENV, "1")
    from alignrec_lite.widgets import geometry_explorer

    w = geometry_explorer(_results(), np.arange(20) % 3)
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and static.STATIC_MIME in bundle
    page = bundle["text/html"]
    frames = re.search(r'<script type="application/json" class="arl-frames">(.*?)</script>', page).group(1)
    import json

    frames = json.loads(frames)
    assert sorted(frames) == [f"{a}|{b}" for a in range(2) for b in range(4)]  # 2 losses x 4 temperatures
    assert all(v.startswith("data:image/png;base64,") for v in frames.values())
    assert frames["0|0"] != frames["0|2"]  # clip at 0.1 vs 2.0 (nearest stored: 1.0)
    assert '<select data-k="0">' in page and 'type="range" data-k="1"' in page and "make lab" in page


def test_static_html_has_no_network_reference():
    import matplotlib.pyplot as plt

    def draw(v):
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, v])
        return fig

    page = static.static_html([("v", [1, 2, 3])], draw, start=[1])
    assert "http" not in page and page.count("data:image/png;base64,") == 4  # 3 frames + the shown one
    assert 'value="1"' in page


# ------------------------------------------------------------------ checks on executed notebooks
def _nb(*cells, widgets=None):
    nb = new_notebook(cells=[new_markdown_cell("# 09 · A test\n\nWhat does it show?\n\nMore.")] + list(cells))
    if widgets:
        nb.metadata["widgets"] = {publish.WIDGET_STATE: {"state": widgets, "version_major": 2, "version_minor": 0}}
    return nb


def _fig_cell(tagged=True, outputs=None):
    c = new_code_cell("plot()")
    if tagged:
        c.metadata["tags"] = [publish.FIGURE_TAG]
    c.outputs = outputs if outputs is not None else [new_output("display_data", data={"image/png": PNG})]
    return c


def test_check_executed_finds_what_a_reader_would_miss():
    good = _nb(_fig_cell(), new_code_cell("x = 1"))
    assert publish.check_executed(good, expected_figures=1).problems == []
    cases = {
        "tagged 'figure' but shows no image": _nb(_fig_cell(outputs=[])),
        "not tagged": _nb(_fig_cell(tagged=False)),
        "as text": _nb(
            _fig_cell(outputs=[new_output("display_data", data={"text/plain": "<Figure size 400x400 with 1 Axes>"})])
        ),
        "stderr": _nb(
            _fig_cell(
                outputs=[
                    new_output("display_data", data={"image/png": PNG}),
                    new_output("stream", name="stderr", text="UserWarning: x"),
                ]
            )
        ),
        "failed": _nb(_fig_cell(outputs=[new_output("error", ename="ValueError", evalue="bad", traceback=[])])),
    }
    for needle, nb in cases.items():
        problems = publish.check_executed(nb).problems
        assert any(needle in p for p in problems), (needle, problems)
    assert "written to draw 2" in publish.check_executed(good, expected_figures=2).problems[0]


def _explorer_nb(widget_outputs, text_html: str | None = None):
    cell = new_code_cell("explorer")
    cell.metadata["tags"] = [publish.EXPLORER_TAG]
    data = {publish.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox()"}
    if text_html:
        data["text/html"] = text_html
    cell.outputs = [new_output("display_data", data=data)]
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_out"]}},
        "out": {"model_name": "OutputModel", "state": {"outputs": widget_outputs}},
    }
    return _nb(cell, widgets=state)


def test_check_executed_looks_inside_explorer_widgets():
    ok = _explorer_nb([{"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}}])
    view = publish.check_executed(ok)
    assert view.problems == [] and list(view.explorer_figures.values()) == [1]
    text = _explorer_nb(
        [{"output_type": "display_data", "metadata": {}, "data": {"text/plain": "<Figure size 400x400 with 1 Axes>"}}]
    )
    problems = publish.check_executed(text).problems
    assert any("holds no figure" in p for p in problems) and any("as text" in p for p in problems)


def test_prepare_for_html_replaces_widgets_by_what_a_page_can_show():
    static_nb = _explorer_nb([], text_html="<div class='arl-explorer'></div>")
    cell = publish.prepare_for_html(static_nb).cells[1]
    assert cell.outputs[0]["data"] == {"text/html": "<div class='arl-explorer'></div>"}
    live = publish.prepare_for_html(
        _explorer_nb([{"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG}}])
    )
    assert live.cells[1].outputs[0]["data"] == {"image/png": PNG} and "make lab" in str(live.cells[1].outputs[1])
    assert "widgets" not in live.metadata and live.metadata["title"] == "09 · A test"
    bar = new_code_cell("loop")
    bar.outputs = [new_output("display_data", data={publish.WIDGET_VIEW: {"model_id": "h"}, "text/plain": "0%"})]
    state = {
        "h": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_p", "IPY_MODEL_b"]}},
        "a": {"model_name": "HTMLModel", "state": {"value": "epochs"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 30, "max": 30}},
        "b": {"model_name": "HTMLModel", "state": {"value": " 30/30 [00:02&lt;00:00]"}},
    }
    (out,) = publish.prepare_for_html(_nb(bar, widgets=state)).cells[1].outputs
    assert out["text"] == "epochs 30/30 30/30 [00:02<00:00]\n"  # the final state, not the 0 % it started at


def test_page_is_offline_and_titled(tmp_path):
    nb = _nb(_fig_cell(), new_markdown_cell("A formula: $x^2$."))
    src = tmp_path / "09_test.ipynb"
    nbformat.write(nb, src)
    site = publish.build_site([src], tmp_path / "site", seconds={"09_test.ipynb": 12.0})
    page = (site / "09_test.html").read_text()
    assert "<title>09 · A test</title>" in page
    assert not re.findall(r"""(?:src|href)=["']https?://""", page)  # no CDN: require.js, widgets, MathJax
    assert 'src="mathjax/tex-svg.js"' in page and (site / "mathjax" / "tex-svg.js").is_file()
    index = (site / "index.html").read_text()
    assert 'href="09_test.html"' in index and "What does it show?" in index and "12 s" in index
    assert (site / "figures" / "09_test.png").read_bytes().startswith(b"\x89PNG")


def test_titles_and_questions_of_the_course():
    from alignrec_lite.nbtools import list_notebooks

    for path in list_notebooks():
        title = publish.notebook_title(path)
        assert title.startswith(path.name[:2] + " · "), title
        assert len(publish.notebook_question(path)) > 40, path.name


# ------------------------------------------------------------------ make lab
def test_lab_command_is_local_tokened_and_root_aware(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "is_root", lambda: False)
    cmd = lab.lab_command(tmp_path, port=9999, token="abc", jupyter="jupyter")
    assert cmd[:3] == ["jupyter", "lab", "--no-browser"]
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--IdentityProvider.token=abc" in cmd
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in cmd and "--allow-root" not in cmd
    monkeypatch.setattr(lab, "is_root", lambda: True)
    assert "--allow-root" in lab.lab_command(tmp_path)
    assert "MPLBACKEND" not in lab.lab_env({"MPLBACKEND": "Agg", "PATH": "/bin"})
    assert lab.lab_url(9999, "abc") == "http://127.0.0.1:9999/lab?token=abc"


def test_lab_main_refuses_a_bad_root(tmp_path, capsys):
    assert lab.main(["--root", str(tmp_path / "missing")]) == 2
    assert "Fix" in capsys.readouterr().err


def test_nothing_a_kernel_inherits_sets_the_matplotlib_backend():
    for path in ("Makefile", ".ci/run", "alignrec_lite/tour.py", "alignrec_lite/lab.py", "tests/conftest.py"):
        text = (REPO / path).read_text()
        assert not re.search(r"^\s*(export\s+)?MPLBACKEND\s*:?=", text, flags=re.M), path
        assert 'setdefault("MPLBACKEND"' not in text and 'environ["MPLBACKEND"]' not in text, path


def test_site_rerenders_smoke_or_other_dataset_copies(tmp_path):
    src_nb = _nb(new_code_cell('SMOKE = False\nDATASET = "toy"'))
    src_nb.cells[1].metadata["tags"] = ["parameters"]
    src, executed = tmp_path / "09_x.ipynb", tmp_path / "out" / "09_x.ipynb"
    nbformat.write(src_nb, src)
    assert publish._stale(executed, src, {})  # never executed
    executed.parent.mkdir()
    for ran, wanted, stale in [
        ({}, {}, False),
        ({"SMOKE": True}, {}, True),
        ({"DATASET": "movielens"}, {}, True),
        ({"DATASET": "movielens"}, {"DATASET": "movielens"}, False),
        ({}, {"DATASET": "movielens"}, True),
    ]:
        nb = _nb()
        nb.metadata["papermill"] = {"parameters": ran}
        nbformat.write(nb, executed)
        assert publish._stale(executed, src, wanted) is stale, (ran, wanted)


def test_kernel_env_sets_restores_and_drops_the_backend(monkeypatch):
    import os

    from alignrec_lite.nbtools import kernel_env

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.delenv(static.STATIC_ENV, raising=False)
    with kernel_env(TQDM_DISABLE="1", **{static.STATIC_ENV: "1"}):
        assert "MPLBACKEND" not in os.environ  # kernels started now get the inline backend
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ[static.STATIC_ENV] == "1"
    assert os.environ["MPLBACKEND"] == "Agg" and os.environ["TQDM_DISABLE"] == "0"
    assert static.STATIC_ENV not in os.environ
