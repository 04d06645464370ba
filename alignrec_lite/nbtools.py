"""Notebook machinery: recording results, running and rendering the notebooks.

* :func:`record` (inside a notebook) stores a named value in the notebook's
  outputs, as a ``display_data`` output with the MIME type
  :data:`RECORD_MIME` (plus a readable ``text/plain`` line). No scrapbook: its
  pandas 2 breakage made the recommenders project drop it (PRs #1937, #2031).
* :func:`read_records` reads them back from an executed notebook (tests, ``make tour``).
* :func:`run_notebook` executes one notebook with papermill, parameters
  injected after its ``parameters``-tagged cell, and writes the executed copy
  atomically; :func:`render_notebooks` runs several, checks each for what a reader
  should see and builds the site (:mod:`alignrec_lite.publish`).
* :func:`short_errors` (each notebook's setup cell calls it) shows the kit's own
  input errors (:class:`~alignrec_lite.errors.AlignRecError`:
  file, row, fix) as one red line instead of a page of traceback, like the
  command line does. Any other exception keeps its full traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AlignRecError, ConfigError, DataError
from .files import atomic_write

RECORD_MIME = "application/vnd.alignrec-lite.record+json"


def _show_short_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython custom-exception handler: the kit's input errors in one line (the cell still fails)."""
    line = f"\x1b[31m{etype.__name__}: {value}\x1b[0m"
    hint = "(the kit's own input check; run alignrec_lite.nbtools.short_errors(False) to see the full traceback)"
    stb = [line, hint]
    # IPython calls a custom handler instead of showing anything itself; _showtraceback is what
    # every front end implements (ipykernel sends it as the cell's "error" output, with ename/evalue)
    shell._showtraceback(etype, value, stb)
    return stb


def short_errors(enable: bool = True) -> bool:
    """Show :class:`AlignRecError` in a notebook as one line with its fix (``enable=False``: full tracebacks).

    The cell still counts as failed (papermill and "Run all" stop there); only the
    display changes. Does nothing outside IPython. Returns whether a shell was found.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebooks extra
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((AlignRecError,) if enable else (), _show_short_error if enable else None)
    return True


def _jsonable(value: Any) -> Any:
    """Convert numpy / torch scalars and arrays to plain JSON values."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalar or array
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(
        f"record() cannot store a value of type {type(value).__name__}",
        row="value",
        fix="record numbers, strings, lists or dicts of them",
    )


def record(name: str, value: Any) -> None:
    """Store ``value`` under ``name`` in the running notebook's outputs.

    The value is shown as one line (``name = value``) and kept as JSON in a
    ``display_data`` output of MIME type :data:`RECORD_MIME`, which
    :func:`read_records` finds again. Outside IPython it only prints.

    Args:
        name: key, e.g. ``"recall@20"``.
        value: a number, string, bool, ``None``, or a list / dict of them
            (numpy and torch scalars are converted).
    """
    data = _jsonable(value)
    text = f"{name} = {data!r}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a notebook dependency
        print(text)
        return
    if get_ipython() is None:
        print(text)
        return
    display({RECORD_MIME: {"name": name, "value": data}, "text/plain": text}, raw=True)


