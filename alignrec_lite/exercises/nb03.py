"""Exercises of notebook 03 (alignment and uniformity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..losses import align_loss, uniform_loss
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def check_align(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """Check ``fn(x, y) -> scalar`` alignment ``mean ||x_i - y_i||^2`` of unit-norm pairs."""

    def body() -> None:
        x = _unit(50, 8, 5)
        y = F.normalize(x + 0.5 * _unit(50, 8, 6), dim=1)
        got = as_tensor(attempt(fn, x.clone(), y.clone()), "alignment").reshape(-1)
        if got.numel() != 1:
            raise WrongAnswer("return one number: the mean over the pairs")
        want = align_loss(x, y)
        unsquared = (x - y).norm(dim=1).mean()
        if torch.allclose(got[0], unsquared.double(), atol=1e-5):
            raise WrongAnswer("square the distances (alpha = 2)")
        expect_close(got[0], want, "alignment")

    return run_checks("check_align", body, "fill in my_align")


def check_uniform(fn: Callable[[torch.Tensor, float], Any]) -> bool:
    """Check ``fn(x, t) -> scalar`` uniformity ``log mean_{i<j} exp(-t ||x_i - x_j||^2)``."""

    def body() -> None:
        x = _unit(40, 3, 7)
        for t in (2.0, 0.5):
            got = as_tensor(attempt(fn, x.clone(), t), "uniformity").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return one number")
            want = uniform_loss(x, t)
            with_self = (-t * torch.cdist(x, x).pow(2)).exp().mean().log()
            if torch.allclose(got[0], with_self.double(), atol=1e-5):
                raise WrongAnswer("you included each point's distance to itself (i = j): use distinct pairs only")
            expect_close(got[0], want, f"uniformity at t = {t}")

    return run_checks("check_uniform", body, "fill in my_uniform")


def check_two_clumps(prediction: Any, measured: float) -> bool:
    """Predict-then-run: ``l_uniform`` (t = 2) of points split equally between two opposite points.

    Args:
        prediction: the learner's number.
        measured: the uniformity the notebook computed.
    """
    from ._predict import check_number

    why = (
        "About half of the distinct pairs are in the same clump (distance 0, e^0 = 1) and half are "
        "opposite (squared distance 4, e^-8 ≈ 0), so the mean is about 1/2 and l_uniform ≈ log(1/2) = "
        "-0.69. k clumps far apart give about -log k: a uniformity of -2 is worth roughly e^2 ≈ 7 clumps."
    )
    return check_number("check_two_clumps", prediction, float(measured), tolerance=0.15, why=why)
