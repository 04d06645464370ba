"""VBPR: visual Bayesian personalised ranking (He & McAuley, AAAI 2016), as MMRec codes it.

ALIGNREC_SPEC appendix A: the item vector is the concatenation of a free ID
embedding and a linear projection of the item's (frozen) content features,
``h_i = [e_i ; W x_i + b]`` (``2d``); the user vector is a free ``2d`` embedding;
``score = h_u · h_i``; loss = BPR + ``reg_weight`` · L2 of the batch vectors.
MMRec feeds ``x_i = concat(text, image)``; here ``x_i`` comes from
:meth:`RecDataset.feature` (``auto`` = ``mm_feat.npy`` when present, else the
L2-normalised image+text concatenation), so every content model of the kit
sees the same input.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..data.mmrec import RecDataset
from ..errors import ConfigError
from ..losses import bpr_loss, l2_reg_loss
from .base import Recommender


class VBPR(Recommender):
    """VBPR with a linear content projection.

    Config:
        embedding_size (64): ``d``; users have ``2d`` dimensions, items ``d`` ID + ``d`` content.
        reg_weight (1e-4): L2 weight (MMRec grid 2, 1, 1e-1 … 1e-5).
        dropout (0.0): dropout on the final user/item vectors during training
            (MMRec's VBPR has this knob; 0 = off).
        feature_source ("auto"): ``auto``, ``mm``, ``image``, ``text`` or ``image+text``.

    Args:
        dataset: the data; needs at least one feature file.
        config: hyper-parameters.
    """

    name = "vbpr"
    needs_features = True
    defaults = {"embedding_size": 64, "reg_weight": 1e-4, "dropout": 0.0, "feature_source": "auto"}

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        d = int(self.config["embedding_size"])
        if not 0.0 <= float(self.config["dropout"]) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.config['dropout']}", row="dropout",
                              fix="--set dropout=0")
        feat, self.feature_source = dataset.feature(str(self.config["feature_source"]))
        self.register_buffer("feat", torch.from_numpy(np.ascontiguousarray(feat, dtype=np.float32)),
                             persistent=False)  # (n_items, d_m), frozen
        self.init_id_embeddings(2 * d, d)
        self.item_linear = nn.Linear(feat.shape[1], d)  # W, b
        nn.init.xavier_uniform_(self.item_linear.weight)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors ``(n_users, 2d)`` and item vectors ``[e_i ; W x_i + b]`` ``(n_items, 2d)``."""
        items = torch.cat([self.item_emb.weight, self.item_linear(self.feat)], dim=1)  # (n_items, 2d)
        users = self.user_emb.weight  # (n_users, 2d)
        p = float(self.config["dropout"])
        if self.training and p > 0:
            users, items = nn.functional.dropout(users, p), nn.functional.dropout(items, p)
        return users, items

    def encode_content(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item vectors for new items: ``[0 ; W x + b]`` (no ID embedding exists for them).

        Shape:
            features: ``(m, d_m)``; returns ``(m, 2d)``.
        """
        x = torch.as_tensor(features, dtype=torch.float32, device=self.feat.device)
        with torch.no_grad():
            content = self.item_linear(x)  # (m, d)
        return torch.cat([torch.zeros_like(content), content], dim=1)

    def loss(self, users, pos, neg):
        user_e, item_e = self.forward()
        u, p, n = user_e[users], item_e[pos], item_e[neg]  # (B, 2d) each
        rank = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * l2_reg_loss(u, p, n)
        return {"loss": rank + reg, "bpr": rank, "reg": reg}
