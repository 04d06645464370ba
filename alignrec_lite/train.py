"""The trainer: BPR triples, Adam, MMRec's schedule, early stopping on valid, checkpoints, run records.

One loop for every model (MMRec's ``Trainer`` made small):

* each epoch draws one uniform negative per training pair from the items seen in
  training, rejecting the user's training items (vectorised, no Python loop over
  users — ALIGNREC_SPEC §1.3 "Negatives");
* Adam with ``lr_t = lr * lr_decay ** (epoch / lr_decay_step)`` stepped per epoch
  (MMRec's ``LambdaLR``; ``lr_decay`` is 1.0 = constant for the baselines, as in MMRec's
  ``overall.yaml``, and 0.96 for AlignRec, as in its yaml);
* after every ``eval_step`` epochs, full-ranking evaluation on valid; the test
  metrics are those of the epoch with the best valid ``recall@20`` (strict ``>`` on
  the 4-decimal value of the float64 mean, as MMRec); stop after ``stopping_step + 1`` evaluations
  without improvement;
* with an output folder: ``best.pt`` (best-on-valid weights), ``last.pt`` (everything
  needed to resume: model, optimiser, scheduler, RNG states, early-stopping state),
  ``config.json`` and ``metrics.json``, all written atomically.
"""

from __future__ import annotations

import contextlib
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from .config import resolve_config
from .data.mmrec import RecDataset
from .errors import CheckpointError, ConfigError
from .evaluate import evaluate, format_metrics
from .io import atomic_path, load_checkpoint_file, write_json
from .models import Recommender, get_model_class
from .utils import get_device, peak_rss_mb, seed_everything, versions