def read_records(nb: str | Path | Any) -> dict[str, Any]:
    """Every value :func:`record` stored in an executed notebook (later wins).

    Args:
        nb: path of an executed ``.ipynb`` or an ``nbformat`` notebook node.

    Returns:
        ``{name: value}``.

    Raises:
        DataError: the file does not exist or is not a notebook.
    """
    import nbformat

    if isinstance(nb, (str, Path)):
        path = Path(nb)
        if not path.is_file():
            raise DataError("no such notebook", path=path, fix="execute the notebook first (run_notebook)")
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # nbformat raises several unrelated types
            raise DataError(
                f"not a readable notebook ({exc})", path=path, fix="pass an .ipynb file written by papermill or Jupyter"
            ) from None
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}) if output.get("output_type") in ("display_data", "execute_result") else {}
            if RECORD_MIME in data:
                payload = data[RECORD_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                out[payload["name"]] = payload["value"]
    return out


# ------------------------------------------------------------------ execution
def notebooks_dir() -> Path:
    """The ``notebooks/`` folder of the source checkout."""
    import alignrec_lite

    return Path(alignrec_lite.__file__).resolve().parents[1] / "notebooks"


def list_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of ``folder``, in order (no template)."""
    folder = Path(folder) if folder is not None else notebooks_dir()
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def find_notebooks(names: Sequence[str] | None = None, folder: str | Path | None = None) -> list[Path]:
    """Resolve notebook names, file names or two-digit prefixes (``"03"``) to paths.

    Args:
        names: e.g. ``["01", "02_contrastive_learning"]``; ``None`` = every notebook.
        folder: where the notebooks live (default :func:`notebooks_dir`).

    Raises:
        ConfigError: a name matches no notebook, or several.
    """
    available = list_notebooks(folder)
    if names is None:
        return available
    out = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in available if p.stem == stem or p.stem.startswith(stem + "_") or p.stem[:2] == stem]
        if len(hits) != 1:
            raise ConfigError(
                f"notebook {name!r} matches {len(hits)} notebooks",
                row="names",
                fix="use one of " + ", ".join(p.stem for p in available),
            )
        out.append(hits[0])
    return out


@dataclass
class NotebookRun:
    """The result of :func:`run_notebook`.

    Attributes:
        source: the notebook that was run.
        executed: the executed copy (``None`` if not written).
        html: the HTML rendering, if made.
        seconds: wall-clock time of the execution.
        records: the values it recorded.
        parameters: the parameters injected.
    """

    source: Path
    executed: Path | None
    seconds: float
    records: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    html: Path | None = None


def run_notebook(
    src: str | Path,
    out_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = 900,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
    log_output: bool = False,
) -> NotebookRun:
    """Execute one notebook with papermill and return its records.

    Args:
        src: the notebook.
        out_dir: folder for the executed copy (same file name); ``None`` keeps
            it in memory only. The copy is written atomically.
        parameters: values injected after the ``parameters`` cell (e.g.
            ``{"SMOKE": True}``).
        timeout: seconds allowed per cell (``None``: no limit).
        cwd: working directory of the kernel (default: the notebook's folder).
        kernel_name: Jupyter kernel (the committed notebooks use ``python3``).
        log_output: stream the cells' output to the log.

    Returns:
        A :class:`NotebookRun`.

    Raises:
        DataError: ``src`` does not exist.
        papermill.PapermillExecutionError: a cell failed (the message names it).
    """
    import nbformat
    import papermill as pm

    src = Path(src)
    if not src.is_file():
        raise DataError("no such notebook", path=src, fix="check the name (see notebooks/)")
    params = dict(parameters or {})
    t0 = time.perf_counter()
    nb = pm.execute_notebook(
        str(src),
        None,
        parameters=params,
        kernel_name=kernel_name,
        cwd=str(cwd if cwd is not None else src.parent),
        progress_bar=False,
        execution_timeout=timeout,
        log_output=log_output,
        request_save_on_cell_execute=False,
        start_timeout=180,  # papermill's 60 s for a kernel to start is tight on a busy 2-core machine
    )
    seconds = time.perf_counter() - t0
    executed = None
    if out_dir is not None:
        executed = Path(out_dir) / src.name
        with atomic_write(executed) as fh:
            nbformat.write(nb, fh)
    return NotebookRun(src, executed, seconds, read_records(nb), params)


def to_html(executed: str | Path, out: str | Path | None = None) -> Path:
    """Convert an executed notebook to a page that needs no network (see :func:`alignrec_lite.publish.to_html`).

    MathJax is copied next to the page (``mathjax/``) so its formulas render offline.

    Returns:
        The HTML path (default: next to the notebook, ``.html``).
    """
    from .publish import copy_mathjax
    from .publish import to_html as _page

    executed = Path(executed)
    out = Path(out) if out is not None else executed.with_suffix(".html")
    copy_mathjax(out.parent)
    return _page(executed, out)


@contextlib.contextmanager
def kernel_env(**variables: str) -> Iterator[None]:
    """Set environment variables for the notebook kernels this process starts, then restore them.

    ``MPLBACKEND`` is always removed meanwhile: ipykernel picks its inline backend (figures as
    ``image/png``) only when it is unset (see :mod:`alignrec_lite.lab`).
    """
    import os

    old = {k: os.environ.get(k) for k in [*variables, "MPLBACKEND"]}
    os.environ.pop("MPLBACKEND", None)
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def render_notebooks(
    names: Sequence[str] | None = None,
    out_dir: str | Path = "_build",
    parameters: Mapping[str, Any] | None = None,
    *,
    html: bool = True,
    timeout: float | None = 1800,
    folder: str | Path | None = None,
    verbose: bool = True,
    site: str | Path | None = None,
    static_explorers: bool = True,
) -> dict[str, dict[str, Any]]:
    """Execute notebooks at the given settings into ``out_dir``, check what a reader sees, build the site.

    This is what ``make tour`` / ``make render`` / ``make site`` call. Notebooks run
    one after the other; a failure stops the rendering with papermill's error. Each
    executed copy is checked with :func:`alignrec_lite.publish.check_executed` (every
    figure there, no error, nothing on stderr); a defect stops the rendering with
    the list.

    Args:
        names: notebook names or prefixes (``None``: all numbered notebooks).
        out_dir: output folder (git-ignored ``_build/`` by default).
        parameters: injected into every notebook (only the keys a notebook's
            ``parameters`` cell defines are injected into it, so
            ``{"DATASET": "movielens"}`` leaves notebooks without that
            parameter alone).
        html: also build the site (index and one page per notebook) into ``site``.
        timeout: seconds allowed per cell.
        folder: where the notebooks live.
        verbose: print one line per notebook with its time and records.
        site: the site folder (default: ``out_dir/../site``).
        static_explorers: explorers also draw their kernel-less version for the
            pages (:mod:`alignrec_lite.widgets.static`).

    Returns:
        ``{notebook file name: {"seconds", "records", "parameters", "executed", "html"}}``
        in execution order (JSON-serialisable, for ``_build/tour.json``).
    """
    from .publish import build_site, check_executed
    from .widgets.static import STATIC_ENV

    out_dir = Path(out_dir)
    runs: dict[str, dict[str, Any]] = {}
    executed = []
    with kernel_env(**({STATIC_ENV: "1"} if static_explorers else {})):
        for src in find_notebooks(names, folder):
            own = notebook_parameters(src)
            params = {k: v for k, v in (parameters or {}).items() if k in own}
            run = run_notebook(src, out_dir, params, timeout=timeout)
            problems = check_executed(run.executed).problems
            if problems:
                raise DataError(
                    "the executed notebook is missing what a reader should see:\n  " + "\n  ".join(problems),
                    path=run.executed,
                    fix="fix the cells named (figure cells are tagged 'figure')",
                )
            executed.append(run.executed)
            runs[src.name] = {
                "seconds": round(run.seconds, 1),
                "records": run.records,
                "parameters": params,
                "executed": str(run.executed),
            }
            if verbose:
                shown = ", ".join(f"{k}={_short(v)}" for k, v in run.records.items())
                print(f"{src.name:45s} {run.seconds:7.1f} s  {shown}")
    if html and executed:
        site = Path(site) if site is not None else out_dir.parent / "site"
        dataset = (
            "MovieLens with posters" if (parameters or {}).get("DATASET") == "movielens" else "the bundled toy shop"
        )
        build_site(executed, site, dataset=dataset, seconds={n: r["seconds"] for n, r in runs.items()})
        for name in runs:
            runs[name]["html"] = str(site / Path(name).with_suffix(".html").name)
        if verbose:
            print(f"site: {site / 'index.html'}")
    return runs


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def notebook_parameters(src: str | Path) -> dict[str, Any]:
    """The names and literal default values of a notebook's ``parameters`` cell.

    Raises:
        DataError: the notebook has no ``parameters``-tagged cell.
    """
    import ast

    import nbformat

    nb = nbformat.read(Path(src), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            out = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    out[node.targets[0].id] = ast.literal_eval(node.value)
            return out
    raise DataError(
        "the notebook has no cell tagged 'parameters'",
        path=src,
        fix="tag the parameters cell (View > Cell tags) as in notebooks/_template.ipynb",
    )
