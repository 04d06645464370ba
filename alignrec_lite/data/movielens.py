"""MovieLens with posters: a real two-modality dataset in MMRec's format.

Builds an MMRec folder (ALIGNREC_SPEC §3.3) from a MovieLens release
(``ratings.csv``, ``movies.csv``, optionally ``links.csv``; e.g.
``ml-latest-small``, Harper & Konstan, ACM TiiS 2015) and a folder of posters
named ``{movieId}.jpg``. The processing follows MMRec's notebooks (§3.4):

1. implicit feedback: keep ratings ``>= min_rating`` (4 stars by default);
2. keep only movies that have a poster file;
3. iterative ``k``-core on users and items (:func:`~alignrec_lite.data.split.kcore`);
4. re-index users and items from 0 in order of first appearance;
5. MMRec's random per-user split (:func:`~alignrec_lite.data.split.mmrec_split`).

The item text is ``"Title (Year) — Genre, Genre"`` with MovieLens' trailing
articles moved to the front ("American President, The" → "The American
President"); the image is the poster. Posters are not copied by default:
``items.csv`` then holds their absolute paths, which
:meth:`RecDataset.image_path` returns unchanged.

:func:`download_movielens_small` fetches GroupLens' ``ml-latest-small`` itself (verified
against the official checksums); the catalogue (:mod:`alignrec_lite.data.catalog`) builds
MovieLens with posters once from ``$ALIGNREC_DATA`` into the cache.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, DownloadError
from ..files import replace_dir, sha256_file
from .archives import extract_zip
from .download import OFFLINE_ENV, download, is_offline
from .mmrec import format_stats
from .mmrec_files import write_mmrec_files
from .split import kcore, mmrec_split, reindex

NAME = "movielens"
_ARTICLES = ("The", "A", "An", "L'", "La", "Le", "Les", "Il", "El", "Los", "Las", "Un", "Une", "Das", "Der", "Die")
_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")
_POSTER = re.compile(r"^(\d+)\.jpg$")


# ------------------------------------------------------------------- reading
def _read_table(path: Path, required: tuple[str, ...], numeric: tuple[str, ...], what: str) -> pd.DataFrame:
    """Read a MovieLens CSV and check its columns and numeric values."""
    if not path.is_file():
        raise DataError(
            f"{what} file is missing",
            path=path,
            fix=f"point ratings_dir at an unpacked MovieLens folder (e.g. ml-latest-small) that contains {path.name}",
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"cannot parse the file as CSV ({type(exc).__name__})",
            path=path,
            fix="use the comma-separated UTF-8 file from the MovieLens release",
        ) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; the header is {','.join(df.columns)[:120]!r}",
            path=path,
            row=1,
            fix=f"the header must contain {', '.join(required)} (MovieLens layout)",
        )
    if df.empty:
        raise DataError("the file has a header but no rows", path=path, fix="use the full MovieLens file")
    for col in (c for c in numeric if c in df.columns):  # optional columns are checked when present
        vals = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = vals.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{col} {df[col].iloc[i]!r} is not a number",
                path=path,
                row=i + 2,
                fix=f"every {col} must be numeric; repair or remove that line",
            )
        df[col] = vals
    return df


def movie_text(title: str, genres: str) -> tuple[str, str, int | None, list[str]]:
    """Build an item's text from MovieLens' title and genres fields.

    Args:
        title: e.g. ``"American President, The (1995)"``.
        genres: e.g. ``"Comedy|Drama|Romance"`` or ``"(no genres listed)"``.

    Returns:
        ``(text, clean title, year or None, genre list)``; text is e.g.
        ``"The American President (1995) — Comedy, Drama, Romance"``.

    >>> movie_text("American President, The (1995)", "Comedy|Drama|Romance")[0]
    'The American President (1995) — Comedy, Drama, Romance'
    >>> movie_text("Babylon 5", "Sci-Fi")[0]
    'Babylon 5 — Sci-Fi'
    """
    raw = title.strip()
    m = _YEAR.match(raw)
    year = int(m.group("year")) if m else None
    name = m.group("title").strip() if m else raw
    alt = ""
    alt_m = re.match(r"^(.*?)(\s\(.+\))$", name)  # "Postman, The (Postino, Il)"
    if alt_m and ", " in alt_m.group(1):
        name, alt = alt_m.group(1), alt_m.group(2)
    for art in _ARTICLES:
        if name.endswith(f", {art}"):
            head = name[: -len(art) - 2]
            name = f"{art}{head}" if art.endswith("'") else f"{art} {head}"
            break
    name = name + alt
    genre_list = [g for g in genres.split("|") if g and g != "(no genres listed)"]
    text = name if year is None else f"{name} ({year})"
    if genre_list:
        text = f"{text} — {', '.join(genre_list)}"
    return text, name, year, genre_list


def _poster_ids(posters_dir: Path) -> dict[int, Path]:
    if not posters_dir.is_dir():
        raise DataError(
            "the posters folder does not exist",
            path=posters_dir,
            fix="point posters_dir at a folder of {movieId}.jpg files (e.g. $ALIGNREC_DATA/ml-posters/posters)",
        )
    out = {}
    for p in posters_dir.iterdir():
        m = _POSTER.match(p.name)
        if m and p.is_file() and p.stat().st_size > 0:
            out[int(m.group(1))] = p.resolve()
    return out


def _listing_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(files, key=lambda q: q.name):
        h.update(f"{p.name}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------- building
def build_movielens(
    out: str | Path,
    *,
    ratings_dir: str | Path,
    posters_dir: str | Path,
    seed: int = 999,
    min_rating: float = 4.0,
    k: int = 5,
    overwrite: bool = False,
    progress: bool = True,
    copy_posters: bool = False,
) -> Path:
    """Build the MovieLens-with-posters MMRec folder.

    Writes ``movielens.inter`` (userID itemID rating timestamp x_label),
    ``u_id_mapping.csv`` (userId → userID), ``i_id_mapping.csv`` (movieId →
    itemID), ``items.csv`` (itemID, raw_id = movieId, text, image, title, year,
    genres and, with ``links.csv``, imdbId, tmdbId) and ``dataset.json`` (the
    card: settings, source SHA-256s, statistics of every step).

    Args:
        out: destination folder (outside the repository).
        ratings_dir: folder with ``ratings.csv``, ``movies.csv`` [, ``links.csv``].
        posters_dir: folder of ``{movieId}.jpg`` posters.
        seed: seed of MMRec's per-user split.
        min_rating: ratings at or above it are positives.
        k: the k of the iterative k-core.
        overwrite: replace an existing ``out``.
        progress: print the statistics when done.
        copy_posters: copy the posters into ``out/images/<itemID>.jpg`` (relative
            paths in ``items.csv``); by default ``items.csv`` holds absolute paths
            to ``posters_dir`` and nothing is copied.

    Returns:
        The folder written.

    Raises:
        DataError: missing files or columns, non-numeric values, no poster
            matches, nothing left after filtering, or ``out`` exists.
    """
    t0 = time.perf_counter()
    out, ratings_dir, posters_dir = Path(out), Path(ratings_dir), Path(posters_dir)
    if out.exists() and not overwrite:
        raise DataError(
            "the output folder already exists",
            path=out,
            fix="pass overwrite=True (--overwrite) or choose another folder",
        )
    if not ratings_dir.is_dir():
        raise DataError(
            "the MovieLens folder does not exist",
            path=ratings_dir,
            fix="unpack ml-latest-small (GroupLens) and pass its folder as ratings_dir",
        )
    ratings_csv, movies_csv, links_csv = (ratings_dir / f for f in ("ratings.csv", "movies.csv", "links.csv"))
    ratings = _read_table(
        ratings_csv, ("userId", "movieId", "rating"), ("userId", "movieId", "rating", "timestamp"), "ratings"
    )
    has_ts = "timestamp" in ratings.columns
    movies = _read_table(movies_csv, ("movieId", "title", "genres"), ("movieId",), "movies")
    links = None
    if links_csv.exists():
        links = _read_table(links_csv, ("movieId", "imdbId", "tmdbId"), ("movieId",), "links")
    posters = _poster_ids(posters_dir)
    stats: dict = {
        "ratings": int(len(ratings)),
        "movies_in_movies_csv": int(len(movies)),
        "posters_found": len(posters),
    }

    df = ratings.astype({"userId": np.int64, "movieId": np.int64})
    df["timestamp"] = df["timestamp"].astype(np.int64) if has_ts else np.int64(0)
    known = df["movieId"].isin(movies["movieId"].astype(np.int64))
    stats["ratings_of_unknown_movies_dropped"] = int((~known).sum())
    df = df[known].drop_duplicates(subset=["userId", "movieId"], keep="first")
    df = df[df["rating"] >= min_rating]
    stats["positives"] = int(len(df))
    df = df[df["movieId"].isin(list(posters))]
    stats["positives_with_poster"] = int(len(df))
    if df.empty:
        raise DataError(
            "no positive rating has a poster",
            path=posters_dir,
            fix="check that the posters are named {movieId}.jpg with MovieLens movieIds",
        )
    df = kcore(df, k=k, user_col="userId", item_col="movieId")
    if df.empty:
        raise DataError(
            f"nothing is left after the {k}-core filter",
            path=ratings_csv,
            fix="lower k or min_rating, or use a larger MovieLens release",
        )
    user, user_raw = reindex(df["userId"])
    item, item_raw = reindex(df["movieId"])
    inter = pd.DataFrame(
        {
            "userID": user,
            "itemID": item,
            "rating": df["rating"].to_numpy(dtype=float),
            "timestamp": df["timestamp"].to_numpy(dtype=np.int64),
        }
    )
    inter["x_label"] = mmrec_split(user, seed=seed)

    meta = movies.assign(movieId=movies["movieId"].astype(np.int64)).drop_duplicates("movieId").set_index("movieId")
    rows = []
    for iid, mid in enumerate(item_raw):
        text, title, year, genres = movie_text(meta.at[mid, "title"], meta.at[mid, "genres"])
        rows.append(
            {
                "itemID": iid,
                "raw_id": str(mid),
                "text": text,
                "image": f"images/{iid}.jpg" if copy_posters else str(posters[int(mid)]),
                "title": title,
                "year": "" if year is None else year,
                "genres": "|".join(genres),
            }
        )
    items = pd.DataFrame(rows)
    if links is not None:
        lk = links.assign(movieId=links["movieId"].astype(np.int64)).drop_duplicates("movieId").set_index("movieId")
        items["imdbId"] = [lk["imdbId"].get(int(m), "") for m in item_raw]
        items["tmdbId"] = [lk["tmdbId"].get(int(m), "") for m in item_raw]

    lab = np.bincount(inter["x_label"], minlength=3)
    n_u, n_i = len(user_raw), len(item_raw)
    stats.update(
        {
            "users": n_u,
            "items": n_i,
            "interactions": int(len(inter)),
            "train": int(lab[0]),
            "valid": int(lab[1]),
            "test": int(lab[2]),
            "sparsity_percent": round(100.0 * (1 - len(inter) / (n_u * n_i)), 4),
        }
    )
    sources = {f.name: sha256_file(f) for f in (ratings_csv, movies_csv, links_csv) if f.exists()}
    used_posters = [posters[int(m)] for m in item_raw]
    card = {
        "name": "movielens-posters",
        "source": "MovieLens (GroupLens) ratings + posters named {movieId}.jpg",
        "builder": "alignrec_lite.data.movielens.build_movielens",
        "ratings_dir": str(ratings_dir.resolve()),
        "posters_dir": str(posters_dir.resolve()),
        "seed": int(seed),
        "min_rating": float(min_rating),
        "k": int(k),
        "copy_posters": bool(copy_posters),
        "source_sha256": sources,
        "posters_listing_sha256": _listing_sha256(used_posters),
        "stats": stats,
        "licence": "MovieLens: GroupLens usage licence (research use, cite Harper & Konstan 2015); "
        "posters: studio artwork, research/teaching only, do not redistribute",
    }
    with replace_dir(out, overwrite=overwrite) as tmp:  # the old folder stays whole until the swap
        if copy_posters:
            (tmp / "images").mkdir()
            for iid, src in enumerate(used_posters):
                shutil.copyfile(src, tmp / "images" / f"{iid}.jpg")
        stats["build_seconds"] = round(time.perf_counter() - t0, 2)
        write_mmrec_files(
            tmp,
            name=NAME,
            inter=inter,
            user_raw_ids=[str(u) for u in user_raw],
            item_raw_ids=[str(m) for m in item_raw],
            raw_id_names=("userId", "movieId"),
            items=items,
            card=card,
        )
    if progress:
        print(format_stats({"name": NAME, **stats}))
        print(
            f"positives {stats['positives']:,}, with poster {stats['positives_with_poster']:,}; "
            f"built in {stats['build_seconds']} s -> {out}"
        )
    return out


# ------------------------------------------------------------------ downloading ml-latest-small
def _verify_files(folder: Path, checksums: dict[str, str] | None, *, archive: Path | None = None) -> None:
    """Raise DownloadError unless every file in ``checksums`` exists in ``folder`` with that SHA-256."""
    for name, want in (checksums or {}).items():
        p = folder / name
        if not p.is_file():
            raise DownloadError(
                f"{name} is missing from the archive",
                path=archive or folder,
                row=name,
                fix="the archive is not ml-latest-small; use the official address",
            )
        got = sha256_file(p)
        if got != want:
            raise DownloadError(
                f"{name} does not match the official checksum (expected sha256 {want}, got {got})",
                path=archive or folder,
                row=name,
                fix="the source serves a different version of the data; delete the archive and use "
                "the official GroupLens address (datasets/movielens-small-download.md)",
            )


def _strip_for(archive: Path) -> int:
    """1 when every file of the zip sits under one top-level folder, else 0."""
    try:
        with zipfile.ZipFile(archive) as zf:
            tops = {n.replace("\\", "/").split("/")[0] for n in zf.namelist() if not n.endswith("/")}
            deep = all("/" in n.replace("\\", "/") for n in zf.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError):
        return 0
    return 1 if len(tops) == 1 and deep else 0


def download_movielens_small(
    cache_dir: str | Path | None = None,
    url: str | None = None,
    offline: bool = False,
    progress: bool = True,
    *,
    checksums: dict[str, str] | None = None,
    timeout: float = 30,
    retries: int = 4,
    backoff: float = 0.5,
) -> Path:
    """Fetch GroupLens' ml-latest-small, extract it safely and verify every file.

    Args:
        cache_dir: where the archive (``downloads/ml-latest-small.zip``) and the
            extracted folder (``ml-latest-small/``) go; default
            :func:`alignrec_lite.utils.cache_dir` (``$ALIGNREC_CACHE`` or
            ``~/.cache/alignrec-lite``).
        url: a mirror of the zip (else ``$ALIGNREC_URL_MOVIELENS_SMALL`` or GroupLens).
        offline: use only what is already in the cache.
        progress: show a progress bar.
        checksums: ``{file name: sha256}`` of the extracted files; default the
            official ones (:data:`~alignrec_lite.data.sources.MOVIELENS_SMALL_FILES`);
            ``{}`` skips the check (for a deliberately different mirror).
        timeout, retries, backoff: as for :func:`download`.

    Returns:
        The folder holding ``ratings.csv``, ``movies.csv``, ``links.csv``, ``tags.csv``.

    Raises:
        DownloadError: the download failed, the archive is unsafe, or a file does
            not match its checksum (the archive is then deleted).
    """
    from ..utils import cache_dir as default_cache
    from .sources import MOVIELENS_SMALL_FILES, source_url

    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    expected = dict(MOVIELENS_SMALL_FILES) if checksums is None else dict(checksums)
    folder = cache / "ml-latest-small"
    if folder.is_dir():
        try:
            _verify_files(folder, expected)
            if (folder / "ratings.csv").is_file():
                return folder
        except DownloadError:
            pass  # stale or edited copy: extract again below
    archive = cache / "downloads" / "ml-latest-small.zip"
    address = source_url("movielens-small", url)
    if is_offline(offline) and not archive.exists():
        raise DownloadError(
            f"offline mode ({OFFLINE_ENV}=1 or --offline) and ml-latest-small is not in the cache",
            path=archive,
            fix=f"download {address} by hand and save it as {archive} (or unzip it so that "
            f"{folder / 'ratings.csv'} exists), or turn offline mode off",
        )
    download(address, archive, timeout=timeout, retries=retries, backoff=backoff, progress=progress, offline=offline)

    def check(tmp: Path) -> None:
        if not (tmp / "ratings.csv").is_file():
            raise DownloadError(
                "the archive has no ratings.csv",
                path=archive,
                fix="this is not ml-latest-small; use the official address",
            )
        _verify_files(tmp, expected, archive=archive)

    try:
        extract_zip(archive, folder, strip_components=_strip_for(archive), overwrite=True, check=check)
    except DownloadError:
        archive.unlink(missing_ok=True)  # never keep a bad archive: the next run downloads afresh
        raise
    return folder
