"""Run records (RunRecord): one JSON form, read back losslessly; what load_run validates."""

from __future__ import annotations

import dataclasses
import json

import pytest

from alignrec_lite.data.toy import load_toy
from alignrec_lite.errors import CheckpointError
from alignrec_lite.runs import RunRecord, load_run
from alignrec_lite.train import train


def test_run_record_has_one_json_form(tmp_path):
    ds = load_toy("smoke")
    net, rec = train(ds, "bpr", {"epochs": 2, "seed": 3}, out=tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(rec))  # train() returns the JSON form it writes
    names = [f.name for f in dataclasses.fields(RunRecord) if f.name != "extra"]
    assert list(rec) == names  # the keys, in the declared order
    typed = RunRecord.from_json(on_disk)
    assert typed.model == "bpr" and typed.epochs_run == 2 and typed.preset == "toy"
    assert typed.to_json() == on_disk
    # unknown keys survive the round trip; missing ones (older records) take the defaults
    old = {k: v for k, v in on_disk.items() if k not in ("preset", "data_fingerprint")}
    back = RunRecord.from_json({**old, "note": "kept"})
    assert back.preset is None and back.data_fingerprint is None and back.to_json()["note"] == "kept"
    with pytest.raises(TypeError):
        RunRecord.from_json({**on_disk, "config": "lr=1"})
    with pytest.raises(KeyError):
        RunRecord.from_json({"config": {}})
    loaded, record, _ = load_run(tmp_path / "run", ds)
    assert record == on_disk and loaded.n_parameters() == net.n_parameters()


def test_load_run_refuses_a_record_without_a_model_name(tmp_path):
    ds = load_toy("smoke")
    train(ds, "bpr", {"epochs": 1}, out=tmp_path / "run", progress=False)
    path = tmp_path / "run" / "metrics.json"
    rec = json.loads(path.read_text())
    path.write_text(json.dumps({**rec, "model": 7}))
    with pytest.raises(CheckpointError, match="metrics.json is damaged"):
        load_run(tmp_path / "run", ds)
