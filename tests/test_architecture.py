"""The package's shape: no module reaches another module's private names, and no library file grows too long.

Private names are those with one leading underscore (``_cache``, ``_train``; dunders such as
``__version__`` are public). A module may use its own; everything another module needs is
public (no underscore) or reached through a declared interface (``model.invalidate_cache()``,
``model.device``, ...). Checked by parsing every file of ``alignrec_lite/`` with :mod:`ast`:

* ``from .x import _y`` / ``from alignrec_lite.x import _y`` (any import of a private name);
* ``obj._attr`` where ``obj`` is not ``self`` or ``cls`` (including ``getattr(obj, "_attr")``
  and its ``setattr`` / ``hasattr`` / ``delattr`` siblings), since that object belongs to
  another class or module;
* ``obj.device_``: :class:`~alignrec_lite.models.Recommender` keeps its device there, private by
  declaration (the public name is ``model.device``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "alignrec_lite"
MAX_LINES = 550

#: attribute names that are private by declaration although they have no leading underscore
DECLARED_PRIVATE = {"device_"}

#: (file relative to the package, or "*" for any file; attribute) -> why the access is allowed
ALLOWED_ATTRIBUTES = {
    # IPython's rich-display protocol: these names start with an underscore by IPython's design and are
    # the documented way for an object to render itself (``_repr_mimebundle_``, ``_repr_html_``, ...)
    ("*", "_repr_mimebundle_"): "IPython display protocol",
    ("*", "_repr_html_"): "IPython display protocol",
    ("*", "_repr_png_"): "IPython display protocol",
    ("*", "_ipython_display_"): "IPython display protocol",
    # torch documents ``Tensor._base`` (its "Tensor Views" notes) as the way to tell a view from a tensor
    # that owns its memory, and has no public equivalent; evaluate.iter_topk copies a view before writing
    # -inf into it, so that a scorer's own tensor is never changed
    ("evaluate.py", "_base"): "torch view test",
    # IPython's custom-exception protocol (InteractiveShell.set_custom_exc) does not display what a handler
    # returns; ``_showtraceback`` is the display hook every front end overrides (ipykernel turns it into the
    # cell's "error" output) and IPython has no public equivalent that skips the full traceback
    ("nbtools.py", "_showtraceback"): "IPython custom-exception display",
}


def _is_private(name: str) -> bool:
    return (name.startswith("_") and not (name.startswith("__") and name.endswith("__"))) or name in DECLARED_PRIVATE


def _own(node: ast.expr) -> bool:
    """``self`` or ``cls``: the object's own class is reaching its own private name."""
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _allowed(rel: str, attr: str) -> bool:
    return ("*", attr) in ALLOWED_ATTRIBUTES or (rel, attr) in ALLOWED_ATTRIBUTES


def private_reaches(path: Path, rel: str | None = None) -> list[str]:
    """Every place in one file that uses another module's or object's private name.

    ``rel`` is the file's path inside the package (for the allowances; default: from ``path``).
    """
    rel = rel or path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{rel}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_is_private(part) for part in alias.name.split(".")):
                    found.append(f"{rel}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute):
            if _is_private(node.attr) and not _own(node.value) and not _allowed(rel, node.attr):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node.value)}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            attr = node.args[1].value
            if _is_private(attr) and not _own(node.args[0]) and not _allowed(rel, attr):
                found.append(f"{rel}:{node.lineno}: {node.func.id}({ast.unparse(node.args[0])}, {attr!r})")
    return found


def library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scanner_finds_what_it_should(tmp_path):
    """The rules themselves, on a made-up module (so a green run means something)."""
    probe = tmp_path / "probe.py"
    source = """
from .models.base import _hidden
from alignrec_lite.train import _train as run
import alignrec_lite._secret
class A:
    def f(self, model, other):
        self._mine = other.public              # fine: own private, other's public
        model._cache = None                     # reach
        x = model.device_                       # reach (declared private)
        getattr(model, "_cache", None)          # reach
        super()._g()                            # reach
        return self.__class__, model.__dict__   # dunders are public
"""
    probe.write_text(source)
    found = private_reaches(probe, "probe.py")
    text = "\n".join(found)
    for needle in (
        "import _hidden",
        "import _train",
        "import alignrec_lite._secret",
        "model._cache",
        "model.device_",
        "getattr(model, '_cache')",
        "super()._g",
    ):
        assert needle in text, (needle, text)
    assert len(found) == 7, text


def test_no_module_reaches_another_modules_private_names():
    found = [place for path in library_files() for place in private_reaches(path)]
    assert not found, "private names used across modules (make them public or use the interface):\n" + "\n".join(found)


@pytest.mark.parametrize("path", library_files(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_library_file_is_over_the_line_limit(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {n} lines (limit {MAX_LINES}): split it by topic"


# ---------------------------------------------------------------------- one-way arrows
#: the layers of docs/ARCHITECTURE.md: a module-level import may only go to a room of a lower layer
#: (or stay in its own room); imports inside functions are the documented upward calls
LAYERS = {
    "errors": 0,
    "utils": 0,
    "checks": 1,
    "losses": 1,
    "graphs": 1,
    "config": 1,
    "files": 2,
    "data": 3,
    "evaluate": 4,
    "models": 4,
    "encoders": 4,
    "geometry": 4,
    "teach": 4,
    "ica": 5,
    "multiway": 5,
    "scorers": 5,
    "runs": 5,
    "serve": 5,
    "longtail": 5,
    "train": 6,
    "coldstart": 6,
    "feature_eval": 6,
    "tuning": 7,
    "experiments": 7,
    "plots": 7,
    "widgets": 7,
    "exercises": 8,
    "nbtools": 8,
    "publish": 8,
    "lab": 8,
    "tour": 8,
    "cli": 8,
}


def _room(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def module_level_imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, room)`` of every package import at the top level of a file (not inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    here = path.relative_to(PACKAGE).parent.parts
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = here[: len(here) - (node.level - 1)]
            parts = list(base) + (node.module.split(".") if node.module else [])
            targets = [parts[0]] if parts else [alias.name for alias in node.names]
            out += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alignrec_lite."):
            out.append((node.lineno, node.module.split(".")[1]))
    return out


def test_every_room_has_a_layer():
    rooms = {_room(p) for p in library_files()} - {"__init__", "__main__"}
    assert rooms <= set(LAYERS), f"add these rooms to LAYERS and docs/ARCHITECTURE.md: {sorted(rooms - set(LAYERS))}"


def test_module_level_imports_point_down():
    wrong = []
    for path in library_files():
        room = _room(path)
        if room in ("__init__", "__main__"):
            continue
        for line, target in module_level_imports(path):
            if target != room and target in LAYERS and LAYERS[target] >= LAYERS[room]:
                wrong.append(
                    f"{path.relative_to(PACKAGE)}:{line}: {room} (layer {LAYERS[room]}) imports "
                    f"{target} (layer {LAYERS[target]})"
                )
    assert not wrong, "imports against the arrows of docs/ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_the_layer_check_sees_an_upward_import():
    source = (
        "from ..models import MODELS\nfrom .mmrec import RecDataset\nfrom alignrec_lite.cli import main\n\n"
        "def f():\n    from ..train import train\n"
    )
    assert module_level_imports(PACKAGE / "data" / "probe.py", source) == [(1, "models"), (2, "data"), (3, "cli")]
