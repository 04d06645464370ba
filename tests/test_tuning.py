"""The hyper-parameter search: planning, selection on VALID (never test), records, resume, CLI."""

from __future__ import annotations

import json

import pytest

import alignrec_lite.train as train_mod
from alignrec_lite.errors import ConfigError
from alignrec_lite.tuning import parse_grid_args, plan_trials, search, select_best


def test_plan_grid_order_budget_and_random_draw():
    space = {"learning_rate": [0.1, 0.2], "n_layers": [1, 2, 3]}
    grid = plan_trials(space)
    assert len(grid) == 6 and grid[0] == {"learning_rate": 0.1, "n_layers": 1}
    assert grid[1] == {"learning_rate": 0.1, "n_layers": 2}  # last key varies fastest
    assert plan_trials(space, budget=2) == grid[:2]
    r1 = plan_trials(space, budget=4, mode="random", seed=3)
    assert r1 == plan_trials(space, budget=4, mode="random", seed=3)  # seeded
    assert len({json.dumps(p, sort_keys=True) for p in r1}) == 4  # without replacement
    assert all(p in grid for p in r1)
    with pytest.raises(ConfigError):
        plan_trials(space, mode="bayes")
    with pytest.raises(ConfigError):
        plan_trials(space, budget=0)
    with pytest.raises(ConfigError):
        plan_trials({"learning_rate": []})


def test_parse_grid_args():
    assert parse_grid_args(["learning_rate=0.001, 0.0005", "cl_loss=0.01"]) == {
        "learning_rate": ["0.001", "0.0005"],
        "cl_loss": ["0.01"],
    }
    for bad in (["learning_rate"], ["=1,2"], ["lr="], ["a=1", "a=2"]):
        with pytest.raises(ConfigError):
            parse_grid_args(bad)


def _fake_train(calls: list):
    """A train() stand-in whose valid and test rankings disagree."""
    scores = {0.1: (0.30, 0.50), 0.2: (0.40, 0.10), 0.3: (0.35, 0.60)}  # lr -> (valid, test)

    def fake(dataset, model, overrides, *, out=None, progress=True, **kw):
        calls.append(dict(overrides))
        v, t = scores[float(overrides["learning_rate"])]
        rec = {
            "valid": {"recall@20": v, "ndcg@20": v / 2},
            "test": {"recall@20": t, "ndcg@20": t / 2},
            "best_epoch": 1,
            "epochs_run": 2,
            "stopped_early": False,
            "seconds_per_epoch": 0.1,
            "feature_source": None,
            "config": dict(overrides),
        }
        return None, rec

    return fake


def test_search_selects_on_valid_never_on_test(monkeypatch, tmp_path):
    from alignrec_lite.data.toy import load_toy

    calls: list = []
    monkeypatch.setattr(train_mod, "train", _fake_train(calls))
    ds = load_toy("smoke", load_features=False)
    best = search(
        ds, "bpr", {"learning_rate": [0.1, 0.2, 0.3]}, out=tmp_path / "s", progress=False, base_overrides={"epochs": 2}
    )
    assert best["params"] == {"learning_rate": 0.2}  # best valid (0.40), although its test is worst
    assert best["selected_on"] == "valid" and best["test"]["recall@20"] == 0.10
    assert [c["epochs"] for c in calls] == [2, 2, 2]
    # every trial recorded, and the choice
    lines = (tmp_path / "s" / "trials.jsonl").read_text().splitlines()
    assert [json.loads(x)["params"]["learning_rate"] for x in lines] == [0.1, 0.2, 0.3]
    assert sorted(p.name for p in (tmp_path / "s" / "trials").iterdir()) == ["000.json", "001.json", "002.json"]
    on_disk = json.loads((tmp_path / "s" / "best.json").read_text())
    assert on_disk["best_trial"] == 1 and on_disk["n_trials"] == 3
    # rerunning resumes: finished trials are not trained again
    search(
        ds, "bpr", {"learning_rate": [0.1, 0.2, 0.3]}, out=tmp_path / "s", progress=False, base_overrides={"epochs": 2}
    )
    assert len(calls) == 3
    # but other shared settings are a different search
    search(ds, "bpr", {"learning_rate": [0.1]}, out=tmp_path / "s", progress=False, base_overrides={"epochs": 3})
    assert len(calls) == 4


def test_search_rejects_unknown_settings_before_training(monkeypatch):
    from alignrec_lite.data.toy import load_toy

    calls: list = []
    monkeypatch.setattr(train_mod, "train", _fake_train(calls))
    ds = load_toy("smoke", load_features=False)
    with pytest.raises(ConfigError, match="unknown setting"):
        search(ds, "bpr", {"learning_rate": [0.1], "not_a_key": [1]}, progress=False)
    with pytest.raises(ConfigError):
        search(ds, "bpr", {"learning_rate": ["fast"]}, progress=False)
    assert calls == []


def test_select_best_ties_keep_first():
    recs = [{"trial": 0, "valid": {"recall@20": 0.3}}, {"trial": 1, "valid": {"recall@20": 0.3}}]
    assert select_best(recs)["trial"] == 0
    with pytest.raises(ConfigError):
        select_best([])


def test_real_search_and_cli_on_smoke_toy(tmp_path, capsys):
    from alignrec_lite.cli import main
    from alignrec_lite.data.toy import toy_path

    folder = str(toy_path("smoke"))
    rc = main(
        [
            "search",
            folder,
            "--model",
            "bpr",
            "--grid",
            "learning_rate=0.01,0.001",
            "--budget",
            "2",
            "--set",
            "epochs=2",
            "--out",
            str(tmp_path / "cli"),
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "best on valid" in out and "not used for the choice" in out
    best = json.loads((tmp_path / "cli" / "best.json").read_text())
    assert best["n_trials"] == 2 and best["model"] == "bpr"
    trials = [json.loads(x) for x in (tmp_path / "cli" / "trials.jsonl").read_text().splitlines()]
    assert max(t["valid"]["recall@20"] for t in trials) == best["valid"]["recall@20"]
    assert (
        main(
            [
                "search",
                folder,
                "--model",
                "bpr",
                "--grid",
                "epochs=1",
                "--set",
                "epochs=2",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )  # searched and fixed at once
    assert main(["search", folder, "--model", "bpr", "--grid", "lr", "--out", str(tmp_path / "y")]) == 2
