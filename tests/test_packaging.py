"""The install files agree: environment.yml delegates to pyproject.toml; every dependency is bounded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_environment_yml_delegates_to_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-e .[notebooks]"]]
    extras = _pyproject()["project"]["optional-dependencies"]
    assert "notebooks" in extras
    # conda pins only python and pip: no package is listed twice with possibly different versions
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    assert sorted(re.split(r"[=<>]", d)[0] for d in conda_pkgs) == ["pip", "python"]
    py = [d for d in conda_pkgs if d.startswith("python")][0]
    major_minor = py.split("=")[1]
    req = _pyproject()["project"]["requires-python"]
    low = re.search(r">=(\d+\.\d+)", req).group(1)
    high = re.search(r"<(\d+\.\d+)", req).group(1)
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(major_minor) < as_tuple(high)


def test_every_dependency_has_lower_and_upper_bounds():
    proj = _pyproject()["project"]
    reqs = list(proj["dependencies"])
    for extra in proj["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("alignrec-lite")]
    for r in reqs:
        assert ">=" in r and ("<" in r), f"unbounded requirement: {r}"


def test_design_card_packages_are_declared():
    proj = _pyproject()["project"]
    text = " ".join(proj["dependencies"] + sum(proj["optional-dependencies"].values(), []))
    for pkg in (
        "jupyterlab",
        "torch",
        "open_clip_torch",
        "matplotlib",
        "umap-learn",
        "ipywidgets",
        "pandas",
        "papermill",
        "tqdm",
        "scipy",
        "pytest",
    ):
        assert pkg in text, pkg


def test_torch_not_pinned_to_broken_release():
    deps = " ".join(_pyproject()["project"]["dependencies"])
    assert "torch==2.13.0" not in deps


def test_console_script_and_module_entry_point_work():
    out = subprocess.run([sys.executable, "-m", "alignrec_lite", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "alignrec-lite" in out.stdout
    exe = Path(sys.executable).with_name("alignrec-lite")
    out2 = subprocess.run([str(exe), "train", "--help"], capture_output=True, text=True)
    assert out2.returncode == 0 and "example:" in out2.stdout
