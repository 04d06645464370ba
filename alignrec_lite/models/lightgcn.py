"""LightGCN (He et al., SIGIR 2020) — also the ID branch of AlignRec (ALIGNREC_SPEC §1.2a).

``E^(l+1) = Â E^(l)`` on the normalised bipartite graph ``Â = D^{-1/2} A D^{-1/2}``;
the final embedding is the mean of layers ``0..L``; ``score = dot``; loss = BPR +
``reg_weight`` · MMRec's ``EmbLoss`` of the batch's *layer-0* embeddings,
``(||E_U||_F + ||E_I+||_F + ||E_I-||_F) / |B|`` (unsquared norms,
:func:`~alignrec_lite.losses.emb_loss`; ALIGNREC_SPEC appendix A).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..data.mmrec import RecDataset
from ..graphs import normalized_adjacency, spmm, to_torch
from ..losses import bpr_loss, emb_loss
from .base import Recommender


def propagate(adj: torch.Tensor, emb0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of ``[E0, Â E0, …, Â^L E0]`` (LightGCN's layer combination, α_l = 1/(L+1)).

    Shape:
        adj: ``(N, N)`` sparse symmetric; emb0: ``(N, d)``; returns ``(N, d)``.
    """
    x, total = emb0, emb0
    for layer in range(n_layers):
        x = spmm(adj, x, symmetric=True)  # (N, d)
        # one new sum buffer, then accumulated in place (same additions in the same order)
        total = total + x if layer == 0 else total.add_(x)
    return total / (n_layers + 1)


class LightGCN(Recommender):
    """LightGCN.

    Config:
        embedding_size (64), n_layers (2; grid 1-4), reg_weight (1e-4; grid 1e-2 … 1e-6,
        on ``EmbLoss``).

    Args:
        dataset: the data (the train split builds the graph).
        config: hyper-parameters.
    """

    name = "lightgcn"
    defaults = {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-4}

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        d = int(self.config["embedding_size"])
        self.init_id_embeddings(d)
        self.register_buffer(
            "adj", to_torch(normalized_adjacency(dataset.interaction_matrix("train"))), persistent=False
        )

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the propagated layers, split into users and items.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)``.
        """
        emb0 = torch.cat([self.user_emb.weight, self.item_emb.weight])  # (N, d)
        out = propagate(self.adj, emb0, int(self.config["n_layers"]))
        return torch.split(out, [self.n_users, self.n_items])

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR on the propagated vectors + ``reg_weight`` · EmbLoss of the layer-0 ones.

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        user_e, item_e = self.forward()
        # index_select: its backward is one ordered index_add_, cheaper than indexing's sort-based one
        u, p, n = user_e.index_select(0, users), item_e.index_select(0, pos), item_e.index_select(0, neg)  # (B, d)
        rank = bpr_loss((u * p).sum(1), (u * n).sum(1))
        ego = self.user_emb(users), self.item_emb(pos), self.item_emb(neg)  # (B, d) each, layer 0
        reg = self.config["reg_weight"] * emb_loss(*ego)
        return {"loss": rank + reg, "bpr": rank, "reg": reg}
