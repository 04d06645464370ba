"""Self-checking exercises for the notebooks ("Your turn" sections).

Each ``check_*`` function takes the learner's function and

* prints ``"<name>: not attempted yet (...)"`` and returns ``False`` for a stub
  (a body of ``...``, ``pass``/``return None``, or ``raise NotImplementedError``),
* raises :class:`WrongAnswer` (an ``AssertionError``) on a wrong answer, saying
  what differed,
* prints ``"<name>: OK"`` and returns ``True`` on a right one.

Predict-then-run checkers (``check_colour_classifier``, ``check_collapse_loss``,
``check_two_clumps``, ``check_missing_text``, ``check_untrained_bpr``, ``check_one_seed``, ``check_tail_test_share``,
``check_nightly_job_cost``) take the learner's prediction and the measured numbers instead of
a function, with the same three outcomes (see :mod:`._predict`).

So a notebook with untouched exercises runs top to bottom, and CI, which runs
the collapsed solution cells, fails if a reference solution breaks.
"""

from ._check import NOT_ATTEMPTED, WrongAnswer
from .nb01 import check_colour_classifier, check_cosine_similarity, check_nearest_items
from .nb02 import check_clip_loss, check_collapse_loss, check_positive_probability
from .nb03 import check_align, check_two_clumps, check_uniform
from .nb04 import check_cross_modal_recall, check_mean_fusion, check_missing_text
from .nb05 import check_cca_loss, check_uia_loss, check_untrained_bpr
from .nb06 import check_one_seed, check_recall_at_k, check_relative_gain
from .nb07 import check_aplt, check_gini, check_tail_test_share
from .nb08 import check_fold_in_topk, check_nightly_job_cost, check_power_law

__all__ = [
    "NOT_ATTEMPTED",
    "WrongAnswer",
    "check_align",
    "check_aplt",
    "check_cca_loss",
    "check_clip_loss",
    "check_collapse_loss",
    "check_colour_classifier",
    "check_cosine_similarity",
    "check_cross_modal_recall",
    "check_fold_in_topk",
    "check_gini",
    "check_mean_fusion",
    "check_missing_text",
    "check_nearest_items",
    "check_nightly_job_cost",
    "check_one_seed",
    "check_positive_probability",
    "check_power_law",
    "check_recall_at_k",
    "check_relative_gain",
    "check_tail_test_share",
    "check_two_clumps",
    "check_uia_loss",
    "check_uniform",
    "check_untrained_bpr",
]
