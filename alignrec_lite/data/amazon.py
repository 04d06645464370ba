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
   all written inside :func:`~alignrec_lite.io.atomic_dir`.

The 2014 metadata lines are Python literals (single quotes), so they are parsed
with :func:`ast.literal_eval` — never ``eval``. Features are computed afterwards
by ``alignrec-lite features DIR``.

:func:`import_mmrec` validates a folder downloaded from MMRec's Google Drive and
registers it under a name.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import DataError, DownloadError
from ..io import atomic_dir, atomic_write, write_json
from .download import download, is_offline, is_valid_image
from .split import kcore, mmrec_split, reindex
from .sources import EXPECTED_STATS_2014, amazon_category, source_url

_ASIN_2014 = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")
_ASIN_2023 = re.compile(r'"parent_asin"\s*:\s*"([^"]+)"')
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


# ---------------------------------------------------------------- reading
def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file (detected by its magic bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _parse_record(line: str, path: Path, lineno: int) -> dict:
    """Parse one JSON or Python-literal line (the 2014 metadata) into a dict."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        try:
            rec = ast.literal_eval(line)  # Python literal; safe, unlike eval
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError("the line is neither JSON nor a Python literal", path=path, row=lineno,
                            fix="re-download the file; it may be truncated or corrupt") from None
    if not isinstance(rec, dict):
        raise DataError(f"expected one object per line, got {type(rec).__name__}", path=path, row=lineno,
                        fix="use the review/metadata dump as published (one record per line)")
    return rec


def _iter_lines(path: Path, desc: str, progress: bool) -> Iterator[tuple[int, str]]:
    from tqdm.auto import tqdm

    try:
        fh = _open_text(path)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path,
                        fix="check the path or pass a URL") from None
    try:
        with fh, tqdm(desc=desc, unit=" lines", unit_scale=True, disable=not progress, leave=False) as bar:
            for lineno, line in enumerate(fh, start=1):
                bar.update(1)
                line = line.strip()
                if line:
                    yield lineno, line
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DataError(f"the file is truncated or not valid gzip ({exc})", path=path,
                        fix="delete it and download it again") from None


_REVIEW_FIELDS = {
    "2014": ("reviewerID", "asin", "overall", "unixReviewTime"),
    "2023": ("user_id", "parent_asin", "rating", "timestamp"),
}


def read_reviews(path: str | Path, release: str, *, progress: bool = True) -> pd.DataFrame:
    """Read a review dump into ``user, item, rating, timestamp`` rows.

    Accepted inputs (plain or ``.gz``):

    * 2014: JSON lines with ``reviewerID, asin, overall, unixReviewTime``
      (``reviews_<Cat>_5.json.gz``), or the rating-only CSV without header
      (``user,item,rating,timestamp``);
    * 2023: JSON lines with ``user_id, parent_asin, rating, timestamp`` (ms), or a
      CSV with a header naming those columns (the "benchmark" files).

    Returns:
        DataFrame with str ``user``, ``item``, float ``rating``, int64 ``timestamp``
        (seconds), in file order.

    Raises:
        DataError: unreadable file, a malformed line or a missing field (with the line number).
    """
    path = Path(path)
    ufield, ifield, rfield, tfield = _REVIEW_FIELDS[release]
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    lines = _iter_lines(path, f"reading {path.name}", progress)
    first = next(lines, None)
    if first is None:
        raise DataError("the review file is empty", path=path, fix="download it again")
    if not first[1].startswith("{"):
        lines.close()
        return _read_reviews_csv(path, release)
    for lineno, line in _chain(first, lines):
        rec = _parse_record(line, path, lineno)
        item = rec.get(ifield) or (rec.get("asin") if release == "2023" else None)
        user = rec.get(ufield)
        if not user or not item:
            missing = ufield if not user else ifield
            raise DataError(f"the review has no {missing!r} field", path=path, row=lineno,
                            fix=f"pass the {release} release's review file (fields {', '.join(_REVIEW_FIELDS[release])})")
        ts = rec.get(tfield, 0) or 0
        try:
            ts = int(ts)
            rating = float(rec.get(rfield, 1.0) or 0.0)
        except (TypeError, ValueError):
            raise DataError(f"non-numeric {tfield} or {rfield}", path=path, row=lineno,
                            fix="the file is corrupt; download it again") from None
        users.append(str(user))
        items.append(str(item))
        ratings.append(rating)
        times.append(ts)
    df = pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": np.asarray(times, np.int64)})
    if release == "2023" and len(df) and df["timestamp"].max() > 10**11:  # milliseconds -> seconds
        df["timestamp"] = df["timestamp"] // 1000
    return df


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _read_reviews_csv(path: Path, release: str) -> pd.DataFrame:
    with _open_text(path) as fh:
        head = fh.readline()
    has_header = "user" in head.lower() and ("asin" in head.lower() or "item" in head.lower())
    try:
        with _open_text(path) as fh:
            df = pd.read_csv(fh, header=0 if has_header else None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot parse the CSV ({exc})", path=path,
                        fix="use the review dump as published (JSON lines or the rating-only CSV)") from None
    if has_header:
        cols = {c.lower(): c for c in df.columns}
        pick = [cols.get(n) for n in ("user_id", "parent_asin", "rating", "timestamp")]
        if pick[1] is None:
            pick[1] = cols.get("asin") or cols.get("item_id")
        if pick[0] is None or pick[1] is None:
            raise DataError(f"the CSV header {list(df.columns)} has no user_id/parent_asin columns", path=path,
                            row=1, fix="use the 2023 benchmark CSV (user_id,parent_asin,rating,timestamp)")
        df = df[[p for p in pick if p is not None]]
    if df.shape[1] < 2:
        raise DataError("expected at least user and item columns", path=path, row=1,
                        fix="use user,item,rating,timestamp rows")
    df = df.iloc[:, :4].copy()
    df.columns = ["user", "item", "rating", "timestamp"][: df.shape[1]]
    if "rating" not in df:
        df["rating"] = "1"
    if "timestamp" not in df:
        df["timestamp"] = "0"
    rating = pd.to_numeric(df["rating"], errors="coerce")
    ts = pd.to_numeric(df["timestamp"], errors="coerce")
    bad = rating.isna() | ts.isna() | (df["user"] == "") | (df["item"] == "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError("missing or non-numeric field", path=path, row=i + 1 + int(has_header),
                        fix="the file is corrupt; download it again")
    ts = ts.astype(np.int64)
    if release == "2023" and len(ts) and ts.max() > 10**11:
        ts = ts // 1000
    return pd.DataFrame({"user": df["user"].astype(str), "item": df["item"].astype(str),
                         "rating": rating.astype(float), "timestamp": ts})


def read_meta(path: str | Path, release: str, asins: set[str], *, progress: bool = True) -> dict[str, dict]:
    """Read the metadata of the items in ``asins``.

    Lines of other items are skipped without being parsed (a cheap regex finds
    their ID first), so a large category reads quickly.

    Returns:
        ``{asin: {"title", "brand", "categories" (list of str), "description",
        "image" (URL or None)}}``.

    Raises:
        DataError: a malformed line (with its number).
    """
    path = Path(path)
    pattern = _ASIN_2014 if release == "2014" else _ASIN_2023
    out: dict[str, dict] = {}
    for lineno, line in _iter_lines(path, f"reading {path.name}", progress):
        m = pattern.search(line)
        if m is not None and m.group(1) not in asins:
            continue
        rec = _parse_record(line, path, lineno)
        asin = rec.get("asin") if release == "2014" else (rec.get("parent_asin") or rec.get("asin"))
        if asin is None or str(asin) not in asins:
            continue
        out[str(asin)] = _meta_2014(rec) if release == "2014" else _meta_2023(rec)
    return out


def _text(value: Any) -> str | None:
    """A string field, or None for missing/NaN/empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v is not None)
    value = str(value)
    return value if value != "" else None


