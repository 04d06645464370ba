"""Stage 1 the paper's way: a small Multiway Transformer pre-trained by masked multimodal modelling.

AlignRec (CIKM 2024, ALIGNREC_SPEC §1.1) encodes every item with BEiT-3 (Wang et al.,
"Image as a Foreign Language", CVPR 2023), a *Multiway* Transformer, fine-tuned on the
items' image-text pairs by mask-then-predict, and keeps the output at the first
position as the item's one fused vector. This module is a small version of that design,
written for this kit and sized for a laptop CPU:

* **Input sequence** of one item, ``T = 1 + P + L`` tokens: a learned first-position
  token ``[CLS]``, the ``P = (64 / 8)^2 = 64`` patch embeddings of its 64 x 64 image
  (8 x 8 pixel patches, linear projection, learned positions) and the ``L`` title
  tokens (word embedding + learned positions). ``[CLS]`` and the patches are *vision*
  tokens, the title tokens are *language* tokens.
* **Multiway blocks**: pre-norm Transformer blocks whose self-attention is *shared*
  by all tokens (so every title token can look at every patch), followed by a
  feed-forward network chosen per token: the vision expert ``V-FFN`` for vision
  tokens, the language expert ``L-FFN`` for title tokens. In the top ``vl_layers``
  blocks an image-text pair goes through a third, **vision-language expert**
  ``VL-FFN`` (BEiT-3 / VLMo); single-modality inputs keep their own experts there.
* **Masked multimodal modelling** (the ICA loss of the spec):
  ``L = CE(visual tokens of masked patches) + CE(words of masked title tokens)``,
  computed on two passes per batch, as BEiT-3 trains on pairs *and* on
  monomodal data: the image-text pair (≈ 40 % of the patches masked block-wise,
  ``pair_text_mask_ratio`` = 50 % of the title tokens masked), then in turn the image
  alone (masked image modelling) or the title alone (masked language modelling, 15 %).
  A masked patch is replaced by a learned ``[MASK]`` embedding, a masked word by the
  ``[MASK]`` token.
* **Visual tokens — a stand-in.** BEiT-3 predicts the codes of BEiT v2's VQ-KD
  tokenizer (a codebook distilled from CLIP). Neither it nor any pretrained image
  tokenizer can be had offline here, so :class:`PatchTokenizer` builds one from the
  dataset itself: a seeded k-means codebook (``codebook_size`` centroids) over the
  standardised pixels of 8 x 8 patches. Its codes say "what colour and texture is
  this patch", far less semantic than VQ-KD's, and that limits what masked image
  modelling can teach.
* **Title tokens**: the kit's own word tokeniser (:func:`alignrec_lite.text_embed.tokenize`,
  a vocabulary of the dataset's words seen at least ``min_word_count`` times, others
  ``[UNK]``), or, with ``tokenizer="minilm"``, the packaged MiniLM WordPiece tokenizer
  (offline), its ids compacted to those that occur in the dataset. The embeddings
  are learned from scratch either way: unlike BEiT-3, nothing here was pre-trained
  on web data.
* **Optional [CLS] bottleneck** (``cls_weight > 0``, off by default), from BEiT v2: a one-block head
  reads the final ``[CLS]`` output together with the patch/word outputs of a middle
  layer and must predict the masked tokens again — masked modelling alone never
  trains the first position directly.
* **Item features**: ``mm_feat.npy`` = the L2-normalised final output at position 0
  of the image-text pair, ``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy`` =
  the same model's position-0 output with the image (resp. the title) left out of
  the sequence, as AlignRec computes its masked views. Items without a readable
  image get their text-only vector.

:func:`pretrain_multiway` is the counterpart of :func:`alignrec_lite.ica.pretrain_ica`
(same arguments, same files, checkpoints and manifest); ``alignrec-lite pretrain-ica
DIR --encoder multiway`` runs it, ``--no-pretrain`` keeps the random initialisation
(0 steps) for comparison.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.mmrec import RecDataset, load_mmrec
from .encoders import MASKED_FILES, MM_FILE  # noqa: F401 - the stage-1 file names, re-exported
from .encoders import (_autocast, _simple_transform, load_image, load_stage1_checkpoint, open_stage1_run,
                       read_manifest, save_stage1_checkpoint, write_mm_features)
from .errors import CheckpointError, ConfigError, DataError
from .io import save_npy, sha256_file
from .utils import get_device, seed_everything

ENCODER_NAME = "multiway-mmm"
TOKENIZERS = ("words", "minilm")
PAD, UNK, MASK = 0, 1, 2  # special title-token ids (the "words" vocabulary; minilm ids are remapped the same way)
SPECIALS = ["[PAD]", "[UNK]", "[MASK]"]


@dataclass
class MultiwayConfig:
    """Settings of the Multiway encoder and its masked-modelling pre-training (CPU-sized defaults).

    Attributes:
        image_size, patch_size: pixels of the (squashed) square image and of a patch.
        dim, layers, heads, mlp_ratio: the Transformer's width, depth, attention heads
            and feed-forward expansion.
        vl_layers: top blocks whose image-text pairs use the vision-language expert.
        max_text_len: title tokens kept (the rest is cut).
        tokenizer: ``"words"`` (the kit's word tokeniser) or ``"minilm"`` (WordPiece).
        min_word_count: a word needs this many occurrences to get its own token.
        codebook_size, kmeans_iters, kmeans_sample: the stand-in visual tokenizer.
        image_mask_ratio: share of patches masked block-wise (BEiT: 0.4).
        text_mask_ratio: share of title tokens masked in the title-only pass (BEiT-3: 0.15).
        pair_text_mask_ratio: share of title tokens masked in the pair pass (BEiT-3: 0.5).
        monomodal: add a monomodal pass to every batch, image-only and title-only in turn.
        cls_weight: weight of the BEiT v2-style [CLS] bottleneck loss (0 = off).
        epochs, batch_size, lr, weight_decay, warmup_steps: AdamW (betas 0.9, 0.98) with a
            linear warm-up to ``lr``, then constant.
        pretrain: ``False`` keeps the random initialisation (0 steps), for comparison.
        precision: ``"fp32"`` or ``"amp"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: seeds weights, codebook, batches and masks.
    """

    image_size: int = 64
    patch_size: int = 8
    dim: int = 96
    layers: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    vl_layers: int = 1
    max_text_len: int = 24
    tokenizer: str = "words"
    min_word_count: int = 2
    codebook_size: int = 256
    kmeans_iters: int = 15
    kmeans_sample: int = 20000
    image_mask_ratio: float = 0.4
    text_mask_ratio: float = 0.15
    pair_text_mask_ratio: float = 0.5
    monomodal: bool = True
    cls_weight: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    pretrain: bool = True
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an impossible setting, naming it and the fix."""
        checks = [
            (self.patch_size >= 1 and self.image_size % self.patch_size == 0, "patch_size",
             "use a patch size that divides image_size, e.g. 8 for 64"),
            (self.dim >= 8 and self.dim % max(1, self.heads) == 0, "dim", "use a width divisible by heads, e.g. 128"),
            (self.heads >= 1, "heads", "use 1 or more"),
            (self.layers >= 1, "layers", "use 1 or more"),
            (0 <= self.vl_layers <= self.layers, "vl_layers", "use 0 .. layers"),
            (self.max_text_len >= 2, "max_text_len", "use e.g. 24"),
            (self.tokenizer in TOKENIZERS, "tokenizer", f"use one of {TOKENIZERS}"),
            (self.min_word_count >= 1, "min_word_count", "use 1 or more"),
            (self.codebook_size >= 2, "codebook_size", "use e.g. 256"),
            (0.0 < self.image_mask_ratio < 1.0, "image_mask_ratio", "use a share in (0, 1), e.g. 0.4"),
            (0.0 < self.text_mask_ratio < 1.0, "text_mask_ratio", "use a share in (0, 1), e.g. 0.15"),
            (0.0 < self.pair_text_mask_ratio < 1.0, "pair_text_mask_ratio", "use a share in (0, 1), e.g. 0.5"),
            (self.cls_weight >= 0, "cls_weight", "use 0 or more"),
            (self.epochs >= 0, "epochs", "use 0 or more"),
            (self.batch_size >= 1, "batch_size", "use 1 or more, e.g. 64"),
            (self.lr > 0, "lr", "use e.g. 1e-3"),
            (self.precision in ("fp32", "amp"), "precision", "use fp32 or amp"),
        ]
        for ok, key, fix in checks:
            if not ok:
                raise ConfigError(f"invalid multiway setting {key}: {getattr(self, key)!r}", row=key, fix=fix)

    def key(self) -> str:
        """Hash of the settings that define the trained encoder (not epochs or device)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("epochs", "device")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def n_patches(self) -> int:
        """Patches per image, ``(image_size / patch_size)^2``."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_dict(cls, d: dict) -> "MultiwayConfig":
        """Rebuild from :func:`dataclasses.asdict` output (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ConfigError(f"unknown multiway setting(s) {bad}", row=bad[0], fix=f"use {sorted(names)}")
        return cls(**d)


# ====================================================================== tokenizers
def patchify(pixels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened non-overlapping patches, row by row.

    Shape:
        pixels: ``(B, 3, S, S)`` -> ``(B, P, 3 * p * p)`` with ``P = (S / p)^2``.
    """
    b, c, s, _ = pixels.shape
    g = s // patch_size
    x = pixels.reshape(b, c, g, patch_size, g, patch_size)  # (B, 3, g, p, g, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * patch_size * patch_size)  # (B, P, 3 p p)


class PatchTokenizer(nn.Module):
    """Stand-in visual tokenizer: the nearest of ``K`` k-means centroids of standardised patch pixels.

    BEiT v2's VQ-KD tokenizer (used by BEiT-3) is not available offline; this codebook is
    fitted on the dataset's own patches (Lloyd's algorithm, k-means++ seeding, seeded),
    so a visual token stands for a colour/texture cluster of 8 x 8 pixels.

    Args:
        codebook_size: number of visual tokens ``K``.
        patch_dim: pixels per patch, ``3 * p * p``.
    """

    def __init__(self, codebook_size: int, patch_dim: int) -> None:
        super().__init__()
        self.register_buffer("centroids", torch.zeros(codebook_size, patch_dim))  # (K, D)
        self.register_buffer("mean", torch.zeros(patch_dim))
        self.register_buffer("std", torch.ones(patch_dim))

    @torch.no_grad()
    def fit(self, patches: torch.Tensor, *, iters: int = 15, sample: int = 20000, seed: int = 0) -> "PatchTokenizer":
        """Fit the codebook on (a seeded sample of) patches.

        Shape:
            patches: ``(N, D)``.
        """
        gen = torch.Generator().manual_seed(seed)
        x = patches.float()
        if len(x) > sample:
            x = x[torch.randperm(len(x), generator=gen)[:sample]]  # (n, D)
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp(min=1e-3))
        x = (x - self.mean) / self.std
        k = self.centroids.shape[0]
        cent = x[torch.randint(len(x), (1,), generator=gen)]  # k-means++ seeding
        d2 = torch.cdist(x, cent).squeeze(1) ** 2  # (n,)
        for _ in range(1, k):
            nxt = torch.multinomial(d2 / d2.sum() if d2.sum() > 0 else torch.ones_like(d2), 1, generator=gen)
            cent = torch.cat([cent, x[nxt]])
            d2 = torch.minimum(d2, torch.cdist(x, x[nxt]).squeeze(1) ** 2)
        for _ in range(iters):  # Lloyd steps
            assign = torch.cdist(x, cent).argmin(1)  # (n,)
            sums = torch.zeros_like(cent).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k).float()[:, None]
            cent = torch.where(counts > 0, sums / counts.clamp(min=1), cent)  # an empty cluster keeps its centroid
        self.centroids.copy_(cent)
        return self

    @torch.no_grad()
    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Visual token ids of patches.

        Shape:
            patches: ``(..., D)`` -> ``(...)`` long.
        """
        x = (patches.float() - self.mean) / self.std
        flat = x.reshape(-1, x.shape[-1])  # (N, D)
        return torch.cdist(flat, self.centroids).argmin(1).reshape(patches.shape[:-1])


class TitleTokenizer:
    """Title text -> ids over a compact vocabulary built from the dataset (``[PAD]=0, [UNK]=1, [MASK]=2``).

    Args:
        texts: the items' texts (defines the vocabulary).
        kind: ``"words"`` (:func:`alignrec_lite.text_embed.tokenize`) or ``"minilm"`` (WordPiece).
        min_count: occurrences a token needs to get its own id.
        max_len: tokens kept per title.
        vocab: a saved vocabulary (then ``texts`` only needs to be tokenizable).
    """

    def __init__(self, texts: Sequence[str], *, kind: str = "words", min_count: int = 2, max_len: int = 24,
                 vocab: list[str] | None = None) -> None:
        self.kind, self.max_len = kind, max_len
        self._wp = None
        if kind == "minilm":
            from transformers import AutoTokenizer

            from .encoders import minilm_path

            self._wp = AutoTokenizer.from_pretrained(str(minilm_path()))
        if vocab is None:
            counts: dict[str, int] = {}
            for t in texts:
                for w in self.split(t):
                    counts[w] = counts.get(w, 0) + 1
            vocab = SPECIALS + sorted(w for w, c in counts.items() if c >= min_count)
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def split(self, text: str) -> list[str]:
        """The token strings of one text (before the vocabulary lookup)."""
        if self._wp is not None:
            return self._wp.tokenize(text or "")
        from .text_embed import tokenize

        return tokenize(text)

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts, padded with ``[PAD]`` to the longest (at least 1 token, ``[UNK]`` for an empty text).

        Shape:
            returns ``(n, L)`` long, ``L <= max_len``.
        """
        rows = [[self.index.get(w, UNK) for w in self.split(t)][: self.max_len] or [UNK] for t in texts]
        out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)  # (n, L)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out


