"""New items without interactions: place them from their content through the model's content path.

:func:`new_item_vectors` / :func:`score_new_item` put an item with no
interactions into the model's space from its content (models with a content
path, ``model.has_content_path``: ``encode_content(features)`` of AlignRec, VBPR
and FREEDOM); with the encoders installed the content can be an image and a text
(:func:`encode_new_item`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.mmrec import RecDataset
from ..errors import ConfigError, DataError
from ..models.base import Recommender
from ..utils import as_tensor, fuse_features
from .export import final_vectors


@torch.no_grad()
def new_item_vectors(model: Recommender, features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Item vectors from content features alone, through the model's content path.

    Args:
        model: a model with ``encode_content(features) -> (m, d)`` (AlignRec, VBPR).
        features: ``(m, d_f)`` rows in the same feature space the model was trained
            on (``model.feature_source``).

    Returns:
        ``(m, d)`` vectors comparable with the model's user vectors.

    Raises:
        ConfigError: the model has no content path (BPR, LightGCN).
    """
    if not model.has_content_path:
        raise ConfigError(
            f"model {getattr(model, 'name', type(model).__name__)!r} has no content path",
            row="model",
            fix="use a content-aware model (alignrec, vbpr) for items without interactions",
        )
    x = as_tensor(features)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    model.prepare_eval()
    return model.encode_content(x.float().to(model.device)).detach().float().cpu()


def encode_new_item(
    dataset: RecDataset,
    source: str,
    *,
    image: str | Path | None = None,
    text: str | None = None,
    layout: str = "normalised",
) -> np.ndarray:
    """Encode one new item's image and/or text into the dataset's feature space.

    The towers are rebuilt from the dataset's ``features.json`` (the spec, seed and
    dimension that made ``image_feat.npy`` / ``text_feat.npy``, see
    :mod:`alignrec_lite.encoders`), so the new row is comparable with the others.
    For ``image+text`` the two blocks are L2-normalised and concatenated, then
    normalised again, as :meth:`RecDataset.feature` does.

    Args:
        dataset: the dataset the model was trained on (a folder with ``features.json``).
        source: the model's feature source: ``"image"``, ``"text"`` or ``"image+text"``.
        image: path of the new item's image (needed for an ``image`` block).
        text: the new item's text (needed for a ``text`` block).
        layout: how two blocks are joined: ``"normalised"`` (as :meth:`RecDataset.feature`)
            or ``"raw-text-first"`` (VBPR's input, as MMRec); a model's ``content_layout``.

    Returns:
        ``(1, d_f)`` float32 feature row.

    Raises:
        ConfigError: ``mm`` features (they need the stage-1 encoder: pass ``feature=``),
            a missing image/text, or features that no encoder made (the toy's attributes).
        DataError: the image cannot be read, or ``features.json`` lacks the modality.
    """
    from .. import encoders

    parts = [p for p in str(source).split("+") if p]
    if "mm" in parts or not parts:
        raise ConfigError(
            f"cannot encode a new item into the {source!r} feature space here",
            row="feature_source",
            fix="mm features come from the stage-1 encoder (alignrec_lite.ica); pass feature=...",
        )
    manifest = encoders.read_manifest(dataset.path) if dataset.path is not None else {}
    blocks = []
    for modality in parts:
        entry = manifest.get(modality)
        if not isinstance(entry, dict) or "encoder" not in entry:
            raise DataError(
                f"features.json has no encoder entry for {modality!r}",
                path=dataset.path,
                fix="extract the features with `alignrec-lite features`, or pass feature=...",
            )
        spec = str(entry["encoder"])
        try:
            tower = encoders.build_tower(
                spec, modality, seed=int(entry.get("seed") or 0), dim=int(entry.get("dim") or 128)
            )
        except ConfigError:
            raise ConfigError(
                f"the {modality} features were made by {spec!r}, which is not an encoder",
                row="feature_source",
                fix="pass the new item's feature row (feature=...)",
            ) from None
        if modality == "image":
            if image is None:
                raise ConfigError(
                    "the model uses image features but no image was given",
                    row="image",
                    fix="pass image=<path to the picture>",
                )
            vec, missing = encoders.encode_images(tower, [Path(image)])
            if missing[0]:
                raise DataError("the image cannot be read", path=image, fix="pass a JPEG or PNG file")
        else:
            if not text:
                raise ConfigError(
                    "the model uses text features but no text was given",
                    row="text",
                    fix="pass text='<title and description>'",
                )
            vec = encoders.encode_texts(tower, [text])
        blocks.append(np.asarray(vec, dtype=np.float32))
    if len(blocks) == 1:
        return blocks[0]
    if layout == "raw-text-first":
        order = sorted(range(len(parts)), key=lambda j: 0 if parts[j] == "text" else 1)
        return np.concatenate([blocks[j] for j in order], axis=1).astype(np.float32)
    return fuse_features(blocks)


def score_new_item(
    model: Recommender,
    dataset: RecDataset,
    *,
    feature: np.ndarray | None = None,
    image: str | Path | None = None,
    text: str | None = None,
    k: int = 10,
) -> dict[str, pd.DataFrame]:
    """Who would like a brand-new item, and which existing items it resembles.

    Args:
        model: a model with a content path (``model.has_content_path``).
        dataset: its dataset.
        feature: the new item's content feature row ``(d_f,)`` in the model's
            feature space; or give ``image`` and/or ``text`` to encode it.
        image, text: raw content (needs :mod:`alignrec_lite.encoders`).
        k: rows in each table.

    Returns:
        ``{"users": top-k users by score (userID, user, score),
        "similar_items": top-k items by cosine of the model's item vectors (itemID, item, cosine)}``.
    """
    if feature is None:
        if image is None and text is None:
            raise ConfigError("nothing to score", row="feature", fix="pass feature=..., or image= and/or text=")
        feature = encode_new_item(
            dataset,
            getattr(model, "feature_source", "auto") or "auto",
            image=image,
            text=text,
            layout=getattr(model, "content_layout", "normalised"),
        )
    vec = new_item_vectors(model, feature)[0]  # (d,)
    user_e, item_e = final_vectors(model)
    s = user_e @ vec  # (n_users,)
    top_u = torch.topk(s, min(k, len(s))).indices.numpy()
    cos = torch.nn.functional.cosine_similarity(item_e, vec.unsqueeze(0), dim=1)  # (n_items,)
    top_i = torch.topk(cos, min(k, len(cos))).indices.numpy()
    return {
        "users": pd.DataFrame(
            {"userID": top_u, "user": np.asarray(dataset.raw_user_id(top_u), dtype=object), "score": s[top_u].numpy()}
        ),
        "similar_items": pd.DataFrame(
            {
                "itemID": top_i,
                "item": np.asarray(dataset.raw_item_id(top_i), dtype=object),
                "cosine": cos[top_i].numpy(),
            }
        ),
    }


__all__ = ["new_item_vectors", "encode_new_item", "score_new_item"]
