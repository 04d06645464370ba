"""Build MMRec folders from the public Amazon review dumps (2014 and 2023 releases).

MMRec (Zhou et al., 2023) and AlignRec (Liu et al., CIKM 2024) use the Amazon
2014 release (McAuley et al., SIGIR 2015; He & McAuley, WWW 2016). The McAuley
lab's 2023 release (Hou et al., 2024) is newer and larger. :func:`build_amazon`
turns one category of either release into an MMRec folder with raw content:

1. read the reviews (user, item, rating, time) and drop repeated (user, item) pairs;
2. iterative k-core (:func:`~alignrec_lite.data.split.kcore`), then 0-based IDs in
   order of first appearance (:func:`~alignrec_lite.data.split.reindex`);
3. MMRec's random per-user split with a seed (:func:`~alignrec_lite.data.split.mmrec_split`);
4. item text as MMRec builds it (ALIGNREC_SPEC §3.3): ``title + ' ' + brand + ' '
   + (every name of categories[0], each followed by ' ') + description``, a missing
   field counting as ``' '``, newlines replaced by spaces;
5. each item's main image, downloaded concurrently with resume into a cache,
   re-encoded as ``images/<itemID>.jpg``; items without one are recorded;
6. ``<name>.inter``, ``i_id_mapping.csv`` (``asin\\titemID``),
   ``u_id_mapping.csv`` (``user_id\\tuserID``), ``items.csv`` and ``dataset.json``,
   all written into a staging folder that :func:`~alignrec_lite.files.replace_dir` swaps in when complete.

The dumps are read by :mod:`alignrec_lite.data.amazon_read` (the 2014 metadata lines are
Python literals, parsed with :func:`ast.literal_eval` — never ``eval``). Features are computed
afterwards by ``alignrec-lite features DIR``.

:func:`~alignrec_lite.data.catalog.import_mmrec` validates a folder downloaded from MMRec's
Google Drive and registers it under a name.
"""

from __future__ import annotations

import csv
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, DownloadError
from ..files import atomic_write, replace_dir
from .amazon_read import item_text, read_meta, read_reviews
from .download import download, is_offline, is_valid_image
from .sources import EXPECTED_STATS_2014, amazon_category, source_url
from .split import kcore, mmrec_split, reindex

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


# ---------------------------------------------------------------- images
def _fetch_image(
    url: str, cache_file: Path, target: Path, *, timeout: float, retries: int, backoff: float, offline: bool
) -> str | None:
    """Download (or reuse) one image and save it as JPEG at ``target``; return a reason on failure."""
    from PIL import Image, UnidentifiedImageError

    if cache_file.exists() and not is_valid_image(cache_file):
        cache_file.unlink()  # broken leftover of an earlier run: fetch it again
    try:
        download(url, cache_file, timeout=timeout, retries=retries, backoff=backoff, progress=False, offline=offline)
    except DownloadError as exc:
        return f"download failed: {exc.message}"
    try:
        with Image.open(cache_file) as im:
            im.load()
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                shutil.copyfile(cache_file, target)
            else:
                im.convert("RGB").save(target, "JPEG", quality=95)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        cache_file.unlink(missing_ok=True)  # a broken file must not be reused by the next run
        target.unlink(missing_ok=True)
        return f"not a readable image ({type(exc).__name__})"
    return None


def _download_images(
    jobs: list[tuple[int, str, str]],
    folder: Path,
    cache: Path,
    *,
    workers: int,
    progress: bool,
    timeout: float,
    retries: int,
    backoff: float,
    offline: bool,
) -> tuple[dict[int, str], list[dict]]:
    """Fetch ``(itemID, asin, url)`` images into ``folder/images``; return (paths, missing)."""
    from tqdm.auto import tqdm

    (folder / "images").mkdir(exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    paths: dict[int, str] = {}
    missing: list[dict] = []
    lock = threading.Lock()

    def one(item: int, asin: str, url: str) -> None:
        suffix = Path(url.split("?")[0]).suffix.lower()
        suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".gif", ".webp") else ".img"
        reason = _fetch_image(
            url,
            cache / f"{_SAFE.sub('_', asin)}{suffix}",
            folder / "images" / f"{item}.jpg",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            offline=offline,
        )
        with lock:
            if reason is None:
                paths[item] = f"images/{item}.jpg"
            else:
                missing.append({"itemID": item, "asin": asin, "url": url, "reason": reason})

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, *job) for job in jobs]
        with tqdm(total=len(futures), desc="images", unit="img", disable=not progress) as bar:
            for fut in as_completed(futures):
                fut.result()
                bar.update(1)
    return paths, missing


