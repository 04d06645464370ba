"""The reader's view: checks on executed notebooks, HTML pages that work offline, and the course site.

What a student or a blog reader sees is the product, so it is checked, not assumed:

* :func:`check_executed` reads an executed notebook and lists what a reader would
  miss: a cell tagged ``figure`` without an ``image/png`` output, a figure drawn in a
  cell that is not tagged (so the count would go stale), a figure shown as the text
  ``<Figure size ...>``, an explorer (tag ``explorer``) whose widget holds no picture,
  an error output, anything written to stderr.
* :func:`prepare_for_html` turns live widgets into what a page without a kernel can
  show: an explorer's precomputed static version (:mod:`alignrec_lite.widgets.static`),
  else the widget's last figure with one line on how to run it live; a progress bar
  becomes its final text. Widget state and the CDN scripts that would load it go.
* :func:`to_html` writes one page: nbconvert's ``lab`` template without require.js,
  the widget manager or mermaid from CDNs, MathJax served from the site itself
  (``mathjax/``: MathJax 3 from the ``django-static-mathjax`` package, SVG output, so
  no font file is fetched), and the notebook's own title.
* :func:`build_site` writes ``_build/site/``: ``index.html`` (the course outline:
  each notebook's question, one of its figures, its run time) and the eight pages.

``python -m alignrec_lite.publish`` (``make site``) builds the site from
``_build/notebooks/``, executing the notebooks at full settings first when their
executed copies are missing or older than the sources.
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AlignRecError, DataError
from .files import atomic_dir, atomic_write

FIGURE_TAG = "figure"
EXPLORER_TAG = "explorer"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
FIGURE_REPR = re.compile(r"<(Figure|matplotlib\.\w+\.\w+ object)[^>]*>")
MATHJAX_DIR = "mathjax"

# nbconvert's lab page, minus everything it would fetch from a CDN; MathJax 3 (SVG output: the glyphs
# are in the script, so no font file is fetched, which file:// pages could not do) from the site itself
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true, processEnvironments: true},
  svg: {fontCache: "global"},
  options: {enableMenu: false}
};
</script>
<script src="{{ resources.mathjax_url }}" id="MathJax-script"></script>
{%- endblock html_head_js_mathjax -%}
{% block body_header %}
{{ super() }}
<nav style="padding:0.5em 1em;font-family:sans-serif"><a href="index.html">&larr; alignrec-lite course</a></nav>
{% endblock body_header %}
"""


# ------------------------------------------------------------------ checks
def _images(outputs: Sequence[Any]) -> int:
    return sum(1 for o in outputs if "image/png" in (o.get("data") or {}))


