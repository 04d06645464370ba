"""Exercises of notebook 07 (long tail and cold start): Gini of exposure, APLT."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..beyond import beyond_accuracy, gini
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def check_gini(fn: Callable[[np.ndarray], Any]) -> bool:
    """Check ``fn(exposure) -> float``: the Gini coefficient of non-negative counts (0 = equal)."""
    def body() -> None:
        rng = np.random.default_rng(71)
        cases = [np.array([5, 5, 5, 5]), np.array([0, 0, 0, 8]), rng.integers(0, 30, size=25),
                 np.array([9, 0, 3, 1, 0, 7])]
        for x in cases:
            got = as_tensor(attempt(fn, x.copy()), "gini").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return one number")
            want = gini(x)
            n, xs = len(x), x.astype(float)
            unsorted = ((2 * np.arange(1, n + 1) - n - 1) * xs).sum() / (n * xs.sum())
            if abs(want - unsorted) > 1e-9 and abs(float(got[0]) - unsorted) < 1e-9:
                raise WrongAnswer("sort the counts in ascending order first")
            if not -1e-9 <= float(got[0]) < 1:
                raise WrongAnswer(f"a Gini coefficient lies in [0, 1), got {float(got[0]):.3f}")
            expect_close(got[0], torch.tensor(want, dtype=torch.float64), f"gini of {x.tolist()[:6]}")

    return run_checks("check_gini", body, "fill in my_gini")


def check_aplt(fn: Callable[[np.ndarray, np.ndarray], Any]) -> bool:
    """Check ``fn(lists, long_tail) -> float``: mean share of long-tail items per top-K list."""
    def body() -> None:
        rng = np.random.default_rng(72)
        tail = rng.random(40) < 0.7
        lists = np.stack([rng.choice(40, size=10, replace=False) for _ in range(15)])
        got = as_tensor(attempt(fn, lists.copy(), tail.copy()), "aplt").reshape(-1)
        if got.numel() != 1:
            raise WrongAnswer("return one number: the average over users")
        want = beyond_accuracy(lists, np.zeros(40), long_tail=tail, n_users=1, ks=(10,))["aplt@10"]
        if abs(float(got[0]) - (1 - want)) < 1e-9:
            raise WrongAnswer("you measured the share of *head* items; APLT counts the long-tail ones")
        if abs(float(got[0]) - tail.mean()) < 1e-9:
            raise WrongAnswer("that is the share of long-tail items in the catalogue, not in the lists")
        expect_close(got[0], torch.tensor(want, dtype=torch.float64), "APLT@10")

    return run_checks("check_aplt", body, "fill in my_aplt")
