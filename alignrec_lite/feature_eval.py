"""The paper's intermediate metrics: judge item features without training a recommender.

AlignRec (CIKM 2024) proposes three classes of *intermediate* evaluation of
multimodal features (ALIGNREC_SPEC §5.3); all three use the standard full-ranking
evaluator (:func:`alignrec_lite.evaluate.evaluate`, MMRec's protocol, spec §4):

1. **Zero-shot recommendation** (:func:`~alignrec_lite.scorers.zero_shot_scores`): a user is the mean of
   the L2-normalised features of her training items; every item is ranked by
   the dot product with that profile (= cosine up to the profile's norm).
2. **Item-CF** (:func:`~alignrec_lite.scorers.item_knn_scores`, MMRec's ItemKNNCBF):
   ``sim_ij = f_i·f_j / (||f_i|| ||f_j|| + shrink)``, keep the ``k`` largest
   entries of each row (the item itself excluded), ``score(u, ·) = R_train[u] · Sim``.
3. **Mask-modality robustness** (:func:`mask_features`): a seeded random share of
   the items loses one modality — its image (or text) feature row is zeroed, as
   MMRec does for separate features; for a fused ``mm`` feature the row is
   replaced by the encoder's output for the item with that modality masked
   (``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy``, written by
   :func:`alignrec_lite.ica.pretrain_ica`), as AlignRec does for BEiT-3 — and
   metrics 1 and 2 are computed again.

:func:`evaluate_features` runs all of them (plus the geometry of
:func:`alignrec_lite.geometry.feature_geometry`) for every feature source in a
dataset folder, in one call; ``alignrec-lite evaluate-features DIR`` prints it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data.mmrec import RecDataset, load_mmrec
from .data.mmrec_files import read_feature
from .errors import ConfigError, DataError
from .evaluate import ScoreFn, evaluate
from .geometry import feature_geometry
from .scorers import item_knn_scores, popularity_scores, zero_shot_scores
from .utils import fuse_features

MASKED_MM_FILES = {"image": "mm_feat_mask_image.npy", "text": "mm_feat_mask_text.npy"}
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


# ---------------------------------------------------------------------- masking
def masked_items(n_items: int, ratio: float, seed: int = 0) -> np.ndarray:
    """The ``floor(ratio * n_items)`` items that lose a modality (a seeded permutation, as MMRec)."""
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"mask ratio must be in [0, 1], got {ratio}", row="mask_ratio", fix="use e.g. 0.5")
    perm = np.random.default_rng(seed).permutation(n_items)
    return np.sort(perm[: int(np.floor(ratio * n_items))])


def mask_features(
    features: dict[str, np.ndarray], modality: str, items: np.ndarray, masked_mm: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Copy of a feature dict where ``items`` lost ``modality``.

    The ``modality`` matrix gets zero rows at ``items``; the fused ``"mm"`` matrix,
    if any, gets the rows of ``masked_mm`` (the encoder's output without that
    modality) at ``items``, or is dropped when ``masked_mm`` is None.

    Shape:
        each feature: ``(n_items, d)``; items: ``(m,)``.
    """
    out = {k: v for k, v in features.items()}
    if modality in out:
        m = out[modality].copy()
        m[items] = 0.0
        out[modality] = m
    if "mm" in out:
        if masked_mm is None:
            del out["mm"]
        else:
            m = out["mm"].copy()
            m[items] = masked_mm[items]
            out["mm"] = m
    return out


def source_matrix(features: dict[str, np.ndarray], source: str) -> np.ndarray | None:
    """The matrix of a feature source (``image``, ``text``, ``mm`` or a ``+``-joined concatenation).

    A concatenation joins the L2-normalised blocks and normalises the result (the
    naive fusion, as :meth:`RecDataset.feature`). ``None`` when a part is missing.
    """
    parts = source.split("+")
    if any(p not in features for p in parts):
        return None
    if len(parts) == 1:
        return np.asarray(features[parts[0]], dtype=np.float32)
    return fuse_features([features[p] for p in parts])


# ---------------------------------------------------------------------- driver
def _metrics(
    score_fn: ScoreFn, ds: RecDataset, split: str, ks: Sequence[int], batch_users: int = 1024
) -> dict[str, float]:
    res = evaluate(score_fn, ds, split, ks=ks, batch_users=batch_users)
    return {k: v for k, v in res.items() if "@" in k and k.split("@")[0] in ("recall", "ndcg")}


