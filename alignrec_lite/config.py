"""Flat run configurations: trainer defaults + model defaults + tuned defaults + overrides.

``alignrec-lite train DIR --model lightgcn --set learning_rate=0.005 --set epochs=50``
turns into :func:`resolve_config` ``("lightgcn", {"learning_rate": "0.005", "epochs": "50"})``.
Values given as strings are converted to the type of the default; unknown keys and
bad values raise :class:`~alignrec_lite.errors.ConfigError` listing what is allowed.

* :data:`TUNED_DEFAULTS` holds the tuned presets; :func:`pick_preset` says which one a
  run gets (``preset="auto"``: the one named like the dataset; ``"none"``; or a name);
* :data:`CONFIG_RANGES` gives every numeric setting a type and a range with sane upper
  bounds (:func:`check_config_ranges`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

#: Trainer settings, MMRec's names where MMRec has one (ALIGNREC_SPEC §2.1).
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 1000,  # maximum epochs
    "batch_size": 2048,  # training triples per batch
    "learning_rate": 0.001,  # Adam
    "weight_decay": 0.0,
    # lr_t = lr * lr_decay ** (epoch / lr_decay_step), stepped per epoch (MMRec's learning_rate_scheduler).
    # 1.0 = constant, as MMRec's overall.yaml ([1.0, 50]) gives BPR, LightGCN, VBPR and FREEDOM; AlignRec's
    # own defaults set 0.96 (its yaml's [0.96, 50]). --set lr_decay=0.96 puts the decay on any model.
    "lr_decay": 1.0,
    "lr_decay_step": 50,
    "stopping_step": 30,  # stop after this many + 1 non-improving evaluations (AlignRec: 30)
    "valid_metric": "recall@20",
    "eval_step": 1,  # validate every N epochs
    "eval_batch_users": 1024,
    "mask_valid_at_test": False,  # MMRec does not mask validation items at test time
    "seed": 999,
    "device": "auto",
    "max_minutes": 0.0,  # wall-clock cap (0 = none); the run stops after the epoch that passes it
}

#: The two settings each model's 2 x 2 grid tuned on MovieLens and on the toy shop (the same grids on both).
GRID_KEYS: dict[str, tuple[str, str]] = {
    "bpr": ("learning_rate", "reg_weight"),
    "lightgcn": ("learning_rate", "n_layers"),
    "vbpr": ("learning_rate", "reg_weight"),
    "freedom": ("learning_rate", "reg_weight"),
    "alignrec": ("learning_rate", "cl_loss"),
}


def _grid_choice(**chosen: tuple[Any, Any]) -> dict[str, dict[str, Any]]:
    """model -> the values chosen for its :data:`GRID_KEYS`, as model -> settings."""
    return {model: dict(zip(GRID_KEYS[model], values)) for model, values in chosen.items()}


#: Hyper-parameters chosen on **valid** Recall@20 for the bundled datasets
#: (see docs/BENCHMARKS.md for how). Keys: preset (dataset) name -> model -> settings.
TUNED_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    # MMRec's Amazon Baby split: benchmarks/baby_lightgcn.py, grid n_layers {2, 3} x reg 1e-4 x lr 0.005,
    # stopping_step 20; valid R@20 0.0740 (2 layers) vs 0.0759 (3 layers) -> 3 layers.
    "baby": {"lightgcn": {"n_layers": 3, "reg_weight": 1e-4, "learning_rate": 0.005}},
    # MovieLens with posters (ml-latest-small, rating >= 4, 5-core). learning_rate: notebook 06's search
    # at full settings on the ICA stage-1 copy (AlignRec reads the ICA vector, VBPR/FREEDOM the tiny-cnn
    # image + MiniLM text tables), the same six rates 0.0003..0.1 for every model, <= 80 epochs,
    # stopping_step 10, seed 2024, best valid recall@20; every choice is interior. The second key is the
    # earlier 2 x 2 grid's (4 trials per model, seed 999, <= 300 epochs, stopping_step 20;
    # benchmarks/movielens_models.py; docs/benchmarks/models.md, whose tables used that grid's rates:
    # BPR, LightGCN, VBPR and FREEDOM 0.005, AlignRec 0.001, the edge of its two-point grid).
    "movielens": _grid_choice(
        bpr=(0.003, 0.01), lightgcn=(0.01, 3), vbpr=(0.003, 0.01), freedom=(0.01, 0.01), alignrec=(0.01, 0.01)
    ),
    # The bundled toy shop (dataset name "toy"; 4 batches per epoch, hence larger learning rates).
    # learning_rate: notebook 06's search at full settings on stage 1's ICA features (FEATURES="ica"),
    # the same six rates 0.0003..0.1 for every model, <= 80 epochs, stopping_step 10, seed 2024, best
    # valid recall@20; every choice is interior. The second key (reg_weight, n_layers, cl_loss) is the
    # earlier 2 x 2 grid's choice, kept.
    "toy": _grid_choice(
        bpr=(0.001, 0.01), lightgcn=(0.03, 3), vbpr=(0.01, 0.01), freedom=(0.01, 0.01), alignrec=(0.01, 0.01)
    ),
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}", row=key, fix=f"--set {key}=true")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}", row=key, fix=f"--set {key}={default}")
        if isinstance(default, float) and isinstance(value, int):
            return float(value)
        return _check_type(key, value, default)
    text = value.strip()
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            f = float(text)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if isinstance(default, float):
            f = float(text)
            if f != f or f in (float("inf"), float("-inf")):
                raise ValueError
            return f
        if isinstance(default, (list, tuple)):
            return json.loads(text)
    except ValueError:
        kind = type(default).__name__
        example = str(default).lower() if isinstance(default, bool) else default
        raise ConfigError(
            f"{key}={value!r} is not a valid {kind}",
            row=key,
            fix=f"give a {'whole number' if kind == 'int' else kind} like --set {key}={example}",
        ) from None
    return text


def _check_type(key: str, value: Any, default: Any) -> Any:
    """A typed value (Python API, notebook parameter) must have the default's type."""
    import numbers

    if default is None or isinstance(default, bool):
        return value
    if isinstance(default, int):
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return value
    else:
        return value
    kind = {"int": "an integer", "float": "a finite number", "str": "a string"}.get(type(default).__name__, "a list")
    raise ConfigError(f"{key} must be {kind}, got {value!r}", row=key, fix=f"e.g. {key}={default!r}")


