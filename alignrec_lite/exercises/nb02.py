"""Exercises of notebook 02 (contrastive learning)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..losses import clip_loss, info_nce
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def _pairs(n: int = 6, d: int = 5, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    return a, a + 0.8 * torch.randn(n, d, generator=g)


def check_positive_probability(fn: Callable[[torch.Tensor, torch.Tensor, float], Any]) -> bool:
    """Check ``fn(image_emb, text_emb, temperature) -> (n,)``: the probability each image gives its own text.

    ``p_k = softmax_j(x̂_k . ŷ_j / temperature)_k`` over the batch's texts ``j``
    (InfoNCE is ``-mean_k log p_k``).
    """

    def body() -> None:
        for t in (0.05, 1.0):
            a, b = _pairs()
            got = attempt(fn, a.clone(), b.clone(), t)
            an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
            want = (an @ bn.T / t).softmax(dim=1).diagonal()  # (n,)
            g = as_tensor(got, "probabilities").reshape(-1)
            raw = (a @ b.T / t).softmax(dim=1).diagonal()
            if g.shape == want.shape and torch.allclose(g, raw.double(), atol=1e-5):
                raise WrongAnswer("you used raw dot products: L2-normalise both sides first")
            wrong_axis = (an @ bn.T / t).softmax(dim=0).diagonal()
            if (
                g.shape == want.shape
                and torch.allclose(g, wrong_axis.double(), atol=1e-5)
                and not torch.allclose(wrong_axis, want)
            ):
                raise WrongAnswer("normalise over the texts of each image (each row), not over the images")
            expect_close(g, want, f"positive probabilities at temperature {t}")

    return run_checks("check_positive_probability", body, "fill in my_positive_probability")


def check_clip_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], Any]) -> bool:
    """Check ``fn(image_emb, text_emb, temperature) -> scalar`` CLIP loss (both directions, averaged)."""

    def body() -> None:
        a, b = _pairs(seed=4)
        t = 0.2
        got = attempt(fn, a.clone(), b.clone(), t)
        want = clip_loss(a, b, logit_scale=1.0 / t)
        one_way = info_nce(a, b, temperature=t)
        g = as_tensor(got, "loss").reshape(())
        if torch.allclose(g, one_way.double(), atol=1e-5):
            raise WrongAnswer("that is only image -> text: average it with text -> image (the transposed logits)")
        expect_close(g, want, "CLIP loss")

    return run_checks("check_clip_loss", body, "fill in my_clip_loss")


def check_collapse_loss(prediction: Any, measured: float, n: int) -> bool:
    """Predict-then-run: the CLIP loss of a batch of ``n`` pairs where every embedding is the same vector.

    Args:
        prediction: the learner's number.
        measured: the loss the notebook computed.
        n: the batch size.
    """
    from ._predict import check_number

    why = (
        f"Every logit of a row is the same, so the softmax gives each of the {n} titles 1/{n} and the "
        f"loss is log {n} = {math.log(n):.3f} — whatever the temperature. log N is the loss of a model "
        "that knows nothing; a trained model's loss is measured against it."
    )
    return check_number(
        "check_collapse_loss", prediction, float(measured), tolerance=0.05 * max(1.0, measured), why=why
    )
