"""Static word vectors learned from a small corpus: the "first wave" of embeddings.

word2vec (Mikolov et al., 2013) and GloVe (Pennington et al., 2014) give every
word one fixed vector learned from which words appear together. Levy & Goldberg
(NeurIPS 2014) showed that skip-gram with negative sampling implicitly
factorises a shifted PMI matrix, so the classic count-based recipe below is a
faithful small stand-in:

1. count how often two words share a text (here: a product title),
2. turn counts into positive pointwise mutual information,
   ``PPMI(w, c) = max(0, log p(w, c) / (p(w) p(c)))``,
3. keep the top ``dim`` singular directions: ``W = U_d sqrt(S_d)``.

A text's vector is the mean of its words' vectors, L2-normalised. Words never
seen in training have no vector (they are ignored), and every occurrence of a
word gets the same vector whatever its context — the two limits that contextual
encoders such as MiniLM remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..utils import l2_normalise_rows, tokenize


def ppmi_matrix(counts: np.ndarray) -> np.ndarray:
    """Positive pointwise mutual information of a symmetric co-occurrence matrix.

    Shape:
        counts: ``(V, V)``; returns ``(V, V)`` float64 (zero where the count is zero).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros_like(counts)
    p_word = counts.sum(axis=1) / total  # (V,)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts / total) - np.log(np.outer(p_word, p_word))  # (V, V)
    pmi[~np.isfinite(pmi)] = 0.0
    return np.maximum(pmi, 0.0)


@dataclass
class StaticWordVectors:
    """One fixed vector per word, from PPMI + truncated SVD of title co-occurrences.

    Attributes:
        vocab: the words, in row order of :attr:`vectors`.
        vectors: ``(V, dim)`` word vectors.
    """

    vocab: list[str]
    vectors: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str], dim: int = 16, min_count: int = 1) -> StaticWordVectors:
        """Learn word vectors from ``texts`` (each text is one context window).

        Args:
            texts: the corpus (e.g. every item title of a shop).
            dim: vector size (at most the vocabulary size).
            min_count: drop words seen fewer times.

        Returns:
            The fitted model.

        Raises:
            ConfigError: no word survives ``min_count`` or ``dim < 1``.
        """
        docs = [tokenize(t) for t in texts]
        freq: dict[str, int] = {}
        for doc in docs:
            for w in doc:
                freq[w] = freq.get(w, 0) + 1
        vocab = sorted(w for w, c in freq.items() if c >= min_count)
        if not vocab or dim < 1:
            raise ConfigError(
                "no vocabulary to learn from (or dim < 1)",
                row="texts",
                fix="pass non-empty texts, lower min_count, use dim >= 1",
            )
        index = {w: j for j, w in enumerate(vocab)}
        counts = np.zeros((len(vocab), len(vocab)))  # (V, V)
        for doc in docs:
            ids = sorted({index[w] for w in doc if w in index})
            for a in ids:
                for b in ids:
                    if a != b:
                        counts[a, b] += 1.0
        u, s, _ = np.linalg.svd(ppmi_matrix(counts))  # u: (V, V)
        d = min(dim, len(vocab))
        return cls(vocab, (u[:, :d] * np.sqrt(s[:d])).astype(np.float32))  # (V, d)

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self.vectors.shape[1])

    def _row(self, word: str) -> int:
        try:
            return self.vocab.index(word.lower())
        except ValueError:
            raise KeyError(f"{word!r} was not in the training texts") from None

    def word_vector(self, word: str) -> np.ndarray:
        """The vector of one word. Raises ``KeyError`` for an unknown word."""
        return self.vectors[self._row(word)]

    def most_similar(self, word: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` words with the highest cosine similarity to ``word`` (``KeyError`` if unknown)."""
        w = l2_normalise_rows(self.vectors)
        j = self._row(word)
        sims = w @ w[j]  # (V,)
        order = [i for i in np.argsort(-sims, kind="stable") if i != j][:k]
        return [(self.vocab[i], float(sims[i])) for i in order]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean word vector of each text, L2-normalised (zeros when no word is known).

        Shape:
            returns ``(len(texts), dim)`` float32.
        """
        index = {w: j for j, w in enumerate(self.vocab)}
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, text in enumerate(texts):
            ids = [index[w] for w in tokenize(text) if w in index]
            if ids:
                out[r] = self.vectors[ids].mean(axis=0)
        return l2_normalise_rows(out)
