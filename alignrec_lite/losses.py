"""Loss functions, each a pure function of tensors.

* :func:`bpr_loss` — Bayesian personalised ranking (Rendle et al., UAI 2009).
* :func:`emb_loss` — MMRec's ``EmbLoss`` (``common/loss.py``): unsquared Frobenius norms / batch
  size, the regulariser of the baselines BPR, LightGCN and VBPR (ALIGNREC_SPEC appendix A).
* :func:`l2_reg_loss` — AlignRec's own squared L2 on the final batch vectors (ALIGNREC_SPEC §1.3).
* :func:`info_nce` — one-directional InfoNCE with in-batch negatives (AlignRec's CCA term).
* :func:`clip_loss` — CLIP's symmetric InfoNCE over an N x N logit matrix (Radford et al., 2021).
* :func:`align_loss`, :func:`uniform_loss` — Wang & Isola (ICML 2020), Eq. 4 and 5.
* :func:`uia_loss` — AlignRec's user-item alignment, ``1 - mean cos(h_u, h_i+)``.
* :func:`sim_loss` — AlignRec's similarity-preservation term (ALIGNREC_SPEC §1.3).
* :func:`sim_loss_expanded` — the same term without the B x B matrices (faster, exact).
* :func:`cca_loss` — AlignRec's content-category alignment (InfoNCE content → ID, items + users),
  with :func:`info_nce_grouped` (InfoNCE of a batch given as distinct rows + multiplicities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean BPR loss ``-log sigmoid(s+ - s-)``.

    Shape:
        pos_scores, neg_scores: ``(B,)``. Returns a scalar.

    >>> round(float(bpr_loss(torch.tensor([2.0]), torch.tensor([0.0]))), 4)
    0.1269
    """
    return -F.logsigmoid(pos_scores - neg_scores).mean()  # softplus(neg - pos), numerically stable


