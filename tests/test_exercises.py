"""Every exercise checker: a stub is "not attempted yet", a wrong answer raises, the solution passes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import exercise_tests, prediction_tests

from alignrec_lite import exercises as ex
from alignrec_lite.losses import align_loss, clip_loss, info_nce, uniform_loss
from alignrec_lite.teach.contrastive import retrieval_recall


# ----------------------------------------------------------------- reference solutions
def cosine(a, b):
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def nearest(emb, item, k):
    s = cosine(emb, emb[item : item + 1])[:, 0]
    s[item] = -float("inf")
    return s.topk(k).indices


def uniform_manual(x, t):
    d2 = torch.pdist(x).pow(2)
    return (-t * d2).exp().mean().log()


def recall(img, txt, k):
    return retrieval_recall(F.normalize(img, dim=1), F.normalize(txt, dim=1), ks=(k,))[f"recall@{k}"]


CASES = {
    # name: (checker, right answer, wrong answers)
    "cosine": (
        ex.check_cosine_similarity,
        cosine,
        [lambda a, b: a @ b.T, lambda a, b: cosine(a, b).T, lambda a, b: cosine(a, b) + 0.01],
    ),
    "nearest": (
        ex.check_nearest_items,
        nearest,
        [
            lambda e, i, k: (e @ e[i]).index_fill(0, torch.tensor([i]), -1e9).topk(k).indices,
            lambda e, i, k: cosine(e, e[i : i + 1])[:, 0].topk(k).indices,
            lambda e, i, k: nearest(e, i, k).flip(0) if k > 1 else torch.tensor([i]),
        ],
    ),
    "positive_probability": (
        ex.check_positive_probability,
        lambda a, b, t: (cosine(a, b) / t).softmax(1).diagonal(),
        [
            lambda a, b, t: (a @ b.T / t).softmax(1).diagonal(),
            lambda a, b, t: (cosine(a, b) / t).softmax(0).diagonal(),
            lambda a, b, t: cosine(a, b).softmax(1).diagonal(),
            lambda a, b, t: (cosine(a, b) / t).softmax(1),
        ],
    ),
    "clip": (
        ex.check_clip_loss,
        lambda a, b, t: clip_loss(a, b, 1 / t),
        [lambda a, b, t: info_nce(a, b, t), lambda a, b, t: clip_loss(a, b, t)],
    ),
    "align": (
        ex.check_align,
        lambda x, y: align_loss(x, y),
        [lambda x, y: (x - y).norm(dim=1).mean(), lambda x, y: (x - y).pow(2).sum()],
    ),
    "uniform": (
        ex.check_uniform,
        uniform_manual,
        [
            lambda x, t: (-t * torch.cdist(x, x).pow(2)).exp().mean().log(),
            lambda x, t: (-t * torch.pdist(x).pow(2)).exp().mean(),
            lambda x, t: uniform_loss(x, 2.0),
        ],
    ),
    "recall": (
        ex.check_cross_modal_recall,
        recall,
        [
            lambda i, t, k: retrieval_recall(i, t, ks=(k,))[f"recall@{k}"] * 0 + 1.0,
            lambda i, t, k: recall(i, t, k + 1),
            lambda i, t, k: recall(t, i, k) if k == 1 else 2.0,
        ],
    ),
    "fusion": (
        ex.check_mean_fusion,
        lambda a, b: F.normalize(a + b, dim=1),
        [lambda a, b: (a + b) / 2, lambda a, b: torch.cat([a, b], dim=1)],
    ),
}


test_solution_passes, test_stub_is_not_attempted, test_wrong_answers_raise = exercise_tests(CASES)


def test_crashing_answer_is_wrong_not_stub():
    def boom(*args):
        raise ValueError("shape mismatch")

    with pytest.raises(ex.WrongAnswer, match="ValueError"):
        ex.check_align(boom)


def test_numpy_answers_are_accepted(capsys):
    assert ex.check_cosine_similarity(lambda a, b: cosine(a, b).numpy()) is True


def test_wrong_answer_is_an_assertion_error():
    assert issubclass(ex.WrongAnswer, AssertionError)


def test_checker_rejects_non_callable():
    with pytest.raises(ex.WrongAnswer, match="function"):
        ex.check_align(3)


# ------------------------------------------------------------- predict-then-run checkers
PREDICTIONS = {
    # name: (call with a prediction, right prediction, wrong predictions)
    "colour_classifier": (lambda p: ex.check_colour_classifier(p, 0.28, 0.68), "less", ["more", " MORE ", "bigger"]),
    "colour_classifier_reversed": (lambda p: ex.check_colour_classifier(p, 0.7, 0.6), "more", ["less"]),
    "collapse_loss": (lambda p: ex.check_collapse_loss(p, 4.852, 128), 4.85, [0.0, 1.0, 48.5, "log N", float("nan")]),
    "two_clumps": (lambda p: ex.check_two_clumps(p, -0.6926), -0.69, [0.0, -1.58, -4.0, "half"]),
}


(test_prediction_right_passes, test_prediction_stub_is_not_attempted, test_prediction_wrong_raises_with_the_numbers) = (
    prediction_tests(PREDICTIONS)
)


def test_collapsed_clip_loss_is_log_n():
    one = F.normalize(torch.ones(1, 8), dim=1).expand(128, 8)
    for t in (0.05, 1.0):
        assert float(clip_loss(one, one, 1 / t)) == pytest.approx(math.log(128), abs=1e-4)


def test_two_clumps_uniformity_is_about_log_half():
    x = torch.tensor([[1.0, 0.0]] * 500 + [[-1.0, 0.0]] * 500)
    assert float(uniform_loss(x)) == pytest.approx(math.log(0.5), abs=0.01)
