"""Evaluation beyond accuracy: the long tail and what the top-K lists look like.

The reference rankings (popularity, content kNN, ...) are in :mod:`alignrec_lite.scorers`.

AlignRec (Liu et al., CIKM 2024, Figure 5) argues that aligned content helps most
where IDs are weak: on **long-tail items** with few training interactions. The
paper's exact protocol could not be read (ALIGNREC_SPEC §5.4), so the kit uses
the usual one:

* **Popularity buckets.** Items are grouped by their number of *training*
  interactions ``pop_i``. With thresholds ``t_1 < … < t_{B-1}`` = quantiles of
  ``pop`` over all items, item ``i`` lands in bucket ``b`` when
  ``t_b < pop_i <= t_{b+1}`` (``t_0 = -inf``, ``t_B = +inf``); by default
  quantiles 0.5 and 0.8 give *tail* (the less popular half of the items), *mid*
  and *head* (the top ~20 %). Ties stay together, so buckets can be uneven.
* **Metrics per bucket.** The full ranking is unchanged (all items compete); for
  bucket ``b`` only the test items of that bucket count as relevant::

      Recall_b@K = (1/|U_b|) sum_u |top-K(u) ∩ T_u ∩ I_b| / |T_u ∩ I_b|
      NDCG_b@K   = the usual NDCG with T_u ∩ I_b as the relevant set

  averaged over the users ``U_b`` with at least one test item in the bucket.

Beyond-accuracy measures of a set of top-K lists ``L_u`` (Kaminskas & Bridge,
ACM TiiS 2016; Abdollahpouri et al., FLAIRS 2019)::

    coverage@K  = |∪_u L_u| / n_items                   (catalogue coverage)
    gini@K      = sum_i (2i - n - 1) c_(i) / (n sum_i c_i), c = exposure counts
                  sorted ascending over all n items        (0 = equal exposure)
    aplt@K      = mean_u |L_u ∩ long tail| / |L_u|        (long tail = not head)
    novelty@K   = mean over recommended items of -log2(max(pop_i, 1) / n_users)
    avg_pop@K   = mean training popularity of the recommended items
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data.mmrec import RecDataset
from .errors import ConfigError
from .evaluate import (
    ScoreFn,
    hits_matrix,
    iter_topk,
    metrics_from_hits,
    metrics_of_lists,
)

HEAD_MID_TAIL = ("tail", "mid", "head")


# ------------------------------------------------------------------ buckets
@dataclass
class PopularityBuckets:
    """Items grouped by training popularity.

    Attributes:
        labels: one name per bucket, least popular first.
        item_bucket: bucket index of every item, shape ``(n_items,)``.
        thresholds: the ``B - 1`` count thresholds (quantiles of popularity).
        popularity: training interactions per item, shape ``(n_items,)``.
    """

    labels: list[str]
    item_bucket: np.ndarray
    thresholds: np.ndarray
    popularity: np.ndarray

    @property
    def n_buckets(self) -> int:
        """Number of buckets."""
        return len(self.labels)

    def items(self, bucket: int | str) -> np.ndarray:
        """Item IDs of one bucket (by index or label)."""
        b = self.labels.index(bucket) if isinstance(bucket, str) else int(bucket)
        return np.flatnonzero(self.item_bucket == b)

    def table(self) -> pd.DataFrame:
        """One row per bucket: label, number of items, popularity range, share of interactions."""
        total = max(1, int(self.popularity.sum()))
        rows = []
        for b, label in enumerate(self.labels):
            pop = self.popularity[self.item_bucket == b]
            rows.append(
                {
                    "bucket": label,
                    "items": int(len(pop)),
                    "min_pop": int(pop.min()) if len(pop) else None,
                    "max_pop": int(pop.max()) if len(pop) else None,
                    "share_of_train": float(pop.sum() / total),
                }
            )
        return pd.DataFrame(rows)


def popularity_buckets(
    popularity: np.ndarray,
    quantiles: Sequence[float] | None = None,
    *,
    n_buckets: int | None = None,
    labels: Sequence[str] | None = None,
) -> PopularityBuckets:
    """Group items into popularity buckets by quantiles of their training count.

    Args:
        popularity: training interactions per item, shape ``(n_items,)``
            (``RecDataset.item_popularity("train")``).
        quantiles: increasing values in (0, 1); default ``(0.5, 0.8)`` with labels
            tail / mid / head.
        n_buckets: instead of ``quantiles``, ``n`` equal-probability buckets
            (quantiles ``1/n, …, (n-1)/n``), labelled ``q1`` (least popular) … ``qn``.
        labels: bucket names, least popular first (``len(quantiles) + 1`` of them).

    Returns:
        A :class:`PopularityBuckets`.

    Raises:
        ConfigError: quantiles not increasing or outside (0, 1), wrong number of labels.

    >>> b = popularity_buckets(np.array([0, 1, 1, 2, 5, 9, 30, 3, 4, 2]))
    >>> b.labels, b.item_bucket.tolist()
    (['tail', 'mid', 'head'], [0, 0, 0, 0, 1, 2, 2, 1, 1, 0])
    """
    pop = np.asarray(popularity)
    if quantiles is not None and n_buckets is not None:
        raise ConfigError("give quantiles or n_buckets, not both", row="n_buckets", fix="drop one of them")
    if n_buckets is not None:
        if n_buckets < 1:
            raise ConfigError(f"n_buckets must be >= 1, got {n_buckets}", row="n_buckets", fix="e.g. n_buckets=5")
        quantiles = [b / n_buckets for b in range(1, n_buckets)]
        labels = labels or [f"q{b + 1}" for b in range(n_buckets)]
    elif quantiles is None:
        quantiles = (0.5, 0.8)
        labels = labels or list(HEAD_MID_TAIL)
    q = np.asarray(quantiles, dtype=float)
    if q.size and (np.any(q <= 0) or np.any(q >= 1) or np.any(np.diff(q) <= 0)):
        raise ConfigError(
            f"quantiles must increase strictly inside (0, 1), got {list(quantiles)}",
            row="quantiles",
            fix="e.g. quantiles=(0.5, 0.8)",
        )
    labels = list(labels) if labels is not None else [f"q{b + 1}" for b in range(len(q) + 1)]
    if len(labels) != len(q) + 1:
        raise ConfigError(
            f"{len(q) + 1} buckets need {len(q) + 1} labels, got {len(labels)}",
            row="labels",
            fix="give one label per bucket, least popular first",
        )
    thr = np.quantile(pop, q) if q.size else np.zeros(0)
    item_bucket = np.searchsorted(thr, pop, side="left").astype(np.int64)  # pop <= t_1 -> bucket 0
    return PopularityBuckets(labels=labels, item_bucket=item_bucket, thresholds=thr, popularity=pop)


def long_tail_mask(popularity: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Boolean mask of long-tail items: everything outside the head bucket.

    The head is the bucket above the ``1 - head_share`` quantile of popularity
    (the same rule as :func:`popularity_buckets`).

    Shape:
        ``(n_items,)`` bool.
    """
    if not 0 < head_share < 1:
        raise ConfigError(f"head_share must be in (0, 1), got {head_share}", row="head_share", fix="e.g. 0.2")
    b = popularity_buckets(popularity, (1 - head_share,), labels=("tail", "head"))
    return b.item_bucket == 0


