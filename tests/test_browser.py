"""What a reader sees, in a real browser: JupyterLab running every notebook, and the offline course site.

* **JupyterLab**: started with the command ``make lab`` runs (:func:`alignrec_lite.lab.lab_command`:
  fixed token, 127.0.0.1, no browser) on SMOKE copies of the notebooks. For each notebook:
  open it, Run > Run All Cells, wait until the kernel is idle; then no error or stderr output, no
  browser console error, no failed request, every figure rendered (the count the notebook is
  written to draw, each image decoded), and for each explorer every control moved with the
  pixels of its figure compared before and after.
* **The site** (``make site``, built here from the session's SMOKE runs), opened from disk
  with every request off this machine blocked: every page linked from the index loads with
  no failed request or console error, its title is the notebook's, every image decodes, the
  formulas are typeset by the site's own MathJax, and each static explorer's controls change
  its figure.

Screenshots go to each test's temporary folder; with ``ALIGNREC_SCREENSHOTS=DIR`` (``make
screenshots``) the README's two pictures are written to ``DIR`` too. Chromium is Debian's
package (Playwright cannot download browsers here); without it the tests skip with how to
get one, and in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from browser import CHROMIUM_FLAGS, HOW_TO_GET, LabServer, find_chromium, run_all_in_lab, watch
from notebook_runs import EXPLORERS, FIGURES, KERNEL_THREADS, notebook_path

from alignrec_lite.publish import build_site, notebook_title

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("ALIGNREC_SCREENSHOTS")

# images in cells vs in widgets (JupyterLab) / static explorers (site); each must have decoded
_COUNT_IMAGES = """(scope) => {
  const imgs = Array.from(document.querySelectorAll(scope + ' img'));
  const inWidget = (i) => i.closest('.jupyter-widgets, .arl-explorer') !== null;
  return {cells: imgs.filter(i => !inWidget(i) && i.closest('.jp-RenderedImage')).length,
          widgets: imgs.filter(inWidget).length,
          broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.alt || i.src).slice(0, 60))};
}"""


def _need_browser() -> str:
    path = find_chromium()
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(HOW_TO_GET)
        pytest.skip(HOW_TO_GET)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = _need_browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on SMOKE copies of the eight notebooks (parameters injected as papermill does)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    _need_browser()
    root = tmp_path_factory.mktemp("lab-notebooks")
    for key in sorted(FIGURES):
        src = notebook_path(key)
        nb = parameterize_notebook(load_notebook_node(str(src)), {"SMOKE": True}, kernel_name="python3")
        nbformat.write(nb, root / src.name)
    state = tmp_path_factory.mktemp("lab-state")
    env = {
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": KERNEL_THREADS,  # as the papermill runs of tests/notebook_runs.py
        "ALIGNREC_CACHE": str(state / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    server = LabServer(root, state, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _wait_changed(read, before, timeout: float = 30.0):
    """Poll ``read()`` until it differs from ``before`` (and is not None); returns the new value or ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read()
        if now is not None and now != before:
            return now
        time.sleep(0.25)
    return before


def _pixels(locator):
    """A screenshot of the element, or None while it is being replaced (a redraw swaps the image)."""
    try:
        return locator.screenshot(timeout=5000)
    except Exception:  # detached or not yet stable: the caller polls again
        return None


def _move_lab_controls(page, cell) -> list[str]:
    """Move every control of the explorer in ``cell``; returns a line per control whose figure did not change."""
    stuck = []
    figure = cell.locator(".jupyter-widgets .jp-RenderedImage img").first
    # sliders first: a drop-down choice may leave the slider a single option (03: align + uniform)
    for n in range(cell.locator(".jupyter-widgets .noUi-target").count()):
        track = cell.locator(".jupyter-widgets .noUi-target").nth(n)
        handle = track.locator(".noUi-handle").first
        before = _wait_changed(lambda: _pixels(figure), None)
        box, knob = track.bounding_box(), handle.bounding_box()
        # click the far end of the track from the handle, as a user would to jump there
        right_half = knob["x"] + knob["width"] / 2 > box["x"] + box["width"] / 2
        page.mouse.click(box["x"] + (0.02 if right_half else 0.98) * box["width"], box["y"] + box["height"] / 2)
        after = _wait_changed(lambda: _pixels(figure), before)
        if after == before:
            stuck.append(f"slider {n} left the figure unchanged")
    for n in range(cell.locator(".jupyter-widgets select").count()):
        select = cell.locator(".jupyter-widgets select").nth(n)
        options = select.locator("option").all_text_contents()
        before = _wait_changed(lambda: _pixels(figure), None)
        current = select.input_value()
        values = [o for o in select.locator("option").evaluate_all("os => os.map(o => o.value)") if o != current]
        select.select_option(values[0])
        after = _wait_changed(lambda: _pixels(figure), before)
        if after == before:
            stuck.append(f"drop-down {n} ({options}) left the figure unchanged")
    return stuck


