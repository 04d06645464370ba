"""Splits (alignrec_lite.data.split): MMRec's per-user split, k-core, the item-disjoint and cold-user splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignrec_lite.data.split import item_disjoint_split, kcore, mmrec_split, user_coldstart_split
from alignrec_lite.errors import ConfigError
from alignrec_lite.graphs import normalized_adjacency
from alignrec_lite.train import BPRSampler


# ---------------------------------------------------------------- MMRec split and k-core
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


# ------------------------------------------------------------------ item-disjoint split (cold items)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_disjoint_split_leaks_no_held_out_item(smoke, seed):
    cs = item_disjoint_split(smoke, 0.25, seed=seed)
    ds = cs.dataset
    cold = set(cs.cold_items.tolist())
    assert len(cold) == round(0.25 * smoke.n_items)
    assert set(cs.warm_items.tolist()) | cold == set(range(smoke.n_items))
    assert not set(cs.warm_items.tolist()) & cold
    # nothing about a held-out item is in train or valid ...
    assert not cold & set(ds.train[:, 1].tolist())
    assert not cold & set(ds.valid[:, 1].tolist())
    assert (ds.item_popularity("train")[cs.cold_items] == 0).all()
    # ... nor in anything the trainer derives from train: the negative sampler and the graph
    assert not cold & set(BPRSampler(ds, np.random.default_rng(0)).candidates.tolist())
    adj = normalized_adjacency(ds.interaction_matrix("train"))
    rows = smoke.n_users + cs.cold_items
    assert adj[rows].nnz == 0
    # the test set is exactly the cold items' interactions by users that still have training rows
    assert set(ds.test[:, 1].tolist()) <= cold
    pooled = np.concatenate([smoke.train, smoke.valid, smoke.test])
    has_train = np.zeros(smoke.n_users, bool)
    has_train[ds.train[:, 0]] = True
    expected = {(u, i) for u, i in pooled.tolist() if i in cold and has_train[u]}
    assert {tuple(p) for p in ds.test.tolist()} == expected
    # warm interactions keep their split
    warm_train = {tuple(p) for p in smoke.train.tolist() if p[1] not in cold}
    assert {tuple(p) for p in ds.train.tolist()} == warm_train
    assert cs.original is smoke and ds.n_items == smoke.n_items


def test_item_disjoint_split_is_seeded_and_checks_share(smoke):
    a = item_disjoint_split(smoke, 0.2, seed=3).cold_items
    b = item_disjoint_split(smoke, 0.2, seed=3).cold_items
    assert np.array_equal(a, b)
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError):
            item_disjoint_split(smoke, share)


def test_both_splits_share_one_hold_out_draw(smoke):
    """The two splits draw with the same code: refusals name what is held out, and the seed is the draw's."""
    with pytest.raises(ConfigError, match="eligible items"):
        item_disjoint_split(smoke, 0.001)
    with pytest.raises(ConfigError, match="eligible users"):
        user_coldstart_split(smoke, 0.001)
    pooled = np.concatenate([smoke.train, smoke.valid, smoke.test])
    deg = np.bincount(pooled[:, 0], minlength=smoke.n_users)
    eligible = np.flatnonzero(deg > 5)
    n = int(round(0.2 * len(eligible)))
    expected = np.sort(np.random.default_rng(4).choice(eligible, size=n, replace=False))
    assert np.array_equal(user_coldstart_split(smoke, 0.2, seed=4, max_given=5).cold_users, expected)


# ------------------------------------------------------------------ cold-user split
def test_user_coldstart_split(smoke):
    us = user_coldstart_split(smoke, 0.2, seed=0, max_given=5)
    ds = us.dataset
    cold = set(us.cold_users.tolist())
    for split in (ds.train, ds.valid, ds.test):
        assert not cold & set(split[:, 0].tolist())
    pooled = np.concatenate([smoke.train, smoke.valid, smoke.test])
    for u, order in zip(us.cold_users, us.orders):
        assert sorted(order.tolist()) == sorted(pooled[pooled[:, 0] == u, 1].tolist())
        assert len(order) > 5
    assert all(len(g) == 3 and np.array_equal(g, o[:3]) for g, o in zip(us.given(3), us.orders))
    t = us.targets()
    assert t.shape == (len(us.cold_users), smoke.n_items)
    assert t.sum() == sum(len(o) - 5 for o in us.orders)
    # targets never include a revealed item
    for r, o in enumerate(us.orders):
        assert not set(o[:5].tolist()) & set(t[r].indices.tolist())
    with pytest.raises(ConfigError):
        us.given(6)
    warm_train = {tuple(p) for p in smoke.train.tolist() if p[0] not in cold}
    assert {tuple(p) for p in ds.train.tolist()} == warm_train
