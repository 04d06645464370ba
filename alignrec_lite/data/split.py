"""Filtering and splitting interactions the way MMRec's notebooks do (ALIGNREC_SPEC §3.4).

* :func:`kcore` — iterative k-core on users and items.
* :func:`mmrec_split` — MMRec's random per-user split: shuffle, then per user with
  ``n`` interactions: ``n < 10`` → ``n-2`` train, 1 valid, 1 test; otherwise
  ``v+t = floor(0.2 n)``, ``valid = floor((v+t)/2)``, ``test = (v+t) - valid``.
* :func:`reindex` — 0-based contiguous IDs in order of first appearance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def kcore(df: pd.DataFrame, k: int = 5, user_col: str = "user", item_col: str = "item") -> pd.DataFrame:
    """Drop users and items with fewer than ``k`` interactions, repeatedly, until none remain.

    Args:
        df: one row per interaction.
        k: minimum interactions per user and per item.

    Returns:
        The filtered rows (original order and index kept).
    """
    out = df
    while True:
        ucount = out[user_col].map(out[user_col].value_counts())
        icount = out[item_col].map(out[item_col].value_counts())
        keep = (ucount >= k) & (icount >= k)
        if keep.all():
            return out
        out = out[keep]


def reindex(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Map raw IDs to 0..N-1 in order of first appearance.

    Returns:
        ``(codes (len(values),) int64, raw IDs (N,) in code order)``.
    """
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(uniques)


def mmrec_split(users: np.ndarray, seed: int = 999) -> np.ndarray:
    """MMRec's random per-user split.

    Args:
        users: userID of each interaction (any order), shape ``(n,)``.
        seed: seed of the shuffle (MMRec does not record one; the kit fixes it).

    Returns:
        ``x_label`` per interaction, aligned with ``users``: 0 train, 1 valid, 2 test.
        Every user with ``n >= 3`` interactions gets >= 1 train, 1 valid, 1 test.

    >>> lab = mmrec_split(np.array([0] * 5 + [1] * 10), seed=0)
    >>> np.bincount(lab[:5]).tolist(), np.bincount(lab[5:]).tolist()
    ([3, 1, 1], [8, 1, 1])
    """
    users = np.asarray(users)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(users))
    order = perm[np.argsort(users[perm], kind="stable")]  # shuffled, then grouped by user
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)  # position within the user
    n = np.repeat(counts, counts)
    vt = np.where(n < 10, 2, (0.2 * n).astype(np.int64))
    n_valid = np.where(n < 10, 1, vt // 2)
    n_train = n - vt
    lab_sorted = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    out = np.empty(len(users), dtype=np.int64)
    out[order] = lab_sorted
    return out
