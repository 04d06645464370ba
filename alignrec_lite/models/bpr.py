"""BPR-MF: matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009).

``score(u, i) = e_u . e_i``; loss = BPR + ``reg_weight`` * L2 of the batch
vectors (MMRec's ``EmbLoss``; ALIGNREC_SPEC appendix A).
"""

from __future__ import annotations

import torch

from ..losses import bpr_loss, l2_reg_loss
from .base import Recommender


class BPR(Recommender):
    """Matrix factorisation with BPR.

    Config:
        embedding_size (64), reg_weight (1e-4; MMRec's grid 2 … 1e-5).
    """

    name = "bpr"
    defaults = {"embedding_size": 64, "reg_weight": 1e-4}

    def __init__(self, dataset, config=None) -> None:
        super().__init__(dataset, config)
        d = int(self.config["embedding_size"])
        self.init_id_embeddings(d)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb.weight, self.item_emb.weight

    def loss(self, users, pos, neg):
        u = self.user_emb(users)  # (B, d)
        p, n = self.item_emb(pos), self.item_emb(neg)  # (B, d)
        rank = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * l2_reg_loss(u, p, n)
        return {"loss": rank + reg, "bpr": rank, "reg": reg}
