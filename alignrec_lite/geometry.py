"""Alignment and uniformity of embedding sets (Wang & Isola, ICML 2020), as measurements.

The losses live in :mod:`alignrec_lite.losses` (:func:`~alignrec_lite.losses.align_loss`,
Eq. 4, and :func:`~alignrec_lite.losses.uniform_loss`, Eq. 5); this module turns them
into numbers about *any* pair of embedding sets — image vs text features,
content vs ID representations, users vs items — and into a per-epoch tracker for
the trainer.

With ``x̂ = x / ||x||`` (every function here L2-normalises its inputs first)::

    align(X, Y)  = mean_k ||x̂_k - ŷ_k||^alpha            over positive pairs (x_k, y_k)
    uniform(X)   = log mean_{i != j} exp(-t ||x̂_i - x̂_j||^2)

Value ranges (alpha = 2, t = 2, the paper's defaults):

* ``align`` lies in ``[0, 4]``: 0 when every pair is identical, 4 when every pair
  is antipodal; unrelated pairs in high dimension give about 2 (= ``2 - 2 cos``
  with ``cos ≈ 0``). Lower = better aligned.
* ``uniform`` lies in ``[-2t n/(n-1), 0]``: 0 when all points coincide (collapse);
  about ``-2t = -4`` for a uniform sample on a high-dimensional sphere, its
  optimum. Lower = more uniform. (Jensen: ``uniform >= -t * mean d^2`` and the
  mean squared distance of unit vectors is at most ``2n/(n-1)``.)

Conventions for models (what :class:`AlignUniformTracker` looks for): a model may
define ``representations() -> dict[str, Tensor]`` returning named ``(n, d)``
matrices, with these keys when they exist:

======================  ===========================================================
``"user"``, ``"item"``  final representations used for scoring (``h_u``, ``h_i``)
``"user_id"``,          ID-branch representations (``H^id``, e.g. the LightGCN output)
``"item_id"``
``"user_content"``,     content-branch representations (``H^m``)
``"item_content"``
``"item_image"``,       per-modality item vectors in one shared space (stage 1)
``"item_text"``
======================  ===========================================================

``"user"``/``"item"`` may be left out: the tracker then takes them from
``forward() -> (user, item)`` (the kit's :class:`~alignrec_lite.models.base.Recommender`
convention), which is also all it uses for a model without ``representations()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data.mmrec import RecDataset
from .losses import align_loss, uniform_loss
from .utils import as_tensor, subsample_indices

ArrayLike = np.ndarray | torch.Tensor

#: (name, left key, right key, how positive pairs are formed) checked by the tracker.
TRACKED_PAIRS: tuple[tuple[str, str, str, str], ...] = (
    ("item_content~item_id", "item_content", "item_id", "rows"),
    ("user_content~user_id", "user_content", "user_id", "rows"),
    ("item_image~item_text", "item_image", "item_text", "rows"),
    ("user~item", "user", "item", "interactions"),
)


def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2.0, *, max_pairs: int | None = None, seed: int = 0) -> float:
    """Mean ``||x̂_k - ŷ_k||^alpha`` over the row pairs ``(x_k, y_k)``; inputs are L2-normalised here.

    Args:
        x, y: positive pairs, row ``k`` of ``x`` with row ``k`` of ``y``.
        alpha: the exponent (2 in the paper).
        max_pairs: use a random subset of this many pairs (``None``: all).
        seed: seed of that subset.

    Returns:
        A float in ``[0, 2**alpha]``; 0 = identical pairs.

    Shape:
        x, y: ``(n, d)``.

    >>> alignment(np.eye(3), np.eye(3))
    0.0
    """
    xt, yt = as_tensor(x), as_tensor(y)
    if xt.shape != yt.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(xt.shape)} and {tuple(yt.shape)}")
    idx = subsample_indices(len(xt), max_pairs, seed)
    if idx is not None:
        xt, yt = xt[idx], yt[idx]
    return float(align_loss(xt, yt, alpha, normalize=True))


def uniformity(x: ArrayLike, t: float = 2.0, *, max_points: int | None = 4096, seed: int = 0) -> float:
    """``log mean_{i != j} exp(-t ||x̂_i - x̂_j||^2)``; inputs are L2-normalised here.

    Args:
        x: the embedding set.
        t: the temperature (2 in the paper).
        max_points: estimate on a random subset of this many rows (memory is
            ``max_points^2 / 2`` distances); ``None`` uses every row.
        seed: seed of the subset.

    Returns:
        A float in ``[-2t n/(n-1), 0]``: 0 = collapsed, about ``-2t`` = uniform on a
        high-dimensional sphere.

    Shape:
        x: ``(n, d)`` with ``n >= 2``.

    >>> uniformity(np.ones((5, 3)))
    0.0
    """
    xt = as_tensor(x)
    if len(xt) < 2:
        raise ValueError("uniformity needs at least 2 points")
    idx = subsample_indices(len(xt), max_points, seed)
    if idx is not None:
        xt = xt[idx]
    return float(uniform_loss(xt, t, normalize=True)) + 0.0  # + 0.0 turns -0.0 into 0.0


def align_uniform(
    x: ArrayLike,
    y: ArrayLike,
    *,
    alpha: float = 2.0,
    t: float = 2.0,
    pairs: np.ndarray | None = None,
    max_pairs: int | None = 20000,
    max_points: int | None = 4096,
    seed: int = 0,
) -> dict[str, float]:
    """Alignment of positive pairs and uniformity of each side, for two embedding sets.

    Args:
        x, y: the two sets, e.g. image and text features of the same items
            (``pairs=None``: row k pairs with row k), or user and item vectors
            (``pairs`` = the ``(user, item)`` interactions).
        alpha, t: the exponents of :func:`alignment` and :func:`uniformity`.
        pairs: ``(m, 2)`` index pairs ``(row of x, row of y)``; ``None`` pairs rows.
        max_pairs, max_points: subsample sizes (``None``: everything).
        seed: seed of the subsamples.

    Returns:
        ``{"align", "uniform_x", "uniform_y", "uniform"}`` where ``uniform`` is the
        mean of the two sides (Wang & Isola's combined term).

    Shape:
        x: ``(n_x, d)``; y: ``(n_y, d)``; pairs: ``(m, 2)``.
    """
    xt, yt = as_tensor(x), as_tensor(y)
    if pairs is None:
        a = alignment(xt, yt, alpha, max_pairs=max_pairs, seed=seed)
    else:
        pairs = np.asarray(pairs, dtype=np.int64)
        idx = subsample_indices(len(pairs), max_pairs, seed)
        p = pairs if idx is None else pairs[idx]
        a = alignment(xt[p[:, 0]], yt[p[:, 1]], alpha)
    ux = uniformity(xt, t, max_points=max_points, seed=seed)
    uy = uniformity(yt, t, max_points=max_points, seed=seed + 1)
    return {"align": a, "uniform_x": ux, "uniform_y": uy, "uniform": 0.5 * (ux + uy)}


def user_profiles(dataset: RecDataset, item_vectors: ArrayLike, split: str = "train") -> torch.Tensor:
    """Each user's mean L2-normalised item vector over the items of ``split`` (zero-shot profiles).

    Shape:
        item_vectors: ``(n_items, d)``; returns ``(n_users, d)`` (a zero row for a user with no items).
    """
    import scipy.sparse as sp

    items = F.normalize(as_tensor(item_vectors), dim=1).numpy()  # (n_items, d)
    r = dataset.interaction_matrix(split)  # (n_users, n_items)
    deg = np.asarray(r.sum(axis=1)).ravel()
    inv = sp.diags(np.where(deg > 0, 1.0 / np.maximum(deg, 1), 0.0).astype(np.float32))
    return torch.from_numpy(np.asarray(inv @ r @ items, dtype=np.float32))  # (n_users, d)


def feature_geometry(
    dataset: RecDataset,
    item_vectors: ArrayLike,
    *,
    split: str = "test",
    max_pairs: int | None = 20000,
    max_points: int | None = 4096,
    seed: int = 0,
) -> dict[str, float]:
    """Geometry of an item-feature matrix in the recommendation task, without training.

    ``uniform_items`` is the uniformity of the item vectors; ``align_user_item`` the
    alignment between each user's zero-shot profile (mean of the training items'
    vectors) and the items the user interacts with in ``split`` — a low value
    means the feature puts a user's future items near her past ones.

    Returns:
        ``{"align_user_item", "uniform_items", "uniform_users"}``.
    """
    users = user_profiles(dataset, item_vectors, "train")  # (n_users, d)
    pairs = dataset.split(split)
    res = align_uniform(users, item_vectors, pairs=pairs, max_pairs=max_pairs, max_points=max_points, seed=seed)
    active = np.unique(dataset.train[:, 0])
    return {
        "align_user_item": res["align"],
        "uniform_items": res["uniform_y"],
        "uniform_users": uniformity(users[active], max_points=max_points, seed=seed),
    }


# ---------------------------------------------------------------------- tracker
def model_representations(model: Any) -> dict[str, torch.Tensor]:
    """A model's named representations.

    ``model.representations()`` when it exists (entries that are not ``(n, d)``
    tensors, e.g. ``None`` for a switched-off branch, are dropped); the final
    ``"user"`` / ``"item"`` vectors come from ``forward() -> (user, item)`` when
    the dict does not hold them.
    """
    reps: dict[str, torch.Tensor] = {}
    fn = getattr(model, "representations", None)
    if callable(fn):
        raw = fn()
        if not isinstance(raw, Mapping):
            raise TypeError("representations() must return a dict of named (n, d) tensors")
        reps = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor) and v.dim() == 2}
    if "user" not in reps or "item" not in reps:
        out = model()
        if isinstance(out, (tuple, list)) and len(out) == 2:
            reps.setdefault("user", out[0])
            reps.setdefault("item", out[1])
        elif not reps:
            raise TypeError("the model has no representations() and forward() does not return (user, item)")
    return reps


class AlignUniformTracker:
    """Trainer callback recording alignment/uniformity of a model's representations each epoch.

    Use with :func:`alignrec_lite.train.train`::

        tracker = AlignUniformTracker(dataset)
        model, record = train(dataset, "alignrec", callbacks=[tracker])
        tracker.frame()       # one row per epoch

    For each pair of :data:`TRACKED_PAIRS` the model exposes (see the module
    docstring), it records ``"<pair>/align"``, ``"<pair>/uniform_<left>"`` and
    ``"<pair>/uniform_<right>"``: content vs ID for items and users (CCA), image
    vs text (ICA), and user vs item over training interactions (UIA). The same
    random pairs and points are used every epoch (fixed ``seed``), so the curves
    compare like with like. The values also go into the epoch record under
    ``"geometry"`` (and hence into ``metrics.json``'s history).

    Args:
        dataset: supplies the training interactions for the user-item pairs.
        every: measure every ``every`` epochs.
        max_pairs, max_points: subsample sizes (see :func:`align_uniform`).
        alpha, t: exponents.
        seed: seed of the subsamples.
    """

    def __init__(
        self,
        dataset: RecDataset,
        *,
        every: int = 1,
        max_pairs: int = 4096,
        max_points: int = 2048,
        alpha: float = 2.0,
        t: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.pairs = dataset.train.astype(np.int64)
        self.every, self.max_pairs, self.max_points = every, max_pairs, max_points
        self.alpha, self.t, self.seed = alpha, t, seed
        self.history: list[dict[str, float]] = []

    def measure(self, reps: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Measure every available pair of a representation dict (see the module docstring)."""
        out: dict[str, float] = {}
        for name, left, right, how in TRACKED_PAIRS:
            if left not in reps or right not in reps:
                continue
            x, y = reps[left], reps[right]
            if x.shape[1] != y.shape[1]:
                continue  # different spaces: alignment is undefined
            res = align_uniform(
                x,
                y,
                alpha=self.alpha,
                t=self.t,
                pairs=self.pairs if how == "interactions" else None,
                max_pairs=self.max_pairs,
                max_points=self.max_points,
                seed=self.seed,
            )
            out[f"{name}/align"] = res["align"]
            out[f"{name}/uniform_{left}"] = res["uniform_x"]
            out[f"{name}/uniform_{right}"] = res["uniform_y"]
        return out

    @torch.no_grad()
    def __call__(self, epoch: int, model: Any, record: dict | None = None) -> dict[str, float] | None:
        """Measure after ``epoch`` (the trainer's callback signature ``f(epoch, model, record)``)."""
        if (epoch + 1) % self.every:
            return None
        was_training = getattr(model, "training", False)
        if was_training:
            model.eval()
        try:
            values = self.measure(model_representations(model))
        finally:
            if was_training:
                model.train()
        self.history.append({"epoch": epoch, **values})
        if record is not None:
            record["geometry"] = values
        return values

    def frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.history).set_index("epoch") if self.history else pd.DataFrame()

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(epochs, values)`` of one recorded key, for plotting."""
        rows = [(h["epoch"], h[key]) for h in self.history if key in h]
        return [r[0] for r in rows], [r[1] for r in rows]

    @property
    def keys(self) -> Sequence[str]:
        """The keys recorded so far."""
        seen: dict[str, None] = {}
        for h in self.history:
            for k in h:
                if k != "epoch":
                    seen[k] = None
        return list(seen)
