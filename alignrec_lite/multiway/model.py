"""The Multiway Transformer: its settings, the blocks with per-modality experts, the encoder and its loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import Stage1Config
from ..errors import ConfigError
from .tokens import (
    MASK,
    PAD,
    TOKENIZERS,
    PatchTokenizer,
    block_mask,
    patchify,
    text_mask,
)


@dataclass
class MultiwayConfig(Stage1Config):
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

    label = "multiway"  # in messages (not a field)
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
            (
                self.patch_size >= 1 and self.image_size % self.patch_size == 0,
                "patch_size",
                "use a patch size that divides image_size, e.g. 8 for 64",
            ),
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
        self.check(checks)

    @property
    def n_patches(self) -> int:
        """Patches per image, ``(image_size / patch_size)^2``."""
        return (self.image_size // self.patch_size) ** 2


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
        self.ffn = nn.ModuleDict(
            {n: nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) for n in names}
        )

    def forward(
        self, x: torch.Tensor, is_text: torch.Tensor, key_pad: torch.Tensor | None, *, use_vl: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
        self.blocks = nn.ModuleList(
            [
                MultiwayBlock(d, cfg.heads, cfg.mlp_ratio, vl_expert=i >= cfg.layers - cfg.vl_layers)
                for i in range(cfg.layers)
            ]
        )
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

    def embed(
        self, pixels: torch.Tensor | None, tokens: torch.Tensor | None, patch_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
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

    def forward(
        self,
        pixels: torch.Tensor | None,
        tokens: torch.Tensor | None,
        patch_mask: torch.Tensor | None = None,
        *,
        return_attention: bool = False,
        return_layer: int | None = None,
    ) -> dict[str, torch.Tensor | list]:
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
            raise ConfigError("an item needs an image, a title or both", row="inputs", fix="pass pixels and/or tokens")
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
    def masked_loss(
        self,
        pixels: torch.Tensor | None,
        tokens: torch.Tensor | None,
        *,
        image_ratio: float,
        text_ratio: float,
        gen: torch.Generator,
        cls_weight: float = 0.0,
    ) -> dict[str, torch.Tensor]:
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
