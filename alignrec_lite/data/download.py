"""The one download helper of the kit.

Every file the kit fetches from the internet (MovieLens, Amazon review dumps,
product images, TMDB posters) goes through :func:`download`:

* the body is streamed to ``<dest>.part`` and renamed into place only when it is
  complete and (where a checksum is known) its SHA-256 matches;
* a partial ``.part`` file left by an earlier, interrupted run is resumed with an
  HTTP ``Range`` request when the server supports it;
* connection errors, time-outs and HTTP 5xx/408/429 answers are retried with
  exponential back-off (``backoff * 2**attempt`` seconds);
* an existing file with the right checksum is not fetched again;
* offline mode (``offline=True`` or ``ALIGNREC_OFFLINE=1``) never touches the
  network and says which file to place where by hand.

Only the standard library is used (``urllib``), so the kit needs no HTTP
dependency. Archives are unpacked by :func:`alignrec_lite.data.archives.extract_zip`.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DownloadError
from ..files import sha256_file

OFFLINE_ENV = "ALIGNREC_OFFLINE"
USER_AGENT = "alignrec-lite (research dataset downloader; +https://pypi.org/project/alignrec-lite/)"
CHUNK = 1 << 16

__all__ = ["download", "fetch", "is_offline", "is_valid_image", "redact", "OFFLINE_ENV"]


def is_offline(offline: bool = False) -> bool:
    """True when ``offline`` is set or the environment variable ``ALIGNREC_OFFLINE`` is ``1``/``true``."""
    env = os.environ.get(OFFLINE_ENV, "").strip().lower()
    return bool(offline) or env in {"1", "true", "yes", "on"}


def redact(url: str) -> str:
    """Hide secrets (``api_key=…``, ``token=…``) in a URL before it is printed.

    >>> redact("https://api.example.org/3/movie/1?api_key=abc123&language=en")
    'https://api.example.org/3/movie/1?api_key=***&language=en'
    """
    return re.sub(r"(?i)((?:api_key|apikey|token|access_token|key)=)[^&#]*", r"\1***", url)


class _Retryable(Exception):
    """A failure worth another attempt (network trouble, a 5xx answer)."""


@dataclass
class _State:
    accepts_ranges: bool = False
    resumed: bool = False


def _request(url: str, offset: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _open(url: str, *, offset: int, timeout: float):
    """Open ``url``; translate every failure into _Retryable or DownloadError."""
    try:
        return urllib.request.urlopen(_request(url, offset), timeout=timeout)
    except urllib.error.HTTPError as exc:
        code = exc.code
        body_headers = exc.headers
        exc.close()
        if code == 416 and offset:
            raise _RangeRefused(body_headers.get("Content-Range", "")) from None
        if code >= 500 or code in (408, 429):
            raise _Retryable(f"HTTP {code} {exc.reason}") from None
        hint = {
            401: "the server refused the credentials (check the API key)",
            403: "access is forbidden (the file may have moved, or the site blocks scripts)",
            404: "the file is not at this address (the link may have rotted)",
        }.get(code, "the server refused the request")
        raise _Fatal(f"HTTP {code} {exc.reason}: {hint}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, str) and "unknown url type" in reason:
            raise _Fatal(f"unsupported URL ({reason})") from None
        if isinstance(reason, FileNotFoundError):
            raise _Fatal(f"no such local file ({reason.strerror})") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _Retryable(f"no answer within {timeout:g} s") from None
        raise _Retryable(f"connection failed ({reason})") from None
    except TimeoutError:
        raise _Retryable(f"no answer within {timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None


class _Fatal(Exception):
    """A failure that another attempt will not fix (404, bad URL)."""


class _RangeRefused(Exception):
    """HTTP 416 on a resume request; carries the Content-Range header."""


def _fetch_to_part(url: str, part: Path, *, timeout: float, progress: bool, desc: str, state: _State) -> None:
    """One attempt: fetch (the rest of) ``url`` into ``part``."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset=offset, timeout=timeout)
    except _RangeRefused as exc:
        total = re.search(r"/(\d+)\s*$", str(exc))
        if total and int(total.group(1)) == offset:
            state.resumed = True
            return  # the partial file is already complete
        part.unlink(missing_ok=True)
        raise _Retryable("the server refused to resume the partial file; starting again") from None
    with resp:
        status = getattr(resp, "status", None) or 200
        headers = resp.headers
        mode = "wb"
        if offset and status == 206:
            start = re.match(r"\s*bytes\s+(\d+)-", headers.get("Content-Range", "") or "")
            if start and int(start.group(1)) == offset:
                mode = "ab"
                state.resumed = True
            else:  # an unexpected range: restart cleanly
                part.unlink(missing_ok=True)
                raise _Retryable("the server answered the resume request with the wrong range")
        else:
            offset = 0
        if status == 206 or (headers.get("Accept-Ranges", "") or "").lower() == "bytes":
            state.accepts_ranges = True
        length = headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        total = None if length is None else offset + length
        written = 0
        read = getattr(resp, "read1", resp.read)  # read1: return what has arrived, so a stall loses nothing
        with (
            open(part, mode) as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    block = read(CHUNK)
                except http.client.IncompleteRead as exc:
                    fh.write(exc.partial)
                    raise _Retryable(f"connection closed after {offset + written + len(exc.partial):,} bytes") from None
                except TimeoutError:
                    raise _Retryable(f"no data for {timeout:g} s (at byte {offset + written:,})") from None
                except (ConnectionError, http.client.HTTPException, OSError) as exc:
                    raise _Retryable(f"connection lost at byte {offset + written:,} ({type(exc).__name__})") from None
                if not block:
                    break
                fh.write(block)
                written += len(block)
                bar.update(len(block))
        if length is not None and written < length:
            raise _Retryable(f"connection closed after {offset + written:,} of {total:,} bytes")


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = 30,
    retries: int = 4,
    backoff: float = 0.5,
    progress: bool = True,
    offline: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` safely: resume, retry, verify, rename atomically.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: the final file. A relative path is taken inside ``cache_dir`` when
            one is given (else relative to the working directory).
        sha256: expected hex SHA-256 of the file, when known.
        cache_dir: folder for relative ``dest`` paths.
        timeout: seconds to wait for a connection or for the next block of data.
        retries: extra attempts after the first one, for network errors, time-outs
            and HTTP 5xx/408/429 answers.
        backoff: the wait before retry ``n`` (1-based) is ``backoff * 2**(n-1)`` s.
        progress: show a tqdm progress bar.
        offline: never use the network (also set by ``ALIGNREC_OFFLINE=1``).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`, complete and verified.

    Raises:
        DownloadError: HTTP 4xx, too many failed attempts, a checksum mismatch
            (the bad file is removed) or offline mode with the file absent. On
            failure ``dest`` is untouched; a partial ``dest.part`` is kept only
            when the server supports resuming, so a second run continues it.
    """
    dest = Path(dest)
    if cache_dir is not None and not dest.is_absolute():
        dest = Path(cache_dir) / dest
    want = sha256.lower() if sha256 else None
    shown = redact(url)
    if dest.exists():
        if want is None or sha256_file(dest) == want:
            return dest
    if is_offline(offline):
        what = "is missing" if not dest.exists() else "does not match its checksum"
        raise DownloadError(
            f"offline mode ({OFFLINE_ENV}=1 or --offline) and the file {what}",
            path=dest,
            fix=f"download {shown} by hand and save it as {dest}, or turn offline mode off",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    state = _State()
    attempt = 0
    restarted = False
    while True:
        try:
            _fetch_to_part(url, part, timeout=timeout, progress=progress, desc=dest.name, state=state)
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                _give_up(part, state)
                kept = (
                    f"; {part.stat().st_size:,} bytes are kept in {part.name} and the next run resumes"
                    if part.exists()
                    else ""
                )
                raise DownloadError(
                    f"download of {shown} failed after {attempt} attempt(s): {exc}{kept}",
                    path=dest,
                    fix="check the network or the address (override it with --url or the ALIGNREC_URL_* "
                    "variable) and run the command again",
                ) from None
            time.sleep(backoff * 2 ** (attempt - 1))
            continue
        except _Fatal as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"cannot download {shown}: {exc}",
                path=dest,
                fix="check the address; a mirror can be given with --url or an ALIGNREC_URL_* variable",
            ) from None
        except BaseException:
            _give_up(part, state)
            raise
        if want is not None:
            got = sha256_file(part)
            if got != want:
                part.unlink(missing_ok=True)
                if state.resumed and not restarted:
                    restarted, state = True, _State()  # a bad resume: one clean retry
                    continue
                raise DownloadError(
                    f"checksum mismatch for {shown}: expected sha256 {want}, got {got}; the bad file was removed",
                    path=dest,
                    fix="run again; if it persists the source changed or a mirror serves other content "
                    "(compare with datasets/registry.json)",
                )
        os.replace(part, dest)
        return dest


def _give_up(part: Path, state: _State) -> None:
    """Remove a partial file unless the server can resume it."""
    if part.exists() and not (state.accepts_ranges and part.stat().st_size > 0):
        part.unlink(missing_ok=True)


def fetch(
    url: str,
    *,
    timeout: float = 30,
    retries: int = 4,
    backoff: float = 0.5,
    offline: bool = False,
    max_bytes: int = 32 << 20,
) -> bytes:
    """GET a small resource (an API answer) into memory, with the same retries as :func:`download`.

    Args:
        url: the address (secrets in it are redacted from error messages).
        timeout, retries, backoff, offline: as for :func:`download`.
        max_bytes: refuse larger answers.

    Returns:
        The response body.

    Raises:
        DownloadError: on HTTP 4xx, too many failures, offline mode or an answer
            over ``max_bytes``. ``DownloadError.row`` holds ``"HTTP <code>"`` for 4xx.
    """
    shown = redact(url)
    if is_offline(offline):
        raise DownloadError(f"offline mode: cannot query {shown}", fix="turn offline mode off")
    attempt = 0
    while True:
        try:
            try:
                resp = urllib.request.urlopen(_request(url), timeout=timeout)
            except urllib.error.HTTPError as exc:
                code, reason = exc.code, exc.reason
                exc.close()
                if code >= 500 or code in (408, 429):
                    raise _Retryable(f"HTTP {code} {reason}") from None
                raise DownloadError(
                    f"HTTP {code} {reason} for {shown}", row=f"HTTP {code}", fix="check the address and the API key"
                ) from None
            except urllib.error.URLError as exc:
                raise _Retryable(f"connection failed ({exc.reason})") from None
            except TimeoutError:
                raise _Retryable(f"no answer within {timeout:g} s") from None
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
            with resp:
                try:
                    body = resp.read(max_bytes + 1)
                except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
                    raise _Retryable(f"reading the answer failed ({type(exc).__name__})") from None
            if len(body) > max_bytes:
                raise DownloadError(
                    f"the answer from {shown} is larger than {max_bytes:,} bytes",
                    fix="this address does not look like an API endpoint",
                )
            return body
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"request to {shown} failed after {attempt} attempt(s): {exc}",
                    fix="check the network and run again",
                ) from None
            time.sleep(backoff * 2 ** (attempt - 1))


def is_valid_image(path: Path) -> bool:
    """True when ``path`` exists, is non-empty and PIL can verify it as an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        with Image.open(path) as im:
            im.verify()
        return True
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False
