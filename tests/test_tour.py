"""The tour (alignrec_lite.tour): the main job end to end, through the catalogue, failures not hidden.

The ``tour`` command's parser and the module entry point are tested in tests/test_cli.py.
"""

from __future__ import annotations

import json

import pytest

import alignrec_lite.data.catalog as catalog
import alignrec_lite.train as train_mod
from alignrec_lite import tour
from alignrec_lite.errors import ConfigError


def test_tour_trains_evaluates_and_exports_on_the_smoke_shop(tmp_path, capsys):
    report = tour.run_tour("toy-smoke", tmp_path, notebooks=False, epochs=2)
    assert set(report) >= {"dataset", "stats", "lightgcn", "alignrec", "seconds"}
    for name in ("lightgcn", "alignrec"):
        assert 0 <= report[name]["test"]["recall@20"] <= 1
        assert (tmp_path / f"top20_{name}.csv").is_file() and (tmp_path / "runs" / name / "metrics.json").is_file()
    assert json.loads((tmp_path / "tour.json").read_text())["dataset"] == "toy-smoke"
    assert "headline numbers" in capsys.readouterr().out


def test_tour_opens_through_the_catalogue_and_does_not_hide_training_failures(monkeypatch, tmp_path):
    opened = []
    real_open = catalog.open_dataset
    monkeypatch.setattr(catalog, "open_dataset", lambda name, **kw: opened.append(name) or real_open(name, **kw))

    def failing(ds, name, *args, **kwargs):
        raise ConfigError(f"{name} broke", row="model", fix="none")

    monkeypatch.setattr(train_mod, "train", failing)
    with pytest.raises(ConfigError, match="lightgcn broke"):  # no "skipped lightgcn": the failure is the answer
        tour.run_tour("toy-smoke", tmp_path, notebooks=False, epochs=1)
    assert opened == ["toy-smoke"]
    assert not (tmp_path / "tour.json").exists()
