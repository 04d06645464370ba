"""Run folders: the run record, the training checkpoints and rebuilding a trained model.

A run folder written by :func:`alignrec_lite.train.train` (``out=...``) holds

* ``metrics.json`` — the :class:`RunRecord` (one JSON form: :meth:`RunRecord.to_json`);
* ``config.json`` — the resolved settings and the dataset;
* ``best.pt`` — the best-on-valid weights; ``last.pt`` — everything needed to resume
  (:func:`save_checkpoint` / :func:`resume_checkpoint`).

:func:`load_run` rebuilds the trained model from ``metrics.json`` + ``best.pt``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.mmrec import RecDataset
from .errors import CheckpointError, ConfigError
from .files import atomic_path, load_checkpoint_file
from .models import Recommender, get_model_class


@dataclass
class TrainState:
    """Early-stopping state, kept in checkpoints."""

    epoch: int = 0  # epochs completed
    best_score: float = -1.0
    best_epoch: int = -1
    bad_steps: int = 0
    best_valid: dict = field(default_factory=dict)
    best_test: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    eval_seconds: list = field(default_factory=list)
    stopped_early: bool = False


@dataclass
class RunRecord:
    """What a training run reports: the content of ``metrics.json``.

    :meth:`to_json` gives its one JSON form (the keys below, in this order; keys a
    record was read with and this class does not know are kept after them).
    """

    model: str  # the registered model name
    dataset: str | None = None  # the dataset's name
    dataset_path: str | None = None  # its folder (load_run reloads it from there)
    config: dict = field(default_factory=dict)  # every resolved setting, "model" included
    preset: str | None = None  # the tuned preset applied (config.TUNED_DEFAULTS key), None = none
    feature_source: str | None = None  # the features the model read (None: an ID-only model)
    finetune_features: Any = None  # AlignRec's / FREEDOM's feature mode (None for models without one)
    best_epoch: int = -1  # the epoch of the best valid metric (-1: never evaluated)
    epochs_run: int = 0
    stopped_early: bool = False
    valid: dict = field(default_factory=dict)  # valid metrics at best_epoch
    test: dict = field(default_factory=dict)  # test metrics at best_epoch (never used to select)
    seconds_per_epoch: float | None = None  # median
    eval_seconds: float | None = None  # median time of one valid evaluation
    peak_rss_mb: float | None = None
    n_parameters: int | None = None
    device: str | None = None
    versions: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # one entry per epoch: losses and valid metrics
    data_fingerprint: dict | None = None  # load_run refuses to serve the run on other data
    extra: dict = field(default_factory=dict)  # unknown keys of a record read from JSON (kept as they are)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (a dict of JSON values): what ``metrics.json`` holds."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read the JSON form back (missing keys take their defaults, as in records of older runs).

        Raises:
            KeyError: no ``model``.
            TypeError: ``data`` is not a mapping, or ``model`` / ``config`` has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a run record is a JSON object, not {type(data).__name__}")
        if "model" not in data:
            raise KeyError("model")
        known = {f.name for f in fields(cls)} - {"extra"}
        record = cls(
            **{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known}
        )
        if not isinstance(record.model, str) or not isinstance(record.config, dict):
            raise TypeError("model must be a string and config an object")
        return record


def dataset_identity(dataset: RecDataset) -> dict:
    """What identifies a run's dataset in its checkpoint (checked before resuming)."""
    from .checks import dataset_fingerprint

    return {
        "name": dataset.name,
        "n_users": int(dataset.n_users),
        "n_items": int(dataset.n_items),
        "n_train": int(len(dataset.train)),
        "fingerprint": dataset_fingerprint(dataset),
    }


def save_checkpoint(
    out: Path, cfg, net, opt, sched, rng: np.random.Generator, state: TrainState, dataset_id: dict
) -> None:
    """Write ``out/last.pt`` atomically: everything a resumed run needs to continue bit for bit.

    Args:
        out: the run folder.
        cfg: the resolved config (its scalar settings are stored and compared on resume).
        net, opt, sched: model, optimiser and learning-rate scheduler.
        rng: the trainer's NumPy generator (torch's and Python's states are saved too).
        state: the early-stopping state.
        dataset_id: :func:`dataset_identity` of the run's data.
    """
    ckpt = {
        "format": 1,
        "config": {k: v for k, v in cfg.items() if isinstance(v, (int, float, str, bool))},
        "dataset": dataset_id,
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "python_rng": list(random.getstate()[1]),
        "state": state.__dict__,
    }
    with atomic_path(out / "last.pt") as tmp:
        torch.save(ckpt, tmp)