# ====================================================================== masking
def block_mask(grid: int, ratio: float, rng: np.random.Generator, *, min_block: int = 4,
               max_aspect: float = 3.0) -> np.ndarray:
    """BEiT's block-wise mask: rectangles of random area and aspect until ``ratio`` of the grid is covered.

    Returns:
        ``(grid * grid,)`` bool, about ``round(ratio * grid^2)`` True (never fewer).
    """
    target = max(1, int(round(ratio * grid * grid)))
    mask = np.zeros((grid, grid), dtype=bool)
    for _ in range(200):
        need = target - int(mask.sum())
        if need <= 0:
            break
        area = rng.uniform(min(min_block, need), max(min_block, need))
        aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
        h = int(min(grid, max(1, round(math.sqrt(area * aspect)))))
        w = int(min(grid, max(1, round(math.sqrt(area / aspect)))))
        top, left = rng.integers(0, grid - h + 1), rng.integers(0, grid - w + 1)
        block = mask[top : top + h, left : left + w]
        new = int((~block).sum())
        if 0 < new <= need + min_block // 2:  # no block that overshoots by much
            block[:] = True
    need = target - int(mask.sum())
    if need > 0:  # top up with single patches (rare)
        free = np.flatnonzero(~mask.ravel())
        mask.ravel()[rng.choice(free, need, replace=False)] = True
    return mask.ravel()


