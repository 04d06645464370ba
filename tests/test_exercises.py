"""Exercise checkers of notebooks 01-08: a stub is "not attempted yet", a wrong answer raises, a solution passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import exercise_tests, prediction_tests

from alignrec_lite import exercises as ex
from alignrec_lite.longtail import gini
from alignrec_lite.losses import align_loss, clip_loss, info_nce, uniform_loss
from alignrec_lite.teach.contrastive import retrieval_recall


# ----------------------------------------------------------------- reference solutions, notebooks 01-04
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


# ----------------------------------------------------------------- reference solutions, notebooks 05-08 (as there)
def uia(u, p):
    return 1 - F.cosine_similarity(u, p, dim=1).mean()


def cca(c, i, tau):
    logits = F.normalize(c, dim=1) @ F.normalize(i, dim=1).T / tau
    return F.cross_entropy(logits, torch.arange(len(c)))


def recall_at_k(ranked, relevant, k):
    return len(set(ranked[:k]) & set(relevant)) / len(set(relevant))


def gini_manual(x):
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def aplt(lists, tail):
    return float(tail[lists].mean(axis=1).mean())


def fold_in_topk(item_emb, given, k):
    scores = item_emb @ item_emb[given].mean(0)
    scores[given] = -float("inf")
    return scores.topk(k).indices


def power_law(sizes, seconds):
    return np.polyfit(np.log(sizes), np.log(seconds), 1)[0]


CASES = {
    # name: (checker, right answer, wrong answers)
    # notebooks 01-04
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
    "cross_modal_recall": (
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
    # notebooks 05-08
    "uia": (
        ex.check_uia_loss,
        uia,
        [
            lambda u, p: F.cosine_similarity(u, p, dim=1).mean(),
            lambda u, p: 1 - (u * p).sum(1).mean(),
            lambda u, p: 1 - F.cosine_similarity(u, p, dim=1),
        ],
    ),
    "cca": (
        ex.check_cca_loss,
        cca,
        [
            lambda c, i, t: F.cross_entropy(c @ i.T / t, torch.arange(len(c))),
            lambda c, i, t: info_nce(i, c, t),
            lambda c, i, t: info_nce(c, i, 1.0),
            lambda c, i, t: info_nce(c, i, t) + info_nce(i, c, t),
        ],
    ),
    "recall_at_k": (
        ex.check_recall_at_k,
        recall_at_k,
        [
            lambda r, t, k: len(set(r[:k]) & set(t)) / min(k, len(t)),
            lambda r, t, k: len(set(r[:k]) & set(t)) / k,
            lambda r, t, k: len(set(r) & set(t)) / len(t),
        ],
    ),
    "gain": (
        ex.check_relative_gain,
        lambda new, old: new.mean() / old.mean() - 1,
        [
            lambda new, old: new.mean() - old.mean(),
            lambda new, old: new.mean() / old.mean(),
            lambda new, old: 100 * (new.mean() / old.mean() - 1),
            lambda new, old: new / old - 1,
        ],
    ),
    "gini": (
        ex.check_gini,
        gini_manual,
        [
            lambda x: gini(x) + 0.01,
            lambda x: float(np.std(x) / max(np.mean(x), 1e-9)),
            lambda x: float(((2 * np.arange(1, len(x) + 1) - len(x) - 1) * x).sum() / (len(x) * x.sum())),
        ],
    ),
    "aplt": (
        ex.check_aplt,
        aplt,
        [
            lambda lists, tail: 1 - aplt(lists, tail),
            lambda lists, tail: float(tail.mean()),
            lambda lists, tail: float(tail[np.unique(lists)].mean()),
        ],
    ),
    "fold_in": (
        ex.check_fold_in_topk,
        fold_in_topk,
        [
            lambda e, g, k: (e @ e[g].mean(0)).topk(k).indices,
            lambda e, g, k: fold_in_topk(e, g, k).flip(0),
            lambda e, g, k: fold_in_topk(e, g, k + 1),
        ],
    ),
    "power_law": (
        ex.check_power_law,
        power_law,
        [
            lambda s, t: np.polyfit(s, t, 1)[0],
            lambda s, t: power_law(s, t) + 0.1,
            lambda s, t: np.array([power_law(s, t), 1.0]),
        ],
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


@pytest.mark.parametrize(
    "checker, wrong, hint",
    [
        (ex.check_uia_loss, lambda u, p: F.cosine_similarity(u, p, dim=1).mean(), "1 minus"),
        (ex.check_cca_loss, lambda c, i, t: info_nce(i, c, t), "direction"),
        (ex.check_recall_at_k, lambda r, t, k: len(set(r[:k]) & set(t)) / min(k, len(t)), "min"),
        (ex.check_aplt, lambda lists, tail: 1 - aplt(lists, tail), "head"),
        (ex.check_fold_in_topk, lambda e, g, k: (e @ e[g].mean(0)).topk(k).indices, "mask"),
    ],
)
def test_common_mistakes_get_a_hint(checker, wrong, hint):
    with pytest.raises(ex.WrongAnswer, match=hint):
        checker(wrong)


# ------------------------------------------------------------- predict-then-run checkers
NAN = float("nan")
PREDICTIONS = {
    # name: (call with a prediction, right prediction, wrong predictions)
    # notebooks 01-04
    "colour_classifier": (lambda p: ex.check_colour_classifier(p, 0.28, 0.68), "less", ["more", " MORE ", "bigger"]),
    "colour_classifier_reversed": (lambda p: ex.check_colour_classifier(p, 0.7, 0.6), "more", ["less"]),
    "collapse_loss": (lambda p: ex.check_collapse_loss(p, 4.852, 128), 4.85, [0.0, 1.0, 48.5, "log N", float("nan")]),
    "two_clumps": (lambda p: ex.check_two_clumps(p, -0.6926), -0.69, [0.0, -1.58, -4.0, "half"]),
    "missing_text": (lambda p: ex.check_missing_text(p, 0.0659, 0.1033), "concatenation", ["fused", "same", "concat"]),
    "missing_text_fused": (lambda p: ex.check_missing_text(p, 0.12, 0.05), " Fused ", ["concatenation", "same"]),
    "missing_text_same": (lambda p: ex.check_missing_text(p, 0.0661, 0.0639), "same", ["fused", "concatenation"]),
    # notebooks 05-08
    "untrained_bpr": (lambda p: ex.check_untrained_bpr(p, 0.6934), 0.693, [0.0, 1.5, "log 2", NAN]),
    "one_seed": (lambda p: ex.check_one_seed(p, 0.021, NAN), "cannot tell", ["yes", "no", " No ", "maybe"]),
    "one_seed_with_spread": (lambda p: ex.check_one_seed(p, 0.038, 0.010), "yes", ["no", "cannot tell"]),
    "one_seed_within_noise": (lambda p: ex.check_one_seed(p, 0.016, 0.015), "no", ["yes", "cannot tell"]),
    "tail_test_share": (lambda p: ex.check_tail_test_share(p, 0.263, 0.296), "larger", ["same", "smaller", "more"]),
    "tail_test_share_equal": (lambda p: ex.check_tail_test_share(p, 0.263, 0.268), "same", ["larger", "smaller"]),
    "tail_test_share_smaller": (lambda p: ex.check_tail_test_share(p, 0.30, 0.25), "smaller", ["larger", "same"]),
    "nightly_job": (lambda p: ex.check_nightly_job_cost(p, 0.0066, 0.336), "less", ["same", "more", "cheaper"]),
    "nightly_job_no_gain": (lambda p: ex.check_nightly_job_cost(p, 0.30, 0.33), "same", ["less", "more"]),
    "nightly_job_dearer": (lambda p: ex.check_nightly_job_cost(p, 0.9, 0.3), "more", ["less", "same"]),
}


(test_prediction_right_passes, test_prediction_stub_is_not_attempted, test_prediction_wrong_raises_with_the_numbers) = (
    prediction_tests(PREDICTIONS)
)


@pytest.mark.parametrize(
    "check, args, numbers",
    [
        (ex.check_one_seed, ("no", 0.021, NAN), ["+0.0210", "nan"]),
        (ex.check_missing_text, ("fused", 0.0659, 0.1033), ["0.0659", "0.1033"]),
        (ex.check_tail_test_share, ("same", 0.263, 0.296), ["26.3%", "29.6%"]),
        (ex.check_nightly_job_cost, ("same", 0.0066, 0.336), ["0.0066", "0.3360"]),
    ],
)
def test_wrong_prediction_shows_the_measured_numbers(check, args, numbers):
    with pytest.raises(ex.WrongAnswer) as info:
        check(*args)
    assert all(n in str(info.value) for n in numbers)


def test_collapsed_clip_loss_is_log_n():
    one = F.normalize(torch.ones(1, 8), dim=1).expand(128, 8)
    for t in (0.05, 1.0):
        assert float(clip_loss(one, one, 1 / t)) == pytest.approx(math.log(128), abs=1e-4)


def test_two_clumps_uniformity_is_about_log_half():
    x = torch.tensor([[1.0, 0.0]] * 500 + [[-1.0, 0.0]] * 500)
    assert float(uniform_loss(x)) == pytest.approx(math.log(0.5), abs=0.01)


def test_one_seed_has_no_spread():
    """The measurement notebook 06 makes: pandas' sample std of one run per model is NaN."""
    import pandas as pd

    one = pd.DataFrame({"model": ["AlignRec", "VBPR"], "recall@20": [0.43, 0.40]})
    s = one.groupby("model")["recall@20"].std()
    assert np.isnan(np.hypot(s["AlignRec"], s["VBPR"]))
