"""Exercises of notebook 04 (one space for image and text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def _reference_recall(img: torch.Tensor, txt: torch.Tensor, k: int) -> float:
    scores = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T  # (n, n)
    rank = (scores > scores.diagonal().unsqueeze(1)).sum(dim=1)  # items strictly better than the pair
    return float((rank < k).double().mean())


def check_cross_modal_recall(fn: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> bool:
    """Check ``fn(image_emb, text_emb, k) -> float``: share of images whose own text is in their top ``k``."""

    def body() -> None:
        g = torch.Generator().manual_seed(8)
        img = torch.randn(40, 6, generator=g)
        txt = img + 1.2 * torch.randn(40, 6, generator=g)  # noisy pairs: recall < 1
        txt = txt * torch.rand(40, 1, generator=g).mul(4).add(0.2)  # lengths that must not matter
        for k in (1, 5):
            got = as_tensor(attempt(fn, img.clone(), txt.clone(), k), "recall").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return one number: the share of images whose text is in the top k")
            want = _reference_recall(img, txt, k)
            if not 0.0 <= float(got[0]) <= 1.0:
                raise WrongAnswer(f"recall is a share in [0, 1], got {float(got[0]):.3f}")
            expect_close(got[0], torch.tensor(want, dtype=torch.float64), f"recall@{k}")

    return run_checks("check_cross_modal_recall", body, "fill in my_cross_modal_recall")


def check_mean_fusion(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """Check ``fn(z_img, z_txt) -> (n, d)``: the unit-norm average of two unit-norm embeddings."""

    def body() -> None:
        g = torch.Generator().manual_seed(9)
        zi = F.normalize(torch.randn(10, 4, generator=g), dim=1)
        zt = F.normalize(torch.randn(10, 4, generator=g), dim=1)
        got = attempt(fn, zi.clone(), zt.clone())
        want = F.normalize((zi + zt) / 2, dim=1)
        g_t = as_tensor(got, "fused")
        if g_t.shape == want.shape and torch.allclose(g_t, ((zi + zt) / 2).double(), atol=1e-5):
            raise WrongAnswer("the average of two unit vectors is shorter than 1: normalise it again")
        expect_close(got, want, "fused item vector")

    return run_checks("check_mean_fusion", body, "fill in my_mean_fusion")


def check_missing_text(prediction: Any, loss_fused: float, loss_concat: float, *, tie: float = 0.005) -> bool:
    """Predict-then-run: which feature loses more zero-shot Recall@20 when half the items lose their text.

    Args:
        prediction: ``"fused"`` (the fused ICA vector loses more), ``"concatenation"`` or ``"same"``.
        loss_fused: the fused vector's Recall@20 without masking minus with half the texts masked
            (ICA's predicted text standing in).
        loss_concat: the same for the concatenation of the raw tables (a ridge-regression stand-in).
        tie: losses closer than this count as ``"same"``.
    """
    from ._predict import check_choice

    diff = float(loss_fused) - float(loss_concat)
    correct = "same" if abs(diff) < tie else ("fused" if diff > 0 else "concatenation")
    measured = f"the fused vector lost {loss_fused:.4f}, the concatenation {loss_concat:.4f}"
    why = {
        "concatenation": "The concatenation's stand-in is predicted from the raw output of an untrained image CNN, "
        "which carries little of what a title says; ICA's stand-in is predicted from an image vector trained to "
        "agree with the text, by a predictor trained for exactly this (the masked-modality term).",
        "fused": "Here ICA's predicted text is a worse guess than a linear one from the raw image features: the "
        "aligned image vectors carry less of the titles than the raw ones (too little ICA training?).",
        "same": "Both stand-ins recover about as much of the missing text.",
    }[correct]
    return check_choice("check_missing_text", prediction, ("fused", "concatenation", "same"), correct, measured, why)
