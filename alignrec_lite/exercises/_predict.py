"""Predict-then-run exercises: the learner writes a prediction, runs a measurement, and the checker compares.

The prediction is a word from a short list (``"more"`` / ``"less"``) or a number.
The checker follows the same contract as the other exercises (:mod:`._check`):

* ``...`` or ``None`` (the untouched stub) prints "not attempted yet" and returns ``False``;
* a prediction the measurement contradicts raises :class:`WrongAnswer`, with the measured
  values and the reason, so the learner reads why before opening the solution;
* a right prediction prints "OK", the numbers and the reason, and returns ``True``.

The notebook measures and passes the numbers in; the checker decides from those numbers
which prediction was right, so it stays correct on any data set and any setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._check import NOT_ATTEMPTED, WrongAnswer


def _stub(prediction: Any) -> bool:
    return prediction is None or prediction is Ellipsis


def check_choice(name: str, prediction: Any, choices: Sequence[str], correct: str, measured: str, why: str) -> bool:
    """Compare a one-word prediction with the one the measurement supports.

    Args:
        name: the checker's name (printed).
        prediction: the learner's word (case and surrounding spaces ignored).
        choices: the allowed words.
        correct: the word the measurement supports (one of ``choices``).
        measured: the measured numbers, as a sentence fragment.
        why: the explanation shown with the verdict.

    Returns:
        ``True`` when right, ``False`` for a stub. Raises :class:`WrongAnswer` otherwise.
    """
    if _stub(prediction):
        print(f"{name}: {NOT_ATTEMPTED} (set my_prediction to one of {list(choices)})")
        return False
    if not isinstance(prediction, str) or prediction.strip().lower() not in choices:
        raise WrongAnswer(f"answer with one of {list(choices)}, got {prediction!r}")
    if prediction.strip().lower() != correct:
        raise WrongAnswer(f"you predicted {prediction.strip().lower()!r}, the run says {correct!r}: {measured}. {why}")
    print(f"{name}: OK ({measured}). {why}")
    return True


def check_number(name: str, prediction: Any, measured: float, *, tolerance: float, why: str, unit: str = "") -> bool:
    """Compare a numeric prediction with a measured value (``|prediction - measured| <= tolerance``)."""
    if _stub(prediction):
        print(f"{name}: {NOT_ATTEMPTED} (set my_prediction to a number)")
        return False
    try:
        value = float(prediction)
    except (TypeError, ValueError):
        raise WrongAnswer(f"predict a number, got {prediction!r}") from None
    if not math.isfinite(value) or abs(value - measured) > tolerance:
        raise WrongAnswer(
            f"you predicted {value:.3g}{unit}, the run measured {measured:.3f}{unit} "
            f"(within {tolerance:g} counts as right). {why}"
        )
    print(f"{name}: OK (predicted {value:.3g}{unit}, measured {measured:.3f}{unit}). {why}")
    return True
