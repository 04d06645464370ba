"""Movie posters from The Movie Database (TMDB) for MovieLens.

MovieLens' ``links.csv`` maps every ``movieId`` to a ``tmdbId``. For each movie
the kit asks TMDB's API (``GET {api_base}/movie/{tmdbId}?api_key=KEY``) for the
``poster_path`` and fetches ``{image_base}{poster_path}`` into
``out_dir/{movieId}.jpg`` — the layout ``build_movielens(posters_dir=…)`` reads.

* A TMDB API key is needed (free, https://www.themoviedb.org/settings/api); it is
  never written to disk or printed.
* Requests run in a small thread pool and pass through a rate limiter
  (``rate_limit_per_s`` requests per second over all threads), well below TMDB's
  published limit, so the script stays polite.
* A rerun skips posters that are already there (non-empty and a readable image),
  so an interrupted fetch resumes where it stopped.
* Movies without a poster (no tmdbId, unknown to TMDB, no ``poster_path``, a
  broken image) are listed in ``out_dir/posters_report.json``.

This product uses the TMDB API but is not endorsed or certified by TMDB.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from ..errors import DataError, DownloadError
from ..files import write_json
from .download import download, fetch, is_valid_image, redact
from .sources import source_url

REPORT_NAME = "posters_report.json"


class RateLimiter:
    """Let at most ``rate`` calls per second through, across threads.

    Calls are spaced ``1 / rate`` seconds apart (a leaky bucket without burst).

    Args:
        rate: calls per second; ``0`` or less disables the limit.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Block until the caller may make its request."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def read_links(links_csv: str | Path) -> pd.DataFrame:
    """Read MovieLens' ``links.csv`` (``movieId,imdbId,tmdbId``).

    Returns:
        DataFrame with int ``movieId`` and nullable-int ``tmdbId``.

    Raises:
        DataError: the file is missing or lacks the columns.
    """
    path = Path(links_csv)
    if not path.is_file():
        raise DataError(
            "links.csv not found",
            path=path,
            fix="pass the links.csv of ml-latest-small (alignrec-lite data download movielens-small)",
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot parse the file ({type(exc).__name__})",
            path=path,
            fix="it must be MovieLens' CSV with columns movieId,imdbId,tmdbId",
        ) from None
    for col in ("movieId", "tmdbId"):
        if col not in df.columns:
            raise DataError(
                f"missing column {col}",
                path=path,
                row=1,
                fix="it must be MovieLens' CSV with columns movieId,imdbId,tmdbId",
            )
    movie = pd.to_numeric(df["movieId"], errors="coerce")
    if movie.isna().any():
        i = int(movie.isna().to_numpy().nonzero()[0][0])
        raise DataError(
            f"movieId {df['movieId'].iloc[i]!r} is not an integer",
            path=path,
            row=i + 2,
            fix="movieId values must be whole numbers",
        )
    tmdb = pd.to_numeric(df["tmdbId"].str.strip().replace("", None), errors="coerce").astype("Int64")
    return pd.DataFrame({"movieId": movie.astype("int64"), "tmdbId": tmdb})