def emb_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: the sum of the batch matrices' Frobenius norms over the batch size.

    ``L_reg = (||E_U||_F + ||E_I+||_F + ||E_I-||_F) / |B|`` (``reg_weight`` multiplies
    it outside). The norms are **plain, not squared**, and ``|B|`` is the *actual*
    number of rows of the last matrix (MMRec divides by ``embeddings[-1].shape[0]``),
    so the last, smaller batch of an epoch is divided by its own size. This is the
    regulariser of MMRec's BPR, LightGCN and VBPR (ALIGNREC_SPEC appendix A); it is
    *not* :func:`l2_reg_loss` (half the squared norms), so a given ``reg_weight``
    means a different penalty in the two forms.

    The gradient with respect to a row ``e`` of ``E`` is ``e / (||E||_F |B|)``: its
    size does not grow with the embedding scale, unlike the squared form's ``e / |B|``.

    Args:
        *embeddings: the batch matrices (users, positive items, negative items).

    Returns:
        A scalar tensor.

    Shape:
        each embedding: ``(B, d)`` (all with the same ``B``). Returns ``()``.

    >>> float(emb_loss(torch.ones(4, 4)))  # ||1||_F = 4, / 4 rows
    1.0
    >>> float(emb_loss(torch.ones(4, 4), 2 * torch.ones(4, 4)))  # (4 + 8) / 4
    3.0
    """
    total = sum(torch.linalg.vector_norm(e) for e in embeddings)  # sum of ||E||_F, scalar
    return total / embeddings[-1].shape[0]


def l2_reg_loss(*embeddings: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Half the summed squared L2 norm of the given batch vectors, divided by the batch size.

    AlignRec's own regulariser (``bpr_loss`` of the official code; ``reg_weight``
    multiplies it): ``(1 / 2B) sum_B (||h_u||² + ||h_i+||² + ||h_i-||²)`` on the final
    batch vectors. AlignRec divides by the *configured* batch size (2048) even for
    the last, smaller batch: pass ``batch_size`` to reproduce that; by default the
    actual batch size is used. MMRec's baselines use :func:`emb_loss` instead.

    Args:
        *embeddings: the batch matrices.
        batch_size: the divisor ``B`` (default: rows of the first matrix).

    Returns:
        A scalar tensor.

    Shape:
        each embedding: ``(B, d)``. Returns ``()``.

    >>> float(l2_reg_loss(torch.ones(2, 3)))
    1.5
    """
    n = batch_size if batch_size is not None else embeddings[0].shape[0]
    total = sum(e.pow(2).sum() for e in embeddings)
    return total / (2.0 * n)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """One-directional InfoNCE with in-batch negatives, on L2-normalised vectors.

    ``-(1/n) sum_k log( exp(a_k.b_k / t) / sum_j exp(a_k.b_j / t) )``: row ``k`` of
    ``positive`` is the positive of anchor ``k``; every other row is a negative
    (duplicates included, as in AlignRec's code).

    Shape:
        anchor, positive: ``(n, d)``. Returns a scalar.
    """
    a = F.normalize(anchor, dim=1)
    b = F.normalize(positive, dim=1)
    logits = a @ b.T / temperature  # (n, n)
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, target)


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float = 1 / 0.07
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: the mean of image->text and text->image cross-entropies.

    Args:
        image_emb, text_emb: paired embeddings (normalised here).
        logit_scale: ``1 / temperature`` (CLIP learns ``log`` of it; pass ``exp()``).

    Shape:
        image_emb, text_emb: ``(N, d)``; the logits are ``(N, N)``. Returns a scalar.
    """
    img = F.normalize(image_emb, dim=1)
    txt = F.normalize(text_emb, dim=1)
    logits = logit_scale * img @ txt.T  # (N, N)
    target = torch.arange(img.shape[0], device=img.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _check_normalised(x: torch.Tensor, name: str) -> None:
    norms = x.detach().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise ValueError(
            f"{name} must be L2-normalised (row norms = 1); got norms in "
            f"[{norms.min().item():.3g}, {norms.max().item():.3g}]. Pass normalize=True "
            "or call torch.nn.functional.normalize(x, dim=1) first."
        )


def align_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, *, normalize: bool = False) -> torch.Tensor:
    """Wang & Isola's alignment: ``E ||x_i - y_i||_2^alpha`` over positive pairs.

    Inputs must lie on the unit sphere (asserted) unless ``normalize=True``.
    Range: 0 (every pair identical) to ``2**alpha`` (antipodal pairs); lower is
    better aligned. Random pairs on a high-dimensional sphere give about 2 (alpha=2).

    Shape:
        x, y: ``(n, d)``. Returns a scalar.
    """
    if normalize:
        x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    else:
        _check_normalised(x, "x")
        _check_normalised(y, "y")
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def uniform_loss(x: torch.Tensor, t: float = 2.0, *, normalize: bool = False) -> torch.Tensor:
    """Wang & Isola's uniformity: ``log E exp(-t ||x_i - x_j||^2)`` over distinct pairs.

    Inputs must lie on the unit sphere (asserted) unless ``normalize=True``.
    Range: ``0`` when all points coincide; negative otherwise (lower = more
    uniform). For a uniform sample on a high-dimensional sphere it approaches
    ``-2t`` (= -4 for t = 2), its optimum.

    Shape:
        x: ``(n, d)`` with ``n >= 2``. Returns a scalar.
    """
    if normalize:
        x = F.normalize(x, dim=1)
    else:
        _check_normalised(x, "x")
    sq_dist = torch.pdist(x, p=2).pow(2)  # (n (n-1) / 2,)
    return sq_dist.mul(-t).exp().mean().log()


def uia_loss(user_emb: torch.Tensor, pos_item_emb: torch.Tensor) -> torch.Tensor:
    """AlignRec's user-item alignment ``1 - mean_B cos(h_u, h_i+)`` (weight gamma outside).

    Shape:
        user_emb, pos_item_emb: ``(B, d)``. Returns a scalar in ``[0, 2]``.
    """
    return 1.0 - F.cosine_similarity(user_emb, pos_item_emb, dim=1).mean()


def sim_loss(content_emb: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """AlignRec's similarity preservation ``||H H^T - stopgrad(cos(F))||_F / B``.

    Compares the raw dot products of the batch's content vectors with the cosine
    similarity of their input features (the target is detached). Plain, not
    squared, Frobenius norm, divided by the batch size (ALIGNREC_SPEC §1.3).

    Shape:
        content_emb: ``(B, d)``; feat: ``(B, d_m)``. Returns a scalar.
    """
    target = F.normalize(feat.detach(), dim=1)
    target = target @ target.T  # (B, B)
    return torch.linalg.matrix_norm(content_emb @ content_emb.T - target) / content_emb.shape[0]


def sim_loss_expanded(
    content_emb: torch.Tensor,
    feat_unit: torch.Tensor,
    target_sq_norm: torch.Tensor | float,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`sim_loss` computed without the ``B x B`` matrices (same value, same gradient).

    With ``H`` the content vectors and ``F̂`` the unit-norm features of the batch,
    ``||H Hᵀ - F̂ F̂ᵀ||_F² = ||Hᵀ H||_F² - 2 ||F̂ᵀ H||_F² + ||F̂ F̂ᵀ||_F²``: the first two
    need only ``d x d`` and ``d_m x d`` products, and the last is a constant the
    caller supplies (AlignRec precomputes squared cosines, so it costs a lookup).
    That turns ``O(B² d_m)`` work into ``O(B d d_m)``. The scalars are summed in
    float64 to keep the cancellation harmless.

    Args:
        content_emb: the batch's content vectors ``H``.
        feat_unit: the batch's L2-normalised features ``F̂`` (treated as constant).
        target_sq_norm: ``||F̂ F̂ᵀ||_F²`` of the (expanded) batch.
        counts: if given, row ``w`` stands for ``counts[w]`` identical batch rows
            (the batch is passed as distinct rows); ``B = sum(counts)``.

    Shape:
        content_emb: ``(m, d)``; feat_unit: ``(m, d_m)``; counts: ``(m,)``. Returns a scalar.
    """
    h = content_emb
    hc = h if counts is None else h * counts.to(h.dtype)[:, None]  # (m, d), rows weighted
    n = h.shape[0] if counts is None else float(counts.sum())
    gram = (hc.T @ h).double().square().sum()  # ||H^T H||_F^2, (d, d)
    cross = (feat_unit.detach().T @ hc).double().square().sum()  # ||F^T H||_F^2, (d_m, d)
    sq = gram - 2.0 * cross + torch.as_tensor(target_sq_norm, dtype=torch.float64)
    return (sq.clamp_min(1e-12).sqrt() / n).to(h.dtype)


