"""Small contrastive encoders for the teaching notebooks (02 and 03).

A two-tower model learns one vector per image and one per title so that the
pair that belongs together scores higher than every other pair in the batch:
CLIP's symmetric InfoNCE over an ``N x N`` logit matrix (Radford et al., ICML
2021, Fig. 3), or Wang & Isola's alignment + uniformity objective (ICML 2020,
Eq. 4-6). Everything here is deliberately tiny (two-layer MLP towers on 32x32
pixels and on a bag of words) so that a 2-core CPU trains it in seconds; the
real image and text towers live in :mod:`alignrec_lite.encoders`.

Also here: the training data (image-title pairs drawn fresh from the toy shop's
generator, :func:`toy_pairs`), a cross-entropy classifier whose hidden layer is
used as an embedding (the "trained for classification" counterpart,
:func:`train_classifier`), retrieval recall, and the memory model of a
contrastive step (:func:`autograd_saved_bytes`, :func:`autograd_saved_tensors`, :func:`fit_memory_model`,
:func:`transformer_activation_bytes`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .losses import align_loss, clip_loss, info_nce, uniform_loss
from .text_embed import tokenize

LOSSES = ("clip", "info_nce", "align_uniform", "align")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` intra-op torch threads (``None``: leave the setting alone).

    The teaching towers are so small that splitting a matmul over threads costs
    more in synchronisation than it saves: on the project's busy 2-core CPU one
    CLIP training of :func:`train_two_tower` took 15.2 s with 2 threads and 3.2 s
    with 1. The previous
    setting is restored afterwards.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------- data
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

    def subset(self, idx: np.ndarray | slice) -> "PairData":
        """Rows ``idx`` of every field."""
        idx_arr = np.arange(len(self))[idx]
        return PairData(self.images[idx_arr], [self.texts[i] for i in idx_arr],
                        {k: v[idx_arr] for k, v in self.labels.items()}, self.values)


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

    from .data import toy

    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}", row="n", fix="ask for at least one pair")
    if not 4 <= image_size <= toy.IMAGE_SIZE:
        raise ConfigError(f"image_size must be in [4, {toy.IMAGE_SIZE}], got {image_size}",
                          row="image_size", fix="use 16 or 32")
    rng = np.random.default_rng(seed)
    values = {"category": toy.CATEGORIES, "colour": toy.COLOURS, "pattern": toy.PATTERNS,
              "brand": toy.BRANDS}
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

    from .data import toy

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


def bag_of_words(texts: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """Word counts of each text over ``vocab``, rows L2-normalised (unknown words ignored).

    Shape:
        returns ``(len(texts), len(vocab))`` float32.
    """
    index = {w: j for j, w in enumerate(vocab)}
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for r, text in enumerate(texts):
        for tok in tokenize(text):
            if tok in index:
                out[r, index[tok]] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def pair_inputs(pairs: PairData, vocab: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs of a :class:`PairData`: flattened centred pixels and a bag of words.

    Args:
        pairs: the pairs.
        vocab: word list of the bag of words (default: every toy-title word).

    Returns:
        ``(image_x (n, 3 s s), text_x (n, V))`` float32 tensors.
    """
    from .data.toy import text_vocabulary

    vocab = text_vocabulary() if vocab is None else vocab
    image_x = torch.from_numpy(pairs.images.reshape(len(pairs), -1) - 0.5)  # (n, 3 s s)
    text_x = torch.from_numpy(bag_of_words(pairs.texts, vocab))  # (n, V)
    return image_x, text_x


# ----------------------------------------------------------------------- models
class Tower(nn.Module):
    """Two-layer MLP encoder ``in -> hidden -> out`` whose output is L2-normalised.

    Args:
        in_dim: input size.
        out_dim: embedding size (2 or 3 to draw it on the circle / sphere).
        hidden: hidden width.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(n, in_dim) -> (n, out_dim)``, unit rows."""
        return F.normalize(self.net(x), dim=1)


