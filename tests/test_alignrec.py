"""AlignRec (stage 2): loss terms by hand, gradient routing, kNN graph, LightGCN reduction, ablations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import batch, tiny_dataset

from alignrec_lite.errors import ConfigError
from alignrec_lite.losses import (
    bpr_loss,
    cca_loss,
    info_nce,
    info_nce_grouped,
    l2_reg_loss,
    sim_loss,
    sim_loss_expanded,
    uia_loss,
)
from alignrec_lite.models.alignrec import AlignRec
from alignrec_lite.models.lightgcn import LightGCN


# ------------------------------------------------------------------ losses by hand
def test_bpr_and_l2_by_hand():
    got = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    assert float(got) == pytest.approx(want, rel=1e-6)
    # AlignRec divides by the configured batch size, not the actual one
    assert float(l2_reg_loss(torch.ones(2, 3), batch_size=4)) == pytest.approx(6 / 8)
    assert float(l2_reg_loss(torch.ones(2, 3), 2 * torch.ones(2, 3))) == pytest.approx((6 + 24) / 4)


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    t = 0.5
    c = 1 / math.sqrt(2)  # cosines: a0.b0 = 0, a0.b1 = 1, a1.b0 = c, a1.b1 = c
    row0 = -math.log(math.exp(0 / t) / (math.exp(0 / t) + math.exp(1 / t)))
    row1 = -math.log(math.exp(c / t) / (math.exp(c / t) + math.exp(c / t)))
    assert float(info_nce(a, b, t)) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # CCA = item term + user term
    assert float(cca_loss(a, b, b, a, t)) == pytest.approx(float(info_nce(a, b, t) + info_nce(b, a, t)), rel=1e-6)


def test_grouped_info_nce_equals_the_duplicated_batch():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    counts = torch.tensor([1, 3, 1, 2, 1])
    rep = torch.repeat_interleave(torch.arange(5), counts)  # the batch with duplicates
    a1, b1 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    a2, b2 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    full = info_nce(a1[rep], b1[rep], 0.2)
    grouped = info_nce_grouped(a2, b2, counts, 0.2)
    assert grouped.item() == pytest.approx(full.item(), rel=1e-5)
    full.backward()
    grouped.backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-5) and torch.allclose(b1.grad, b2.grad, atol=1e-5)
    assert info_nce_grouped(a, b, None, 0.2).item() == pytest.approx(info_nce(a, b, 0.2).item(), rel=1e-6)
    # the hand-written backward agrees with finite differences (float64)
    a64 = a.double().requires_grad_(True)
    b64 = b.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: info_nce_grouped(x, y, counts, 0.2), (a64, b64))


def test_grouped_info_nce_with_a_small_temperature_shifts_each_row():
    # 1/τ = 100 > 60: the log-sum-exp takes its row-max-shifted branch; τ = 0.2 the unshifted one
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)  # 300 rows: three row blocks
    counts = torch.randint(1, 4, (300,), generator=g)
    rep = torch.repeat_interleave(torch.arange(300), counts)
    for t in (0.01, 0.2):
        a64 = a.double().requires_grad_(True)
        b64 = b.double().requires_grad_(True)
        want = info_nce(a64[rep], b64[rep], t)
        want.backward()
        a32, b32 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        got = info_nce_grouped(a32, b32, counts, t)
        got.backward()
        assert math.isfinite(got.item()) and got.item() == pytest.approx(want.item(), rel=1e-5)
        torch.testing.assert_close(a32.grad, a64.grad.float(), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b32.grad, b64.grad.float(), rtol=1e-4, atol=1e-6)


def test_uia_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    assert float(uia_loss(u, p)) == pytest.approx(1 - (1 + 1 / math.sqrt(2)) / 2, rel=1e-6)


def test_sim_loss_by_hand_and_expanded_form():
    h = torch.eye(2)
    feat = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cosine matrix [[1, c], [c, 1]]
    # H H^T - cos = [[0, -c], [-c, 0]] -> ||.||_F = sqrt(2 c^2) = 1, / B = 0.5
    assert float(sim_loss(h, feat)) == pytest.approx(0.5, rel=1e-6)
    # the expanded form has the same value and gradient on a random batch with duplicates
    g = torch.Generator().manual_seed(1)
    f = torch.randn(12, 7, generator=g)
    idx = torch.tensor([0, 1, 2, 2, 3, 4, 5, 5, 5, 6, 7, 8])
    f = f[idx]
    h_items = torch.randn(9, 4, generator=g)  # one content vector per distinct item
    h1 = h_items[idx].clone().requires_grad_(True)
    h2 = h1.detach().clone().requires_grad_(True)
    direct = sim_loss(h1, f)
    fu = F.normalize(f, dim=1)
    target_sq = float((fu @ fu.T).square().sum())
    fast = sim_loss_expanded(h2, fu, target_sq)
    assert fast.item() == pytest.approx(direct.item(), rel=1e-5)
    direct.backward()
    fast.backward()
    assert torch.allclose(h1.grad, h2.grad, rtol=1e-4, atol=1e-6)
    # and with the batch given as distinct rows + multiplicities
    uniq, counts = torch.unique(idx, return_counts=True)
    first = torch.tensor([int((idx == v).nonzero()[0]) for v in uniq])
    grouped = sim_loss_expanded(h_items[uniq], fu[first], target_sq, counts)
    assert grouped.item() == pytest.approx(direct.item(), rel=1e-5)


# ------------------------------------------------------------------ graphs
def test_knn_graph_matches_dense_reference():
    ds = tiny_dataset(n_items=9, features=("mm",))
    k = 3
    model = AlignRec(ds, {"knn_k": k, "feature_source": "mm"})
    f = ds.features["mm"].astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cos = f @ f.T
    s = np.zeros_like(cos)
    for r in range(len(cos)):
        top = np.argsort(-cos[r], kind="stable")[:k]
        assert r in top  # the item itself is among its neighbours
        s[r, top] = cos[r, top]
    d = s.sum(1)
    ref = s / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    got = model.item_graph.to_dense().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert (got != 0).sum(1).tolist() == [k] * 9
    assert model.feature_source == "mm"


# ------------------------------------------------------------------ model structure
def test_id_branch_equals_lightgcn():
    ds = tiny_dataset()
    torch.manual_seed(0)
    lgcn = LightGCN(ds, {"n_layers": 2})
    align = AlignRec(ds, {"branches": "id", "n_ui_layers": 2})
    align.load_state_dict(lgcn.state_dict())  # same parameter names, same weights
    users = torch.arange(ds.n_users)
    assert torch.equal(align.full_sort_scores(users), lgcn.full_sort_scores(users))
    assert align.feature_source is None  # no feature is needed without the content branch


def test_loss_terms_sum_and_ablation_switches():
    ds = tiny_dataset()
    u, p, n = batch(ds)
    terms = AlignRec(ds, {}).loss(u, p, n)
    assert set(terms) == {"loss", "bpr", "reg", "uia", "cca", "sim"}
    parts = sum(v for k, v in terms.items() if k != "loss")
    assert terms["loss"].item() == pytest.approx(parts.item(), rel=1e-6)
    for key, term in (("cl_loss", "cca"), ("sim_weight", "sim"), ("ui_cosine_loss_weight", "uia")):
        assert term not in AlignRec(ds, {key: 0.0}).loss(u, p, n)
    assert set(AlignRec(ds, {"branches": "id"}).loss(u, p, n)) == {"loss", "bpr", "reg", "uia"}
    assert set(AlignRec(ds, {"branches": "content"}).loss(u, p, n)) == {"loss", "bpr", "reg", "uia", "sim"}


def test_cached_sim_term_equals_direct_formula():
    ds = tiny_dataset()
    u, p, n = batch(ds, size=32)
    torch.manual_seed(0)
    cached = AlignRec(ds, {})
    direct = AlignRec(ds, {"sim_cache_mb": 0.0})  # never cache: B x B target
    direct.load_state_dict(cached.state_dict())
    a, b = cached.loss(u, p, n)["sim"], direct.loss(u, p, n)["sim"]
    assert cached._sim_sq is not None and direct._sim_sq is None
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_sim_term_with_drifting_target_matches_direct_formula():
    ds = tiny_dataset()
    u, p, n = batch(ds, size=32)
    model = AlignRec(ds, {"finetune_features": True, "sim_weight": 1.0})
    with torch.no_grad():
        model.feat_table.mul_(2.0).add_(0.3)  # the table drifted away from F
    _, item_e = model.aggregate_content()
    want = sim_loss(item_e[p], model.feat_table[p])  # the target uses the current table
    assert model.loss(u, p, n)["sim"].item() == pytest.approx(want.item(), rel=1e-5)


def test_target_sq_norm_both_routes():
    from alignrec_lite.models.alignrec import target_sq_norm

    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([2, 1, 3])
    for d_m in (2, 7):  # Gram route (d_m < m) and cosine route
        fu = F.normalize(torch.randn(3, d_m, generator=g), dim=1)
        rep = fu[torch.repeat_interleave(torch.arange(3), counts)]
        want = (rep @ rep.T).square().sum()
        assert target_sq_norm(fu, counts).item() == pytest.approx(want.item(), rel=1e-5)
    # the Gram route in symmetric blocks (d_m >= 256), uneven block widths included
    counts = torch.randint(1, 4, (400,), generator=g)
    fu = F.normalize(torch.randn(400, 258, generator=g), dim=1).double()
    rep = fu[torch.repeat_interleave(torch.arange(400), counts)]
    want = (rep @ rep.T).square().sum()
    assert target_sq_norm(fu.float(), counts).item() == pytest.approx(want.item(), rel=1e-5)


def test_reg_divides_by_configured_batch_size():
    ds = tiny_dataset()
    u, p, n = batch(ds, size=16)
    a = AlignRec(ds, {"batch_size": 2048, "reg_weight": 1.0})
    torch.manual_seed(0)
    b = AlignRec(ds, {"batch_size": 16, "reg_weight": 1.0})
    b.load_state_dict(a.state_dict())
    ratio = b.loss(u, p, n)["reg"].item() / a.loss(u, p, n)["reg"].item()
    assert ratio == pytest.approx(2048 / 16, rel=1e-5)


def _grads(model, term: str, u, p, n) -> dict[str, bool]:
    terms = model.loss(u, p, n)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(terms[term], list(params.values()), allow_unused=True)
    return {name: g is not None and bool(g.abs().sum() > 0) for name, g in zip(params, grads)}


def _touched(flags: dict[str, bool]) -> set[str]:
    return {name.split(".")[0] for name, on in flags.items() if on}


def test_gradients_reach_the_right_parameters():
    ds = tiny_dataset()
    u, p, n = batch(ds)
    both = AlignRec(ds, {})
    everything = {"user_emb", "item_emb", "mm_trs", "gate"}
    assert _touched(_grads(both, "bpr", u, p, n)) == everything
    assert _touched(_grads(both, "uia", u, p, n)) == everything
    assert _touched(_grads(both, "cca", u, p, n)) == everything  # CCA pulls on both branches
    # L_sim sees only the content branch: the gate, the projection and the gated item IDs
    assert _touched(_grads(both, "sim", u, p, n)) == {"item_emb", "mm_trs", "gate"}

    id_only = AlignRec(ds, {"branches": "id"})
    assert _touched(_grads(id_only, "uia", u, p, n)) == {"user_emb", "item_emb"}
    assert not hasattr(id_only, "mm_trs")

    content = AlignRec(ds, {"branches": "content"})
    assert _touched(_grads(content, "bpr", u, p, n)) == {"mm_trs"}
    assert _touched(_grads(content, "sim", u, p, n)) == {"mm_trs"}


def test_frozen_features_by_default_trainable_as_option():
    ds = tiny_dataset()
    u, p, n = batch(ds)
    frozen = AlignRec(ds, {})
    assert "feat" not in dict(frozen.named_parameters())
    tuned = AlignRec(ds, {"finetune_features": True, "use_ln": True})
    flags = _grads(tuned, "bpr", u, p, n)
    assert flags["feat_table"] and flags["ln.weight"]
    before = tuned.item_graph.to_dense().clone()
    with torch.no_grad():
        tuned.feat_table.add_(1.0)
    assert torch.equal(tuned.item_graph.to_dense(), before)  # the kNN graph stays frozen


def test_warmup_ui_drops_bpr_and_uia_for_ten_epochs():
    ds = tiny_dataset()
    u, p, n = batch(ds)
    model = AlignRec(ds, {"warmup_ui": True})
    model.pre_epoch(0, np.random.default_rng(0))
    assert set(model.loss(u, p, n)) == {"loss", "reg", "cca", "sim"}
    model.pre_epoch(10, np.random.default_rng(0))
    assert {"bpr", "uia"} <= set(model.loss(u, p, n))


def test_bad_settings_raise_config_error():
    ds = tiny_dataset()
    with pytest.raises(ConfigError, match="branches"):
        AlignRec(ds, {"branches": "neither"})
    with pytest.raises(ConfigError, match="cl_loss"):
        AlignRec(ds, {"cl_loss": -1.0})
    no_feat = tiny_dataset(features=())
    from alignrec_lite.errors import DataError

    with pytest.raises(DataError):
        AlignRec(no_feat, {})
    AlignRec(no_feat, {"branches": "id"})  # the ID branch needs no feature


def test_encode_content_for_new_items():
    ds = tiny_dataset(features=("mm",))
    k = 4
    model = AlignRec(ds, {"knn_k": k})
    model.eval()
    new = np.random.default_rng(5).normal(size=(3, ds.features["mm"].shape[1])).astype(np.float32)
    got = model.encode_content(new)
    assert got.shape == (3, 64) and torch.isfinite(got).all()
    # dense reference: the new row holds itself (cos 1, ID embedding unknown = 0) and its k-1 neighbours
    fu = F.normalize(torch.from_numpy(ds.features["mm"]), dim=1)
    cos = F.normalize(torch.from_numpy(new), dim=1) @ fu.T
    w, nbr = torch.topk(cos, k - 1, dim=1)
    raw_deg = torch.stack([torch.topk(fu[i] @ fu.T, k).values.sum() for i in range(ds.n_items)])
    with torch.no_grad():
        x = model._content_input()
    ref = torch.stack(
        [
            sum(w[r, j] / torch.sqrt((1 + w[r].sum()) * raw_deg[nbr[r, j]]) * x[nbr[r, j]] for j in range(k - 1))
            for r in range(3)
        ]
    )
    assert torch.allclose(got, ref, atol=1e-5)
    with pytest.raises(ConfigError):
        model.encode_content(new[:, :3])


# ------------------------------------------------------------------ training sanity
def test_few_epochs_on_toy_beat_random():
    from alignrec_lite.data.toy import load_toy
    from alignrec_lite.train import train

    ds = load_toy("smoke")
    _, rec = train(ds, "alignrec", {"epochs": 8, "learning_rate": 0.01, "batch_size": 256}, progress=False)
    random_recall = 20 / ds.n_items  # expected recall@20 of a random ranking (~0.17)
    assert rec["valid"]["recall@20"] > 1.5 * random_recall
    assert rec["feature_source"] == "image+text"
    assert {"loss_cca", "loss_sim", "loss_uia"} <= set(rec["history"][0])
