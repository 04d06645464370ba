"""Stage 1: the multimodal encoder (MMEnc) and its inter-content alignment (ICA) pre-training.

AlignRec (CIKM 2024, ALIGNREC_SPEC §1.1) fine-tunes a BEiT-3 on the items' image-text
pairs with masked image/text modelling and uses one fused vector per item. Neither
its training code nor its weights are public, so the kit builds an honest, small
version of the same idea on top of :mod:`alignrec_lite.encoders`:

* **MMEnc** = an image tower + a text tower (any of ``tiny-cnn``, ``tiny-vit``,
  ``minilm``, ``openclip:ARCH[@TAG]``), a linear projection of each into one
  ``embed_dim`` space (``z_img``, ``z_txt``, L2-normalised), two small
  *predictors* that guess one modality's embedding from the other, and a
  **fusion** into the item vector written to ``mm_feat.npy``:

  - ``"mean"``: ``normalize((z_img + z_txt) / 2)``;
  - ``"concat"``: ``[z_img, z_txt] / sqrt(2)`` (``2 * embed_dim`` wide);
  - ``"mlp"``: ``normalize((z_img + z_txt) / 2 + MLP([z_img, z_txt]))`` (residual,
    the MLP's last layer starts at zero).

* **ICA objective** ``L = L_clip + mask_weight * L_mask``:

  - ``L_clip``: CLIP's symmetric InfoNCE over the batch's image-text pairs
    (:func:`alignrec_lite.losses.clip_loss`) with a learnable temperature
    (``logit_scale = log(1/0.07)`` at start, clamped at ``log 100``, as CLIP);
  - ``L_mask`` (masked-modality modelling): for a share ``mask_prob`` of the
    batch one modality (image or text, at random) is masked. The predictor
    reconstructs its embedding from the other modality,
    ``1 - cos(pred(z_other), stopgrad(z_masked))``, and the fused vector of the
    masked view (the masked modality replaced by its prediction) must identify the
    item among the batch's complete fused vectors,
    ``InfoNCE(fuse(masked view), stopgrad(fuse(full)), tau=0.1)``. This is the
    counterpart of BEiT-3's mask-then-predict at the level of embeddings, and it
    is what makes the fused feature usable when an item lacks a modality
    (``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy``, used by the
    mask-modality metric of :mod:`alignrec_lite.feature_eval`).

* Options: freeze the pretrained text tower (default, LiT-style: the locked tower
  is the teacher, the other learns to match it; its outputs are computed once),
  freeze the image tower, mixed precision, any device (:func:`~alignrec_lite.utils.get_device`).

Differences from the paper, stated plainly: two separate towers instead of one
Multiway transformer; alignment by contrastive learning plus embedding-level
masked prediction instead of token-level masked image/text modelling; a tiny
image tower trained from scratch on a CPU by default (``--arch ViT-B-32
--pretrained openai`` on a GPU is the scaled-up path).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.mmrec import RecDataset, load_mmrec
from .encoders import MASKED_FILES, MM_FILE  # noqa: F401 - the stage-1 file names, re-exported
from .encoders import (ImageTower, TextTower, _autocast, build_towers, load_image, load_stage1_checkpoint,
                       open_stage1_run, read_manifest, save_stage1_checkpoint, write_mm_features)
from .errors import CheckpointError, ConfigError, DataError
from .geometry import alignment, uniformity
from .io import save_npy, sha256_file
from .losses import clip_loss
from .utils import get_device, seed_everything

FUSIONS = ("mean", "concat", "mlp")
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class ICAConfig:
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
        for ok, key, fix in checks:
            if not ok:
                raise ConfigError(f"invalid {key}: {getattr(self, key)!r}", row=key, fix=fix)

    def key(self) -> str:
        """Hash of the settings that define the trained encoder (not epochs or device)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("epochs", "device")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> "ICAConfig":
        """Rebuild from :func:`dataclasses.asdict` output (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ConfigError(f"unknown ICA setting(s) {bad}", row=bad[0], fix=f"use {sorted(names)}")
        return cls(**d)


# ====================================================================== model
class MMEnc(nn.Module):
    """Two towers, their projections into one space, cross-modal predictors and a fusion.

    Args:
        image_tower, text_tower: built towers (:func:`alignrec_lite.encoders.build_towers`).
        embed_dim: the shared space.
        fusion: ``"mean"``, ``"concat"`` or ``"mlp"``.
        init_temperature: CLIP's initial temperature.
    """

    def __init__(self, image_tower: ImageTower, text_tower: TextTower, *, embed_dim: int = 128,
                 fusion: str = "mean", init_temperature: float = 0.07) -> None:
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
    def ica_loss(self, z_img: torch.Tensor, z_txt: torch.Tensor, *, mask_weight: float = 0.5,
                 mask_prob: float = 0.5, mask_temperature: float = 0.1,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
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
                pred_loss = torch.where(which_img, 1 - (p_img * z_img.detach()).sum(-1),
                                        1 - (p_txt * z_txt.detach()).sum(-1))  # (B,)
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


# ====================================================================== data
class ItemContent:
    """Pre-processed content of every item: pixel tensors and token batches, kept in memory.

    Args:
        ds: the dataset (needs ``items.csv``).
        model: the encoder whose towers define the preprocessing.
        progress: show a bar while the images are decoded.
    """

    def __init__(self, ds: RecDataset, model: MMEnc, *, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        tower = model.image_tower
        s = tower.image_size
        self.pixels = torch.zeros(ds.n_items, 3, s, s, dtype=torch.float16)  # (n_items, 3, S, S)
        self.has_image = torch.zeros(ds.n_items, dtype=torch.bool)
        for i in tqdm(range(ds.n_items), disable=not progress, desc="decoding images", unit="img"):
            im = load_image(ds.image_path(i))
            if im is not None:
                self.pixels[i] = tower.preprocess(im).to(torch.float16)
                self.has_image[i] = True
        if not self.has_image.any():
            raise DataError("no item image could be read", path=ds.path,
                            fix="check the `image` column of items.csv and the image files")
        self.texts = [ds.item_text(i) for i in range(ds.n_items)]
        self.n_items = ds.n_items


def _augment(pix: torch.Tensor, gen: torch.Generator, shift: int = 4) -> torch.Tensor:
    """Random horizontal flips (per image) and one random shift per batch (reflect padding)."""
    flip = torch.rand(pix.shape[0], generator=gen) < 0.5
    pix = torch.where(flip[:, None, None, None].to(pix.device), pix.flip(3), pix)
    dx, dy = (int(v) for v in torch.randint(0, 2 * shift + 1, (2,), generator=gen))
    padded = F.pad(pix, (shift, shift, shift, shift), mode="reflect")
    return padded[:, :, dy : dy + pix.shape[2], dx : dx + pix.shape[3]]


@torch.no_grad()
def _tower_outputs(model: MMEnc, content: ItemContent, modality: str, device: torch.device, precision: str,
                   batch_size: int = 128) -> torch.Tensor:
    """Outputs of one tower for every item (used for frozen towers and for the final features)."""
    tower = model.image_tower if modality == "image" else model.text_tower
    tower.eval()
    outs = []
    for start in range(0, content.n_items, batch_size):
        with _autocast(device, precision):
            if modality == "image":
                x = content.pixels[start : start + batch_size].to(device).float()
                outs.append(tower(x).float())
            else:
                tok = {k: v.to(device) for k, v in tower.tokenize(content.texts[start : start + batch_size]).items()}
                outs.append(tower(tok).float())
    return torch.cat(outs)  # (n_items, d_tower)


@torch.no_grad()
def encode_items(model: MMEnc, content: ItemContent, *, device: torch.device | str = "cpu",
                 precision: str = "fp32", batch_size: int = 128,
                 tower_outputs: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Every item's embeddings and fused vectors, complete and with one modality masked.

    Items without a readable image are encoded as if their image were masked.

    Args:
        model, content: the encoder and the items' pre-processed content.
        device, precision, batch_size: how the towers run.
        tower_outputs: already computed outputs of (frozen) towers, by modality.

    Returns:
        ``{"image", "text"}`` (``(n_items, embed_dim)``, normalised), ``"mm"``,
        ``"mm_mask_image"``, ``"mm_mask_text"`` (``(n_items, out_dim)``).
    """
    device = torch.device(device)
    model.eval()
    known = tower_outputs or {}
    f_img = known["image"] if "image" in known else _tower_outputs(model, content, "image", device, precision,
                                                                   batch_size)
    f_txt = known["text"] if "text" in known else _tower_outputs(model, content, "text", device, precision,
                                                                 batch_size)
    z_img, z_txt = model.project_image(f_img), model.project_text(f_txt)  # (n_items, e)
    p_img, p_txt = model.predict(z_txt, "image"), model.predict(z_img, "text")
    missing = (~content.has_image).to(device)[:, None]
    z_img_used = torch.where(missing, p_img, z_img)
    out = {
        "image": z_img, "text": z_txt,
        "mm": model.fuse(z_img_used, z_txt),
        "mm_mask_image": model.fuse(p_img, z_txt),
        "mm_mask_text": model.fuse(z_img_used, p_txt),
    }
    return {k: v.float().cpu().numpy() for k, v in out.items()}


