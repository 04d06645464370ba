"""Core pieces: MMRec split, k-core, graphs, sampler, config, trainer and the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from alignrec_lite.cli import main
from alignrec_lite.config import TRAIN_DEFAULTS, TUNED_DEFAULTS, parse_set_args, pick_preset, resolve_config
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.split import kcore, mmrec_split
from alignrec_lite.data.toy import load_toy, toy_path
from alignrec_lite.errors import ConfigError
from alignrec_lite.graphs import knn_graph, normalized_adjacency, sparse_pair, spmm, to_torch, user_item_norm
from alignrec_lite.models.lightgcn import LightGCN
from alignrec_lite.train import BPRSampler, train


# ---------------------------------------------------------------- split and k-core
@pytest.mark.parametrize("n", [3, 5, 9, 10, 11, 19, 20, 37, 100])
def test_mmrec_split_rule(n):
    lab = mmrec_split(np.zeros(n, dtype=int), seed=1)
    counts = np.bincount(lab, minlength=3)
    if n < 10:
        assert counts.tolist() == [n - 2, 1, 1]
    else:
        vt = int(0.2 * n)
        assert counts.tolist() == [n - vt, vt // 2, vt - vt // 2]


def test_mmrec_split_is_seeded_and_random_per_user():
    users = np.repeat(np.arange(50), 12)
    a, b, c = mmrec_split(users, 7), mmrec_split(users, 7), mmrec_split(users, 8)
    assert (a == b).all() and not (a == c).all()
    # the test rows are not always the user's last rows (not chronological)
    assert len({tuple(np.flatnonzero(a[users == u] == 2)) for u in range(50)}) > 1


def test_kcore_is_iterative():
    # item 9 has 5 users, but one of them has only 4 interactions -> after dropping it, item 9 has 4
    rows = [(u, i) for u in range(5) for i in range(5)] + [(u, 9) for u in range(4)] + [(5, 9), (5, 1), (5, 2), (5, 3)]
    df = pd.DataFrame(rows, columns=["user", "item"])
    out = kcore(df, 5)
    assert 5 not in set(out["user"]) and 9 not in set(out["item"])
    assert (out.groupby("user").size() >= 5).all() and (out.groupby("item").size() >= 5).all()


# ---------------------------------------------------------------- graphs
def test_normalized_adjacency_matches_dense_formula():
    rng = np.random.default_rng(0)
    r = (rng.random((6, 5)) < 0.4).astype(np.float32)
    r[0] = 0  # a user with no edges -> row of zeros, no NaN
    a = np.block([[np.zeros((6, 6)), r], [r.T, np.zeros((5, 5))]])
    d = a.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0)
    ref = dinv[:, None] * a * dinv[None, :]
    got = normalized_adjacency(sp.csr_matrix(r)).toarray()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(user_item_norm(sp.csr_matrix(r)).toarray(), ref[:6, 6:], atol=1e-6)


def test_knn_graph_matches_dense_reference_and_keeps_self():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(12, 4)).astype(np.float32)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = fn @ fn.T
    k = 3
    ref = np.zeros_like(cos)
    for i in range(12):
        nn_idx = np.argsort(-cos[i])[:k]
        ref[i, nn_idx] = cos[i, nn_idx]
    assert all(ref[i, i] > 0 for i in range(12))  # self is among the neighbours
    deg = ref.sum(1)
    ref_sym = ref / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]
    got = knn_graph(f, k, chunk=5).toarray()  # several chunks
    np.testing.assert_allclose(got, ref_sym, atol=1e-5)
    binary = knn_graph(f, k, weighted=False, normalize="none").toarray()
    np.testing.assert_array_equal(binary, (ref > 0).astype(np.float32))


def test_spmm_symmetric_gradient_equals_autograd():
    r = sp.random(7, 9, density=0.3, random_state=3, format="csr")
    r.data[:] = 1
    adj = normalized_adjacency(r)
    x = torch.randn(16, 3, requires_grad=True)
    spmm(to_torch(adj), x, symmetric=True).pow(2).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    torch.sparse.mm(to_torch(adj, layout="coo"), x).pow(2).sum().backward()
    torch.testing.assert_close(g1, x.grad)


def test_spmm_transpose_backward_matches_dense():
    rng = np.random.default_rng(0)
    m = sp.random(6, 5, density=0.4, random_state=1, dtype=np.float32).tocsr()
    a, a_t = sparse_pair(m)
    x = torch.from_numpy(rng.normal(size=(5, 3)).astype(np.float32)).requires_grad_(True)
    y = torch.from_numpy(rng.normal(size=(6, 3)).astype(np.float32))
    (spmm(a, x, a_t) * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), m.T.toarray() @ y.numpy(), rtol=1e-5, atol=1e-6)
    g_custom = x.grad.clone()
    x.grad = None
    (spmm(a, x) * y).sum().backward()  # torch's own backward: the same gradient, bit for bit
    torch.testing.assert_close(g_custom, x.grad, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(spmm(a, x, a_t), torch.sparse.mm(a, x), rtol=0, atol=0)


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


# ---------------------------------------------------------------- config
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


# ---------------------------------------------------------------- trainer
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


def test_lightgcn_propagation_is_mean_of_layers():
    ds = load_toy("smoke")
    m = LightGCN(ds, {"n_layers": 2})
    e0 = torch.cat([m.user_emb.weight, m.item_emb.weight]).detach()
    a = torch.from_numpy(normalized_adjacency(ds.interaction_matrix()).toarray())
    ref = (e0 + a @ e0 + a @ (a @ e0)) / 3
    u, i = m.forward()
    torch.testing.assert_close(torch.cat([u, i]).detach(), ref, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- command line
def test_cli_build_check_train_recommend(tmp_path, capsys):
    data = tmp_path / "toy"
    assert main(["data", "build", "toy", "--out", str(data), "--size", "smoke", "--quiet"]) == 0
    assert main(["data", "check", str(data)]) == 0
    assert "users" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", str(data), "--model", "lightgcn", "--set", "epochs=3", "--out", str(run), "--quiet"]) == 0
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["model"] == "lightgcn" and rec["epochs_run"] == 3 and 0 <= rec["test"]["recall@20"] <= 1
    assert (run / "best.pt").exists() and (run / "config.json").exists()
    out = tmp_path / "top.csv"
    assert main(["recommend", str(run), "--k", "5", "--out", str(out), "--quiet"]) == 0
    top = pd.read_csv(out)
    ds = load_mmrec(data)
    assert len(top) == 5 * ds.n_users and set(top["rank"]) == {1, 2, 3, 4, 5}
    train_pairs = {tuple(p) for p in ds.train.tolist()}
    assert not any((u, i) in train_pairs for u, i in zip(top["userID"], top["itemID"]))
    assert top["item"].iloc[0] == ds.item_raw_ids[top["itemID"].iloc[0]]


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alignrec-lite: error:") and "Fix:" in err and len(err.splitlines()) == 1
    assert main(["train", str(toy_path("smoke")), "--model", "lightgcn", "--set", "epochs=x"]) == 2
    assert "epochs" in capsys.readouterr().err


# ---------------------------------------------------------------- atomic output
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
