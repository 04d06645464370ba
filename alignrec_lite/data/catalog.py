"""The one door to every dataset: names and folders resolved, datasets opened.

A dataset is named in one of four ways, tried in this order by :func:`resolve_dataset`:

1. an existing path (a folder in MMRec's format, as the command line always took);
2. a built-in name (:data:`BUILTIN_DATASETS`): ``"toy"`` (the bundled toy shop),
   ``"toy-smoke"`` (its small SMOKE copy), ``"movielens"`` (MovieLens ml-latest-small
   with posters, built once from ``$ALIGNREC_DATA`` into the cache and reused);
3. a name registered with ``alignrec-lite data import`` (:func:`import_mmrec`; the
   registry is ``<cache dir>/datasets.json``).

:func:`open_dataset` resolves and loads, extracting the default content features on
first use when the folder has none (``features="auto"``). :func:`~alignrec_lite.data.stage1_copies.open_stage1`
opens a dataset whose content feature is one stage-1 encoder's output.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError, DataError
from ..files import read_json, write_json
from .mmrec import RecDataset, load_mmrec

#: The names :func:`resolve_dataset` knows without a folder or a registry entry.
BUILTIN_DATASETS = {
    "toy": "the bundled toy shop",
    "toy-smoke": "the bundled toy shop's small SMOKE copy",
    "movielens": "MovieLens ml-latest-small with posters, built once from $ALIGNREC_DATA",
}
#: The folder (under the cache) that MovieLens with posters is built into.
MOVIELENS_FOLDER = "movielens-posters"
#: The content features :func:`open_dataset` extracts on first use: (image encoder, text encoder).
DEFAULT_ENCODERS = {"full": ("tiny-cnn", "minilm"), "smoke": ("tiny-cnn", None)}


# ---------------------------------------------------------------- the registry
def registry_path(registry: str | Path | None = None) -> Path:
    """The JSON registry of imported datasets (default ``<cache dir>/datasets.json``)."""
    from ..utils import cache_dir as default_cache

    return Path(registry) if registry is not None else default_cache() / "datasets.json"


def read_registry(registry: str | Path | None = None) -> dict[str, dict]:
    """Registered datasets ``{name: {"path": …, …}}`` (empty when there is no registry yet)."""
    from ..checks import entry_exists

    path = registry_path(registry)
    if not entry_exists(path):
        return {}
    data = read_json(
        path,
        "dataset registry",
        invalid="the dataset registry is not valid JSON",
        fix="delete the file and import the datasets again",
    )
    if not isinstance(data, dict) or not isinstance(data.get("datasets", {}), dict):
        raise DataError(
            "the dataset registry has an unexpected layout",
            path=path,
            fix="delete the file and import the datasets again",
        )
    reg = dict(data.get("datasets", {}))
    for name, entry in reg.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise DataError(
                f"the registry entry {name!r} has no folder path (found {type(entry).__name__})",
                path=path,
                row=f"datasets.{name}",
                fix=f"import the folder again with `alignrec-lite data import DIR --name {name}`",
            )
    return reg


def import_mmrec(folder: str | Path, name: str | None = None, registry: str | Path | None = None) -> dict:
    """Validate an MMRec folder (e.g. from MMRec's Google Drive) and register it under a name.

    The folder is loaded with :func:`~alignrec_lite.data.mmrec.load_mmrec`
    (interactions, mappings, items table and every feature file); any problem
    is reported with file, line and fix. Nothing is copied: the registry records
    the absolute path, so ``alignrec-lite train NAME`` can find it.

    Args:
        folder: the folder holding ``<name>.inter`` (and ``image_feat.npy`` …).
        name: registry name; default the ``.inter`` file's stem. The built-in names
            (:data:`BUILTIN_DATASETS`) are reserved.
        registry: the registry file (default ``<cache dir>/datasets.json``).

    Returns:
        The registry entry: ``{"name", "path", "stats", "features"}``.

    Raises:
        DataError: the folder is not a valid MMRec folder, or the name is invalid or built in.
    """
    folder = Path(folder).expanduser().resolve()
    ds = load_mmrec(folder, load_features=True)
    stats = ds.stats()
    name = name or ds.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DataError(
            f"invalid dataset name {name!r}", row="--name", fix="use letters, digits, '_', '.' and '-' only"
        )
    entry = {
        "name": name,
        "path": str(folder),
        "inter": f"{ds.name}.inter",
        "stats": stats,
        "features": {k: list(v.shape) for k, v in ds.features.items()},
    }
    path = registry_path(registry)
    current = read_registry(path)
    if name in BUILTIN_DATASETS:
        raise DataError(
            f"{name!r} is the name of a built-in dataset",
            row="--name",
            fix="register the folder under another name with --name",
        )
    current[name] = entry
    write_json(path, {"datasets": current})
    return entry


# ---------------------------------------------------------------- resolving
def movielens_folder(
    *, data_root: str | Path | None = None, cache: str | Path | None = None, progress: bool = True
) -> Path:
    """MovieLens ml-latest-small with posters, built once into ``<cache>/movielens-posters`` and reused.

    Args:
        data_root: folder holding ``ml-latest-small/`` and ``ml-posters/posters/``
            (default: ``$ALIGNREC_DATA``).
        cache: the cache folder (default: :func:`alignrec_lite.utils.cache_dir`).
        progress: passed to :func:`~alignrec_lite.data.movielens.build_movielens` when it builds.

    Returns:
        The dataset folder.

    Raises:
        DataError: the real data cannot be found.
    """
    from ..utils import cache_dir
    from ..utils import data_root as default_root

    root = Path(data_root) if data_root else default_root()
    if root is None:
        raise DataError(
            "DATASET='movielens' needs the real data",
            row="ALIGNREC_DATA",
            fix="set ALIGNREC_DATA (or DATA_ROOT in the parameters cell) to the folder "
            "holding ml-latest-small/ and ml-posters/posters/",
        )
    ratings, posters = root / "ml-latest-small", root / "ml-posters" / "posters"
    for p in (ratings, posters):
        if not p.is_dir():
            raise DataError(
                "MovieLens folder not found",
                path=p,
                fix="place ml-latest-small/ and ml-posters/posters/ under the data root",
            )
    out = (Path(cache) if cache is not None else cache_dir()) / MOVIELENS_FOLDER
    if not (out / "dataset.json").exists():
        from .movielens import build_movielens

        build_movielens(out, ratings_dir=ratings, posters_dir=posters, progress=progress, overwrite=True)
    return out


def resolve_dataset(
    name_or_path: str | Path,
    *,
    data_root: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    registry: str | Path | None = None,
) -> Path:
    """The folder a dataset name or path stands for (see the module docstring for the order).

    Args:
        name_or_path: an existing folder, ``"toy"``, ``"toy-smoke"``, ``"movielens"``
            or a name registered with ``alignrec-lite data import``.
        data_root: where MovieLens' sources are (default: ``$ALIGNREC_DATA``).
        cache: the cache folder MovieLens is built into (default:
            :func:`alignrec_lite.utils.cache_dir`).
        progress: progress output while MovieLens is built (first use only).
        registry: the registry file (default ``<cache dir>/datasets.json``).

    Returns:
        The dataset folder (an existing path is returned as given).

    Raises:
        DataError: neither an existing path, a built-in name nor a registered name
            (the message lists the choices); MovieLens' sources cannot be found.
    """
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    name = str(name_or_path)
    if name in ("toy", "toy-smoke"):
        from .toy import toy_path

        return toy_path("smoke" if name == "toy-smoke" else "default")
    if name == "movielens":
        return movielens_folder(data_root=data_root, cache=cache, progress=progress)
    reg = read_registry(registry)
    if name in reg:
        return Path(reg[name]["path"])
    raise DataError(
        f"{name!r} is neither a folder nor a registered dataset",
        fix=f"pass a folder, one of {', '.join(BUILTIN_DATASETS)}, or import a folder with "
        f"`alignrec-lite data import DIR` (registered: {', '.join(sorted(reg)) or 'none'})",
    )


# ---------------------------------------------------------------- opening
def open_dataset(
    name_or_path: str | Path,
    *,
    smoke: bool = False,
    features: str | None = "auto",
    data_root: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    registry: str | Path | None = None,
) -> RecDataset:
    """Resolve a dataset name or folder (:func:`resolve_dataset`) and load it.

    Args:
        name_or_path: an existing folder, ``"toy"``, ``"toy-smoke"``, ``"movielens"``
            or a registered name.
        smoke: SMOKE mode: ``"toy"`` opens the small SMOKE copy (as ``"toy-smoke"``),
            and features extracted on first use are image-only (``tiny-cnn``).
        features: ``"auto"`` loads the folder's feature files and, when it has none
            (MovieLens on first use), extracts the default ones first and caches them
            in the folder (:data:`DEFAULT_ENCODERS`: ``tiny-cnn`` images + ``minilm``
            text; SMOKE: ``tiny-cnn`` only) — a folder without images stays without
            features; ``None`` loads without features.
        data_root, cache, progress, registry: as for :func:`resolve_dataset`
            (``progress`` also shows the feature extraction).

    Returns:
        A :class:`~alignrec_lite.data.RecDataset`.

    Raises:
        ConfigError: ``features`` is neither ``"auto"`` nor ``None``.
        DataError: as for :func:`resolve_dataset` and :func:`~alignrec_lite.data.mmrec.load_mmrec`.
    """
    if features not in ("auto", None):
        raise ConfigError(
            f"unknown features={features!r}",
            row="features",
            fix='use "auto" (load, extract the defaults on first use) or None (no features)',
        )
    if smoke and str(name_or_path) == "toy":
        name_or_path = "toy-smoke"
    folder = resolve_dataset(name_or_path, data_root=data_root, cache=cache, progress=progress, registry=registry)
    ds = load_mmrec(folder, load_features=features is not None)
    if features == "auto" and not ds.features and ds.items is not None and "image" in ds.items.columns:
        from ..encoders import extract_features

        extract_features(ds.path, *DEFAULT_ENCODERS["smoke" if smoke else "full"], progress=progress)
        ds = load_mmrec(ds.path)
    return ds


__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_ENCODERS",
    "MOVIELENS_FOLDER",
    "import_mmrec",
    "movielens_folder",
    "open_dataset",
    "read_registry",
    "registry_path",
    "resolve_dataset",
]
