"""Graphs (alignrec_lite.graphs): normalised adjacency, kNN graphs in chunks, the sparse-product helper."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from memory_stages import check_stage

from alignrec_lite.graphs import knn_graph, normalized_adjacency, sparse_pair, spmm, to_torch, user_item_norm


def test_normalized_adjacency_matches_dense_formula():
    rng = np.random.default_rng(0)
    r = (rng.random((6, 5)) < 0.4).astype(np.float32)
    r[0] = 0  # a user with no edges -> row of zeros, no NaN
    a = np.block([[np.zeros((6, 6)), r], [r.T, np.zeros((5, 5))]])
    d = a.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0)
    ref = dinv[:, None] * a * dinv[None, :]
    got = normalized_adjacency(sp.csr_matrix(r)).toarray()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(user_item_norm(sp.csr_matrix(r)).toarray(), ref[:6, 6:], atol=1e-6)


def test_knn_graph_matches_dense_reference_and_keeps_self():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(12, 4)).astype(np.float32)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = fn @ fn.T
    k = 3
    ref = np.zeros_like(cos)
    for i in range(12):
        nn_idx = np.argsort(-cos[i])[:k]
        ref[i, nn_idx] = cos[i, nn_idx]
    assert all(ref[i, i] > 0 for i in range(12))  # self is among the neighbours
    deg = ref.sum(1)
    ref_sym = ref / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]
    got = knn_graph(f, k, chunk=5).toarray()  # several chunks
    np.testing.assert_allclose(got, ref_sym, atol=1e-5)
    binary = knn_graph(f, k, weighted=False, normalize="none").toarray()
    np.testing.assert_array_equal(binary, (ref > 0).astype(np.float32))


def test_spmm_symmetric_gradient_equals_autograd():
    r = sp.random(7, 9, density=0.3, random_state=3, format="csr")
    r.data[:] = 1
    adj = normalized_adjacency(r)
    x = torch.randn(16, 3, requires_grad=True)
    spmm(to_torch(adj), x, symmetric=True).pow(2).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    torch.sparse.mm(to_torch(adj, layout="coo"), x).pow(2).sum().backward()
    torch.testing.assert_close(g1, x.grad)


def test_spmm_transpose_backward_matches_dense():
    rng = np.random.default_rng(0)
    m = sp.random(6, 5, density=0.4, random_state=1, dtype=np.float32).tocsr()
    a, a_t = sparse_pair(m)
    x = torch.from_numpy(rng.normal(size=(5, 3)).astype(np.float32)).requires_grad_(True)
    y = torch.from_numpy(rng.normal(size=(6, 3)).astype(np.float32))
    (spmm(a, x, a_t) * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), m.T.toarray() @ y.numpy(), rtol=1e-5, atol=1e-6)
    g_custom = x.grad.clone()
    x.grad = None
    (spmm(a, x) * y).sum().backward()  # torch's own backward: the same gradient, bit for bit
    torch.testing.assert_close(g_custom, x.grad, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(spmm(a, x, a_t), torch.sparse.mm(a, x), rtol=0, atol=0)


# ---------------------------------------------------------------- bounded memory (tests/memory_stages.py)
def test_spmm_without_gradient_equals_torch_and_uses_32_bit_indices():
    m = sp.random(50, 40, density=0.1, format="csr", dtype=np.float32, random_state=3)
    a = to_torch(m)
    assert a.crow_indices().dtype == torch.int32 and a.col_indices().dtype == torch.int32
    x = torch.randn(64, 40).T  # not contiguous
    with torch.no_grad():
        got = spmm(a, x)
    torch.testing.assert_close(got, torch.sparse.mm(to_torch(m, layout="coo"), x), rtol=1e-6, atol=1e-6)
    assert torch.equal(got, torch.sparse.mm(a, x))  # the fresh-output product is torch's, bit for bit
    empty = to_torch(sp.csr_matrix((5, 40), dtype=np.float32))
    assert torch.equal(spmm(empty, x), torch.zeros(5, 64))  # rows without entries are 0, never garbage


def test_knn_graph_memory_is_bounded(tmp_path):
    check_stage("knn", "ci", tmp_path)


@pytest.mark.slow
def test_knn_graph_memory_is_bounded_full_size(tmp_path):
    check_stage("knn", "full", tmp_path)
