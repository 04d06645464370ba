"""TMDB poster fetching and the MovieLens download commands, against a local HTTP server."""

from __future__ import annotations

import json
import time

import pytest

from alignrec_lite.data.tmdb import REPORT_NAME, RateLimiter, fetch_posters, is_valid_image
from alignrec_lite.errors import DataError, DownloadError

try:
    from httpserver import http_server
except ImportError:  # tests/ is a package
    from tests.httpserver import http_server  # noqa: F401

try:
    from test_download import fake_movielens, make_zip, sha, tiny_jpeg
except ImportError:
    from tests.test_download import fake_movielens, make_zip, sha, tiny_jpeg

KEY = "test-key-123"


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("ALIGNREC_OFFLINE", raising=False)


def serve_tmdb(server, movies: dict[int, object]) -> None:
    """Register /3/movie/<tmdbId> answers and poster images.

    ``movies`` maps tmdbId to "poster" (a valid JPEG), None (no poster_path),
    "broken" (poster_path to a non-image) or "404" (unknown to TMDB).
    """
    for tmdb_id, kind in movies.items():
        if kind == "404":
            continue  # the server answers 404 for unknown paths
        poster = None if kind is None else f"/p{tmdb_id}.jpg"
        server.add(
            f"/3/movie/{tmdb_id}",
            json.dumps({"id": tmdb_id, "poster_path": poster}).encode(),
            content_type="application/json",
            query={"api_key": KEY},
        )
        if kind == "poster":
            server.add(f"/img/w342/p{tmdb_id}.jpg", tiny_jpeg((tmdb_id % 255, 80, 120)), content_type="image/jpeg")
        elif kind == "broken":
            server.add(f"/img/w342/p{tmdb_id}.jpg", b"<html>not an image</html>", content_type="text/html")


def write_links(path, rows):
    path.write_text("movieId,imdbId,tmdbId\n" + "".join(f"{m},{i:07d},{t}\n" for m, i, t in rows))
    return path


def test_fetch_posters_concurrent_report_and_resume(http_server, tmp_path):
    rows = [
        (1, 11, 801),
        (2, 12, 802),
        (3, 13, 803),
        (4, 14, 804),
        (5, 15, 805),
        (6, 16, ""),
        (7, 17, 807),
        (8, 18, 808),
    ]
    links = write_links(tmp_path / "links.csv", rows)
    serve_tmdb(
        http_server, {801: "poster", 802: "poster", 803: "poster", 804: "poster", 805: None, 807: "404", 808: "broken"}
    )
    out = tmp_path / "posters"
    kw = dict(
        api_key=KEY,
        api_base=http_server.url("/3"),
        image_base=http_server.url("/img/w342"),
        workers=3,
        rate_limit_per_s=200,
        progress=False,
        timeout=1,
        retries=1,
        backoff=0.01,
    )
    report = fetch_posters(links, out, **kw)
    assert report["requested"] == 8 and report["downloaded"] == 4 and report["already_present"] == 0
    reasons = {m["movieId"]: m["reason"] for m in report["missing"]}
    assert set(reasons) == {5, 6, 7, 8}
    assert "no poster" in reasons[5] and "no tmdbId" in reasons[6]
    assert "not found" in reasons[7] and "not a readable image" in reasons[8]
    assert sorted(p.name for p in out.glob("*.jpg")) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert all(is_valid_image(out / f"{m}.jpg") for m in (1, 2, 3, 4))
    on_disk = json.loads((out / REPORT_NAME).read_text())
    assert on_disk["missing_count"] == 4 and KEY not in (out / REPORT_NAME).read_text()
    # resume: posters already there are not fetched again; a truncated one is
    (out / "2.jpg").write_bytes((out / "2.jpg").read_bytes()[:10])
    n_img = sum(1 for p, _ in http_server.log if p.startswith("/img/") and p.endswith(("1.jpg", "3.jpg", "4.jpg")))
    report2 = fetch_posters(links, out, **kw)
    assert report2["already_present"] == 3 and report2["downloaded"] == 1
    assert is_valid_image(out / "2.jpg")
    n_img2 = sum(1 for p, _ in http_server.log if p.startswith("/img/") and p.endswith(("1.jpg", "3.jpg", "4.jpg")))
    assert n_img2 == n_img


