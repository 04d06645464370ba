"""New items without interactions: place them from their content through the model's content path.

:func:`new_item_vectors` / :func:`score_new_item` put an item with no
interactions into the model's space from its content (models with a content
path, ``model.has_content_path``: ``encode_content(features)`` of AlignRec, VBPR
and FREEDOM); with the encoders installed the content can be an image and a text
(:func:`encode_new_item`), also for stage 1's fused ``mm`` feature: the trained
stage-1 encoder of the working copy (its ``run/last.pt``) is reloaded once per
process and encodes the new item as it encoded the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

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


#: Loaded stage-1 encoders, by (checkpoint path, mtime, size, the mm file's recorded sha256): loading
#: one reads its weights (and MiniLM's) from disk, seconds from a cold process; encoding an item then
#: takes milliseconds.
_STAGE1_ENCODERS: dict[tuple[str, int, int, str], Callable[[Any, str | None], np.ndarray]] = {}


def stage1_item_encoder(dataset: RecDataset) -> Callable[[Any, str | None], np.ndarray]:
    """The trained stage-1 encoder behind a working copy's ``mm_feat.npy``, as ``f(image, text) -> (1, e)``.

    ``features.json``'s ``mm`` entry names the encoder (``mmenc-ica``: :mod:`alignrec_lite.ica`;
    ``multiway-mmm``: :mod:`alignrec_lite.multiway`); its checkpoint is the copy's ``run/last.pt``
    (or the ``run_dir`` the entry recorded). Loaded once per process and checkpoint version, and
    checked on load: it must give back item 0's stored row, so a retrained encoder never encodes
    new items into an older feature space.

    Args:
        dataset: a stage-1 working copy (``open_stage1``) or a folder ``alignrec-lite pretrain-ica`` wrote.

    Returns:
        ``f(image, text)``: an RGB PIL image or ``None``, a text or ``None`` -> the ``(1, e)`` float32 row.

    Raises:
        DataError: no ``mm`` entry in ``features.json``, an encoder the kit cannot rerun, no checkpoint,
            or a checkpoint that does not reproduce the stored features.
    """
    from .. import encoders

    folder = Path(dataset.path) if dataset.path is not None else None
    entry = (encoders.read_manifest(folder) if folder is not None else {}).get("mm")
    where = folder / "features.json" if folder is not None else None
    if not isinstance(entry, dict) or "encoder" not in entry:
        raise DataError(
            "features.json has no entry for the mm feature, so no encoder is known to have made it",
            path=where,
            fix="run stage 1 (`alignrec-lite pretrain-ica DIR`), or pass the new item's feature row (feature=...)",
        )
    name = str(entry["encoder"])
    if name not in ("mmenc-ica", "multiway-mmm"):
        raise DataError(
            f"the mm feature was made by {name!r}, which the kit cannot rerun on a new item",
            path=where,
            fix="pass the new item's feature row (feature=...)",
        )
    run = folder / "run"
    if not (run / "last.pt").is_file() and entry.get("run_dir"):
        run = Path(str(entry["run_dir"]))
    ckpt = run / "last.pt"
    if not ckpt.is_file():
        raise DataError(
            "stage 1's encoder checkpoint is missing, so a new item cannot be encoded like the others",
            path=ckpt,
            fix="rerun stage 1 on this folder (its run/ keeps the checkpoint), or pass feature=...",
        )
    stat = ckpt.stat()
    key = (str(ckpt.resolve()), stat.st_mtime_ns, stat.st_size, str(entry.get("sha256")))
    if key not in _STAGE1_ENCODERS:
        encode: Callable[[Any, str | None], np.ndarray]
        if name == "mmenc-ica":
            from ..ica import encode_new_item as encode_ica
            from ..ica import load_mmenc

            model, _ = load_mmenc(run)
            encode = partial(encode_ica, model)
        else:
            from ..multiway import encode_new_item as encode_mw
            from ..multiway import load_multiway, title_tokenizer

            mw_model, cfg, vocab = load_multiway(run)
            encode = partial(encode_mw, mw_model, cfg, vocab, tokenizer=title_tokenizer(cfg, vocab))
        _check_reproduces(dataset, encode, ckpt)
        _STAGE1_ENCODERS[key] = encode
    return _STAGE1_ENCODERS[key]


def _check_reproduces(dataset: RecDataset, encode: Callable[[Any, str | None], np.ndarray], ckpt: Path) -> None:
    """Refuse a checkpoint that does not give back item 0's stored ``mm`` row (a retrained or foreign encoder)."""
    from ..encoders import load_image

    stored = dataset.features.get("mm")
    if stored is None:
        stored = np.load(Path(dataset.path) / "mm_feat.npy", mmap_mode="r")
    row = encode(load_image(dataset.image_path(0)), dataset.item_text(0))
    gap = float(np.abs(row[0] - np.asarray(stored[0], dtype=np.float32)).max())
    if not gap <= 1e-4:
        raise DataError(
            f"stage 1's checkpoint does not reproduce this folder's mm feature (item 0 differs by {gap:.2g}): "
            "the encoder was retrained, or the features come from another run",
            path=ckpt,
            fix="rerun stage 1 on this folder so features and checkpoint match, or pass feature=...",
        )


def _encode_mm(dataset: RecDataset, image: str | Path | None, text: str | None) -> np.ndarray:
    """A new item's stage-1 ``mm`` row from its picture and/or text (see :func:`stage1_item_encoder`)."""
    from ..encoders import load_image

    text = text if text and text.strip() else None  # a blank text counts as no text
    if image is None and text is None:
        raise ConfigError(
            "the model reads stage 1's mm feature, which needs the new item's image or text",
            row="image/text",
            fix="pass image=<path to the picture> and/or text='<title and description>'",
        )
    encode = stage1_item_encoder(dataset)
    picture = None
    if image is not None:
        picture = load_image(Path(image))
        if picture is None:
            raise DataError("the image cannot be read", path=image, fix="pass a JPEG or PNG file")
    return np.asarray(encode(picture, text), dtype=np.float32)


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
    normalised again, as :meth:`RecDataset.feature` does. For ``mm`` (stage 1's fused
    feature) the working copy's trained stage-1 encoder encodes the picture and/or text
    (:func:`stage1_item_encoder`); a missing one is predicted from the other, as stage 1
    does for an item without a readable image.

    Args:
        dataset: the dataset the model was trained on (a folder with ``features.json``).
        source: the model's feature source: ``"image"``, ``"text"``, ``"image+text"`` or ``"mm"``.
        image: path of the new item's image (needed for an ``image`` block).
        text: the new item's text (needed for a ``text`` block).
        layout: how two blocks are joined: ``"normalised"`` (as :meth:`RecDataset.feature`)
            or ``"raw-text-first"`` (VBPR's input, as MMRec); a model's ``content_layout``.

    Returns:
        ``(1, d_f)`` float32 feature row.

    Raises:
        ConfigError: a missing image/text, ``mm`` mixed with another block, or features that
            no encoder made (the toy's attributes).
        DataError: the image cannot be read, ``features.json`` lacks the modality, or (``mm``)
            stage 1's checkpoint is missing.
    """
    from .. import encoders

    parts = [p for p in str(source).split("+") if p]
    if parts == ["mm"]:
        return _encode_mm(dataset, image, text)
    if "mm" in parts or not parts:
        raise ConfigError(
            f"cannot encode a new item into the {source!r} feature space here",
            row="feature_source",
            fix="use the image, text, image+text or mm feature, or pass feature=...",
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


__all__ = ["new_item_vectors", "encode_new_item", "score_new_item", "stage1_item_encoder"]