#: settings that do not alter a run's result and may differ when it is resumed
RESUME_MAY_CHANGE = ("epochs", "device", "eval_batch_users", "max_minutes")

_CKPT_KEYS = ("config", "model", "optimizer", "scheduler", "numpy_rng", "torch_rng", "python_rng", "state")


def resume_checkpoint(out: Path, cfg, net, opt, sched, rng, dataset_id: dict) -> tuple[dict | None, TrainState]:
    """Restore a run from ``out/last.pt`` into ``net``, ``opt``, ``sched``, ``rng`` and the global RNGs.

    Refuses (:class:`CheckpointError`) a file that is not a training checkpoint, one made on
    other data, or with settings that alter the result (all but :data:`RESUME_MAY_CHANGE`).

    Returns:
        ``(best-on-valid weights from best.pt or None, the early-stopping state)``.
    """
    path = out / "last.pt"
    ckpt = load_checkpoint_file(path)
    missing = [k for k in _CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(_CKPT_KEYS)
    if missing:
        raise CheckpointError(
            f"not a training checkpoint (missing {', '.join(missing)})",
            path=path,
            fix="resume only from the last.pt that `alignrec-lite train --out` wrote, or start again with --overwrite",
        )
    made_on = ckpt.get("dataset")
    sizes = ("name", "n_users", "n_items", "n_train")
    if isinstance(made_on, dict) and any(made_on.get(k) != dataset_id.get(k) for k in sizes):
        raise CheckpointError(
            f"the checkpoint was made on another dataset ({made_on.get('name')}: {made_on.get('n_users')} users x "
            f"{made_on.get('n_items')} items; this one is {dataset_id['name']}: {dataset_id['n_users']} x "
            f"{dataset_id['n_items']})",
            path=path,
            fix="resume with the dataset the run was started with, or start a new run folder",
        )
    if isinstance(made_on, dict) and isinstance(made_on.get("fingerprint"), dict):
        from .checks import fingerprint_changes

        diff = fingerprint_changes(made_on["fingerprint"], dataset_id["fingerprint"])
        if diff:
            raise CheckpointError(
                f"the data changed since the checkpoint was made (changed: {', '.join(diff)})",
                path=path,
                fix="resume with the data the run was started on, or start a new run folder",
            )
    saved = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    # every setting that alters the result must match (epochs may grow; device, eval batch, time cap may change)
    changed = [
        k
        for k in sorted(set(saved) | {k for k in cfg if isinstance(cfg[k], (int, float, str, bool))})
        if k not in RESUME_MAY_CHANGE and saved.get(k) != cfg.get(k)
    ]
    if changed:
        shown = ", ".join(f"{k}: {saved.get(k, 'unset')!r} then, {cfg.get(k, 'unset')!r} now" for k in changed[:4])
        raise CheckpointError(
            f"the checkpoint was made with different settings ({shown})",
            path=out / "last.pt",
            fix="resume with the same --set values, or start a new run folder",
        )
    try:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        st = random.getstate()
        random.setstate((st[0], tuple(ckpt["python_rng"]), st[2]))
        state = TrainState(**ckpt["state"])
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"the checkpoint does not fit this model and dataset ({_first_reason(exc)})",
            path=path,
            fix="resume with the dataset and settings the run was started with, or start a new run folder",
        ) from None
    best = None
    if (out / "best.pt").exists():
        best = load_checkpoint_file(out / "best.pt")
        if not isinstance(best, dict):
            raise CheckpointError(
                "best.pt does not hold model weights",
                path=out / "best.pt",
                fix="delete it; it is rewritten at the next improvement",
            )
    return best, state