def fetch_posters(
    links_csv: str | Path,
    out_dir: str | Path,
    *,
    api_key: str,
    api_base: str | None = None,
    image_base: str | None = None,
    workers: int = 4,
    rate_limit_per_s: float = 20,
    movie_ids: Iterable[int] | None = None,
    progress: bool = True,
    timeout: float = 30,
    retries: int = 4,
    backoff: float = 0.5,
) -> dict:
    """Fetch one poster per movie from TMDB into ``out_dir/{movieId}.jpg``.

    Args:
        links_csv: MovieLens ``links.csv``.
        out_dir: the posters folder (created if needed).
        api_key: a TMDB API (v3) key.
        api_base: API address (default ``$ALIGNREC_URL_TMDB_API`` or
            ``https://api.themoviedb.org/3``).
        image_base: image address including the size (default
            ``$ALIGNREC_URL_TMDB_IMAGE`` or ``https://image.tmdb.org/t/p/w342``).
        workers: concurrent requests.
        rate_limit_per_s: requests per second over all workers.
        movie_ids: only these movies (default: every movie in ``links.csv``).
        progress: show a progress bar.
        timeout, retries, backoff: per request, as for :func:`~alignrec_lite.data.download.download`.

    Returns:
        The report, also written to ``out_dir/posters_report.json``:
        ``{"requested", "downloaded", "already_present", "missing": [{"movieId",
        "tmdbId", "reason"}, …], "image_base"}``.

    Raises:
        DownloadError: the API key is refused (HTTP 401) — checked before any
            poster is fetched — or the API cannot be reached at all.
    """
    from tqdm.auto import tqdm

    if not api_key:
        raise DownloadError(
            "a TMDB API key is needed to fetch posters",
            row="--api-key",
            fix="create a free key at https://www.themoviedb.org/settings/api and pass "
            "--api-key or set TMDB_API_KEY; or use a local posters folder (--posters-dir)",
        )
    api = source_url("tmdb-api", api_base).rstrip("/")
    images = source_url("tmdb-image", image_base).rstrip("/")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    links = read_links(links_csv)
    if movie_ids is not None:
        wanted = {int(m) for m in movie_ids}
        links = links[links["movieId"].isin(wanted)]
    limiter = RateLimiter(rate_limit_per_s)
    stop = threading.Event()

    def one(movie_id: int, tmdb_id) -> tuple[str, str | None]:
        """Return ("downloaded" | "present" | "missing", reason)."""
        dest = out / f"{movie_id}.jpg"
        if is_valid_image(dest):
            return "present", None
        dest.unlink(missing_ok=True)  # empty or broken from an earlier run: fetch it again
        if pd.isna(tmdb_id):
            return "missing", "no tmdbId in links.csv"
        if stop.is_set():
            return "missing", "skipped after a fatal error"
        limiter.wait()
        try:
            body = fetch(
                f"{api}/movie/{int(tmdb_id)}?api_key={api_key}", timeout=timeout, retries=retries, backoff=backoff
            )
        except DownloadError as exc:
            if exc.row == "HTTP 401":
                stop.set()
                raise
            if exc.row == "HTTP 404":
                return "missing", "tmdbId not found on TMDB"
            return "missing", f"API request failed: {exc.message}"
        try:
            poster = json.loads(body).get("poster_path")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return "missing", "TMDB answered with invalid JSON"
        if not poster:
            return "missing", "TMDB has no poster for this movie"
        limiter.wait()
        try:
            download(
                f"{images}/{str(poster).lstrip('/')}",
                dest,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                progress=False,
            )
        except DownloadError as exc:
            return "missing", f"image download failed: {exc.message}"
        if not is_valid_image(dest):
            dest.unlink(missing_ok=True)
            return "missing", "the downloaded poster is not a readable image"
        return "downloaded", None

    rows = list(links.itertuples(index=False))
    # Check the key once before spawning the pool, so a bad key fails in one request.
    first = next((r for r in rows if not pd.isna(r.tmdbId) and not is_valid_image(out / f"{r.movieId}.jpg")), None)
    if first is not None:
        limiter.wait()
        try:
            fetch(
                f"{api}/movie/{int(first.tmdbId)}?api_key={api_key}", timeout=timeout, retries=retries, backoff=backoff
            )
        except DownloadError as exc:
            if exc.row == "HTTP 401":
                raise DownloadError(
                    f"TMDB refused the API key ({redact(api)})",
                    row="--api-key",
                    fix="check the key at https://www.themoviedb.org/settings/api",
                ) from None
            if exc.row != "HTTP 404":
                raise
    counts = {"downloaded": 0, "present": 0}
    missing: list[dict] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, int(r.movieId), r.tmdbId): r for r in rows}
        with tqdm(total=len(futures), desc="posters", unit="movie", disable=not progress) as bar:
            for fut in as_completed(futures):
                r = futures[fut]
                status, reason = fut.result()
                if status == "missing":
                    missing.append(
                        {
                            "movieId": int(r.movieId),
                            "tmdbId": None if pd.isna(r.tmdbId) else int(r.tmdbId),
                            "reason": reason,
                        }
                    )
                else:
                    counts[status] += 1
                bar.update(1)
    missing.sort(key=lambda m: m["movieId"])
    report = {
        "requested": len(rows),
        "downloaded": counts["downloaded"],
        "already_present": counts["present"],
        "missing_count": len(missing),
        "missing": missing,
        "image_base": images,
        "source": "The Movie Database (TMDB) API; this product uses the TMDB API but is not endorsed "
        "or certified by TMDB",
    }
    write_json(out / REPORT_NAME, report)
    return report
