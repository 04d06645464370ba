"""Read the public Amazon review dumps (2014 and 2023 releases): reviews, metadata, item text.

The 2014 metadata lines are Python literals (single quotes), so they are parsed
with :func:`ast.literal_eval` — never ``eval``. Item text is built as MMRec builds it
(:func:`item_text`). :func:`~alignrec_lite.data.amazon.build_amazon` turns what these
readers return into an MMRec folder.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

_ASIN_2014 = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")
_ASIN_2023 = re.compile(r'"parent_asin"\s*:\s*"([^"]+)"')


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
            raise DataError(
                "the line is neither JSON nor a Python literal",
                path=path,
                row=lineno,
                fix="re-download the file; it may be truncated or corrupt",
            ) from None
    if not isinstance(rec, dict):
        raise DataError(
            f"expected one object per line, got {type(rec).__name__}",
            path=path,
            row=lineno,
            fix="use the review/metadata dump as published (one record per line)",
        )
    return rec


def _iter_lines(path: Path, desc: str, progress: bool) -> Iterator[tuple[int, str]]:
    from tqdm.auto import tqdm

    try:
        fh = _open_text(path)
    except OSError as exc:
        raise DataError(
            f"cannot read the file ({exc.strerror or exc})", path=path, fix="check the path or pass a URL"
        ) from None
    try:
        with fh, tqdm(desc=desc, unit=" lines", unit_scale=True, disable=not progress, leave=False) as bar:
            for lineno, line in enumerate(fh, start=1):
                bar.update(1)
                line = line.strip()
                if line:
                    yield lineno, line
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DataError(
            f"the file is truncated or not valid gzip ({exc})", path=path, fix="delete it and download it again"
        ) from None


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
            raise DataError(
                f"the review has no {missing!r} field",
                path=path,
                row=lineno,
                fix=f"pass the {release} release's review file (fields {', '.join(_REVIEW_FIELDS[release])})",
            )
        ts = rec.get(tfield, 0) or 0
        try:
            ts = int(ts)
            rating = float(rec.get(rfield, 1.0) or 0.0)
        except (TypeError, ValueError):
            raise DataError(
                f"non-numeric {tfield} or {rfield}", path=path, row=lineno, fix="the file is corrupt; download it again"
            ) from None
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
        raise DataError(
            f"cannot parse the CSV ({exc})",
            path=path,
            fix="use the review dump as published (JSON lines or the rating-only CSV)",
        ) from None
    if has_header:
        cols = {c.lower(): c for c in df.columns}
        pick = [cols.get(n) for n in ("user_id", "parent_asin", "rating", "timestamp")]
        if pick[1] is None:
            pick[1] = cols.get("asin") or cols.get("item_id")
        if pick[0] is None or pick[1] is None:
            raise DataError(
                f"the CSV header {list(df.columns)} has no user_id/parent_asin columns",
                path=path,
                row=1,
                fix="use the 2023 benchmark CSV (user_id,parent_asin,rating,timestamp)",
            )
        df = df[[p for p in pick if p is not None]]
    if df.shape[1] < 2:
        raise DataError(
            "expected at least user and item columns", path=path, row=1, fix="use user,item,rating,timestamp rows"
        )
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
        raise DataError(
            "missing or non-numeric field",
            path=path,
            row=i + 1 + int(has_header),
            fix="the file is corrupt; download it again",
        )
    ts = ts.astype(np.int64)
    if release == "2023" and len(ts) and ts.max() > 10**11:
        ts = ts // 1000
    return pd.DataFrame(
        {
            "user": df["user"].astype(str),
            "item": df["item"].astype(str),
            "rating": rating.astype(float),
            "timestamp": ts,
        }
    )


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


__all__ = ["item_text", "read_meta", "read_reviews"]
