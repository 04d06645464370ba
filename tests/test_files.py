"""Atomic outputs and checked readers (alignrec_lite.files)."""

from __future__ import annotations

import pytest


def test_read_json_checks_the_file_and_names_it(tmp_path):
    """files.read_json: the one checked JSON reader (dataset cards, the dataset registry)."""
    from alignrec_lite.errors import DataError
    from alignrec_lite.files import read_json, write_json

    write_json(tmp_path / "ok.json", {"a": [1, 2]})
    assert read_json(tmp_path / "ok.json", "card", fix="x") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"the registry is not valid JSON \(") as info:
        read_json(tmp_path / "bad.json", "registry", fix="delete it", invalid="the registry is not valid JSON")
    assert "delete it" in str(info.value)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(DataError, match="registry"):
        read_json(tmp_path / "dir.json", "registry", fix="x")


def test_atomic_outputs_get_normal_permissions(tmp_path):
    """Renamed-into-place files and folders get open()/mkdir() modes, not mkstemp's 0600."""
    import os
    import stat

    from alignrec_lite.files import atomic_dir, atomic_path, atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt") as fh:
            fh.write("x")
        with atomic_path(tmp_path / "b.npy") as p:
            p.write_bytes(b"y")
        with atomic_dir(tmp_path / "run") as d:
            (d / "f").write_text("z")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.npy").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
    assert (tmp_path / "a.txt").read_text() == "x"