def pick_preset(model: str, dataset: str | None = None, preset: str | None = "auto") -> str | None:
    """The tuned preset (a key of :data:`TUNED_DEFAULTS`) that applies to a run, or ``None``.

    Args:
        model: model name.
        dataset: the dataset's name (used by ``"auto"``).
        preset: ``"auto"`` — the preset named like the dataset when it has settings for
            ``model`` (else none); ``"none"`` or ``None`` — no preset; or a preset name,
            which must have settings for ``model``.

    Returns:
        The preset name, or ``None`` when no preset applies.

    Raises:
        ConfigError: an unknown preset name, or a preset without settings for ``model``.
    """
    if preset is None or preset == "none":
        return None
    if preset == "auto":
        return dataset if model in TUNED_DEFAULTS.get(dataset or "", {}) else None
    if not isinstance(preset, str) or preset not in TUNED_DEFAULTS:
        raise ConfigError(
            f"unknown preset {preset!r}", row="preset", fix="use auto, none or one of " + ", ".join(TUNED_DEFAULTS)
        )
    if model not in TUNED_DEFAULTS[preset]:
        having = [name for name, models in TUNED_DEFAULTS.items() if model in models]
        raise ConfigError(
            f"preset {preset!r} has no settings for model {model}",
            row="preset",
            fix="use auto, none" + "".join(f" or {name}" for name in having),
        )
    return preset


def resolve_config(
    model: str,
    overrides: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    *,
    model_defaults: Mapping[str, Any] | None = None,
    preset: str | None = "auto",
) -> dict[str, Any]:
    """Merge trainer defaults, the model's defaults, a tuned preset and overrides.

    Args:
        model: model name (for tuned defaults and error messages).
        overrides: user settings (strings from the command line, or typed values).
        dataset: dataset name (for ``preset="auto"``).
        model_defaults: the model class's ``defaults`` (looked up when ``None``).
        preset: which :data:`TUNED_DEFAULTS` entry to apply: ``"auto"`` (the one named
            like ``dataset``, if any), ``"none"``, or a preset name (see :func:`pick_preset`).

    Returns:
        One flat dict with every key; ``"model"`` is included (the preset is not: the
        trainer records it next to the config).

    Raises:
        ConfigError: unknown key or preset, or a value of the wrong type / range.
    """
    if model_defaults is None:
        from .models import get_model_class

        model_defaults = get_model_class(model).defaults
    cfg: dict[str, Any] = {**TRAIN_DEFAULTS, **model_defaults}
    chosen = pick_preset(model, dataset, preset)
    tuned = TUNED_DEFAULTS[chosen][model] if chosen is not None else {}
    cfg.update(tuned)
    for key, value in (overrides or {}).items():
        if key not in cfg:
            raise ConfigError(
                f"unknown setting {key!r} for model {model}",
                row=key,
                fix="valid settings: " + ", ".join(sorted(cfg)),
            )
        cfg[key] = _coerce(key, value, TRAIN_DEFAULTS.get(key, model_defaults.get(key)))
    _validate(cfg)
    cfg["model"] = model
    return cfg


