"""AlignRec's stage-2 recommender (Liu et al., "AlignRec: Aligning and Training in
Multimodal Recommendations", CIKM 2024), written from ALIGNREC_SPEC §1.2-§1.3.

The paper's three modules, as the official code realises stage 2:

* **MMEnc** (stage 1) is not trained here: its output is the item feature matrix
  ``F`` (``mm_feat.npy``, or the L2-normalised image+text concatenation).
* **Aggregator** — two graph propagations, both sparse and built once:

  - ID branch (the "user-item view"): LightGCN on ``Â = D^{-1/2} A D^{-1/2}``,
    ``H^id = mean(E^(0), ..., E^(L_ui))`` (spec §1.2a);
  - content branch (the "item-item view"): ``M = F W_t + b_t``, MGCN's
    behaviour-guided purifier ``X = E_i ⊙ σ(M W_g + b_g)``, ``H_i^m = S̃^{L_m} X`` on the
    frozen item-item kNN graph ``S̃``, and users ``H_u^m = R̃ H_i^m`` (spec §1.2b-c).
* **Fuser** — ``h = H^id + H^m`` for users and items; ``score(u, i) = h_u · h_i``.

Training objective (spec §1.3; each term is a function of :mod:`alignrec_lite.losses`)::

    L = L_BPR + L_reg + γ·L_UIA + α·L_CCA + β·L_sim

* **UIA** (user-item alignment): ``1 - mean cos(h_u, h_i+)``;
* **CCA** (content-category alignment): InfoNCE(content → ID) for the batch's
  positive items and for its users, τ = 0.2;
* similarity preservation ``L_sim``: the content vectors' dot products should
  match the cosine similarities of the input features (spec §1.4 files it under CCA).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..data.mmrec import RecDataset
from ..errors import ConfigError
from ..graphs import knn_graph, normalized_adjacency, sparse_pair, spmm, to_torch, user_item_norm
from ..losses import bpr_loss, cca_loss, l2_reg_loss, sim_loss_expanded, uia_loss
from .base import GRAPH_DEFAULTS, Recommender
from .lightgcn import propagate

BRANCHES = ("both", "id", "content")
FEATURE_SOURCES = ("auto", "mm", "image", "text", "image+text")
WARMUP_EPOCHS = 10  # the official --warmup_ui length


# ----------------------------------------------------------------- the model
class AlignRec(Recommender):
    """AlignRec (stage 2): LightGCN ID branch + purified content branch on a kNN graph.

    Config (defaults = spec §2.1 and the official ``scripts.sh``):
        embedding_size (64): ``d`` of IDs and content vectors.
        n_ui_layers (2): LightGCN layers of the ID branch (mean of layers 0..L).
        n_layers (1): propagation steps on the item-item graph.
        knn_k (10): neighbours per item in the kNN graph (the item itself included).
        reg_weight (1e-4): L2 on the final batch vectors, divided by the configured
            batch size (2048) even for the last, smaller batch, as the official code does.
        cl_loss (0.01): α, weight of the CCA InfoNCE terms (0 = ablation "without CCA").
        cl_temperature (0.2): τ of the InfoNCE (hard-coded in the official code).
        sim_weight (0.1): β, weight of the similarity-preservation term (0 = ablation).
        ui_cosine_loss_weight (0.1): γ, weight of UIA (0 = ablation "without UIA";
            the official code needs ``--ui_cosine_loss`` for it, ``scripts.sh`` passes it).
        feature_source ("auto"): ``auto`` (``mm_feat.npy`` when present, else the
            L2-normalised image+text concatenation), ``mm``, ``image``, ``text``,
            ``image+text``. The source used is kept in :attr:`feature_source`.
        branches ("both"): ``both``; ``id`` = no content branch, which is exactly
            LightGCN with ``n_layers = n_ui_layers`` (same scores for the same
            weights; CCA and L_sim vanish); ``content`` = no ID embeddings at all
            (see below).
        finetune_features (False): official-code quirk (spec §7 #5). When True the
            feature table is a trainable parameter, initialised from ``F``, and the
            target of ``L_sim`` is computed from the *current* table, so it drifts
            during training, while the kNN graph stays the one built from the
            initial ``F``. Off by default: stage 2 of the paper takes the MMEnc
            features as fixed input.
        use_ln (False): official ``--use_ln``: ``M = LayerNorm(F) W_t + b_t``.
            ``L_sim``'s target still uses the raw features, as in the official code.
        warmup_ui (False): official ``--warmup_ui``: for the first 10 epochs drop
            L_BPR and L_UIA and train only L_reg + α L_CCA + β L_sim. The official
            code also warms the learning rate up linearly over those epochs; the
            optimiser belongs to the trainer here, so that part is not reproduced.
        sim_cache_mb (512.0): memory allowed for the precomputed squared-cosine
            matrix that makes L_sim fast (0 = never cache; see :meth:`_sim_term`).
        lr_decay (0.96): the trainer's learning-rate decay per ``lr_decay_step`` (50)
            epochs, ``lr · 0.96^(epoch/50)`` (AlignRec's yaml ``[0.96, 50]``); the
            baselines keep the trainer's constant rate (1.0), as MMRec's do.

    The content-only variant (``branches="content"``): without ID embeddings the
    purifier has nothing to gate, so the content vector itself is propagated:
    ``H_i^m = S̃^{L_m} (F W_t + b_t)``, ``H_u^m = R̃ H_i^m``, ``h = H^m``. Users are
    then the degree-normalised sum of their items' content vectors; the model has
    only ``W_t, b_t`` to learn and scores items it never saw in training from
    their features alone. CCA needs both branches and is skipped.

    Official-code behaviours that define the MMRec protocol (validation items not
    masked at test, negatives only from training items) are the trainer's and
    evaluator's defaults; selecting the grid on *test* is not offered (use
    :func:`alignrec_lite.tuning.search`, which selects on valid).

    Args:
        dataset: the data (graphs come from its train split, features from
            :meth:`RecDataset.feature`).
        config: hyper-parameters (missing keys take :attr:`defaults`); the
            trainer's ``batch_size`` is read for the L2 term's divisor.
    """

    name = "alignrec"
    needs_features = True
    defaults = {
        **GRAPH_DEFAULTS,
        "reg_weight": 1e-4,
        "cl_loss": 0.01,
        "cl_temperature": 0.2,
        "sim_weight": 0.1,
        "ui_cosine_loss_weight": 0.1,
        "feature_source": "auto",
        "branches": "both",
        "finetune_features": False,
        "use_ln": False,
        "warmup_ui": False,
        "sim_cache_mb": 512.0,
        "lr_decay": 0.96,
    }

    def __init__(self, dataset: RecDataset, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(dataset, config)
        cfg = self.config
        self._check_config(cfg)
        self.branches = str(cfg["branches"])
        self.use_id = self.branches in ("both", "id")
        self.use_content = self.branches in ("both", "content")
        self.batch_size = int((config or {}).get("batch_size", 2048))
        self._epoch = 0
        d = int(cfg["embedding_size"])
        train = dataset.interaction_matrix("train")  # (n_users, n_items)

        # ID branch: E_u, E_i and LightGCN's Â (names as in LightGCN, so weights transfer).
        if self.use_id:
            self.init_id_embeddings(d)
            self.register_buffer("adj", to_torch(normalized_adjacency(train)), persistent=False)

        # Content branch: features, frozen kNN graph S̃, user aggregation R̃.
        self.feature_source: str | None = None
        if self.use_content:
            feat, self.feature_source = dataset.feature(str(cfg["feature_source"]))
            feat_t = torch.from_numpy(np.ascontiguousarray(feat, dtype=np.float32))  # (n_items, d_m)
            if feat_t.shape[0] != self.n_items:
                raise ConfigError(
                    f"the feature has {feat_t.shape[0]} rows but the dataset has {self.n_items} items",
                    row="feature_source",
                    fix="recompute the features for this dataset",
                )
            d_m = feat_t.shape[1]
            if cfg["finetune_features"]:
                self.feat_table = nn.Parameter(feat_t.clone())  # trainable, drifts (official quirk)
            else:
                self.register_buffer("feat", feat_t, persistent=False)
            # unit-norm copy of the *initial* features: kNN graph and the frozen sim target
            self.register_buffer("feat_unit", F.normalize(feat_t, dim=1), persistent=False)
            self.ln = nn.LayerNorm(d_m) if cfg["use_ln"] else None
            self.mm_trs = nn.Linear(d_m, d)  # W_t, b_t
            self.gate = nn.Linear(d, d) if self.use_id else None  # W_g, b_g (purifier)
            raw = knn_graph(feat, int(cfg["knn_k"]), weighted=True, normalize="none")  # (n_items, n_items)
            deg = np.asarray(raw.sum(axis=1)).ravel()  # d_r: row sums of the kept cosines
            # sym normalisation S̃ = D^{-1/2} S D^{-1/2} (same as knn_graph(normalize="sym"))
            inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
            s = (sp.diags(inv) @ raw @ sp.diags(inv)).astype(np.float32).tocsr()
            self.register_buffer("knn_degree", torch.from_numpy(deg.astype(np.float32)), persistent=False)
            s_t, s_tt = sparse_pair(s)
            self.register_buffer("item_graph", s_t, persistent=False)
            self.register_buffer("item_graph_t", s_tt, persistent=False)
            r_t, r_tt = sparse_pair(user_item_norm(train))  # R̃ (n_users, n_items), R̃ᵀ
            self.register_buffer("ui_norm", r_t, persistent=False)
            self.register_buffer("ui_norm_t", r_tt, persistent=False)
            self._sim_sq: torch.Tensor | None = None  # cached cos² matrix (built lazily)

    # ------------------------------------------------------------- config
    @staticmethod
    def _check_config(cfg: Mapping[str, Any]) -> None:
        if cfg["branches"] not in BRANCHES:
            raise ConfigError(
                f"branches={cfg['branches']!r} is not one of {', '.join(BRANCHES)}",
                row="branches",
                fix="use --set branches=both (or id, content)",
            )
        if cfg["feature_source"] not in FEATURE_SOURCES:
            raise ConfigError(
                f"feature_source={cfg['feature_source']!r} is not known",
                row="feature_source",
                fix="use one of " + ", ".join(FEATURE_SOURCES),
            )
        for key in ("cl_loss", "sim_weight", "ui_cosine_loss_weight", "reg_weight", "sim_cache_mb"):
            if not float(cfg[key]) >= 0:
                raise ConfigError(f"{key} must be >= 0, got {cfg[key]}", row=key, fix=f"--set {key}=0")
        for key in ("n_ui_layers", "n_layers"):
            if int(cfg[key]) < 0:
                raise ConfigError(f"{key} must be >= 0, got {cfg[key]}", row=key, fix=f"--set {key}=1")
        if not float(cfg["cl_temperature"]) > 0:
            raise ConfigError("cl_temperature must be > 0", row="cl_temperature", fix="--set cl_temperature=0.2")

    # ------------------------------------------------------------- Aggregator
    def features(self) -> torch.Tensor:
        """The item feature table ``F`` (trainable only with ``finetune_features``).

        Shape:
            ``(n_items, d_m)``.
        """
        return self.feat_table if self.config["finetune_features"] else self.feat

    def project_content(self, feat: torch.Tensor) -> torch.Tensor:
        """``M = F W_t + b_t`` (``LayerNorm(F)`` first with ``use_ln``).

        Shape:
            feat: ``(m, d_m)``; returns ``(m, d)``.
        """
        if self.ln is not None:
            feat = self.ln(feat)
        return self.mm_trs(feat)  # (m, d)

    def purify(self, item_id_emb: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """MGCN's behaviour-guided purifier ``X = E_i ⊙ σ(M W_g + b_g)``.

        Shape:
            item_id_emb, content: ``(m, d)``; returns ``(m, d)``.
        """
        return item_id_emb * torch.sigmoid(self.gate(content))

    def aggregate_id(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ID branch: LightGCN over ``Â``, mean of layers ``0..n_ui_layers``.

        Shape:
            returns ``H_u^id (n_users, d)``, ``H_i^id (n_items, d)``.
        """
        emb0 = torch.cat([self.user_emb.weight, self.item_emb.weight])  # (N, d)
        out = propagate(self.adj, emb0, int(self.config["n_ui_layers"]))  # (N, d)
        return torch.split(out, [self.n_users, self.n_items])

    def _content_input(self) -> torch.Tensor:
        m = self.project_content(self.features())  # (n_items, d)
        return self.purify(self.item_emb.weight, m) if self.use_id else m  # (n_items, d)

    def aggregate_content(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Content branch: ``H_i^m = S̃^{L_m} X`` and ``H_u^m = R̃ H_i^m``.

        Shape:
            returns ``H_u^m (n_users, d)``, ``H_i^m (n_items, d)``.
        """
        h_i = self._content_input()  # (n_items, d)
        for _ in range(int(self.config["n_layers"])):
            h_i = spmm(self.item_graph, h_i, self.item_graph_t)  # (n_items, d)
        h_u = spmm(self.ui_norm, h_i, self.ui_norm_t)  # (n_users, d)
        return h_u, h_i

    def representations(self) -> dict[str, torch.Tensor | None]:
        """Every branch's output: ``user_id, item_id, user_content, item_content``.

        A branch that is switched off gives ``None``.
        """
        out: dict[str, torch.Tensor | None] = dict.fromkeys(("user_id", "item_id", "user_content", "item_content"))
        if self.use_id:
            out["user_id"], out["item_id"] = self.aggregate_id()
        if self.use_content:
            out["user_content"], out["item_content"] = self.aggregate_content()
        return out

    # ------------------------------------------------------------- Fuser
    @staticmethod
    def fuse(id_part: torch.Tensor | None, content_part: torch.Tensor | None) -> torch.Tensor:
        """The Fuser: ``h = H^id + H^m`` (plain sum; a missing branch counts as 0)."""
        if id_part is None:
            return content_part
        if content_part is None:
            return id_part
        return id_part + content_part

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (fused) user and item vectors.

        Shape:
            returns ``(n_users, d)``, ``(n_items, d)``.
        """
        r = self.representations()
        return self.fuse(r["user_id"], r["user_content"]), self.fuse(r["item_id"], r["item_content"])

    # ------------------------------------------------------------- training
    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Remember the epoch (for ``warmup_ui``); the graphs are frozen, nothing is redrawn."""
        self._epoch = int(epoch)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """``L = L_BPR + L_reg + γ L_UIA + α L_CCA + β L_sim`` on one batch.

        The returned ``"uia"``, ``"cca"`` and ``"sim"`` entries are already
        weighted, so the entries other than ``"loss"`` sum to ``"loss"`` (terms
        with weight 0 or a missing branch are left out).

        Shape:
            users, pos, neg: ``(B,)`` int64.
        """
        cfg = self.config
        r = self.representations()
        b = users.shape[0]
        # gather each branch's batch rows once (users; positives and negatives together)
        both = torch.cat([pos, neg])  # (2B,)
        # (index_select: its backward is one ordered index_add_, cheaper than indexing's sort-based one)
        u_id = r["user_id"].index_select(0, users) if self.use_id else None  # (B, d)
        u_m = r["user_content"].index_select(0, users) if self.use_content else None  # (B, d)
        i_id = r["item_id"].index_select(0, both) if self.use_id else None  # (2B, d)
        i_m = r["item_content"].index_select(0, both) if self.use_content else None  # (2B, d)
        u = self.fuse(u_id, u_m)  # (B, d) fused user vectors
        p, n = torch.split(self.fuse(i_id, i_m), [b, b])  # (B, d) each
        warming = bool(cfg["warmup_ui"]) and self._epoch < WARMUP_EPOCHS
        terms: dict[str, torch.Tensor] = {}
        if not warming:
            terms["bpr"] = bpr_loss((u * p).sum(1), (u * n).sum(1))
        terms["reg"] = cfg["reg_weight"] * l2_reg_loss(u, p, n, batch_size=self.batch_size)
        if cfg["ui_cosine_loss_weight"] > 0 and not warming:
            terms["uia"] = cfg["ui_cosine_loss_weight"] * uia_loss(u, p)
        need_cca = cfg["cl_loss"] > 0 and self.use_id and self.use_content
        need_sim = cfg["sim_weight"] > 0 and self.use_content
        if need_cca or need_sim:
            # distinct positives with multiplicities: the same values as the duplicated batch, less work
            items, first_i, item_counts = _distinct(pos)
        if need_cca:
            _, first_u, user_counts = _distinct(users)
            terms["cca"] = cfg["cl_loss"] * cca_loss(
                i_m[first_i],
                i_id[first_i],
                u_m[first_u],
                u_id[first_u],
                temperature=float(cfg["cl_temperature"]),
                item_counts=item_counts,
                user_counts=user_counts,
            )
        if need_sim:
            terms["sim"] = cfg["sim_weight"] * self._sim_term(i_m[first_i], items, item_counts)
        terms["loss"] = sum(terms.values())
        return terms

    def _sim_term(self, content: torch.Tensor, items: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``L_sim`` over the batch's positive items, computed the fast exact way.

        :func:`alignrec_lite.losses.sim_loss_expanded` needs only the distinct
        positives and the squared norm ``K = ||cos(F_B)||_F^2`` of the target, which is
        found the cheapest way available: with frozen features from squared cosines
        of all item pairs precomputed once (if ``n_items^2 * 4`` bytes fit in
        ``sim_cache_mb``; then ``K = c^T Q c``), otherwise from the distinct items'
        features (:func:`target_sq_norm`). With ``finetune_features`` the target uses
        the current (drifting) feature table, as the official code does.

        Args:
            content: ``H^m`` of the distinct positive items.
            items: their item IDs.
            counts: how often each occurs among the batch's positives.

        Shape:
            content: ``(m, d)``; items, counts: ``(m,)``.
        """
        table = self.feat_table.detach() if self.config["finetune_features"] else None
        feat_unit = F.normalize(table[items], dim=1) if table is not None else self.feat_unit[items]  # (m, d_m)
        if table is None and self._sim_sq is None and self.n_items**2 * 4 <= self.config["sim_cache_mb"] * 2**20:
            with torch.no_grad():
                self._sim_sq = (self.feat_unit @ self.feat_unit.T).square_()  # (n_items, n_items)
        with torch.no_grad():
            if table is None and self._sim_sq is not None:
                c_full = torch.zeros(self.n_items, dtype=self._sim_sq.dtype, device=items.device)
                c_full[items] = counts.to(c_full.dtype)
                target_sq = torch.dot(c_full, self._sim_sq @ c_full)  # c^T Q c, one mat-vec
            else:
                target_sq = target_sq_norm(feat_unit, counts)
        return sim_loss_expanded(content, feat_unit, target_sq, counts)

    # ------------------------------------------------------------- content scoring
    @property
    def has_content_path(self) -> bool:
        """Whether :meth:`encode_content` works: only with a content branch (not ``branches="id"``)."""
        return self.use_content

    @torch.no_grad()
    def content_item_vectors(self) -> torch.Tensor:
        """The content branch's item vectors ``H_i^m`` (no ID branch).

        Shape:
            returns ``(n_items, d)``.
        """
        if not self.use_content:
            raise ConfigError(
                "this AlignRec has no content branch",
                row="branches",
                fix="train with branches=both or branches=content",
            )
        return self.aggregate_content()[1]

    @torch.no_grad()
    def encode_content(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item vectors for items *without interactions*, from their features alone.

        A new item is attached to the frozen kNN graph the way it would have been
        built with it: its row holds itself (cosine 1) and its ``knn_k - 1`` most
        similar known items, weighted by cosine and normalised with its own row
        sum and the neighbours' existing degrees (the neighbours' rows are left
        unchanged). One propagation step then gives ``H^m_new = Σ_j S̃_new,j X_j``
        with ``X_j`` the known items' layer ``n_layers - 1`` content vectors.
        The new item's own term needs its ID embedding, which does not exist: it
        is 0 with ``branches="both"`` (and so is ``H^id_new``), and ``F_new W_t + b_t``
        for ``branches="content"``. Its final vector is ``h_new = H^m_new``.

        Args:
            features: new items' features in the same space as the training
                feature (same ``feature_source``).

        Returns:
            ``(m, d)`` item vectors, comparable with the users' final vectors.

        Shape:
            features: ``(m, d_m)``.
        """
        if not self.use_content:
            raise ConfigError(
                "items without interactions need the content branch",
                row="branches",
                fix="train with branches=both or branches=content",
            )
        new = torch.as_tensor(features, dtype=torch.float32, device=self.feat_unit.device)
        if new.ndim != 2 or new.shape[1] != self.feat_unit.shape[1]:
            raise ConfigError(
                f"expected features of shape (m, {self.feat_unit.shape[1]}), got {tuple(new.shape)}",
                row="features",
                fix="use the same feature source as training",
            )
        if int(self.config["n_layers"]) == 0:  # no item-graph hop: only the item's own (missing) term
            own = self.project_content(new) if not self.use_id else None
            return own if own is not None else new.new_zeros(new.shape[0], self.mm_trs.out_features)
        k = max(1, min(int(self.config["knn_k"]) - 1, self.n_items))
        sim = F.normalize(new, dim=1) @ self.feat_unit.T  # (m, n_items)
        w, nbr = torch.topk(sim, k, dim=1)  # (m, k)
        deg_known = self.knn_degree  # (n_items,)
        deg_new = 1.0 + w.sum(1, keepdim=True)  # (m, 1), the self-loop has cosine 1
        coef = w / torch.sqrt(deg_new.clamp_min(1e-12) * deg_known[nbr].clamp_min(1e-12))  # (m, k)
        x = self._content_input()  # (n_items, d)
        for _ in range(int(self.config["n_layers"]) - 1):
            x = spmm(self.item_graph, x)
        h = (coef.unsqueeze(2) * x[nbr]).sum(1)  # (m, d)
        if not self.use_id:
            h = h + self.project_content(new) / deg_new  # self-loop term
        return h


def _distinct(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct values of ``ids``, the position of each one's first occurrence, and their counts.

    Shape:
        ids: ``(B,)``; returns three ``(m,)`` tensors.
    """
    values, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    first = torch.full((len(values),), len(ids), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
    return values, first, counts


def target_sq_norm(feat_unit: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``||F̂_B F̂_Bᵀ||_F^2`` of a batch given as distinct unit rows with multiplicities.

    Uses ``||F̂_Bᵀ F̂_B||_F^2 = ||Σ_w c_w f_w f_wᵀ||_F^2`` (a ``d_m x d_m`` product, of which
    only the blocks on and above the diagonal are computed: it is symmetric) when that
    is cheaper than the ``m x m`` cosine matrix, and ``Σ_{w,v} c_w c_v cos²(f_w, f_v)``
    otherwise.

    Shape:
        feat_unit: ``(m, d_m)``; counts: ``(m,)``. Returns a scalar.
    """
    m, d_m = feat_unit.shape
    c = counts.to(feat_unit.dtype)
    if d_m < m:
        weighted = feat_unit * c.sqrt()[:, None]  # (m, d_m)
        # the Gram matrix is symmetric: its upper block triangle (10 of 16 blocks) gives the norm
        cols = torch.tensor_split(weighted, 4 if d_m >= 256 else 1, dim=1)
        total = weighted.new_zeros((), dtype=torch.float64)
        for j, right in enumerate(cols):
            for i, left in enumerate(cols[: j + 1]):
                block = (left.T @ right).double().square().sum()  # (d_i, d_j) block of the Gram
                total = total + (block if i == j else 2.0 * block)
        return total
    cos_sq = (feat_unit @ feat_unit.T).double().square()  # (m, m)
    return c.double() @ cos_sq @ c.double()


__all__ = ["AlignRec", "BRANCHES", "FEATURE_SOURCES"]