# ====================================================================== training
def _checkpoint_state(model: MMEnc, cfg: ICAConfig) -> dict[str, torch.Tensor]:
    """The weights worth saving: everything except frozen pretrained towers (rebuilt from their spec)."""
    skip = []
    if cfg.freeze_text and model.text_tower.pretrained:
        skip.append("text_tower.")
    if cfg.freeze_image and model.image_tower.pretrained:
        skip.append("image_tower.")
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if not any(k.startswith(s) for s in skip)}


def _save(run: Path, model: MMEnc, opt: torch.optim.Optimizer, cfg: ICAConfig, epoch: int, history: list,
          gen: torch.Generator, seconds: float) -> None:
    save_stage1_checkpoint(run, "mmenc-ica", {"config": asdict(cfg), "epoch": epoch,
                                              "model": _checkpoint_state(model, cfg)}, opt, gen, history, seconds)


def load_checkpoint(path: str | Path) -> dict:
    """Read an ICA checkpoint (``weights_only=True``, CRC-checked).

    Raises:
        CheckpointError: missing, unreadable or not an ICA checkpoint.
    """
    return load_stage1_checkpoint(path, ("mmenc-ica", None), name="ICA", train_cmd="alignrec-lite pretrain-ica DIR")


def load_mmenc(run: str | Path) -> tuple[MMEnc, ICAConfig]:
    """Rebuild a trained MMEnc from a run folder (``last.pt``), in eval mode on the CPU."""
    state = load_checkpoint(run)
    cfg = ICAConfig.from_dict(state["config"])
    model = build_mmenc(cfg)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    bad = [k for k in missing if not k.startswith(("text_tower.", "image_tower."))] + list(unexpected)
    if bad:
        raise CheckpointError(f"checkpoint does not match the model ({bad[:3]})", path=run,
                              fix="train again with --overwrite")
    return model.eval(), cfg


