"""The small shared helpers of alignrec_lite.utils: row normalisation, fusion, array -> tensor, words."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignrec_lite.utils import as_tensor, bag_of_words, fuse_features, l2_normalise_rows, tokenize


def test_l2_normalise_rows_keeps_dtype_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalise_rows(x)
    assert out.dtype == np.float32 and np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert l2_normalise_rows([[1, 1]]).dtype == np.float64  # ints become floats, as a division does
    ref = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # the block it replaced, bit for bit
    assert np.array_equal(out, ref)


def test_fuse_features_normalises_each_block_then_the_whole():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 4)).astype(np.float32) * 10
    out = fuse_features([a, b])
    assert out.shape == (5, 7) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    # each modality weighs the same whatever its scale: both halves have norm 1/sqrt(2)
    assert np.allclose(np.linalg.norm(out[:, :3], axis=1), 2**-0.5, atol=1e-6)
    unit = [l2_normalise_rows(np.asarray(x, dtype=np.float32)) for x in (a, b)]
    assert np.array_equal(out, l2_normalise_rows(np.concatenate(unit, axis=1)))


def test_as_tensor_from_arrays_lists_and_tensors():
    t = as_tensor(np.arange(6, dtype=np.float64).reshape(2, 3))
    assert t.dtype == torch.float32 and t.device.type == "cpu" and t.shape == (2, 3)
    assert as_tensor([[1, 2]]).dtype == torch.float32
    w = torch.ones(2, requires_grad=True)
    out = as_tensor(w * 2)
    assert not out.requires_grad and torch.equal(out, torch.full((2,), 2.0))


def test_tokenize_words_and_hyphens():
    assert tokenize("Kivo polka-dot Cup! 2 mugs") == ["kivo", "polka-dot", "cup", "2", "mugs"]
    assert tokenize(None) == [] and tokenize("") == []  # type: ignore[arg-type]


def test_bag_of_words_rows_are_unit_or_zero():
    x = bag_of_words(["red mug", "unknown words", "mug mug"], ["red", "mug"])
    assert x.dtype == np.float32 and x.shape == (3, 2)
    assert np.allclose(x[0], [2**-0.5, 2**-0.5]) and np.allclose(x[1], 0) and np.allclose(x[2], [0, 1])


@pytest.mark.parametrize("text", ["Kivo polka-dot mug", "Deluxe striped lamp lamp"])
def test_bag_of_words_counts_tokens(text):
    vocab = sorted(set(tokenize(text)))
    counts = np.array([tokenize(text).count(w) for w in vocab], dtype=np.float32)
    assert np.allclose(bag_of_words([text], vocab)[0], counts / np.linalg.norm(counts))