def _first_reason(exc: BaseException) -> str:
    """The most telling line of a load_state_dict error (its first line is only a title)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        return lines[1]
    return lines[0] if lines else type(exc).__name__


def load_run(run: str | Path, dataset: RecDataset | None = None) -> tuple[Recommender, dict, RecDataset]:
    """Rebuild a trained model from a run folder (``metrics.json`` + ``best.pt``).

    Args:
        run: the folder written by :func:`train` / ``alignrec-lite train --out``.
        dataset: the dataset (loaded from the path recorded in the run if ``None``).

    Returns:
        ``(model in eval mode, run record, dataset)``.
    """
    import json

    from .checks import check_regular_file, dataset_fingerprint, entry_exists, fingerprint_changes
    from .data.mmrec import load_mmrec

    run = Path(run)
    rec_path = run / "metrics.json"
    if run.exists() and not run.is_dir():
        raise CheckpointError(
            "expected a run folder, found a file",
            path=run,
            fix="pass the --out folder of a completed `alignrec-lite train`",
        )
    if entry_exists(rec_path):
        check_regular_file(rec_path, "run record", error=CheckpointError)
    if not rec_path.exists():
        raise CheckpointError(
            "not a finished run (no metrics.json)",
            path=run,
            fix="pass the --out folder of a completed `alignrec-lite train`",
        )
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
        typed = RunRecord.from_json(record)  # raises KeyError / TypeError on a damaged record
        name, cfg = typed.model, typed.config
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError) as exc:
        raise CheckpointError(
            f"metrics.json is damaged ({type(exc).__name__})", path=rec_path, fix="retrain into a fresh folder"
        ) from None
    if dataset is None:
        if not record.get("dataset_path"):
            raise CheckpointError(
                "the run does not record its dataset folder", path=rec_path, fix="pass the dataset explicitly"
            )
        if not Path(record["dataset_path"]).is_dir():
            raise CheckpointError(
                f"the dataset folder the run was trained on is gone ({record['dataset_path']})",
                path=rec_path,
                row="dataset_path",
                fix="restore that folder, or set dataset_path in metrics.json to its new place",
            )
        dataset = load_mmrec(record["dataset_path"])
    made_on = record.get("data_fingerprint")
    if isinstance(made_on, dict):  # runs before issue 16 carry none and are served as before
        diff = fingerprint_changes(made_on, dataset_fingerprint(dataset))
        if diff:
            raise CheckpointError(
                f"the data changed since this run was trained (changed: {', '.join(diff)}); its weights would "
                f"be served against other IDs and features",
                path=dataset.path or rec_path,
                row="data_fingerprint",
                fix="retrain on the current data (alignrec-lite train … --out NEW_RUN), or restore the data "
                "the run was trained on",
            )
    try:
        from .config import check_config_ranges

        check_config_ranges(cfg)  # an edited record must not allocate n_layers=10**6 layers
        net = get_model_class(name)(dataset, cfg)
    except ConfigError as exc:
        raise CheckpointError(
            f"the run's settings do not fit ({exc.message})",
            path=rec_path,
            row=exc.row if isinstance(exc.row, str) else None,
            fix="retrain into a fresh folder",
        ) from None
    weights = load_checkpoint_file(run / "best.pt")
    try:
        if not isinstance(weights, dict):
            raise TypeError(f"expected a dict of tensors, found a {type(weights).__name__}")
        net.load_state_dict(weights)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"the weights do not fit this dataset/model ({_first_reason(exc)})",
            path=run / "best.pt",
            fix="use the dataset the run was trained on",
        ) from None
    bad = [
        k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:  # a diverged or damaged run: it would rank nothing (an empty export) or garbage
        raise CheckpointError(
            f"the weights hold NaN or inf ({', '.join(bad[:3])})",
            path=run / "best.pt",
            fix="retrain (lower the learning rate if the loss diverged) or restore the file",
        )
    net.prepare_eval()
    return net, record, dataset


__all__ = [
    "RunRecord",
    "TrainState",
    "load_run",
    "save_checkpoint",
    "resume_checkpoint",
    "dataset_identity",
    "RESUME_MAY_CHANGE",
]
