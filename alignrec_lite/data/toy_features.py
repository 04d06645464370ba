"""Honest hand-made content features of the toy shop: what each picture shows and what each title says.

:func:`attribute_features` needs no encoder: the image feature is the one-hot of the attributes the
picture shows (plus a little noise), the text feature the bag of words of the title. The bundled
toy folders (``datasets/``) hold exactly what :func:`write_attribute_features` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import save_npy, write_json
from ..utils import bag_of_words
from .mmrec import RecDataset, load_mmrec
from .toy import CATEGORIES, COLOURS, PATTERNS, text_vocabulary


def attribute_features(ds: RecDataset | str | Path, *, noise: float = 0.05, seed: int = 0) -> dict[str, np.ndarray]:
    """Honest hand-made content features of a toy-shop dataset (no encoder needed).

    * ``"image"``: one-hot of what the picture shows — category (6) + colour (8)
      + pattern (4) = 18 columns — plus Gaussian noise of std ``noise``.
    * ``"text"``: bag of words of the title over :func:`text_vocabulary`
      (synonyms are separate words, as a plain bag of words sees them),
      L2-normalised rows.

    Args:
        ds: a loaded toy dataset or its folder.
        noise: std of the noise added to the image one-hots.
        seed: seed of the noise.

    Returns:
        ``{"image": (n_items, 18), "text": (n_items, V)}`` float32 arrays.

    Raises:
        DataError: the dataset has no items table with the toy attribute columns.
    """
    if not isinstance(ds, RecDataset):
        ds = load_mmrec(ds, load_features=False)
    need = ("text", "category", "colour", "pattern")
    if ds.items is None or any(c not in ds.items.columns for c in need):
        raise DataError(
            "items.csv with columns text, category, colour, pattern is required",
            path=ds.path,
            fix="use a folder made by build_toy",
        )
    items = ds.items.sort_index()
    blocks = []
    for col, values in (("category", CATEGORIES), ("colour", COLOURS), ("pattern", PATTERNS)):
        idx = {v: j for j, v in enumerate(values)}
        bad = [v for v in items[col] if v not in idx]
        if bad:
            raise DataError(
                f"unknown {col} {bad[0]!r}",
                path=ds.path,
                row=f"items.csv:{col}",
                fix=f"{col} must be one of {list(values)}",
            )
        codes = items[col].map(idx).to_numpy()
        blocks.append(np.eye(len(values), dtype=np.float32)[codes])  # (n_items, n_values)
    image = np.concatenate(blocks, axis=1)  # (n_items, 18)
    image += np.random.default_rng(seed).normal(0.0, noise, size=image.shape).astype(np.float32)
    text = bag_of_words(items["text"], text_vocabulary())  # (n_items, V)
    return {"image": image.astype(np.float32), "text": text}


def write_attribute_features(folder: str | Path) -> dict[str, Path]:
    """Save :func:`attribute_features` as ``image_feat.npy`` / ``text_feat.npy`` + ``features.json``.

    Returns:
        ``{"image": path, "text": path}``.
    """
    folder = Path(folder)
    feats = attribute_features(folder)
    paths = {}
    for modality, arr in feats.items():
        paths[modality] = folder / f"{modality}_feat.npy"
        save_npy(paths[modality], arr)
    write_json(
        folder / "features.json",
        {
            "image": {
                "encoder": "toy-attributes",
                "file": "image_feat.npy",
                "dim": int(feats["image"].shape[1]),
                "description": "one-hot category+colour+pattern (what the image shows) + N(0, 0.05^2) noise",
            },
            "text": {
                "encoder": "toy-attributes",
                "file": "text_feat.npy",
                "dim": int(feats["text"].shape[1]),
                "description": "L2-normalised bag of words of the title over the toy vocabulary",
            },
        },
    )
    return paths