class TwoTower(nn.Module):
    """An image tower and a text tower mapping into one ``dim``-dimensional sphere.

    With ``shared=True`` both inputs go through one tower (a Siamese encoder
    for two views of the same kind of input; ``text_dim`` must equal ``image_dim``).
    """

    def __init__(self, image_dim: int, text_dim: int, dim: int = 32, hidden: int = 64,
                 shared: bool = False) -> None:
        super().__init__()
        if shared and image_dim != text_dim:
            raise ConfigError(f"a shared tower needs inputs of one size, got {image_dim} and {text_dim}",
                              row="shared", fix="pass two views of the same kind of input")
        self.image = Tower(image_dim, dim, hidden)
        self.text = self.image if shared else Tower(text_dim, dim, hidden)

    @torch.no_grad()
    def embed(self, image_x: torch.Tensor, text_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit image and text embeddings, without gradients.

        Shape:
            returns ``(n, dim)`` and ``(n, dim)``.
        """
        was = self.training
        self.eval()
        out = self.image(image_x), self.text(text_x)
        self.train(was)
        return out


def sampled_clip_loss(img: torch.Tensor, txt: torch.Tensor, temperature: float, negatives: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """CLIP's symmetric InfoNCE with only ``negatives`` random in-batch negatives per positive.

    Every row keeps its positive (the diagonal of the ``B x B`` logits) and
    ``negatives`` other columns drawn at random; with ``negatives = B - 1`` it
    equals :func:`~alignrec_lite.losses.clip_loss`. This isolates the effect of
    the number of negatives from the batch size (same pairs, same steps).

    Shape:
        img, txt: ``(B, d)`` unit rows. Returns a scalar.
    """
    b = img.shape[0]
    k = min(int(negatives), b - 1)
    logits = img @ txt.T / temperature  # (B, B)
    target = torch.zeros(b, dtype=torch.long)
    total = img.new_zeros(())
    for mat in (logits, logits.T):
        noise = torch.rand(b, b, generator=generator)
        noise.fill_diagonal_(-1.0)  # never pick the positive as a negative
        neg_idx = noise.topk(k, dim=1).indices  # (B, k)
        sub = torch.cat([mat.diagonal().unsqueeze(1), mat.gather(1, neg_idx)], dim=1)  # (B, 1 + k)
        total = total + F.cross_entropy(sub, target)
    return total / 2


def pair_loss(img: torch.Tensor, txt: torch.Tensor, loss: str, temperature: float,
              unif_weight: float = 1.0, negatives: int | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The training objective of a batch of matched, unit-norm pairs.

    Args:
        img, txt: ``(B, d)`` embeddings; row ``k`` of each is a pair.
        loss: ``"clip"`` (symmetric InfoNCE), ``"info_nce"`` (image -> text only),
            ``"align_uniform"`` (Wang & Isola: align + mean uniformity of both
            sides, ``t = 2``) or ``"align"`` (alignment alone — it collapses).
        temperature: softmax temperature of the InfoNCE losses.
        unif_weight: weight of the uniformity term in ``"align_uniform"``.
        negatives: for ``"clip"``, use only this many random in-batch negatives
            per positive (:func:`sampled_clip_loss`); ``None`` = all ``B - 1``.
        generator: random source of the sampled negatives.

    Returns:
        A scalar tensor.
    """
    if loss == "clip":
        if negatives is not None and negatives < img.shape[0] - 1:
            return sampled_clip_loss(img, txt, temperature, negatives, generator)
        return clip_loss(img, txt, logit_scale=1.0 / temperature)
    if loss == "info_nce":
        return info_nce(img, txt, temperature=temperature)
    if loss == "align_uniform":
        unif = 0.5 * (uniform_loss(img) + uniform_loss(txt))
        return align_loss(img, txt) + unif_weight * unif
    if loss == "align":
        return align_loss(img, txt)
    raise ConfigError(f"unknown loss {loss!r}", row="loss", fix=f"use one of {list(LOSSES)}")


def train_two_tower(
    image_x: torch.Tensor,
    text_x: torch.Tensor,
    *,
    dim: int = 32,
    loss: str = "clip",
    temperature: float = 0.1,
    batch_size: int = 64,
    epochs: int = 20,
    steps: int | None = None,
    negatives: int | None = None,
    lr: float = 3e-3,
    hidden: int = 64,
    shared: bool = False,
    seed: int = 0,
    track_every: int = 0,
    track_n: int = 512,
    callback: Callable[[int, TwoTower], None] | None = None,
    threads: int | None = 1,
) -> tuple[TwoTower, list[dict[str, float]]]:
    """Train a :class:`TwoTower` on matched rows of ``image_x`` and ``text_x``.

    Batches are drawn without replacement within an epoch (the last short batch
    is dropped, so every step sees exactly ``batch_size`` pairs and
    ``batch_size - 1`` negatives per positive).

    Args:
        image_x, text_x: ``(n, d_img)``, ``(n, d_txt)`` inputs, row-aligned.
        dim: embedding size.
        loss: see :func:`pair_loss`.
        temperature: InfoNCE temperature.
        batch_size: pairs per step (``<= n``).
        epochs: passes over the data (ignored when ``steps`` is given).
        steps: total optimiser steps (overrides ``epochs``).
        negatives: negatives per positive for ``loss="clip"`` (``None``: all
            ``batch_size - 1``), see :func:`sampled_clip_loss`.
        lr: Adam learning rate.
        hidden: tower width.
        shared: one tower for both inputs (two views of the same modality).
        seed: seed of the initialisation and of the batch order.
        track_every: every that many steps, record ``align`` and ``uniform``
            (Wang & Isola, on the first ``track_n`` pairs); 0 = once per epoch.
        track_n: pairs used for tracking.
        callback: ``f(step, model)`` called at every tracking point.
        threads: torch threads while training (see :func:`torch_threads`; ``None``
            keeps torch's own setting, e.g. to use every core for a larger run).

    Returns:
        ``(model in eval mode, history)``; history rows hold ``step``, ``epoch``,
        ``loss`` (mean since the last row), ``align`` and ``uniform``.

    Raises:
        ConfigError: bad loss, batch size or temperature.
    """
    n = image_x.shape[0]
    if not 2 <= batch_size <= n:
        raise ConfigError(f"batch_size must be in [2, {n}], got {batch_size}", row="batch_size",
                          fix="use a smaller batch or more pairs")
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}", row="temperature", fix="use e.g. 0.1")
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}", row="loss", fix=f"use one of {list(LOSSES)}")
    with torch_threads(threads):
        return _train_two_tower(image_x, text_x, dim=dim, loss=loss, temperature=temperature,
                                batch_size=batch_size, epochs=epochs, steps=steps, negatives=negatives, lr=lr,
                                hidden=hidden, shared=shared, seed=seed, track_every=track_every,
                                track_n=track_n, callback=callback)


