"""Trainer settings (alignrec_lite.config): coercion and ranges, the tuned presets, the schedules' defaults."""

from __future__ import annotations

import pytest

from alignrec_lite.config import TRAIN_DEFAULTS, TUNED_DEFAULTS, parse_set_args, pick_preset, resolve_config
from alignrec_lite.errors import ConfigError
from alignrec_lite.models.lightgcn import LightGCN


def test_config_coercion_and_errors():
    cfg = resolve_config("lightgcn", parse_set_args(["epochs=5", "learning_rate=1e-3", "mask_valid_at_test=true"]))
    assert cfg["epochs"] == 5 and cfg["learning_rate"] == 1e-3 and cfg["mask_valid_at_test"] is True
    with pytest.raises(ConfigError, match="unknown setting 'epoch'"):
        resolve_config("lightgcn", {"epoch": "5"})
    with pytest.raises(ConfigError, match="not a valid int"):
        resolve_config("lightgcn", {"epochs": "five"})
    with pytest.raises(ConfigError, match="must be > 0"):
        resolve_config("lightgcn", {"learning_rate": "-1"})
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["epochs"])
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_config("nope")


def test_presets_are_chosen_explicitly():
    tuned = TUNED_DEFAULTS["toy"]["lightgcn"]
    assert pick_preset("lightgcn", "toy") == "toy" and pick_preset("lightgcn", "elsewhere") is None
    assert pick_preset("bpr", "baby") is None  # "auto": the dataset's preset has no bpr settings
    assert pick_preset("lightgcn", "toy", "none") is None and pick_preset("bpr", "toy", "movielens") == "movielens"
    auto = resolve_config("lightgcn", {}, "toy")
    assert all(auto[k] == v for k, v in tuned.items())
    none = resolve_config("lightgcn", {}, "toy", preset="none")
    assert (
        none["learning_rate"] == TRAIN_DEFAULTS["learning_rate"] and none["n_layers"] == LightGCN.defaults["n_layers"]
    )
    named = resolve_config("lightgcn", {"n_layers": "1"}, "elsewhere", preset="toy")
    assert named["learning_rate"] == tuned["learning_rate"] and named["n_layers"] == 1  # overrides win
    assert "preset" not in auto and "preset" not in named
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        resolve_config("bpr", preset="nope")
    with pytest.raises(ConfigError, match="preset 'baby' has no settings for model bpr"):
        resolve_config("bpr", preset="baby")


def test_baselines_keep_a_constant_rate_alignrec_decays():
    for name in ("bpr", "lightgcn", "vbpr", "freedom"):
        assert resolve_config(name)["lr_decay"] == 1.0, name
    assert resolve_config("alignrec")["lr_decay"] == 0.96
    assert resolve_config("bpr", {"lr_decay": "0.96"})["lr_decay"] == 0.96  # still settable