class BPRSampler:
    """Draws ``(user, positive, negative)`` triples for one epoch at a time.

    Negatives are uniform over the items that occur in the training split and are
    re-drawn until none is one of the user's training items.

    Args:
        dataset: the data; only ``train`` is used.
        rng: the NumPy generator (its state is checkpointed).
    """

    def __init__(self, dataset: RecDataset, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pairs = dataset.train.astype(np.int64)  # (n, 2)
        self.n_items = dataset.n_items
        self.candidates = np.unique(self.pairs[:, 1])  # items seen in training
        self.keys = np.unique(self.pairs[:, 0] * self.n_items + self.pairs[:, 1])  # sorted (u, i) codes
        full = np.bincount(self.pairs[:, 0]) >= len(self.candidates)
        if full.any():
            u = int(np.flatnonzero(full)[0])
            raise ConfigError(f"user {u} interacted with every training item; no negative can be sampled",
                              row=f"userID {u}", fix="remove that user or add items")

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        codes = users * self.n_items + items
        pos = np.searchsorted(self.keys, codes)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == codes

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """One negative per user entry, never a training positive of that user."""
        neg = self.candidates[self.rng.integers(0, len(self.candidates), size=len(users))]
        bad = np.flatnonzero(self._is_positive(users, neg))
        while len(bad):
            neg[bad] = self.candidates[self.rng.integers(0, len(self.candidates), size=len(bad))]
            bad = bad[self._is_positive(users[bad], neg[bad])]
        return neg

    def epoch(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Shuffled batches of ``(users, positives, negatives)`` as int64 tensors."""
        order = self.rng.permutation(len(self.pairs))
        users, pos = self.pairs[order, 0], self.pairs[order, 1]
        neg = self.sample_negatives(users)
        for s in range(0, len(order), batch_size):
            sl = slice(s, s + batch_size)
            yield torch.from_numpy(users[sl]), torch.from_numpy(pos[sl]), torch.from_numpy(neg[sl])

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.pairs) / batch_size)


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


EpochCallback = Callable[[int, Recommender, dict], None]


def build_model(name: str, dataset: RecDataset, config: Mapping[str, Any]) -> Recommender:
    """Instantiate a registered model."""
    return get_model_class(name)(dataset, config)


def train(
    dataset: RecDataset,
    model: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: list[EpochCallback] | None = None,
    verbose: bool = False,
) -> tuple[Recommender, dict]:
    """Train a model with early stopping on valid and return it with its run record.

    Args:
        dataset: the data (train/valid/test splits).
        model: a registered model name (``bpr``, ``lightgcn``, ``vbpr``, ``freedom``, ``alignrec``).
        overrides: settings that replace the defaults (see :mod:`alignrec_lite.config`).
        out: run folder for checkpoints and records (``None``: keep nothing on disk).
        resume: continue from ``out/last.pt``.
        progress: show a ``tqdm.auto`` progress bar over epochs.
        callbacks: functions ``f(epoch, model, epoch_record)`` called after each
            epoch (e.g. an alignment/uniformity tracker); ``epoch_record`` holds the
            mean loss terms and the valid metrics of that epoch.
        verbose: print one line per epoch.

    Returns:
        ``(model with the best-on-valid weights, in eval mode; the run record)``.
        The record is what ``metrics.json`` holds.
    """
    from .checks import check_train_inputs

    check_train_inputs(dataset, model, overrides, out)  # types, empty splits, output folder
    cfg = resolve_config(model, overrides, dataset.name)
    check_train_inputs(dataset, model, overrides, out, cfg=cfg)  # memory estimate of these settings
    with deterministic_cpu(get_device(cfg["device"]).type == "cpu"):
        return _train(dataset, model, cfg, Path(out) if out is not None else None, resume, progress,
                      callbacks, verbose)


@contextlib.contextmanager
def deterministic_cpu(enabled: bool = True) -> Iterator[None]:
    """Make CPU training repeat bit for bit, then restore torch's previous setting.

    With several threads, the backward of advanced indexing (``emb[users]``, an
    ``index_put_`` with accumulation) adds duplicate rows in a varying order on CPU,
    so two runs with the same seed drift apart in the last bits and then in the
    metrics. ``torch.use_deterministic_algorithms`` selects the ordered kernels;
    filling uninitialised memory (its costly default side effect) is switched off.
    """
    if not enabled:
        yield
        return
    import torch.utils.deterministic as tud

    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    prev_fill = tud.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    tud.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        tud.fill_uninitialized_memory = prev_fill


def _train(dataset: RecDataset, model: str, cfg: dict, out: Path | None, resume: bool, progress: bool,
           callbacks: list[EpochCallback] | None, verbose: bool) -> tuple[Recommender, dict]:
    """The body of :func:`train` (which resolves ``cfg`` and wraps this in :func:`deterministic_cpu`)."""
    from tqdm.auto import tqdm

    device = get_device(cfg["device"])
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError("the run folder is an existing file", path=out, row="--out",
                          fix="pass a folder name for the run (it is created if missing)")
    seed_everything(int(cfg["seed"]))
    net = build_model(model, dataset, cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    decay, step = cfg["lr_decay"], cfg["lr_decay_step"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: decay ** (e / step))
    rng = np.random.default_rng(int(cfg["seed"]))
    state = TrainState()
    best_weights: dict[str, torch.Tensor] | None = None
    ds_id = _dataset_id(dataset)  # with the data fingerprint: hashed once per run
    if resume:
        if out is None or not (out / "last.pt").exists():
            raise CheckpointError("nothing to resume: no last.pt", path=out, fix="run without --resume first")
        best_weights, state = _load_checkpoint(out, cfg, net, opt, sched, rng, ds_id)
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**cfg, "dataset": dataset.name, "dataset_path": dataset.path})
    sampler = BPRSampler(dataset, rng)
    bs = int(cfg["batch_size"])
    mask_valid = bool(cfg["mask_valid_at_test"])
    metric = cfg["valid_metric"]
    t_start = time.perf_counter()
    bar = tqdm(total=int(cfg["epochs"]), initial=state.epoch, desc=f"{model}", disable=not progress,
               unit="epoch", dynamic_ncols=True)
    for epoch in range(state.epoch, int(cfg["epochs"])):
        if state.stopped_early:
            break
        t0 = time.perf_counter()
        net.train()
        net.pre_epoch(epoch, rng)
        sums: dict[str, float] = {}
        n_batches = 0
        for users, pos, neg in sampler.epoch(bs):
            terms = net.loss(users.to(device), pos.to(device), neg.to(device))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        sched.step()
        loss_means = {k: v / max(1, n_batches) for k, v in sums.items()}
        if not math.isfinite(loss_means.get("loss", 0.0)):
            raise ConfigError(f"the loss became {loss_means['loss']} at epoch {epoch}", row="learning_rate",
                              fix="lower the learning rate (--set learning_rate=...) or the loss weights")
        state.epoch_seconds.append(time.perf_counter() - t0)
        record: dict[str, Any] = {"epoch": epoch, **{f"loss_{k}" if k != "loss" else "loss": v for k, v in loss_means.items()}}
        if (epoch + 1) % int(cfg["eval_step"]) == 0 or epoch + 1 == int(cfg["epochs"]):
            t1 = time.perf_counter()
            net.prepare_eval()
            valid = evaluate(net.full_sort_scores, dataset, "valid", batch_users=int(cfg["eval_batch_users"]))
            state.eval_seconds.append(time.perf_counter() - t1)
            record["valid"] = {k: valid[k] for k in valid if "@" in k}
            score = valid[metric]
            if score > state.best_score:
                state.best_score, state.best_epoch, state.bad_steps = score, epoch, 0
                test = evaluate(net.full_sort_scores, dataset, "test", mask_valid=mask_valid,
                                batch_users=int(cfg["eval_batch_users"]))
                state.best_valid = record["valid"]
                state.best_test = {k: test[k] for k in test if "@" in k}
                best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
                if out is not None:
                    with atomic_path(out / "best.pt") as tmp:
                        torch.save(best_weights, tmp)
            else:
                state.bad_steps += 1
                if state.bad_steps > int(cfg["stopping_step"]):
                    state.stopped_early = True
        state.history.append(record)
        state.epoch = epoch + 1
        for cb in callbacks or []:
            cb(epoch, net, record)
        if out is not None:
            _save_checkpoint(out, cfg, net, opt, sched, rng, state, ds_id)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_means.get('loss', float('nan')):.4f}",
                        **({metric: f"{record['valid'][metric]:.4f}"} if "valid" in record else {}))
        if verbose:
            line = f"epoch {epoch:4d}  loss {loss_means.get('loss', float('nan')):.4f}"
            if "valid" in record:
                line += "  valid " + format_metrics(record["valid"], (metric, "ndcg@20"))
            print(line)
        if cfg["max_minutes"] and time.perf_counter() - t_start > 60 * cfg["max_minutes"]:
            break
    bar.close()
    if best_weights is not None:
        net.load_state_dict(best_weights)
    net.prepare_eval()
    record = _run_record(model, dataset, cfg, net, state, device)
    record["data_fingerprint"] = ds_id["fingerprint"]  # load_run refuses to serve it on other data
    if out is not None:
        write_json(out / "metrics.json", record)
    return net, record


def _run_record(model, dataset, cfg, net, state: TrainState, device) -> dict:
    feature_source = getattr(net, "feature_source", None)
    return {
        "model": model,
        "dataset": dataset.name,
        "dataset_path": str(dataset.path) if dataset.path else None,
        "config": {k: v for k, v in cfg.items()},
        "feature_source": feature_source,
        # AlignRec's / FREEDOM's feature mode (None for models without one): every table must say it
        "finetune_features": cfg.get("finetune_features"),
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "valid": state.best_valid,
        "test": state.best_test,
        "seconds_per_epoch": statistics.median(state.epoch_seconds) if state.epoch_seconds else None,
        "eval_seconds": statistics.median(state.eval_seconds) if state.eval_seconds else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "n_parameters": net.n_parameters(),
        "device": str(device),
        "versions": versions(),
        "history": state.history,
    }


def _dataset_id(dataset: RecDataset) -> dict:
    """What identifies a run's dataset in its checkpoint (checked before resuming)."""
    from .checks import dataset_fingerprint

    return {"name": dataset.name, "n_users": int(dataset.n_users), "n_items": int(dataset.n_items),
            "n_train": int(len(dataset.train)), "fingerprint": dataset_fingerprint(dataset)}


def _save_checkpoint(out: Path, cfg, net, opt, sched, rng: np.random.Generator, state: TrainState,
                     dataset_id: dict) -> None:
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


def _load_checkpoint(out: Path, cfg, net, opt, sched, rng, dataset_id: dict) -> tuple[dict | None, TrainState]:
    path = out / "last.pt"
    ckpt = load_checkpoint_file(path)
    missing = [k for k in _CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(_CKPT_KEYS)
    if missing:
        raise CheckpointError(f"not a training checkpoint (missing {', '.join(missing)})", path=path,
                              fix="resume only from the last.pt that `alignrec-lite train --out` wrote, "
                              "or start again with --overwrite")
    made_on = ckpt.get("dataset")
    sizes = ("name", "n_users", "n_items", "n_train")
    if isinstance(made_on, dict) and any(made_on.get(k) != dataset_id.get(k) for k in sizes):
        raise CheckpointError(
            f"the checkpoint was made on another dataset ({made_on.get('name')}: {made_on.get('n_users')} users x "
            f"{made_on.get('n_items')} items; this one is {dataset_id['name']}: {dataset_id['n_users']} x "
            f"{dataset_id['n_items']})",
            path=path, fix="resume with the dataset the run was started with, or start a new run folder")
    if isinstance(made_on, dict) and isinstance(made_on.get("fingerprint"), dict):
        from .checks import fingerprint_changes

        diff = fingerprint_changes(made_on["fingerprint"], dataset_id["fingerprint"])
        if diff:
            raise CheckpointError(f"the data changed since the checkpoint was made (changed: {', '.join(diff)})", path=path,
                                  fix="resume with the data the run was started on, or start a new run folder")
    saved = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    # every setting that alters the result must match (epochs may grow; device, eval batch, time cap may change)
    changed = [k for k in sorted(set(saved) | {k for k in cfg if isinstance(cfg[k], (int, float, str, bool))})
               if k not in RESUME_MAY_CHANGE and saved.get(k) != cfg.get(k)]
    if changed:
        shown = ", ".join(f"{k}: {saved.get(k, 'unset')!r} then, {cfg.get(k, 'unset')!r} now" for k in changed[:4])
        raise CheckpointError(f"the checkpoint was made with different settings ({shown})",
                              path=out / "last.pt", fix="resume with the same --set values, or start a new run folder")
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
        raise CheckpointError(f"the checkpoint does not fit this model and dataset ({_first_reason(exc)})",
                              path=path, fix="resume with the dataset and settings the run was started with, "
                              "or start a new run folder") from None
    best = None
    if (out / "best.pt").exists():
        best = load_checkpoint_file(out / "best.pt")
        if not isinstance(best, dict):
            raise CheckpointError("best.pt does not hold model weights", path=out / "best.pt",
                                  fix="delete it; it is rewritten at the next improvement")
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

    from .data.mmrec import load_mmrec

    from .checks import check_regular_file, dataset_fingerprint, entry_exists, fingerprint_changes

    run = Path(run)
    rec_path = run / "metrics.json"
    if run.exists() and not run.is_dir():
        raise CheckpointError("expected a run folder, found a file", path=run,
                              fix="pass the --out folder of a completed `alignrec-lite train`")
    if entry_exists(rec_path):
        check_regular_file(rec_path, "run record", error=CheckpointError)
    if not rec_path.exists():
        raise CheckpointError("not a finished run (no metrics.json)", path=run,
                              fix="pass the --out folder of a completed `alignrec-lite train`")
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
        name = record["model"]
        cfg = record["config"]
        if not isinstance(name, str) or not isinstance(cfg, dict):
            raise TypeError
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError) as exc:
        raise CheckpointError(f"metrics.json is damaged ({type(exc).__name__})", path=rec_path,
                              fix="retrain into a fresh folder") from None
    if dataset is None:
        if not record.get("dataset_path"):
            raise CheckpointError("the run does not record its dataset folder", path=rec_path,
                                  fix="pass the dataset explicitly")
        if not Path(record["dataset_path"]).is_dir():
            raise CheckpointError(f"the dataset folder the run was trained on is gone ({record['dataset_path']})",
                                  path=rec_path, row="dataset_path",
                                  fix="restore that folder, or set dataset_path in metrics.json to its new place")
        dataset = load_mmrec(record["dataset_path"])
    made_on = record.get("data_fingerprint")
    if isinstance(made_on, dict):  # runs before issue 16 carry none and are served as before
        diff = fingerprint_changes(made_on, dataset_fingerprint(dataset))
        if diff:
            raise CheckpointError(
                f"the data changed since this run was trained (changed: {', '.join(diff)}); its weights would "
                f"be served against other IDs and features", path=dataset.path or rec_path, row="data_fingerprint",
                fix="retrain on the current data (alignrec-lite train … --out NEW_RUN), or restore the data "
                "the run was trained on")
    try:
        from .checks import check_config_ranges

        check_config_ranges(cfg)  # an edited record must not allocate n_layers=10**6 layers
        net = build_model(name, dataset, cfg)
    except ConfigError as exc:
        raise CheckpointError(f"the run's settings do not fit ({exc.message})", path=rec_path,
                              row=exc.row if isinstance(exc.row, str) else None,
                              fix="retrain into a fresh folder") from None
    weights = load_checkpoint_file(run / "best.pt")
    try:
        if not isinstance(weights, dict):
            raise TypeError(f"expected a dict of tensors, found a {type(weights).__name__}")
        net.load_state_dict(weights)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"the weights do not fit this dataset/model ({_first_reason(exc)})",
                              path=run / "best.pt", fix="use the dataset the run was trained on") from None
    bad = [k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # a diverged or damaged run: it would rank nothing (an empty export) or garbage
        raise CheckpointError(f"the weights hold NaN or inf ({', '.join(bad[:3])})", path=run / "best.pt",
                              fix="retrain (lower the learning rate if the loss diverged) or restore the file")
    net.prepare_eval()
    return net, record, dataset