def _meta_2014(rec: dict) -> dict:
    cats = rec.get("categories")
    first = cats[0] if isinstance(cats, list) and cats and isinstance(cats[0], list) else []
    return {
        "title": _text(rec.get("title")),
        "brand": _text(rec.get("brand")),
        "categories": [str(c) for c in first],
        "description": _text(rec.get("description")),
        "image": rec.get("imUrl") or None,
    }


def _meta_2023(rec: dict) -> dict:
    details = rec.get("details") if isinstance(rec.get("details"), dict) else {}
    brand = details.get("Brand") or details.get("brand") or rec.get("store")
    cats = rec.get("categories") if isinstance(rec.get("categories"), list) else []
    if not cats and rec.get("main_category"):
        cats = [rec["main_category"]]
    return {
        "title": _text(rec.get("title")),
        "brand": _text(brand),
        "categories": [str(c) for c in cats],
        "description": _text(rec.get("description")),
        "image": _main_image_2023(rec.get("images")),
    }


def _main_image_2023(images: Any) -> str | None:
    """URL of the MAIN image (else the first) of a 2023 ``images`` list; 'large' size preferred."""
    if not isinstance(images, list) or not images:
        return None
    dicts = [im for im in images if isinstance(im, dict)]
    main = next((im for im in dicts if str(im.get("variant", "")).upper() == "MAIN"), dicts[0] if dicts else None)
    if main is None:
        return None
    return main.get("large") or main.get("hi_res") or main.get("thumb") or None


