"""The Multiway encoder's tokens: image patches and their stand-in visual tokenizer, title tokens, masking."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

TOKENIZERS = ("words", "minilm")
PAD, UNK, MASK = 0, 1, 2  # special title-token ids (the "words" vocabulary; minilm ids are remapped the same way)
SPECIALS = ["[PAD]", "[UNK]", "[MASK]"]


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
    def fit(self, patches: torch.Tensor, *, iters: int = 15, sample: int = 20000, seed: int = 0) -> PatchTokenizer:
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
        kind: ``"words"`` (:func:`alignrec_lite.utils.tokenize`) or ``"minilm"`` (WordPiece).
        min_count: occurrences a token needs to get its own id.
        max_len: tokens kept per title.
        vocab: a saved vocabulary (then ``texts`` only needs to be tokenizable).
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        kind: str = "words",
        min_count: int = 2,
        max_len: int = 24,
        vocab: list[str] | None = None,
    ) -> None:
        self.kind, self.max_len = kind, max_len
        self._wp = None
        if kind == "minilm":
            from transformers import AutoTokenizer

            from ..encoders import minilm_path

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
        from ..utils import tokenize

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
def block_mask(
    grid: int, ratio: float, rng: np.random.Generator, *, min_block: int = 4, max_aspect: float = 3.0
) -> np.ndarray:
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