# ------------------------------------------------------------------ top-K lists
def topk_lists(
    score_fn: ScoreFn,
    dataset: RecDataset,
    users: np.ndarray | None = None,
    *,
    k: int = 20,
    split: str = "test",
    exclude: Sequence[sp.csr_matrix] | None = None,
    mask_valid: bool = False,
    batch_users: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item lists of many users (training items masked, as in evaluation).

    Args:
        score_fn: user IDs ``(b,)`` -> scores ``(b, n_items)``.
        dataset: the data (its train split is masked unless ``exclude`` is given).
        users: the users (default: those with an interaction in ``split``).
        k: list length.
        split: which split's users to take when ``users`` is None.
        exclude: matrices of items to mask (default: train, plus valid if ``mask_valid``).
        mask_valid: also mask validation items.
        batch_users: users scored at once.

    Returns:
        ``(users (n,), lists (n, k))``; a slot is ``-1`` when fewer than ``k``
        items could be ranked (all others masked).
    """
    if users is None:
        users = np.flatnonzero(np.diff(dataset.interaction_matrix(split).indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    if exclude is None:
        exclude = [dataset.interaction_matrix("train")]
        if mask_valid:
            exclude.append(dataset.interaction_matrix("valid"))
    out = np.full((len(users), min(k, dataset.n_items)), -1, dtype=np.int64)
    row = 0
    for chunk, top, scores in iter_topk(score_fn, users, k, list(exclude), batch_users):
        t = top.numpy().copy()  # (b, k)
        t[~torch.isfinite(scores).numpy()] = -1
        out[row : row + len(chunk), : t.shape[1]] = t
        row += len(chunk)
    return users, out


# ------------------------------------------------------------------ metrics
def bucket_metrics(
    lists: np.ndarray,
    users: np.ndarray,
    truth: sp.csr_matrix,
    buckets: PopularityBuckets,
    ks: Sequence[int] = (20,),
) -> pd.DataFrame:
    """Recall@K and NDCG@K per popularity bucket (relevant = test items of that bucket).

    Args:
        lists: ``(n, K)`` top-K item IDs from :func:`topk_lists` (``K >= max(ks)``).
        users: ``(n,)`` their user IDs.
        truth: user x item matrix of the evaluated split.
        buckets: from :func:`popularity_buckets`.
        ks: cut-offs.

    Returns:
        One row per bucket: ``bucket``, ``items``, ``interactions`` (test pairs
        whose item is in the bucket), ``users`` (with at least one), and
        ``recall@K`` / ``ndcg@K`` averaged over those users (NaN if none).
    """
    n_items = len(buckets.item_bucket)
    if max(ks) > lists.shape[1] >= n_items:  # a list of the whole catalogue: K beyond it adds empty slots
        lists = np.pad(lists, ((0, 0), (0, max(ks) - lists.shape[1])), constant_values=-1)
    if max(ks) > lists.shape[1]:
        raise ConfigError(
            f"lists hold {lists.shape[1]} items but K = {max(ks)} was asked",
            row="ks",
            fix="rank deeper (topk_lists(k=...)) or lower K",
        )
    hits = hits_matrix(lists, users, truth)  # (n, K)
    lb = np.where(lists >= 0, buckets.item_bucket[np.maximum(lists, 0)], -1)  # (n, K) bucket of each slot
    sub = truth[users].tocoo()
    gt_bucket = buckets.item_bucket[sub.col]
    rows = []
    for b, label in enumerate(buckets.labels):
        n_pos = np.bincount(sub.row[gt_bucket == b], minlength=len(users))  # (n,)
        keep = n_pos > 0
        row = {
            "bucket": label,
            "items": int((buckets.item_bucket == b).sum()),
            "interactions": int(n_pos.sum()),
            "users": int(keep.sum()),
        }
        if keep.any():
            h = torch.from_numpy(hits[keep] & (lb[keep] == b))
            m = metrics_from_hits(h, torch.from_numpy(n_pos[keep]), ks)
            for k in ks:
                row[f"recall@{k}"] = float(m[f"recall@{k}"].mean())
                row[f"ndcg@{k}"] = float(m[f"ndcg@{k}"].mean())
        else:
            for k in ks:
                row[f"recall@{k}"] = row[f"ndcg@{k}"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal, -> 1 = one holds all).

    ``G = sum_i (2i - n - 1) x_(i) / (n sum x)`` with ``x`` sorted ascending, ``i`` 1-based.

    >>> gini(np.array([1, 1, 1, 1])), gini(np.array([0, 0, 0, 4]))
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def exposure(lists: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists contain each item. Shape: ``(n_items,)`` int."""
    flat = lists[lists >= 0]
    return np.bincount(flat, minlength=n_items)


def beyond_accuracy(
    lists: np.ndarray,
    popularity: np.ndarray,
    *,
    long_tail: np.ndarray | None = None,
    n_users: int | None = None,
    ks: Sequence[int] = (20,),
) -> dict[str, float]:
    """Coverage, Gini of exposure, APLT, novelty and mean popularity of top-K lists.

    Args:
        lists: ``(n, K)`` item IDs (``-1`` = empty slot).
        popularity: training interactions per item, ``(n_items,)``.
        long_tail: bool mask of long-tail items (default :func:`long_tail_mask`).
        n_users: users in training, for novelty's ``p_i = pop_i / n_users``
            (default: ``max(popularity)``, which is wrong for real data — pass it).
        ks: cut-offs (each ``<= K``).

    Returns:
        ``{"coverage@20": …, "gini@20": …, "aplt@20": …, "novelty@20": …, "avg_pop@20": …}``.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    n_items = len(pop)
    tail = long_tail_mask(pop) if long_tail is None else np.asarray(long_tail, dtype=bool)
    n_users = int(n_users) if n_users is not None else int(max(1, pop.max()))
    info = -np.log2(np.maximum(pop, 1.0) / n_users)  # (n_items,) self-information
    out: dict[str, float] = {}
    for k in ks:
        lk = lists[:, :k]
        valid = lk >= 0
        safe = np.maximum(lk, 0)
        exp = exposure(lk, n_items)
        n_rec = max(1, int(valid.sum()))
        per_user_len = np.maximum(valid.sum(1), 1)
        out[f"coverage@{k}"] = float((exp > 0).sum() / n_items)
        out[f"gini@{k}"] = gini(exp)
        out[f"aplt@{k}"] = float(((tail[safe] & valid).sum(1) / per_user_len).mean()) if len(lk) else 0.0
        out[f"novelty@{k}"] = float((info[safe] * valid).sum() / n_rec)
        out[f"avg_pop@{k}"] = float((pop[safe] * valid).sum() / n_rec)
    return out


# ------------------------------------------------------------------ reports
def long_tail_report(
    scorers: Mapping[str, ScoreFn],
    dataset: RecDataset,
    *,
    split: str = "test",
    buckets: PopularityBuckets | None = None,
    k: int = 20,
    mask_valid: bool = False,
    batch_users: int = 1024,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-bucket accuracy and beyond-accuracy measures for several models, one ranking pass each.

    Args:
        scorers: model name -> score function (``model.full_sort_scores``).
        dataset: the data.
        split: evaluated split.
        buckets: default :func:`popularity_buckets` of the training popularity.
        k: cut-off.
        mask_valid: also mask validation items at test time.
        batch_users: users scored at once.

    Returns:
        ``(per-bucket table with a "model" column, beyond-accuracy table, one row per model)``.
    """
    from .checks import check_evaluate_args

    (k,), batch_users, _ = check_evaluate_args(dataset, split, (k,), batch_users, None)  # k=0, split='train', ...
    pop = dataset.item_popularity("train")
    buckets = buckets or popularity_buckets(pop)
    truth = dataset.interaction_matrix(split)
    n_train_users = int((dataset.user_degree("train") > 0).sum())
    tail = buckets.item_bucket < buckets.n_buckets - 1 if buckets.n_buckets > 1 else np.ones(len(pop), bool)
    per_bucket, beyond = [], []
    for name, fn in scorers.items():
        users, lists = topk_lists(fn, dataset, k=k, split=split, mask_valid=mask_valid, batch_users=batch_users)
        df = bucket_metrics(lists, users, truth, buckets, ks=(k,))
        df.insert(0, "model", name)
        per_bucket.append(df)
        row = {"model": name, **metrics_of_lists(lists, users, truth, (k,))}
        row.update(beyond_accuracy(lists, pop, long_tail=tail, n_users=n_train_users, ks=(k,)))
        beyond.append(row)
    return pd.concat(per_bucket, ignore_index=True), pd.DataFrame(beyond)


def as_table(rows: Sequence[Mapping], index: str | None = None) -> pd.DataFrame:
    """Result rows (dicts) as a DataFrame, optionally indexed by one column (for notebooks and reports)."""
    df = pd.DataFrame(list(rows))
    return df.set_index(index) if index is not None else df


#: MMRec's published full-ranking results on Amazon Baby, Sports and Electronics
#: (``enoche/MMRec`` ``evaluation/README.md``; ALIGNREC_SPEC §5.1). For orientation only:
#: they are *not* AlignRec's Table 2, and they select hyper-parameters on test.
MMREC_PUBLISHED: dict[str, dict[str, tuple[float, float, float, float, float, float]]] = {
    # dataset -> model -> (R@10, R@20, R@50, N@10, N@20, N@50)
    "baby": {
        "BPR": (0.0357, 0.0575, 0.1054, 0.0192, 0.0249, 0.0345),
        "LightGCN": (0.0479, 0.0754, 0.1333, 0.0257, 0.0328, 0.0445),
        "VBPR": (0.0423, 0.0663, 0.1212, 0.0223, 0.0284, 0.0396),
        "FREEDOM": (0.0627, 0.0992, 0.1655, 0.0330, 0.0424, 0.0558),
    },
    "sports": {
        "BPR": (0.0432, 0.0653, 0.1083, 0.0241, 0.0298, 0.0385),
        "LightGCN": (0.0569, 0.0864, 0.1414, 0.0311, 0.0387, 0.0498),
        "VBPR": (0.0558, 0.0856, 0.1391, 0.0307, 0.0384, 0.0492),
        "FREEDOM": (0.0717, 0.1089, 0.1768, 0.0385, 0.0481, 0.0618),
    },
    "elec": {
        "BPR": (0.0235, 0.0367, 0.0621, 0.0127, 0.0161, 0.0212),
        "LightGCN": (0.0363, 0.0540, 0.0879, 0.0204, 0.0250, 0.0318),
        "VBPR": (0.0293, 0.0458, 0.0778, 0.0159, 0.0202, 0.0267),
        "FREEDOM": (0.0396, 0.0601, 0.0998, 0.0220, 0.0273, 0.0353),
    },
}


def mmrec_published(dataset: str = "baby") -> pd.DataFrame:
    """MMRec's published numbers for BPR, LightGCN, VBPR and FREEDOM on one Amazon dataset.

    Returns:
        DataFrame indexed by model with ``recall@10/20/50`` and ``ndcg@10/20/50``.

    Raises:
        ConfigError: unknown dataset.
    """
    if dataset not in MMREC_PUBLISHED:
        raise ConfigError(
            f"no published MMRec table for {dataset!r}", row="dataset", fix=f"use one of {', '.join(MMREC_PUBLISHED)}"
        )
    cols = ["recall@10", "recall@20", "recall@50", "ndcg@10", "ndcg@20", "ndcg@50"]
    df = pd.DataFrame.from_dict(MMREC_PUBLISHED[dataset], orient="index", columns=cols)
    return df.rename_axis("model")


def mean_std(df: pd.DataFrame, by: Sequence[str], values: Sequence[str], *, fmt: str | None = None) -> pd.DataFrame:
    """Mean and standard deviation over seeds (or any repeated runs).

    Args:
        df: one row per run, with the grouping and value columns (a DataFrame or a list of dicts).
        by: grouping columns (e.g. ``["model", "bucket"]``).
        values: numeric columns to aggregate.
        fmt: if given (e.g. ``"{:.4f}"``), return strings ``"mean ± std"`` instead of
            ``<col>_mean`` / ``<col>_std`` columns.

    Returns:
        One row per group, in the groups' first-appearance order, plus ``n`` (runs).
    """
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(list(df))
    g = df.groupby(list(by), sort=False)
    mean, std, n = g[list(values)].mean(), g[list(values)].std(ddof=1).fillna(0.0), g.size()
    out = pd.DataFrame(index=mean.index)
    for v in values:
        if fmt is None:
            out[f"{v}_mean"], out[f"{v}_std"] = mean[v], std[v]
        else:
            out[v] = [f"{fmt.format(a)} ± {fmt.format(s)}" for a, s in zip(mean[v], std[v])]
    out["n"] = n
    return out.reset_index()


def welch_t(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's t-test of two sets of runs (e.g. a model's test Recall@20 over seeds against another's).

    Unequal variances allowed (Welch, Biometrika 1947)::

        t  = (mean_a - mean_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b)         (s^2: sample variance, ddof 1)
        df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))
        p  = 2 * P(T_df > |t|)                                            (two-sided)

    Args:
        a, b: the runs' values, at least two each.

    Returns:
        ``{"diff", "t", "df", "p"}``. Two sets without any spread give ``t = ±inf``, ``p = 0`` when
        their means differ (``t = 0``, ``p = 1`` when they do not).

    Raises:
        ValueError: fewer than two values on a side.
    """
    from scipy.stats import t as student_t

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"Welch's t needs at least two runs per side, got {len(x)} and {len(y)}")
    diff = float(x.mean() - y.mean())
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = va + vb
    if se2 == 0.0:
        return {"diff": diff, "t": float(np.sign(diff) * np.inf), "df": float(len(x) + len(y) - 2),
                "p": 0.0 if diff else 1.0}  # fmt: skip
    t = diff / float(np.sqrt(se2))
    df = float(se2**2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)))
    return {"diff": diff, "t": t, "df": df, "p": float(2 * student_t.sf(abs(t), df))}


__all__ = [
    "PopularityBuckets",
    "popularity_buckets",
    "long_tail_mask",
    "topk_lists",
    "bucket_metrics",
    "gini",
    "exposure",
    "beyond_accuracy",
    "long_tail_report",
    "mean_std",
    "welch_t",
    "as_table",
    "MMREC_PUBLISHED",
    "mmrec_published",
]
