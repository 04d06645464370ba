"""Exercises of notebook 08 (efficiency and serving): fold-in of a new user, a power-law fit."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..plots.evaluation import fit_power_law
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def check_fold_in_topk(fn: Callable[[torch.Tensor, Sequence[int], int], Any]) -> bool:
    """Check ``fn(item_emb, given, k) -> k itemIDs``: rank by the mean of the given items' vectors,
    never returning a given item."""
    def body() -> None:
        g = torch.Generator().manual_seed(81)
        items = torch.randn(30, 5, generator=g)
        for given, k in (([3, 17, 4], 5), ([0], 3)):
            got = as_tensor(attempt(fn, items.clone(), list(given), k), "top-k").reshape(-1).long()
            user = items[given].mean(0)
            scores = items @ user
            masked = scores.clone()
            masked[given] = -torch.inf
            want = torch.sort(masked, descending=True, stable=True).indices[:k]
            if len(got) != k:
                raise WrongAnswer(f"return exactly k = {k} itemIDs, got {len(got)}")
            if set(got.tolist()) & set(given):
                raise WrongAnswer("a given item is in the list: the user already has it, mask it out")
            expect_close(got.double(), want.double(), f"top-{k} for given items {given}", atol=0, rtol=0)

    return run_checks("check_fold_in_topk", body, "fill in my_fold_in_topk")


def check_power_law(fn: Callable[[np.ndarray, np.ndarray], Any]) -> bool:
    """Check ``fn(sizes, seconds) -> b``: the exponent of ``t = a n^b`` fitted in log-log space."""
    def body() -> None:
        rng = np.random.default_rng(82)
        sizes = np.array([500, 1000, 2000, 4000, 8000], dtype=float)
        for b_true in (1.0, 1.7):
            seconds = 2e-4 * sizes**b_true * np.exp(rng.normal(0, 0.05, size=len(sizes)))
            got = as_tensor(attempt(fn, sizes.copy(), seconds.copy()), "exponent").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return the exponent b only (one number)")
            _, want = fit_power_law(sizes, seconds)
            slope_lin = np.polyfit(sizes, seconds, 1)[0]
            if abs(float(got[0]) - slope_lin) < 1e-9:
                raise WrongAnswer("fit a line to log(seconds) against log(sizes), not to the raw values")
            expect_close(got[0], torch.tensor(want, dtype=torch.float64), "power-law exponent", rtol=1e-3)

    return run_checks("check_power_law", body, "fill in my_power_law")