def retrieval_top1(z_img: np.ndarray, z_txt: np.ndarray, *, max_items: int = 4096, seed: int = 0) -> float:
    """Share of items whose image embedding is closest to their own text (image -> text recall@1).

    Chance level is ``1 / n``. Estimated on at most ``max_items`` random items.

    Shape:
        z_img, z_txt: ``(n, e)`` normalised.
    """
    n = len(z_img)
    idx = np.arange(n) if n <= max_items else np.sort(np.random.default_rng(seed).choice(n, max_items, False))
    sim = torch.from_numpy(z_img[idx]) @ torch.from_numpy(z_txt[idx]).T  # (m, m)
    return float((sim.argmax(dim=1) == torch.arange(len(idx))).float().mean())


def _pair_geometry(emb: dict[str, np.ndarray], items: np.ndarray, max_items: int = 4096) -> dict[str, float]:
    zi, zt = emb["image"][items], emb["text"][items]
    sub = np.random.default_rng(0).permutation(len(items))[:max_items]
    full_clip = float(clip_loss(torch.from_numpy(zi[sub]), torch.from_numpy(zt[sub]), 1 / 0.07))
    return {"clip_loss_all_items": full_clip, "align_image_text": alignment(zi, zt),
            "uniform_image": uniformity(zi), "uniform_text": uniformity(zt),
            "uniform_mm": uniformity(emb["mm"]), "image_to_text_top1": retrieval_top1(zi, zt),
            "chance_top1": 1.0 / max(1, min(len(items), 4096))}


