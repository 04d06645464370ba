"""Training-free scorers against hand-computed examples: popularity, zero-shot, content kNN, random."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from alignrec_lite import scorers
from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.errors import ConfigError

FEAT = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]], dtype=np.float32)
RAW = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [-1.0, 0.3]], dtype=np.float32)


def _cos(a: int, b: int, f: np.ndarray = FEAT) -> float:
    return float(f[a] @ f[b] / np.linalg.norm(f[a]) / np.linalg.norm(f[b]))


def _tiny() -> RecDataset:
    train = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [2, 0]])
    test = np.array([[0, 2], [1, 3], [2, 1]])
    return RecDataset("tiny", 3, 4, train, np.zeros((0, 2), dtype=np.int64), test)


# ------------------------------------------------------------------ popularity, random, restriction
def test_popularity_scores_rank_by_training_count():
    s = scorers.popularity_scores(_tiny())(torch.tensor([0, 2]))
    assert s.shape == (2, 4)
    assert s[0].tolist() == [2.0, 1.0, 1.0, 1.0] and torch.equal(s[0], s[1])
    s[0, 0] = -1.0  # a fresh tensor per call: writing into it changes nothing else
    assert scorers.popularity_scores(_tiny())(torch.tensor([0]))[0, 0] == 2.0


def test_random_scores_are_fixed_per_user_and_seed():
    r = scorers.random_scores(7, seed=1)
    assert torch.equal(r(torch.tensor([3, 4]))[0], r(torch.tensor([3]))[0])
    assert not torch.equal(r(torch.tensor([3]))[0], r(torch.tensor([4]))[0])
    assert not torch.equal(r(torch.tensor([3]))[0], scorers.random_scores(7, seed=2)(torch.tensor([3]))[0])


def test_restrict_candidates():
    fn = scorers.restrict_candidates(lambda u: torch.ones(len(u), 4), np.array([1, 3]), 4)
    s = fn(torch.tensor([0, 1]))
    assert torch.isinf(s[:, [0, 2]]).all() and (s[:, [1, 3]] == 1).all()


# ------------------------------------------------------------------ zero-shot
def test_zero_shot_scores_by_hand():
    unit = RAW / np.linalg.norm(RAW, axis=1, keepdims=True)
    scores = scorers.zero_shot_scores(_tiny(), RAW)(torch.tensor([0, 2])).numpy()
    np.testing.assert_allclose(scores[0], unit @ ((unit[0] + unit[1]) / 2), atol=1e-6)
    np.testing.assert_allclose(scores[1], unit @ ((unit[3] + unit[0]) / 2), atol=1e-6)


# ------------------------------------------------------------------ content kNN
def test_knn_similarity_cosine_by_hand():
    s = scorers.knn_similarity(FEAT, k=1, rows=np.array([1, 3]), candidates=np.array([0, 2, 4])).toarray()
    expected = np.zeros((5, 5), np.float32)
    expected[1, 0] = _cos(0, 1)  # the nearest candidate of row 1 is item 0
    expected[3, 2] = _cos(2, 3)
    np.testing.assert_allclose(s, expected, rtol=1e-5)
    full = scorers.knn_similarity(FEAT, k=2).toarray()  # an item is never its own neighbour
    assert np.all(np.diag(full) == 0) and (full > 0).sum() == 10
    assert scorers.knn_similarity(FEAT, k=50).getnnz(axis=1).tolist() == [4] * 5  # k > candidates: all others
    with pytest.raises(ConfigError):
        scorers.knn_similarity(FEAT, k=0)


def test_knn_similarity_mmrec_shrink_by_hand():
    sim = scorers.knn_similarity(RAW, k=2, shrink=1.0).toarray()
    norms = np.linalg.norm(RAW, axis=1)
    full = RAW @ RAW.T / (norms[:, None] * norms[None, :] + 1.0)
    np.fill_diagonal(full, -np.inf)
    for i in range(4):
        keep = np.argsort(-full[i], kind="stable")[:2]
        np.testing.assert_allclose(sim[i, keep], full[i, keep], atol=1e-6)
        assert (sim[i] != 0).sum() <= 2 and sim[i, i] == 0  # k per row, no self-loop
    with pytest.raises(ConfigError):
        scorers.knn_similarity(RAW, k=2, shrink=float("nan"))


def test_item_knn_scores_history_is_mmrec_itemknncbf():
    ds = _tiny()
    history = ds.interaction_matrix("train")
    sim = scorers.knn_similarity(RAW, k=2, shrink=1.0).toarray()
    fn = scorers.item_knn_scores(RAW, history, k=2, shrink=1.0, neighbours="history")
    np.testing.assert_allclose(fn(torch.tensor([0, 1, 2])).numpy(), history.toarray() @ sim, atol=1e-6)
    with pytest.raises(ConfigError, match="neighbourhood"):
        scorers.item_knn_scores(RAW, history, neighbours="users")


def test_item_knn_scores_target_by_hand():
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=np.float32))
    fn = scorers.item_knn_scores(FEAT, history, k=1, targets=np.array([1, 3]))
    s = fn(torch.tensor([0, 1])).numpy()
    assert np.isinf(s[:, [0, 2, 4]]).all()
    # user 0 saw item 0 = the nearest source of target 1 -> score cos(0, 1); target 3 -> 0
    assert s[0, 1] == pytest.approx(_cos(0, 1), rel=1e-5) and s[0, 3] == 0
    assert s[1, 3] == pytest.approx(_cos(2, 3), rel=1e-5) and s[1, 1] == 0


def test_neighbour_popularity_scores():
    pop = np.array([10, 0, 2, 0, 6], np.float32)
    s = scorers.neighbour_popularity_scores(FEAT, pop, np.array([1, 3]), k=1)(torch.tensor([0]))[0]
    assert s[1] == 10 and s[3] == 2 and torch.isinf(s[[0, 2, 4]]).all()
