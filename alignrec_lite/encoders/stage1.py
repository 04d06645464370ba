"""What the two stage-1 encoders (:mod:`alignrec_lite.ica`, :mod:`alignrec_lite.multiway`) share.

Their run folders and checkpoints (``RUN/last.pt``), and the fused item vectors they write into
the dataset folder (``mm_feat.npy``, the masked views, the ``mm`` entry of ``features.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from ..data.mmrec import RecDataset
from ..errors import ConfigError, DataError
from ..files import save_npy, sha256_file, write_json
from .extract import load_image
from .manifest import (
    MANIFEST,
    MASKED_FILES,
    MM_FILE,
    library_versions,
    read_manifest,
)


class Stage1Config:
    """What the stage-1 config dataclasses share (:class:`~alignrec_lite.ica.ICAConfig`,
    :class:`~alignrec_lite.multiway.MultiwayConfig`): validation, the settings hash, rebuilding.

    A subclass is a dataclass and sets ``label`` (the encoder's name in messages).
    """

    label = "stage-1"

    def check(self, checks: Sequence[tuple[bool, str, str]]) -> None:
        """Raise :class:`ConfigError` for the first ``(ok, setting, fix)`` that is not ok."""
        for ok, key, fix in checks:
            if not ok:
                raise ConfigError(f"invalid {self.label} setting {key}: {getattr(self, key)!r}", row=key, fix=fix)

    def key(self) -> str:
        """Hash of the settings that define the trained encoder (not epochs or device)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("epochs", "device")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        """Rebuild from :func:`dataclasses.asdict` output (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ConfigError(f"unknown {cls.label} setting(s) {bad}", row=bad[0], fix=f"use {sorted(names)}")
        return cls(**d)


def decode_item_images(
    ds: RecDataset, preprocess: Callable[[Any], torch.Tensor], size: int, *, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item's image, pre-processed once and kept in memory as float16.

    Args:
        ds: the dataset (needs ``items.csv``).
        preprocess: RGB PIL image -> ``(3, size, size)`` tensor.
        size: the side of the pre-processed image.
        progress: a bar while the images are decoded.

    Returns:
        ``(pixels (n_items, 3, size, size) float16, has_image (n_items,) bool)``; an item without
        a readable image keeps zeros.

    Raises:
        DataError: no item image could be read.
    """
    from tqdm.auto import tqdm

    pixels = torch.zeros(ds.n_items, 3, size, size, dtype=torch.float16)  # (n_items, 3, S, S)
    has_image = torch.zeros(ds.n_items, dtype=torch.bool)
    for i in tqdm(range(ds.n_items), disable=not progress, desc="decoding images", unit="img"):
        im = load_image(ds.image_path(i))
        if im is not None:
            pixels[i] = preprocess(im).to(torch.float16)
            has_image[i] = True
    if not has_image.any():
        raise DataError(
            "no item image could be read", path=ds.path, fix="check the `image` column of items.csv and the image files"
        )
    return pixels, has_image


def new_item_pixels(preprocess: Callable[[Any], torch.Tensor], image: Any | None) -> torch.Tensor | None:
    """A new item's picture as stage 1 keeps the catalogue's (:func:`decode_item_images`): ``(1, 3, S, S)``.

    Pre-processed, then rounded through float16 as the catalogue's stored pixels are, so that a
    known item's picture encodes to its stored row. ``None`` stays ``None`` (no picture).
    """
    return None if image is None else preprocess(image).to(torch.float16).float()[None]


def require_image_or_text(image: Any | None, text: str | None) -> None:
    """Refuse a new item with neither a picture nor a text (stage 1 has nothing to encode).

    Raises:
        ConfigError: both are ``None``.
    """
    if image is None and text is None:
        raise ConfigError("a new item needs an image or a text", row="image/text", fix="pass image= and/or text=")


def reuse_mm_features(
    folder: Path,
    encoder: str,
    config_key: str,
    epochs: int,
    *,
    resume: bool,
    overwrite: bool,
    extra: Sequence[str] = (),
) -> dict | None:
    """Check a dataset folder's ``mm_feat.npy`` before a stage-1 run.

    Args:
        folder: the dataset folder.
        encoder, config_key, epochs: what the run would make (manifest ``encoder``, ``config_key``, ``epochs``).
        resume, overwrite: the run's options.
        extra: manifest fields copied into the result (e.g. ``geometry_before``).

    Returns:
        The run's result (``"up_to_date": True``) when the folder already holds these very
        features, else ``None`` (train).

    Raises:
        DataError: ``mm_feat.npy`` was made by another encoder or with other settings and
            ``overwrite`` is off.
    """
    entry = read_manifest(folder).get("mm")
    if not (folder / MM_FILE).exists() or overwrite:
        return None
    if not (isinstance(entry, dict) and entry.get("encoder") == encoder and entry.get("config_key") == config_key):
        made = entry.get("encoder") if isinstance(entry, dict) else "an unknown encoder"
        raise DataError(
            f"{MM_FILE} already exists (made by {made} with other settings)",
            path=folder / MM_FILE,
            fix="pass --overwrite (overwrite=True) to replace it, or use another folder",
        )
    if resume or entry.get("epochs") != epochs or entry.get("sha256") != sha256_file(folder / MM_FILE):
        return None
    return stage1_result(
        entry["shape"],
        entry["run_dir"],
        [],
        entry["train_seconds"],
        read_manifest(folder),
        epochs_run=entry["epochs"],
        final_loss=entry["final_loss"],
        **{k: entry[k] for k in extra},
        up_to_date=True,
    )


def stage1_result(
    shape: Sequence[int],
    run_dir: str | Path,
    history: list,
    train_seconds: float,
    manifest: dict,
    *,
    epochs_run: int | None = None,
    final_loss: float | None = None,
    **extra: Any,
) -> dict:
    """What :func:`~alignrec_lite.ica.pretrain_ica` and :func:`~alignrec_lite.multiway.pretrain_multiway` return.

    One form for a fresh run and for features found up to date (:func:`reuse_mm_features`):
    ``shape`` of ``mm_feat.npy``, ``epochs_run`` and ``final_loss`` (from ``history`` unless given),
    ``train_seconds``, ``run_dir``, ``history``, the ``extra`` fields (the encoder's own, and
    ``up_to_date``), then ``manifest`` (the folder's ``features.json``).
    """
    return {
        "shape": list(shape),
        "epochs_run": len(history) if epochs_run is None else epochs_run,
        "train_seconds": train_seconds,
        "final_loss": (history[-1]["loss"] if history else float("nan")) if final_loss is None else final_loss,
        "run_dir": Path(run_dir),
        "history": history,
        **extra,
        "manifest": manifest,
    }


def restore_training_state(state: dict, opt: torch.optim.Optimizer, gen: torch.Generator) -> tuple[list, int, float]:
    """Put a resumed stage-1 run back where its checkpoint stopped.

    Loads the optimiser (its moments move to the parameters' device), the batch-order
    generator and torch's global random state.

    Returns:
        ``(history, epochs done, training seconds so far)``.
    """
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return list(state["history"]), int(state["epoch"]), float(state["seconds"])


def save_stage1_checkpoint(
    run: Path, kind: str, state: dict, opt: torch.optim.Optimizer, gen: torch.Generator, history: list, seconds: float
) -> None:
    """Write a stage-1 encoder's ``run/last.pt`` atomically: its own ``state`` plus what resuming needs.

    Args:
        run: the run folder.
        kind: the encoder's name, checked by :func:`load_stage1_checkpoint`.
        state: the encoder's fields (``config``, ``epoch``, ``model``, ...).
        opt, gen: the optimiser and the batch-order generator.
        history: per-epoch records so far.
        seconds: training wall time so far.
    """
    from ..files import atomic_path

    full = {
        "format": 1,
        "kind": kind,
        **state,
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "seconds": seconds,
    }
    with atomic_path(run / "last.pt") as tmp:
        torch.save(full, tmp)


def load_stage1_checkpoint(path: str | Path, kinds: tuple[str | None, ...], *, name: str, train_cmd: str) -> dict:
    """Read a stage-1 checkpoint written by :func:`save_stage1_checkpoint` (CRC-checked, ``weights_only``).

    Args:
        path: ``last.pt`` or its run folder.
        kinds: the ``kind`` values accepted (``None``: a checkpoint from before kinds were recorded).
        name: the encoder's name in messages.
        train_cmd: the command that makes such a run.

    Raises:
        CheckpointError: missing, unreadable or another encoder's checkpoint.
    """
    from ..errors import CheckpointError
    from ..files import load_checkpoint_file

    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.exists():
        raise CheckpointError(f"no {name} checkpoint", path=path, fix=f"train first with `{train_cmd}`")
    state = load_checkpoint_file(path)
    if (
        not isinstance(state, dict)
        or state.get("format") != 1
        or state.get("kind") not in kinds
        or "model" not in state
    ):
        raise CheckpointError(f"not a {name} checkpoint", path=path, fix=f"point to a run folder of `{train_cmd}`")
    return state


def open_stage1_run(
    run: Path, cfg: Any, *, resume: bool, overwrite: bool, load: Callable[[Path], dict], name: str
) -> dict | None:
    """Prepare a stage-1 run folder: the checkpoint to resume (same settings), or a fresh start.

    Args:
        run: the run folder.
        cfg: the encoder's config dataclass (``key()``, ``from_dict``); ``epochs`` and
            ``device`` may differ from the checkpoint's when resuming.
        resume: continue from ``run/last.pt``.
        overwrite: start again over an existing run.
        load: the encoder's checkpoint loader.
        name: the encoder's name in messages (``"an ICA"``).

    Returns:
        The checkpoint to resume from, or ``None`` for a fresh start.

    Raises:
        CheckpointError: other settings than the checkpoint's, or an existing run without
            ``resume`` / ``overwrite``.
    """
    from ..errors import CheckpointError

    state = None
    if resume:
        state = load(run)
        old = type(cfg).from_dict(state["config"])
        if old.key() != cfg.key():
            diff = {
                k: (v, getattr(cfg, k))
                for k, v in asdict(old).items()
                if getattr(cfg, k) != v and k not in ("epochs", "device")
            }
            raise CheckpointError(
                f"the checkpoint was trained with other settings {diff}",
                path=run / "last.pt",
                fix="resume with the same settings, or start again with --overwrite",
            )
    elif (run / "last.pt").exists() and not overwrite:
        raise CheckpointError(
            f"the run folder already holds {name} run",
            path=run,
            fix="pass --resume to continue it or --overwrite to start again",
        )
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", asdict(cfg))
    return state


#: written into the dataset folder once the new stage-1 files are complete beside the old ones
#: (the commit point); :func:`finish_mm_commit` moves them into place and removes it
MM_JOURNAL = ".mm-commit.json"
_STAGE_PREFIX = ".mm-new-"


def stage1_workdir(run: Path, *, resume: bool, overwrite: bool) -> Path:
    """The folder a stage-1 run writes its checkpoints into.

    ``run`` itself, except when ``overwrite`` replaces a run that is there: then a staging
    folder beside it (:func:`~alignrec_lite.files.staging_dir`), which
    :func:`write_mm_features` puts in place together with the new feature files, so a kill
    mid-way leaves the old run whole. Leftovers of a killed swap of ``run`` are repaired first.
    """
    from ..files import recover_swap, staging_dir

    recover_swap(run)
    if overwrite and not resume and (run / "last.pt").exists():
        work = staging_dir(run)
        shutil.rmtree(work, ignore_errors=True)
        return work
    return run


def discard_stage1_workdir(work: Path, run: Path, folder: Path) -> None:
    """Remove the staging folder of a failed ``--overwrite`` run (unless a commit already names it)."""
    if work != run and not os.path.lexists(Path(folder) / MM_JOURNAL):
        shutil.rmtree(work, ignore_errors=True)


def write_mm_features(
    folder: Path,
    run: Path,
    emb: dict,
    entry: dict,
    *,
    config: Any,
    history: list,
    train_seconds: float,
    missing_images: int,
    device: Any,
    work: Path | None = None,
) -> dict:
    """Write a stage-1 encoder's item vectors into the dataset folder and record them in its manifest.

    Shared by both stage-1 encoders (:mod:`alignrec_lite.ica`, :mod:`alignrec_lite.multiway`):
    ``mm_feat.npy`` (the fused vectors), the two masked views (:data:`MASKED_FILES`), the
    ``mm`` entry of ``features.json`` and ``run/result.json``.

    Nothing in the dataset folder changes until all of them are complete: they are written
    into a hidden staging folder (``DIR/.mm-new-PID/``), then :data:`MM_JOURNAL` records the
    commit, then each file is renamed into place (the manifest last) and, with ``work``, the
    new run folder is swapped in. A kill before the commit leaves the old files whole; a kill
    during it is finished by :func:`finish_mm_commit` at the next stage-1 or feature command.

    Args:
        folder: the dataset folder.
        run: the encoder's run folder (as recorded in the manifest).
        emb: ``{"mm": (n_items, d), "mm_mask_image": ..., "mm_mask_text": ...}``.
        entry: the encoder's own manifest fields (``"encoder"`` first, then what describes it).
        config: the encoder's config dataclass (with ``key()``).
        history: per-epoch records (``"loss"``).
        train_seconds: pre-training wall time.
        missing_images: items without a readable image.
        device: where it ran.
        work: where the run was written when it replaces an old one (:func:`stage1_workdir`);
            it is swapped in at ``run`` with the features.

    Returns:
        The updated manifest.
    """
    work = run if work is None else Path(work)
    finish_mm_commit(folder)  # an earlier commit that a kill interrupted comes first
    stage = folder / f"{_STAGE_PREFIX}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        save_npy(stage / MM_FILE, emb["mm"])
        for modality, fname in MASKED_FILES.items():
            save_npy(stage / fname, emb[f"mm_mask_{modality}"])
        man_entry = {
            "encoder": entry["encoder"],
            "file": MM_FILE,
            "dim": int(emb["mm"].shape[1]),
            "shape": list(emb["mm"].shape),
            "sha256": sha256_file(stage / MM_FILE),
            "rows": "itemID",
            "config_key": config.key(),
            "config": asdict(config),
            **{k: v for k, v in entry.items() if k != "encoder"},
            "masked_files": {m: {"file": f, "sha256": sha256_file(stage / f)} for m, f in MASKED_FILES.items()},
            "missing_images": int(missing_images),
            "epochs": len(history),
            "train_seconds": round(train_seconds, 2),
            "final_loss": history[-1]["loss"] if history else None,
            "run_dir": str(run),
            "device": str(device),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
        }
        manifest = read_manifest(folder)
        manifest["mm"] = man_entry
        write_json(stage / MANIFEST, manifest)
        write_json(work / "result.json", {k: v for k, v in man_entry.items() if k != "versions"})
        journal = {"stage": stage.name, "files": [*MASKED_FILES.values(), MM_FILE, MANIFEST]}
        if work != run:
            journal["run"] = [work.name, str(run)]
        write_json(folder / MM_JOURNAL, journal)  # the commit point: from here on the new files win
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finish_mm_commit(folder)
    return manifest


def finish_mm_commit(folder: str | Path) -> bool:
    """Finish a stage-1 commit that a kill interrupted, or drop the half-written files of one that never began.

    With :data:`MM_JOURNAL` present, the staged files are complete: each one still in the
    staging folder is renamed into place (the manifest last), then the new run folder is
    swapped in. Without it, staging folders of processes that no longer run are removed
    (the old files were never touched). Cheap when there is nothing to do.

    Returns:
        True when an interrupted commit was finished.

    Raises:
        DataError: a journal that the kit did not write (it is never followed outside the folder).
    """
    from ..files import pid_alive, read_json, swap_dir

    folder = Path(folder)
    journal = folder / MM_JOURNAL
    if not os.path.lexists(journal):
        for stale in folder.glob(f"{_STAGE_PREFIX}*"):
            pid = stale.name[len(_STAGE_PREFIX) :]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        return False
    fix = f"delete {MM_JOURNAL} and the {_STAGE_PREFIX}* folder, then run pretrain-ica again with --overwrite"
    rec = read_json(journal, "stage-1 commit record", fix=fix)
    allowed = {*MASKED_FILES.values(), MM_FILE, MANIFEST}
    names = rec.get("files") if isinstance(rec, dict) else None
    stage_name = str(rec.get("stage", "")) if isinstance(rec, dict) else ""
    run = rec.get("run") if isinstance(rec, dict) else None
    if (
        not isinstance(names, list)
        or not set(names) <= allowed
        or not stage_name.startswith(_STAGE_PREFIX)
        or "/" in stage_name
        or (run is not None and not (isinstance(run, list) and len(run) == 2))
    ):
        raise DataError("not a commit record written by the kit", path=journal, fix=fix)
    stage = folder / stage_name
    for name in names:
        if (stage / name).exists():
            os.replace(stage / name, folder / name)
    if run is not None:
        out = Path(run[1])
        new = out.parent / str(run[0])
        if not (new.name.startswith(f".{out.name}.new-") and "/" not in str(run[0])):
            raise DataError("not a commit record written by the kit", path=journal, fix=fix)
        if new.is_dir():
            swap_dir(new, out)
    shutil.rmtree(stage, ignore_errors=True)
    os.unlink(journal)
    return True

    return True
