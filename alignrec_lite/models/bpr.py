"""BPR-MF: matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009), as MMRec codes it.

``score(u, i) = e_u . e_i``; loss = BPR + ``reg_weight`` · MMRec's ``EmbLoss`` of the
batch vectors, ``(||E_U||_F + ||E_I+||_F + ||E_I-||_F) / |B|`` (unsquared norms,
:func:`~alignrec_lite.losses.emb_loss`; ALIGNREC_SPEC appendix A). The embeddings are
initialised Xavier-normal, as MMRec's ``BPR`` does (``xavier_normal_initialization``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..data.mmrec import RecDataset
from ..losses import bpr_loss, emb_loss
from .base import Recommender


class BPR(Recommender):
    """Matrix factorisation with BPR.

    Config:
        embedding_size (64), reg_weight (1e-4; MMRec's grid 2 … 1e-5, on ``EmbLoss``).

    Args:
        dataset: the data (only the sizes are used).
        config: hyper-parameters.
    """

    name = "bpr"
    defaults = {"embedding_size": 64, "reg_weight": 1e-4}

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        d = int(self.config["embedding_size"])
        self.init_id_embeddings(d)
        nn.init.xavier_normal_(self.user_emb.weight)  # MMRec's BPR: xavier_normal_initialization
        nn.init.xavier_normal_(self.item_emb.weight)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item embeddings.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)``.
        """
        return self.user_emb.weight, self.item_emb.weight

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR + ``reg_weight`` · EmbLoss on one batch.

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        u = self.user_emb(users)  # (B, d)
        p, n = self.item_emb(pos), self.item_emb(neg)  # (B, d)
        rank = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * emb_loss(u, p, n)
        return {"loss": rank + reg, "bpr": rank, "reg": reg}