def _validate(cfg: Mapping[str, Any]) -> None:
    positive = ["epochs", "batch_size", "learning_rate", "eval_step", "eval_batch_users", "lr_decay_step"]
    positive += [k for k in ("embedding_size", "knn_k") if k in cfg]
    for key in positive:
        if not cfg[key] > 0:
            raise ConfigError(f"{key} must be > 0, got {cfg[key]}", row=key, fix=f"--set {key}=<positive number>")
    for key in ("stopping_step", "weight_decay", "max_minutes"):
        if cfg[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]}", row=key, fix=f"--set {key}=0")
    if not 0 <= cfg["seed"] < 2**63:
        raise ConfigError(f"seed must be in 0 .. 2**63 - 1, got {cfg['seed']}", row="seed", fix="--set seed=999")
    if not 0 < cfg["lr_decay"] <= 1:
        raise ConfigError(
            f"lr_decay must be in (0, 1], got {cfg['lr_decay']}", row="lr_decay", fix="--set lr_decay=0.96"
        )
    metric = str(cfg["valid_metric"])
    name, _, k = metric.partition("@")
    if name not in ("recall", "ndcg", "precision", "map", "hit") or k not in ("5", "10", "20", "50"):
        raise ConfigError(
            f"valid_metric {metric!r} is not computed",
            row="valid_metric",
            fix="use recall|ndcg|precision|map|hit @ 5|10|20|50, e.g. recall@20",
        )
    if str(cfg["device"]) not in ("auto", "cpu") and not str(cfg["device"]).startswith("cuda"):
        raise ConfigError(f"unknown device {cfg['device']!r}", row="device", fix="use auto, cpu or cuda")
    check_config_ranges(cfg)  # types and ranges (with upper bounds) of every numeric setting


# ---------------------------------------------------------------------- config ranges
#: key -> (kind, low, high, low_open, high_open): every setting's type and range, with sane upper
#: bounds (a typo like n_layers=1000000 or embedding_size=1e12 is refused before anything is allocated).
_COUNT = ("int", 1, 10**6, False, False)  # a positive count of epochs, steps or users
_LAYERS = ("int", 0, 64, False, False)  # graph propagation steps
_LOSS_WEIGHT = ("float", 0.0, 1e6, False, False)
CONFIG_RANGES: dict[str, tuple[str, float, float, bool, bool]] = {
    "epochs": _COUNT,
    "seed": ("int", 0, 2**63 - 1, False, False),
    "lr_decay": ("float", 0.0, 1.0, True, False),
    "batch_size": ("int", 1, 1 << 24, False, False),
    "learning_rate": ("float", 0.0, 10.0, True, False),
    "weight_decay": ("float", 0.0, 10.0, False, False),
    "lr_decay_step": _COUNT,
    "stopping_step": ("int", 0, 10**6, False, False),
    "eval_step": _COUNT,
    "eval_batch_users": _COUNT,
    "max_minutes": ("float", 0.0, 10.0**7, False, False),
    "embedding_size": ("int", 1, 16384, False, False),
    "n_layers": _LAYERS,
    "n_ui_layers": _LAYERS,
    "knn_k": ("int", 1, 10000, False, False),
    **dict.fromkeys(("reg_weight", "cl_loss", "sim_weight", "ui_cosine_loss_weight"), _LOSS_WEIGHT),
    "cl_temperature": ("float", 0.0, 1e3, True, False),
    "dropout": ("float", 0.0, 1.0, False, True),
    "mm_image_weight": ("float", 0.0, 1.0, False, False),
    "sim_cache_mb": ("float", 0.0, 1e7, False, False),
}


#: an example value for the fix of each model setting (the trainer's come from TRAIN_DEFAULTS)
CONFIG_EXAMPLES = {
    "embedding_size": 64,
    "n_layers": 2,
    "n_ui_layers": 2,
    "knn_k": 10,
    "reg_weight": 1e-4,
    "cl_loss": 0.01,
    "sim_weight": 0.1,
    "ui_cosine_loss_weight": 0.1,
    "cl_temperature": 0.2,
    "dropout": 0.5,
    "mm_image_weight": 0.1,
    "sim_cache_mb": 512,
}


def check_config_ranges(cfg: Mapping[str, Any]) -> None:
    """Refuse any setting outside :data:`CONFIG_RANGES` (other numbers: finite, ``|x| <= 1e9``).

    Raises:
        ConfigError: naming the key, its range and a ``--set`` example.
    """
    examples = {**CONFIG_EXAMPLES, **TRAIN_DEFAULTS}
    for key, value in cfg.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        kind, lo, hi, lo_open, hi_open = CONFIG_RANGES.get(
            key, ("int" if isinstance(value, int) else "float", -1e9, 1e9, False, False)
        )
        ok = (
            math.isfinite(float(value))
            and (lo < value if lo_open else lo <= value)
            and (value < hi if hi_open else value <= hi)
        )
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            shown = value if isinstance(value, int) and abs(value) < 10**15 else f"{value:g}"
            raise ConfigError(
                f"{key} must be {'a whole number' if kind == 'int' else 'a number'} in {rng}, got {shown}",
                row=key,
                fix=f"e.g. --set {key}={examples.get(key, lo)}",
            )


def parse_set_args(items: list[str] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` from ``--set`` into a dict (strings)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}", row="--set", fix="e.g. --set epochs=50")
        out[key] = value
    return out
