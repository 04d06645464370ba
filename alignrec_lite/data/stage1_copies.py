"""Stage-1 features for a dataset: working copies whose content feature is one stage-1 encoder's output.

:func:`open_stage1` opens a dataset (any name or folder :func:`~alignrec_lite.data.catalog.resolve_dataset`
knows) whose content feature is that of one of :data:`STAGE1_FEATURES`, computed once into a working copy
under the cache (never into the source folder), with its manifests, and reused afterwards. This is how
notebooks 04-08 hand stage 1's output to stage 2.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..errors import ConfigError, DataError
from ..files import read_json, write_json
from .catalog import resolve_dataset
from .mmrec import RecDataset, load_mmrec

#: The stage-1 features :func:`open_stage1` gives a dataset, and what each is.
STAGE1_FEATURES = {
    "oracle": "the toy shop's bundled attribute features (category, colour and pattern one-hots + the title's "
    "bag of words): they encode the generator's ground truth",
    "concat": "tiny-cnn image tower (random weights) + MiniLM text, each L2-normalised, concatenated",
    "ica": "the two-tower ICA stand-in (alignrec_lite.ica.pretrain_ica): mm_feat.npy, beside the concat "
    "copy's raw image_feat.npy / text_feat.npy for the models that read them (VBPR, FREEDOM)",
    "multiway": "the Multiway Transformer pre-trained by masked modelling "
    "(alignrec_lite.multiway.pretrain_multiway): mm_feat.npy, beside the raw tiny-cnn / MiniLM features",
}
#: What the ``ica`` and ``multiway`` copies hold as raw ``image_feat.npy`` / ``text_feat.npy`` (never the
#: source's: on the toy shop those are the oracle attributes): the ``concat`` towers.
STAGE1_RAW_ENCODERS = ("tiny-cnn", "minilm")
#: Bumped when the layout of a working copy changes, so that older copies are not reused.
STAGE1_LAYOUT = 2
#: The folder (under the cache) that :func:`open_stage1` writes its working copies into.
STAGE1_FOLDER = "stage1"
#: The file that marks a finished working copy of :func:`open_stage1` (its provenance).
STAGE1_MANIFEST = "stage1.json"


def stage1_settings(stage1: str, *, smoke: bool = False, seed: int = 0, device: str = "auto") -> dict:
    """The default settings :func:`open_stage1` computes a stage-1 feature with.

    Args:
        stage1: one of :data:`STAGE1_FEATURES`.
        smoke: SMOKE sizes (seconds on the SMOKE toy shop): ICA 3 epochs of batch 32; Multiway width 48,
            64 visual tokens, 2 epochs. The ``concat`` towers are the same in both. The full sizes are
            notebook 04's: ICA 15 epochs of batch 128, Multiway width 96, 256 visual tokens, 10 epochs.
        seed: the encoder's seed (tower weights, batches, masks).
        device: where the encoder runs (not part of the cache key).

    Returns:
        ``{}`` for ``"oracle"``; ``{"image_encoder", "text_encoder", "seed", "device"}`` for ``"concat"``;
        the :class:`~alignrec_lite.ica.ICAConfig` / :class:`~alignrec_lite.multiway.MultiwayConfig`
        fields otherwise.

    Raises:
        ConfigError: an unknown ``stage1``.
    """
    from dataclasses import asdict

    _check_stage1(stage1)
    if stage1 == "oracle":
        return {}
    if stage1 == "concat":
        image, text = STAGE1_RAW_ENCODERS
        return {"image_encoder": image, "text_encoder": text, "seed": seed, "device": device}
    if stage1 == "ica":
        from ..ica import ICAConfig

        sizes = {"epochs": 3, "batch_size": 32} if smoke else {"epochs": 15, "batch_size": 128}
        return asdict(ICAConfig(seed=seed, device=device, **sizes))
    from ..multiway import MultiwayConfig

    small = {"dim": 48, "codebook_size": 64, "epochs": 2} if smoke else {}
    return asdict(MultiwayConfig(seed=seed, device=device, **small))


def _check_stage1(stage1: str) -> None:
    if stage1 not in STAGE1_FEATURES:
        raise ConfigError(
            f"unknown stage-1 feature {stage1!r}", row="stage1", fix=f"use one of {', '.join(STAGE1_FEATURES)}"
        )


def _source_hash(folder: Path) -> str:
    """SHA-256 of what a working copy takes from its source: the interactions and the items table."""
    h = hashlib.sha256(str(folder.resolve()).encode() + b"\x00")
    for f in sorted(folder.glob("*.inter")) + [folder / "items.csv"]:
        if f.exists():
            h.update(f.name.encode() + b"\x00" + f.read_bytes())
    return h.hexdigest()


def stage1_folder(source: str | Path, stage1: str, settings: dict, *, cache: str | Path | None = None) -> Path:
    """Where :func:`open_stage1` keeps a stage-1 working copy.

    ``<cache>/stage1/<dataset>-<source hash>/<stage1>-<settings hash>``: the source hash covers the
    source folder's path, interactions and items table, the settings hash every setting but ``device``.
    """
    from ..utils import cache_dir

    source = Path(source)
    ds_name = load_mmrec(source, load_features=False).name
    keyed = {k: v for k, v in settings.items() if k != "device"}
    keyed = {"stage1": stage1, "layout": STAGE1_LAYOUT, **keyed}
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache) if cache is not None else cache_dir()
    return root / STAGE1_FOLDER / f"{ds_name}-{_source_hash(source)[:10]}" / f"{stage1}-{key}"


def open_stage1(
    name_or_path: str | Path,
    stage1: str,
    *,
    smoke: bool = False,
    seed: int = 0,
    settings: dict | None = None,
    device: str = "auto",
    data_root: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    registry: str | Path | None = None,
    overwrite: bool = False,
) -> RecDataset:
    """A dataset whose content feature (``ds.feature("auto")``) is one stage-1 encoder's output.

    Same users, items and split as :func:`open_dataset` gives; only the features differ. The
    features are computed on first use into a working copy under the cache (never into the source
    folder, so the bundled datasets stay as shipped), with their manifest (``features.json``) and
    the copy's provenance (``stage1.json``: source, settings, seconds), and reused afterwards. The
    copy is keyed by the source dataset and the settings (:func:`stage1_folder`). The ``ica`` and
    ``multiway`` copies also hold the raw tiny-cnn / MiniLM tables (:data:`STAGE1_RAW_ENCODERS`) as
    ``image_feat.npy`` / ``text_feat.npy``, which VBPR and FREEDOM read. A copy is computed under its
    lock: a second caller waits for it and then reads the finished copy.

    Args:
        name_or_path: as for :func:`open_dataset` (``"toy"`` + ``smoke=True`` is the SMOKE toy shop).
        stage1: one of :data:`STAGE1_FEATURES`: ``"oracle"`` (the toy shop's bundled attribute
            features, returned as they are; toy shop only), ``"concat"`` (tiny-cnn + MiniLM,
            :func:`~alignrec_lite.encoders.extract_features`), ``"ica"``
            (:func:`~alignrec_lite.ica.pretrain_ica`), ``"multiway"``
            (:func:`~alignrec_lite.multiway.pretrain_multiway`).
        smoke: SMOKE sizes (:func:`stage1_settings`) and the toy shop's SMOKE copy.
        seed: the encoder's seed.
        settings: overrides of :func:`stage1_settings` (e.g. ``{"epochs": 5}``); unknown keys are refused.
        device: where the encoder runs.
        data_root, cache, progress, registry: as for :func:`open_dataset` (``cache`` also holds the copies).
        overwrite: compute again even when a finished copy exists.

    Returns:
        A :class:`~alignrec_lite.data.RecDataset` loaded from the working copy (the source folder for
        ``"oracle"``).

    Raises:
        ConfigError: an unknown ``stage1`` or setting.
        DataError: ``"oracle"`` on a dataset without the toy shop's attribute features; a dataset
            without images or texts; as for :func:`open_dataset`.
    """
    _check_stage1(stage1)
    if smoke and str(name_or_path) == "toy":
        name_or_path = "toy-smoke"
    source = resolve_dataset(name_or_path, data_root=data_root, cache=cache, progress=progress, registry=registry)
    if stage1 == "oracle":
        ds = load_mmrec(source)
        man = (
            read_json(source / "features.json", "feature manifest", fix="delete features.json")
            if (source / "features.json").exists()
            else {}
        )
        encoders = {m: (man.get(m) or {}).get("encoder") for m in ("image", "text")}
        if set(encoders.values()) != {"toy-attributes"}:
            raise DataError(
                f"{ds.name!r} has no oracle attribute features (its features come from {encoders})",
                path=source,
                row="stage1",
                fix='"oracle" is the toy shop\'s generator attributes; use "concat", "ica" or "multiway"',
            )
        return ds
    cfg = stage1_settings(stage1, smoke=smoke, seed=seed, device=device)
    unknown = sorted(set(settings or {}) - set(cfg))
    if unknown:
        raise ConfigError(f"unknown {stage1} setting(s) {unknown}", row=unknown[0], fix=f"use {sorted(cfg)}")
    cfg.update(settings or {})
    dest = stage1_folder(source, stage1, cfg, cache=cache)
    if (dest / STAGE1_MANIFEST).exists() and not overwrite:
        return load_mmrec(dest)
    return _compute_stage1_locked(source, dest, stage1, cfg, cache=cache, progress=progress, overwrite=overwrite)


def _compute_stage1_locked(
    source: Path,
    dest: Path,
    stage1: str,
    cfg: dict,
    *,
    cache: str | Path | None,
    progress: bool,
    overwrite: bool,
    poll: float = 2.0,
) -> RecDataset:
    """:func:`_compute_stage1` under the copy's lock (:func:`~alignrec_lite.files.out_lock`).

    Two processes asking for the same copy at once (two notebooks, two test workers) must not
    write into one folder: the second waits for the first and then reads its finished copy. A
    copy left half-built by a killed process (no :data:`STAGE1_MANIFEST`) is removed and built
    again; the lock of a process that is gone is taken over.
    """
    import shutil

    from ..errors import CheckpointError
    from ..files import out_lock

    dest.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        try:
            with out_lock(dest, "stage1"):
                if (dest / STAGE1_MANIFEST).exists() and not overwrite:
                    return load_mmrec(dest)  # finished by the process we waited for
                if dest.exists():
                    shutil.rmtree(dest)  # half-built (killed) or to be replaced (overwrite)
                return _compute_stage1(source, dest, stage1, cfg, cache=cache, progress=progress)
        except CheckpointError as exc:
            if "another process" not in str(exc):
                raise
            if progress and not told:
                print(f"waiting for another process to finish the {stage1} features in {dest} ...", flush=True)
                told = True
            time.sleep(poll)
            overwrite = False  # the other process has just made it


def _compute_stage1(
    source: Path, dest: Path, stage1: str, cfg: dict, *, cache: str | Path | None, progress: bool
) -> RecDataset:
    """Make the working copy ``dest`` of ``source`` and compute its stage-1 feature (see :func:`open_stage1`)."""
    from ..encoders import extract_features
    from .subset import working_copy

    start = time.perf_counter()
    working_copy(source, dest)
    if stage1 == "concat":
        extract_features(
            dest, cfg["image_encoder"], cfg["text_encoder"], device=cfg["device"], seed=cfg["seed"], progress=progress
        )
        return _finish_stage1(source, dest, stage1, cfg, start)
    # The models that read raw image/text tables (VBPR, FREEDOM) get the concat copy's tables (the same
    # towers and seed), never the source's files (the toy shop's are its oracle attributes). The concat
    # copy is opened, computed once if absent, instead of encoding every item a second time here.
    raw = open_stage1(source, "concat", seed=cfg["seed"], device=cfg["device"], cache=cache, progress=progress)
    _copy_raw_tables(raw.path, dest)
    if stage1 == "ica":
        from ..ica import ICAConfig, pretrain_ica

        pretrain_ica(dest, ICAConfig.from_dict(cfg), out=dest / "run", progress=progress, overwrite=True)
    else:
        from ..multiway import MultiwayConfig, pretrain_multiway

        pretrain_multiway(dest, MultiwayConfig.from_dict(cfg), out=dest / "run", progress=progress, overwrite=True)
    return _finish_stage1(source, dest, stage1, cfg, start)


def _copy_raw_tables(raw: Path, dest: Path) -> None:
    """Put the concat copy ``raw``'s image and text tables, with their manifest entries, into ``dest``."""
    import shutil

    from ..encoders.manifest import read_manifest, update_manifest
    from .mmrec import FEATURE_FILES

    entries = read_manifest(raw)
    for modality in ("image", "text"):
        shutil.copyfile(raw / FEATURE_FILES[modality], dest / FEATURE_FILES[modality])
        update_manifest(dest, modality, entries[modality])


def _finish_stage1(source: Path, dest: Path, stage1: str, cfg: dict, start: float) -> RecDataset:
    """Write the working copy's provenance (:data:`STAGE1_MANIFEST`), which marks it finished, and load it."""
    write_json(
        dest / STAGE1_MANIFEST,
        {
            "stage1": stage1,
            "description": STAGE1_FEATURES[stage1],
            "source": str(source.resolve()),
            "source_sha256": _source_hash(source),
            "settings": cfg,
            "seconds": round(time.perf_counter() - start, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return load_mmrec(dest)


__all__ = [
    "STAGE1_FEATURES",
    "STAGE1_FOLDER",
    "STAGE1_LAYOUT",
    "STAGE1_MANIFEST",
    "STAGE1_RAW_ENCODERS",
    "open_stage1",
    "stage1_folder",
    "stage1_settings",
]
