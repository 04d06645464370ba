"""Masked multimodal pre-training of the Multiway encoder: the items' content, encoding, checkpoints,
:func:`pretrain_multiway`, and the attention read-out of :func:`title_patch_attention`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
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
    simple_transform,
    write_mm_features,
)
from ..encoders.stage1 import discard_stage1_workdir, finish_mm_commit, stage1_result, stage1_workdir
from ..errors import CheckpointError, ConfigError, DataError
from ..files import save_npy
from ..utils import get_device, seed_everything
from .model import MultiwayConfig, MultiwayEncoder, build_multiway
from .tokens import PAD, TitleTokenizer, patchify

ENCODER_NAME = "multiway-mmm"


def title_tokenizer(cfg: MultiwayConfig, vocab: list[str] | None = None, texts: Sequence[str] = ()) -> TitleTokenizer:
    """The configuration's title tokenizer: with a run's saved ``vocab``, or a vocabulary built from ``texts``."""
    return TitleTokenizer(
        texts, kind=cfg.tokenizer, min_count=cfg.min_word_count, max_len=cfg.max_text_len, vocab=vocab
    )


class MultiwayContent:
    """Every item's image pixels and title ids, pre-processed once and kept in memory.

    Args:
        ds: the dataset (needs ``items.csv``).
        cfg: image size and title settings.
        vocab: a saved title vocabulary (default: built from the items' texts).
        progress: a bar while the images are decoded.

    Shape:
        pixels ``(n_items, 3, S, S)`` float16, has_image ``(n_items,)``, tokens ``(n_items, L_max)``.
    """

    def __init__(
        self, ds: RecDataset, cfg: MultiwayConfig, *, vocab: list[str] | None = None, progress: bool = False
    ) -> None:
        s = cfg.image_size
        self.pixels, self.has_image = decode_item_images(
            ds, simple_transform(s), s, progress=progress
        )  # (n_items, 3, S, S), (n_items,)
        self.texts = [ds.item_text(i) for i in range(ds.n_items)]
        self.tokenizer = title_tokenizer(cfg, vocab, self.texts)
        self.tokens = self.tokenizer(self.texts)  # (n_items, L_max)
        self.n_items = ds.n_items

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels (float32) and title ids of some items, titles trimmed to the batch's longest.

        Shape:
            idx ``(B,)`` -> ``(B, 3, S, S)``, ``(B, L)``.
        """
        tok = self.tokens[idx]
        keep = int((tok != PAD).sum(1).max())
        return self.pixels[idx].float(), tok[:, : max(1, keep)]


# ====================================================================== encoding
@torch.no_grad()
def encode_items(
    model: MultiwayEncoder,
    content: MultiwayContent,
    *,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    batch_size: int = 128,
) -> dict[str, np.ndarray]:
    """The position-0 output of every item: complete, without its image, without its title.

    Items without a readable image get the title-only vector as their fused vector.

    Returns:
        ``{"mm", "mm_mask_image", "mm_mask_text"}``, each ``(n_items, dim)`` L2-normalised float32,
        and ``"mean_pool"``: the mean of all final token states of the pair (padding left out) — not
        the paper's read-out, kept as a diagnostic of what the tokens learned.
    """
    device = torch.device(device)
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {"mm": [], "mm_mask_image": [], "mm_mask_text": [], "mean_pool": []}
    for s in range(0, content.n_items, batch_size):
        idx = torch.arange(s, min(content.n_items, s + batch_size))
        pix, tok = content.batch(idx)
        pix, tok = pix.to(device), tok.to(device)
        with precision_context(device, precision):
            enc = model(pix, tok)
            both = enc["cls"].float()  # (b, d)
            no_img = model(None, tok)["cls"].float()
            no_txt = model(pix, None)["cls"].float()
        keep = torch.ones(enc["hidden"].shape[:2], device=device)  # (b, T)
        if enc["key_pad"] is not None:
            keep = (~enc["key_pad"]).float()
        outs["mean_pool"].append((enc["hidden"].float() * keep[..., None]).sum(1) / keep.sum(1, keepdim=True))
        has = content.has_image[idx].to(device)[:, None]
        outs["mm"].append(torch.where(has, both, no_img))
        outs["mm_mask_image"].append(no_img)
        outs["mm_mask_text"].append(torch.where(has, no_txt, no_img))
    return {k: F.normalize(torch.cat(v), dim=-1).cpu().numpy() for k, v in outs.items()}


@torch.no_grad()
def encode_new_item(
    model: MultiwayEncoder,
    cfg: MultiwayConfig,
    vocab: list[str],
    image: Any | None = None,
    text: str | None = None,
    *,
    tokenizer: TitleTokenizer | None = None,
) -> np.ndarray:
    """One item the encoder never saw, encoded exactly as :func:`encode_items` encodes the catalogue.

    The picture is resized as :class:`MultiwayContent` does and rounded through float16 (the
    catalogue's pixels are kept so); the title is tokenized with the run's saved vocabulary. A
    missing modality is left out of the token sequence, as for the masked views
    (``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy`` of a known item).

    Args:
        model, cfg, vocab: the trained encoder, its configuration and title vocabulary (:func:`load_multiway`).
        image: the item's picture as an RGB PIL image, or ``None``.
        text: its title, or ``None`` (a blank title is encoded as a blank title, as the catalogue's were).
        tokenizer: :func:`title_tokenizer` of ``cfg`` and ``vocab``, built once by a caller that encodes many
            items (built here when ``None``; with ``tokenizer="minilm"`` that reads a tokenizer from disk).

    Returns:
        ``(1, dim)`` float32, L2-normalised: the position-0 output.

    Raises:
        ConfigError: neither an image nor a text.
    """
    require_image_or_text(image, text)
    model.eval()
    tokens = None
    pixels = new_item_pixels(simple_transform(cfg.image_size), image)  # (1, 3, S, S) or None
    if text is not None:
        tokenizer = title_tokenizer(cfg, vocab) if tokenizer is None else tokenizer
        tokens = tokenizer([text])  # (1, L_max)
        tokens = tokens[:, : max(1, int((tokens != PAD).sum()))]
    return F.normalize(model(pixels, tokens)["cls"].float(), dim=-1).cpu().numpy()


# ====================================================================== training
def _save(
    run: Path,
    model: MultiwayEncoder,
    opt: torch.optim.Optimizer,
    cfg: MultiwayConfig,
    vocab: list[str],
    epoch: int,
    step: int,
    history: list,
    gen: torch.Generator,
    seconds: float,
) -> None:
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_stage1_checkpoint(
        run,
        ENCODER_NAME,
        {"config": asdict(cfg), "vocab": vocab, "epoch": epoch, "step": step, "model": weights},
        opt,
        gen,
        history,
        seconds,
    )


def load_checkpoint(path: str | Path) -> dict:
    """Read a Multiway checkpoint (``weights_only=True``, CRC-checked).

    Raises:
        CheckpointError: missing, unreadable or not a Multiway checkpoint.
    """
    return load_stage1_checkpoint(
        path, (ENCODER_NAME,), name="Multiway", train_cmd="alignrec-lite pretrain-ica DIR --encoder multiway"
    )


def load_multiway(run: str | Path) -> tuple[MultiwayEncoder, MultiwayConfig, list[str]]:
    """Rebuild a trained encoder from a run folder, in eval mode on the CPU.

    Returns:
        ``(model, config, title vocabulary)``; pass the vocabulary to :class:`MultiwayContent`.
    """
    state = load_checkpoint(run)
    cfg = MultiwayConfig.from_dict(state["config"])
    model = build_multiway(cfg, len(state["vocab"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint does not match the model ({str(exc)[:120]})", path=run, fix="train again with --overwrite"
        ) from None
    return model.eval(), cfg, list(state["vocab"])


def _lr_at(step: int, cfg: MultiwayConfig) -> float:
    """Linear warm-up, then constant: independent of ``epochs``, so a resumed longer run matches an unbroken one."""
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def train_step(
    model: MultiwayEncoder,
    content: MultiwayContent,
    idx: torch.Tensor,
    cfg: MultiwayConfig,
    gen: torch.Generator,
    device: torch.device,
    step: int = 0,
) -> dict[str, torch.Tensor]:
    """The loss of one batch: the masked pair pass plus one monomodal pass (image-only on even
    steps, title-only on odd steps; BEiT-3 also mixes image-text pairs with monomodal data).

    Returns:
        ``{"loss", "pair", "mim_acc", "mlm_acc"}`` and ``"image"`` or ``"text"`` (``loss`` carries
        the gradient).
    """
    pix, tok = content.batch(idx)
    pix, tok = pix.to(device), tok.to(device)
    has = content.has_image[idx]
    with precision_context(device, cfg.precision):
        pair = model.masked_loss(
            pix if bool(has.all()) else None,  # a batch with an unreadable image trains on its titles alone
            tok,
            image_ratio=cfg.image_mask_ratio,
            text_ratio=cfg.pair_text_mask_ratio,
            gen=gen,
            cls_weight=cfg.cls_weight,
        )
        terms = {"pair": pair["loss"], "mim_acc": pair["mim_acc"], "mlm_acc": pair["mlm_acc"]}
        loss = pair["loss"]
        if cfg.monomodal and step % 2 == 0 and bool(has.any()):  # masked image modelling, image alone
            img = model.masked_loss(
                pix[has.to(device)],
                None,
                image_ratio=cfg.image_mask_ratio,
                text_ratio=0.5,
                gen=gen,
                cls_weight=cfg.cls_weight,
            )
            terms["image"] = img["loss"]
            loss = loss + img["loss"]
        elif cfg.monomodal:  # masked language modelling, title alone
            txt = model.masked_loss(
                None,
                tok,
                image_ratio=cfg.image_mask_ratio,
                text_ratio=cfg.text_mask_ratio,
                gen=gen,
                cls_weight=cfg.cls_weight,
            )
            terms["text"] = txt["loss"]
            loss = loss + txt["loss"]
    terms["loss"] = loss
    return terms


def _run_dir(folder: Path, cfg: MultiwayConfig, out: str | Path | None) -> Path:
    return Path(out) if out is not None else folder / ".cache" / "multiway" / cfg.key()


def _check_memory(ds: RecDataset, cfg: MultiwayConfig) -> None:
    """Refuse before any work when the items' pixels, the codebook fit and one training batch cannot fit.

    Per item and block, a training step keeps about ``(10 + 2 x mlp_ratio) x T x dim``
    floats of layer outputs and ``3 x heads x T^2`` of attention (``T`` = 1 + patches +
    title tokens) for the pair pass and one (shorter) monomodal pass, and the masked tokens'
    logits over the vocabulary (compared with measured peaks in docs/RELIABILITY.md §9).
    """
    from ..checks import check_batched_memory, estimate_stage1_bytes

    texts = [ds.item_text(i) for i in range(ds.n_items)]
    n_vocab = len(TitleTokenizer(texts, kind=cfg.tokenizer, min_count=cfg.min_word_count, max_len=cfg.max_text_len))
    s, d, h, L, P = cfg.image_size, cfg.dim, cfg.heads, cfg.max_text_len, cfg.n_patches
    t = 1 + P + L
    blocks = cfg.layers + (1 if cfg.cls_weight > 0 else 0)
    per_pass = 4.0 * blocks * ((10 + 2 * cfg.mlp_ratio) * t * d + 3 * h * t * t)
    logits = 4.0 * 3 * ((cfg.pair_text_mask_ratio + cfg.text_mask_ratio) * L * n_vocab + P * cfg.codebook_size)
    batch_item = 2 * per_pass + logits + 4.0 * 3 * 3 * s * s
    params = blocks * (4 * d * d + 3 * 2 * d * int(d * cfg.mlp_ratio)) + (n_vocab + cfg.codebook_size) * d * 2
    need = estimate_stage1_bytes(
        ds.n_items,
        pixel_bytes=2.0 * 3 * s * s,
        kept_per_item=8.0 * L + 4.0 * 2 * 4 * d,  # title ids; four output vectors (and their concatenation)
        trainable_params=params,
        batch_size=cfg.batch_size,
        batch_item_bytes=batch_item,
        # the codebook fit (a float32 copy of the pixels, cut into patches) and the final encoding
        # (batches of 128 items, three passes each, without gradients)
        extra=ds.n_items * 8.0 * 3 * s * s + 128 * per_pass / 2,
    )
    batch_part = min(cfg.batch_size, ds.n_items) * batch_item
    check_batched_memory(
        need,
        batch_part,
        f"pre-training the Multiway encoder on {ds.n_items:,} items ({s}x{s} pixels and {L} title tokens each, "
        f"batches of {cfg.batch_size})",
        batch_size=cfg.batch_size,
        min_batch=2,
        more="or free some; every item's pixels are kept in memory",
    )


def pretrain_multiway(
    folder: str | Path,
    config: MultiwayConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: list[Callable[[int, MultiwayEncoder, dict], None]] | None = None,
) -> dict:
    """Pre-train the Multiway encoder by masked multimodal modelling and write ``mm_feat.npy`` + manifest.

    Every epoch ends with an atomic checkpoint ``RUN/last.pt`` (weights with the
    visual codebook, title vocabulary, optimiser, random states, history);
    ``resume=True`` continues from it (``epochs`` may be raised) and gives the same
    result as an uninterrupted run. At the end the position-0 vector of every item
    is written to ``DIR/mm_feat.npy`` (row i = itemID i), the masked views to
    ``DIR/mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy``, and an ``"mm"`` entry
    to ``DIR/features.json`` (``encoder: "multiway-mmm"``).

    Args:
        folder: MMRec dataset folder with ``items.csv`` (``text`` and ``image`` columns).
        config: :class:`MultiwayConfig`; ``pretrain=False`` (or ``epochs=0``) writes the
            features of the random initialisation.
        out: run folder (default ``DIR/.cache/multiway/<config key>``).
        resume: continue from ``out/last.pt``.
        overwrite: replace an ``mm_feat.npy`` made otherwise, and start the run afresh.
        progress: ``tqdm.auto`` bars.
        callbacks: ``f(epoch, model, epoch_record)`` after every epoch.

    Returns:
        ``{"shape", "epochs_run", "train_seconds", "final_loss", "run_dir", "history", "manifest"}``
        (plus ``"up_to_date": True`` when the folder already held these very features).

    Raises:
        DataError: no items table / no readable image, or an ``mm_feat.npy`` from other
            settings (fix: ``overwrite=True``). CheckpointError: nothing to resume, a
            checkpoint with other settings, or a run folder in use. ConfigError: bad settings.
    """
    from tqdm.auto import tqdm

    cfg = config or MultiwayConfig()
    cfg.validate()
    epochs = cfg.epochs if cfg.pretrain else 0
    folder = Path(folder)
    ds = load_mmrec(folder, load_features=False)
    if ds.items is None or "image" not in ds.items.columns or "text" not in ds.items.columns:
        raise DataError(
            "the Multiway encoder needs items.csv with `text` and `image` columns",
            path=folder,
            fix="build the dataset with `alignrec-lite data build ...`",
        )
    run = _run_dir(folder, cfg, out)
    finish_mm_commit(folder)  # a commit of new feature files that a kill interrupted is finished first
    done = reuse_mm_features(folder, ENCODER_NAME, cfg.key(), epochs, resume=resume, overwrite=overwrite)
    if done is not None:
        return done
    # --overwrite of an existing run trains beside it; the new run is swapped in with the new feature files
    _check_memory(ds, cfg)  # before anything is written or the pixels of every item are decoded
    work = stage1_workdir(run, resume=resume, overwrite=overwrite)
    try:  # a failed or interrupted --overwrite leaves the old run whole and no staging folder
        state = open_stage1_run(work, cfg, resume=resume, overwrite=overwrite, load=load_checkpoint, name="a Multiway")

        seed_everything(cfg.seed)
        device = get_device(cfg.device)
        content = MultiwayContent(ds, cfg, vocab=state["vocab"] if state else None, progress=progress)
        vocab = content.tokenizer.vocab
        model = build_multiway(cfg, len(vocab))
        gen = torch.Generator().manual_seed(cfg.seed)
        history: list[dict] = []
        start_epoch, step, prior_seconds = 0, 0, 0.0
        if state is not None:
            model.load_state_dict(state["model"])
        else:  # fit the stand-in visual tokenizer on the patches of the items that have an image
            patches = patchify(content.pixels[content.has_image].float(), cfg.patch_size)  # (n, P, D)
            model.visual_tokenizer.fit(
                patches.reshape(-1, patches.shape[-1]), iters=cfg.kmeans_iters, sample=cfg.kmeans_sample, seed=cfg.seed
            )
        model.to(device)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n and "pos_" not in n]
        no_decay = [
            p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n and "pos_" not in n)
        ]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.98),
        )
        if state is not None:
            history, start_epoch, prior_seconds = restore_training_state(state, opt, gen)
            step = int(state["step"])
        items = torch.arange(ds.n_items)

        t0 = time.perf_counter()
        bar = tqdm(
            total=epochs,
            initial=min(start_epoch, epochs),
            disable=not progress,
            desc="Multiway MMM",
            unit="epoch",
            dynamic_ncols=True,
        )
        for epoch in range(start_epoch, epochs):
            model.train()
            order = items[torch.randperm(len(items), generator=gen)]
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            for s in range(0, len(order), cfg.batch_size):
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, cfg)
                terms = train_step(model, content, order[s : s + cfg.batch_size], cfg, gen, device, step)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
                opt.step()
                step += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                    counts[k] = counts.get(k, 0) + 1
            record = {"epoch": epoch, **{k: v / counts[k] for k, v in sums.items()}, "lr": _lr_at(step, cfg)}
            if not math.isfinite(record["loss"]):
                raise ConfigError(
                    f"the masked-modelling loss became {record['loss']} at epoch {epoch}",
                    row="lr",
                    fix="lower the learning rate (--lr) or use --precision fp32",
                )
            history.append(record)
            for cb in callbacks or []:
                cb(epoch, model, record)
            _save(work, model, opt, cfg, vocab, epoch + 1, step, history, gen, prior_seconds + time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", mim_acc=f"{record['mim_acc']:.2f}")
        bar.close()
        train_seconds = prior_seconds + time.perf_counter() - t0
        if epochs == 0 or start_epoch >= epochs:
            _save(work, model, opt, cfg, vocab, max(start_epoch, epochs), step, history, gen, train_seconds)

        emb = encode_items(model, content, device=device, precision=cfg.precision)
        save_npy(work / "mean_pool.npy", emb["mean_pool"])  # diagnostic only (not the paper's read-out)
        manifest = write_mm_features(
            folder,
            run,
            emb,
            {
                "encoder": ENCODER_NAME,
                "architecture": (
                    f"Multiway Transformer: {cfg.layers} blocks, width {cfg.dim}, {cfg.heads} heads, "
                    f"V/L FFN experts, VL expert in the top {cfg.vl_layers}; {cfg.n_patches} patches of "
                    f"{cfg.patch_size}x{cfg.patch_size} px + <= {cfg.max_text_len} title tokens; "
                    "item vector = L2-normalised output at position 0"
                ),
                "visual_tokenizer": (
                    f"k-means codebook of {cfg.codebook_size} over standardised patch pixels "
                    "(stand-in for BEiT v2 VQ-KD)"
                ),
                "title_tokenizer": cfg.tokenizer,
                "vocab_size": len(vocab),
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "pretrained": bool(epochs > 0),
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
    return stage1_result(emb["mm"].shape, run, history, train_seconds, manifest)


def title_patch_attention(
    model: MultiwayEncoder, content: MultiwayContent, items: Sequence[int], *, word: int | None = None, layer: int = -1
) -> list[dict]:
    """How much a title token attends to each image patch, for a few items (heads averaged).

    Args:
        model, content: a (trained) encoder and the items' content.
        items: itemIDs.
        word: title position to look from (default 0, the first title token; negative
            counts from the end of each title, e.g. -1 = its last word).
        layer: which block's attention.

    Returns:
        One dict per item: ``{"item", "image" (S, S, 3) in [0, 1], "attention" (g, g) summing to the
        share of attention that went to patches, "token" (the word), "title"}``.
    """
    model.eval()
    idx = torch.as_tensor(list(items), dtype=torch.long)
    pix, tok = content.batch(idx)
    with torch.no_grad():
        enc = model(pix, tok, return_attention=True)
    att = enc["attention"][layer].mean(1)  # (B, T, T) heads averaged
    g = model.cfg.image_size // model.cfg.patch_size
    n_vis = 1 + g * g
    out = []
    for b, i in enumerate(idx.tolist()):
        n_words = int((tok[b] != PAD).sum())
        pos = (word or 0) % n_words  # a negative position counts from this title's end
        row = att[b, n_vis + pos, 1:n_vis].reshape(g, g)  # (g, g) attention from a title token to the patches
        img = (pix[b].permute(1, 2, 0) * 0.5 + 0.5).clamp(0, 1).numpy()  # (S, S, 3)
        out.append(
            {
                "item": i,
                "image": img,
                "attention": row.numpy(),
                "token": content.tokenizer.vocab[int(tok[b, pos])],
                "title": content.texts[i],
            }
        )
    return out
