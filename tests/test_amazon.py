"""Amazon 2014 / 2023 builds from small fixture dumps served on 127.0.0.1, and `data import`."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from alignrec_lite.data import amazon, amazon_read
from alignrec_lite.data.amazon import build_amazon, compare_stats
from alignrec_lite.data.amazon_read import item_text
from alignrec_lite.data.catalog import import_mmrec, resolve_dataset
from alignrec_lite.data.mmrec import check_images, load_mmrec
from alignrec_lite.errors import DataError

try:
    from httpserver import http_server
except ImportError:  # tests/ is a package
    from tests.httpserver import http_server  # noqa: F401

N_USERS, N_ITEMS = 30, 20
FAST = dict(timeout=1.0, retries=1, backoff=0.01, progress=False, workers=4)


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("ALIGNREC_OFFLINE", raising=False)


def image_bytes(i: int, fmt: str = "JPEG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6, 6), (i * 10 % 256, 100, 200)).save(buf, fmt)
    return buf.getvalue()


def interactions() -> list[tuple[str, str, float, int]]:
    """Rows (user, item, rating, time): a 5-core block plus rows the k-core must drop, and duplicates."""
    rows = []
    for u in range(N_USERS):
        for j in range(6):
            it = (u + 3 * j) % N_ITEMS
            rows.append((f"U{u:02d}", f"B{it:09d}", float(1 + (u + j) % 5), 1_300_000_000 + 1000 * u + j))
    rows.append(("U00", "B000000000", 5.0, 1_399_999_999))  # duplicate pair
    rows += [("U90", "B000000001", 4.0, 1_400_000_000), ("U90", "B000000002", 4.0, 1_400_000_001)]  # user < 5
    # item Z has 3 users; user U80 has 5 rows, one of them on Z: dropping Z must cascade to U80
    rows += [(f"U{u:02d}", "BZZZZZZZZZ", 3.0, 1_400_000_100 + u) for u in (1, 2)]
    rows += [("U80", f"B{it:09d}", 5.0, 1_400_000_200 + it) for it in (3, 4, 5, 6)] + [("U80", "BZZZZZZZZZ", 5.0, 1)]
    return rows


def ref_kcore(rows, k=5):
    """An independent iterative k-core, for checking."""
    pairs = list(dict.fromkeys((u, i) for u, i, _, _ in rows))
    while True:
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        keep = [(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k]
        if len(keep) == len(pairs):
            return keep
        pairs = keep


# item kinds: what the metadata and the image server do for each item
SPECIAL = {0: "no_meta", 1: "no_image_url", 2: "404", 3: "png", 4: "broken", 5: "cut"}


def gz_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def make_dumps(release: str, server, folder: Path) -> tuple[Path, Path]:
    """Write review + metadata dumps for ``release`` and serve the images; return (reviews, meta)."""
    rows = interactions()
    asins = sorted({i for _, i, _, _ in rows})
    if release == "2014":
        reviews = [
            json.dumps(
                {"reviewerID": u, "asin": i, "reviewerName": "x", "overall": r, "reviewText": "ok", "unixReviewTime": t}
            )
            for u, i, r, t in rows
        ]
    else:
        reviews = [
            json.dumps(
                {
                    "rating": r,
                    "title": "t",
                    "text": "ok",
                    "images": [],
                    "asin": f"C{i[1:]}",
                    "parent_asin": i,
                    "user_id": u,
                    "timestamp": t * 1000,
                    "verified_purchase": True,
                }
            )
            for u, i, r, t in rows
        ]
    meta = []
    for n, asin in enumerate(asins):
        kind = SPECIAL.get(n)
        if kind == "no_meta":
            continue
        img = server.url(f"/img/{asin}.{'png' if kind == 'png' else 'jpg'}")
        if kind == "404":
            pass  # not registered: the server answers 404
        elif kind == "broken":
            server.add(f"/img/{asin}.jpg", b"GIF89a-not-really")
        elif kind == "png":
            server.add(f"/img/{asin}.png", image_bytes(n, "PNG"), content_type="image/png")
        elif kind == "cut":
            server.add(f"/img/{asin}.jpg", image_bytes(n), cut_after=40, cut_times=1)
        else:
            server.add(f"/img/{asin}.jpg", image_bytes(n))
        title = f"Item {n} 'quoted' \"name\""
        if release == "2014":
            rec = {
                "asin": asin,
                "title": title,
                "price": 9.99,
                "salesRank": {"Baby": n},
                "categories": [["Baby", f"Sub{n % 3}"], ["Other"]],
                "description": f"Line one.\nLine {n}.",
            }
            if n % 4 != 1:
                rec["brand"] = f"Brand{n % 2}"
            if kind != "no_image_url":
                rec["imUrl"] = img
            meta.append(repr(rec))  # Python literal, as in the 2014 release
        else:
            rec = {
                "main_category": "Baby",
                "title": title,
                "average_rating": 4.5,
                "features": ["soft"],
                "description": ["Line one.", f"Line {n}."],
                "price": None,
                "store": f"Store{n % 2}",
                "categories": ["Baby Products", f"Sub{n % 3}"],
                "details": {"Brand": f"Brand{n % 2}"},
                "parent_asin": asin,
                "images": [],
            }
            if kind != "no_image_url":
                rec["images"] = [
                    {"thumb": img + "?thumb", "large": None, "variant": "PT01"},
                    {"thumb": img + "?t", "large": img, "variant": "MAIN", "hi_res": None},
                ]
            meta.append(json.dumps(rec))
    meta.append(
        repr({"asin": "BNOTINCORE", "title": "skipped"})
        if release == "2014"
        else json.dumps({"parent_asin": "BNOTINCORE", "title": "skipped"})
    )
    ext = "json.gz" if release == "2014" else "jsonl.gz"
    return (gz_lines(folder / f"reviews_Baby_5.{ext}", reviews), gz_lines(folder / f"meta_Baby.{ext}", meta))


@pytest.mark.parametrize("release", ["2014", "2023"])
def test_build_amazon_from_fixture_dumps(release, http_server, tmp_path, capsys):
    reviews, meta = make_dumps(release, http_server, tmp_path)
    out = build_amazon(
        tmp_path / "out",
        release=release,
        category="Baby",
        reviews=reviews,
        meta=meta,
        seed=7,
        cache_dir=tmp_path / "cache",
        **FAST,
    )
    ds = load_mmrec(out)  # the folder `data check` accepts
    assert check_images(ds) > 0
    core = ref_kcore(interactions())
    users = sorted({u for u, _ in core})
    items = sorted({i for _, i in core})
    assert "U80" not in users and "U90" not in users and "BZZZZZZZZZ" not in items
    assert (ds.n_users, ds.n_items) == (len(users), len(items))
    assert len(ds.train) + len(ds.valid) + len(ds.test) == len(core)
    assert sorted(ds.item_raw_ids) == items and sorted(ds.user_raw_ids) == users
    assert (out / "i_id_mapping.csv").read_text().splitlines()[0] == "asin\titemID"
    assert (out / "u_id_mapping.csv").read_text().splitlines()[0] == "user_id\tuserID"
    # every user has train, valid and test rows (MMRec split)
    for split in (ds.train, ds.valid, ds.test):
        assert set(split[:, 0]) == set(range(ds.n_users))
    # item text as MMRec builds it
    items_df = ds.items
    asin_to_id = {a: i for i, a in enumerate(ds.item_raw_ids)}
    first = sorted(items)  # SPECIAL indexes this order
    assert items_df.at[asin_to_id[first[0]], "text"] == "     "  # no metadata: every field is ' '
    n6 = asin_to_id[first[6]]
    if release == "2014":
        assert items_df.at[n6, "text"] == "Item 6 'quoted' \"name\" Brand0 Baby Sub0 Line one. Line 6."
        assert items_df.at[asin_to_id[first[5]], "text"].startswith("Item 5 'quoted' \"name\"   Baby Sub2 ")
    else:
        assert items_df.at[n6, "text"] == "Item 6 'quoted' \"name\" Brand0 Baby Products Sub0 Line one. Line 6."
    assert "\n" not in "".join(items_df["text"])
    # images: present ones are JPEGs; the missing ones are recorded with a reason
    missing = {r["asin"]: r["reason"] for r in csv.DictReader(open(out / "missing_images.csv"))}
    assert set(missing) == {first[0], first[1], first[2], first[4]}
    assert "no metadata" in missing[first[0]] and "no image URL" in missing[first[1]]
    assert "404" in missing[first[2]] and "not a readable image" in missing[first[4]]
    from PIL import Image

    for asin, item in asin_to_id.items():
        rel = items_df.at[item, "image"]
        if asin in missing:
            assert rel == ""
        else:
            assert rel == f"images/{item}.jpg"
            with Image.open(out / rel) as im:
                assert im.format == "JPEG"  # the PNG was re-encoded
    # the image cut mid-transfer was resumed
    cut_path = f"/img/{first[5]}.jpg"
    assert [h.get("range") for h in http_server.requests_for(cut_path)] == [None, "bytes=40-"]
    card = json.loads((out / "dataset.json").read_text())
    assert card["stats"]["users"] == ds.n_users and card["build"]["seed"] == 7
    assert card["images"] == {"downloaded": len(items) - 4, "missing": 4}
    if release == "2014":
        assert card["expected_check"]["matches"] is False  # a fixture is not MMRec's Baby
        assert "differ from MMRec's published ones" in capsys.readouterr().out
    else:
        assert card["expected_check"]["matches"] is None


def test_rebuild_reuses_cached_images_and_same_seed_same_split(http_server, tmp_path):
    reviews, meta = make_dumps("2014", http_server, tmp_path)
    kw = dict(release="2014", category="baby", reviews=reviews, meta=meta, cache_dir=tmp_path / "cache", **FAST)
    a = build_amazon(tmp_path / "a", **kw)
    n_log = len(http_server.log)
    b = build_amazon(tmp_path / "b", **kw)
    again = sorted(p for p, _ in http_server.log[n_log:])
    first = sorted({i for _, i, _, _ in interactions()})
    assert again == sorted([f"/img/{first[2]}.jpg", f"/img/{first[4]}.jpg"])  # only the 404 and the broken one
    assert (a / "baby.inter").read_bytes() == (b / "baby.inter").read_bytes()
    c = build_amazon(tmp_path / "c", **{**kw, "seed": 1, "images": False})
    assert (a / "baby.inter").read_bytes() != (c / "baby.inter").read_bytes()
    assert not (c / "images").exists() and not (c / "missing_images.csv").exists()
    with pytest.raises(DataError, match="already exists"):
        build_amazon(tmp_path / "a", **kw)


def test_dumps_from_urls_and_env_override(http_server, tmp_path, monkeypatch):
    reviews, meta = make_dumps("2014", http_server, tmp_path)
    r_url = http_server.add("/dumps/reviews_Baby_5.json.gz", reviews.read_bytes())
    http_server.add("/dumps/meta_Baby.json.gz", meta.read_bytes())
    monkeypatch.setenv("ALIGNREC_URL_AMAZON2014_META", http_server.url("/dumps/meta_{category}.json.gz"))
    out = build_amazon(
        tmp_path / "o",
        release="2014",
        category="Baby",
        reviews=r_url,
        images=False,
        cache_dir=tmp_path / "cache",
        **FAST,
    )
    load_mmrec(out)
    assert http_server.requests_for("/dumps/meta_Baby.json.gz")
    assert (tmp_path / "cache" / "amazon-2014" / "downloads" / "meta_Baby.json.gz").exists()


def test_dump_download_404_leaves_no_output(http_server, tmp_path):
    with pytest.raises(Exception, match="HTTP 404"):
        build_amazon(
            tmp_path / "o",
            release="2023",
            category="Baby",
            reviews=http_server.url("/nope.jsonl.gz"),
            meta=http_server.url("/nope2.jsonl.gz"),
            cache_dir=tmp_path / "cache",
            **FAST,
        )
    assert not (tmp_path / "o").exists()


def test_meta_lines_are_never_evaluated(http_server, tmp_path):
    reviews, _ = make_dumps("2014", http_server, tmp_path)
    marker = tmp_path / "pwned"
    evil = "{'asin': 'B000000007', 'title': __import__('pathlib').Path(" + repr(str(marker)) + ").touch()}"
    meta = gz_lines(tmp_path / "evil_meta.json.gz", [repr({"asin": "B000000006", "title": "fine"}), evil])
    with pytest.raises(DataError, match="neither JSON nor a Python literal") as err:
        build_amazon(
            tmp_path / "o",
            release="2014",
            category="Baby",
            reviews=reviews,
            meta=meta,
            images=False,
            cache_dir=tmp_path / "cache",
            **FAST,
        )
    assert err.value.row == 2
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_review_errors_name_the_line(tmp_path):
    bad = gz_lines(
        tmp_path / "r.json.gz",
        [json.dumps({"reviewerID": "a", "asin": "b", "overall": 5, "unixReviewTime": 1}), json.dumps({"asin": "b"})],
    )
    with pytest.raises(DataError, match="no 'reviewerID' field") as err:
        amazon_read.read_reviews(bad, "2014", progress=False)
    assert err.value.row == 2
    trunc = tmp_path / "t.json.gz"
    trunc.write_bytes(gzip.compress(b'{"reviewerID": "a"}\n' * 100)[:30])
    with pytest.raises(DataError, match="truncated"):
        amazon_read.read_reviews(trunc, "2014", progress=False)


def test_rating_only_csv_inputs(tmp_path):
    p = tmp_path / "ratings_Baby.csv"
    p.write_text("A1,B1,5.0,1300000000\nA2,B1,4.0,1300000001\n")
    df = amazon_read.read_reviews(p, "2014", progress=False)
    assert df.to_dict("list") == {
        "user": ["A1", "A2"],
        "item": ["B1", "B1"],
        "rating": [5.0, 4.0],
        "timestamp": [1300000000, 1300000001],
    }
    q = tmp_path / "Baby_Products.csv"
    q.write_text("user_id,parent_asin,rating,timestamp\nA1,P1,5.0,1588687728923\n")
    df = amazon_read.read_reviews(q, "2023", progress=False)
    assert df["item"].tolist() == ["P1"] and df["timestamp"].tolist() == [1588687728]


def test_item_text_rules():
    assert item_text({"title": "T", "brand": None, "categories": [], "description": None}) == "T    "
    assert (
        item_text({"title": "T", "brand": "B", "categories": ["C1", "C2"], "description": "D\r\nE"}) == "T B C1 C2 D E"
    )


def test_compare_stats():
    exp = {"users": 19445, "items": 7050, "interactions": 160792}
    ok = compare_stats({"users": 19445, "items": 7050, "interactions": 160792, "train": 1}, exp)
    assert ok["matches"] is True and ok["differences"] == {}
    bad = compare_stats({"users": 19444, "items": 7050, "interactions": 160792}, exp)
    assert bad["matches"] is False and bad["differences"] == {"users": [19444, 19445]}
    assert amazon.expected_stats("2014", "Baby")["train"] == 118551
    assert amazon.expected_stats("2023", "Baby_Products") is None


def test_import_mmrec_registers_and_resolves(http_server, tmp_path):
    reviews, meta = make_dumps("2014", http_server, tmp_path)
    folder = build_amazon(
        tmp_path / "baby",
        release="2014",
        category="Baby",
        reviews=reviews,
        meta=meta,
        images=False,
        cache_dir=tmp_path / "cache",
        **FAST,
    )
    reg = tmp_path / "registry.json"
    entry = import_mmrec(folder, registry=reg)
    assert entry["name"] == "baby" and entry["stats"]["users"] == load_mmrec(folder).n_users
    entry2 = import_mmrec(folder, name="baby-copy", registry=reg)
    data = json.loads(reg.read_text())
    assert set(data["datasets"]) == {"baby", "baby-copy"}
    assert resolve_dataset("baby-copy", registry=reg) == Path(entry2["path"])
    with pytest.raises(DataError, match="neither a folder nor a registered dataset"):
        resolve_dataset("unknown", registry=reg)
    with pytest.raises(DataError, match="invalid dataset name"):
        import_mmrec(folder, name="../evil", registry=reg)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.inter").write_text("userID\titemID\tx_label\n0\t0\t7\n")
    with pytest.raises(DataError, match="x_label"):
        import_mmrec(broken, registry=reg)
    assert set(json.loads(reg.read_text())["datasets"]) == {"baby", "baby-copy"}


def test_import_real_mmrec_baby(baby_dir, tmp_path):
    entry = import_mmrec(baby_dir, registry=tmp_path / "r.json")
    assert (entry["stats"]["users"], entry["stats"]["items"], entry["stats"]["interactions"]) == (19445, 7050, 160792)


def _cli(argv):
    from alignrec_lite.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_cli_build_amazon_and_import(http_server, tmp_path, capsys):
    reviews, meta = make_dumps("2023", http_server, tmp_path)
    r_url = http_server.add("/d/r.jsonl.gz", reviews.read_bytes())
    m_url = http_server.add("/d/m.jsonl.gz", meta.read_bytes())
    out = tmp_path / "baby23"
    assert (
        _cli(
            [
                "data",
                "build",
                "amazon",
                "--release",
                "2023",
                "--category",
                "Baby",
                "--reviews",
                r_url,
                "--meta",
                m_url,
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "c"),
                "--seed",
                "3",
                "--quiet",
                "--timeout",
                "1",
                "--retries",
                "1",
            ]
        )
        == 0
    )
    ds = load_mmrec(out)
    assert ds.name == "baby_2023" and check_images(ds) == N_ITEMS - 4
    assert _cli(["data", "import", str(out), "--name", "b23", "--registry", str(tmp_path / "reg.json")]) == 0
    printed = capsys.readouterr().out
    assert "registered 'b23'" in printed and f"users        {ds.n_users:,}" in printed


def test_offline_build_without_cache_says_what_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNREC_OFFLINE", "1")
    with pytest.raises(Exception, match="offline mode") as err:
        build_amazon(tmp_path / "o", release="2014", category="Baby", cache_dir=tmp_path / "cache", **FAST)
    assert "reviews_Baby_5.json.gz" in str(err.value) and "snap.stanford.edu" in str(err.value)
