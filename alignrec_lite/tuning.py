"""Hyper-parameter tuning: a small search that selects on the **validation** split.

MMRec's ``quick_start`` (and so the official AlignRec code) runs the whole grid and
reports the grid point with the best *test* Recall@20 (MMRec issue #64;
ALIGNREC_SPEC §4, §7 #15): the reported test number is then optimistically
biased. Here every trial is trained with :func:`alignrec_lite.train.train`
(early stopping on valid Recall@20 inside the run), and the trial with the best
**valid** ``recall@20`` is selected. Each trial's test metrics are recorded for
reporting only and never influence the choice.

Files written under ``out`` (every file atomically, after each trial, so an
interrupted search keeps what it finished and resumes where it stopped)::

    out/trials/000.json ...   one run record per trial (params, valid, test, times)
    out/trials.jsonl          all trials so far, one per line
    out/best.json             the selected trial and how it was selected

Every trial starts from the same tuned preset (``preset="auto"``: the one named like the
dataset, as :func:`alignrec_lite.train.train` does; ``"none"``; or a preset name); the
preset applied is recorded in each trial and in ``best.json``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_int, check_out_dir, dataset_fingerprint
from .config import pick_preset, resolve_config
from .data.mmrec import RecDataset
from .errors import CheckpointError, ConfigError
from .files import atomic_write, out_lock, write_json

MODES = ("grid", "random")


def expand_space(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """All grid points of ``space`` in order (the last key varies fastest).

    Args:
        space: setting name -> list of values.

    Returns:
        One dict per grid point.
    """
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def plan_trials(
    space: Mapping[str, Sequence[Any]], *, budget: int | None = None, mode: str = "grid", seed: int = 0
) -> list[dict[str, Any]]:
    """The settings to try, in order.

    * ``"grid"``: every grid point in order; ``budget`` keeps the first ``budget``.
    * ``"random"``: ``budget`` grid points drawn without replacement with ``seed``
      (all of them, shuffled, when ``budget`` is ``None``).

    Raises:
        ConfigError: unknown mode, empty value list, or a budget below 1.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}", row="mode", fix="use grid or random")
    if not space:
        raise ConfigError("the search space is empty", row="space", fix="give at least one --grid key=v1,v2")
    for key, values in space.items():
        if len(values) == 0:
            raise ConfigError(f"no values for {key!r}", row=key, fix=f"e.g. --grid {key}=v1,v2")
    if budget is not None:
        budget = check_int(budget, "budget", 1, 10**6, example=6)
    points = expand_space(space)
    if mode == "random":
        order = np.random.default_rng(seed).permutation(len(points))
        points = [points[i] for i in order]
    return points[:budget] if budget is not None else points


def _typed(
    model: str, dataset_name: str, point: Mapping[str, Any], base: Mapping[str, Any], preset: str | None = "auto"
) -> dict[str, Any]:
    """Coerce a trial's values (CLI strings) to the types of the defaults, validating keys."""
    # resolving the whole config checks the keys and values (with the preset the trials train with)
    cfg = resolve_config(model, {**base, **point}, dataset_name, preset=preset)
    return {k: cfg[k] for k in point}


