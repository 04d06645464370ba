"""Small contrastive encoders for the teaching notebooks (02 and 03).

A two-tower model learns one vector per image and one per title so that the
pair that belongs together scores higher than every other pair in the batch:
CLIP's symmetric InfoNCE over an ``N x N`` logit matrix (Radford et al., ICML
2021, Fig. 3), or Wang & Isola's alignment + uniformity objective (ICML 2020,
Eq. 4-6). Everything here is deliberately tiny (two-layer MLP towers on 32x32
pixels and on a bag of words) so that a 2-core CPU trains it in seconds; the
real image and text towers live in :mod:`alignrec_lite.encoders`.

Also here: retrieval recall and the sweeps over temperature and number of negatives.
The training pairs come from :mod:`.pair_data`, the classifier counterpart from
:mod:`.classifier`, the memory of a contrastive step from :mod:`.memory`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import align_loss, clip_loss, info_nce, uniform_loss

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


class MLPTower(nn.Module):
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

    def __init__(self, image_dim: int, text_dim: int, dim: int = 32, hidden: int = 64, shared: bool = False) -> None:
        super().__init__()
        if shared and image_dim != text_dim:
            raise ConfigError(
                f"a shared tower needs inputs of one size, got {image_dim} and {text_dim}",
                row="shared",
                fix="pass two views of the same kind of input",
            )
        self.image = MLPTower(image_dim, dim, hidden)
        self.text = self.image if shared else MLPTower(text_dim, dim, hidden)

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


def sampled_clip_loss(
    img: torch.Tensor, txt: torch.Tensor, temperature: float, negatives: int, generator: torch.Generator | None = None
) -> torch.Tensor:
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


def pair_loss(
    img: torch.Tensor,
    txt: torch.Tensor,
    loss: str,
    temperature: float,
    unif_weight: float = 1.0,
    negatives: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
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
        raise ConfigError(
            f"batch_size must be in [2, {n}], got {batch_size}",
            row="batch_size",
            fix="use a smaller batch or more pairs",
        )
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}", row="temperature", fix="use e.g. 0.1")
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}", row="loss", fix=f"use one of {list(LOSSES)}")
    with torch_threads(threads):
        return _train_two_tower(
            image_x,
            text_x,
            dim=dim,
            loss=loss,
            temperature=temperature,
            batch_size=batch_size,
            epochs=epochs,
            steps=steps,
            negatives=negatives,
            lr=lr,
            hidden=hidden,
            shared=shared,
            seed=seed,
            track_every=track_every,
            track_n=track_n,
            callback=callback,
        )


def _train_two_tower(
    image_x,
    text_x,
    *,
    dim,
    loss,
    temperature,
    batch_size,
    epochs,
    steps,
    negatives,
    lr,
    hidden,
    shared,
    seed,
    track_every,
    track_n,
    callback,
):
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
        history.append(
            {
                "step": step,
                "epoch": step / per_epoch,
                "loss": float(np.mean(running)) if running else float("nan"),
                "align": float(align_loss(zi, zt)),
                "uniform": float(uniform_loss(zi)),
            }
        )
        if callback is not None:
            callback(step, model)

    running: list[float] = []
    track(0, running)
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            value = pair_loss(
                model.image(image_x[idx]),
                model.text(text_x[idx]),
                loss,
                temperature,
                negatives=negatives,
                generator=gen,
            )
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


def held_out_scores(model: TwoTower, eval_image: torch.Tensor, eval_text: torch.Tensor) -> dict[str, float]:
    """What the sweeps report of one trained model on held-out pairs.

    Returns:
        ``recall@1/5/10`` (image -> text, :func:`retrieval_recall`), ``align`` and ``uniform``
        (of the held-out image embeddings).
    """
    zi, zt = model.embed(eval_image, eval_text)
    return {**retrieval_recall(zi, zt), "align": float(align_loss(zi, zt)), "uniform": float(uniform_loss(zi))}


def temperature_sweep(
    image_x: torch.Tensor,
    text_x: torch.Tensor,
    eval_image: torch.Tensor,
    eval_text: torch.Tensor,
    temperatures: Sequence[float],
    **train_kw: Any,
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
        rows.append({"temperature": float(t), **held_out_scores(model, eval_image, eval_text)})
    return rows


def negatives_sweep(
    image_x: torch.Tensor,
    text_x: torch.Tensor,
    eval_image: torch.Tensor,
    eval_text: torch.Tensor,
    negatives: Sequence[int],
    *,
    batch_size: int = 256,
    **train_kw: Any,
) -> list[dict[str, float]]:
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
        rows.append({"negatives": int(k), **held_out_scores(model, eval_image, eval_text)})
    return rows
