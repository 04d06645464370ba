"""Exercises of notebook 07 (long tail and cold start): Gini of exposure, APLT, the tail in the test set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..longtail import beyond_accuracy, gini
from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def check_gini(fn: Callable[[np.ndarray], Any]) -> bool:
    """Check ``fn(exposure) -> float``: the Gini coefficient of non-negative counts (0 = equal)."""

    def body() -> None:
        rng = np.random.default_rng(71)
        cases = [
            np.array([5, 5, 5, 5]),
            np.array([0, 0, 0, 8]),
            rng.integers(0, 30, size=25),
            np.array([9, 0, 3, 1, 0, 7]),
        ]
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


def check_tail_test_share(prediction: Any, train_share: float, test_share: float) -> bool:
    """Predict-then-run: is the tail's share of the test interactions larger than its share of training?

    The tail is chosen from *training* counts (the less popular half of the items).

    Args:
        prediction: ``"larger"``, ``"same"`` (within 0.01) or ``"smaller"``.
        train_share: share of the training interactions that involve a tail item.
        test_share: share of the test interactions that involve a tail item.
    """
    from ._predict import check_choice

    tr, te = float(train_share), float(test_share)
    correct = "same" if abs(te - tr) < 0.01 else ("larger" if te > tr else "smaller")
    measured = f"the tail holds {tr:.1%} of the training interactions and {te:.1%} of the test interactions"
    if correct == "larger":
        why = (
            "Items land in the tail *because* their training count is low, and part of a low count is luck: "
            "which of an item's interactions the random split put into train (an item with no training "
            "interaction at all is in the tail, yet can be bought in test). The test split does not share that "
            "luck, so tail items drift back towards their real popularity: regression to the mean. The head, "
            "chosen for high counts, drifts down. Buckets built from training counts are a selection, and "
            "per-bucket results carry it."
        )
    elif correct == "smaller":
        why = (
            "Here the tail holds less of the test set than of the training set: the random split put more of "
            "its interactions into train than regression to the mean gives back."
        )
    else:
        why = (
            "Here the two shares agree within 0.01: the random split gives train and test the same mix, and "
            "the selection effect of bucketing by training counts is small on this data."
        )
    return check_choice("check_tail_test_share", prediction, ("larger", "same", "smaller"), correct, measured, why)