@pytest.mark.notebook
@pytest.mark.parametrize("key", sorted(FIGURES))
def test_notebook_runs_in_jupyterlab(key, browser, lab, tmp_path):
    name = notebook_path(key).name
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log = watch(page)
    try:
        seconds = run_all_in_lab(page, lab, name)
        print(f"\n{name}: Run All in JupyterLab {seconds:.1f} s")
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, "error or stderr output:\n" + "\n".join(errors.all_inner_texts())[:3000]
        counts = page.evaluate(_COUNT_IMAGES, ".jp-Notebook")
        assert counts["broken"] == [], counts
        assert counts["cells"] == FIGURES[key], counts
        assert counts["widgets"] == EXPLORERS.get(key, 0), counts
        explorers = page.locator(".jp-CodeCell").filter(has=page.locator(".jupyter-widgets .jp-RenderedImage img"))
        assert explorers.count() == EXPLORERS.get(key, 0)
        for n in range(explorers.count()):
            cell = explorers.nth(n)
            cell.scroll_into_view_if_needed()
            assert _move_lab_controls(page, cell) == []
            cell.screenshot(path=str(tmp_path / f"{key}_explorer{n}.png"))
        page.screenshot(path=str(tmp_path / f"{key}_lab.png"))
        if SHOTS and key == "03":
            for button in page.get_by_role("button", name="No", exact=True).all():
                button.click()  # the "Jupyter news?" toast, not part of the picture
            page.locator(".jp-CodeCell").filter(
                has=page.locator(".jp-RenderedImage img")
            ).first.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)  # JupyterLab draws the cells that scrolled into view
            page.screenshot(path=str(Path(SHOTS) / "jupyterlab.png"))
        assert not log.problems(), log.problems()
    finally:
        page.close()
        lab.shutdown_kernels()


@pytest.mark.notebook
def test_site_works_offline(browser, smoke_runs, tmp_path):
    keys = sorted(FIGURES)
    executed = [smoke_runs.get(k).executed for k in keys]
    site = build_site(executed, tmp_path / "site", settings="SMOKE settings (the test run: tiny data, few epochs)")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    log = watch(page)
    try:
        page.goto((site / "index.html").as_uri())
        assert page.title().startswith("alignrec-lite")
        cards = page.locator(".card")
        assert cards.count() == len(keys)
        index_images = page.evaluate(_COUNT_IMAGES.replace("i.closest('.jp-RenderedImage')", "true"), "body")
        assert index_images["broken"] == [] and index_images["cells"] == len(keys), index_images
        page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / "site_index.png"))
        links = page.locator(".card h2 a").evaluate_all("as => as.map(a => a.href)")
        assert len(links) == len(keys)
        for key, url, nb_path in zip(keys, links, executed):
            page.goto(url)
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
            page.evaluate("MathJax.startup.promise.then(() => true)")
            assert page.title() == notebook_title(nb_path), url
            counts = page.evaluate(_COUNT_IMAGES, "main")
            assert counts["broken"] == [], (url, counts)
            assert counts["cells"] == FIGURES[key], (url, counts)
            assert counts["widgets"] == EXPLORERS.get(key, 0), (url, counts)
            math = page.locator("mjx-container").count()
            source_has_math = "$" in "".join(
                c.source for c in __import__("nbformat").read(nb_path, 4).cells if c.cell_type == "markdown"
            )
            assert (math > 0) == source_has_math, (url, math)
            assert page.locator("mjx-merror").count() == 0, url
            for n in range(page.locator(".arl-explorer").count()):
                box = page.locator(".arl-explorer").nth(n)
                img = box.locator("img.arl-frame")
                # sliders first: a drop-down choice may leave the slider a single option (03: align + uniform)
                controls = [box.locator("input[data-k]").nth(i) for i in range(box.locator("input[data-k]").count())]
                controls += [box.locator("select[data-k]").nth(i) for i in range(box.locator("select[data-k]").count())]
                for c, ctl in enumerate(controls):
                    before = img.get_attribute("src")
                    if ctl.evaluate("e => e.tagName") == "SELECT":
                        values = ctl.locator("option").evaluate_all("os => os.map(o => o.value)")
                        ctl.select_option(next(v for v in values if v != ctl.input_value()))
                    else:
                        top = ctl.get_attribute("max")
                        ctl.fill("0" if ctl.input_value() == top else top)
                    assert img.get_attribute("src") != before, f"{url}: control {c} did not change the figure"
                box.screenshot(path=str(tmp_path / f"{key}_static_explorer{n}.png"))
        assert not log.problems(), log.problems()
    finally:
        page.close()