# ---------------------------------------------------------------- building
def _resolve_input(
    value: str | Path | None, key: str, category: str, cache: Path, *, progress: bool, offline: bool
) -> Path:
    """A local path as is; a URL (or None = the default source) downloaded into the cache."""
    if value is not None and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(value)):
        p = Path(value).expanduser()
        if not p.is_file():
            raise DataError("file not found", path=p, fix="pass an existing file or a URL")
        return p
    url = source_url(key, str(value) if value is not None else None, category=category)
    name = _SAFE.sub("_", Path(url.split("?")[0]).name) or f"{key}-{category}"
    return download(url, cache / "downloads" / name, progress=progress, offline=offline)


def expected_stats(release: str, category: str) -> dict | None:
    """MMRec's published statistics for a 2014 category (users, items, interactions, …), if known."""
    return dict(EXPECTED_STATS_2014[category]) if release == "2014" and category in EXPECTED_STATS_2014 else None


def compare_stats(stats: dict, expected: dict | None) -> dict:
    """Compare built statistics with the expected ones.

    Returns:
        ``{"expected": …, "matches": bool | None, "differences": {key: [built, expected]}}``.
    """
    if not expected:
        return {"expected": None, "matches": None, "differences": {}}
    diff = {k: [stats.get(k), v] for k, v in expected.items() if stats.get(k) != v}
    return {"expected": expected, "matches": not diff, "differences": diff}


