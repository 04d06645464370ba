"""Filtering and splitting interactions the way MMRec's notebooks do (ALIGNREC_SPEC §3.4).

* :func:`kcore` — iterative k-core on users and items.
* :func:`mmrec_split` — MMRec's random per-user split: shuffle, then per user with
  ``n`` interactions: ``n < 10`` → ``n-2`` train, 1 valid, 1 test; otherwise
  ``v+t = floor(0.2 n)``, ``valid = floor((v+t)/2)``, ``test = (v+t) - valid``.
* :func:`reindex` — 0-based contiguous IDs in order of first appearance.

And the two cold-start splits of :mod:`alignrec_lite.coldstart` (the kit's own protocols):

* :func:`item_disjoint_split` (:class:`ColdItemSplit`) — a share of the items is held
  out *with all their interactions*: train/valid keep the other items (their split is
  unchanged), test is every interaction with a held-out item by a user who still has
  training rows;
* :func:`user_coldstart_split` (:class:`ColdUserSplit`) — a share of the users (those
  with more than ``max_given`` interactions) is held out of every split; each gets a
  fixed random order of their items, the first ``g`` of which are revealed at
  inference and the items after ``max_given`` are the targets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConfigError
from .mmrec import RecDataset


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


# ------------------------------------------------------------------ cold-start splits
def _check_share(share: float) -> None:
    if not 0 < share < 1:
        raise ConfigError(f"share must be in (0, 1), got {share}", row="share", fix="e.g. share=0.2")


def _with_splits(ds: RecDataset, train: np.ndarray, valid: np.ndarray, test: np.ndarray) -> RecDataset:
    return dataclasses.replace(ds, train=train, valid=valid, test=test, timestamps=None)


def _hold_out(
    dataset: RecDataset,
    column: int,
    share: float,
    seed: int,
    min_count: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """The seeded draw both cold-start splits make: a share of the users (column 0) or items (column 1).

    Returns:
        ``(all pairs of the three splits, the held-out IDs sorted, a mask over all IDs, the generator
        after the draw)``; only IDs with at least ``min_count`` pairs are eligible.
    """
    _check_share(share)
    n_total, what = (dataset.n_users, "user") if column == 0 else (dataset.n_items, "item")
    all_pairs = np.concatenate([dataset.train, dataset.valid, dataset.test])
    count = np.bincount(all_pairs[:, column], minlength=n_total)
    eligible = np.flatnonzero(count >= min_count)
    n_cold = int(round(share * len(eligible)))
    if n_cold < 1 or n_cold >= n_total:
        raise ConfigError(
            f"share {share} holds out {n_cold} of {len(eligible)} eligible {what}s",
            row="share",
            fix=f"choose a share that keeps at least one cold and one warm {what}",
        )
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(eligible, size=n_cold, replace=False))
    is_cold = np.zeros(n_total, dtype=bool)
    is_cold[cold] = True
    return all_pairs, cold, is_cold, rng


@dataclass
class ColdItemSplit:
    """An item-disjoint split.

    Attributes:
        dataset: train/valid hold warm items only (as in the original split); test
            holds every interaction with a cold item by a user with training rows.
        cold_items: the held-out itemIDs.
        warm_items: the others.
        original: the dataset before the split.
    """

    dataset: RecDataset
    cold_items: np.ndarray
    warm_items: np.ndarray
    original: RecDataset


def item_disjoint_split(
    dataset: RecDataset, share: float = 0.2, *, seed: int = 0, min_interactions: int = 1
) -> ColdItemSplit:
    """Hold out a random share of the items with all their interactions.

    Args:
        dataset: any dataset (all three splits are pooled per item).
        share: fraction of the eligible items to hold out.
        seed: seed of the draw.
        min_interactions: only items with at least this many interactions in all
            splits together are eligible (so each cold item can be a target).

    Returns:
        A :class:`ColdItemSplit`. No held-out item occurs in its train or valid split.
    """
    all_pairs, cold, is_cold, _ = _hold_out(dataset, 1, share, seed, min_interactions)
    train = dataset.train[~is_cold[dataset.train[:, 1]]]
    valid = dataset.valid[~is_cold[dataset.valid[:, 1]]]
    has_train = np.zeros(dataset.n_users, dtype=bool)
    has_train[train[:, 0]] = True
    valid = valid[has_train[valid[:, 0]]]
    test = all_pairs[is_cold[all_pairs[:, 1]]]
    test = test[has_train[test[:, 0]]]
    test = test[np.lexsort((test[:, 1], test[:, 0]))]
    ds = _with_splits(dataset, train, valid, test)
    return ColdItemSplit(dataset=ds, cold_items=cold, warm_items=np.flatnonzero(~is_cold), original=dataset)


@dataclass
class ColdUserSplit:
    """A user cold-start split.

    Attributes:
        dataset: the training data with the cold users' interactions removed from
            every split (warm users keep their original train/valid/test).
        cold_users: the held-out userIDs.
        orders: for each cold user, all their itemIDs in a fixed random order; the
            first ``g`` are revealed, the items after ``max_given`` are the targets.
        max_given: the largest number of revealed items.
        original: the dataset before the split.
    """

    dataset: RecDataset
    cold_users: np.ndarray
    orders: list[np.ndarray]
    max_given: int
    original: RecDataset

    def given(self, g: int) -> list[np.ndarray]:
        """The first ``g`` items of every cold user."""
        if not 0 <= g <= self.max_given:
            raise ConfigError(f"g must be in 0..{self.max_given}, got {g}", row="given", fix="use a smaller g")
        return [o[:g] for o in self.orders]

    def targets(self) -> sp.csr_matrix:
        """Cold user (row = position in ``cold_users``) x item matrix of the target items."""
        rows = np.concatenate([np.full(len(o) - self.max_given, r) for r, o in enumerate(self.orders)])
        cols = np.concatenate([o[self.max_given :] for o in self.orders])
        return sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self.orders), self.original.n_items)
        )


def user_coldstart_split(
    dataset: RecDataset, share: float = 0.2, *, seed: int = 0, max_given: int = 5
) -> ColdUserSplit:
    """Hold out a random share of the users (with more than ``max_given`` interactions).

    Args:
        dataset: the data; all three splits of a cold user are pooled.
        share: fraction of the eligible users to hold out.
        seed: seed of the draw and of each user's item order.
        max_given: the most items ever revealed; eligible users have at least
            ``max_given + 1`` interactions so that one target is left.

    Returns:
        A :class:`ColdUserSplit`.
    """
    all_pairs, cold, is_cold, rng = _hold_out(dataset, 0, share, seed, max_given + 1)
    order = np.lexsort((all_pairs[:, 1], all_pairs[:, 0]))
    pairs = all_pairs[order]
    pairs = pairs[is_cold[pairs[:, 0]]]
    starts = np.searchsorted(pairs[:, 0], cold)
    ends = np.searchsorted(pairs[:, 0], cold, side="right")
    orders = [rng.permutation(pairs[s:e, 1]) for s, e in zip(starts, ends)]
    ds = _with_splits(dataset, *(a[~is_cold[a[:, 0]]] for a in (dataset.train, dataset.valid, dataset.test)))
    return ColdUserSplit(dataset=ds, cold_users=cold, orders=orders, max_given=max_given, original=dataset)