def pretrain_ica(
    folder: str | Path,
    config: ICAConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: list[Callable[[int, MMEnc, dict], None]] | None = None,
) -> dict:
    """Pre-train MMEnc with ICA on a dataset's image-text pairs and write ``mm_feat.npy`` + manifest.

    Every epoch ends with an atomic checkpoint ``RUN/last.pt`` (trainable weights,
    optimiser, random states, history); ``resume=True`` continues from it
    (``epochs`` may be raised). At the end the fused vector of every item is
    written to ``DIR/mm_feat.npy`` (row i = itemID i), the masked-view vectors to
    ``DIR/mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy``, the aligned
    per-modality embeddings to ``RUN/ica_image.npy`` / ``RUN/ica_text.npy``, and
    an ``"mm"`` entry to ``DIR/features.json``.

    Args:
        folder: MMRec dataset folder with ``items.csv``.
        config: :class:`ICAConfig` (defaults: tiny CNN + frozen MiniLM, mean fusion).
        out: run folder (default ``DIR/.cache/ica/<config key>``).
        resume: continue from ``out/last.pt``.
        overwrite: replace an existing ``mm_feat.npy`` made with other settings, and
            start the run folder afresh.
        progress: ``tqdm.auto`` bars.
        callbacks: ``f(epoch, model, epoch_record)`` after every epoch.

    Returns:
        ``{"shape", "epochs_run", "train_seconds", "final_loss", "run_dir", "history",
        "geometry_before", "geometry_after", "manifest"}``.

    Raises:
        DataError: no items table / no readable image, or ``mm_feat.npy`` from other
            settings (fix: ``overwrite=True``). CheckpointError: nothing to resume or
            a checkpoint with other settings. ConfigError: invalid settings.
    """
    from tqdm.auto import tqdm

    cfg = config or ICAConfig()
    cfg.validate()
    folder = Path(folder)
    ds = load_mmrec(folder, load_features=False)
    if ds.items is None or "image" not in ds.items.columns:
        raise DataError("ICA needs items.csv with `text` and `image` columns", path=folder,
                        fix="build the dataset with `alignrec-lite data build ...`")
    run = Path(out) if out is not None else folder / ".cache" / "ica" / cfg.key()
    entry = read_manifest(folder).get("mm")
    if (folder / MM_FILE).exists() and not overwrite:
        if not isinstance(entry, dict) or entry.get("encoder") != "mmenc-ica" or entry.get("config_key") != cfg.key():
            made = entry.get("encoder") if isinstance(entry, dict) else "an unknown encoder"
            raise DataError(f"{MM_FILE} already exists (made by {made} with other settings)", path=folder / MM_FILE,
                            fix="pass --overwrite (overwrite=True) to replace it, or use another folder")
    if (not overwrite and not resume and isinstance(entry, dict) and entry.get("config_key") == cfg.key()
            and entry.get("epochs") == cfg.epochs and (folder / MM_FILE).exists()
            and entry.get("sha256") == sha256_file(folder / MM_FILE)):
        return {"shape": entry["shape"], "epochs_run": entry["epochs"], "train_seconds": entry["train_seconds"],
                "final_loss": entry["final_loss"], "run_dir": Path(entry["run_dir"]), "history": [],
                "geometry_before": entry["geometry_before"], "geometry_after": entry["geometry_after"],
                "manifest": read_manifest(folder), "up_to_date": True}
    state = open_stage1_run(run, cfg, resume=resume, overwrite=overwrite, load=load_checkpoint, name="an ICA")

    seed_everything(cfg.seed)
    device = get_device(cfg.device)
    model = build_mmenc(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    start_epoch, prior_seconds = 0, 0.0
    if resume:
        model.load_state_dict(state["model"], strict=False)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume:
        opt.load_state_dict(state["optimizer"])  # moves the moments to the parameters' device
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch, prior_seconds = list(state["history"]), int(state["epoch"]), float(state["seconds"])
    content = ItemContent(ds, model, progress=progress)
    train_items = content.has_image.nonzero().squeeze(1)  # pairs need both modalities
    frozen = {m: (cfg.freeze_image if m == "image" else cfg.freeze_text) for m in ("image", "text")}
    cached = {m: _tower_outputs(model, content, m, device, cfg.precision) for m in frozen if frozen[m]}
    emb0 = encode_items(model, content, device=device, precision=cfg.precision, tower_outputs=cached)
    geometry_before = _pair_geometry(emb0, train_items.numpy())
    use_scaler = cfg.precision == "amp" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    t0 = time.perf_counter()
    bar = tqdm(total=cfg.epochs, initial=min(start_epoch, cfg.epochs), disable=not progress, desc="ICA",
               unit="epoch", dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        for m, is_frozen in frozen.items():
            if is_frozen:
                (model.image_tower if m == "image" else model.text_tower).eval()
        order = train_items[torch.randperm(len(train_items), generator=gen)]
        sums: dict[str, float] = {}
        n_batches = 0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            if len(idx) < 2:
                continue
            with _autocast(device, cfg.precision):
                if frozen["image"]:
                    f_img = cached["image"][idx.to(cached["image"].device)]
                else:
                    pix = content.pixels[idx].float()
                    if cfg.augment:
                        pix = _augment(pix, gen)
                    f_img = model.image_tower(pix.to(device))
                if frozen["text"]:
                    f_txt = cached["text"][idx.to(cached["text"].device)]
                else:
                    tok = model.text_tower.tokenize([content.texts[i] for i in idx.tolist()])
                    f_txt = model.text_tower({k: v.to(device) for k, v in tok.items()})
            z_img, z_txt = model.project_image(f_img), model.project_text(f_txt)  # (B, e) fp32
            terms = model.ica_loss(z_img, z_txt, mask_weight=cfg.mask_weight, mask_prob=cfg.mask_prob,
                                   mask_temperature=cfg.mask_temperature, generator=gen)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(terms["loss"]).backward()
                scaler.step(opt)
                scaler.update()
            else:
                terms["loss"].backward()
                opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        record = {"epoch": epoch, **{k: v / max(1, n_batches) for k, v in sums.items()},
                  "temperature": model.temperature()}
        if not math.isfinite(record.get("loss", 0.0)):
            raise ConfigError(f"the ICA loss became {record['loss']} at epoch {epoch}", row="lr",
                              fix="lower the learning rate (--lr) or use --precision fp32")
        history.append(record)
        for cb in callbacks or []:
            cb(epoch, model, record)
        _save(run, model, opt, cfg, epoch + 1, history, gen, prior_seconds + time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", clip=f"{record['clip']:.4f}")
    bar.close()
    train_seconds = prior_seconds + time.perf_counter() - t0
    if cfg.epochs == 0 or start_epoch >= cfg.epochs:
        _save(run, model, opt, cfg, max(start_epoch, cfg.epochs), history, gen, train_seconds)

    emb = encode_items(model, content, device=device, precision=cfg.precision, tower_outputs=cached)
    geometry_after = _pair_geometry(emb, train_items.numpy())
    save_npy(run / "ica_image.npy", emb["image"])
    save_npy(run / "ica_text.npy", emb["text"])
    manifest = write_mm_features(folder, run, emb, {
        "encoder": "mmenc-ica",
        "image_tower": model.image_tower.describe(),
        "text_tower": model.text_tower.describe(),
        "fusion": cfg.fusion,
        "temperature": model.temperature(),
        "geometry_before": geometry_before,
        "geometry_after": geometry_after,
    }, config=cfg, history=history, train_seconds=train_seconds, missing_images=int((~content.has_image).sum()),
        device=device)
    return {"shape": list(emb["mm"].shape), "epochs_run": len(history), "train_seconds": train_seconds,
            "final_loss": history[-1]["loss"] if history else float("nan"), "run_dir": run, "history": history,
            "geometry_before": geometry_before, "geometry_after": geometry_after, "manifest": manifest}


def ica_config_dict(cfg: ICAConfig) -> dict[str, Any]:
    """The config as a plain dict (for records and notebooks)."""
    return asdict(cfg)
