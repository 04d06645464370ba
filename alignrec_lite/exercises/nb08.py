"""Exercises of notebook 08 (efficiency and serving): fold-in of a new user, a power-law fit, batch or request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def check_nightly_job_cost(prediction: Any, batched_ms_per_user: float, single_request_ms: float) -> bool:
    """Predict-then-run: per user, does ranking every user in chunks cost less than one request at a time?

    Args:
        prediction: ``"less"``, ``"same"`` (within a factor 1.5) or ``"more"``.
        batched_ms_per_user: time of the all-users ranking divided by the number of users (ms).
        single_request_ms: median time of scoring and ranking one user alone (ms).
    """
    from ._predict import check_choice

    batched, single = float(batched_ms_per_user), float(single_request_ms)
    ratio = single / batched if batched > 0 else float("inf")
    correct = "less" if ratio > 1.5 else ("more" if ratio < 1 / 1.5 else "same")
    measured = (
        f"nightly job {batched:.4f} ms per user, one request {single:.4f} ms: "
        f"a request costs {ratio:.1f}x the job's share per user"
    )
    same_work = (
        "Both compute the same numbers for a user: one row of the user-item product, the training items "
        "masked, a top-K. "
    )
    if correct == "less":
        why = (
            same_work + "The job does it for a chunk of users at once, so the fixed cost of each call (Python, "
            "masking, launching the product and the top-K) is paid once per chunk instead of once per user. "
            "That is the offline engine's case: the nightly job spreads the overhead over every user, while a "
            "real-time service pays it on every request."
        )
    else:
        why = (
            same_work + "On this run the fixed cost per call was small against the arithmetic, so chunking "
            "the users saved " + ("little." if correct == "same" else "nothing (a busy machine can do this).")
        )
    return check_choice("check_nightly_job_cost", prediction, ("less", "same", "more"), correct, measured, why)