def _widget_state(nb: Any) -> dict[str, Any]:
    return ((nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state") or {}


def _widget_outputs(state: dict[str, Any], model_id: str, seen: set[str] | None = None) -> list[dict]:
    """Every output stored in ``model_id``'s widget tree (``Output`` widgets, following children)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    st = state[model_id].get("state") or {}
    outs = list(st.get("outputs") or [])
    for child in st.get("children") or []:
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            outs += _widget_outputs(state, child[len("IPY_MODEL_") :], seen)
    return outs


@dataclass
class ReaderView:
    """What :func:`check_executed` found in one executed notebook.

    Attributes:
        figures: ``image/png`` outputs in the cells (explorers not counted).
        figure_cells: ids of the cells that show at least one figure.
        explorer_figures: ``{cell id: pictures in that explorer's widget}``.
        problems: one line per defect a reader would see (empty when all is well).
    """

    figures: int = 0
    figure_cells: list[str] = field(default_factory=list)
    explorer_figures: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _read(nb: Any) -> Any:
    import nbformat

    if isinstance(nb, (str, Path)):
        path = Path(nb)
        if not path.is_file():
            raise DataError("no such notebook", path=path, fix="execute the notebook first")
        return nbformat.read(path, as_version=4)
    return nb


def check_executed(nb: Any, expected_figures: int | None = None) -> ReaderView:
    """Check an executed notebook the way a reader would look at it.

    Args:
        nb: an executed ``.ipynb`` path or notebook node.
        expected_figures: how many ``image/png`` outputs the notebook is written to
            draw (``None``: only the per-cell checks).

    Returns:
        A :class:`ReaderView`; ``problems`` is empty when every figure is there.
    """
    nb = _read(nb)
    view = ReaderView()
    state = _widget_state(nb)
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        name = f"cell {n} (id {cell.get('id', '?')})"
        tags = cell.metadata.get("tags", [])
        outputs = cell.get("outputs", [])
        k = _images(outputs)
        view.figures += k
        if k:
            view.figure_cells.append(cell.get("id", str(n)))
        if FIGURE_TAG in tags and not k:
            view.problems.append(f"{name} is tagged '{FIGURE_TAG}' but shows no image/png")
        if k and FIGURE_TAG not in tags:
            view.problems.append(f"{name} draws {k} figure(s) but is not tagged '{FIGURE_TAG}'")
        for o in outputs:
            if o.get("output_type") == "error":
                view.problems.append(f"{name} failed: {o.get('ename')}: {o.get('evalue')}")
            elif o.get("output_type") == "stream" and o.get("name") == "stderr":
                view.problems.append(f"{name} writes to stderr: {o.get('text', '')[:120]!r}")
            data = o.get("data") or {}
            if "image/png" not in data and FIGURE_REPR.search(str(data.get("text/plain", ""))):
                view.problems.append(f"{name} shows a figure as text ({data['text/plain'][:40]!r})")
        views = [(o.get("data") or {}).get(WIDGET_VIEW) for o in outputs]
        views = [v for v in views if v]
        if EXPLORER_TAG in tags:
            if not views:
                view.problems.append(f"{name} is tagged '{EXPLORER_TAG}' but shows no widget")
            for v in views:
                wouts = _widget_outputs(state, v.get("model_id", ""))
                pics = _images(wouts)
                view.explorer_figures[cell.get("id", str(n))] = pics
                if not pics:
                    view.problems.append(f"{name}: the explorer's widget holds no figure")
                for o in wouts:
                    text = str((o.get("data") or {}).get("text/plain", ""))
                    if "image/png" not in (o.get("data") or {}) and FIGURE_REPR.search(text):
                        view.problems.append(f"{name}: the explorer shows a figure as text ({text[:40]!r})")
    if expected_figures is not None and view.figures != expected_figures:
        view.problems.append(f"{view.figures} figures in the cells, the notebook is written to draw {expected_figures}")
    return view


# ------------------------------------------------------------------ pages
def notebook_title(nb: Any) -> str:
    """The text of the notebook's first level-1 heading (``"03 · Alignment and uniformity"``)."""
    for cell in _read(nb).cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+?)\s*$", cell.source, flags=re.M)
            if m:
                return m.group(1)
    return "alignrec-lite notebook"


def notebook_question(nb: Any) -> str:
    """The hook under the title: the first paragraph after the level-1 heading, as plain text."""
    for cell in _read(nb).cells:
        if cell.cell_type == "markdown" and re.search(r"^#\s", cell.source, flags=re.M):
            body = re.split(r"^#\s+.*$", cell.source, maxsplit=1, flags=re.M)[-1].strip()
            para = re.split(r"\n\s*\n", body)[0] if body else ""
            return re.sub(r"\s+", " ", re.sub(r"[*_`$]", "", para)).strip()  # no MathJax on the index
    return ""


def _widget_text(state: dict[str, Any], model_id: str, seen: set[str] | None = None) -> str:
    """A widget's final state as one line (a progress bar: its label and ``value/max``)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return ""
    seen.add(model_id)
    st = state[model_id].get("state") or {}
    parts = []
    if state[model_id].get("model_name") in ("FloatProgressModel", "IntProgressModel"):
        parts.append(f"{st.get('value', 0):g}/{st.get('max', 100):g}")
    elif isinstance(st.get("value"), str):
        parts.append(html.unescape(re.sub(r"<[^>]+>", "", st["value"])))
    for child in st.get("children") or []:
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            parts.append(_widget_text(state, child[len("IPY_MODEL_") :], seen))
    return " ".join(p.strip() for p in parts if p and p.strip())


def prepare_for_html(
    nb: Any, *, live_hint: str = "Interactive in JupyterLab: run this notebook with make lab to move its controls."
) -> Any:
    """A copy of ``nb`` whose widgets are replaced by what a page without a kernel can show.

    * an explorer with a static version (``text/html`` beside the widget view): that version;
    * another widget that holds a figure: the figure, then ``live_hint``;
    * any other widget (e.g. a progress bar): its final state as text.

    The notebook's widget state is removed, so nbconvert adds no widget-manager script.
    """
    nb = copy.deepcopy(_read(nb))
    state = _widget_state(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new_outputs = []
        for o in cell.get("outputs", []):
            data = o.get("data") or {}
            if WIDGET_VIEW not in data:
                new_outputs.append(o)
                continue
            if "text/html" in data:
                o["data"] = {"text/html": data["text/html"]}
                new_outputs.append(o)
                continue
            model_id = data[WIDGET_VIEW].get("model_id", "")
            pics = [w for w in _widget_outputs(state, model_id) if "image/png" in (w.get("data") or {})]
            if pics:
                new_outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": pics[-1]["data"]["image/png"]},
                    }
                )
                new_outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/html": f"<p><em>{html.escape(live_hint)}</em></p>"},
                    }
                )
                continue
            text = _widget_text(state, model_id) or str(data.get("text/plain", ""))
            if text:
                new_outputs.append({"output_type": "stream", "name": "stdout", "text": text + "\n"})
        cell["outputs"] = new_outputs
    nb.metadata.pop("widgets", None)
    nb.metadata["title"] = notebook_title(nb)
    return nb


def mathjax_source() -> Path:
    """MathJax 3's ``es5`` folder, shipped by the ``django-static-mathjax`` package (Apache-2.0; no Django needed)."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    folder = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5" if spec else None
    if folder is None or not (folder / "tex-svg.js").is_file():
        raise AlignRecError(
            "the site needs MathJax from the django-static-mathjax package",
            row="notebooks extra",
            fix="pip install -e '.[notebooks]'",
        )
    return folder


def copy_mathjax(site: str | Path) -> Path:
    """Copy the parts of MathJax the pages use into ``site/mathjax`` (TeX input, SVG output, TeX extensions)."""
    dest = Path(site) / MATHJAX_DIR
    if not (dest / "tex-svg.js").exists():
        src = mathjax_source()
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "tex-svg.js", dest / "tex-svg.js")
        for sub in ("input/tex/extensions", "ui", "a11y"):
            if (src / sub).is_dir():
                shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)
    return dest


