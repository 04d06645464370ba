"""MMEnc: two towers, their projections into one space, cross-modal predictors, a fusion, and the ICA loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import ImageTower, Stage1Config, TextTower, build_towers
from ..errors import ConfigError
from ..losses import clip_loss

FUSIONS = ("mean", "concat", "mlp")
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class ICAConfig(Stage1Config):
    """Settings of MMEnc and its ICA pre-training (all have CPU-friendly defaults).

    Attributes:
        image_encoder, text_encoder: tower specs (see :mod:`alignrec_lite.encoders`).
        fusion: ``"mean"``, ``"concat"`` or ``"mlp"``.
        embed_dim: the shared space. A tower whose output width equals it gets an
            identity projection at start (keeps a pretrained space, e.g. CLIP's); if
            that tower is also frozen, the projection stays fixed (LiT: the locked
            tower's space *is* the shared space, e.g. ``embed_dim=384`` with MiniLM).
        tower_dim: output size of the tiny towers.
        epochs, batch_size, lr, weight_decay: AdamW training.
        init_temperature: CLIP's initial temperature (0.07).
        mask_weight: weight of the masked-modality objective (0 switches it off).
        mask_prob: share of the batch whose one modality is masked.
        mask_temperature: temperature of the fused-view InfoNCE.
        freeze_text, freeze_image: lock a tower (LiT-style).
        augment: random flips and shifts of the training images.
        precision: ``"fp32"`` or ``"amp"`` (bfloat16 on CPU, float16 + grad scaling on GPU).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: seeds weights, batches, masks and augmentation.
    """

    label = "ICA"  # in messages (not a field)
    image_encoder: str = "tiny-cnn"
    text_encoder: str = "minilm"
    fusion: str = "mean"
    embed_dim: int = 128
    tower_dim: int = 128
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    init_temperature: float = 0.07
    mask_weight: float = 0.5
    mask_prob: float = 0.5
    mask_temperature: float = 0.1
    freeze_text: bool = True
    freeze_image: bool = False
    augment: bool = True
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an impossible setting."""
        checks = [
            (self.fusion in FUSIONS, "fusion", f"use one of {FUSIONS}"),
            (self.embed_dim >= 1, "embed_dim", "use a positive size, e.g. 128"),
            (self.epochs >= 0, "epochs", "use 0 or more"),
            (self.batch_size >= 2, "batch_size", "contrastive learning needs at least 2 items per batch"),
            (self.lr > 0, "lr", "use e.g. 1e-3"),
            (0.0 <= self.mask_prob <= 1.0, "mask_prob", "use a share in [0, 1]"),
            (self.mask_weight >= 0, "mask_weight", "use 0 or more"),
            (self.init_temperature > 0, "init_temperature", "use e.g. 0.07"),
            (self.precision in ("fp32", "amp"), "precision", "use fp32 or amp"),
        ]
        self.check(checks)


class MMEnc(nn.Module):
    """Two towers, their projections into one space, cross-modal predictors and a fusion.

    Args:
        image_tower, text_tower: built towers (:func:`alignrec_lite.encoders.build_towers`).
        embed_dim: the shared space.
        fusion: ``"mean"``, ``"concat"`` or ``"mlp"``.
        init_temperature: CLIP's initial temperature.
    """

    def __init__(
        self,
        image_tower: ImageTower,
        text_tower: TextTower,
        *,
        embed_dim: int = 128,
        fusion: str = "mean",
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {fusion!r}", row="fusion", fix=f"use one of {FUSIONS}")
        self.image_tower, self.text_tower = image_tower, text_tower
        self.embed_dim, self.fusion = embed_dim, fusion
        self.image_proj = nn.Linear(image_tower.dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_tower.dim, embed_dim, bias=False)
        for tower, proj in ((image_tower, self.image_proj), (text_tower, self.text_proj)):
            if tower.dim == embed_dim:  # start as the identity: keeps a (pretrained) tower's space
                nn.init.eye_(proj.weight)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.pred_image = _mlp(embed_dim, embed_dim, embed_dim)  # text -> image embedding
        self.pred_text = _mlp(embed_dim, embed_dim, embed_dim)  # image -> text embedding
        self.fuser = _mlp(2 * embed_dim, embed_dim, embed_dim) if fusion == "mlp" else None
        if self.fuser is not None:
            nn.init.zeros_(self.fuser[-1].weight)
            nn.init.zeros_(self.fuser[-1].bias)

    @property
    def out_dim(self) -> int:
        """Width of the fused item vector."""
        return 2 * self.embed_dim if self.fusion == "concat" else self.embed_dim

    # ---------------------------------------------------------------- parts
    def project_image(self, feats: torch.Tensor) -> torch.Tensor:
        """Image tower output -> normalised shared embedding. Shape: ``(b, d_img)`` -> ``(b, embed_dim)``."""
        return F.normalize(self.image_proj(feats.float()), dim=-1)

    def project_text(self, feats: torch.Tensor) -> torch.Tensor:
        """Text tower output -> normalised shared embedding. Shape: ``(b, d_txt)`` -> ``(b, embed_dim)``."""
        return F.normalize(self.text_proj(feats.float()), dim=-1)

    def predict(self, z_other: torch.Tensor, target: str) -> torch.Tensor:
        """Guess the ``target`` modality's embedding from the other one (normalised).

        Shape:
            ``(b, embed_dim)`` -> ``(b, embed_dim)``.
        """
        head = self.pred_image if target == "image" else self.pred_text
        return F.normalize(z_other + head(z_other), dim=-1)  # residual: starts at "same as the other"

    def fuse(self, z_img: torch.Tensor, z_txt: torch.Tensor) -> torch.Tensor:
        """The item vector from the two (normalised) embeddings.

        Shape:
            ``(b, embed_dim)`` x 2 -> ``(b, out_dim)``.
        """
        if self.fusion == "concat":
            return torch.cat([z_img, z_txt], dim=-1) / math.sqrt(2.0)  # (b, 2 e), unit norm
        mean = 0.5 * (z_img + z_txt)  # (b, e)
        if self.fuser is not None:
            mean = mean + self.fuser(torch.cat([z_img, z_txt], dim=-1))
        return F.normalize(mean, dim=-1)

    def temperature(self) -> float:
        """Current CLIP temperature ``1 / exp(logit_scale)``."""
        return float(torch.exp(-self.logit_scale.detach()))

    # ---------------------------------------------------------------- loss
    def ica_loss(
        self,
        z_img: torch.Tensor,
        z_txt: torch.Tensor,
        *,
        mask_weight: float = 0.5,
        mask_prob: float = 0.5,
        mask_temperature: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The ICA objective on one batch of projected, normalised pairs.

        Returns:
            ``{"loss", "clip", "mask_pred", "mask_fuse"}`` (scalars).

        Shape:
            z_img, z_txt: ``(B, embed_dim)``.
        """
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        l_clip = clip_loss(z_img, z_txt, scale)
        zero = z_img.new_zeros(())
        out = {"clip": l_clip, "mask_pred": zero, "mask_fuse": zero}
        if mask_weight > 0 and mask_prob > 0:
            b = z_img.shape[0]
            masked = torch.rand(b, generator=generator).lt(mask_prob).to(z_img.device)  # (B,) which items
            which_img = torch.rand(b, generator=generator).lt(0.5).to(z_img.device)  # image (True) or text
            if masked.any():
                p_img = self.predict(z_txt, "image")  # (B, e)
                p_txt = self.predict(z_img, "text")
                pred_loss = torch.where(
                    which_img, 1 - (p_img * z_img.detach()).sum(-1), 1 - (p_txt * z_txt.detach()).sum(-1)
                )  # (B,)
                view_img = torch.where(which_img[:, None], p_img, z_img)  # (B, e) image replaced by its guess
                view_txt = torch.where(which_img[:, None], z_txt, p_txt)
                full = self.fuse(z_img, z_txt).detach()  # (B, out)
                view = self.fuse(view_img, view_txt)
                idx = masked.nonzero().squeeze(1)
                logits = view[idx] @ full.T / mask_temperature  # (m, B): find the item among all complete ones
                out["mask_pred"] = pred_loss[idx].mean()
                out["mask_fuse"] = F.cross_entropy(logits, idx)
        out["loss"] = l_clip + mask_weight * (out["mask_pred"] + out["mask_fuse"])
        return out


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


def _freeze(params, frozen: bool) -> None:
    for p in params:
        p.requires_grad_(not frozen)


def build_mmenc(cfg: ICAConfig) -> MMEnc:
    """Build MMEnc from a config (towers from their specs, seeded), with frozen towers locked."""
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        img, txt = build_towers(cfg.image_encoder, cfg.text_encoder, seed=cfg.seed, dim=cfg.tower_dim)
        model = MMEnc(img, txt, embed_dim=cfg.embed_dim, fusion=cfg.fusion, init_temperature=cfg.init_temperature)
    _freeze(txt.trainable_parameters(), cfg.freeze_text)
    _freeze(img.trainable_parameters(), cfg.freeze_image)
    for frozen, tower, proj in ((cfg.freeze_text, txt, model.text_proj), (cfg.freeze_image, img, model.image_proj)):
        if frozen and tower.dim == cfg.embed_dim:
            proj.weight.requires_grad_(False)  # LiT: a locked tower whose width is embed_dim defines the space
    return model
