"""Feature extraction: run the towers over a dataset folder, with a per-chunk shard cache."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.mmrec import RecDataset, load_mmrec
from ..data.mmrec_files import FEATURE_FILES
from ..errors import ConfigError, DataError
from ..files import save_npy, sha256_file, write_json
from ..utils import get_device
from .manifest import (
    content_fingerprint,
    encoder_identity,
    library_versions,
    read_manifest,
    update_manifest,
)
from .towers import EncoderTower, ImageTower, TextTower, build_tower

CACHE_DIR = ".cache"


def load_image(path: Path | None) -> Any | None:
    """Open an image as RGB, or ``None`` when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        return None
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # counted and reported as a missing image (features.json), never a crash


def precision_context(device: torch.device, precision: str):
    """The context a forward pass runs in: nothing for ``"fp32"``, ``torch.autocast`` for ``"amp"``.

    ``"amp"`` is bfloat16 on a CPU and float16 on a GPU.

    Raises:
        ConfigError: unknown precision.
    """
    if precision == "fp32":
        return nullcontext()
    if precision == "amp":
        dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    raise ConfigError(f"unknown precision {precision!r}", row="--precision", fix="use fp32 or amp")


@torch.no_grad()
def encode_images(
    tower: ImageTower,
    paths: Sequence[Path | None],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """Encode images; unreadable or missing ones give a NaN row.

    Returns:
        ``(vectors (n, dim) float32 with NaN rows for missing images, missing mask (n,) bool)``.
    """
    device = torch.device(device)
    out = np.full((len(paths), tower.dim), np.nan, dtype=np.float32)
    missing = np.zeros(len(paths), dtype=bool)
    for start in range(0, len(paths), batch_size):
        pix, rows = [], []
        for j, p in enumerate(paths[start : start + batch_size]):
            im = load_image(p)
            if im is None:
                missing[start + j] = True
                continue
            pix.append(tower.preprocess(im))
            rows.append(start + j)
        if pix:
            with precision_context(device, precision):
                vec = tower(torch.stack(pix).to(device))  # (b, dim)
            out[rows] = vec.float().cpu().numpy()
    return out, missing


@torch.no_grad()
def encode_texts(
    tower: TextTower,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> np.ndarray:
    """Encode texts in batches.

    Shape:
        returns ``(len(texts), dim)`` float32.

    >>> t = MiniLMText()                                    # doctest: +SKIP
    >>> encode_texts(t, ["a red mug", "a blue hat"]).shape  # doctest: +SKIP
    (2, 384)
    """
    device = torch.device(device)
    out = np.zeros((len(texts), tower.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        tok = {k: v.to(device) for k, v in tower.tokenize(texts[start : start + batch_size]).items()}
        with precision_context(device, precision):
            out[start : start + batch_size] = tower(tok).float().cpu().numpy()
    return out


def _guard_mixing(folder: Path, modality: str, ident: dict, overwrite: bool) -> bool:
    """Refuse to replace a feature made by another encoder; return True when it is already up to date."""
    fname = FEATURE_FILES[modality]
    entry = read_manifest(folder).get(modality)
    exists = (folder / fname).exists()
    if overwrite or (entry is None and not exists):
        return False
    if entry is None:
        raise DataError(
            f"{fname} already exists and features.json does not say which encoder made it",
            path=folder / fname,
            fix="pass --overwrite (overwrite=True) to replace it, or extract into another folder",
        )
    if encoder_identity(entry) != ident:
        old = encoder_identity(entry)
        diff = ", ".join(f"{k} {old[k]!r} -> {ident[k]!r}" for k in ident if old[k] != ident[k])
        raise DataError(
            f"{fname} was made by another encoder ({diff}); refusing to mix encoders in one folder",
            path=folder / fname,
            fix="pass --overwrite (overwrite=True) to replace it, or extract into another folder",
        )
    return exists and entry.get("sha256") == sha256_file(folder / fname)


def _cache_key(desc: dict, fingerprint: str, chunk_size: int, precision: str) -> str:
    blob = json.dumps(
        {"tower": desc, "content": fingerprint, "chunk": chunk_size, "precision": precision}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _extract_one(
    ds: RecDataset,
    tower: EncoderTower,
    folder: Path,
    *,
    batch_size: int,
    device: torch.device,
    chunk_size: int,
    precision: str,
    progress: bool,
    keep_cache: bool,
) -> dict:
    """Extract one modality with per-chunk shards under ``.cache/features/``; return its manifest entry."""
    from tqdm.auto import tqdm

    modality = tower.modality
    desc = tower.describe()
    key = _cache_key(desc, content_fingerprint(ds, modality), chunk_size, precision)
    cache = folder / CACHE_DIR / "features" / f"{modality}-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    write_json(cache / "meta.json", {"tower": desc, "chunk_size": chunk_size, "n_items": ds.n_items})
    n_chunks = math.ceil(ds.n_items / chunk_size)
    done = [c for c in range(n_chunks) if (cache / f"{c:06d}.npy").exists()]
    n_done = sum(min(chunk_size, ds.n_items - c * chunk_size) for c in done)
    bar = tqdm(
        total=ds.n_items,
        initial=n_done,
        disable=not progress,
        desc=f"{modality} features ({tower.spec})",
        unit="item",
        dynamic_ncols=True,
    )
    tower.to(device).eval()
    t0, n_new = time.perf_counter(), 0
    for c in range(n_chunks):
        shard = cache / f"{c:06d}.npy"
        if shard.exists():
            continue
        items = range(c * chunk_size, min(ds.n_items, (c + 1) * chunk_size))
        if modality == "image":
            vec, miss = encode_images(
                tower, [ds.image_path(i) for i in items], batch_size=batch_size, device=device, precision=precision
            )  # (c, dim)
            save_npy(cache / f"{c:06d}.missing.npy", miss.astype(np.uint8))
        else:
            vec = encode_texts(
                tower, [ds.item_text(i) for i in items], batch_size=batch_size, device=device, precision=precision
            )  # (c, dim)
        save_npy(shard, vec)  # the shard last: its presence means the chunk is complete
        n_new += len(items)
        bar.update(len(items))
    bar.close()
    seconds = time.perf_counter() - t0
    feats = np.concatenate([np.load(cache / f"{c:06d}.npy", allow_pickle=False) for c in range(n_chunks)])
    missing = np.zeros(ds.n_items, dtype=bool)
    if modality == "image":
        missing = np.concatenate(
            [np.load(cache / f"{c:06d}.missing.npy", allow_pickle=False).astype(bool) for c in range(n_chunks)]
        )
        if missing.all():
            raise DataError(
                "no item image could be read",
                path=folder,
                fix="check the `image` column of items.csv and the image files",
            )
        feats[missing] = feats[~missing].mean(axis=0)  # MMRec: missing image -> mean vector
    out = folder / FEATURE_FILES[modality]
    save_npy(out, feats.astype(np.float32))
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    entry = {
        **desc,
        "file": FEATURE_FILES[modality],
        "shape": [int(ds.n_items), int(feats.shape[1])],
        "sha256": sha256_file(out),
        "precision": precision,
        "rows": "itemID",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "seconds": round(seconds, 3),
        "items_encoded_this_run": n_new,
        "items_per_second": round(n_new / seconds, 2) if n_new and seconds > 0 else None,
        "versions": library_versions(),
    }
    if modality == "image":
        entry["missing_images"] = int(missing.sum())
        entry["missing_images_fill"] = "mean of the other items' vectors (MMRec)"
        entry["missing_image_items"] = np.flatnonzero(missing)[:20].tolist()
    return entry


def _check_extraction_memory(
    ds: RecDataset, towers: Sequence[EncoderTower], batch_size: int, given: Sequence[EncoderTower] = ()
) -> None:
    """Refuse before any work when one batch through a tower and the finished matrix cannot fit.

    One item is run through each tower (eval mode, no gradients, random state kept) to
    measure its largest layer output; texts are probed with the longest one. A tower the
    caller built (``given``) is probed on a copy, so that its own forward is never called
    for the probe.
    """
    import copy

    from ..checks import WORKING_MEMORY, activation_bytes, check_batched_memory, estimate_extraction_bytes

    for tower in towers:
        probed = copy.deepcopy(tower) if any(tower is t for t in given) else tower
        if tower.modality == "image":
            s = int(getattr(tower, "image_size", 64))
            probe: Any = torch.zeros(1, 3, s, s, device=tower.device)
            input_bytes = 4.0 * 3 * s * s
        else:
            longest = max((ds.item_text(i) for i in range(ds.n_items)), key=len, default="")
            probe = {k: v.to(tower.device) for k, v in tower.tokenize([longest]).items()}
            input_bytes = float(sum(v.numel() * v.element_size() for v in probe.values()))
        _, largest = activation_bytes(probed, probe)
        need = estimate_extraction_bytes(
            ds.n_items, tower.dim, batch_size, input_bytes=input_bytes, largest_layer_bytes=largest
        )
        batch_part = need - WORKING_MEMORY - 3.0 * 4 * ds.n_items * tower.dim
        check_batched_memory(
            need,
            batch_part,
            f"extracting {tower.modality} features of {ds.n_items:,} items with {tower.spec} "
            f"in batches of {batch_size}",
            batch_size=batch_size,
            more="or free some",
        )


def extract_features(
    folder: str | Path,
    image_encoder: str | ImageTower | None = "tiny-cnn",
    text_encoder: str | TextTower | None = "minilm",
    *,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    chunk_size: int = 256,
    seed: int = 0,
    precision: str = "fp32",
    keep_cache: bool = False,
) -> dict:
    """Write ``image_feat.npy`` / ``text_feat.npy`` (row i = itemID i) and the ``features.json`` manifest.

    Items are encoded in chunks of ``chunk_size``; each finished chunk is saved as a
    shard under ``DIR/.cache/features/<modality>-<key>/`` (the key hashes the
    encoder, its weights, the preprocessing and the items' content). An interrupted
    run therefore resumes where it stopped and produces identical files. A
    missing or unreadable image gets the mean vector of the other items (MMRec's
    rule) and is counted in the manifest. A modality whose file and manifest
    already match the encoder is skipped.

    Args:
        folder: an MMRec dataset folder with ``items.csv`` (columns ``text``, ``image``).
        image_encoder: a spec (``"tiny-cnn"``, ``"openclip:ViT-B-32@openai"``, ...), a
            built :class:`ImageTower`, or ``None`` to skip images.
        text_encoder: a spec (``"minilm"``, ...), a :class:`TextTower`, or ``None``.
        batch_size: items per forward pass.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (through :func:`~alignrec_lite.utils.get_device`).
        progress: show ``tqdm.auto`` bars.
        overwrite: replace features made by another encoder (otherwise a DataError).
        chunk_size: items per cached shard.
        seed: torch seed of random tower weights.
        precision: ``"fp32"`` or ``"amp"`` (autocast; bfloat16 on CPU, float16 on GPU).
        keep_cache: keep the shards after the files are written.

    Returns:
        The manifest (``features.json`` content) after the run.

    Raises:
        DataError: no items table, no readable image, or features from another
            encoder already in the folder (fix: ``overwrite=True`` or another folder).
        ConfigError, DownloadError: from building the towers.
    """
    from ..checks import check_int

    # -1 replaced good features with NaN images and zero texts and updated the manifest
    batch_size = check_int(batch_size, "--batch-size", 1, 65536, example=64)
    folder = Path(folder)
    from .stage1 import finish_mm_commit  # (stage1 imports this module)

    finish_mm_commit(folder)  # a stage-1 commit that a kill interrupted would later replace features.json
    ds = load_mmrec(folder, load_features=False)
    if ds.items is None:
        raise DataError(
            "the folder has no items.csv (raw text and image paths per item)",
            path=folder,
            fix="build the dataset with `alignrec-lite data build ...`, which writes items.csv",
        )
    if image_encoder is None and text_encoder is None:
        raise ConfigError(
            "nothing to extract: both encoders are None",
            row="encoder",
            fix="pass --image-encoder and/or --text-encoder",
        )
    dev = get_device(device)
    cache: dict = {}
    towers: list[EncoderTower] = []
    for enc, modality in ((image_encoder, "image"), (text_encoder, "text")):
        if enc is None:
            continue
        if modality == "image" and "image" not in ds.items.columns:
            raise DataError(
                "items.csv has no `image` column",
                path=folder / "items.csv",
                fix="drop --image-encoder or rebuild the dataset with images",
            )
        tower = enc if isinstance(enc, EncoderTower) else build_tower(enc, modality, seed=seed, clip_cache=cache)
        if tower.modality != modality:
            raise ConfigError(
                f"{tower.spec!r} is a {tower.modality} encoder",
                row=f"--{modality}-encoder",
                fix=f"pass a {modality} encoder",
            )
        towers.append(tower)
    todo = []
    for tower in towers:  # check every modality before spending time on any
        if not _guard_mixing(folder, tower.modality, encoder_identity(tower.describe()), overwrite) or overwrite:
            todo.append(tower)  # (else: already extracted with this very encoder)
    given = [t for t in (image_encoder, text_encoder) if isinstance(t, EncoderTower)]
    _check_extraction_memory(ds, todo, batch_size, given)
    for tower in todo:
        entry = _extract_one(
            ds,
            tower,
            folder,
            batch_size=batch_size,
            device=dev,
            chunk_size=chunk_size,
            precision=precision,
            progress=progress,
            keep_cache=keep_cache,
        )
        update_manifest(folder, tower.modality, entry)
    return read_manifest(folder)