def item_text(meta: dict | None) -> str:
    """Item sentence as MMRec builds it (ALIGNREC_SPEC §3.3).

    ``title + ' ' + brand + ' ' + (each name of categories[0] followed by ' ')
    + description``; a missing field counts as ``' '``; newlines become spaces.

    >>> item_text({"title": "Soft Bib", "brand": "Acme", "categories": ["Baby", "Feeding"],
    ...            "description": "Waterproof.\\nWashable."})
    'Soft Bib Acme Baby Feeding Waterproof. Washable.'
    >>> item_text(None)
    '     '
    """
    meta = meta or {}
    title = meta.get("title") or " "
    brand = meta.get("brand") or " "
    desc = meta.get("description") or " "
    cats = "".join(f"{c} " for c in meta.get("categories") or [])
    text = f"{title} {brand} {cats}{desc}"
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


# ---------------------------------------------------------------- images
def _fetch_image(url: str, cache_file: Path, target: Path, *, timeout: float, retries: int,
                 backoff: float, offline: bool) -> str | None:
    """Download (or reuse) one image and save it as JPEG at ``target``; return a reason on failure."""
    from PIL import Image, UnidentifiedImageError

    if cache_file.exists() and not is_valid_image(cache_file):
        cache_file.unlink()  # broken leftover of an earlier run: fetch it again
    try:
        download(url, cache_file, timeout=timeout, retries=retries, backoff=backoff, progress=False,
                 offline=offline)
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


def _download_images(jobs: list[tuple[int, str, str]], folder: Path, cache: Path, *, workers: int,
                     progress: bool, timeout: float, retries: int, backoff: float,
                     offline: bool) -> tuple[dict[int, str], list[dict]]:
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
        reason = _fetch_image(url, cache / f"{_SAFE.sub('_', asin)}{suffix}", folder / "images" / f"{item}.jpg",
                              timeout=timeout, retries=retries, backoff=backoff, offline=offline)
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
def _resolve_input(value: str | Path | None, key: str, category: str, cache: Path, *,
                   progress: bool, offline: bool) -> Path:
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

    reviews_path = _resolve_input(reviews, f"amazon{release}-reviews", full_cat, cache,
                                  progress=progress, offline=offline)
    meta_path = _resolve_input(meta, f"amazon{release}-meta", full_cat, cache, progress=progress, offline=offline)

    # 1-2. read, de-duplicate, k-core, reindex
    df = read_reviews(reviews_path, release, progress=progress)
    n_raw = len(df)
    df = df.drop_duplicates(subset=["user", "item"], keep="first")
    n_dedup = len(df)
    df = kcore(df, k=k, user_col="user", item_col="item")
    if df.empty:
        raise DataError(f"no interactions are left after the {k}-core filter ({n_dedup:,} before)",
                        path=reviews_path, fix="use a larger category or a smaller k")
    user_ids, user_raw = reindex(df["user"])
    item_ids, item_raw = reindex(df["item"])
    # 3. MMRec split
    x_label = mmrec_split(user_ids, seed=seed)
    inter = pd.DataFrame({"userID": user_ids, "itemID": item_ids, "rating": df["rating"].to_numpy(),
                          "timestamp": df["timestamp"].to_numpy(np.int64), "x_label": x_label})
    # 4. item text
    metas = read_meta(meta_path, release, set(map(str, item_raw)), progress=progress)
    n_items = len(item_raw)
    texts = [item_text(metas.get(str(a))) for a in item_raw]
    stats = {
        "users": int(len(user_raw)), "items": int(n_items), "interactions": int(len(inter)),
        "train": int((x_label == 0).sum()), "valid": int((x_label == 1).sum()), "test": int((x_label == 2).sum()),
    }
    stats["sparsity_percent"] = round(100.0 * (1 - stats["interactions"] / (stats["users"] * stats["items"])), 4)
    check = compare_stats(stats, expected_stats(release, full_cat))

    with atomic_dir(out, overwrite=overwrite) as tmp:
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
                    missing.append({"itemID": item, "asin": str(asin), "url": "",
                                    "reason": "no metadata" if str(asin) not in metas else "no image URL"})
            paths, failed = _download_images(jobs, tmp, cache / f"images-{full_cat}", workers=workers,
                                             progress=progress, timeout=timeout, retries=retries,
                                             backoff=backoff, offline=offline)
            missing.extend(failed)
            for item, rel in paths.items():
                image_col[item] = rel
        missing.sort(key=lambda m: m["itemID"])
        items_df = pd.DataFrame({
            "itemID": np.arange(n_items), "raw_id": [str(a) for a in item_raw], "text": texts, "image": image_col,
            "has_meta": [str(a) in metas for a in item_raw],
        })
        card = {
            "name": name,
            "source": f"Amazon review data {release} (McAuley et al.), category {full_cat}",
            "release": release,
            "category": full_cat,
            "reviews": _describe_input(reviews, reviews_path),
            "meta": _describe_input(meta, meta_path),
            "build": {"k_core": k, "seed": seed, "split": "MMRec random per-user (ALIGNREC_SPEC §3.4)",
                      "reindex": "0-based, order of first appearance in the review file",
                      "text": "title + ' ' + brand + ' ' + categories[0] names + description (MMRec, §3.3)",
                      "images": "main image, re-encoded as JPEG" if images else "not downloaded"},
            "raw_reviews": n_raw,
            "after_dedup": n_dedup,
            "stats": stats,
            "items_without_metadata": int(n_items - sum(str(a) in metas for a in item_raw)),
            "images": {"downloaded": int(sum(1 for v in image_col if v)),
                       "missing": len(missing) if images else None},
            "expected_check": check,
            "next_step": f"alignrec-lite features {out}",
        }
        from .mmrec import write_mmrec_files

        write_mmrec_files(tmp, name=name, inter=inter, user_raw_ids=[str(u) for u in user_raw],
                          item_raw_ids=[str(a) for a in item_raw], raw_id_names=("user_id", "asin"),
                          items=items_df, card=card)
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
    from ..io import sha256_file

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


