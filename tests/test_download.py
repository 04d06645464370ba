"""download(), extract_zip() and the MovieLens download, against a local HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from alignrec_lite.data.archives import extract_zip
from alignrec_lite.data.download import download, fetch
from alignrec_lite.data.movielens import download_movielens_small
from alignrec_lite.data.sources import MOVIELENS_SMALL_FILES, SOURCES, amazon_category, registry_entries, source_url
from alignrec_lite.errors import ConfigError, DownloadError

try:
    from httpserver import http_server
except ImportError:  # tests/ is a package
    from tests.httpserver import http_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
FAST = dict(timeout=1.0, retries=2, backoff=0.01, progress=False)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("ALIGNREC_OFFLINE", raising=False)


# ------------------------------------------------------------------ download()
def test_download_ok_verifies_and_skips_second_time(http_server, tmp_path):
    body = payload()
    url = http_server.add("/f.bin", body)
    dest = download(url, tmp_path / "f.bin", sha256=sha(body), **FAST)
    assert dest.read_bytes() == body
    assert not (tmp_path / "f.bin.part").exists()
    # cached: a second call with the right checksum makes no request
    n = len(http_server.log)
    download(url, dest, sha256=sha(body), **FAST)
    assert len(http_server.log) == n


def test_relative_dest_goes_into_cache_dir(http_server, tmp_path):
    url = http_server.add("/a.txt", b"hello")
    dest = download(url, "sub/a.txt", cache_dir=tmp_path, **FAST)
    assert dest == tmp_path / "sub" / "a.txt" and dest.read_bytes() == b"hello"


def test_cut_connection_resumes_with_range_and_is_byte_identical(http_server, tmp_path):
    body = payload(500_000, seed=1)
    url = http_server.add("/big.bin", body, cut_after=123_457, cut_times=1)
    dest = download(url, tmp_path / "big.bin", sha256=sha(body), **FAST)
    assert dest.read_bytes() == body
    reqs = http_server.requests_for("/big.bin")
    assert len(reqs) == 2
    assert "range" not in reqs[0]
    assert reqs[1]["range"] == "bytes=123457-"  # resumed where the cut happened


def test_partial_file_from_an_earlier_run_is_resumed(http_server, tmp_path):
    body = payload(200_000, seed=2)
    url = http_server.add("/p.bin", body)
    (tmp_path / "p.bin.part").write_bytes(body[:50_000])
    dest = download(url, tmp_path / "p.bin", sha256=sha(body), **FAST)
    assert dest.read_bytes() == body
    assert http_server.requests_for("/p.bin")[0]["range"] == "bytes=50000-"


def test_server_without_ranges_restarts_from_scratch(http_server, tmp_path):
    body = payload(100_000, seed=3)
    url = http_server.add("/nr.bin", body, ranges=False)
    (tmp_path / "nr.bin.part").write_bytes(b"garbage that must not survive")
    dest = download(url, tmp_path / "nr.bin", sha256=sha(body), **FAST)
    assert dest.read_bytes() == body


def test_wrong_checksum_is_rejected_and_bad_file_removed(http_server, tmp_path):
    url = http_server.add("/bad.bin", b"not what you expected")
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        download(url, tmp_path / "bad.bin", sha256="0" * 64, **FAST)
    assert "removed" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_replaced(http_server, tmp_path):
    body = b"fresh content"
    url = http_server.add("/r.bin", body)
    (tmp_path / "r.bin").write_bytes(b"stale")
    assert download(url, tmp_path / "r.bin", sha256=sha(body), **FAST).read_bytes() == body


def test_404_is_a_clear_error_without_retries_or_output(http_server, tmp_path):
    url = http_server.url("/missing.zip")
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "missing.zip", **FAST)
    msg = str(err.value)
    assert "HTTP 404" in msg and "missing.zip" in msg and "Fix:" in msg
    assert len(http_server.requests_for("/missing.zip")) == 1
    assert list(tmp_path.iterdir()) == []


def test_500_is_retried_then_a_clear_error_without_output(http_server, tmp_path):
    url = http_server.add("/err", b"x", status=500)
    with pytest.raises(DownloadError, match=r"failed after 3 attempt\(s\): HTTP 500"):
        download(url, tmp_path / "err.bin", **FAST)
    assert len(http_server.requests_for("/err")) == 3  # 1 + retries
    assert list(tmp_path.iterdir()) == []


def test_transient_500_then_success(http_server, tmp_path):
    body = payload(10_000, seed=4)
    url = http_server.add("/flaky", body, fail_times=2)
    assert download(url, tmp_path / "flaky.bin", **FAST).read_bytes() == body
    assert len(http_server.requests_for("/flaky")) == 3


def test_slow_server_times_out_with_clear_error_and_no_output(http_server, tmp_path):
    url = http_server.add("/slow", b"late", delay=5)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"no answer within 0\.3 s"):
        download(url, tmp_path / "slow.bin", timeout=0.3, retries=1, backoff=0.01, progress=False)
    assert time.perf_counter() - t0 < 3
    assert list(tmp_path.iterdir()) == []


def test_stall_mid_body_without_ranges_leaves_nothing(http_server, tmp_path):
    url = http_server.add("/stall", payload(50_000), stall_after=1000, stall=5, ranges=False)
    with pytest.raises(DownloadError, match="no data for"):
        download(url, tmp_path / "stall.bin", timeout=0.3, retries=0, backoff=0.01, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_stall_mid_body_with_ranges_keeps_part_and_next_run_resumes(http_server, tmp_path):
    body = payload(50_000, seed=5)
    url = http_server.add("/stall2", body, stall_after=20_000, stall=5)
    with pytest.raises(DownloadError, match="next run resumes"):
        download(url, tmp_path / "s.bin", timeout=0.3, retries=0, backoff=0.01, progress=False)
    assert not (tmp_path / "s.bin").exists()
    assert (tmp_path / "s.bin.part").stat().st_size == 20_000
    http_server.routes["/stall2"].stall_after = None
    assert download(url, tmp_path / "s.bin", sha256=sha(body), **FAST).read_bytes() == body
    assert http_server.requests_for("/stall2")[-1]["range"] == "bytes=20000-"


def test_connection_refused_is_retried_then_reported(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DownloadError, match="connection failed"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", **FAST)


def test_offline_mode_names_the_file_and_place(monkeypatch, http_server, tmp_path):
    url = http_server.add("/o.bin", b"data")
    monkeypatch.setenv("ALIGNREC_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "o.bin", **FAST)
    msg = str(err.value)
    assert "offline" in msg and url in msg and str(tmp_path / "o.bin") in msg
    assert http_server.log == []
    (tmp_path / "o.bin").write_bytes(b"data")  # placed by hand: accepted offline
    assert download(url, tmp_path / "o.bin", sha256=sha(b"data"), **FAST).read_bytes() == b"data"
    assert download(url, tmp_path / "o.bin", offline=True, **FAST).exists()


def test_fetch_redacts_api_key_and_reports_http_code(http_server):
    http_server.add("/3/movie/1", b"{}", query={"api_key": "right"})
    with pytest.raises(DownloadError) as err:
        fetch(http_server.url("/3/movie/1?api_key=SECRET"), timeout=1, retries=0)
    assert err.value.row == "HTTP 401"
    assert "SECRET" not in str(err.value) and "api_key=***" in str(err.value)
    assert fetch(http_server.url("/3/movie/1?api_key=right"), timeout=1, retries=0) == b"{}"


# ------------------------------------------------------------------ extract_zip()
def make_zip(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_extract_zip_strips_top_folder(tmp_path):
    arc = tmp_path / "a.zip"
    arc.write_bytes(make_zip({"top/": b"", "top/a.txt": b"A", "top/sub/b.txt": b"B"}))
    out = extract_zip(arc, tmp_path / "out", strip_components=1)
    assert (out / "a.txt").read_bytes() == b"A" and (out / "sub" / "b.txt").read_bytes() == b"B"


@pytest.mark.parametrize("bad", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_extract_zip_refuses_path_traversal(tmp_path, bad):
    arc = tmp_path / "a.zip"
    arc.write_bytes(make_zip({"fine.txt": b"ok", bad: b"pwned"}))
    with pytest.raises(DownloadError, match="unsafe archive member") as err:
        extract_zip(arc, tmp_path / "out")
    assert err.value.row == bad
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # nothing half-extracted


def test_extract_zip_refuses_symlinks(tmp_path):
    arc = tmp_path / "a.zip"
    arc.write_bytes(make_zip({"fine.txt": b"ok"}, symlink="link"))
    with pytest.raises(DownloadError, match="symbolic link"):
        extract_zip(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_zip_not_a_zip(tmp_path):
    arc = tmp_path / "a.zip"
    arc.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DownloadError, match="not a readable zip"):
        extract_zip(arc, tmp_path / "out")


# ------------------------------------------------------------------ MovieLens
def fake_movielens() -> dict[str, bytes]:
    """A tiny ml-latest-small look-alike: 12 users x 8 movies, every user rated >= 5 movies >= 4 stars."""
    ratings = ["userId,movieId,rating,timestamp"]
    for u in range(1, 13):
        for m in range(1, 9):
            if (u + m) % 4 != 0:
                ratings.append(f"{u},{m},{4.0 + (u * m) % 2 * 0.5},{1_000_000 + u * 100 + m}")
    movies = ["movieId,title,genres"] + [f"{m},Movie {m} ({1990 + m}),Comedy|Drama" for m in range(1, 9)]
    links = ["movieId,imdbId,tmdbId"] + [f"{m},{100 + m:07d},{800 + m}" for m in range(1, 9)]
    return {
        "README.txt": b"fake ml-latest-small for tests\n",
        "ratings.csv": ("\n".join(ratings) + "\n").encode(),
        "movies.csv": ("\n".join(movies) + "\n").encode(),
        "links.csv": ("\n".join(links) + "\n").encode(),
        "tags.csv": b"userId,movieId,tag,timestamp\n",
    }


def tiny_jpeg(color=(200, 30, 30), size=(8, 12)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def test_movielens_download_verify_extract_and_build(http_server, tmp_path):
    files = fake_movielens()
    url = http_server.add(
        "/ml-latest-small.zip",
        make_zip({f"ml-latest-small/{k}": v for k, v in files.items()}),
        cut_after=700,
        cut_times=1,
    )
    sums = {k: sha(v) for k, v in files.items()}
    folder = download_movielens_small(
        tmp_path / "cache", url=url, progress=False, checksums=sums, timeout=1, retries=2, backoff=0.01
    )
    assert folder == tmp_path / "cache" / "ml-latest-small"
    assert {p.name for p in folder.iterdir()} == set(files)
    assert (folder / "ratings.csv").read_bytes() == files["ratings.csv"]
    # second call: verified copy in the cache, no request
    n = len(http_server.log)
    assert download_movielens_small(tmp_path / "cache", url=url, progress=False, checksums=sums) == folder
    assert len(http_server.log) == n
    # ... then build the MMRec folder and load it
    posters = tmp_path / "posters"
    posters.mkdir()
    for m in range(1, 9):
        (posters / f"{m}.jpg").write_bytes(tiny_jpeg((30 * m, 0, 0)))
    from alignrec_lite.data.mmrec import check_images, load_mmrec
    from alignrec_lite.data.movielens import build_movielens

    out = build_movielens(tmp_path / "ml", ratings_dir=folder, posters_dir=posters, progress=False)
    ds = load_mmrec(out)
    assert ds.n_items == 8 and ds.n_users == 12
    assert check_images(ds) == 8


def test_movielens_default_checksums_reject_other_content(http_server, tmp_path):
    files = fake_movielens()
    url = http_server.add("/ml.zip", make_zip({f"ml-latest-small/{k}": v for k, v in files.items()}))
    with pytest.raises(DownloadError, match="does not match the official checksum"):
        download_movielens_small(tmp_path, url=url, progress=False, timeout=1, retries=0)
    assert not (tmp_path / "ml-latest-small").exists()
    assert not (tmp_path / "downloads" / "ml-latest-small.zip").exists()  # bad archive removed


def test_movielens_offline_says_where_to_put_the_zip(tmp_path):
    with pytest.raises(DownloadError) as err:
        download_movielens_small(tmp_path, offline=True, progress=False)
    msg = str(err.value)
    assert str(tmp_path / "downloads" / "ml-latest-small.zip") in msg
    assert "files.grouplens.org" in msg


def test_movielens_env_var_overrides_the_url(http_server, tmp_path, monkeypatch):
    files = fake_movielens()
    url = http_server.add("/mirror.zip", make_zip(files))  # no top folder: nothing to strip
    monkeypatch.setenv("ALIGNREC_URL_MOVIELENS_SMALL", url)
    folder = download_movielens_small(
        tmp_path, progress=False, checksums={k: sha(v) for k, v in files.items()}, timeout=1, retries=0
    )
    assert (folder / "movies.csv").read_bytes() == files["movies.csv"]
    assert http_server.requests_for("/mirror.zip")


def test_real_movielens_checksums(real_data, http_server, tmp_path):
    """The recorded checksums are those of the real files (zipped here and served locally)."""
    src = real_data / "ml-latest-small"
    if not src.is_dir():
        pytest.skip("ml-latest-small not in ALIGNREC_DATA")
    arc = make_zip({f"ml-latest-small/{n}": (src / n).read_bytes() for n in MOVIELENS_SMALL_FILES})
    url = http_server.add("/ml-latest-small.zip", arc)
    folder = download_movielens_small(tmp_path, url=url, progress=False, timeout=5, retries=0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(MOVIELENS_SMALL_FILES)


# ------------------------------------------------------------------ sources and registry
def test_source_url_priority(monkeypatch):
    assert source_url("amazon2014-reviews", category="Baby").endswith("/reviews_Baby_5.json.gz")
    monkeypatch.setenv("ALIGNREC_URL_AMAZON2014_REVIEWS", "http://mirror/r_{category}.gz")
    assert source_url("amazon2014-reviews", category="Baby") == "http://mirror/r_Baby.gz"
    assert source_url("amazon2014-reviews", "http://flag/x.gz", category="Baby") == "http://flag/x.gz"
    with pytest.raises(ConfigError, match="placeholder"):
        source_url("amazon2014-reviews")
    with pytest.raises(ConfigError, match="unknown data source"):
        source_url("nope")


def test_amazon_category_names():
    assert amazon_category("2014", "Sports") == ("Sports_and_Outdoors", "sports")
    assert amazon_category("2023", "baby") == ("Baby_Products", "baby_2023")
    assert amazon_category("2023", "video games") == ("Video_Games", "video_games_2023")
    with pytest.raises(ConfigError, match="unknown Amazon 2014 category"):
        amazon_category("2014", "Baby_Products")


def test_registry_json_matches_sources():
    reg = json.loads((REPO / "datasets" / "registry.json").read_text(encoding="utf-8"))
    assert reg["sources"] == registry_entries()
    ml = reg["datasets"]["movielens-small"]["files"]
    assert ml == dict(MOVIELENS_SMALL_FILES) == dict(SOURCES["movielens-small"].files)
    for card in reg["datasets"].values():
        assert (REPO / card["card"]).is_file()
