"""The checking machinery shared by every notebook's exercises.

A checker calls the learner's function on fixed inputs and compares the result
with the kit's reference:

* a stub (returns ``None`` or ``...``, or raises ``NotImplementedError``)
  prints "not attempted yet" and returns ``False`` — so a notebook with
  untouched exercises still runs top to bottom (and in CI);
* a wrong answer raises :class:`WrongAnswer` with what differed;
* a right answer prints "OK" and returns ``True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

NOT_ATTEMPTED = "not attempted yet"


class WrongAnswer(AssertionError):
    """The learner's function ran but gave a wrong result (the message says how)."""


class _Stub(Exception):
    """Internal: the function is still a stub."""


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; raise :class:`_Stub` if it is still a stub.

    Raises:
        WrongAnswer: ``fn`` is not callable or raised an error other than
            ``NotImplementedError``.
    """
    if not callable(fn):
        raise WrongAnswer(f"expected a function, got {type(fn).__name__}")
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise _Stub from None
    except Exception as exc:  # the learner's bug: report it as a wrong answer, with the cause
        raise WrongAnswer(f"your function raised {type(exc).__name__}: {exc}") from exc
    if out is None or out is Ellipsis:
        raise _Stub
    return out


def as_tensor(x: Any, name: str = "result") -> torch.Tensor:
    """Convert the learner's output (tensor, array, number) to a float64 tensor."""
    try:
        if isinstance(x, torch.Tensor):
            return x.detach().to(torch.float64).cpu()
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise WrongAnswer(f"{name} must be a number, array or tensor, got {type(x).__name__}") from exc


def expect_close(got: Any, want: torch.Tensor, what: str, *, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Raise :class:`WrongAnswer` unless ``got`` has ``want``'s shape and values."""
    g = as_tensor(got, what)
    w = want.detach().to(torch.float64)
    if tuple(g.shape) != tuple(w.shape):
        raise WrongAnswer(f"{what}: expected shape {tuple(w.shape)}, got {tuple(g.shape)}")
    if not torch.allclose(g, w, rtol=rtol, atol=atol):
        err = (g - w).abs().max().item()
        raise WrongAnswer(
            f"{what}: values differ from the reference (max abs difference {err:.3g}); "
            f"expected e.g. {w.flatten()[:3].tolist()}, got {g.flatten()[:3].tolist()}"
        )


def run_checks(name: str, body: Callable[[], None], hint: str) -> bool:
    """Run ``body`` (which calls :func:`attempt` and asserts); print the verdict.

    Returns:
        ``True`` when correct, ``False`` when still a stub. Wrong answers raise.
    """
    try:
        body()
    except _Stub:
        print(f"{name}: {NOT_ATTEMPTED} ({hint})")
        return False
    print(f"{name}: OK")
    return True
