"""The interface every recommender in the kit shares (MMRec's verbs, made explicit).

A model is built from a :class:`~alignrec_lite.data.RecDataset` and a flat config
dict. The trainer only calls:

* :meth:`Recommender.loss` on a batch of ``(user, positive, negative)`` triples,
  returning a dict of named loss terms with the total under ``"loss"``;
* :meth:`Recommender.pre_epoch` once per epoch (FREEDOM's edge dropping, ...);
* :meth:`Recommender.full_sort_scores` through the evaluator, after
  :meth:`Recommender.prepare_eval` cached the final embeddings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from ..data.mmrec import RecDataset


class Recommender(nn.Module):
    """Base class: ID embeddings, scoring and caching for evaluation.

    Subclasses set :attr:`name`, :attr:`defaults` (their hyper-parameters with
    default values) and implement :meth:`forward` and :meth:`loss`.

    Args:
        dataset: the training data (only its train split is used to build graphs).
        config: hyper-parameters; keys missing here take :attr:`defaults`.
    """

    name: ClassVar[str] = "base"
    defaults: ClassVar[dict[str, Any]] = {}
    needs_features: ClassVar[bool] = False

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = dict(self.defaults)
        cfg.update({k: v for k, v in (config or {}).items() if k in self.defaults})
        self.config = cfg
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.device_ = torch.device("cpu")

    # -- to implement -----------------------------------------------------
    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item representations.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)``.
        """
        raise NotImplementedError

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms on one batch; ``"loss"`` is the total that is minimised.

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        raise NotImplementedError

    # -- shared -----------------------------------------------------------
    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Hook called before every training epoch (default: nothing)."""

    def init_id_embeddings(self, d_user: int, d_item: int | None = None) -> None:
        """Create ``user_emb`` ``(n_users, d_user)`` and ``item_emb`` ``(n_items, d_item or d_user)``.

        Xavier-uniform initialisation, as MMRec's models use.
        """
        self.user_emb = nn.Embedding(self.n_users, d_user)
        self.item_emb = nn.Embedding(self.n_items, d_user if d_item is None else d_item)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)

    def train(self, mode: bool = True) -> "Recommender":  # noqa: D102 - nn.Module API
        self._cache = None
        return super().train(mode)

    def to(self, *args: Any, **kwargs: Any) -> "Recommender":  # noqa: D102
        out = super().to(*args, **kwargs)
        for p in self.parameters():
            self.device_ = p.device
            break
        self._cache = None
        return out

    @torch.no_grad()
    def prepare_eval(self) -> None:
        """Switch to eval mode and cache the final embeddings for scoring."""
        self.eval()
        self._cache = self.forward()

    @torch.no_grad()
    def full_sort_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for the given users (dot product of final vectors).

        Shape:
            users: ``(b,)``; returns ``(b, n_items)``.
        """
        if self._cache is None:
            self.prepare_eval()
        user_e, item_e = self._cache
        return user_e[users.to(user_e.device)] @ item_e.T  # (b, n_items)

    #: how the content path wants several modalities joined: ``"normalised"`` (each block
    #: L2-normalised, concatenated, normalised again: :meth:`RecDataset.feature`) or
    #: ``"raw-text-first"`` (VBPR, as MMRec: ``cat(text, image)`` of the raw rows)
    content_layout: str = "normalised"

    def content_features(self, dataset: RecDataset) -> np.ndarray:
        """The content feature rows this model's content path reads (its ``feature_source``, its layout).

        Shape:
            returns ``(n_items, d_f)``.
        """
        return dataset.feature(getattr(self, "feature_source", None) or "auto")[0]

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