def evaluate_features(
    dataset: RecDataset | str | Path,
    *,
    sources: Sequence[str] | None = None,
    split: str = "test",
    ks: Sequence[int] = (10, 20, 50),
    knn_k: int = 10,
    shrink: float = 10.0,
    mask_ratio: float = 0.5,
    seed: int = 0,
    geometry: bool = True,
    reference: bool = True,
    extra: dict[str, np.ndarray] | None = None,
    progress: bool = False,
    batch_users: int = 1024,
) -> dict:
    """Zero-shot, item-CF and mask-modality metrics (+ geometry) for every feature source.

    Args:
        dataset: a loaded dataset or its folder (features are read from it).
        sources: feature sources to judge; default every available one of
            ``image``, ``text``, ``image+text`` (naive concatenation) and ``mm``.
        split: ``"test"`` or ``"valid"``.
        ks: cut-offs of Recall/NDCG.
        knn_k, shrink: item-CF settings (MMRec's ItemKNNCBF: 10 and 10).
        mask_ratio: share of items whose modality is masked (AlignRec's default 0.5).
        seed: seed of the masked-item permutation and of the geometry subsamples.
        geometry: add :func:`~alignrec_lite.geometry.feature_geometry` columns.
        reference: add a ``popularity`` row (a training-free yardstick).
        extra: additional named item-feature matrices to judge (e.g. not yet saved).
        progress: a ``tqdm.auto`` bar over sources.
        batch_users: users scored at once; the item-kNN similarity is computed
            ``2 x batch_users`` rows at a time (the results do not depend on it, the
            memory does: about ``batch_users x n_items`` floats).

    Returns:
        ``{"dataset", "split", "settings", "masked_items", "rows"}``; ``rows`` is a list
        of flat dicts, one per source, with keys such as ``"zeroshot/recall@20"``,
        ``"itemcf/recall@20"``, ``"mask_image/zeroshot/recall@20"``,
        ``"align_user_item"``, ``"uniform_items"`` (``pandas.DataFrame(rows)`` is the table).

    Raises:
        DataError: no feature at all, or a requested source is missing.
        ConfigError: a setting out of range, or what it would allocate does not fit in
            the free memory (checked before any scoring).
    """
    from tqdm.auto import tqdm

    from .checks import check_int

    batch_users = check_int(batch_users, "--batch-users", 1, 10**7, example=1024)
    knn_k = check_int(knn_k, "--knn-k", 1, 10000, example=10)
    ds = dataset if isinstance(dataset, RecDataset) else load_mmrec(dataset)
    feats = {k: np.asarray(v, dtype=np.float32) for k, v in ds.features.items()}
    for name, arr in (extra or {}).items():
        if arr.shape[0] != ds.n_items:
            raise DataError(
                f"extra feature {name!r} has {arr.shape[0]} rows, expected {ds.n_items}",
                row=name,
                fix="one row per itemID",
            )
        feats[name] = np.asarray(arr, dtype=np.float32)
    masked_mm = {}
    if ds.path is not None:
        for modality, fname in MASKED_MM_FILES.items():
            if (ds.path / fname).exists() and "mm" in feats:
                masked_mm[modality] = read_feature(ds.path / fname, ds.n_items)
    if sources is None:
        sources = [s for s in ("image", "text", "image+text", "mm") if source_matrix(feats, s) is not None]
        sources += [s for s in (extra or {}) if s not in sources]
    if not sources:
        raise DataError(
            "the dataset has no feature file to evaluate",
            path=ds.path,
            fix="run `alignrec-lite features DIR` (and `alignrec-lite pretrain-ica DIR`) first",
        )
    for s in sources:
        if source_matrix(feats, s) is None:
            raise DataError(
                f"feature source {s!r} is not available (have {sorted(feats)})",
                path=ds.path,
                row="--source",
                fix="extract it first or choose another source",
            )
    ks = tuple(sorted(set(ks)))
    _check_memory(ds, feats, sources, batch_users, knn_k, geometry)
    items = masked_items(ds.n_items, mask_ratio, seed)
    train = ds.interaction_matrix("train")

    def itemcf(mat: np.ndarray) -> ScoreFn:  # MMRec's ItemKNNCBF
        return item_knn_scores(mat, train, k=knn_k, shrink=shrink, neighbours="history", chunk=2 * batch_users)

    rows: list[dict] = []
    if reference:
        pop = _metrics(popularity_scores(ds), ds, split, ks, batch_users)
        rows.append({"source": "popularity", "dim": 0, **{f"zeroshot/{k}": v for k, v in pop.items()}})
    for src in tqdm(sources, disable=not progress, desc="feature sources"):
        t0 = time.perf_counter()
        mat = source_matrix(feats, src)
        row: dict = {"source": src, "dim": int(mat.shape[1])}
        row.update(
            {f"zeroshot/{k}": v for k, v in _metrics(zero_shot_scores(ds, mat), ds, split, ks, batch_users).items()}
        )
        row.update({f"itemcf/{k}": v for k, v in _metrics(itemcf(mat), ds, split, ks, batch_users).items()})
        for modality in ("image", "text"):
            parts = src.split("+")
            if modality not in parts and "mm" not in parts:
                continue  # the source does not depend on that modality
            masked = source_matrix(mask_features(feats, modality, items, masked_mm.get(modality)), src)
            if masked is None:
                continue  # a fused feature without its masked counterpart file
            for kind, fn in (("zeroshot", zero_shot_scores(ds, masked)), ("itemcf", itemcf(masked))):
                for k, v in _metrics(fn, ds, split, ks, batch_users).items():
                    row[f"mask_{modality}/{kind}/{k}"] = v
        if geometry:
            row.update(feature_geometry(ds, mat, split=split, seed=seed))
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    return {
        "dataset": ds.name,
        "split": split,
        "settings": {"ks": list(ks), "knn_k": knn_k, "shrink": shrink, "mask_ratio": mask_ratio, "seed": seed},
        "masked_items": int(len(items)),
        "rows": rows,
    }