def to_html(executed: str | Path | Any, out: str | Path, *, mathjax_url: str = f"{MATHJAX_DIR}/tex-svg.js") -> Path:
    """Write one executed notebook as a page that needs no network (see the module docstring).

    Args:
        executed: the executed notebook (path or node).
        out: the ``.html`` file.
        mathjax_url: where the page finds MathJax (relative to the page).

    Returns:
        ``out``.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = prepare_for_html(executed)
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"arl_page.html.j2": _TEMPLATE})],
        template_file="arl_page.html.j2",
        mathjax_url=mathjax_url,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": nb.metadata["title"]}})
    out = Path(out)
    with atomic_write(out) as fh:
        fh.write(body)
    return out


def _first_figure(nb: Any) -> bytes | None:
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            png = (o.get("data") or {}).get("image/png")
            if png:
                return base64.b64decode(png)
    return None


def _duration(nb: Any) -> float | None:
    d = (nb.metadata.get("papermill") or {}).get("duration")
    return float(d) if isinstance(d, (int, float)) else None


_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>alignrec-lite: multimodal recommendation through AlignRec</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }}
.card {{ display: flex; gap: 1.5em; border-top: 1px solid #ddd; padding: 1.2em 0; }}
.card > a {{ flex: 0 0 22em; max-width: 40%; }}
.card img {{ width: 100%; border: 1px solid #eee; }}
.card h2 {{ margin: 0 0 0.4em 0; font-size: 1.25em; }}
.meta {{ color: #666; font-size: 90%; }}
</style></head><body>
<h1>alignrec-lite: multimodal recommendation through AlignRec</h1>
<p>Eight notebooks, from embeddings and cosine similarity to training AlignRec (Liu et al., CIKM 2024) and
serving its top-K lists offline. Every page below was executed at {settings} on {dataset}; the figures are
the notebooks' own outputs. To run them yourself: <code>make lab</code>.</p>
{cards}
<p class="meta">Built {built} by <code>make site</code>.</p>
</body></html>
"""


