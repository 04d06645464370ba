"""The baselines BPR, LightGCN, VBPR and FREEDOM: structure, FREEDOM's graphs and edge dropping, determinism,
toy sanity, and MMRec's own formulas written out by hand (regulariser, initialisation, VBPR's input, FREEDOM's
feature tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import batch, tiny_dataset

from alignrec_lite.data.toy import load_toy
from alignrec_lite.errors import ConfigError, DataError
from alignrec_lite.graphs import normalized_adjacency
from alignrec_lite.models.bpr import BPR
from alignrec_lite.models.freedom import FREEDOM, degree_sensitive_keep
from alignrec_lite.models.lightgcn import LightGCN
from alignrec_lite.models.vbpr import VBPR, vbpr_input


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


# ------------------------------------------------------------------ LightGCN
def test_lightgcn_propagation_is_mean_of_layers():
    ds = load_toy("smoke")
    m = LightGCN(ds, {"n_layers": 2})
    e0 = torch.cat([m.user_emb.weight, m.item_emb.weight]).detach()
    a = torch.from_numpy(normalized_adjacency(ds.interaction_matrix()).toarray())
    ref = (e0 + a @ e0 + a @ (a @ e0)) / 3
    u, i = m.forward()
    torch.testing.assert_close(torch.cat([u, i]).detach(), ref, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------ regularisers: MMRec's EmbLoss by hand
def mmrec_emb_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec ``common/loss.py`` ``EmbLoss`` written out: sum_k sqrt(sum E_k²), / rows of the last."""
    total = torch.zeros((), dtype=torch.float64)
    for e in embeddings:
        total = total + torch.sqrt((e.double() ** 2).sum())
    return total / embeddings[-1].shape[0]


def _grad_of(loss: torch.Tensor, params) -> list[torch.Tensor]:
    return [
        g if g is not None else torch.zeros_like(p)
        for g, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params)
    ]


@pytest.mark.parametrize("lam", [1e-4, 0.1])
def test_bpr_regulariser_is_mmrec_emb_loss(lam):
    ds = tiny_dataset()
    model = BPR(ds, {"embedding_size": 8, "reg_weight": lam})
    users, pos, neg = batch(ds, size=13)  # not a divisor of anything: the actual size is used
    terms = model.loss(users, pos, neg)
    u, p, n = model.user_emb.weight[users], model.item_emb.weight[pos], model.item_emb.weight[neg]
    ref = lam * mmrec_emb_loss(u, p, n)
    assert float(terms["reg"].detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    params = [model.user_emb.weight, model.item_emb.weight]
    got = _grad_of(terms["reg"], params)
    want = _grad_of(ref, params)
    for a, b in zip(got, want):
        assert torch.allclose(a, b.float(), rtol=1e-5, atol=1e-9)


def test_bpr_embeddings_are_xavier_normal():
    ds = tiny_dataset(n_users=400, n_items=300)
    torch.manual_seed(0)
    model = BPR(ds, {"embedding_size": 64})
    w = model.user_emb.weight.detach()
    bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))  # xavier_uniform's support
    assert (w.abs() > bound).any()  # a normal draw leaves the uniform's support
    assert float(w.std()) == pytest.approx(math.sqrt(2.0 / sum(w.shape)), rel=0.05)


