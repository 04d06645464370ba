"""ICA pre-training of MMEnc: the items' content, encoding, checkpoints and :func:`pretrain_ica`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.mmrec import RecDataset, load_mmrec
from ..encoders import (
    decode_item_images,
    load_stage1_checkpoint,
    new_item_pixels,
    open_stage1_run,
    precision_context,
    require_image_or_text,
    restore_training_state,
    reuse_mm_features,
    save_stage1_checkpoint,
    write_mm_features,
)
from ..encoders.stage1 import discard_stage1_workdir, finish_mm_commit, stage1_result, stage1_workdir
from ..errors import CheckpointError, ConfigError, DataError
from ..files import save_npy
from ..geometry import alignment, uniformity
from ..losses import clip_loss
from ..utils import get_device, seed_everything
from .model import MAX_LOGIT_SCALE, ICAConfig, MMEnc, build_mmenc


class ItemContent:
    """Pre-processed content of every item: pixel tensors and token batches, kept in memory.

    Args:
        ds: the dataset (needs ``items.csv``).
        model: the encoder whose towers define the preprocessing.
        progress: show a bar while the images are decoded.
    """

    def __init__(self, ds: RecDataset, model: MMEnc, *, progress: bool = False) -> None:
        tower = model.image_tower
        self.pixels, self.has_image = decode_item_images(
            ds, tower.preprocess, tower.image_size, progress=progress
        )  # (n_items, 3, S, S), (n_items,)
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
def _tower_outputs(
    model: MMEnc, content: ItemContent, modality: str, device: torch.device, precision: str, batch_size: int = 128
) -> torch.Tensor:
    """Outputs of one tower for every item (used for frozen towers and for the final features)."""
    tower = model.image_tower if modality == "image" else model.text_tower
    tower.eval()
    outs = []
    for start in range(0, content.n_items, batch_size):
        with precision_context(device, precision):
            if modality == "image":
                x = content.pixels[start : start + batch_size].to(device).float()
                outs.append(tower(x).float())
            else:
                tok = {k: v.to(device) for k, v in tower.tokenize(content.texts[start : start + batch_size]).items()}
                outs.append(tower(tok).float())
    return torch.cat(outs)  # (n_items, d_tower)


@torch.no_grad()
def encode_items(
    model: MMEnc,
    content: ItemContent,
    *,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    batch_size: int = 128,
    tower_outputs: dict[str, torch.Tensor] | None = None,
) -> dict[str, np.ndarray]:
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
    f_img = (
        known["image"] if "image" in known else _tower_outputs(model, content, "image", device, precision, batch_size)
    )
    f_txt = known["text"] if "text" in known else _tower_outputs(model, content, "text", device, precision, batch_size)
    z_img, z_txt = model.project_image(f_img), model.project_text(f_txt)  # (n_items, e)
    p_img, p_txt = model.predict(z_txt, "image"), model.predict(z_img, "text")
    missing = (~content.has_image).to(device)[:, None]
    z_img_used = torch.where(missing, p_img, z_img)
    out = {
        "image": z_img,
        "text": z_txt,
        "mm": model.fuse(z_img_used, z_txt),
        "mm_mask_image": model.fuse(p_img, z_txt),
        "mm_mask_text": model.fuse(z_img_used, p_txt),
    }
    return {k: v.float().cpu().numpy() for k, v in out.items()}


@torch.no_grad()
def encode_new_item(model: MMEnc, image: Any | None = None, text: str | None = None) -> np.ndarray:
    """One item that stage 1 never saw, encoded exactly as :func:`encode_items` encodes the catalogue.

    The picture is pre-processed by the image tower and rounded through float16, as the
    catalogue's pixels are kept (:func:`~alignrec_lite.encoders.decode_item_images`), so a
    known item's picture and text give back its stored ``mm_feat.npy`` row. A missing
    modality is replaced by the predictor's guess from the other one: no image is how stage 1
    treats an item without a readable image (``mm_feat_mask_image.npy`` for a known item), no
    text is ``mm_feat_mask_text.npy``'s view.

    Args:
        model: the trained encoder (:func:`load_mmenc`), on the CPU.
        image: the item's picture as an RGB PIL image (:func:`~alignrec_lite.encoders.load_image`), or ``None``.
        text: its title and description, or ``None`` (a blank text is encoded as a blank text, as the
            catalogue's blank texts were).

    Returns:
        ``(1, out_dim)`` float32: the item's fused vector.

    Raises:
        ConfigError: neither an image nor a text.
    """
    require_image_or_text(image, text)
    model.eval()
    z_img = z_txt = None
    pixels = new_item_pixels(model.image_tower.preprocess, image)  # (1, 3, S, S) or None
    if pixels is not None:
        z_img = model.project_image(model.image_tower(pixels))  # (1, e)
    if text is not None:
        z_txt = model.project_text(model.text_tower(model.text_tower.tokenize([text])))  # (1, e)
    if z_img is None:
        z_img = model.predict(z_txt, "image")
    if z_txt is None:
        z_txt = model.predict(z_img, "text")
    return model.fuse(z_img, z_txt).float().cpu().numpy()


# ====================================================================== training
def _checkpoint_state(model: MMEnc, cfg: ICAConfig) -> dict[str, torch.Tensor]:
    """The weights worth saving: everything except frozen pretrained towers (rebuilt from their spec)."""
    skip = []
    if cfg.freeze_text and model.text_tower.pretrained:
        skip.append("text_tower.")
    if cfg.freeze_image and model.image_tower.pretrained:
        skip.append("image_tower.")
    return {
        k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not any(k.startswith(s) for s in skip)
    }


def _save(
    run: Path,
    model: MMEnc,
    opt: torch.optim.Optimizer,
    cfg: ICAConfig,
    epoch: int,
    history: list,
    gen: torch.Generator,
    seconds: float,
) -> None:
    save_stage1_checkpoint(
        run,
        "mmenc-ica",
        {"config": asdict(cfg), "epoch": epoch, "model": _checkpoint_state(model, cfg)},
        opt,
        gen,
        history,
        seconds,
    )


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
        raise CheckpointError(
            f"checkpoint does not match the model ({bad[:3]})", path=run, fix="train again with --overwrite"
        )
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
    return {
        "clip_loss_all_items": full_clip,
        "align_image_text": alignment(zi, zt),
        "uniform_image": uniformity(zi),
        "uniform_text": uniformity(zt),
        "uniform_mm": uniformity(emb["mm"]),
        "image_to_text_top1": retrieval_top1(zi, zt),
        "chance_top1": 1.0 / max(1, min(len(items), 4096)),
    }


def _check_memory(ds: RecDataset, model: MMEnc, cfg: ICAConfig, trainable: int) -> None:
    """Refuse before any work when the items' pixels, the optimiser and one training batch cannot fit.

    Each tower is probed with one item (:func:`~alignrec_lite.checks.activation_bytes`):
    training keeps every layer output of a batch for the backward pass (plus the gradient
    of the largest); the figures are compared with measured peaks in docs/RELIABILITY.md §9.
    """
    from ..checks import activation_bytes, check_batched_memory, estimate_stage1_bytes

    s = int(model.image_tower.image_size)
    e, out = int(cfg.embed_dim), int(model.out_dim)
    towers = {"image": model.image_tower, "text": model.text_tower}
    frozen = {"image": cfg.freeze_image, "text": cfg.freeze_text}
    longest = max((ds.item_text(i) for i in range(ds.n_items)), key=len, default="")
    batch_item, encoding = 0.0, 0.0
    for name, tower in towers.items():
        if name == "image":
            probe: Any = torch.zeros(1, 3, s, s, device=tower.device)
        else:
            probe = {k: v.to(tower.device) for k, v in tower.tokenize([longest]).items()}
        total, largest = activation_bytes(tower, probe)
        # every tower encodes all items in batches of 128 without gradients (a frozen one before training)
        encoding = max(encoding, 128 * 3.0 * largest)
        if not frozen[name]:  # training keeps every layer output for the backward pass
            batch_item += total + 2.0 * largest
            if name == "image":
                batch_item += 3 * 4.0 * 3 * s * s  # the float copy, the augmentation's padding and flip
    m = min(4096, ds.n_items)
    need = estimate_stage1_bytes(
        ds.n_items,
        pixel_bytes=2.0 * 3 * s * s,
        # tower outputs (cached or encoded at the end) and the vectors before and after training
        kept_per_item=4.0 * (2 * sum(int(t.dim) for t in towers.values()) + 2 * (2 * e + 3 * out)),
        trainable_params=trainable,
        batch_size=cfg.batch_size,
        batch_item_bytes=batch_item,
        phases=(encoding,),
        extra=4.0 * 6 * m * m,  # the geometry before and after: 4,096 x 4,096 logits and distances
    )
    batch_part = min(cfg.batch_size, ds.n_items) * batch_item
    check_batched_memory(
        need,
        batch_part,
        f"pre-training the ICA encoder on {ds.n_items:,} items ({s}x{s} pixels each, batches of {cfg.batch_size})",
        batch_size=cfg.batch_size,
        min_batch=2,
        more="or free some; every item's pixels are kept in memory",
    )


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
        raise DataError(
            "ICA needs items.csv with `text` and `image` columns",
            path=folder,
            fix="build the dataset with `alignrec-lite data build ...`",
        )
    run = Path(out) if out is not None else folder / ".cache" / "ica" / cfg.key()
    finish_mm_commit(folder)  # a commit of new feature files that a kill interrupted is finished first
    done = reuse_mm_features(
        folder,
        "mmenc-ica",
        cfg.key(),
        cfg.epochs,
        resume=resume,
        overwrite=overwrite,
        extra=("geometry_before", "geometry_after"),
    )
    if done is not None:
        return done
    seed_everything(cfg.seed)
    device = get_device(cfg.device)
    model = build_mmenc(cfg)
    # before anything is written or the pixels of every item are decoded
    _check_memory(ds, model, cfg, sum(p.numel() for p in model.parameters() if p.requires_grad))
    # --overwrite of an existing run trains beside it; the new run is swapped in with the new feature files
    work = stage1_workdir(run, resume=resume, overwrite=overwrite)
    try:  # a failed or interrupted --overwrite leaves the old run whole and no staging folder
        state = open_stage1_run(work, cfg, resume=resume, overwrite=overwrite, load=load_checkpoint, name="an ICA")
        gen = torch.Generator().manual_seed(cfg.seed)
        history: list[dict] = []
        start_epoch, prior_seconds = 0, 0.0
        if resume:
            model.load_state_dict(state["model"], strict=False)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if resume:
            history, start_epoch, prior_seconds = restore_training_state(state, opt, gen)
        content = ItemContent(ds, model, progress=progress)
        train_items = content.has_image.nonzero().squeeze(1)  # pairs need both modalities
        frozen = {m: (cfg.freeze_image if m == "image" else cfg.freeze_text) for m in ("image", "text")}
        cached = {m: _tower_outputs(model, content, m, device, cfg.precision) for m in frozen if frozen[m]}
        emb0 = encode_items(model, content, device=device, precision=cfg.precision, tower_outputs=cached)
        geometry_before = _pair_geometry(emb0, train_items.numpy())
        use_scaler = cfg.precision == "amp" and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None

        t0 = time.perf_counter()
        bar = tqdm(
            total=cfg.epochs,
            initial=min(start_epoch, cfg.epochs),
            disable=not progress,
            desc="ICA",
            unit="epoch",
            dynamic_ncols=True,
        )
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
                with precision_context(device, cfg.precision):
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
                terms = model.ica_loss(
                    z_img,
                    z_txt,
                    mask_weight=cfg.mask_weight,
                    mask_prob=cfg.mask_prob,
                    mask_temperature=cfg.mask_temperature,
                    generator=gen,
                )
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
            record = {
                "epoch": epoch,
                **{k: v / max(1, n_batches) for k, v in sums.items()},
                "temperature": model.temperature(),
            }
            if not math.isfinite(record.get("loss", 0.0)):
                raise ConfigError(
                    f"the ICA loss became {record['loss']} at epoch {epoch}",
                    row="lr",
                    fix="lower the learning rate (--lr) or use --precision fp32",
                )
            history.append(record)
            for cb in callbacks or []:
                cb(epoch, model, record)
            _save(work, model, opt, cfg, epoch + 1, history, gen, prior_seconds + time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", clip=f"{record['clip']:.4f}")
        bar.close()
        train_seconds = prior_seconds + time.perf_counter() - t0
        if cfg.epochs == 0 or start_epoch >= cfg.epochs:
            _save(work, model, opt, cfg, max(start_epoch, cfg.epochs), history, gen, train_seconds)

        emb = encode_items(model, content, device=device, precision=cfg.precision, tower_outputs=cached)
        geometry_after = _pair_geometry(emb, train_items.numpy())
        save_npy(work / "ica_image.npy", emb["image"])
        save_npy(work / "ica_text.npy", emb["text"])
        manifest = write_mm_features(
            folder,
            run,
            emb,
            {
                "encoder": "mmenc-ica",
                "image_tower": model.image_tower.describe(),
                "text_tower": model.text_tower.describe(),
                "fusion": cfg.fusion,
                "temperature": model.temperature(),
                "geometry_before": geometry_before,
                "geometry_after": geometry_after,
            },
            config=cfg,
            history=history,
            train_seconds=train_seconds,
            missing_images=int((~content.has_image).sum()),
            device=device,
            work=work,
        )
    except BaseException:
        discard_stage1_workdir(work, run, folder)
        raise
    return stage1_result(
        emb["mm"].shape,
        run,
        history,
        train_seconds,
        manifest,
        geometry_before=geometry_before,
        geometry_after=geometry_after,
    )


def ica_config_dict(cfg: ICAConfig) -> dict[str, Any]:
    """The config as a plain dict (for records and notebooks)."""
    return asdict(cfg)
