"""The interface every recommender in the kit shares (MMRec's verbs, made explicit).

A model is built from a :class:`~alignrec_lite.data.RecDataset` and a flat config
dict. The trainer only calls:

* :meth:`Recommender.loss` on a batch of ``(user, positive, negative)`` triples,
  returning a dict of named loss terms with the total under ``"loss"``;
* :meth:`Recommender.pre_epoch` once per epoch (FREEDOM's edge dropping, ...);
* :meth:`Recommender.full_sort_scores` through the evaluator, after
  :meth:`Recommender.prepare_eval` cached the final embeddings.

Everything else may use the declared interface, never the private attributes:

* :meth:`Recommender.from_config` / :func:`alignrec_lite.models.build_model` — a model
  from a config that is checked (unknown keys, types and ranges);
* :meth:`Recommender.scores` (= :meth:`~Recommender.full_sort_scores`) and
  :meth:`Recommender.final_vectors` — the final user and item vectors;
* :meth:`Recommender.encode_content` and :attr:`Recommender.has_content_path` — item
  vectors from features alone, for the models that have a content path (AlignRec,
  VBPR, FREEDOM);
* :meth:`Recommender.invalidate_cache` (after editing weights in place) and
  :attr:`Recommender.device`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.mmrec import RecDataset
from ..errors import ConfigError

#: Defaults shared by the models with a LightGCN user-item graph and a frozen item-item kNN graph
#: (FREEDOM, AlignRec; MMRec's and the official code's values): ``d``, user-item layers, item-item
#: hops, neighbours per item.
GRAPH_DEFAULTS: dict[str, Any] = {"embedding_size": 64, "n_ui_layers": 2, "n_layers": 1, "knn_k": 10}


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

    @classmethod
    def from_config(
        cls, dataset: RecDataset, config: Mapping[str, Any] | None = None, *, preset: str = "none"
    ) -> Recommender:
        """Build the model from a config that is checked first (the validating constructor).

        The plain constructor ignores keys it does not know; this one resolves the config
        with :func:`alignrec_lite.config.resolve_config`, so an unknown key or a bad value
        raises, and the model receives the full resolved config (trainer settings included).

        Args:
            dataset: the training data.
            config: settings (strings as from ``--set``, or typed values). A ``"model"`` key
                (as in a resolved config or a run record) must name this model.
            preset: tuned preset to start from: ``"none"`` (default: the model's own
                defaults), ``"auto"`` (the preset named like the dataset, if any) or a
                preset name of :data:`alignrec_lite.config.TUNED_DEFAULTS`.

        Returns:
            The new model (on the CPU, in training mode).

        Raises:
            ConfigError: unknown key (the message lists the valid ones), bad value, or a
                ``"model"`` key naming another model.
        """
        from ..config import resolve_config

        settings = dict(config or {})
        named = settings.pop("model", cls.name)
        if named != cls.name:
            raise ConfigError(
                f"the config is for model {named!r}, not {cls.name!r}",
                row="model",
                fix=f"drop the model key or build {named!r}",
            )
        cfg = resolve_config(cls.name, settings, dataset.name, model_defaults=cls.defaults, preset=preset)
        return cls(dataset, cfg)

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

    def train(self, mode: bool = True) -> Recommender:
        self._cache = None
        return super().train(mode)

    def to(self, *args: Any, **kwargs: Any) -> Recommender:
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

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for the given users (the declared name of :meth:`full_sort_scores`).

        Shape:
            users: ``(b,)``; returns ``(b, n_items)``.
        """
        return self.full_sort_scores(users)

    @torch.no_grad()
    def final_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final user and item vectors in eval mode (the ones :meth:`scores` multiplies).

        Switches the model to eval mode and recomputes them (:meth:`prepare_eval`), so
        weights edited in place are seen.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)`` on :attr:`device`.
        """
        self.prepare_eval()
        return self._cache

    def invalidate_cache(self) -> None:
        """Forget the cached final vectors (call after changing weights in place)."""
        self._cache = None

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (CPU until :meth:`to` moves it)."""
        return self.device_

    @property
    def has_content_path(self) -> bool:
        """Whether the model can place an item from its content alone (:meth:`encode_content`)."""
        return "encode_content" in self.__dict__ or type(self).encode_content is not Recommender.encode_content

    def encode_content(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item vectors for items without interactions, from their features alone.

        Models with a content path (AlignRec, VBPR, FREEDOM) override this; here it raises.

        Shape:
            features: ``(m, d_f)``; returns ``(m, d)``.

        Raises:
            ConfigError: the model has no content path.
        """
        raise ConfigError(
            f"model {self.name!r} has no content path: it cannot place items from their features",
            row="model",
            fix="use a content-aware model (alignrec, vbpr, freedom) for items without interactions",
        )

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