def _train_two_tower(image_x, text_x, *, dim, loss, temperature, batch_size, epochs, steps, negatives, lr,
                     hidden, shared, seed, track_every, track_n, callback):
    n = image_x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TwoTower(image_x.shape[1], text_x.shape[1], dim, hidden, shared)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch = n // batch_size
    total = steps if steps is not None else epochs * per_epoch
    every = track_every or per_epoch
    probe = slice(0, min(track_n, n))
    history: list[dict[str, float]] = []

    def track(step: int, running: list[float]) -> None:
        zi, zt = model.embed(image_x[probe], text_x[probe])  # (track_n, dim) each
        history.append({"step": step, "epoch": step / per_epoch,
                        "loss": float(np.mean(running)) if running else float("nan"),
                        "align": float(align_loss(zi, zt)), "uniform": float(uniform_loss(zi))})
        if callback is not None:
            callback(step, model)

    running: list[float] = []
    track(0, running)
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            value = pair_loss(model.image(image_x[idx]), model.text(text_x[idx]), loss, temperature,
                              negatives=negatives, generator=gen)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            running.append(float(value.detach()))
            step += 1
            if step % every == 0 or step == total:
                track(step, running)
                running = []
            if step == total:
                break
    model.eval()
    return model, history


# -------------------------------------------------------------------- retrieval
def retrieval_recall(query: torch.Tensor, keys: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Cross-modal retrieval: the share of queries whose own pair is in the top ``k``.

    Row ``i`` of ``keys`` is the positive of row ``i`` of ``query``; scores are
    dot products (cosine for unit vectors). Ties count against the query (a
    key scoring exactly as high as the positive ranks ahead of it).

    Shape:
        query, keys: ``(n, d)``.

    Returns:
        ``{"recall@k": value}`` for every ``k``.
    """
    scores = query @ keys.T  # (n, n)
    pos = scores.diagonal().unsqueeze(1)  # (n, 1)
    rank = (scores >= pos).sum(dim=1) - 1  # 0 = best
    return {f"recall@{k}": float((rank < k).float().mean()) for k in ks}


# ------------------------------------------------------------------- classifier
class Classifier(nn.Module):
    """MLP ``in -> hidden (the embedding) -> n_classes`` trained with cross-entropy."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, 128), nn.ReLU(), nn.Linear(128, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(n, in_dim) -> (n, n_classes)`` logits."""
        return self.head(self.body(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden layer, L2-normalised. Shape: ``(n, hidden)``."""
        return F.normalize(self.body(x), dim=1)


def train_classifier(x: torch.Tensor, y: np.ndarray, *, hidden: int = 32, epochs: int = 30,
                     batch_size: int = 64, lr: float = 3e-3, seed: int = 0, threads: int | None = 1) -> Classifier:
    """Train a :class:`Classifier` to predict ``y`` from ``x`` (plain cross-entropy).

    Args:
        x, y: inputs and integer labels.
        hidden: size of the hidden layer used as the embedding.
        epochs, batch_size, lr: Adam training.
        seed: seed of the weights and batch order.
        threads: torch threads while training (see :func:`torch_threads`).

    Shape:
        x: ``(n, d)``; y: ``(n,)`` int labels in ``[0, n_classes)``.

    Returns:
        The model in eval mode.
    """
    with torch_threads(threads):
        return _train_classifier(x, y, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


def _train_classifier(x, y, *, hidden, epochs, batch_size, lr, seed) -> Classifier:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    target = torch.as_tensor(np.asarray(y), dtype=torch.long)
    model = Classifier(x.shape[1], int(target.max()) + 1, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for b in range(0, x.shape[0], batch_size):
            idx = order[b:b + batch_size]
            value = F.cross_entropy(model(x[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
    return model.eval()


# ----------------------------------------------------------------------- memory
def autograd_saved_bytes(fn: Callable[[], torch.Tensor]) -> dict[str, int]:
    """Measure what autograd keeps in memory for the backward pass of ``fn()``.

    Every tensor that the forward pass saves for backward goes through a
    ``torch.autograd.graph.saved_tensors_hooks`` pack hook; their storages are
    counted once each. This is the activation memory of a training step,
    measured exactly and the same on every machine (unlike the process's RSS).

    Args:
        fn: a function running a forward pass and returning a scalar loss.

    Returns:
        ``{"saved": bytes kept for backward, "n_tensors": tensors saved}``.
    """
    seen: dict[int, int] = {}
    count = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    value.backward()
    return {"saved": int(sum(seen.values())), "n_tensors": count[0]}


def autograd_saved_tensors(fn: Callable[[], torch.Tensor]) -> list[dict[str, Any]]:
    """List the distinct tensors autograd keeps for the backward pass of ``fn()``.

    The same hook as :func:`autograd_saved_bytes`, but each storage is reported
    once with what made it, so a notebook can show *which* ``N x N`` matrices a
    contrastive step keeps (for CLIP: the two log-softmax outputs, one per
    direction; the logits themselves are not kept).

    Returns:
        One dict per storage, in the order first saved: ``shape`` (tuple),
        ``bytes`` (its storage), ``made_by`` (the name of the autograd node that
        produced it, ``None`` for a leaf or an input).
    """
    rows: dict[int, dict[str, Any]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        made_by = type(t.grad_fn).__name__ if t.grad_fn is not None else None
        rows.setdefault(storage.data_ptr(), {"shape": tuple(t.shape), "bytes": storage.nbytes(),
                                             "made_by": made_by})
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    value.backward()
    return list(rows.values())


def contrastive_step_bytes(model: TwoTower, image_x: torch.Tensor, text_x: torch.Tensor,
                           temperature: float = 0.1) -> dict[str, int]:
    """Memory of one CLIP step on ``n = len(image_x)`` pairs.

    Returns:
        ``{"n": n, "saved": bytes autograd keeps, "logits": bytes of one n x n
        float32 logit matrix}``.
    """
    n = image_x.shape[0]
    out = autograd_saved_bytes(lambda: pair_loss(model.image(image_x), model.text(text_x), "clip", temperature))
    model.zero_grad(set_to_none=True)
    return {"n": n, "saved": out["saved"], "logits": n * n * 4}


def fit_memory_model(ns: Sequence[int], bytes_: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares fit ``bytes = a n^2 + b n + c`` (the logits grow as ``n^2``).

    Returns:
        ``(a, b, c)``.
    """
    n = np.asarray(ns, dtype=np.float64)
    design = np.stack([n * n, n, np.ones_like(n)], axis=1)  # (k, 3)
    coef, *_ = np.linalg.lstsq(design, np.asarray(bytes_, dtype=np.float64), rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def transformer_activation_bytes(n: float | np.ndarray, *, seq_len: int = 77, hidden: int = 768, layers: int = 12,
                                 heads: int = 12, bytes_per_value: int = 2) -> float:
    """Activation memory of a Transformer text encoder's training step on ``n`` texts.

    Per layer and sequence, ``s h (34 + 5 a s / h)`` bytes with 16-bit
    activations and no recomputation (Korthikanti et al., 2022, Eq. 1); scaled
    by ``bytes_per_value / 2`` for other precisions. The default is a BERT-base
    sized encoder on CLIP's 77-token texts.

    Returns:
        Bytes as a float (an array for an array ``n``), so ``n = 1e5`` overflows nothing.
    """
    per_layer = seq_len * hidden * (34 + 5 * heads * seq_len / hidden)
    out = np.asarray(n, dtype=np.float64) * layers * per_layer * bytes_per_value / 2
    return float(out) if out.ndim == 0 else out


def gib(x: float) -> float:
    """Bytes to GiB."""
    return x / 2**30


def temperature_sweep(image_x: torch.Tensor, text_x: torch.Tensor, eval_image: torch.Tensor,
                      eval_text: torch.Tensor, temperatures: Sequence[float], **train_kw: Any
                      ) -> list[dict[str, float]]:
    """Train one model per temperature and measure retrieval and geometry on held-out pairs.

    Args:
        image_x, text_x: training inputs.
        eval_image, eval_text: held-out inputs.
        temperatures: the values to try.
        **train_kw: passed to :func:`train_two_tower` (batch size, epochs, ...).

    Returns:
        One row per temperature: ``temperature``, ``recall@1/5/10`` (image -> text),
        ``align``, ``uniform`` (held-out image embeddings).
    """
    rows = []
    for t in temperatures:
        model, _ = train_two_tower(image_x, text_x, temperature=float(t), **train_kw)
        zi, zt = model.embed(eval_image, eval_text)
        rows.append({"temperature": float(t), **retrieval_recall(zi, zt),
                     "align": float(align_loss(zi, zt)), "uniform": float(uniform_loss(zi))})
    return rows


def negatives_sweep(image_x: torch.Tensor, text_x: torch.Tensor, eval_image: torch.Tensor,
                    eval_text: torch.Tensor, negatives: Sequence[int], *, batch_size: int = 256,
                    **train_kw: Any) -> list[dict[str, float]]:
    """Train one CLIP model per number of negatives, everything else equal.

    All runs use the same batches, steps and learning rate; only the number of
    in-batch negatives each positive is contrasted with changes
    (:func:`sampled_clip_loss`), which is what a larger batch buys.

    Returns:
        One row per value: ``negatives``, ``recall@1/5/10`` (image -> text on the
        held-out pairs), ``align`` and ``uniform`` (held-out image embeddings).
    """
    rows = []
    for k in negatives:
        model, _ = train_two_tower(image_x, text_x, batch_size=batch_size, negatives=int(k), **train_kw)
        zi, zt = model.embed(eval_image, eval_text)
        rows.append({"negatives": int(k), **retrieval_recall(zi, zt),
                     "align": float(align_loss(zi, zt)), "uniform": float(uniform_loss(zi))})
    return rows