def search(
    dataset: RecDataset,
    model: str,
    space: Mapping[str, Sequence[Any]],
    *,
    budget: int | None = None,
    mode: str = "grid",
    seed: int = 0,
    out: str | Path | None = None,
    base_overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    keep_runs: bool = False,
    metric: str = "recall@20",
    on_trial: Callable[[dict], None] | None = None,
    preset: str | None = "auto",
) -> dict:
    """Train one run per setting and select the best on **valid** ``metric``.

    Never selects on test (MMRec issue #64): the test metrics of each trial are
    stored next to the valid ones so that a report can show both, but only the
    valid value decides. Ties keep the earlier trial.

    Args:
        dataset: the data.
        model: a registered model name.
        space: setting -> values to try, e.g. ``{"learning_rate": [1e-3, 5e-4]}``.
        budget: the most trials to run (``None``: the whole grid).
        mode: ``"grid"`` (in order) or ``"random"`` (seeded draw from the grid).
        seed: seed of the random draw (not of the training: set ``seed`` in
            ``base_overrides`` or ``space`` for that).
        out: folder for ``trials/*.json``, ``trials.jsonl`` and ``best.json``
            (``None``: keep nothing on disk). Trials already recorded there with
            the same settings are reused, so an interrupted search resumes.
        base_overrides: settings shared by every trial (epochs, max_minutes, ...).
        progress: show a progress bar over trials.
        keep_runs: also keep each trial's checkpoints in ``out/runs/NNN``.
        metric: the valid metric to maximise (``recall@20``).
        on_trial: called with each trial's record when it finishes.
        preset: the tuned preset every trial starts from (``"auto"``, ``"none"`` or a
            preset name; see :func:`alignrec_lite.config.pick_preset`).

    Returns:
        The ``best.json`` content: ``best_trial``, ``params``, ``valid``, ``test``, ``seconds_per_epoch``,
        ``selected_on`` (``"valid"``), ``metric``, ``trials`` (all records), ...

    Raises:
        ConfigError: an unknown setting, preset, a bad value, mode or budget.
    """
    base = dict(base_overrides or {})
    name = getattr(dataset, "name", None)
    chosen = pick_preset(model, name, preset)  # resolved once: every trial trains with the same preset
    points = plan_trials(space, budget=budget, mode=mode, seed=seed)
    typed = [_typed(model, name, p, base, chosen) for p in points]  # validate every point before training
    base_typed = _typed(model, name, base, {}, chosen) if base else {}
    fingerprint = dataset_fingerprint(dataset)
    out = Path(out) if out is not None else None

    def run(folder: Path | None) -> dict:  # the search itself, with or without an output folder
        return _search(
            dataset,
            model,
            space,
            typed,
            base,
            base_typed,
            fingerprint,
            folder,
            budget=budget,
            mode=mode,
            seed=seed,
            progress=progress,
            keep_runs=keep_runs,
            metric=metric,
            on_trial=on_trial,
            preset=chosen,
        )

    if out is None:
        return run(None)
    check_out_dir(out, "--out")
    # the lock keeps two searches from writing one folder; trials made on other data are refused
    # before any work, while trials with the same settings on the same data are reused (resume)
    with out_lock(out):
        _check_trials(out, model, name, fingerprint)  # a reused --out of another dataset is refused
        (out / "trials").mkdir(parents=True, exist_ok=True)
        return run(out)


def _search(
    dataset: RecDataset,
    model: str,
    space: Mapping[str, Sequence[Any]],
    typed: list[dict],
    base: dict,
    base_typed: dict,
    fingerprint: dict,
    out: Path | None,
    *,
    budget: int | None,
    mode: str,
    seed: int,
    progress: bool,
    keep_runs: bool,
    metric: str,
    on_trial: Callable[[dict], None] | None,
    preset: str | None = None,
) -> dict:
    """The body of :func:`search` (settings validated, ``out`` locked and checked)."""
    from tqdm.auto import tqdm

    from .train import train

    name = getattr(dataset, "name", None)
    records: list[dict] = []
    bar = tqdm(typed, desc=f"search {model}", disable=not progress, unit="trial")
    auto = pick_preset(model, name, "auto")  # what trials recorded before presets were explicit used
    for i, params in enumerate(bar):
        rec = _load_trial(out, i, model, params, base_typed, fingerprint)
        if rec is not None and rec.get("preset", auto) != preset:
            rec = None  # a finished trial of an earlier search, but made with another preset: train again
        if rec is None:
            t0 = time.perf_counter()
            run_dir = out / "runs" / f"{i:03d}" if (out is not None and keep_runs) else None
            # the trial's own values win over the shared ones (dict order: base first, then params)
            _, run = train(dataset, model, {**base, **params}, preset=preset, out=run_dir, progress=False)
            rec = {
                "trial": i,
                "model": model,
                "dataset": name,
                "params": params,
                "base_overrides": base_typed,
                "preset": preset,
                "valid": run["valid"],
                "test": run["test"],
                "best_epoch": run["best_epoch"],
                "epochs_run": run["epochs_run"],
                "stopped_early": run["stopped_early"],
                "seconds_per_epoch": run["seconds_per_epoch"],
                "seconds": round(time.perf_counter() - t0, 2),
                "feature_source": run.get("feature_source"),
                "config": run["config"],
                "data_fingerprint": fingerprint,
            }
            if out is not None:
                write_json(out / "trials" / f"{i:03d}.json", rec)
        records.append(rec)
        if out is not None:  # rewritten whole after every trial (atomically), never appended to
            with atomic_write(out / "trials.jsonl") as fh:
                for r in records:
                    fh.write(json.dumps(r, default=str) + "\n")
        if on_trial is not None:
            on_trial(rec)
        bar.set_postfix({f"valid {metric}": rec["valid"].get(metric)})
    bar.close()
    best = select_best(records, metric)  # on valid only; the test values ride along for reporting
    result = {
        "model": model,
        "dataset": name,
        "selected_on": "valid",
        "metric": metric,
        "best_trial": best["trial"],
        "params": best["params"],
        "valid": best["valid"],
        "test": best["test"],
        "seconds_per_epoch": best.get("seconds_per_epoch"),  # None for a trial recorded before it was kept
        "base_overrides": base_typed,
        "preset": preset,
        "space": {k: list(v) for k, v in space.items()},
        "mode": mode,
        "budget": budget,
        "seed": seed,
        "n_trials": len(records),
        "data_fingerprint": fingerprint,
        "trials": [{k: r[k] for k in ("trial", "params", "valid", "test", "best_epoch", "seconds")} for r in records],
    }
    if out is not None:
        write_json(out / "best.json", result)
    return result