def test_lightgcn_regulariser_is_emb_loss_of_layer_zero():
    ds = tiny_dataset()
    model = LightGCN(ds, {"embedding_size": 8, "reg_weight": 0.01})
    users, pos, neg = batch(ds, size=11)
    terms = model.loss(users, pos, neg)
    ref = 0.01 * mmrec_emb_loss(model.user_emb.weight[users], model.item_emb.weight[pos], model.item_emb.weight[neg])
    assert float(terms["reg"].detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    params = [model.user_emb.weight, model.item_emb.weight]
    for a, b in zip(_grad_of(terms["reg"], params), _grad_of(ref, params)):
        assert torch.allclose(a, b.float(), rtol=1e-5, atol=1e-9)


def test_vbpr_regulariser_is_emb_loss_of_final_vectors():
    ds = tiny_dataset()
    model = VBPR(ds, {"embedding_size": 8, "reg_weight": 0.1})
    users, pos, neg = batch(ds, size=9)
    terms = model.loss(users, pos, neg)
    user_e, item_e = model.forward()  # (n_users, 16), (n_items, 16)
    ref = 0.1 * mmrec_emb_loss(user_e[users], item_e[pos], item_e[neg])
    assert float(terms["reg"].detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    params = [model.user_emb.weight, model.item_emb.weight, model.item_linear.weight]
    for a, b in zip(_grad_of(terms["reg"], params), _grad_of(ref, params)):
        assert torch.allclose(a, b.float(), rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------------ VBPR input and init (as MMRec)
def test_vbpr_input_is_the_raw_text_image_concatenation():
    ds = tiny_dataset()  # image has 8 columns, text 9
    model = VBPR(ds, {"embedding_size": 8})
    raw = np.concatenate([ds.features["text"], ds.features["image"]], axis=1)  # MMRec: cat(t_feat, v_feat)
    assert np.array_equal(model.feat.numpy(), raw)
    assert np.array_equal(vbpr_input(ds)[0], raw)
    assert model.feature_source == "image+text"
    # one modality: the feature as it is
    single = VBPR(ds, {"embedding_size": 8, "feature_source": "image"})
    assert np.array_equal(single.feat.numpy(), ds.features["image"])
    # the projection sees exactly that input
    users, items = model.forward()
    assert torch.allclose(items[:, 8:], torch.from_numpy(raw) @ model.item_linear.weight.T, atol=1e-5)


def test_vbpr_projection_is_xavier_normal_with_zero_bias():
    rng = np.random.default_rng(0)
    ds = tiny_dataset(features=("mm",))
    ds.features["mm"] = rng.normal(size=(ds.n_items, 1000)).astype(np.float32)
    torch.manual_seed(0)
    model = VBPR(ds, {"embedding_size": 64, "feature_source": "mm"})
    w, b = model.item_linear.weight.detach(), model.item_linear.bias.detach()
    assert torch.count_nonzero(b) == 0
    std = math.sqrt(2.0 / (w.shape[0] + w.shape[1]))
    assert float(w.std()) == pytest.approx(std, rel=0.03)
    assert (w.abs() > math.sqrt(3.0) * std).any()  # beyond xavier_uniform's support


# ------------------------------------------------------------------ FREEDOM feature tables (as MMRec)
def test_freedom_feature_tables_train_and_the_graph_stays():
    ds = tiny_dataset(n_items=12)
    torch.manual_seed(0)
    model = FREEDOM(ds, {"knn_k": 3, "reg_weight": 0.1, "dropout": 0.0})
    assert set(model.feat_table) == {"image", "text"}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert {"feat_table.image", "feat_table.text"} <= trainable
    graph0 = model.item_graph.to_dense().clone()
    table0 = {m: model.feat_table[m].detach().clone() for m in model.modalities}
    init0 = {m: getattr(model, f"feat_{m}").clone() for m in model.modalities}
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    users, pos, neg = batch(ds)
    terms = model.loss(users, pos, neg)
    # the modality terms by hand (MMRec: bpr_loss(u, trs(table)[pos], trs(table)[neg]))
    user_e, _ = model.forward()
    for m in model.modalities:
        f = model.feat_table[m].double() @ model.proj[m].weight.double().T + model.proj[m].bias.double()  # (n_items, d)
        u = user_e[users].double()
        ref = -torch.nn.functional.logsigmoid((u * f[pos]).sum(1) - (u * f[neg]).sum(1)).mean()
        assert float(terms[f"bpr_{m}"].detach()) == pytest.approx(0.1 * float(ref.detach()), rel=1e-5)
    opt.zero_grad()
    terms["loss"].backward()
    for m in model.modalities:
        assert model.feat_table[m].grad is not None and model.feat_table[m].grad.abs().sum() > 0
    opt.step()
    for m in model.modalities:
        assert not torch.equal(model.feat_table[m].detach(), table0[m])  # the table moved
        assert torch.equal(getattr(model, f"feat_{m}"), init0[m])  # the initial copy did not
    assert torch.equal(model.item_graph.to_dense(), graph0)  # the kNN graph is frozen
    assert model.item_graph.requires_grad is False


def test_freedom_projections_keep_torch_default_init():
    # MMRec's FREEDOM never re-initialises image_trs / text_trs: nn.Linear's default
    # (kaiming-uniform weight and uniform bias, both within 1 / sqrt(fan_in))
    ds = tiny_dataset(n_items=12)
    torch.manual_seed(0)
    model = FREEDOM(ds, {"knn_k": 3})
    for m in model.modalities:
        lin = model.proj[m]
        bound = 1.0 / math.sqrt(lin.in_features)
        assert float(lin.weight.detach().abs().max()) <= bound and float(lin.bias.detach().abs().max()) <= bound
        assert torch.count_nonzero(lin.bias) > 0


def test_freedom_frozen_features_option():
    ds = tiny_dataset(n_items=12)
    model = FREEDOM(ds, {"knn_k": 3, "finetune_features": False})
    assert len(model.feat_table) == 0
    assert not any(name.startswith("feat") for name, _ in model.named_parameters())
