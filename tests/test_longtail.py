"""Long-tail buckets and beyond-accuracy metrics against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from alignrec_lite import longtail, scorers
from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.errors import ConfigError
from alignrec_lite.evaluate import evaluate


def _csr(rows, cols, shape):
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


# ------------------------------------------------------------------ buckets
def test_popularity_buckets_by_hand():
    pop = np.array([0, 1, 1, 2, 5, 9, 30, 3, 4, 2])
    # sorted: 0 1 1 2 2 3 4 5 9 30 -> q0.5 = 2.5, q0.8 = 5 + 0.2 * (9 - 5) = 5.8
    b = longtail.popularity_buckets(pop)
    assert b.labels == ["tail", "mid", "head"]
    np.testing.assert_allclose(b.thresholds, [2.5, 5.8])
    assert b.item_bucket.tolist() == [0, 0, 0, 0, 1, 2, 2, 1, 1, 0]
    assert b.items("head").tolist() == [5, 6]
    t = b.table()
    assert t["items"].tolist() == [5, 3, 2]
    assert t["min_pop"].tolist() == [0, 3, 9] and t["max_pop"].tolist() == [2, 5, 30]
    assert t["share_of_train"].sum() == pytest.approx(1.0)
    assert t.loc[2, "share_of_train"] == pytest.approx(39 / 57)  # 9 + 30 of 57


def test_popularity_buckets_finer_and_ties_stay_together():
    pop = np.array([1, 1, 1, 1, 2, 3, 4, 5])
    b = longtail.popularity_buckets(pop, n_buckets=4)
    assert b.labels == ["q1", "q2", "q3", "q4"]
    # q.25 = 1, q.5 = 1.5, q.75 = 3.25: all the 1s share the first bucket
    assert b.item_bucket.tolist() == [0, 0, 0, 0, 2, 2, 3, 3]
    assert (b.item_bucket[:4] == 0).all()


@pytest.mark.parametrize(
    "kw",
    [
        dict(quantiles=(0.8, 0.5)),
        dict(quantiles=(0.0, 0.5)),
        dict(quantiles=(0.5,), labels=("a",)),
        dict(quantiles=(0.5,), n_buckets=3),
        dict(n_buckets=0),
    ],
)
def test_popularity_buckets_rejects_bad_settings(kw):
    with pytest.raises(ConfigError):
        longtail.popularity_buckets(np.arange(10), **kw)


def test_long_tail_mask_is_everything_but_the_head():
    pop = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 100])
    # q0.8 = 7.2 -> head = {8, 100}
    assert longtail.long_tail_mask(pop).tolist() == [True] * 8 + [False, False]
    with pytest.raises(ConfigError):
        longtail.long_tail_mask(pop, head_share=1.5)


# ------------------------------------------------------------------ beyond-accuracy
def test_gini_by_hand():
    assert longtail.gini(np.array([1, 1, 1, 1])) == 0.0
    assert longtail.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # (2*4-5)*4 / (4*4)
    # [1, 2, 3]: sum (2i-n-1) x = -2*1 + 0*2 + 2*3 = 4; / (3 * 6) = 2/9
    assert longtail.gini(np.array([3, 1, 2])) == pytest.approx(2 / 9)
    assert longtail.gini(np.zeros(5)) == 0.0


def test_beyond_accuracy_by_hand():
    # 5 items, popularity; tail = items 0, 1, 2 (given explicitly); 8 training users
    pop = np.array([1, 2, 0, 4, 8])
    tail = np.array([True, True, True, False, False])
    lists = np.array([[4, 3], [4, 0], [2, -1]])  # last user: only one item could be ranked
    out = longtail.beyond_accuracy(lists, pop, long_tail=tail, n_users=8, ks=(2,))
    # exposure: item0 1, item2 1, item3 1, item4 2 -> 4 of 5 items covered
    assert out["coverage@2"] == pytest.approx(4 / 5)
    # exposure [1, 0, 1, 1, 2] sorted [0,1,1,1,2]: (-4*0 -2*1 + 0*1 + 2*1 + 4*2) / (5 * 5) = 8/25
    assert out["gini@2"] == pytest.approx(8 / 25)
    # long-tail share per list: 0/2, 1/2, 1/1 -> mean 0.5
    assert out["aplt@2"] == pytest.approx(0.5)
    # self-information -log2(max(pop,1)/8): item4 0, item3 1, item0 3, item2 3 (pop 0 -> 1)
    assert out["novelty@2"] == pytest.approx((0 + 1 + 0 + 3 + 3) / 5)
    assert out["avg_pop@2"] == pytest.approx((8 + 4 + 8 + 1 + 0) / 5)
    k1 = longtail.beyond_accuracy(lists, pop, long_tail=tail, n_users=8, ks=(1,))
    assert k1["coverage@1"] == pytest.approx(2 / 5) and k1["aplt@1"] == pytest.approx(1 / 3)


def test_exposure_ignores_empty_slots():
    assert longtail.exposure(np.array([[0, -1], [0, 2]]), 4).tolist() == [2, 0, 1, 0]


# ------------------------------------------------------------------ per-bucket metrics
def test_bucket_metrics_by_hand():
    # items 0,1 tail; 2,3 head
    b = longtail.PopularityBuckets(
        labels=["tail", "head"],
        item_bucket=np.array([0, 0, 1, 1]),
        thresholds=np.array([1.0]),
        popularity=np.array([1, 1, 5, 5]),
    )
    truth = _csr([0, 0, 0, 1], [0, 1, 2, 3], (2, 4))  # user0: {0,1,2}; user1: {3}
    lists = np.array([[2, 1, 3], [0, 1, 2]])
    df = longtail.bucket_metrics(lists, np.array([0, 1]), truth, b, ks=(2, 3)).set_index("bucket")
    # tail: only user0 (T = {0,1}); top-2 = [2, 1] -> hit at rank 2; top-3 adds 3 (no)
    assert df.loc["tail", "users"] == 1 and df.loc["tail", "interactions"] == 2 and df.loc["tail", "items"] == 2
    assert df.loc["tail", "recall@2"] == pytest.approx(0.5)
    idcg2 = 1 + 1 / math.log2(3)
    assert df.loc["tail", "ndcg@2"] == pytest.approx((1 / math.log2(3)) / idcg2)
    # head: user0 (T={2}) hit at rank 1 -> recall 1, ndcg 1; user1 (T={3}) top-3 = [0,1,2] -> 0
    assert df.loc["head", "users"] == 2
    assert df.loc["head", "recall@3"] == pytest.approx(0.5)
    assert df.loc["head", "ndcg@3"] == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        longtail.bucket_metrics(lists, np.array([0, 1]), truth, b, ks=(5,))


def test_bucket_metrics_empty_bucket_is_nan():
    b = longtail.PopularityBuckets(
        labels=["tail", "head"], item_bucket=np.array([0, 1]), thresholds=np.array([1.0]), popularity=np.array([0, 3])
    )
    truth = _csr([0], [1], (1, 2))
    df = longtail.bucket_metrics(np.array([[1, 0]]), np.array([0]), truth, b, ks=(1,))
    assert df.loc[0, "users"] == 0 and np.isnan(df.loc[0, "recall@1"])
    assert df.loc[1, "recall@1"] == 1.0


def _tiny_dataset() -> RecDataset:
    train = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 3]])
    valid = np.array([[0, 2], [1, 3], [2, 4]])
    test = np.array([[0, 3], [0, 4], [1, 0], [2, 1]])
    return RecDataset("tiny", 3, 5, train, valid, test)


def test_topk_lists_masks_training_items_and_marks_empty_slots():
    ds = _tiny_dataset()
    fn = lambda u: torch.arange(5, dtype=torch.float32).flip(0).expand(len(u), -1).clone()  # noqa: E731
    users, lists = longtail.topk_lists(fn, ds, k=5)
    assert users.tolist() == [0, 1, 2]
    assert lists[0].tolist() == [2, 3, 4, -1, -1]  # items 0, 1 are user 0's training items
    assert lists[2].tolist() == [1, 2, 4, -1, -1]


def test_long_tail_report_matches_the_evaluator():
    ds = _tiny_dataset()
    g = torch.Generator().manual_seed(0)
    table = torch.rand(3, 5, generator=g)
    fns = {"rand": lambda u: table[u], "pop": scorers.popularity_scores(ds)}
    per_bucket, overall = longtail.long_tail_report(
        fns, ds, k=2, buckets=longtail.popularity_buckets(ds.item_popularity(), (0.5,))
    )
    ref = evaluate(lambda u: table[u], ds, "test", ks=(2,), round_to=None)
    row = overall.set_index("model").loc["rand"]
    assert row["recall@2"] == pytest.approx(ref["recall@2"]) and row["ndcg@2"] == pytest.approx(ref["ndcg@2"])
    assert set(per_bucket["model"]) == {"rand", "pop"}
    assert {"coverage@2", "gini@2", "aplt@2", "novelty@2"} <= set(overall.columns)
    # popularity lists (training items masked, ties -> lower ID): [2, 3], [0, 3], [1, 2];
    # long tail = items 2, 3, 4 (popularity <= the median 1) -> APLT = (1 + 1/2 + 1/2) / 3
    assert overall.set_index("model").loc["pop", "aplt@2"] == pytest.approx(2 / 3)
    assert overall.set_index("model").loc["pop", "coverage@2"] == pytest.approx(4 / 5)
    assert per_bucket.groupby("model")["interactions"].sum().tolist() == [4, 4]


def test_long_tail_report_with_k_beyond_the_catalogue():
    """K larger than the item count ranks the whole catalogue (recall as at K = n_items), it does not refuse."""
    ds = _tiny_dataset()
    pop = {"pop": scorers.popularity_scores(ds)}
    buckets = longtail.popularity_buckets(ds.item_popularity(), (0.5,))
    _, at_n = longtail.long_tail_report(pop, ds, k=ds.n_items, buckets=buckets)
    per_bucket, beyond = longtail.long_tail_report(pop, ds, k=ds.n_items + 3, buckets=buckets)
    assert beyond[f"recall@{ds.n_items + 3}"].iloc[0] == pytest.approx(at_n[f"recall@{ds.n_items}"].iloc[0])
    assert beyond[f"recall@{ds.n_items + 3}"].iloc[0] == pytest.approx(1.0)
    lists = np.zeros((2, 2), dtype=np.int64)
    with pytest.raises(ConfigError, match="rank deeper"):  # short lists of a bigger catalogue still refuse
        longtail.bucket_metrics(lists, np.arange(2), ds.interaction_matrix("test"), buckets, ks=(3,))


def test_mean_std():
    df = pd.DataFrame({"model": ["a", "a", "b"], "r": [0.1, 0.3, 0.5]})
    out = longtail.mean_std(df, ["model"], ["r"])
    assert out["r_mean"].tolist() == pytest.approx([0.2, 0.5])
    assert out["r_std"].tolist() == pytest.approx([math.sqrt(0.02), 0.0])
    assert out["n"].tolist() == [2, 1]
    fmt = longtail.mean_std(df, ["model"], ["r"], fmt="{:.2f}")
    assert fmt["r"].tolist() == ["0.20 ± 0.14", "0.50 ± 0.00"]


def test_welch_t_by_hand_and_against_scipy():
    # a = 1, 2, 3 (mean 2, s^2 1); b = 4, 6, 8 (mean 6, s^2 4): se^2 = 1/3 + 4/3 = 5/3
    w = longtail.welch_t([1.0, 2.0, 3.0], [4.0, 6.0, 8.0])
    assert w["diff"] == -4.0 and w["t"] == pytest.approx(-4 / math.sqrt(5 / 3))
    assert w["df"] == pytest.approx((5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2))  # = 50 / 17
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.30, 0.01, 5), rng.normal(0.29, 0.03, 4)
    ref = ttest_ind(a, b, equal_var=False)
    got = longtail.welch_t(a, b)
    assert got["t"] == pytest.approx(ref.statistic) and got["p"] == pytest.approx(ref.pvalue)
    assert longtail.welch_t([0.2, 0.2], [0.1, 0.1]) == {"diff": pytest.approx(0.1), "t": math.inf, "df": 2.0, "p": 0.0}
    assert longtail.welch_t([0.2, 0.2], [0.2, 0.2])["p"] == 1.0
    with pytest.raises(ValueError, match="at least two runs"):
        longtail.welch_t([0.2], [0.1, 0.3])


def test_as_table_and_mmrec_published():
    t = longtail.as_table([{"model": "a", "x": 1.0}, {"model": "b", "x": 2.0}], index="model")
    assert t.loc["b", "x"] == 2.0
    baby = longtail.mmrec_published("baby")
    assert baby.loc["LightGCN", "recall@20"] == 0.0754 and baby.loc["FREEDOM", "ndcg@20"] == 0.0424
    assert list(baby.index) == ["BPR", "LightGCN", "VBPR", "FREEDOM"]
    with pytest.raises(ConfigError):
        longtail.mmrec_published("clothing")
    rows = [{"m": "a", "v": 1.0}, {"m": "a", "v": 3.0}]
    assert longtail.mean_std(rows, ["m"], ["v"])["v_mean"].tolist() == [2.0]