def test_bad_api_key_fails_fast_without_secret(http_server, tmp_path):
    links = write_links(tmp_path / "links.csv", [(1, 11, 801), (2, 12, 802)])
    serve_tmdb(http_server, {801: "poster", 802: "poster"})
    with pytest.raises(DownloadError, match="refused the API key") as err:
        fetch_posters(
            links,
            tmp_path / "p",
            api_key="wrong-secret",
            api_base=http_server.url("/3"),
            image_base=http_server.url("/img/w342"),
            progress=False,
            timeout=1,
            retries=0,
        )
    assert "wrong-secret" not in str(err.value)
    assert len(http_server.log) == 1  # one request, then stop
    with pytest.raises(DownloadError, match="API key is needed"):
        fetch_posters(links, tmp_path / "p", api_key="", progress=False)


def test_links_csv_errors(tmp_path):
    with pytest.raises(DataError, match="links.csv not found"):
        fetch_posters(tmp_path / "nope.csv", tmp_path / "p", api_key=KEY, progress=False)
    bad = tmp_path / "links.csv"
    bad.write_text("movie,tmdb\n1,2\n")
    with pytest.raises(DataError, match="missing column movieId"):
        fetch_posters(bad, tmp_path / "p", api_key=KEY, progress=False)


def test_rate_limiter_spaces_requests():
    lim = RateLimiter(50)
    t0 = time.perf_counter()
    for _ in range(11):
        lim.wait()
    assert time.perf_counter() - t0 >= 10 / 50 * 0.9


def _cli(argv):
    from alignrec_lite.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_cli_movielens_download_posters_and_build_end_to_end(http_server, tmp_path, capsys, monkeypatch):
    files = fake_movielens()
    zurl = http_server.add("/ml-latest-small.zip", make_zip({f"ml-latest-small/{k}": v for k, v in files.items()}))
    serve_tmdb(http_server, {800 + m: "poster" for m in range(1, 9)})
    cache = tmp_path / "cache"
    # the official checksums refuse the fake archive ...
    from alignrec_lite.data import sources

    with pytest.raises(DownloadError, match="official checksum"):
        _cli(
            [
                "data",
                "download",
                "movielens-small",
                "--cache",
                str(cache),
                "--url",
                zurl,
                "--quiet",
                "--timeout",
                "1",
                "--retries",
                "0",
            ]
        )
    # ... so for the fake data the test swaps in its own checksums
    monkeypatch.setattr(sources, "MOVIELENS_SMALL_FILES", {k: sha(v) for k, v in files.items()})
    assert _cli(["data", "download", "movielens-small", "--cache", str(cache), "--url", zurl, "--quiet"]) == 0
    folder = cache / "ml-latest-small"
    monkeypatch.setenv("TMDB_API_KEY", KEY)  # the key may come from the environment
    assert (
        _cli(
            [
                "data",
                "download",
                "posters",
                "--links",
                str(folder / "links.csv"),
                "--out",
                str(tmp_path / "posters"),
                "--url",
                http_server.url("/3"),
                "--image-url",
                http_server.url("/img/w342"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        _cli(
            [
                "data",
                "download",
                "movielens-small",
                "--cache",
                str(cache),
                "--url",
                zurl,
                "--quiet",
                "--out",
                str(tmp_path / "ml"),
                "--posters-dir",
                str(tmp_path / "posters"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "8 downloaded" in printed and "built" in printed
    from alignrec_lite.data.mmrec import check_images, load_mmrec

    ds = load_mmrec(tmp_path / "ml")
    assert ds.n_items == 8 and check_images(ds) == 8
    # every image is one of the posters served by TMDB
    served = {tiny_jpeg(((800 + m) % 255, 80, 120)) for m in range(1, 9)}
    assert all(ds.image_path(i).read_bytes() in served for i in range(ds.n_items))


def test_cli_help_has_examples():
    from alignrec_lite.cli import build_parser
    from alignrec_lite.cli.common import subparser

    p = build_parser()
    helps = []
    for path in (["data"], ["data", "build"], ["data", "download"]):
        helps += [(n, q.format_help()) for n, q in subparser(p, path).subcommands.choices.items()]
    names = {n for n, _ in helps}
    assert {"download", "import", "amazon", "movielens-small", "posters"} <= names
    for name, text in helps:
        if name in {"download", "import", "amazon", "movielens-small", "posters"}:
            assert "example:\n  alignrec-lite" in text, name
