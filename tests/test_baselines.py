"""VBPR and FREEDOM: structure, FREEDOM's graphs and edge dropping, determinism, toy sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import batch, tiny_dataset

from alignrec_lite.errors import ConfigError, DataError
from alignrec_lite.models.freedom import FREEDOM, degree_sensitive_keep
from alignrec_lite.models.vbpr import VBPR


# ------------------------------------------------------------------ VBPR
def test_vbpr_item_vector_is_id_plus_projected_content():
    ds = tiny_dataset(features=("mm",))
    model = VBPR(ds, {"embedding_size": 8, "feature_source": "mm"})
    users, items = model.forward()
    assert users.shape == (ds.n_users, 16) and items.shape == (ds.n_items, 16)
    feat = torch.from_numpy(ds.features["mm"])
    assert torch.allclose(items[:, :8], model.item_emb.weight)
    assert torch.allclose(items[:, 8:], model.item_linear(feat), atol=1e-6)
    new = model.encode_content(ds.features["mm"][:2])
    assert torch.allclose(new[:, 8:], items[:2, 8:], atol=1e-6) and torch.all(new[:, :8] == 0)


def test_vbpr_gradients_reach_projection():
    ds = tiny_dataset()
    model = VBPR(ds, {})
    assert model.feature_source == "image+text"
    u, p, n = batch(ds)
    model.loss(u, p, n)["loss"].backward()
    assert model.item_linear.weight.grad.abs().sum() > 0
    assert model.user_emb.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ FREEDOM graphs
def _binary_knn_sym(feat: np.ndarray, k: int) -> np.ndarray:
    f = feat / np.linalg.norm(feat, axis=1, keepdims=True)
    cos = f @ f.T
    a = np.zeros_like(cos)
    for r in range(len(cos)):
        a[r, np.argsort(-cos[r], kind="stable")[:k]] = 1.0
    d = a.sum(1)
    return a / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]


def test_freedom_item_graph_is_weighted_sum_of_modality_graphs():
    ds = tiny_dataset(n_items=12)
    model = FREEDOM(ds, {"knn_k": 3})
    ref = 0.1 * _binary_knn_sym(ds.features["image"].astype(np.float64), 3) + 0.9 * _binary_knn_sym(
        ds.features["text"].astype(np.float64), 3
    )
    np.testing.assert_allclose(model.item_graph.to_dense().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert model.modalities == ["image", "text"]


def test_freedom_single_modality_uses_it_alone():
    ds = tiny_dataset(n_items=12, features=("text",))
    model = FREEDOM(ds, {"knn_k": 3})
    assert model.modalities == ["text"] and model.feature_source == "text"
    ref = _binary_knn_sym(ds.features["text"].astype(np.float64), 3)
    np.testing.assert_allclose(model.item_graph.to_dense().numpy(), ref, rtol=1e-5, atol=1e-6)
    u, p, n = batch(ds)
    assert set(model.loss(u, p, n)) == {"loss", "bpr", "bpr_text"}
    with pytest.raises(DataError):
        FREEDOM(ds, {"feature_source": "image"})
    with pytest.raises(ConfigError):
        FREEDOM(ds, {"dropout": 1.0})


def test_freedom_encode_content_matches_graph_row():
    ds = tiny_dataset(n_items=12)
    model = FREEDOM(ds, {"knn_k": 4})
    model.eval()
    # a copy of item 3 with no interactions: its graph row = itself (no ID vector) + 3 known items
    x = ds.feature("image+text")[0][[3]]
    got = model.encode_content(x)
    e = model.item_emb.weight.detach()
    ref = torch.zeros(1, e.shape[1])
    for m, w in (("image", 0.1), ("text", 0.9)):
        f = torch.nn.functional.normalize(torch.from_numpy(ds.features[m]), dim=1)
        nbr = torch.topk(f[3] @ f.T, 3).indices  # item 3 itself comes first
        ref += w * e[nbr].sum(0) / 4
    assert torch.allclose(got, ref, atol=1e-5)
    with pytest.raises(ConfigError):
        model.encode_content(x[:, :5])


def test_degree_sensitive_keep_share_determinism_and_bias():
    w = np.array([1.0, 3.0])
    picks = [int(degree_sensitive_keep(w, 1, np.random.default_rng(s))[0]) for s in range(4000)]
    assert np.mean(picks) == pytest.approx(0.75, abs=0.03)  # P(pick edge 1) = 3 / (1 + 3)
    weights = np.random.default_rng(0).uniform(0.01, 1.0, size=1000)
    a = degree_sensitive_keep(weights, 200, np.random.default_rng(7))
    b = degree_sensitive_keep(weights, 200, np.random.default_rng(7))
    assert len(a) == 200 and len(np.unique(a)) == 200
    assert np.array_equal(a, b)
    assert weights[a].mean() > weights.mean()  # heavier edges survive more often


def test_freedom_edge_dropping_keeps_share_and_eval_uses_full_graph():
    ds = tiny_dataset()
    model = FREEDOM(ds, {"dropout": 0.8})
    n_edges = len(ds.train)
    model.pre_epoch(0, np.random.default_rng(3))
    kept = model.masked_adj.to_dense()
    n_users = ds.n_users
    block = kept[:n_users, n_users:]
    assert int((block > 0).sum()) == int(n_edges * 0.2)
    assert torch.allclose(kept, kept.T)  # still symmetric after renormalising
    # same rng state -> same graph
    other = FREEDOM(ds, {"dropout": 0.8})
    other.pre_epoch(0, np.random.default_rng(3))
    assert torch.equal(other.masked_adj.to_dense(), kept)
    # evaluation ignores the dropped graph
    full_u, full_i = model.final_vectors()  # eval mode: the full graph
    model.masked_adj = None
    with torch.no_grad():
        ref_u, ref_i = model.forward()
    assert torch.equal(full_u, ref_u) and torch.equal(full_i, ref_i)


def test_freedom_resume_repeats_the_same_run(tmp_path):
    from alignrec_lite.train import train

    ds = tiny_dataset()
    cfg = {"epochs": 4, "batch_size": 32, "learning_rate": 0.01, "eval_step": 1}
    _, straight = train(ds, "freedom", cfg, progress=False)
    train(ds, "freedom", {**cfg, "epochs": 2}, out=tmp_path / "run", progress=False)
    _, resumed = train(ds, "freedom", cfg, out=tmp_path / "run", resume=True, progress=False)
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in straight["history"]])
    assert resumed["valid"] == straight["valid"]


# ------------------------------------------------------------------ toy sanity
@pytest.mark.parametrize("model", ["vbpr", "freedom"])
def test_few_epochs_on_toy_beat_random(model):
    from alignrec_lite.data.toy import load_toy
    from alignrec_lite.train import train

    ds = load_toy("smoke")
    _, rec = train(ds, model, {"epochs": 8, "learning_rate": 0.01, "batch_size": 256}, progress=False)
    assert rec["valid"]["recall@20"] > 1.5 * 20 / ds.n_items