def text_mask(tokens: torch.Tensor, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Mask ``ceil(ratio * n)`` of each title's ``n`` real tokens (at least one), at random.

    Shape:
        tokens: ``(B, L)``; returns ``(B, L)`` bool (never a ``[PAD]``).
    """
    real = tokens != PAD  # (B, L)
    score = torch.rand(tokens.shape, generator=gen).masked_fill(~real, 2.0)  # pads sort last
    n_mask = (real.sum(1).float() * ratio).ceil().clamp(min=1).long()  # (B,)
    rank = score.argsort(1).argsort(1)  # (B, L) rank of each position
    return (rank < n_mask[:, None]) & real


# ====================================================================== model
class MultiwayBlock(nn.Module):
    """One pre-norm block: shared multi-head self-attention, then a feed-forward expert per token.

    Args:
        dim, heads, mlp_ratio: the block's shape.
        vl_expert: also hold a vision-language expert (the top blocks).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, vl_expert: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        names = ["vision", "language"] + (["vl"] if vl_expert else [])
        self.norm2 = nn.ModuleDict({n: nn.LayerNorm(dim) for n in names})
        self.ffn = nn.ModuleDict({n: nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
                                  for n in names})

    def forward(self, x: torch.Tensor, is_text: torch.Tensor, key_pad: torch.Tensor | None, *,
                use_vl: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend over the whole sequence, then route every token to its expert.

        Args:
            x: token states.
            is_text: which positions are language tokens (the rest are vision tokens).
            key_pad: positions to ignore as keys (padding), or None.
            use_vl: send every token through the vision-language expert.

        Returns:
            ``(new states, attention weights)``.

        Shape:
            x: ``(B, T, d)``, is_text: ``(T,)``, key_pad: ``(B, T)``;
            returns ``(B, T, d)`` and ``(B, heads, T, T)``.
        """
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)  # (B, h, T, T)
        if key_pad is not None:
            att = att.masked_fill(key_pad[:, None, None, :], float("-inf"))
        att = att.softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, d) shared attention over both modalities
        x = x + self.proj(y)
        if use_vl:
            return x + self.ffn["vl"](self.norm2["vl"](x)), att
        n_vis = int((~is_text).sum())  # vision tokens come first, then the title
        parts = []
        for name, h in (("vision", x[:, :n_vis]), ("language", x[:, n_vis:])):  # (B, T_m, d) each
            if h.shape[1]:
                parts.append(h + self.ffn[name](self.norm2[name](h)))
        return torch.cat(parts, 1), att  # (B, T, d)


class MultiwayEncoder(nn.Module):
    """A small BEiT-3-style Multiway Transformer over an item's image patches and title tokens.

    Args:
        cfg: the shape (see :class:`MultiwayConfig`).
        vocab_size: size of the title vocabulary (with the 3 special tokens).
    """

    def __init__(self, cfg: MultiwayConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.n_patches
        patch_dim = 3 * cfg.patch_size**2
        self.visual_tokenizer = PatchTokenizer(cfg.codebook_size, patch_dim)
        self.patch_embed = nn.Linear(patch_dim, d)
        self.word_embed = nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mask_patch = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_image = nn.Parameter(torch.zeros(1, 1 + p, d))  # [CLS] + patches
        self.pos_text = nn.Parameter(torch.zeros(1, cfg.max_text_len, d))
        self.type_embed = nn.Parameter(torch.zeros(2, d))  # vision / language
        self.blocks = nn.ModuleList([MultiwayBlock(d, cfg.heads, cfg.mlp_ratio,
                                                   vl_expert=i >= cfg.layers - cfg.vl_layers)
                                     for i in range(cfg.layers)])
        self.norm = nn.LayerNorm(d)
        self.mim_head = nn.Linear(d, cfg.codebook_size)  # -> visual token logits
        self.mlm_head = nn.Linear(d, vocab_size)  # -> word logits
        self.cls_block = MultiwayBlock(d, cfg.heads, cfg.mlp_ratio) if cfg.cls_weight > 0 else None
        for prm in (self.cls_token, self.mask_patch, self.pos_image, self.pos_text, self.type_embed):
            nn.init.trunc_normal_(prm, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.word_embed.weight, std=0.02)

    def embed(self, pixels: torch.Tensor | None, tokens: torch.Tensor | None,
              patch_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Build the input sequence ``[CLS] + patches + title`` (either modality may be left out).

        Returns:
            ``(x, is_text, key_pad)`` for the blocks.

        Shape:
            pixels: ``(B, 3, S, S)``, tokens: ``(B, L)``, patch_mask: ``(B, P)`` bool;
            x: ``(B, T, d)``, is_text: ``(T,)``, key_pad: ``(B, T)`` or None.
        """
        b = (pixels if pixels is not None else tokens).shape[0]
        parts = [self.cls_token.expand(b, -1, -1) + self.pos_image[:, :1]]  # (B, 1, d)
        if pixels is not None:
            h = self.patch_embed(patchify(pixels, self.cfg.patch_size))  # (B, P, d)
            if patch_mask is not None:
                h = torch.where(patch_mask[..., None], self.mask_patch.expand_as(h), h)
            parts.append(h + self.pos_image[:, 1:])
        n_vision = sum(x.shape[1] for x in parts)
        parts = [torch.cat(parts, 1) + self.type_embed[0]]  # (B, 1 + P, d)
        key_pad = None
        if tokens is not None:
            w = self.word_embed(tokens) + self.pos_text[:, : tokens.shape[1]] + self.type_embed[1]  # (B, L, d)
            parts.append(w)
            pad = tokens == PAD  # (B, L)
            key_pad = torch.cat([pad.new_zeros(b, n_vision), pad], 1) if pad.any() else None  # (B, T)
        x = torch.cat(parts, 1)  # (B, T, d)
        is_text = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
        is_text[n_vision:] = True
        return x, is_text, key_pad

    def forward(self, pixels: torch.Tensor | None, tokens: torch.Tensor | None,
                patch_mask: torch.Tensor | None = None, *, return_attention: bool = False,
                return_layer: int | None = None) -> dict[str, torch.Tensor | list]:
        """Encode one batch of items (pairs, images alone or titles alone).

        Args:
            pixels: images scaled to [-1, 1], or None (image left out).
            tokens: title ids (with ``[MASK]`` where masked), or None (title left out).
            patch_mask: patches to replace by the ``[MASK]`` embedding.
            return_attention: also return every block's attention weights.
            return_layer: also return the states after this block (for the [CLS] head).

        Returns:
            ``{"hidden": final states, "cls": position-0 output, "is_text"}`` (+ ``"attention"``,
            ``"layer"``).

        Shape:
            hidden ``(B, T, d)``, cls ``(B, d)``, attention: list of ``(B, heads, T, T)``.
        """
        if pixels is None and tokens is None:
            raise ConfigError("an item needs an image, a title or both", row="inputs",
                              fix="pass pixels and/or tokens")
        x, is_text, key_pad = self.embed(pixels, tokens, patch_mask)
        use_vl = pixels is not None and tokens is not None
        atts, mid = [], None
        for i, blk in enumerate(self.blocks):
            x, att = blk(x, is_text, key_pad, use_vl=use_vl and "vl" in blk.ffn)
            if return_attention:
                atts.append(att)
            if return_layer is not None and i == return_layer:
                mid = x
        x = self.norm(x)  # (B, T, d)
        out: dict = {"hidden": x, "cls": x[:, 0], "is_text": is_text, "key_pad": key_pad}
        if return_attention:
            out["attention"] = atts
        if mid is not None:
            out["layer"] = mid
        return out

    # ---------------------------------------------------------------- loss
    def masked_loss(self, pixels: torch.Tensor | None, tokens: torch.Tensor | None, *, image_ratio: float,
                    text_ratio: float, gen: torch.Generator, cls_weight: float = 0.0) -> dict[str, torch.Tensor]:
        """Masked multimodal modelling on one pass (pair, image-only or title-only).

        ``mim`` = cross-entropy of the masked patches' visual tokens, ``mlm`` = cross-entropy
        of the masked title tokens over the vocabulary (0 when a modality is absent).

        Returns:
            ``{"loss", "mim", "mlm", "cls", "mim_acc", "mlm_acc"}`` (scalars).

        Shape:
            pixels: ``(B, 3, S, S)``, tokens: ``(B, L)``.
        """
        dev = (pixels if pixels is not None else tokens).device
        zero = torch.zeros((), device=dev)
        out = {"mim": zero, "mlm": zero, "cls": zero, "mim_acc": zero, "mlm_acc": zero}
        p_mask = t_mask = inp = targets_v = None
        if pixels is not None:
            g = self.cfg.image_size // self.cfg.patch_size
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            p_mask = torch.from_numpy(np.stack([block_mask(g, image_ratio, rng) for _ in range(len(pixels))]))
            p_mask = p_mask.to(dev)  # (B, P)
            targets_v = self.visual_tokenizer(patchify(pixels, self.cfg.patch_size))  # (B, P) visual tokens
        if tokens is not None:
            t_mask = text_mask(tokens.cpu(), text_ratio, gen).to(dev)  # (B, L)
            inp = tokens.masked_fill(t_mask, MASK)
        mid_layer = max(0, self.cfg.layers // 2 - 1) if cls_weight > 0 else None
        enc = self(pixels, inp, p_mask, return_layer=mid_layer)
        h = enc["hidden"]  # (B, T, d)
        n_vis = 1 + (self.cfg.n_patches if pixels is not None else 0)

        def heads(states: torch.Tensor) -> dict[str, torch.Tensor]:
            res = {}
            if pixels is not None:
                logits = self.mim_head(states[:, 1:n_vis][p_mask])  # (m_v, K)
                res["mim"] = F.cross_entropy(logits.float(), targets_v[p_mask])
                res["mim_acc"] = (logits.argmax(-1) == targets_v[p_mask]).float().mean()
            if tokens is not None:
                logits = self.mlm_head(states[:, n_vis:][t_mask])  # (m_t, V)
                res["mlm"] = F.cross_entropy(logits.float(), tokens[t_mask])
                res["mlm_acc"] = (logits.argmax(-1) == tokens[t_mask]).float().mean()
            return res

        out.update(heads(h))
        if cls_weight > 0 and self.cls_block is not None:
            # BEiT v2: final [CLS] + middle-layer patches/words, one more block, predict the masks again
            mixed = torch.cat([h[:, :1], enc["layer"][:, 1:]], 1)  # (B, T, d)
            mixed, _ = self.cls_block(mixed, enc["is_text"], enc["key_pad"])
            extra = heads(self.norm(mixed))
            out["cls"] = extra.get("mim", zero) + extra.get("mlm", zero)
        out["loss"] = out["mim"] + out["mlm"] + cls_weight * out["cls"]
        return out


def build_multiway(cfg: MultiwayConfig, vocab_size: int) -> MultiwayEncoder:
    """Build the encoder with weights seeded by ``cfg.seed`` (the global torch RNG is left untouched)."""
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return MultiwayEncoder(cfg, vocab_size)


# ====================================================================== data
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

    def __init__(self, ds: RecDataset, cfg: MultiwayConfig, *, vocab: list[str] | None = None,
                 progress: bool = False) -> None:
        from tqdm.auto import tqdm

        s = cfg.image_size
        transform = _simple_transform(s)
        self.pixels = torch.zeros(ds.n_items, 3, s, s, dtype=torch.float16)  # (n_items, 3, S, S)
        self.has_image = torch.zeros(ds.n_items, dtype=torch.bool)
        for i in tqdm(range(ds.n_items), disable=not progress, desc="decoding images", unit="img"):
            im = load_image(ds.image_path(i))
            if im is not None:
                self.pixels[i] = transform(im).to(torch.float16)
                self.has_image[i] = True
        if not self.has_image.any():
            raise DataError("no item image could be read", path=ds.path,
                            fix="check the `image` column of items.csv and the image files")
        self.texts = [ds.item_text(i) for i in range(ds.n_items)]
        self.tokenizer = TitleTokenizer(self.texts, kind=cfg.tokenizer, min_count=cfg.min_word_count,
                                        max_len=cfg.max_text_len, vocab=vocab)
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
def encode_items(model: MultiwayEncoder, content: MultiwayContent, *, device: torch.device | str = "cpu",
                 precision: str = "fp32", batch_size: int = 128) -> dict[str, np.ndarray]:
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
        with _autocast(device, precision):
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


# ====================================================================== training
def _save(run: Path, model: MultiwayEncoder, opt: torch.optim.Optimizer, cfg: MultiwayConfig, vocab: list[str],
          epoch: int, step: int, history: list, gen: torch.Generator, seconds: float) -> None:
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_stage1_checkpoint(run, ENCODER_NAME, {"config": asdict(cfg), "vocab": vocab, "epoch": epoch, "step": step,
                                               "model": weights}, opt, gen, history, seconds)


def load_checkpoint(path: str | Path) -> dict:
    """Read a Multiway checkpoint (``weights_only=True``, CRC-checked).

    Raises:
        CheckpointError: missing, unreadable or not a Multiway checkpoint.
    """
    return load_stage1_checkpoint(path, (ENCODER_NAME,), name="Multiway",
                                  train_cmd="alignrec-lite pretrain-ica DIR --encoder multiway")


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
        raise CheckpointError(f"checkpoint does not match the model ({str(exc)[:120]})", path=run,
                              fix="train again with --overwrite") from None
    return model.eval(), cfg, list(state["vocab"])


def _lr_at(step: int, cfg: MultiwayConfig) -> float:
    """Linear warm-up, then constant: independent of ``epochs``, so a resumed longer run matches an unbroken one."""
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def train_step(model: MultiwayEncoder, content: MultiwayContent, idx: torch.Tensor, cfg: MultiwayConfig,
               gen: torch.Generator, device: torch.device, step: int = 0) -> dict[str, torch.Tensor]:
    """The loss of one batch: the masked pair pass plus one monomodal pass (image-only on even
    steps, title-only on odd steps; BEiT-3 also mixes image-text pairs with monomodal data).

    Returns:
        ``{"loss", "pair", "mim_acc", "mlm_acc"}`` and ``"image"`` or ``"text"`` (``loss`` carries
        the gradient).
    """
    pix, tok = content.batch(idx)
    pix, tok = pix.to(device), tok.to(device)
    has = content.has_image[idx]
    with _autocast(device, cfg.precision):
        if bool(has.all()):
            pair = model.masked_loss(pix, tok, image_ratio=cfg.image_mask_ratio,
                                     text_ratio=cfg.pair_text_mask_ratio, gen=gen, cls_weight=cfg.cls_weight)
        else:  # items without a readable image train on their title alone
            pair = model.masked_loss(None, tok, image_ratio=cfg.image_mask_ratio,
                                     text_ratio=cfg.pair_text_mask_ratio, gen=gen, cls_weight=cfg.cls_weight)
        terms = {"pair": pair["loss"], "mim_acc": pair["mim_acc"], "mlm_acc": pair["mlm_acc"]}
        loss = pair["loss"]
        if cfg.monomodal and step % 2 == 0 and bool(has.any()):  # masked image modelling, image alone
            img = model.masked_loss(pix[has.to(device)], None, image_ratio=cfg.image_mask_ratio, text_ratio=0.5,
                                    gen=gen, cls_weight=cfg.cls_weight)
            terms["image"] = img["loss"]
            loss = loss + img["loss"]
        elif cfg.monomodal:  # masked language modelling, title alone
            txt = model.masked_loss(None, tok, image_ratio=cfg.image_mask_ratio, text_ratio=cfg.text_mask_ratio,
                                    gen=gen, cls_weight=cfg.cls_weight)
            terms["text"] = txt["loss"]
            loss = loss + txt["loss"]
    terms["loss"] = loss
    return terms


def _run_dir(folder: Path, cfg: MultiwayConfig, out: str | Path | None) -> Path:
    return Path(out) if out is not None else folder / ".cache" / "multiway" / cfg.key()


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
        raise DataError("the Multiway encoder needs items.csv with `text` and `image` columns", path=folder,
                        fix="build the dataset with `alignrec-lite data build ...`")
    run = _run_dir(folder, cfg, out)
    entry = read_manifest(folder).get("mm")
    if (folder / MM_FILE).exists() and not overwrite:
        same = isinstance(entry, dict) and entry.get("encoder") == ENCODER_NAME and entry.get("config_key") == cfg.key()
        if not same:
            made = entry.get("encoder") if isinstance(entry, dict) else "an unknown encoder"
            raise DataError(f"{MM_FILE} already exists (made by {made} with other settings)", path=folder / MM_FILE,
                            fix="pass --overwrite (overwrite=True) to replace it, or use another folder")
        if (not resume and entry.get("epochs") == epochs and entry.get("sha256") == sha256_file(folder / MM_FILE)):
            return {"shape": entry["shape"], "epochs_run": entry["epochs"], "train_seconds": entry["train_seconds"],
                    "final_loss": entry["final_loss"], "run_dir": Path(entry["run_dir"]), "history": [],
                    "manifest": read_manifest(folder), "up_to_date": True}
    state = open_stage1_run(run, cfg, resume=resume, overwrite=overwrite, load=load_checkpoint, name="a Multiway")

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
        model.visual_tokenizer.fit(patches.reshape(-1, patches.shape[-1]), iters=cfg.kmeans_iters,
                                   sample=cfg.kmeans_sample, seed=cfg.seed)
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n and "pos_" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n and "pos_" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
        step, prior_seconds = int(state["step"]), float(state["seconds"])
    items = torch.arange(ds.n_items)

    t0 = time.perf_counter()
    bar = tqdm(total=epochs, initial=min(start_epoch, epochs), disable=not progress, desc="Multiway MMM",
               unit="epoch", dynamic_ncols=True)
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
            raise ConfigError(f"the masked-modelling loss became {record['loss']} at epoch {epoch}", row="lr",
                              fix="lower the learning rate (--lr) or use --precision fp32")
        history.append(record)
        for cb in callbacks or []:
            cb(epoch, model, record)
        _save(run, model, opt, cfg, vocab, epoch + 1, step, history, gen, prior_seconds + time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", mim_acc=f"{record['mim_acc']:.2f}")
    bar.close()
    train_seconds = prior_seconds + time.perf_counter() - t0
    if epochs == 0 or start_epoch >= epochs:
        _save(run, model, opt, cfg, vocab, max(start_epoch, epochs), step, history, gen, train_seconds)

    emb = encode_items(model, content, device=device, precision=cfg.precision)
    save_npy(run / "mean_pool.npy", emb["mean_pool"])  # diagnostic only (not the paper's read-out)
    manifest = write_mm_features(folder, run, emb, {
        "encoder": ENCODER_NAME,
        "architecture": (f"Multiway Transformer: {cfg.layers} blocks, width {cfg.dim}, {cfg.heads} heads, "
                         f"V/L FFN experts, VL expert in the top {cfg.vl_layers}; {cfg.n_patches} patches of "
                         f"{cfg.patch_size}x{cfg.patch_size} px + <= {cfg.max_text_len} title tokens; "
                         "item vector = L2-normalised output at position 0"),
        "visual_tokenizer": (f"k-means codebook of {cfg.codebook_size} over standardised patch pixels "
                             "(stand-in for BEiT v2 VQ-KD)"),
        "title_tokenizer": cfg.tokenizer,
        "vocab_size": len(vocab),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "pretrained": bool(epochs > 0),
    }, config=cfg, history=history, train_seconds=train_seconds, missing_images=int((~content.has_image).sum()),
        device=device)
    return {"shape": list(emb["mm"].shape), "epochs_run": len(history), "train_seconds": train_seconds,
            "final_loss": history[-1]["loss"] if history else float("nan"), "run_dir": run, "history": history,
            "manifest": manifest}


def title_patch_attention(model: MultiwayEncoder, content: MultiwayContent, items: Sequence[int], *,
                          word: int | None = None, layer: int = -1) -> list[dict]:
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
        out.append({"item": i, "image": img, "attention": row.numpy(),
                    "token": content.tokenizer.vocab[int(tok[b, pos])], "title": content.texts[i]})
    return out
