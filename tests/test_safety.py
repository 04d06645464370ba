"""Untrusted files cannot run code (issue 8).

* A scan of the package's source (its syntax tree, so comments and docstrings do not
  count) finds no ``eval``/``exec``, no ``pickle.load``, no ``np.load(allow_pickle=True)``,
  no ``torch.load`` without ``weights_only=True``, no ``shell=True``, no ``os.system``.
* A ``.npy`` feature file and a checkpoint that carry a pickle payload (which *would*
  create a folder when unpickled — checked) are refused with the kit's error, and the
  payload never runs, through the library and through the command line.
* An archive member that climbs out of the target folder is refused before anything
  is written.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import alignrec_lite
from alignrec_lite.cli import main
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.mmrec_files import read_feature
from alignrec_lite.data.toy import toy_path
from alignrec_lite.errors import CheckpointError, DataError, DownloadError
from alignrec_lite.files import load_checkpoint_file

PACKAGE = Path(alignrec_lite.__file__).resolve().parent
SMOKE = toy_path("smoke")


# ---------------------------------------------------------------------- the source scan
def _dotted(node: ast.AST) -> str:
    """``np.load`` for ``Attribute(Name('np'), 'load')``; '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


UNSAFE_CALLS = {
    "eval": "eval() runs arbitrary code",
    "exec": "exec() runs arbitrary code",
    "os.system": "os.system() runs a shell string",
    "os.popen": "os.popen() runs a shell string",
    "pickle.load": "pickle.load runs code from the file",
    "pickle.loads": "pickle.loads runs code from the data",
    "pd.read_pickle": "read_pickle runs code from the file",
    "pandas.read_pickle": "read_pickle runs code from the file",
    "joblib.load": "joblib.load unpickles",
    "dill.load": "dill.load unpickles",
    "yaml.load": "yaml.load can build arbitrary objects (use yaml.safe_load)",
    "marshal.loads": "marshal.loads loads code objects",
}


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "cloudpickle"}


def scan_source(source: str, filename: str = "<src>") -> list[str]:
    """Every unsafe construct in ``source`` as ``file:line: reason``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in mods:
                if mod.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{filename}:{node.lineno}: imports {mod} (deserialises code)")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        if name in UNSAFE_CALLS:
            found.append(f"{where}: {UNSAFE_CALLS[name]}")
        if name == "torch.load":
            if not _is_const(_kw(node, "weights_only"), True):
                found.append(f"{where}: torch.load without weights_only=True")
        if name in ("np.load", "numpy.load"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not _is_const(ap, False):
                found.append(f"{where}: np.load with allow_pickle other than False")
        shell = _kw(node, "shell")
        if shell is not None and not _is_const(shell, False):
            found.append(f"{where}: shell=True builds a shell command")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "extractall":
            found.append(f"{where}: extractall without per-member path checks (use data.archives.extract_zip)")
    return found


def test_scanner_finds_each_unsafe_construct() -> None:
    bad = """
import pickle, os, subprocess, numpy as np, torch
eval("1 + 1")
pickle.loads(b"")
os.system("ls " + user_input)
subprocess.run(cmd, shell=True)
np.load(path, allow_pickle=True)
torch.load(path)
torch.load(path, weights_only=False)
tarfile.open(p).extractall(dest)
"""
    found = scan_source(bad)
    assert len(found) == 9, found
    good = """
model.eval()
np.load(path, allow_pickle=False)
np.load(path)
torch.load(path, map_location="cpu", weights_only=True)
subprocess.run([sys.executable, "-m", "x"], check=True)
# eval("this is a comment")
"\""docstring: never pickle.load or allow_pickle=True"\""
"""
    assert scan_source(good) == []


def test_package_source_has_no_unsafe_constructs() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    found = [f for p in files for f in scan_source(p.read_text(encoding="utf-8"), str(p.relative_to(PACKAGE.parent)))]
    assert found == [], "\n".join(found)


# ---------------------------------------------------------------------- malicious payloads
class MakesFolder:
    """Unpickling this creates ``path`` — harmless proof that the payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _npy_with_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    arr = np.empty((120, 1), dtype=object)
    arr[:] = 0.0
    arr[0, 0] = MakesFolder(marker)
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: the same bytes *do* run code when loaded unsafely, so the refusals below mean something."""
    marker = tmp_path / "pwned"
    np.load(io.BytesIO(_npy_with_payload(marker)), allow_pickle=True)
    assert marker.is_dir()
    shutil.rmtree(marker)
    buf = io.BytesIO()
    torch.save({"model": MakesFolder(marker)}, buf)
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)  # deliberate, test only
    assert marker.is_dir()


def test_pickled_npy_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "shop"
    shutil.copytree(SMOKE, folder)
    (folder / "text_feat.npy").write_bytes(_npy_with_payload(marker))
    with pytest.raises(DataError, match=r"text_feat\.npy.*pickle"):
        read_feature(folder / "text_feat.npy", 120)
    with pytest.raises(DataError, match="pickle"):
        load_mmrec(folder)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "check", str(folder), "--no-images"]) == 2
    assert "text_feat.npy" in err.getvalue() and "pickle" in err.getvalue()
    assert not marker.exists()


def test_raw_pickle_renamed_npy_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "image_feat.npy"
    path.write_bytes(pickle.dumps(MakesFolder(marker)))
    with pytest.raises(DataError, match="pickle"):
        read_feature(path, 1)
    assert not marker.exists()


@pytest.fixture()
def finished_run(tmp_path: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                ["train", str(SMOKE), "--model", "bpr", "--set", "epochs=1", "--out", str(tmp_path / "run"), "--quiet"]
            )
            == 0
        )
    return tmp_path / "run"


def test_malicious_checkpoints_are_refused_without_running(tmp_path: Path, finished_run: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": MakesFolder(marker), "config": {}}, evil)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_checkpoint_file(evil)
    shutil.copy(evil, finished_run / "last.pt")
    shutil.copy(evil, finished_run / "best.pt")
    for argv in (
        ["train", str(SMOKE), "--model", "bpr", "--set", "epochs=2", "--out", str(finished_run), "--resume", "--quiet"],
        ["recommend", str(finished_run), "--out", str(tmp_path / "top.csv"), "--quiet"],
    ):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 2
        assert "cannot load the checkpoint" in err.getvalue()
    assert not marker.exists()
    assert not (tmp_path / "top.csv").exists()


def test_archive_member_climbing_out_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/ratings.csv", "userId,movieId\n")
        zf.writestr("../../outside.txt", "gotcha")
    from alignrec_lite.data.archives import extract_zip

    with pytest.raises(DownloadError, match=r"outside\.txt"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path.parent / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
