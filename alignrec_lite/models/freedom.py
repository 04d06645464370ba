"""FREEDOM: freezing and denoising graph structures (Zhou & Shen, ACM MM 2023), as MMRec codes it.

ALIGNREC_SPEC appendix A. Two graphs:

* a **frozen** item-item graph ``S = w S_img + (1 - w) S_txt``: for each modality,
  the binary kNN graph (k = 10, self included) of the cosine similarities of the
  raw features, symmetrically normalised with row-sum degrees; ``w = 0.1``.
  Built once. With a single modality, ``S`` is that modality's graph alone.
* a **denoised** user-item graph: before every epoch, keep a random
  ``(1 - dropout)`` share of the training edges, drawn without replacement with
  probability proportional to the edge's weight ``1 / sqrt(d_u d_i)`` in the full
  normalised graph (degree-sensitive pruning: edges between high-degree nodes
  are dropped more often), and renormalise. Evaluation uses the full graph.

Representations: ``h_u`` = LightGCN user output (``n_ui_layers`` on the denoised
graph, mean of layers 0..L); ``h_i`` = LightGCN item output + ``S^{n_layers} e_i``.
Loss = BPR + ``reg_weight`` · (BPR of ``h_u`` against the projected text features
+ BPR against the projected image features).

As in MMRec, the image and text feature tables are **trainable** parameters
initialised from the files (``nn.Embedding.from_pretrained(..., freeze=False)``):
the modality BPR terms update them, while the item graph ``S`` stays the one
built from the initial features (``finetune_features=False`` freezes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data.mmrec import RecDataset
from ..errors import ConfigError, DataError
from ..graphs import knn_graph, normalized_adjacency, sparse_pair, spmm, to_torch
from ..losses import bpr_loss
from .base import GRAPH_DEFAULTS, Recommender
from .lightgcn import propagate


def degree_sensitive_keep(weights: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``keep`` edges drawn without replacement, with probability ∝ ``weights``.

    Uses exponential keys (Efraimidis & Spirakis, 2006): draw ``E_e ~ Exp(1)``
    and keep the ``keep`` smallest ``E_e / w_e`` — the same distribution as
    drawing edges one at a time in proportion to their weight (what
    ``torch.multinomial(..., replacement=False)`` does in MMRec), in one
    vectorised step. Deterministic given ``rng``.

    Args:
        weights: positive edge weights.
        keep: how many edges to keep (``0 <= keep <= len(weights)``).
        rng: the NumPy generator (the trainer's, so resuming repeats the draw).

    Returns:
        Sorted int64 indices of the kept edges.

    Shape:
        weights: ``(E,)``; returns ``(keep,)``.
    """
    keys = rng.exponential(size=len(weights)) / np.maximum(weights, 1e-30)  # (E,)
    if keep >= len(weights):
        return np.arange(len(weights), dtype=np.int64)
    return np.sort(np.argpartition(keys, keep)[:keep]).astype(np.int64)


