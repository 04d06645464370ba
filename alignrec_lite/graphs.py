"""Sparse graphs, built once: the normalised user-item adjacency and item-item kNN graphs.

* :func:`normalized_adjacency` — LightGCN's ``D^{-1/2} A D^{-1/2}`` on the bipartite
  graph ``A = [[0, R], [R^T, 0]]`` (He et al., SIGIR 2020, Eq. 7; ALIGNREC_SPEC §1.2a).
* :func:`user_item_norm` — the user-item block ``D_u^{-1/2} R D_i^{-1/2}`` (AlignRec's
  user content aggregation, §1.2c).
* :func:`knn_graph` — the frozen item-item graph from multimodal features: cosine,
  top-k per row (self included), weighted or binary, ``sym`` normalisation with
  row-sum degrees (§1.2b; FREEDOM uses the binary variant). Built in row chunks so
  that memory is ``chunk x n_items``, never ``n_items x n_items``.

All functions return SciPy CSR matrices; :func:`to_torch` turns them into torch
sparse tensors once, before training, and :func:`spmm` (the one sparse-product helper)
multiplies them with a backward that reuses a precomputed transpose.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .utils import as_tensor


def _inv_sqrt(deg: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        out = np.power(deg.astype(np.float64), -0.5)
    out[~np.isfinite(out)] = 0.0  # degree 0 -> 0, as LightGCN/MMRec do
    return out


def normalized_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """Symmetrically normalised bipartite adjacency of the training interactions.

    Args:
        train: binary user x item matrix ``R``.

    Returns:
        ``D^{-1/2} A D^{-1/2}`` with ``A = [[0, R], [R^T, 0]]``, float32 CSR.

    Shape:
        train: ``(n_users, n_items)``; returns ``(n_users + n_items, n_users + n_items)``.
    """
    a = sp.bmat([[None, train], [train.T, None]], format="csr", dtype=np.float32)
    d = _inv_sqrt(np.asarray(a.sum(axis=1)).ravel())
    return (sp.diags(d) @ a @ sp.diags(d)).astype(np.float32).tocsr()


def user_item_norm(train: sp.csr_matrix) -> sp.csr_matrix:
    """The user-item block of :func:`normalized_adjacency`: ``D_u^{-1/2} R D_i^{-1/2}``.

    Shape:
        ``(n_users, n_items)``.
    """
    du = _inv_sqrt(np.asarray(train.sum(axis=1)).ravel())
    di = _inv_sqrt(np.asarray(train.sum(axis=0)).ravel())
    return (sp.diags(du) @ train @ sp.diags(di)).astype(np.float32).tocsr()


def knn_graph(
    features: np.ndarray | torch.Tensor,
    k: int = 10,
    *,
    weighted: bool = True,
    normalize: str = "sym",
    chunk: int = 2048,
) -> sp.csr_matrix:
    """Item-item kNN graph from content features, computed in chunks.

    For each item keep the ``k`` most cosine-similar items (itself included, as
    its own similarity is 1), with the cosine as the edge weight (``weighted``)
    or 1 (FREEDOM's binary variant). Then normalise:

    * ``"sym"``: ``S_rj / sqrt(d_r d_j)`` with ``d`` the row sums (AlignRec/FREEDOM);
    * ``"rw"``: ``S_rj / d_r``;
    * ``"none"``.

    Args:
        features: ``(n_items, d)``.
        k: neighbours per item (clipped to ``n_items``).
        weighted: keep cosine values (True) or use 1 for every kept edge.
        normalize: ``"sym"``, ``"rw"`` or ``"none"``.
        chunk: rows per block of the similarity computation.

    Returns:
        ``(n_items, n_items)`` float32 CSR with ``k`` entries per row.
    """
    x = torch.nn.functional.normalize(as_tensor(features), dim=1)  # (n, d)
    n = x.shape[0]
    k = min(k, n)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        sim = x[start : start + chunk] @ x.T  # (c, n) cosine
        top_v, top_i = torch.topk(sim, k, dim=1)  # (c, k)
        rows.append(np.repeat(np.arange(start, start + len(sim)), k))
        cols.append(top_i.reshape(-1).numpy())
        vals.append(top_v.reshape(-1).numpy())
        del sim  # free this (c, n) block before the next one: peak is one block, not two
    data = np.concatenate(vals).astype(np.float32) if weighted else np.ones(n * k, dtype=np.float32)
    s = sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    if normalize == "none":
        return s
    deg = np.asarray(s.sum(axis=1)).ravel()
    if normalize == "sym":
        d = _inv_sqrt(deg)
        return (sp.diags(d) @ s @ sp.diags(d)).astype(np.float32).tocsr()
    if normalize == "rw":
        with np.errstate(divide="ignore"):
            inv = np.where(deg > 0, 1.0 / deg, 0.0)
        return (sp.diags(inv) @ s).astype(np.float32).tocsr()
    raise ValueError(f"normalize must be 'sym', 'rw' or 'none', got {normalize!r}")


def to_torch(m: sp.spmatrix, device: torch.device | str = "cpu", layout: str = "csr") -> torch.Tensor:
    """Convert a SciPy sparse matrix to a torch sparse tensor (CSR by default, or COO)."""
    if layout == "coo":
        coo = m.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(
            idx, torch.from_numpy(coo.data.astype(np.float32)), coo.shape, device=device, check_invariants=False
        ).coalesce()
    csr = m.tocsr()
    csr.sort_indices()
    # 32-bit indices when they fit: MKL's sparse product runs ~1.2x faster on them (docs/benchmarks/models.md §1.3)
    index = np.int32 if max(csr.nnz, *csr.shape) < 2**31 else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(index)),
            torch.from_numpy(csr.indices.astype(index)),
            torch.from_numpy(csr.data.astype(np.float32)),
            size=csr.shape,
            device=device,
            check_invariants=False,
        )


def _sparse_times_dense(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ X`` without autograd, written straight into a fresh output.

    ``torch.sparse.mm`` of a CSR matrix zero-fills a result, has MKL write into a
    second buffer and copies it over; ``addmm(out, A, X, beta=0, out=out)`` lets MKL
    write the result once (``beta=0``: ``out``'s uninitialised contents are never
    read). Same values, bit for bit (tests/test_graphs.py); about 1.5x faster on the
    Baby adjacency (docs/benchmarks/models.md §1.3).
    """
    if a.layout is torch.sparse_csr and a.dtype == x.dtype:
        out = x.new_empty((a.shape[0], x.shape[1]))
        return torch.addmm(out, a, x, beta=0, out=out)
    return torch.sparse.mm(a, x)


class _SparseMM(torch.autograd.Function):
    """``A @ X`` whose backward multiplies by a given ``Aᵀ`` (no transpose on every pass)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return _sparse_times_dense(a, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, None, _sparse_times_dense(ctx.a_t, grad)


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None, *, symmetric: bool = False) -> torch.Tensor:
    """Sparse (CSR) times dense, with a cheap backward when ``Aᵀ`` is known.

    ``torch.sparse.mm`` transposes a CSR matrix on every backward pass. The graphs
    here are fixed, so their transposes are built once and reused: pass ``a_t = Aᵀ``
    (the kNN graph, ``R̃``: see :func:`sparse_pair`), or ``symmetric=True`` when
    ``A = Aᵀ`` (the normalised adjacency ``D^{-1/2} A D^{-1/2}``; the backward is then
    ``A @ grad``). See docs/benchmarks/models.md for the measured gain.

    Args:
        a: sparse ``(n, m)``.
        x: dense ``(m, d)``.
        a_t: ``Aᵀ`` as a sparse ``(m, n)`` tensor, or ``None`` (plain torch backward).
        symmetric: ``A`` is symmetric; use ``A`` itself as ``Aᵀ``.

    Shape:
        returns ``(n, d)``.
    """
    if symmetric:
        a_t = a
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _sparse_times_dense(a, x)
    if a_t is None:
        return torch.sparse.mm(a, x)  # torch's own backward
    return _SparseMM.apply(a, a_t, x)


def sparse_pair(m: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, Aᵀ)`` as torch CSR tensors, for :func:`spmm`."""
    return to_torch(m.tocsr()), to_torch(m.T.tocsr())