# ---------------------------------------------------------------- MMRec folders
def registry_path(registry: str | Path | None = None) -> Path:
    """The JSON registry of imported datasets (default ``<cache dir>/datasets.json``)."""
    from ..utils import cache_dir as default_cache

    return Path(registry) if registry is not None else default_cache() / "datasets.json"


def read_registry(registry: str | Path | None = None) -> dict[str, dict]:
    """Registered datasets ``{name: {"path": …, …}}`` (empty when there is no registry yet)."""
    from ..checks import check_regular_file, entry_exists

    path = registry_path(registry)
    if not entry_exists(path):
        return {}
    check_regular_file(path, "dataset registry")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"the dataset registry is not valid JSON ({exc})", path=path,
                        fix="delete the file and import the datasets again") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets", {}), dict):
        raise DataError("the dataset registry has an unexpected layout", path=path,
                        fix="delete the file and import the datasets again")
    reg = dict(data.get("datasets", {}))
    for name, entry in reg.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise DataError(f"the registry entry {name!r} has no folder path (found {type(entry).__name__})",
                            path=path, row=f"datasets.{name}",
                            fix=f"import the folder again with `alignrec-lite data import DIR --name {name}`")
    return reg


def import_mmrec(folder: str | Path, name: str | None = None, registry: str | Path | None = None) -> dict:
    """Validate an MMRec folder (e.g. from MMRec's Google Drive) and register it under a name.

    The folder is loaded with :func:`~alignrec_lite.data.mmrec.load_mmrec`
    (interactions, mappings, items table and every feature file); any problem
    is reported with file, line and fix. Nothing is copied: the registry records
    the absolute path, so ``alignrec-lite train NAME`` can find it.

    Args:
        folder: the folder holding ``<name>.inter`` (and ``image_feat.npy`` …).
        name: registry name; default the ``.inter`` file's stem.
        registry: the registry file (default ``<cache dir>/datasets.json``).

    Returns:
        The registry entry: ``{"name", "path", "stats", "features"}``.

    Raises:
        DataError: the folder is not a valid MMRec folder.
    """
    from .mmrec import load_mmrec

    folder = Path(folder).expanduser().resolve()
    ds = load_mmrec(folder, load_features=True)
    stats = ds.stats()
    name = name or ds.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DataError(f"invalid dataset name {name!r}", row="--name",
                        fix="use letters, digits, '_', '.' and '-' only")
    entry = {"name": name, "path": str(folder), "inter": f"{ds.name}.inter", "stats": stats,
             "features": {k: list(v.shape) for k, v in ds.features.items()}}
    path = registry_path(registry)
    current = read_registry(path)
    current[name] = entry
    write_json(path, {"datasets": current})
    return entry


def resolve_dataset(name_or_path: str | Path, registry: str | Path | None = None) -> Path:
    """A folder path as is, or the folder registered under a name by :func:`import_mmrec`.

    Raises:
        DataError: neither an existing folder nor a registered name.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    reg = read_registry(registry)
    if str(name_or_path) in reg:
        return Path(reg[str(name_or_path)]["path"])
    raise DataError(f"{str(name_or_path)!r} is neither a folder nor a registered dataset",
                    fix=f"pass a folder or import one with `alignrec-lite data import DIR` "
                    f"(registered: {', '.join(sorted(reg)) or 'none'})")


__all__ = ["build_amazon", "import_mmrec", "read_reviews", "read_meta", "item_text", "resolve_dataset",
           "read_registry", "summary"]