class FREEDOM(Recommender):
    """FREEDOM on the kit's interface.

    Config:
        embedding_size (64), n_ui_layers (2): LightGCN layers on the user-item graph.
        n_layers (1): hops of the item ID embeddings over the frozen item graph.
        knn_k (10): neighbours per item in each modality graph.
        mm_image_weight (0.1): ``w`` of the image graph (``1 - w`` for text).
        dropout (0.8): share of user-item edges dropped each epoch (grid 0.8, 0.9;
            0 = no denoising).
        reg_weight (1e-4): λ of the modality BPR terms (grid 0, 1e-5, 1e-4, 1e-3).
        finetune_features (True): MMRec's FREEDOM trains the image/text feature
            tables (initialised from the files) through the modality BPR terms;
            the kNN graph ``S`` is never rebuilt. ``False`` keeps the tables fixed
            (the kit's earlier behaviour; cheaper, and it shows how much the
            fine-tuning itself is worth). The tables never enter the scores, only
            the modality BPR terms.
        feature_source ("auto"): ``auto`` = image and text where both exist, the
            one that exists otherwise, else ``mm`` alone; or one of ``image``,
            ``text``, ``mm``, ``image+text`` (two graphs, two projections). With a
            single source there is one kNN graph (``w`` is ignored) and one
            modality BPR term.

    Args:
        dataset: the data (needs a feature file).
        config: hyper-parameters.
    """

    name = "freedom"
    needs_features = True
    defaults = {
        **GRAPH_DEFAULTS,
        "mm_image_weight": 0.1,
        "dropout": 0.8,
        "reg_weight": 1e-4,
        "finetune_features": True,
        "feature_source": "auto",
    }

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        cfg = self.config
        if not 0.0 <= float(cfg["dropout"]) < 1.0:
            raise ConfigError(
                f"dropout must be in [0, 1), got {cfg['dropout']}", row="dropout", fix="--set dropout=0.8"
            )
        if not 0.0 <= float(cfg["mm_image_weight"]) <= 1.0:
            raise ConfigError(
                f"mm_image_weight must be in [0, 1], got {cfg['mm_image_weight']}",
                row="mm_image_weight",
                fix="--set mm_image_weight=0.1",
            )
        d = int(cfg["embedding_size"])
        self.modalities = self._pick_modalities(dataset, str(cfg["feature_source"]))
        self.feature_source = "+".join(self.modalities)
        w_img = float(cfg["mm_image_weight"]) if len(self.modalities) == 2 else 1.0

        # frozen item-item graph S = w S_img + (1 - w) S_txt
        graph = None
        self.proj = nn.ModuleDict()
        self.feat_table = nn.ParameterDict()  # trainable copies (MMRec's image/text_embedding)
        for name in self.modalities:
            feat = dataset.features[name].astype(np.float32, copy=False)  # (n_items, d_m)
            s = knn_graph(feat, int(cfg["knn_k"]), weighted=False, normalize="sym")
            weight = w_img if name == "image" or len(self.modalities) == 1 else 1.0 - w_img
            graph = weight * s if graph is None else graph + weight * s
            # the initial features: what the frozen graph was built from (encode_content uses them)
            self.register_buffer(f"feat_{name}", torch.from_numpy(np.ascontiguousarray(feat)), persistent=False)
            if cfg["finetune_features"]:
                self.feat_table[name] = nn.Parameter(torch.from_numpy(np.array(feat, dtype=np.float32)))
            # image_trs / text_trs, with PyTorch's default Linear initialisation as in MMRec's FREEDOM
            self.proj[name] = nn.Linear(feat.shape[1], d)
        s_t, s_tt = sparse_pair(sp.csr_matrix(graph, dtype=np.float32))
        self.register_buffer("item_graph", s_t, persistent=False)
        self.register_buffer("item_graph_t", s_tt, persistent=False)

        # user-item graph: full (for evaluation) and the per-edge pruning weights
        train = dataset.interaction_matrix("train").tocoo()  # (n_users, n_items)
        self._edges = np.stack([train.row, train.col], axis=1).astype(np.int64)  # (E, 2)
        du = np.bincount(self._edges[:, 0], minlength=self.n_users).astype(np.float64)
        di = np.bincount(self._edges[:, 1], minlength=self.n_items).astype(np.float64)
        self._edge_weight = 1.0 / np.sqrt(du[self._edges[:, 0]] * di[self._edges[:, 1]])  # (E,)
        self.register_buffer("adj", to_torch(normalized_adjacency(train.tocsr())), persistent=False)
        self.masked_adj: torch.Tensor | None = None

        self.init_id_embeddings(d)

    @staticmethod
    def _pick_modalities(dataset: RecDataset, source: str) -> list[str]:
        have = set(dataset.features)
        if source == "auto":
            picked = [m for m in ("image", "text") if m in have] or (["mm"] if "mm" in have else [])
            if not picked:
                raise DataError(
                    "FREEDOM needs image_feat.npy, text_feat.npy or mm_feat.npy",
                    path=dataset.path,
                    fix="compute features first (`alignrec-lite features DIR`)",
                )
            return picked
        picked = source.split("+")
        for m in picked:
            if m not in ("image", "text", "mm"):
                raise ConfigError(
                    f"unknown feature_source {source!r}",
                    row="feature_source",
                    fix="use auto, image, text, mm or image+text",
                )
            if m not in have:
                raise DataError(
                    f"feature {m}_feat.npy is missing",
                    path=dataset.path,
                    fix=f"choose another feature_source (available: {sorted(have) or 'none'})",
                )
        return picked

    # ----------------------------------------------------------------- graphs
    def denoised_adjacency(self, rng: np.random.Generator) -> sp.csr_matrix:
        """Degree-sensitive edge pruning: keep ``int(E (1 - dropout))`` edges, renormalise.

        Returns:
            ``D^{-1/2} A D^{-1/2}`` of the kept edges, ``(n_users + n_items)`` square CSR.
        """
        n_edges = len(self._edges)
        # floor of E (1 - p); the epsilon keeps 120 * (1 - 0.8) = 23.99999... at 24
        keep = int(n_edges * (1.0 - float(self.config["dropout"])) + 1e-9)
        kept = self._edges[degree_sensitive_keep(self._edge_weight, keep, rng)]  # (keep, 2)
        r = sp.csr_matrix(
            (np.ones(len(kept), dtype=np.float32), (kept[:, 0], kept[:, 1])), shape=(self.n_users, self.n_items)
        )
        return normalized_adjacency(r)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Draw this epoch's denoised user-item graph (nothing when ``dropout = 0``)."""
        if float(self.config["dropout"]) <= 0:
            self.masked_adj = None
            return
        self.masked_adj = to_torch(self.denoised_adjacency(rng), device=self.adj.device)

    # ----------------------------------------------------------------- model
    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item vectors; the denoised graph in training, the full graph in eval.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)``.
        """
        adj = self.masked_adj if (self.training and self.masked_adj is not None) else self.adj
        h = self.item_emb.weight  # (n_items, d)
        for _ in range(int(self.config["n_layers"])):
            h = spmm(self.item_graph, h, self.item_graph_t)  # (n_items, d), frozen graph
        emb0 = torch.cat([self.user_emb.weight, self.item_emb.weight])  # (N, d)
        out = propagate(adj, emb0, int(self.config["n_ui_layers"]))  # (N, d)
        user_e, item_e = torch.split(out, [self.n_users, self.n_items])
        return user_e, item_e + h

    def feature_table(self, modality: str) -> torch.Tensor:
        """The feature table a modality's BPR term sees: trainable with ``finetune_features``.

        Args:
            modality: ``image``, ``text`` or ``mm``.

        Returns:
            The current table (a parameter when fine-tuned, else the fixed input).

        Shape:
            returns ``(n_items, d_m)``.
        """
        if modality in self.feat_table:
            return self.feat_table[modality]
        return getattr(self, f"feat_{modality}")

    def projected_features(self) -> dict[str, torch.Tensor]:
        """Each modality's features projected to ``d`` (``image_trs`` / ``text_trs``).

        Shape:
            each value ``(n_items, d)``.
        """
        return {m: self.proj[m](self.feature_table(m)) for m in self.modalities}

    @torch.no_grad()
    def encode_content(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item vectors for items *without interactions*, through the frozen item graph.

        A new item joins each modality's binary kNN graph as it would have been
        built with it: its row holds itself and its ``knn_k - 1`` most similar known
        items, every edge weighing ``1 / knn_k`` after the symmetric normalisation
        (all rows of a binary kNN graph have ``knn_k`` entries). Its own ID embedding
        does not exist (0), and it has no user-item edges, so its vector is
        ``h_new = Σ_m w_m (1/k) Σ_{j ∈ N_m(new)} e_j`` (``n_layers = 1``; deeper item
        graphs use the known items' ``n_layers - 1``-hop vectors for ``e_j``).

        Args:
            features: the new items' features in the model's ``feature_source``
                space, i.e. a row of :meth:`RecDataset.feature` (for ``image+text``
                the L2-normalised concatenation; it is split back by modality).

        Returns:
            ``(m, d)`` item vectors comparable with the users' final vectors.

        Shape:
            features: ``(m, sum of the modalities' dims)``.
        """
        x = torch.as_tensor(features, dtype=torch.float32, device=self.item_emb.weight.device)
        dims = [getattr(self, f"feat_{m}").shape[1] for m in self.modalities]
        if x.ndim != 2 or x.shape[1] != sum(dims):
            raise ConfigError(
                f"expected features of shape (m, {sum(dims)}) ({self.feature_source}), got {tuple(x.shape)}",
                row="features",
                fix="use the same feature source as training",
            )
        k = int(self.config["knn_k"])
        w_img = float(self.config["mm_image_weight"]) if len(self.modalities) == 2 else 1.0
        e = self.item_emb.weight  # (n_items, d)
        for _ in range(int(self.config["n_layers"]) - 1):
            e = spmm(self.item_graph, e)
        h = torch.zeros(x.shape[0], e.shape[1], device=x.device)
        if int(self.config["n_layers"]) == 0:  # no item-graph term at all
            return h
        for m, part in zip(self.modalities, torch.split(x, dims, dim=1)):
            known = torch.nn.functional.normalize(getattr(self, f"feat_{m}"), dim=1)  # (n_items, d_m)
            sim = torch.nn.functional.normalize(part, dim=1) @ known.T  # (m, n_items)
            nbr = torch.topk(sim, min(k - 1, self.n_items), dim=1).indices  # (m, k - 1)
            weight = w_img if (m == "image" or len(self.modalities) == 1) else 1.0 - w_img
            h = h + weight * e[nbr].sum(1) / k  # (m, d)
        return h

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """BPR + ``reg_weight`` · the modality BPR terms on one batch.

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        user_e, item_e = self.forward()
        u = user_e[users]  # (B, d)
        rank = bpr_loss((u * item_e[pos]).sum(1), (u * item_e[neg]).sum(1))
        terms = {"bpr": rank}
        total = rank
        lam = float(self.config["reg_weight"])
        if lam > 0:
            for m, f in self.projected_features().items():
                t = lam * bpr_loss((u * f[pos]).sum(1), (u * f[neg]).sum(1))
                terms[f"bpr_{m}"] = t
                total = total + t
        terms["loss"] = total
        return terms