def build_site(
    executed: Sequence[str | Path],
    out: str | Path,
    *,
    dataset: str = "the bundled toy shop",
    seconds: dict[str, float] | None = None,
    settings: str = "full settings",
) -> Path:
    """Write the course site: ``index.html``, one page per notebook, their first figures, MathJax.

    The folder is built beside ``out`` and swapped in when complete.

    Args:
        executed: executed notebooks, in course order.
        out: the site folder (``_build/site``).
        dataset: what the notebooks ran on, for the index's first paragraph.
        settings: how they ran (``"full settings"``; the tests build it from SMOKE runs).
        seconds: run time per notebook file name (default: papermill's recorded duration).

    Returns:
        ``out``.
    """
    out = Path(out)
    cards = []
    with atomic_dir(out, overwrite=True) as tmp:
        copy_mathjax(tmp)
        (tmp / "figures").mkdir()
        for path in map(Path, executed):
            nb = _read(path)
            page = path.with_suffix(".html").name
            to_html(nb, tmp / page)
            title, question = notebook_title(nb), notebook_question(nb)
            secs = (seconds or {}).get(path.name, _duration(nb))
            png = _first_figure(nb)
            img = ""
            if png is not None:
                (tmp / "figures" / f"{path.stem}.png").write_bytes(png)
                img = (
                    f'<a href="{page}"><img src="figures/{path.stem}.png" alt="a figure from {html.escape(title)}"></a>'
                )
            run = f"runs in {secs:.0f} s on this machine's CPU" if secs is not None else ""
            cards.append(
                f'<div class="card">{img}<div><h2><a href="{page}">{html.escape(title)}</a></h2>'
                f'<p>{html.escape(question)}</p><p class="meta">{run}</p></div></div>'
            )
        index = _INDEX.format(
            dataset=html.escape(dataset),
            settings=html.escape(settings),
            cards="\n".join(cards),
            built=time.strftime("%Y-%m-%d %H:%M"),
        )
        (tmp / "index.html").write_text(index, encoding="utf-8")
    return out


# ------------------------------------------------------------------ command line
def _stale(executed: Path, source: Path, parameters: dict[str, Any]) -> bool:
    """Whether ``executed`` is missing, older than ``source``, or was run with other parameters (or SMOKE)."""
    from .nbtools import notebook_parameters

    if not executed.exists() or executed.stat().st_mtime < source.stat().st_mtime:
        return True
    try:
        ran = (_read(executed).metadata.get("papermill") or {}).get("parameters") or {}
    except Exception:  # an unreadable copy is re-rendered
        return True
    own = notebook_parameters(source)
    wanted = {k: v for k, v in parameters.items() if k in own}
    return (
        bool(ran.get("SMOKE"))
        or any(ran.get(k, own.get(k)) != v for k, v in wanted.items())
        or any(k not in wanted for k in ran if k != "SMOKE")
    )


def main(argv: list[str] | None = None) -> int:
    """``make site``: build ``_build/site`` (rendering the notebooks first where needed)."""
    from .nbtools import list_notebooks, render_notebooks

    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(
        prog="python -m alignrec_lite.publish",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--build-dir", default=str(repo / "_build"), help="holds notebooks/ and site/")
    ap.add_argument("--dataset", default="toy", choices=["toy", "movielens"])
    ap.add_argument("--no-render", action="store_true", help="use the executed notebooks as they are")
    args = ap.parse_args(argv)
    build = Path(args.build_dir)
    executed_dir = build / "notebooks"
    sources = list_notebooks()
    params = {} if args.dataset == "toy" else {"DATASET": args.dataset}
    try:
        stale = [s.name for s in sources if _stale(executed_dir / s.name, s, params)]
        if stale and not args.no_render:
            print(f"rendering {len(stale)} notebook(s) at full settings first: {', '.join(stale)}", flush=True)
            render_notebooks([s[:2] for s in stale], executed_dir, parameters=params, html=False)
        missing = [s.name for s in sources if not (executed_dir / s.name).exists()]
        if missing:
            raise DataError(
                f"{len(missing)} notebook(s) not executed",
                path=executed_dir,
                fix="run make render (or drop --no-render)",
            )
        site = build_site(
            [executed_dir / s.name for s in sources],
            build / "site",
            dataset="MovieLens with posters" if args.dataset == "movielens" else "the bundled toy shop",
        )
    except AlignRecError as exc:
        print(f"alignrec-lite site: error: {exc}", file=sys.stderr)
        return 2
    print(f"site written to {site}\n  open {site / 'index.html'} in a browser (no server or network needed)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