def _check_memory(
    ds: RecDataset,
    feats: dict[str, np.ndarray],
    sources: Sequence[str],
    batch_users: int,
    knn_k: int,
    geometry: bool,
) -> None:
    """Refuse before any scoring when the widest source's matrices and one block cannot fit."""
    from .checks import check_memory, estimate_feature_eval_bytes

    widths = [sum(int(feats[p].shape[1]) for p in s.split("+")) for s in sources]
    need, key = estimate_feature_eval_bytes(
        ds.n_users,
        ds.n_items,
        widths,
        batch_users=batch_users,
        knn_rows=2 * batch_users,
        knn_k=knn_k,
        geometry=geometry,
    )
    check_memory(
        need,
        f"evaluating {len(sources)} feature source(s) of up to {max(widths)} dimensions on "
        f"{ds.n_users:,} users x {ds.n_items:,} items",
        row=key,
        fix=(
            f"lower --batch-users (e.g. --batch-users {max(1, batch_users // 4)}; the item-kNN and scoring "
            "blocks are about batch-users x items) or use a machine with more memory"
            if key == "--batch-users"
            else "judge fewer or narrower sources (--source) or use a machine with more memory"
        ),
    )


def format_table(result: dict, metric: str = "recall@20") -> str:
    """A plain-text table of :func:`evaluate_features` (one line per source)."""
    cols = [
        ("zero-shot", f"zeroshot/{metric}"),
        ("item-CF", f"itemcf/{metric}"),
        ("zs -img", f"mask_image/zeroshot/{metric}"),
        ("cf -img", f"mask_image/itemcf/{metric}"),
        ("zs -txt", f"mask_text/zeroshot/{metric}"),
        ("cf -txt", f"mask_text/itemcf/{metric}"),
        ("align u-i", "align_user_item"),
        ("unif items", "uniform_items"),
    ]
    head = f"{'source':14s} {'dim':>5s} " + " ".join(f"{c:>10s}" for c, _ in cols)
    lines = [
        f"{result['dataset']} ({result['split']}), {metric}; masked items: {result['masked_items']} "
        f"(ratio {result['settings']['mask_ratio']})",
        head,
        "-" * len(head),
    ]
    for r in result["rows"]:
        cells = []
        for _, key in cols:
            v = r.get(key)
            cells.append(f"{v:10.4f}" if isinstance(v, (int, float)) else f"{'-':>10s}")
        lines.append(f"{r['source']:14s} {r['dim']:5d} " + " ".join(cells))
    return "\n".join(lines)
