"""Offline serving: top-K export, new users by fold-in, new items from content, timing.

The episode's suggestion: AlignRec's inference cost makes it a good *offline*
engine (nightly top-K lists for e-mails and marketing jobs) rather than a
real-time one. This package holds what such a job needs, one module per task:

* :mod:`.export` — :func:`export_topk` streams every user's top-K with raw IDs to
  ``.csv``/``.parquet``; :func:`topk_frame`, :func:`read_topk`, :func:`final_vectors`;
* :mod:`.foldin` — :func:`fold_in_users` (``mean`` or ``gradient``), :func:`score_new_users`,
  :func:`recommend_new_user` for a user who is not in the data;
* :mod:`.newitems` — :func:`new_item_vectors`, :func:`encode_new_item`, :func:`score_new_item`
  for an item with no interactions (models with a content path), :func:`stage1_item_encoder`
  for stage 1's fused feature;
* :mod:`.timing` — :func:`measure_serving` times whole-catalogue export and single requests.

Every public name is importable from ``alignrec_lite.serve`` directly.
"""

from .export import EXPORT_COLUMNS, export_topk, final_vectors, read_topk, topk_frame
from .foldin import (
    FOLD_IN_METHODS,
    fold_in_users,
    item_ids_from_raw,
    recommend_new_user,
    score_new_users,
)
from .newitems import encode_new_item, new_item_vectors, score_new_item, stage1_item_encoder
from .timing import measure_serving

__all__ = [
    "EXPORT_COLUMNS",
    "topk_frame",
    "export_topk",
    "read_topk",
    "final_vectors",
    "FOLD_IN_METHODS",
    "fold_in_users",
    "score_new_users",
    "item_ids_from_raw",
    "recommend_new_user",
    "new_item_vectors",
    "encode_new_item",
    "score_new_item",
    "stage1_item_encoder",
    "measure_serving",
]
