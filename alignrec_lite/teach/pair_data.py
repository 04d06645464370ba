"""Image-title pairs for the teaching notebooks, drawn fresh from the toy shop's generator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from ..utils import bag_of_words


@dataclass
class PairData:
    """Image-title pairs with their ground-truth attributes.

    Attributes:
        images: ``(n, 3, s, s)`` float32 pixels in ``[0, 1]``.
        texts: the ``n`` titles.
        labels: attribute name (``category``, ``colour``, ``pattern``, ``brand``)
            -> ``(n,)`` int codes into :attr:`values`.
        values: attribute name -> the tuple of its values.
    """

    images: np.ndarray
    texts: list[str]
    labels: dict[str, np.ndarray]
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray | slice) -> PairData:
        """Rows ``idx`` of every field."""
        idx_arr = np.arange(len(self))[idx]
        return PairData(
            self.images[idx_arr],
            [self.texts[i] for i in idx_arr],
            {k: v[idx_arr] for k, v in self.labels.items()},
            self.values,
        )


def toy_pairs(n: int, *, seed: int = 0, image_size: int = 32) -> PairData:
    """Draw ``n`` fresh toy-shop products (image + title) with uniform attributes.

    Uses the toy generator's drawing and title rules
    (:func:`alignrec_lite.data.toy.render_item`, :func:`~alignrec_lite.data.toy.make_title`),
    so the image shows category, colour and pattern but never the brand, and the
    title sometimes leaves the pattern or colour out.

    Args:
        n: number of pairs.
        seed: seed of every choice.
        image_size: side of the down-sampled image (the drawing is 64x64).

    Returns:
        A :class:`PairData`.

    Raises:
        ConfigError: ``n < 1`` or ``image_size`` outside ``[4, 64]``.
    """
    from PIL import Image

    from ..data import toy

    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}", row="n", fix="ask for at least one pair")
    if not 4 <= image_size <= toy.IMAGE_SIZE:
        raise ConfigError(
            f"image_size must be in [4, {toy.IMAGE_SIZE}], got {image_size}", row="image_size", fix="use 16 or 32"
        )
    rng = np.random.default_rng(seed)
    values = {"category": toy.CATEGORIES, "colour": toy.COLOURS, "pattern": toy.PATTERNS, "brand": toy.BRANDS}
    labels = {k: rng.integers(len(v), size=n) for k, v in values.items()}
    offsets = rng.integers(-3, 4, size=(n, 2))
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    texts = []
    for i in range(n):
        cat, col, pat, brand = (values[k][labels[k][i]] for k in ("category", "colour", "pattern", "brand"))
        img = toy.render_item(cat, col, pat, dx=int(offsets[i, 0]), dy=int(offsets[i, 1]))
        img = img.resize((image_size, image_size), Image.Resampling.BOX)
        images[i] = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, s, s)
        texts.append(toy.make_title(rng, cat, col, pat, brand)[0])
    return PairData(images, texts, labels, values)


def second_view(pairs: PairData, *, seed: int = 1, noise: float = 0.05) -> np.ndarray:
    """Draw every product of ``pairs`` again with a new random offset plus pixel noise.

    The two drawings of one product form a positive pair for a *shared* image
    encoder, the augmented-views setting of SimCLR and of Wang & Isola's
    experiments.

    Args:
        pairs: the products (their attribute labels are redrawn).
        seed: seed of the offsets and noise.
        noise: std of the Gaussian pixel noise (pixels are in ``[0, 1]``).

    Returns:
        ``(n, 3, s, s)`` float32 pixels, same size as ``pairs.images``.
    """
    from PIL import Image

    from ..data import toy

    rng = np.random.default_rng(seed)
    size = pairs.images.shape[-1]
    out = np.empty_like(pairs.images)
    for i in range(len(pairs)):
        attrs = [pairs.values[k][pairs.labels[k][i]] for k in ("category", "colour", "pattern")]
        dx, dy = (int(v) for v in rng.integers(-3, 4, size=2))
        img = toy.render_item(*attrs, dx=dx, dy=dy).resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, s, s)
    out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def pair_inputs(pairs: PairData, vocab: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs of a :class:`PairData`: flattened centred pixels and a bag of words.

    Args:
        pairs: the pairs.
        vocab: word list of the bag of words (default: every toy-title word).

    Returns:
        ``(image_x (n, 3 s s), text_x (n, V))`` float32 tensors.
    """
    from ..data.toy import text_vocabulary

    vocab = text_vocabulary() if vocab is None else vocab
    image_x = torch.from_numpy(pairs.images.reshape(len(pairs), -1) - 0.5)  # (n, 3 s s)
    text_x = torch.from_numpy(bag_of_words(pairs.texts, vocab))  # (n, V)
    return image_x, text_x
