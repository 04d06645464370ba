"""VBPR: visual Bayesian personalised ranking (He & McAuley, AAAI 2016), as MMRec codes it.

ALIGNREC_SPEC appendix A: the item vector is the concatenation of a free ID
embedding and a linear projection of the item's (frozen) content features,
``h_i = [e_i ; W x_i + b]`` (``2d``); the user vector is a free ``2d`` embedding;
``score = h_u · h_i``; loss = BPR + ``reg_weight`` · MMRec's ``EmbLoss`` of the batch
vectors, ``(||h_U||_F + ||h_I+||_F + ||h_I-||_F) / |B|`` (unsquared norms,
:func:`~alignrec_lite.losses.emb_loss`).

Input as MMRec feeds it: with two modalities ``x_i = concat(text_i, image_i)`` of the
**raw** feature rows (text first, no per-modality normalisation, :func:`vbpr_input`);
with one, that feature as it is. ``W`` is initialised Xavier-normal with a zero bias
(MMRec's ``xavier_normal_initialization``); the ID embeddings stay Xavier-uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.mmrec import RecDataset
from ..errors import ConfigError
from ..losses import bpr_loss, emb_loss
from .base import Recommender


def vbpr_input(dataset: RecDataset, source: str = "auto") -> tuple[np.ndarray, str]:
    """The content input ``x`` of VBPR, as MMRec builds it.

    ``auto`` picks ``mm`` when ``mm_feat.npy`` exists, else every one of image and
    text that exists (as :meth:`RecDataset.feature` does). With two modalities the
    rows are the **raw** concatenation ``[text ; image]`` (MMRec's
    ``torch.cat((t_feat, v_feat), -1)``), not :meth:`RecDataset.feature`'s
    L2-normalised one; a single modality is returned as it is.

    Args:
        dataset: the data with its feature files.
        source: ``auto``, ``mm``, ``image``, ``text`` or ``image+text``.

    Returns:
        ``(x, source used)``; ``source`` names the modalities (``"image+text"``),
        while the columns of ``x`` are ordered text first.

    Shape:
        x: ``(n_items, d_text + d_image)`` float32 (or one modality's width).
    """
    _, used = dataset.feature(source)  # checks the files exist; resolves "auto"
    parts = used.split("+")
    if len(parts) == 1:
        return dataset.features[parts[0]].astype(np.float32, copy=False), used
    order = sorted(parts, key=lambda m: 0 if m == "text" else 1)  # MMRec: cat(text, image)
    x = np.concatenate([dataset.features[m].astype(np.float32, copy=False) for m in order], axis=1)
    return x, used


class VBPR(Recommender):
    """VBPR with a linear content projection.

    Config:
        embedding_size (64): ``d``; users have ``2d`` dimensions, items ``d`` ID + ``d`` content.
        reg_weight (1e-4): weight of MMRec's EmbLoss (MMRec grid 2, 1, 1e-1 … 1e-5).
        dropout (0.0): dropout on the final user/item vectors during training
            (MMRec's VBPR has this knob; 0 = off).
        feature_source ("auto"): ``auto``, ``mm``, ``image``, ``text`` or ``image+text``
            (two modalities are concatenated raw, text first: :func:`vbpr_input`).

    Args:
        dataset: the data; needs at least one feature file.
        config: hyper-parameters.
    """

    name = "vbpr"
    needs_features = True
    content_layout = "raw-text-first"  # MMRec's cat(text, image), no per-modality normalisation
    defaults = {"embedding_size": 64, "reg_weight": 1e-4, "dropout": 0.0, "feature_source": "auto"}

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        d = int(self.config["embedding_size"])
        if not 0.0 <= float(self.config["dropout"]) < 1.0:
            raise ConfigError(
                f"dropout must be in [0, 1), got {self.config['dropout']}", row="dropout", fix="--set dropout=0"
            )
        feat, self.feature_source = vbpr_input(dataset, str(self.config["feature_source"]))
        self.register_buffer(
            "feat", torch.from_numpy(np.ascontiguousarray(feat, dtype=np.float32)), persistent=False
        )  # (n_items, d_m), frozen raw input
        self.init_id_embeddings(2 * d, d)
        self.item_linear = nn.Linear(feat.shape[1], d)  # W, b
        nn.init.xavier_normal_(self.item_linear.weight)  # MMRec: xavier_normal_initialization,
        nn.init.zeros_(self.item_linear.bias)  # zero bias

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

        Args:
            features: rows in the model's input space, i.e. rows of
                :func:`vbpr_input` (for two modalities the raw ``[text ; image]``
                concatenation, *not* :meth:`RecDataset.feature`'s normalised one).

        Returns:
            The new items' vectors, comparable with the users' ``2d`` vectors.

        Shape:
            features: ``(m, d_m)``; returns ``(m, 2d)``.
        """
        x = torch.as_tensor(features, dtype=torch.float32, device=self.feat.device)
        with torch.no_grad():
            content = self.item_linear(x)  # (m, d)
        return torch.cat([torch.zeros_like(content), content], dim=1)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR + ``reg_weight`` · EmbLoss of the final batch vectors.

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        user_e, item_e = self.forward()
        u, p, n = user_e[users], item_e[pos], item_e[neg]  # (B, 2d) each
        rank = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * emb_loss(u, p, n)
        return {"loss": rank + reg, "bpr": rank, "reg": reg}

    def content_features(self, dataset: RecDataset) -> np.ndarray:
        """VBPR's input rows: :func:`vbpr_input` (raw ``[text ; image]`` for two modalities).

        Shape:
            returns ``(n_items, d_text + d_image)``.
        """
        return vbpr_input(dataset, self.feature_source)[0]