def build_amazon(
    out: str | Path,
    *,
    release: str,
    category: str,
    reviews: str | Path | None = None,
    meta: str | Path | None = None,
    images: bool = True,
    k: int = 5,
    seed: int = 999,
    workers: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 0.5,
    verbose: bool = True,
) -> Path:
    """Build an MMRec folder for one Amazon category (see the module docstring for the steps).

    Args:
        out: the folder to create.
        release: ``"2014"`` (MMRec/AlignRec's data) or ``"2023"``.
        category: e.g. ``Baby`` (aliases: baby, sports, elec, clothing).
        reviews: review dump — a local file or a URL; default: the official address
            (overridable by ``$ALIGNREC_URL_AMAZON<release>_REVIEWS``).
        meta: metadata dump — a local file or a URL; default as for ``reviews``.
        images: download each item's main image.
        k: k of the iterative k-core.
        seed: seed of the per-user random split.
        workers: concurrent image downloads.
        overwrite: replace an existing ``out``.
        progress: show progress bars.
        name: dataset name (``<name>.inter``); default MMRec's (``baby``) or ``<cat>_2023``.
        cache_dir: where downloads and images are cached (default
            :func:`alignrec_lite.utils.cache_dir`); a rerun reuses them.
        offline: use only cached downloads.
        timeout, retries, backoff: per request, as for :func:`~alignrec_lite.data.download.download`.
        verbose: print a summary, including whether the statistics match MMRec's
            published ones (the check is also stored in ``dataset.json``).

    Returns:
        ``out``.

    Raises:
        DataError: unreadable dumps, nothing left after the k-core, ``out`` exists.
        DownloadError: a dump cannot be downloaded.
        ConfigError: unknown release or category.
    """
    from ..utils import cache_dir as default_cache

    release = str(release)
    full_cat, default_name = amazon_category(release, category)
    name = name or default_name
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("the output folder already exists", path=out, fix="choose another --out or pass --overwrite")
    cache = (Path(cache_dir) if cache_dir is not None else default_cache()) / f"amazon-{release}"
    offline = is_offline(offline)

    reviews_path = _resolve_input(
        reviews, f"amazon{release}-reviews", full_cat, cache, progress=progress, offline=offline
    )
    meta_path = _resolve_input(meta, f"amazon{release}-meta", full_cat, cache, progress=progress, offline=offline)

    # 1-2. read, de-duplicate, k-core, reindex
    df = read_reviews(reviews_path, release, progress=progress)
    n_raw = len(df)
    df = df.drop_duplicates(subset=["user", "item"], keep="first")
    n_dedup = len(df)
    df = kcore(df, k=k, user_col="user", item_col="item")
    if df.empty:
        raise DataError(
            f"no interactions are left after the {k}-core filter ({n_dedup:,} before)",
            path=reviews_path,
            fix="use a larger category or a smaller k",
        )
    user_ids, user_raw = reindex(df["user"])
    item_ids, item_raw = reindex(df["item"])
    # 3. MMRec split
    x_label = mmrec_split(user_ids, seed=seed)
    inter = pd.DataFrame(
        {
            "userID": user_ids,
            "itemID": item_ids,
            "rating": df["rating"].to_numpy(),
            "timestamp": df["timestamp"].to_numpy(np.int64),
            "x_label": x_label,
        }
    )
    # 4. item text
    metas = read_meta(meta_path, release, set(map(str, item_raw)), progress=progress)
    n_items = len(item_raw)
    texts = [item_text(metas.get(str(a))) for a in item_raw]
    stats = {
        "users": int(len(user_raw)),
        "items": int(n_items),
        "interactions": int(len(inter)),
        "train": int((x_label == 0).sum()),
        "valid": int((x_label == 1).sum()),
        "test": int((x_label == 2).sum()),
    }
    stats["sparsity_percent"] = round(100.0 * (1 - stats["interactions"] / (stats["users"] * stats["items"])), 4)
    check = compare_stats(stats, expected_stats(release, full_cat))

    with replace_dir(out, overwrite=overwrite) as tmp:  # the old folder stays whole until the swap
        # 5. images
        image_col = [""] * n_items
        missing: list[dict] = []
        if images:
            jobs = []
            for item, asin in enumerate(item_raw):
                url = (metas.get(str(asin)) or {}).get("image")
                if url:
                    jobs.append((item, str(asin), str(url)))
                else:
                    missing.append(
                        {
                            "itemID": item,
                            "asin": str(asin),
                            "url": "",
                            "reason": "no metadata" if str(asin) not in metas else "no image URL",
                        }
                    )
            paths, failed = _download_images(
                jobs,
                tmp,
                cache / f"images-{full_cat}",
                workers=workers,
                progress=progress,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                offline=offline,
            )
            missing.extend(failed)
            for item, rel in paths.items():
                image_col[item] = rel
        missing.sort(key=lambda m: m["itemID"])
        items_df = pd.DataFrame(
            {
                "itemID": np.arange(n_items),
                "raw_id": [str(a) for a in item_raw],
                "text": texts,
                "image": image_col,
                "has_meta": [str(a) in metas for a in item_raw],
            }
        )
        card = {
            "name": name,
            "source": f"Amazon review data {release} (McAuley et al.), category {full_cat}",
            "release": release,
            "category": full_cat,
            "reviews": _describe_input(reviews, reviews_path),
            "meta": _describe_input(meta, meta_path),
            "build": {
                "k_core": k,
                "seed": seed,
                "split": "MMRec random per-user (ALIGNREC_SPEC §3.4)",
                "reindex": "0-based, order of first appearance in the review file",
                "text": "title + ' ' + brand + ' ' + categories[0] names + description (MMRec, §3.3)",
                "images": "main image, re-encoded as JPEG" if images else "not downloaded",
            },
            "raw_reviews": n_raw,
            "after_dedup": n_dedup,
            "stats": stats,
            "items_without_metadata": int(n_items - sum(str(a) in metas for a in item_raw)),
            "images": {"downloaded": int(sum(1 for v in image_col if v)), "missing": len(missing) if images else None},
            "expected_check": check,
            "next_step": f"alignrec-lite features {out}",
        }
        from .mmrec_files import write_mmrec_files

        write_mmrec_files(
            tmp,
            name=name,
            inter=inter,
            user_raw_ids=[str(u) for u in user_raw],
            item_raw_ids=[str(a) for a in item_raw],
            raw_id_names=("user_id", "asin"),
            items=items_df,
            card=card,
        )
        if images:
            with atomic_write(tmp / "missing_images.csv", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(["itemID", "asin", "url", "reason"])
                for m in missing:
                    w.writerow([m["itemID"], m["asin"], m["url"], m["reason"]])
    if verbose:
        print(summary(card))
    return out


def _describe_input(value: str | Path | None, path: Path) -> dict:
    from ..files import sha256_file

    src = str(value) if value is not None else "default source"
    return {"given": src, "file": path.name, "sha256": sha256_file(path)}


def summary(card: dict) -> str:
    """A few lines describing a built Amazon folder and whether it matches the expected statistics."""
    s = card["stats"]
    lines = [
        f"built {card['name']}: {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions "
        f"(train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,})",
    ]
    img = card.get("images") or {}
    if img.get("missing") is not None:
        lines.append(f"images: {img['downloaded']:,} downloaded, {img['missing']:,} missing (see missing_images.csv)")
    check = card.get("expected_check") or {}
    if check.get("matches") is True:
        lines.append("statistics match MMRec's published ones for this category")
    elif check.get("matches") is False:
        diffs = ", ".join(f"{k} {b:,} vs {e:,}" for k, (b, e) in check["differences"].items())
        lines.append(f"statistics differ from MMRec's published ones: {diffs}")
    else:
        lines.append("no published statistics to compare with for this release/category")
    lines.append(f"next: {card['next_step']}")
    return "\n".join(lines)


__all__ = ["build_amazon", "compare_stats", "expected_stats", "summary"]
