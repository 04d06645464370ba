"""Exercises of notebook 06 (Table 2 on our data): Recall@K as MMRec defines it, relative gains, one seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks

_CASES = (  # (ranked list, relevant items, k)
    ([4, 9, 1, 7, 3, 8], [9, 3, 5], 5),
    ([4, 9, 1, 7, 3, 8], [9, 3, 5], 2),
    ([2, 0, 5, 6], [6, 1, 8, 9, 10, 11, 12], 3),
    ([1, 2, 3], [3], 3),
    ([5, 6, 7, 8], [0, 1], 4),
)


def _recall(ranked: Sequence[int], relevant: Sequence[int], k: int) -> float:
    return len(set(list(ranked)[:k]) & set(relevant)) / len(set(relevant))


def check_recall_at_k(fn: Callable[[list, list, int], Any]) -> bool:
    """Check ``fn(ranked, relevant, k) -> float``: MMRec's Recall@K of one user."""

    def body() -> None:
        for ranked, relevant, k in _CASES:
            got = as_tensor(attempt(fn, list(ranked), list(relevant), k), "recall").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return one number for the user")
            hits = len(set(ranked[:k]) & set(relevant))
            want = _recall(ranked, relevant, k)
            if (
                abs(want - hits / min(k, len(relevant))) > 1e-9
                and abs(float(got[0]) - hits / min(k, len(relevant))) < 1e-9
            ):
                raise WrongAnswer("MMRec divides by |T_u|, the number of relevant items, not by min(K, |T_u|)")
            if abs(want - hits / k) > 1e-9 and abs(float(got[0]) - hits / k) < 1e-9:
                raise WrongAnswer("that is Precision@K (hits / K); Recall@K divides by the number of relevant items")
            expect_close(got[0], torch.tensor(want, dtype=torch.float64), f"recall@{k} of {ranked} vs {relevant}")

    return run_checks("check_recall_at_k", body, "fill in my_recall_at_k")


def check_relative_gain(fn: Callable[[np.ndarray, np.ndarray], Any]) -> bool:
    """Check ``fn(new, old) -> float``: relative gain of the mean over seeds, ``mean(new)/mean(old) - 1``."""

    def body() -> None:
        for new, old in (([0.110, 0.114, 0.106], [0.100, 0.098, 0.102]), ([0.05, 0.06], [0.06, 0.06])):
            new_a, old_a = np.array(new), np.array(old)
            got = as_tensor(attempt(fn, new_a.copy(), old_a.copy()), "gain").reshape(-1)
            if got.numel() != 1:
                raise WrongAnswer("return one number")
            want = new_a.mean() / old_a.mean() - 1
            g = float(got[0])
            if abs(g - (new_a.mean() - old_a.mean())) < 1e-9:
                raise WrongAnswer("that is the absolute difference; divide it by the old mean")
            if abs(g - new_a.mean() / old_a.mean()) < 1e-9:
                raise WrongAnswer("that is the ratio; the gain is the ratio minus 1")
            if abs(g - 100 * want) < 1e-6:
                raise WrongAnswer("return a fraction (0.1 for +10 %), not a percentage")
            expect_close(got[0], torch.tensor(want, dtype=torch.float64), "relative gain")

    return run_checks("check_relative_gain", body, "fill in my_relative_gain")


def check_one_seed(prediction: Any, diff: float, combined_std: float) -> bool:
    """Predict-then-run: with one run per model, is AlignRec's gap over the best baseline significant?

    The notebook's rule: a difference of means counts when it is larger than twice the combined
    seed-to-seed standard deviation, ``sqrt(std_a**2 + std_b**2)``.

    Args:
        prediction: ``"yes"``, ``"no"`` or ``"cannot tell"``.
        diff: AlignRec's test Recall@20 minus the best baseline's, from the first seed's runs only.
        combined_std: the combined standard deviation of those runs (NaN when each model has one run).
    """
    from ._predict import check_choice

    d, s = float(diff), float(combined_std)
    measured = f"first seed only: AlignRec minus the best baseline {d:+.4f}, combined seed std {s:.4f}"
    if not math.isfinite(s):
        correct = "cannot tell"
        why = (
            "One run per model says nothing about the seed-to-seed spread: the standard deviation of a single "
            "value is undefined (pandas gives NaN), so the two-std rule has nothing to weigh the gap against. "
            "Beware: in Python abs(diff) > 2 * nan is False, so an unguarded script prints 'not significant', a "
            "verdict the data cannot give either. A table with one run per model, as most papers report, is in "
            "this position; only repeated seeds (or a test over users) can tell."
        )
    else:
        correct = "yes" if abs(d) > 2 * s else "no"
        why = (
            "With more than one run per model the rule can be applied: the gap is "
            + ("larger" if correct == "yes" else "not larger")
            + " than twice the combined std."
        )
    return check_choice("check_one_seed", prediction, ("yes", "no", "cannot tell"), correct, measured, why)
