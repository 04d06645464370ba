"""A cross-entropy classifier whose hidden layer is used as an embedding (the "trained for
classification" counterpart of the contrastive encoders, notebook 01)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .contrastive import torch_threads


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


def train_classifier(
    x: torch.Tensor,
    y: np.ndarray,
    *,
    hidden: int = 32,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int | None = 1,
) -> Classifier:
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
            idx = order[b : b + batch_size]
            value = F.cross_entropy(model(x[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
    return model.eval()