def cca_loss(
    item_content: torch.Tensor,
    item_id: torch.Tensor,
    user_content: torch.Tensor,
    user_id: torch.Tensor,
    temperature: float = 0.2,
    *,
    item_counts: torch.Tensor | None = None,
    user_counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """AlignRec's content-category alignment (CCA): InfoNCE(content → ID), items + users.

    ``L_CCA = InfoNCE(H^m_{i+}, H^id_{i+}) + InfoNCE(H^m_u, H^id_u)`` with in-batch
    negatives, one direction (content anchors, ID candidates), τ = 0.2
    (ALIGNREC_SPEC §1.3; the weight α is applied outside).

    A batch repeats items and users. Pass each *distinct* row once with its
    multiplicity in ``item_counts`` / ``user_counts`` to get exactly the value of
    the duplicated batch (duplicates still count as negatives, as in the official
    code) from ``(#distinct)²`` instead of ``B²`` logits; see :func:`info_nce_grouped`.

    Shape:
        item_content, item_id: ``(n_i, d)``; user_content, user_id: ``(n_u, d)``;
        counts: ``(n_i,)`` / ``(n_u,)``. Returns a scalar.
    """
    return info_nce_grouped(item_content, item_id, item_counts, temperature) + info_nce_grouped(
        user_content, user_id, user_counts, temperature
    )


def info_nce_grouped(
    anchor: torch.Tensor, positive: torch.Tensor, counts: torch.Tensor | None = None, temperature: float = 0.2
) -> torch.Tensor:
    """:func:`info_nce` of a batch given as distinct rows with multiplicities.

    Row ``w`` stands for ``counts[w]`` identical rows of the batch, so with
    ``l_wv = â_w · b̂_v / τ`` and ``n = sum(counts)``::

        InfoNCE = (1/n) sum_w c_w [ log sum_v c_v exp(l_wv) - l_ww ]

    which equals :func:`info_nce` on the expanded batch. ``counts=None`` means
    every row once (then it *is* :func:`info_nce`). ``1/τ`` scales the ``(m, d)``
    anchors rather than the ``(m, m)`` logits, and the log-sum-exp runs in cache-sized
    row blocks of a single ``(m, m)`` buffer (:class:`_WeightedLogSumExp`).

    Shape:
        anchor, positive: ``(m, d)``; counts: ``(m,)``. Returns a scalar.
    """
    a = F.normalize(anchor, dim=1) * (1.0 / temperature)  # (m, d)
    b = F.normalize(positive, dim=1)
    c = torch.ones(a.shape[0], dtype=a.dtype, device=a.device) if counts is None else counts.to(a.dtype)
    positive_logit = (a * b).sum(1)  # l_ww, (m,)
    return (_WeightedLogSumExp.apply(a, b, c) - (c * positive_logit).sum()) / c.sum()


#: rows of the ``(m, m)`` logit matrix :class:`_WeightedLogSumExp` handles at a time (a block of 128 rows
#: stays in the CPU cache between the product, the ``exp`` and the row sums: docs/benchmarks/models.md §1.3)
_LSE_BLOCK = 128
#: largest logit bound for which ``exp`` runs without a shift (``e^60 * 2048`` is far below float32's maximum,
#: ``e^-60`` far above its smallest normal number)
_LSE_NO_SHIFT = 60.0


class _WeightedLogSumExp(torch.autograd.Function):
    """``sum_w c_w log sum_v c_v exp(a_w · b_v)`` with one ``(m, m)`` buffer.

    Forward: ``E = exp(A Bᵀ)`` and the row sums ``n = E c`` in row blocks that stay in the
    cache, keeping ``E`` for the backward pass. The logits are bounded by
    ``max ||a_w|| · max ||b_v||`` (``1/τ`` for InfoNCE's unit vectors), so while that bound
    is at most 60 no shift is needed; above it each row is shifted by its maximum first.
    Backward, with ``r_w = c_w g / n_w`` (the softmax ``P_wv = c_v E_wv / n_w`` never formed)::

        ∂/∂A = r ⊙ (E (c ⊙ B)),    ∂/∂B = c ⊙ (Eᵀ (r ⊙ A))

    both accumulated over the same row blocks of ``E``.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        m = a.shape[0]
        e = a.new_empty((m, b.shape[0]))  # (m, m)
        norm = a.new_empty((m,))  # n_w = sum_v c_v E_wv
        bound = float(a.norm(dim=1).max() * b.norm(dim=1).max()) if m and b.shape[0] else 0.0
        shift = None
        if bound <= _LSE_NO_SHIFT:
            for s in range(0, m, _LSE_BLOCK):
                blk = e[s : s + _LSE_BLOCK]
                torch.mm(a[s : s + _LSE_BLOCK], b.T, out=blk).exp_()
                torch.mv(blk, c, out=norm[s : s + _LSE_BLOCK])
        else:
            torch.mm(a, b.T, out=e)
            shift = e.amax(dim=1, keepdim=True)  # (m, 1)
            e.sub_(shift).exp_()
            torch.mv(e, c, out=norm)
        lse = norm.log()  # (m,)
        if shift is not None:
            lse += shift.squeeze(1)
        ctx.save_for_backward(a, b, c, e, norm)
        return (c * lse).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        a, b, c, e, norm = ctx.saved_tensors
        r = c * grad / norm  # (m,)
        cb = b * c[:, None]  # (m, d)
        ra = a * r[:, None]  # (m, d)
        grad_a = torch.empty_like(a)
        grad_b = torch.zeros_like(b)
        for s in range(0, a.shape[0], _LSE_BLOCK):
            blk = e[s : s + _LSE_BLOCK]
            torch.mm(blk, cb, out=grad_a[s : s + _LSE_BLOCK])
            grad_b.addmm_(blk.T, ra[s : s + _LSE_BLOCK])
        return grad_a.mul_(r[:, None]), grad_b.mul_(c[:, None]), None
