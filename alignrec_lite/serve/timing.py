"""How long serving takes on this machine: whole-catalogue export and single-user requests."""

from __future__ import annotations

import time

import numpy as np

from ..data.mmrec import RecDataset
from ..evaluate import iter_topk
from ..models.base import Recommender


def measure_serving(
    model: Recommender,
    dataset: RecDataset,
    *,
    k: int = 20,
    batch_users: int = 1024,
    n_single: int = 50,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Time offline and per-request serving on this machine.

    * ``prepare_seconds``: one forward pass that caches the final vectors;
    * ``all_users_seconds``: top-``k`` for every user in chunks of ``batch_users``
      (median of ``repeats``), and the same per user in milliseconds;
    * ``single_user_ms``: median latency of scoring + top-``k`` for one user at a
      time (``n_single`` random users) — the real-time case.

    Returns:
        A dict of the timings plus ``n_users``, ``n_items``, ``k``.
    """
    from ..checks import check_export_args, check_int

    k, batch_users, _ = check_export_args(dataset, k, batch_users, None)
    n_single = check_int(n_single, "--n-single", 1, 10**6, example=50)  # 0 gave a NaN median
    repeats = check_int(repeats, "repeats", 1, 1000, example=3)
    t0 = time.perf_counter()
    model.prepare_eval()
    prepare = time.perf_counter() - t0
    exclude = [dataset.interaction_matrix("train")]
    users = np.arange(dataset.n_users)
    runs = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _chunk in iter_topk(model.full_sort_scores, users, k, exclude, batch_users):
            pass
        runs.append(time.perf_counter() - t0)
    all_s = float(np.median(runs))
    rng = np.random.default_rng(seed)
    pick = rng.choice(dataset.n_users, size=min(n_single, dataset.n_users), replace=False)
    lat = []
    for u in pick:
        t0 = time.perf_counter()
        for _chunk in iter_topk(model.full_sort_scores, np.array([u]), k, exclude, 1):
            pass
        lat.append(time.perf_counter() - t0)
    return {
        "prepare_seconds": prepare,
        "all_users_seconds": all_s,
        "per_user_ms_batched": 1000 * all_s / max(1, dataset.n_users),
        "single_user_ms": 1000 * float(np.median(lat)),
        "n_users": int(dataset.n_users),
        "n_items": int(dataset.n_items),
        "k": int(k),
    }


__all__ = ["measure_serving"]
