"""Shared fixtures: real-data location, the bundled toy data, offline and CPU-only settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# MPLBACKEND is deliberately not set here: notebook kernels started by the tests inherit this
# environment and would draw no figure (plot unit tests call matplotlib.use("Agg") themselves).
os.environ.pop("MPLBACKEND", None)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the real datasets (``$ALIGNREC_DATA``).

    Outside CI a missing root skips the test with the reason; inside CI
    (``CI=true``) it is a failure, so real-data tests can never silently vanish.
    """
    root = os.environ.get("ALIGNREC_DATA")
    if not root or not Path(root).is_dir():
        msg = (
            "real data not found: set ALIGNREC_DATA to the folder holding ml-latest-small/, "
            "ml-posters/ and amazon-baby-mmrec/ (e.g. ALIGNREC_DATA=../shared/data)"
        )
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(root)


def require(path: Path) -> Path:
    """Skip (or fail in CI) when one real dataset folder is missing."""
    if not path.exists():
        msg = f"real dataset missing: {path}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def baby_dir(real_data: Path) -> Path:
    """MMRec's Amazon Baby split (IDs only)."""
    return require(real_data / "amazon-baby-mmrec")


@pytest.fixture(scope="session")
def movielens_dirs(real_data: Path) -> tuple[Path, Path]:
    """``(ml-latest-small folder, posters folder)``."""
    return require(real_data / "ml-latest-small"), require(real_data / "ml-posters" / "posters")


@pytest.fixture(scope="session")
def movielens_built(movielens_dirs, tmp_path_factory) -> Path:
    """MovieLens with posters built once per test session (MMRec folder)."""
    from alignrec_lite.data.movielens import build_movielens

    ratings, posters = movielens_dirs
    out = tmp_path_factory.mktemp("ml") / "movielens"
    return build_movielens(out, ratings_dir=ratings, posters_dir=posters, progress=False)


@pytest.fixture(scope="module")
def smoke():
    """The bundled toy shop's SMOKE copy, loaded once per test module."""
    from alignrec_lite.data.toy import load_toy

    return load_toy("smoke")


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """Every numbered notebook executed at most once per session in SMOKE (see tests/notebook_runs.py)."""
    from notebook_runs import SmokeRuns

    return SmokeRuns(tmp_path_factory.mktemp("smoke-notebooks"))
