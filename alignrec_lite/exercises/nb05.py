"""Exercises of notebook 05 (training AlignRec): the UIA and CCA loss terms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..losses import info_nce, uia_loss
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def _batch(seed: int, n: int = 12, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g).mul(3).add(0.3)  # uneven lengths
    b = a + torch.randn(n, d, generator=g)
    return a, b


def _scalar(x: Any, what: str) -> torch.Tensor:
    t = as_tensor(x, what).reshape(-1)
    if t.numel() != 1:
        raise WrongAnswer(f"return one number ({what} averaged over the batch), got {t.numel()} values")
    return t[0]


def check_uia_loss(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """Check ``fn(user_emb, pos_item_emb) -> scalar``: UIA ``1 - mean_B cos(h_u, h_i+)``."""

    def body() -> None:
        u, p = _batch(51)
        got = _scalar(attempt(fn, u.clone(), p.clone()), "UIA")
        cos = F.cosine_similarity(u, p, dim=1)
        if torch.allclose(got, cos.mean().double(), atol=1e-5):
            raise WrongAnswer("that is the mean cosine; the loss is 1 minus it (lower = better aligned)")
        if torch.allclose(got, (1 - (u * p).sum(1).mean()).double(), atol=1e-4):
            raise WrongAnswer("use the cosine, not the dot product: UIA ignores the vectors' lengths")
        expect_close(got, uia_loss(u, p), "UIA loss")

    return run_checks("check_uia_loss", body, "fill in my_uia_loss")


def check_cca_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], Any]) -> bool:
    """Check ``fn(content, ids, tau) -> scalar``: InfoNCE with content anchors and ID candidates."""

    def body() -> None:
        c, i = _batch(52)
        for tau in (0.2, 0.5):
            got = _scalar(attempt(fn, c.clone(), i.clone(), tau), "CCA")
            target = torch.arange(len(c))
            raw = F.cross_entropy(c @ i.T / tau, target)
            if torch.allclose(got, raw.double(), atol=1e-4):
                raise WrongAnswer("L2-normalise both sides first: the logits are cosines / tau")
            if torch.allclose(got, info_nce(i, c, tau).double(), atol=1e-5):
                raise WrongAnswer(
                    "wrong direction: the content vectors are the anchors (rows of the logits), "
                    "the ID vectors the candidates"
                )
            if torch.allclose(got, info_nce(c, i, 1.0).double(), atol=1e-5) and tau != 1.0:
                raise WrongAnswer("divide the cosines by the temperature tau")
            expect_close(got, info_nce(c, i, tau), f"CCA InfoNCE at tau = {tau}")

    return run_checks("check_cca_loss", body, "fill in my_cca_loss")


def check_untrained_bpr(prediction: Any, measured: float) -> bool:
    """Predict-then-run: the BPR term of an untrained model on one batch.

    Args:
        prediction: the learner's number.
        measured: the BPR term the notebook computed on a fresh, untrained model.
    """
    from ._predict import check_number

    why = (
        "Untrained embeddings are small random vectors, so every score u·i is close to 0 and the difference "
        "of a positive and a negative score too: -log σ(0) = log 2 ≈ 0.693. A BPR term well below 0.69 means "
        "the model already ranks positives first; one above it means it ranks them last."
    )
    return check_number("check_untrained_bpr", prediction, float(measured), tolerance=0.05, why=why)