def select_best(records: Sequence[Mapping[str, Any]], metric: str = "recall@20") -> Mapping[str, Any]:
    """The record with the highest **valid** ``metric`` (the first one on ties).

    Raises:
        ConfigError: no records, or the metric is missing.
    """
    if not records:
        raise ConfigError("no trials to select from", row="budget", fix="run at least one trial")
    best = None
    for r in records:
        if metric not in r["valid"]:
            raise ConfigError(
                f"valid metric {metric!r} is not recorded", row="metric", fix="use recall@20, ndcg@20, ..."
            )
        if best is None or r["valid"][metric] > best["valid"][metric]:
            best = r
    return best


TRIAL_KEYS = {"trial": int, "params": dict, "valid": dict, "test": dict, "best_epoch": int, "seconds": (int, float)}


def _read_trial(path: Path) -> dict:
    """One trial record, checked: a damaged one is refused by name, never half-used."""
    from .checks import check_regular_file

    check_regular_file(path, "trial record", error=CheckpointError)
    fix = f"delete {path.name} to run that trial again, or use another --out"
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the trial record is damaged ({type(exc).__name__})", path=path, fix=fix) from None
    if not isinstance(rec, dict):
        raise CheckpointError(f"the trial record is not a JSON object ({type(rec).__name__})", path=path, fix=fix)
    for key, kind in TRIAL_KEYS.items():
        if not isinstance(rec.get(key), kind) or isinstance(rec.get(key), bool):
            raise CheckpointError(f"the trial record has no valid {key!r}", path=path, row=key, fix=fix)
    bad = [k for k, v in rec["valid"].items() if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise CheckpointError(
            f"the trial record's valid metric {bad[0]!r} is not a number", path=path, row="valid", fix=fix
        )
    return rec


def _check_trials(out: Path, model: str, dataset_name: str | None, fingerprint: Mapping[str, str]) -> None:
    """Refuse an ``out`` whose recorded trials were made on other data (or are damaged)."""
    from .checks import fingerprint_changes

    if not (out / "trials").is_dir():
        return
    for path in sorted((out / "trials").glob("*.json")):
        rec = _read_trial(path)
        made_on = rec.get("data_fingerprint")
        other = rec.get("dataset") != dataset_name
        diff = fingerprint_changes(made_on, fingerprint) if isinstance(made_on, dict) else []
        if other or diff:
            what = f"dataset {rec.get('dataset')!r}" if other else f"other data ({', '.join(diff)} differ)"
            raise CheckpointError(
                f"this search folder holds trials made on {what}",
                path=path,
                row="--out",
                fix="use another --out for this dataset (or delete the old search folder)",
            )


def _load_trial(
    out: Path | None,
    i: int,
    model: str,
    params: Mapping[str, Any],
    base: Mapping[str, Any],
    fingerprint: Mapping[str, str] | None = None,
) -> dict | None:
    """A finished trial from an earlier, interrupted search with the same settings and data (else ``None``)."""
    if out is None:
        return None
    path = out / "trials" / f"{i:03d}.json"
    if not path.exists():
        return None
    rec = _read_trial(path)
    # compare in JSON form: the record on disk went through JSON (tuples became lists, ints stayed ints)
    same = (
        rec.get("model") == model
        and rec.get("params") == json.loads(json.dumps(params))
        and rec.get("base_overrides") == json.loads(json.dumps(base))
        and (fingerprint is None or rec.get("data_fingerprint") == dict(fingerprint))
    )
    return rec if same else None


def parse_grid_args(items: Sequence[str] | None) -> dict[str, list[str]]:
    """Parse ``["learning_rate=0.001,0.0005", ...]`` from ``--grid`` (values stay strings).

    Raises:
        ConfigError: an item without ``=`` or without values, or a key given twice.
    """
    space: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise ConfigError(
                f"--grid expects key=v1,v2,..., got {item!r}",
                row="--grid",
                fix="e.g. --grid learning_rate=0.001,0.0005",
            )
        if key in space:
            raise ConfigError(f"--grid {key} given twice", row="--grid", fix="list all values in one --grid")
        space[key] = vals
    return space


__all__ = ["search", "plan_trials", "expand_space", "select_best", "parse_grid_args", "MODES"]
