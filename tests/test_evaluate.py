"""The evaluator against a brute-force, loop-by-loop reference of ALIGNREC_SPEC §4."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import FixedModel
from memory_stages import check_stage

from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.evaluate import evaluate, metrics_of_lists, topk_stable

KS = (5, 10, 20, 50)


def reference_metrics(scores: np.ndarray, ds: RecDataset, split: str, mask_valid: bool = False) -> dict:
    """Plain-Python MMRec metrics: stable ranking (ties -> lower itemID), train items masked."""
    masked = {(u, i) for u, i in ds.train}
    if split == "test" and mask_valid:
        masked |= {(u, i) for u, i in ds.valid}
    truth: dict[int, set] = {}
    for u, i in ds.split(split):
        truth.setdefault(int(u), set()).add(int(i))
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg", "precision", "map", "hit") for k in KS}
    for u, t in truth.items():
        cand = [(-scores[u, i], i) for i in range(ds.n_items) if (u, i) not in masked]
        ranked = [i for _, i in sorted(cand)]
        for k in KS:
            top = ranked[:k]
            rel = [1 if i in t else 0 for i in top] + [0] * (k - len(top))
            hits = sum(rel)
            sums[f"recall@{k}"] += hits / len(t)
            sums[f"precision@{k}"] += hits / k
            sums[f"hit@{k}"] += 1.0 if hits else 0.0
            dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(t), k)))
            sums[f"ndcg@{k}"] += dcg / idcg
            ap, run = 0.0, 0
            for j, r in enumerate(rel):
                if r:
                    run += 1
                    ap += run / (j + 1)
            sums[f"map@{k}"] += ap / min(len(t), k)
    return {k: v / len(truth) for k, v in sums.items()}


def random_dataset(rng: np.random.Generator, n_users: int = 40, n_items: int = 70) -> RecDataset:
    rows = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        n = int(rng.integers(3, 25))  # some users have fewer test items than K, some more
        items = rng.choice(n_items, size=n, replace=False)
        n_test = int(rng.integers(1, min(8, n - 1)))  # leaves >= 1 valid and >= 1 train item
        rows["test"] += [(u, i) for i in items[:n_test]]
        rows["valid"] += [(u, i) for i in items[n_test : n_test + 1]]
        rows["train"] += [(u, i) for i in items[n_test + 1 :]]
    arr = {k: np.array(v, dtype=np.int64).reshape(-1, 2) for k, v in rows.items()}
    return RecDataset("rand", n_users, n_items, arr["train"], arr["valid"], arr["test"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("split,mask_valid", [("valid", False), ("test", False), ("test", True)])
def test_matches_bruteforce_reference(seed, ties, split, mask_valid):
    rng = np.random.default_rng(seed)
    ds = random_dataset(rng)
    scores = rng.normal(size=(ds.n_users, ds.n_items)).astype(np.float32)
    if ties:  # coarse scores create many ties, including at the top-K boundary
        scores = np.round(scores * 2) / 2
    st = torch.from_numpy(scores)
    got = evaluate(lambda u: st[u], ds, split, mask_valid=mask_valid, round_to=None, batch_users=7)
    ref = reference_metrics(scores, ds, split, mask_valid)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert got["n_users"] == len(np.unique(ds.split(split)[:, 0]))


def test_rounding_and_chunking_do_not_change_results():
    rng = np.random.default_rng(5)
    ds = random_dataset(rng, 60, 90)
    st = torch.from_numpy(rng.normal(size=(ds.n_users, ds.n_items)).astype(np.float32))
    a = evaluate(lambda u: st[u], ds, "test", batch_users=4096)
    b = evaluate(lambda u: st[u], ds, "test", batch_users=3)
    assert {k: v for k, v in a.items() if "@" in k} == {k: v for k, v in b.items() if "@" in k}
    assert all(round(v, 4) == v for k, v in a.items() if "@" in k)


def test_perfect_scorer_gets_full_recall_and_training_items_are_masked():
    rng = np.random.default_rng(3)
    ds = random_dataset(rng)
    scores = np.zeros((ds.n_users, ds.n_items), dtype=np.float32)
    scores[ds.train[:, 0], ds.train[:, 1]] = 100.0  # would win if training items were not masked
    scores[ds.test[:, 0], ds.test[:, 1]] = 10.0
    st = torch.from_numpy(scores)
    got = evaluate(lambda u: st[u], ds, "test", round_to=None)
    assert got["recall@50"] == pytest.approx(1.0)
    assert got["ndcg@50"] == pytest.approx(1.0)
    assert got["map@50"] == pytest.approx(1.0)


def test_validation_items_unmasked_at_test_by_default():
    # one user, the valid item scores highest, the test item second
    ds = RecDataset("one", 1, 5, np.array([[0, 0]]), np.array([[0, 1]]), np.array([[0, 2]]))
    st = torch.tensor([[0.0, 9.0, 8.0, 1.0, 1.0]])
    unmasked = evaluate(lambda u: st[u], ds, "test", ks=(1,), round_to=None)
    masked = evaluate(lambda u: st[u], ds, "test", ks=(1,), mask_valid=True, round_to=None)
    assert unmasked["recall@1"] == 0.0  # MMRec: the valid item takes the slot
    assert masked["recall@1"] == 1.0


def test_topk_stable_breaks_ties_towards_lower_index():
    s = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert topk_stable(s, 2).tolist() == [[1, 2], [0, 1]]


def test_metrics_of_lists_matches_the_evaluator_and_pads_short_lists():
    rng = np.random.default_rng(0)
    n_users, n_items = 6, 9
    train = np.array([[u, u] for u in range(n_users)])
    test = np.array([[u, i] for u in range(n_users) for i in rng.choice(np.arange(n_users, n_items), 2, replace=False)])
    ds = RecDataset("lists", n_users, n_items, train, np.zeros((0, 2), dtype=np.int64), test)
    scores = torch.from_numpy(rng.random((n_users, n_items)).astype(np.float32))
    ref = evaluate(lambda u: scores[u], ds, "test", ks=(2, 3), round_to=None)
    masked = scores.clone()
    masked[torch.arange(n_users), torch.arange(n_users)] = -torch.inf  # the training items, as evaluate masks them
    lists = topk_stable(masked, 3).numpy()
    got = metrics_of_lists(lists, np.arange(n_users), ds.interaction_matrix("test"), (2, 3))
    assert list(got) == ["recall@2", "ndcg@2", "recall@3", "ndcg@3"]
    for key, value in got.items():
        assert value == pytest.approx(ref[key], abs=1e-12)
    short = metrics_of_lists(lists[:, :2], np.arange(n_users), ds.interaction_matrix("test"), (3,))  # misses padded
    assert short["recall@3"] == pytest.approx(ref["recall@2"], abs=1e-12)


# ------------------------------------------------------------------ metric means in float64 (as MMRec)
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


# ---------------------------------------------------------------- bounded memory (tests/memory_stages.py)
def test_evaluate_memory_is_bounded(tmp_path):
    check_stage("evaluate", "ci", tmp_path)


@pytest.mark.slow
def test_evaluate_memory_is_bounded_full_size(tmp_path):
    check_stage("evaluate", "full", tmp_path)
