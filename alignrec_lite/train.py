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
  ``config.json`` and ``metrics.json`` (a :class:`~alignrec_lite.runs.RunRecord`), all written
  atomically (the run folder's files and :func:`~alignrec_lite.runs.load_run` live in
  :mod:`alignrec_lite.runs`);
* tuned presets are chosen explicitly: ``preset="auto"`` applies the preset named like the
  dataset when there is one (:data:`alignrec_lite.config.TUNED_DEFAULTS`), ``"none"`` none;
  the record says which one was applied (its top-level ``"preset"``).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import pick_preset, resolve_config
from .data.mmrec import RecDataset
from .errors import CheckpointError, ConfigError
from .evaluate import evaluate, format_metrics
from .files import atomic_path, out_lock, write_json
from .models import Recommender, get_model_class
from .runs import RunRecord, TrainState, dataset_identity, resume_checkpoint, save_checkpoint
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
        # each training pair as one int64 code u * n_items + i, sorted: membership is a binary search
        self.keys = np.unique(self.pairs[:, 0] * self.n_items + self.pairs[:, 1])  # sorted (u, i) codes
        # a user who bought every candidate has no negative: rejection sampling would never end
        full = np.bincount(self.pairs[:, 0]) >= len(self.candidates)
        if full.any():
            u = int(np.flatnonzero(full)[0])
            raise ConfigError(
                f"user {u} interacted with every training item; no negative can be sampled",
                row=f"userID {u}",
                fix="remove that user or add items",
            )

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        codes = users * self.n_items + items
        pos = np.searchsorted(self.keys, codes)
        pos = np.minimum(pos, len(self.keys) - 1)  # a code above every key would index past the end
        return self.keys[pos] == codes

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """One negative per user entry, never a training positive of that user."""
        neg = self.candidates[self.rng.integers(0, len(self.candidates), size=len(users))]
        bad = np.flatnonzero(self._is_positive(users, neg))
        # redraw only the rejected entries, in order: the draws (and so a seeded run) are fixed by the rng
        while len(bad):
            neg[bad] = self.candidates[self.rng.integers(0, len(self.candidates), size=len(bad))]
            bad = bad[self._is_positive(users[bad], neg[bad])]
        return neg

    def epoch(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Shuffled batches of ``(users, positives, negatives)`` as int64 tensors."""
        order = self.rng.permutation(len(self.pairs))
        users, pos = self.pairs[order, 0], self.pairs[order, 1]
        neg = self.sample_negatives(users)  # the whole epoch's negatives at once (vectorised), then sliced
        for s in range(0, len(order), batch_size):
            sl = slice(s, s + batch_size)
            yield torch.from_numpy(users[sl]), torch.from_numpy(pos[sl]), torch.from_numpy(neg[sl])

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.pairs) / batch_size)


EpochCallback = Callable[[int, Recommender, dict], None]


def train(
    dataset: RecDataset,
    model: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    preset: str | None = "auto",
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
        preset: the tuned preset the defaults start from: ``"auto"`` (the preset named like
            the dataset, when it has settings for ``model``; else none), ``"none"``, or a
            preset name of :data:`~alignrec_lite.config.TUNED_DEFAULTS` (``"toy"``,
            ``"movielens"``, ``"baby"``). ``overrides`` win over the preset.
        out: run folder for checkpoints and records (``None``: keep nothing on disk).
        resume: continue from ``out/last.pt``.
        progress: show a ``tqdm.auto`` progress bar over epochs.
        callbacks: functions ``f(epoch, model, epoch_record)`` called after each
            epoch (e.g. an alignment/uniformity tracker); ``epoch_record`` holds the
            mean loss terms and the valid metrics of that epoch.
        verbose: print one line per epoch.

    Returns:
        ``(model with the best-on-valid weights, in eval mode; the run record)``.
        The record is the JSON form of a :class:`~alignrec_lite.runs.RunRecord`, what
        ``metrics.json`` holds.

    Raises:
        ConfigError: unknown model, setting or preset, or a bad value.
        CheckpointError: another process (or thread) is training into ``out`` (it holds
            ``.OUT.lock`` beside the folder; the message names its pid).
    """
    from .checks import check_train_inputs

    check_train_inputs(dataset, model, overrides, out)  # types, empty splits, output folder
    chosen = pick_preset(model, dataset.name, preset)  # the preset's name, or None
    cfg = resolve_config(model, overrides, dataset.name, preset=chosen)
    check_train_inputs(dataset, model, overrides, out, cfg=cfg)  # memory estimate of these settings
    out = Path(out) if out is not None else None
    # the run folder's lock, as the CLI takes it (re-entered when the CLI holds it already): two trainings
    # into one folder never interleave their checkpoints
    on_cpu = get_device(cfg["device"]).type == "cpu"
    with _run_lock(out), deterministic_cpu(on_cpu), keep_freed_memory(on_cpu):
        return _train(dataset, model, cfg, chosen, out, resume, progress, callbacks, verbose)


def _run_lock(out: Path | None) -> contextlib.AbstractContextManager[Any]:
    """:func:`~alignrec_lite.files.out_lock` of the run folder (nothing without one)."""
    if out is None:
        return contextlib.nullcontext()
    out.parent.mkdir(parents=True, exist_ok=True)  # where the lock file lives (checked writable above)
    return out_lock(out, reentrant=True)


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


#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _glibc() -> Any:
    """The C library as a ``ctypes`` handle when it is glibc (which has ``mallopt``), else ``None``."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True) -> Iterator[None]:
    """Let the C allocator keep the memory one training step frees for the next one (glibc only).

    Every batch allocates and frees the same large temporaries (propagated layers, the
    ``(m, m)`` logit block, gradients). glibc hands memory above its trim threshold back
    to the system when it is freed, so the next batch takes it again page by page (page
    faults, zero-filling): 10-20 % of a CPU batch on the project's machine
    (docs/benchmarks/models.md §1.3). Inside this block freed memory stays in the
    process (``M_TRIM_THRESHOLD`` 1 GiB, ``M_MMAP_THRESHOLD`` 1 GiB); afterwards the
    thresholds are set to the largest values glibc's own adaptive policy reaches
    (32 MiB / 64 MiB) and the kept memory is released (``malloc_trim``). Peak memory is
    unchanged; numbers are unchanged. Elsewhere (macOS, Windows, musl) it does nothing.
    """
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    libc.mallopt(_M_MMAP_THRESHOLD, 2**30)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)
        libc.malloc_trim(0)


def make_optimizer(net: torch.nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Adam:
    """The trainer's Adam: ``learning_rate``, ``weight_decay``, one fused kernel per step where torch has one.

    The fused implementation (CPU and CUDA) updates every parameter in one pass instead of
    about ten element-wise passes per tensor: 3-4x faster on AlignRec's fine-tuned
    7,050 x 768 feature table. Same update rule; the results differ from the for-loop
    implementation in the last bits (~1e-7).
    """
    params = [p for p in net.parameters()]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"], fused=fused or None)


def _train(
    dataset: RecDataset,
    model: str,
    cfg: dict,
    preset: str | None,
    out: Path | None,
    resume: bool,
    progress: bool,
    callbacks: list[EpochCallback] | None,
    verbose: bool,
) -> tuple[Recommender, dict]:
    """The body of :func:`train` (which resolves ``cfg`` and wraps this in :func:`deterministic_cpu`)."""
    from tqdm.auto import tqdm

    device = get_device(cfg["device"])
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(
            "the run folder is an existing file",
            path=out,
            row="--out",
            fix="pass a folder name for the run (it is created if missing)",
        )
    # seed torch/NumPy/Python before the model exists: its initial weights are the first draws
    seed_everything(int(cfg["seed"]))
    net = get_model_class(model)(dataset, cfg).to(device)  # cfg is resolved and checked already
    opt = make_optimizer(net, cfg)
    decay, step = cfg["lr_decay"], cfg["lr_decay_step"]
    # MMRec's schedule: lr * decay ** (epoch / step), a smooth decay stepped once per epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: decay ** (e / step))
    # one generator for every NumPy draw of the run (shuffles, negatives, FREEDOM's edge dropping), kept in
    # last.pt so that a resumed run draws exactly what the uninterrupted run would have drawn
    rng = np.random.default_rng(int(cfg["seed"]))
    state = TrainState()
    best_weights: dict[str, torch.Tensor] | None = None
    ds_id = dataset_identity(dataset)  # with the data fingerprint: hashed once per run
    if resume:
        if out is None or not (out / "last.pt").exists():
            raise CheckpointError("nothing to resume: no last.pt", path=out, fix="run without --resume first")
        best_weights, state = resume_checkpoint(out, cfg, net, opt, sched, rng, ds_id)
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**cfg, "dataset": dataset.name, "dataset_path": dataset.path})
    sampler = BPRSampler(dataset, rng)
    bs = int(cfg["batch_size"])
    mask_valid = bool(cfg["mask_valid_at_test"])
    metric = cfg["valid_metric"]
    t_start = time.perf_counter()
    bar = tqdm(
        total=int(cfg["epochs"]),
        initial=state.epoch,
        desc=f"{model}",
        disable=not progress,
        unit="epoch",
        dynamic_ncols=True,
    )
    for epoch in range(state.epoch, int(cfg["epochs"])):
        if state.stopped_early:
            break
        t0 = time.perf_counter()
        net.train()  # also drops the model's cached eval vectors
        net.pre_epoch(epoch, rng)  # per-epoch model hook, drawn from the run's rng (FREEDOM's denoised graph)
        sums: dict[str, float] = {}
        n_batches = 0
        for users, pos, neg in sampler.epoch(bs):
            terms = net.loss(users.to(device), pos.to(device), neg.to(device))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():  # epoch means of every loss term, for the history
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        sched.step()
        loss_means = {k: v / max(1, n_batches) for k, v in sums.items()}
        if not math.isfinite(loss_means.get("loss", 0.0)):
            raise ConfigError(
                f"the loss became {loss_means['loss']} at epoch {epoch}",
                row="learning_rate",
                fix="lower the learning rate (--set learning_rate=...) or the loss weights",
            )
        state.epoch_seconds.append(time.perf_counter() - t0)
        record: dict[str, Any] = {
            "epoch": epoch,
            **{f"loss_{k}" if k != "loss" else "loss": v for k, v in loss_means.items()},
        }
        # validate every eval_step epochs and always after the last one, so a run never ends unevaluated
        if (epoch + 1) % int(cfg["eval_step"]) == 0 or epoch + 1 == int(cfg["epochs"]):
            t1 = time.perf_counter()
            net.prepare_eval()  # eval mode + the final vectors computed once for all user batches
            valid = evaluate(net.full_sort_scores, dataset, "valid", batch_users=int(cfg["eval_batch_users"]))
            state.eval_seconds.append(time.perf_counter() - t1)
            record["valid"] = {k: valid[k] for k in valid if "@" in k}
            score = valid[metric]  # rounded to 4 decimals by evaluate(), as MMRec compares
            if score > state.best_score:  # strict: a tie keeps the earlier epoch
                # test is evaluated only at a new best valid score: it is reported, never used to select
                state.best_score, state.best_epoch, state.bad_steps = score, epoch, 0
                test = evaluate(
                    net.full_sort_scores,
                    dataset,
                    "test",
                    mask_valid=mask_valid,
                    batch_users=int(cfg["eval_batch_users"]),
                )
                state.best_valid = record["valid"]
                state.best_test = {k: test[k] for k in test if "@" in k}
                best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}  # a copy, not views
                if out is not None:
                    with atomic_path(out / "best.pt") as tmp:
                        torch.save(best_weights, tmp)
            else:
                state.bad_steps += 1  # early stopping: stopping_step + 1 evaluations without improvement
                if state.bad_steps > int(cfg["stopping_step"]):
                    state.stopped_early = True
        state.history.append(record)
        state.epoch = epoch + 1
        for cb in callbacks or []:
            cb(epoch, net, record)
        if out is not None:  # after every epoch, so an interrupted run resumes from the last finished one
            save_checkpoint(out, cfg, net, opt, sched, rng, state, ds_id)
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss_means.get('loss', float('nan')):.4f}",
            **({metric: f"{record['valid'][metric]:.4f}"} if "valid" in record else {}),
        )
        if verbose:
            line = f"epoch {epoch:4d}  loss {loss_means.get('loss', float('nan')):.4f}"
            if "valid" in record:
                line += "  valid " + format_metrics(record["valid"], (metric, "ndcg@20"))
            print(line)
        # the time cap is checked between epochs: an epoch is never cut in the middle
        if cfg["max_minutes"] and time.perf_counter() - t_start > 60 * cfg["max_minutes"]:
            break
    bar.close()
    if best_weights is not None:  # return the best-on-valid model, not the last one
        net.load_state_dict(best_weights)
    net.prepare_eval()
    record = _run_record(model, dataset, cfg, preset, net, state, device)
    record.data_fingerprint = ds_id["fingerprint"]  # load_run refuses to serve it on other data
    if out is not None:
        write_json(out / "metrics.json", record.to_json())
    return net, record.to_json()


def _run_record(model, dataset, cfg, preset, net, state: TrainState, device) -> RunRecord:
    feature_source = getattr(net, "feature_source", None)
    return RunRecord(
        model=model,
        dataset=dataset.name,
        dataset_path=str(dataset.path) if dataset.path else None,
        config={k: v for k, v in cfg.items()},
        preset=preset,
        feature_source=feature_source,
        # AlignRec's / FREEDOM's feature mode (None for models without one): every table must say it
        finetune_features=cfg.get("finetune_features"),
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        valid=state.best_valid,
        test=state.best_test,
        seconds_per_epoch=statistics.median(state.epoch_seconds) if state.epoch_seconds else None,
        eval_seconds=statistics.median(state.eval_seconds) if state.eval_seconds else None,
        peak_rss_mb=round(peak_rss_mb(), 1),
        n_parameters=net.n_parameters(),
        device=str(device),
        versions=versions(),
        history=state.history,
    )
