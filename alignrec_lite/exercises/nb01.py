"""Exercises of notebook 01 (embeddings and similarity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._check import WrongAnswer, as_tensor, attempt, expect_close, run_checks


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 4, generator=g) * torch.tensor([[0.5], [1.0], [3.0], [0.2], [8.0]])  # varied norms
    b = torch.randn(7, 4, generator=g) * 2.0
    return a, b


def check_cosine_similarity(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """Check ``fn(a, b) -> (n, m)`` cosine similarities between the rows of ``a`` and of ``b``.

    Shape:
        a: ``(n, d)``, b: ``(m, d)``; result ``(n, m)``.
    """

    def body() -> None:
        a, b = _inputs()
        got = attempt(fn, a.clone(), b.clone())
        want = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T  # (5, 7)
        dots = a @ b.T
        g = as_tensor(got)
        if g.shape == want.shape and torch.allclose(g, dots.double(), atol=1e-4):
            raise WrongAnswer("that is the dot product: divide by the two vectors' lengths")
        expect_close(got, want, "cosine similarity")

    return run_checks("check_cosine_similarity", body, "fill in my_cosine_similarity")


def check_nearest_items(fn: Callable[[torch.Tensor, int, int], Any]) -> bool:
    """Check ``fn(item_emb, item, k) -> k item indices``, most cosine-similar first, ``item`` excluded."""

    def body() -> None:
        g = torch.Generator().manual_seed(2)
        emb = torch.randn(30, 6, generator=g) * torch.rand(30, 1, generator=g).mul(5).add(0.1)  # (30, 6)
        for item, k in ((3, 5), (17, 1)):
            got = attempt(fn, emb.clone(), item, k)
            idx = as_tensor(got, "neighbours").long().flatten().tolist()
            sims = F.normalize(emb, dim=1) @ F.normalize(emb[item], dim=0)  # (30,)
            sims[item] = -float("inf")
            want = sims.topk(k).indices.tolist()
            if item in idx:
                raise WrongAnswer("the item itself is in the result: exclude it")
            dot_order = (emb @ emb[item]).index_fill(0, torch.tensor([item]), -float("inf")).topk(k).indices
            if idx == dot_order.tolist() and idx != want:
                raise WrongAnswer("these are the largest dot products: rank by cosine instead")
            if idx != want:
                raise WrongAnswer(f"item {item}, k={k}: expected {want}, got {idx}")

    return run_checks("check_nearest_items", body, "fill in my_nearest_items")


def check_colour_classifier(prediction: Any, category_p10_colour_classifier: float, category_p10_pixels: float) -> bool:
    """Predict-then-run: will a classifier trained on *colour* keep the category in its neighbours?

    Args:
        prediction: ``"more"`` or ``"less"`` — do the neighbours in the colour classifier's
            hidden layer share the item's category more or less often than raw pixels' neighbours?
        category_p10_colour_classifier, category_p10_pixels: the measured category precision@10.
    """
    from ._predict import check_choice

    clf, pix = float(category_p10_colour_classifier), float(category_p10_pixels)
    correct = "less" if clf < pix else "more"
    measured = f"category precision@10 {clf:.2f} in the colour classifier's space, {pix:.2f} in raw pixels"
    why = (
        "A classifier keeps what its labels need: trained on colour, it no longer has to tell a mug from "
        "a lamp, so it lets the shape go."
        if correct == "less"
        else "Here the colour classifier kept more of the category than the pixels: its hidden layer did not "
        "throw the shape away on this run."
    )
    return check_choice("check_colour_classifier", prediction, ("more", "less"), correct, measured, why)
