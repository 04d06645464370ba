"""Cold-start protocols (alignrec_lite.coldstart): scoring cold items, cold-user curves, fold-in.

The splits live in :mod:`alignrec_lite.data.split` (tests/test_split.py), the content baselines in
:mod:`alignrec_lite.scorers` (tests/test_scorers.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FixedModel

from alignrec_lite import coldstart
from alignrec_lite.data.split import item_disjoint_split, user_coldstart_split
from alignrec_lite.errors import ConfigError


# ------------------------------------------------------------------ scoring the cold items
def test_evaluate_cold_items_oracle_and_content_path(smoke):
    cs = item_disjoint_split(smoke, 0.2, seed=0)
    truth = torch.from_numpy(cs.dataset.interaction_matrix("test").toarray())
    # an oracle that also scores every warm item above the cold ones: restriction must remove them
    oracle = lambda u: truth[u] + 10.0 * (torch.from_numpy(cs.dataset.item_popularity() > 0).float())  # noqa: E731
    zeros = lambda u: torch.zeros(len(u), smoke.n_items)  # noqa: E731
    df = coldstart.evaluate_cold_items({"oracle": oracle, "zeros": zeros}, cs, ks=(20,)).set_index("method")
    n_users = len(np.unique(cs.dataset.test[:, 0]))
    assert df.loc["oracle", "users"] == n_users
    # recall@20 of an oracle is 1 for users with <= 20 targets
    per_user = np.bincount(cs.dataset.test[:, 0])
    assert (per_user <= 20).all() and df.loc["oracle", "recall@20"] == pytest.approx(1.0)
    assert df.loc["oracle", "ndcg@20"] == pytest.approx(1.0)
    assert df.loc["zeros", "recall@20"] < 1.0
    # content path: item vectors come from features through W, nothing from the item IDs
    feat = smoke.feature("image")[0]
    rng = np.random.default_rng(0)
    w = rng.normal(size=(feat.shape[1], 4))
    model = FixedModel(cs.dataset, rng.normal(size=(smoke.n_users, 4)), np.zeros((smoke.n_items, 4)), w)
    fn = coldstart.content_path_scores(model, feat, cs.cold_items)
    s = fn(torch.tensor([0, 5]))
    expected = model.u[[0, 5]].detach() @ torch.from_numpy((feat[cs.cold_items] @ w).astype(np.float32)).T
    torch.testing.assert_close(s[:, torch.from_numpy(cs.cold_items)], expected)
    assert torch.isinf(s[:, torch.from_numpy(cs.warm_items)]).all()
    with pytest.raises(ConfigError):
        coldstart.content_path_scores(
            FixedModel(cs.dataset, np.zeros((smoke.n_users, 2)), np.zeros((smoke.n_items, 2))), feat, cs.cold_items
        )


# ------------------------------------------------------------------ user cold start
def test_cold_user_curve_by_hand(smoke):
    us = user_coldstart_split(smoke, 0.1, seed=1, max_given=2)
    truth = torch.from_numpy(us.targets().toarray())

    def oracle(given):
        # knows the targets once at least one item is revealed
        s = torch.zeros(len(given), smoke.n_items)
        has = torch.tensor([len(g) > 0 for g in given])
        s[has] = truth[: len(given)][has]
        return s

    pop = coldstart.popularity_fold_in(us.dataset)
    df = coldstart.cold_user_curve(
        {"oracle": oracle, "pop": pop}, us, given_counts=(0, 1, 2), ks=(20,), batch_users=10_000
    )
    o = df[df.method == "oracle"].set_index("given")
    n_t = np.diff(us.targets().indptr)
    assert o.loc[1, "recall@20"] == pytest.approx(np.mean(np.minimum(n_t, 20) / n_t))  # K caps the hits
    assert o.loc[2, "ndcg@20"] == pytest.approx(1.0)
    assert o.loc[0, "recall@20"] < 1.0
    # popularity by hand for g = 0: top-20 of the training counts (ties -> lower ID)
    cnt = us.dataset.item_popularity("train")
    top = np.lexsort((np.arange(len(cnt)), -cnt))[:20]
    t = us.targets()
    rec = np.mean([len(set(top) & set(t[r].indices)) / t[r].nnz for r in range(t.shape[0])])
    p = df[df.method == "pop"].set_index("given")
    assert p.loc[0, "recall@20"] == pytest.approx(rec)
    assert (df["users"] == len(us.cold_users)).all()


def test_model_fold_in_masks_given_and_falls_back_to_popularity(smoke):
    us = user_coldstart_split(smoke, 0.1, seed=0)
    rng = np.random.default_rng(0)
    model = FixedModel(us.dataset, rng.normal(size=(smoke.n_users, 8)), rng.normal(size=(smoke.n_items, 8)))
    for method in ("mean", "gradient"):
        fn = coldstart.model_fold_in(model, us.dataset, method, steps=5)
        given = [np.array([1, 2]), np.zeros(0, np.int64)]
        s = fn(given)
        assert torch.isinf(s[0, [1, 2]]).all()
        assert torch.equal(s[1], torch.from_numpy(us.dataset.item_popularity().astype(np.float32)))
    knn = coldstart.knn_fold_in(smoke.feature("image")[0], us.dataset)
    s = knn([np.array([4])])
    assert torch.isinf(s[0, 4]) and s.shape == (1, smoke.n_items)


def test_alignrec_content_path_uses_no_id_of_cold_items(smoke):
    from alignrec_lite.models import get_model_class

    cs = item_disjoint_split(smoke, 0.2, seed=0)
    torch.manual_seed(0)
    model = get_model_class("alignrec")(cs.dataset, {"embedding_size": 8})
    feat = cs.dataset.feature(model.feature_source)[0]
    users = torch.arange(10)
    a = coldstart.content_path_scores(model, feat, cs.cold_items)(users)
    with torch.no_grad():  # whatever the (untrained) ID vectors of the cold items hold ...
        model.item_emb.weight[torch.from_numpy(cs.cold_items)] = torch.randn(len(cs.cold_items), 8)
    b = coldstart.content_path_scores(model, feat, cs.cold_items)(users)
    cols = torch.from_numpy(cs.cold_items)
    torch.testing.assert_close(a[:, cols], b[:, cols])  # ... the content-path scores do not change
    assert torch.isfinite(a[:, cols]).all() and a[:, cols].std() > 0
    # forget_items restores the model afterwards
    assert model.item_emb.weight[cols].abs().sum() > 0
