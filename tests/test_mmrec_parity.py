"""The baselines against hand computations of MMRec's own formulas (issue 14, item 1).

Each test writes MMRec's definition out in float64 on small tensors and compares the
kit with it: ``EmbLoss`` (value, gradient, last-batch divisor) in BPR, LightGCN and
VBPR; the constant learning rate of the baselines and AlignRec's 0.96 decay after 100
epochs of the real trainer; FREEDOM's trainable feature tables under a frozen graph;
VBPR's raw ``cat(text, image)`` input and Xavier-normal projection; float64 metric
means before rounding; the feature mode in every run record.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import FixedModel, batch, tiny_dataset

from alignrec_lite.config import resolve_config
from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.evaluate import evaluate
from alignrec_lite.losses import emb_loss, l2_reg_loss
from alignrec_lite.models.bpr import BPR
from alignrec_lite.models.freedom import FREEDOM
from alignrec_lite.models.lightgcn import LightGCN
from alignrec_lite.models.vbpr import VBPR, vbpr_input


def mmrec_emb_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec ``common/loss.py`` ``EmbLoss`` written out: sum_k sqrt(sum E_k²), / rows of the last."""
    total = torch.zeros((), dtype=torch.float64)
    for e in embeddings:
        total = total + torch.sqrt((e.double() ** 2).sum())
    return total / embeddings[-1].shape[0]


# ------------------------------------------------------------------ EmbLoss
def test_emb_loss_value_and_gradient_match_mmrec_by_hand():
    g = torch.Generator().manual_seed(0)
    u, p, n = (torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    got = emb_loss(u, p, n)
    by_hand = sum(math.sqrt(float((e.detach() ** 2).sum())) for e in (u, p, n)) / 5
    assert float(got.detach()) == pytest.approx(by_hand, rel=1e-12)
    got.backward()
    # d/dE of ||E||_F / B is E / (||E||_F B)
    for e in (u, p, n):
        assert torch.allclose(e.grad, e.detach() / (e.detach().norm() * 5), rtol=1e-12)
    # a known value: ||ones(4, 4)||_F = 4 for each matrix, / 4 rows
    assert float(emb_loss(torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4))) == pytest.approx(3.0)


def test_emb_loss_is_not_the_squared_form_and_scales_linearly():
    e = torch.full((2048, 64), 0.125)
    # unsquared: ||E||_F / B = sqrt(2048 * 64) * 0.125 / 2048; squared (AlignRec): 0.5 * 2048 * 64 * 0.125² / 2048
    assert float(emb_loss(e)) == pytest.approx(math.sqrt(2048 * 64) * 0.125 / 2048, rel=1e-6)
    assert float(l2_reg_loss(e)) == pytest.approx(0.5 * 64 * 0.125**2, rel=1e-6)
    assert float(emb_loss(8 * e)) == pytest.approx(8 * float(emb_loss(e)), rel=1e-6)  # degree 1, not 2


def test_emb_loss_divides_by_the_actual_last_batch_size():
    small = torch.ones(3, 2)
    assert float(emb_loss(small)) == pytest.approx(math.sqrt(6) / 3)


# ------------------------------------------------------------------ the baselines' reg terms
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


# ------------------------------------------------------------------ VBPR input and init
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


# ------------------------------------------------------------------ FREEDOM feature tables
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


# ------------------------------------------------------------------ learning-rate schedule
def test_baselines_keep_a_constant_rate_alignrec_decays():
    for name in ("bpr", "lightgcn", "vbpr", "freedom"):
        assert resolve_config(name)["lr_decay"] == 1.0, name
    assert resolve_config("alignrec")["lr_decay"] == 0.96
    assert resolve_config("bpr", {"lr_decay": "0.96"})["lr_decay"] == 0.96  # still settable


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


# ------------------------------------------------------------------ metrics in float64
def _recall_dataset(ht: list[tuple[int, int]]) -> tuple[RecDataset, np.ndarray]:
    """User ``u`` has ``t`` test items 0..t-1 and a scorer that ranks ``h`` of them in its top 20."""
    n_items = 60
    n_users = len(ht)
    train = [(u, 59) for u in range(n_users)]
    valid = [(u, 58) for u in range(n_users)]
    test = [(u, i) for u, (_, t) in enumerate(ht) for i in range(t)]
    scores = np.zeros((n_users, n_items), dtype=np.float32)
    for u, (h, t) in enumerate(ht):
        scores[u, :h] = 10.0 - np.arange(h)  # hits on top
        scores[u, h:t] = -10.0  # the missed test items at the bottom
    arr = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return RecDataset("borderline", n_users, n_items, arr(train), arr(valid), arr(test)), scores


def test_metric_means_are_float64_before_rounding():
    # 16 users with recall 1, one with 1/2, one with 1/20, 182 with 0: the mean is 0.08275 exactly.
    ht = [(1, 1)] * 16 + [(1, 2), (1, 20)] + [(0, 1)] * 182
    ds, scores = _recall_dataset(ht)
    model = FixedModel(ds, np.eye(ds.n_users, dtype=np.float32), scores.T)  # user_e @ item_e.T = scores
    per_user = np.array([h / t for h, t in ht])  # MMRec: NumPy float64 per user, mean, round(., 4)
    mmrec = round(float(np.mean(per_user)), 4)
    float32_mean = float(torch.from_numpy(per_user.astype(np.float32)).mean())
    assert round(float32_mean, 4) == 0.0827 and mmrec == 0.0828  # the borderline case of issue 14
    got = evaluate(model.full_sort_scores, ds, "test", batch_users=64)
    assert got["recall@20"] == mmrec
    full = evaluate(model.full_sort_scores, ds, "test", round_to=None, return_per_user=True)
    assert full["per_user"]["recall@20"].dtype == np.float64
    assert full["recall@20"] == pytest.approx(0.08275, abs=1e-15)


# ------------------------------------------------------------------ the run record says the feature mode
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


def test_cold_start_reads_each_models_own_content_input():
    """Cold-start and new-item scoring use the rows the content path was trained on: VBPR's raw
    [text ; image], the other models' normalised concatenation."""
    from alignrec_lite.models.base import Recommender

    ds = tiny_dataset()
    vbpr = VBPR(ds, {"embedding_size": 8})
    raw = np.concatenate([ds.features["text"], ds.features["image"]], axis=1)
    assert vbpr.content_layout == "raw-text-first" and np.array_equal(vbpr.content_features(ds), raw)
    assert Recommender.content_layout == "normalised"
    freedom = FREEDOM(ds, {"embedding_size": 8})
    assert np.array_equal(freedom.content_features(ds), ds.feature("auto")[0])
