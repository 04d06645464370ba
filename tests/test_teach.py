"""The notebooks' teaching models (alignrec_lite.teach): pair_data, contrastive, classifier, memory,
text_embed, similarity."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from alignrec_lite.errors import ConfigError
from alignrec_lite.teach import classifier, memory, pair_data, similarity, text_embed
from alignrec_lite.teach import contrastive as C

matplotlib.use("Agg")  # this module draws in the test process; notebook kernels keep their inline backend
from alignrec_lite.losses import clip_loss


# ------------------------------------------------------------------ teach.pair_data, teach.contrastive
@pytest.fixture(scope="module")
def pairs():
    return pair_data.toy_pairs(120, seed=3, image_size=16)


def test_toy_pairs_shapes_and_determinism(pairs):
    assert pairs.images.shape == (120, 3, 16, 16) and pairs.images.dtype == np.float32
    assert 0.0 <= pairs.images.min() and pairs.images.max() <= 1.0
    assert len(pairs.texts) == 120 and set(pairs.labels) == {"category", "colour", "pattern", "brand"}
    again = pair_data.toy_pairs(120, seed=3, image_size=16)
    assert np.array_equal(again.images, pairs.images) and again.texts == pairs.texts
    brand = np.array(pairs.values["brand"])[pairs.labels["brand"]]
    assert all(b in t for b, t in zip(brand, pairs.texts))  # the title always names the brand
    sub = pairs.subset(slice(10, 20))
    assert len(sub) == 10 and sub.texts == pairs.texts[10:20]


def test_toy_pairs_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        pair_data.toy_pairs(0)
    with pytest.raises(ConfigError):
        pair_data.toy_pairs(5, image_size=100)


def test_second_view_differs_but_keeps_content(pairs):
    v2 = pair_data.second_view(pairs, seed=1, noise=0.0)
    assert v2.shape == pairs.images.shape
    assert not np.array_equal(v2, pairs.images)
    # same product, shifted by a few pixels: mean colour barely changes
    assert np.abs(v2.mean(axis=(2, 3)) - pairs.images.mean(axis=(2, 3))).max() < 0.1


def test_sampled_clip_equals_full_clip_with_all_negatives():
    g = torch.Generator().manual_seed(0)
    a, b = F.normalize(torch.randn(8, 4, generator=g), dim=1), F.normalize(torch.randn(8, 4, generator=g), dim=1)
    assert torch.allclose(C.sampled_clip_loss(a, b, 0.1, 7), clip_loss(a, b, 10.0), atol=1e-6)
    few = C.sampled_clip_loss(a, b, 0.1, 1, generator=g)
    assert few < clip_loss(a, b, 10.0)  # fewer negatives in the denominator: smaller loss


def test_pair_loss_unknown():
    with pytest.raises(ConfigError):
        C.pair_loss(torch.ones(2, 2), torch.ones(2, 2), "triplet", 0.1)


def test_train_two_tower_learns_and_restores_threads(pairs):
    x_img, x_txt = pair_data.pair_inputs(pairs)
    threads = torch.get_num_threads()
    model, hist = C.train_two_tower(x_img, x_txt, dim=8, batch_size=40, epochs=15, seed=0)
    assert torch.get_num_threads() == threads
    assert hist[0]["step"] == 0 and hist[-1]["step"] == 15 * 3
    assert hist[-1]["loss"] < np.log(40)  # below the loss of random guessing
    zi, zt = model.embed(x_img, x_txt)
    assert torch.allclose(zi.norm(dim=1), torch.ones(120), atol=1e-5)
    assert C.retrieval_recall(zi, zt)["recall@10"] > 3 * 10 / 120


def test_align_only_collapses(pairs):
    x_img, _ = pair_data.pair_inputs(pairs)
    v2 = torch.from_numpy(pair_data.second_view(pairs).reshape(len(pairs), -1) - 0.5)
    _, hist = C.train_two_tower(x_img, v2, dim=2, loss="align", shared=True, batch_size=40, epochs=10, seed=0)
    assert hist[-1]["uniform"] > -0.05 and hist[-1]["align"] < 0.01


def test_train_two_tower_validates():
    x = torch.zeros(10, 3)
    with pytest.raises(ConfigError):
        C.train_two_tower(x, x, batch_size=20)
    with pytest.raises(ConfigError):
        C.train_two_tower(x, x, batch_size=4, temperature=0)
    with pytest.raises(ConfigError):
        C.TwoTower(3, 4, shared=True)


def test_retrieval_recall_known_values():
    q = torch.eye(4)
    k = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    r = C.retrieval_recall(q, k, ks=(1, 2))
    assert r["recall@1"] == pytest.approx(0.5)  # rows 0 and 3 right; row 2 ties with row 1
    assert r["recall@2"] == pytest.approx(0.75)


def test_held_out_scores_is_recall_align_uniform_of_the_embeddings():
    """The row every sweep reports (temperature_sweep, negatives_sweep) for one model."""
    from alignrec_lite.losses import align_loss, uniform_loss

    torch.manual_seed(0)
    model = C.TwoTower(6, 5, dim=4)
    x_img, x_txt = torch.randn(30, 6), torch.randn(30, 5)
    got = C.held_out_scores(model, x_img, x_txt)
    zi, zt = model.embed(x_img, x_txt)
    assert got == {**C.retrieval_recall(zi, zt), "align": float(align_loss(zi, zt)), "uniform": float(uniform_loss(zi))}
    assert list(got) == ["recall@1", "recall@5", "recall@10", "align", "uniform"]


def test_classifier_embedding(pairs):
    x, _ = pair_data.pair_inputs(pairs)
    clf = classifier.train_classifier(x, pairs.labels["category"], epochs=30, seed=0)
    acc = (clf(x).argmax(1).numpy() == pairs.labels["category"]).mean()
    assert acc > 0.8
    assert clf.embed(x).shape == (120, 32)


def test_autograd_saved_bytes_counts_logits():
    def step(n):
        x = torch.randn(n, 4, requires_grad=True)
        return lambda: (x @ x.T).softmax(dim=1).sum()

    small, big = memory.autograd_saved_bytes(step(50))["saved"], memory.autograd_saved_bytes(step(100))["saved"]
    assert big > 3.5 * small  # the saved softmax grows as n^2


def test_memory_model_fit_and_formula():
    ns = [10, 20, 40, 80]
    a, b, c = memory.fit_memory_model(ns, [8 * n * n + 100 * n + 5 for n in ns])
    assert a == pytest.approx(8) and b == pytest.approx(100) and c == pytest.approx(5, abs=1e-3)
    one = memory.transformer_activation_bytes(1)
    assert memory.transformer_activation_bytes(np.array([1.0, 2.0]))[1] == pytest.approx(2 * one)
    assert one == pytest.approx(12 * 77 * 768 * (34 + 5 * 12 * 77 / 768))


# ------------------------------------------------------------------- text_embed
def test_static_word_vectors():
    texts = ["red mug", "blue mug", "red hat", "blue hat", "green mug", "green hat"] * 3
    model = text_embed.StaticWordVectors.fit(texts, dim=3)
    assert model.vectors.shape == (5, 3)
    near = [w for w, _ in model.most_similar("red", k=2)]
    assert set(near) == {"blue", "green"}  # same slot, same contexts
    enc = model.encode(["red mug", "nothing known"])
    assert np.isclose(np.linalg.norm(enc[0]), 1.0) and np.allclose(enc[1], 0)
    with pytest.raises(KeyError):
        model.word_vector("purple")


def test_static_word_vectors_empty():
    with pytest.raises(ConfigError):
        text_embed.StaticWordVectors.fit(["", "!!"])


def test_ppmi_matrix():
    counts = np.array([[0, 2], [2, 0]], dtype=float)
    assert np.allclose(text_embed.ppmi_matrix(counts), [[0, np.log(2)], [np.log(2), 0]])
    assert np.allclose(text_embed.ppmi_matrix(np.zeros((2, 2))), 0)


# ------------------------------------------------------------------- similarity
def test_similarity_and_neighbours():
    emb = torch.tensor([[1.0, 0.0], [10.0, 3.0], [0.0, 1.0], [0.9, 0.1]])
    assert torch.allclose(similarity.similarity(emb, emb, "cosine").diagonal(), torch.ones(4))
    assert similarity.nearest_items(emb, 0, k=2).tolist() == [3, 1]  # cosine ignores length
    assert similarity.nearest_items(emb, 0, k=1, metric="dot").tolist() == [1]
    with pytest.raises(ConfigError):
        similarity.similarity(emb, emb, "l1")


def test_label_precision_and_chance():
    emb = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=float)
    labels = ["a", "a", "b", "b"]
    assert similarity.label_precision(emb, labels, k=1) == 1.0
    assert similarity.chance_precision(labels) == pytest.approx(1 / 3)


def test_popularity_of_top_k_dot_prefers_long_vectors():
    user = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[1.0, 0.0], [3.0, 3.0]])  # item 1 is long but 45 degrees off
    pop = np.array([1.0, 100.0])
    assert similarity.popularity_of_top_k(user, items, pop, k=1, metric="dot") == 100.0
    assert similarity.popularity_of_top_k(user, items, pop, k=1, metric="cosine") == 1.0
    seen = sp.csr_matrix(np.array([[0, 1]]))
    assert similarity.popularity_of_top_k(user, items, pop, k=1, metric="dot", exclude=seen) == 1.0


def test_triplet_similarities():
    enc = {"a": [1.0, 0.0], "b": [1.0, 0.1], "c": [0.0, 1.0]}
    out = similarity.triplet_similarities(lambda texts: np.array([enc[t] for t in texts]), [("a", "b", "c")])
    assert out.shape == (1, 2) and out[0, 0] > 0.99 and abs(out[0, 1]) < 1e-6
