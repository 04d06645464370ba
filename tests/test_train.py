"""The trainer (alignrec_lite.train): negative sampling, learning, early stopping, the learning-rate schedule,
what the run record says, and runs that repeat exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_dataset

from alignrec_lite.config import TRAIN_DEFAULTS, TUNED_DEFAULTS
from alignrec_lite.data.toy import load_toy
from alignrec_lite.errors import ConfigError
from alignrec_lite.models.lightgcn import LightGCN
from alignrec_lite.train import BPRSampler, train


# ---------------------------------------------------------------- sampler
def test_sampler_never_draws_training_positives_and_covers_all_pairs():
    ds = load_toy("smoke")
    sampler = BPRSampler(ds, np.random.default_rng(0))
    train_set = {tuple(p) for p in ds.train.tolist()}
    seen = []
    for users, pos, neg in sampler.epoch(256):
        assert not any((u, n) in train_set for u, n in zip(users.tolist(), neg.tolist()))
        seen += list(zip(users.tolist(), pos.tolist()))
    assert sorted(seen) == sorted(train_set)
    assert set(np.unique(sampler.candidates)) == set(np.unique(ds.train[:, 1]))


# ---------------------------------------------------------------- learning and early stopping
def test_lightgcn_learns_on_the_toy_shop_and_beats_popularity():
    ds = load_toy("default")
    model, rec = train(ds, "lightgcn", {"epochs": 40, "learning_rate": 0.01, "seed": 1}, progress=False)
    pop = torch.from_numpy(ds.item_popularity().astype(np.float32))
    from alignrec_lite.evaluate import evaluate

    pop_metrics = evaluate(lambda u: pop.expand(len(u), -1), ds, "test")
    assert rec["test"]["recall@20"] > pop_metrics["recall@20"] + 0.02
    assert rec["best_epoch"] >= 1 and rec["history"][0]["loss"] > rec["history"][-1]["loss"]
    assert set(rec) >= {
        "model",
        "dataset",
        "config",
        "best_epoch",
        "valid",
        "test",
        "seconds_per_epoch",
        "eval_seconds",
        "peak_rss_mb",
        "device",
        "versions",
    }


def test_early_stopping_and_best_on_valid():
    ds = load_toy("smoke")
    _, rec = train(ds, "bpr", {"epochs": 200, "stopping_step": 2, "learning_rate": 0.05}, progress=False)
    assert rec["stopped_early"] and rec["epochs_run"] < 200
    scores = [h["valid"]["recall@20"] for h in rec["history"]]
    assert rec["valid"]["recall@20"] == max(scores)
    assert rec["epochs_run"] - 1 - rec["best_epoch"] == 3  # stopping_step + 1 evaluations without improvement


# ------------------------------------------------------------------ learning-rate schedule
@pytest.mark.parametrize(
    "model,factor", [("bpr", 1.0), ("lightgcn", 1.0), ("vbpr", 1.0), ("freedom", 1.0), ("alignrec", 0.96 ** (100 / 50))]
)
def test_learning_rate_after_100_epochs_of_the_trainer(tmp_path, model, factor):
    from alignrec_lite.files import load_checkpoint_file
    from alignrec_lite.train import train

    ds = tiny_dataset(n_users=12, n_items=10)
    cfg = {"epochs": 100, "eval_step": 100, "batch_size": 64, "learning_rate": 0.002, "embedding_size": 4}
    train(ds, model, cfg, out=tmp_path / model, progress=False)
    ckpt = load_checkpoint_file(tmp_path / model / "last.pt")
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.002 * factor, rel=1e-9)


# ------------------------------------------------------------------ what the run record says
def test_run_record_says_which_preset_was_applied(tmp_path):
    ds = load_toy("smoke")  # named "toy": "auto" applies the toy preset
    settings = {"epochs": 1, "seed": 1}
    _, auto = train(ds, "lightgcn", settings, out=tmp_path / "run", progress=False)
    assert auto["preset"] == "toy" and "preset" not in auto["config"]
    assert auto["config"]["learning_rate"] == TUNED_DEFAULTS["toy"]["lightgcn"]["learning_rate"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["preset"] == "toy"
    _, none = train(ds, "lightgcn", settings, preset="none", progress=False)
    assert none["preset"] is None
    assert {k: none["config"][k] for k in ("learning_rate", "n_layers")} == {
        "learning_rate": TRAIN_DEFAULTS["learning_rate"],
        "n_layers": LightGCN.defaults["n_layers"],
    }
    with pytest.raises(ConfigError, match="unknown preset"):
        train(ds, "lightgcn", settings, preset="nope", progress=False)


@pytest.mark.parametrize(
    "model,overrides,mode",
    [
        ("alignrec", {}, False),
        ("alignrec", {"finetune_features": True}, True),
        ("freedom", {}, True),
        ("bpr", {}, None),
    ],
)
def test_run_record_names_the_feature_mode(model, overrides, mode):
    from alignrec_lite.train import train

    ds = tiny_dataset()
    _, rec = train(ds, model, {"epochs": 1, "batch_size": 64, "embedding_size": 4, **overrides}, progress=False)
    assert rec["finetune_features"] is mode
    if mode is not None:
        assert rec["config"]["finetune_features"] is mode


# ------------------------------------------------------------------ determinism
# The same seed and data give identical results on CPU, run to run.
# Two trainings with the same seed must agree bit for bit: every loss of every epoch,
# every validation metric, the test metrics and the best weights. A different seed
# must give a different run (so the comparison can fail). LightGCN is always tested;
# AlignRec when its module exists (the other models are covered by the resume test,
# which compares an interrupted-and-resumed run with an uninterrupted one).
#
# Before :func:`alignrec_lite.train.deterministic_cpu`, LightGCN, VBPR, FREEDOM and
# AlignRec drifted apart after a few epochs on a 2-thread CPU: the backward of
# ``emb[users]`` (``index_put_`` with accumulation) adds duplicate rows in a varying
# order. Across processes the kill-and-resume test (tests/test_resume.py) compares
# two separate ``python -m alignrec_lite train`` runs as well.
SETTINGS = {"epochs": 6, "batch_size": 512, "device": "cpu", "stopping_step": 100}


VOLATILE = {"seconds_per_epoch", "eval_seconds", "peak_rss_mb", "versions"}


MODELS = ["lightgcn", "alignrec"]


def _run(model: str, seed: int):
    ds = load_toy("smoke")
    epochs = 4 if model == "alignrec" else SETTINGS["epochs"]  # AlignRec is ~10x slower per epoch
    net, record = train(ds, model, {**SETTINGS, "epochs": epochs, "seed": seed}, progress=False)
    return {k: v for k, v in record.items() if k not in VOLATILE}, net.state_dict()


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_run(model: str) -> None:
    rec_a, w_a = _run(model, 7)
    rec_b, w_b = _run(model, 7)
    losses_a = [h["loss"] for h in rec_a["history"]]
    assert len(losses_a) == (4 if model == "alignrec" else SETTINGS["epochs"])
    assert losses_a == [h["loss"] for h in rec_b["history"]]
    assert rec_a == rec_b
    assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    if model == "lightgcn":
        rec_c, _ = _run(model, 8)
        assert [h["loss"] for h in rec_c["history"]] != losses_a, "the seed has no effect"


def test_deterministic_mode_is_restored_after_training() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    _run("bpr", 1)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_fused_adam_follows_the_plain_update_inside_keep_freed_memory():
    from alignrec_lite.train import keep_freed_memory, make_optimizer

    g = torch.Generator().manual_seed(0)
    w = torch.randn(30, 4, generator=g)
    nets = [torch.nn.Linear(4, 3) for _ in range(2)]
    for net in nets:
        with torch.no_grad():
            net.weight.copy_(w[:3])
            net.bias.zero_()
    cfg = {"learning_rate": 0.01, "weight_decay": 1e-4}
    opts = [make_optimizer(nets[0], cfg), torch.optim.Adam(nets[1].parameters(), lr=0.01, weight_decay=1e-4)]
    assert opts[0].defaults["fused"] and not opts[1].defaults.get("fused")
    with keep_freed_memory():
        for _ in range(5):
            for net, opt in zip(nets, opts):
                opt.zero_grad()
                net(w).square().sum().backward()
                opt.step()
    torch.testing.assert_close(nets[0].weight, nets[1].weight, rtol=1e-5, atol=1e-6)
