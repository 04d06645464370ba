"""Tests of the MovieLens-with-posters builder (alignrec_lite.data.movielens)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alignrec_lite.data.mmrec import check_images, load_mmrec
from alignrec_lite.data.movielens import build_movielens, movie_text
from alignrec_lite.errors import DataError
from alignrec_lite.utils import data_root

TITLES = {
    101: "Postman, The (Postino, Il) (1994)",
    102: "Heat (1995)",
    103: "Babylon 5",
    104: "Jumanji (1995)",
    105: "Seven (a.k.a. Se7en) (1995)",
    106: "No Poster (2001)",
    107: "Misérables, Les (1995)",
}


def _write_posters(folder, movie_ids):
    folder.mkdir(parents=True, exist_ok=True)
    for m in movie_ids:
        Image.new("RGB", (4, 6), (m % 255, 10, 20)).save(folder / f"{m}.jpg", format="JPEG")
    return folder


def _write_ml(folder, rows, titles=TITLES, links=True):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame(
        {
            "movieId": list(titles),
            "title": list(titles.values()),
            "genres": ["Comedy|Drama"] * (len(titles) - 1) + ["(no genres listed)"],
        }
    ).to_csv(folder / "movies.csv", index=False)
    if links:
        pd.DataFrame(
            {"movieId": list(titles), "imdbId": [f"{m:07d}" for m in titles], "tmdbId": [m * 10 for m in titles]}
        ).to_csv(folder / "links.csv", index=False)
    return folder


@pytest.fixture
def tiny(tmp_path):
    """k=3 world: 101-103 and 107 survive; 104 falls only once user 6 is dropped (iterative core)."""
    rows, t = [], 1000
    for u in range(1, 6):
        for m in (101, 102, 103):
            rows.append((u, m, 5.0, t := t + 1))
        rows.append((u, 106, 5.0, t := t + 1))  # no poster
    for u in (1, 2, 3):
        rows.append((u, 107, 4.0, t := t + 1))
    for u in (1, 2, 6):
        rows.append((u, 104, 4.5, t := t + 1))
    rows.append((6, 105, 5.0, t := t + 1))
    for m in (101, 102, 103, 107):
        rows.append((7, m, 3.5, t := t + 1))  # below the threshold
    ml = _write_ml(tmp_path / "ml", rows)
    posters = _write_posters(tmp_path / "posters", [101, 102, 103, 104, 105, 107])
    return ml, posters


def test_tiny_build(tmp_path, tiny):
    ml, posters = tiny
    out = build_movielens(tmp_path / "out", ratings_dir=ml, posters_dir=posters, k=3, progress=False)
    ds = load_mmrec(out)
    allx = np.concatenate([ds.train, ds.valid, ds.test])
    pairs = {(int(ds.raw_user_id(u)), int(ds.raw_item_id(i))) for u, i in allx}
    expected = {(u, m) for u in range(1, 6) for m in (101, 102, 103)} | {(u, 107) for u in (1, 2, 3)}
    assert pairs == expected  # threshold, poster filter and iterative k-core
    assert (ds.n_users, ds.n_items) == (5, 4)
    # n < 10: n-2 train, 1 valid, 1 test per user
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (8, 5, 5)
    assert ds.user_degree("valid").tolist() == [1] * 5
    items = ds.items
    assert items["raw_id"].tolist() == ["101", "102", "103", "107"]  # first appearance order
    assert ds.item_text(0) == "The Postman (Postino, Il) (1994) — Comedy, Drama"
    assert ds.item_text(2) == "Babylon 5 — Comedy, Drama"
    assert ds.item_text(3) == "Les Misérables (1995)"  # "(no genres listed)" dropped
    assert ds.image_path(1) == (posters / "102.jpg").resolve()  # absolute path, nothing copied
    assert not (out / "images").exists()
    assert check_images(ds) == 4
    card = json.loads((out / "dataset.json").read_text())
    assert card["stats"]["positives"] == 27 and card["stats"]["positives_with_poster"] == 22
    assert set(card["source_sha256"]) == {"ratings.csv", "movies.csv", "links.csv"}
    assert card["seed"] == 999
    inter = pd.read_csv(out / "movielens.inter", sep="\t")
    assert list(inter.columns) == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert inter["rating"].min() >= 4.0


def test_copy_posters_and_no_links(tmp_path, tiny):
    ml, posters = tiny
    (ml / "links.csv").unlink()
    out = build_movielens(tmp_path / "out", ratings_dir=ml, posters_dir=posters, k=3, progress=False, copy_posters=True)
    ds = load_mmrec(out)
    assert ds.items["image"].tolist() == [f"images/{i}.jpg" for i in range(4)]
    assert check_images(ds) == 4
    assert "imdbId" not in ds.items.columns
    src = np.asarray(Image.open(posters / "107.jpg"))
    assert np.array_equal(np.asarray(Image.open(ds.image_path(3))), src)


def test_split_sizes_follow_mmrec_rule(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(u, m, 5.0, u * 1000 + m) for u in range(40) for m in range(60) if rng.random() < 0.35]
    ml = _write_ml(tmp_path / "ml", rows, titles={m: f"Film {m} (2000)" for m in range(60)})
    posters = _write_posters(tmp_path / "posters", range(60))
    ds = load_mmrec(build_movielens(tmp_path / "out", ratings_dir=ml, posters_dir=posters, seed=3, progress=False))
    n = ds.user_degree("train") + ds.user_degree("valid") + ds.user_degree("test")
    assert n.max() >= 10
    vt = np.where(n < 10, 2, np.floor(0.2 * n).astype(int))
    valid = np.where(n < 10, 1, vt // 2)
    assert ds.user_degree("valid").tolist() == valid.tolist()
    assert ds.user_degree("test").tolist() == (vt - valid).tolist()
    # another seed, same sizes, different assignment
    ds2 = load_mmrec(build_movielens(tmp_path / "out2", ratings_dir=ml, posters_dir=posters, seed=4, progress=False))
    assert len(ds2.test) == len(ds.test)
    assert not np.array_equal(ds2.test, ds.test)


def test_errors(tmp_path, tiny):
    ml, posters = tiny
    kw = dict(posters_dir=posters, progress=False, k=3)
    with pytest.raises(DataError, match="does not exist"):
        build_movielens(tmp_path / "o", ratings_dir=tmp_path / "nope", **kw)
    with pytest.raises(DataError, match="posters folder"):
        build_movielens(tmp_path / "o", ratings_dir=ml, posters_dir=tmp_path / "nope", progress=False)
    movies = pd.read_csv(ml / "movies.csv")
    movies.drop(columns=["genres"]).to_csv(ml / "movies.csv", index=False)
    with pytest.raises(DataError, match="movies.csv.*genres"):
        build_movielens(tmp_path / "o", ratings_dir=ml, **kw)
    movies.to_csv(ml / "movies.csv", index=False)
    ratings = pd.read_csv(ml / "ratings.csv")
    bad = ratings.astype({"rating": str})
    bad.loc[4, "rating"] = "five"
    bad.to_csv(ml / "ratings.csv", index=False)
    with pytest.raises(DataError, match=r"ratings.csv, line 6: rating 'five'"):
        build_movielens(tmp_path / "o", ratings_dir=ml, **kw)
    (ml / "ratings.csv").unlink()
    with pytest.raises(DataError, match="ratings.csv"):
        build_movielens(tmp_path / "o", ratings_dir=ml, **kw)
    ratings.to_csv(ml / "ratings.csv", index=False)
    empty = tmp_path / "empty_posters"
    empty.mkdir()
    with pytest.raises(DataError, match="no positive rating has a poster"):
        build_movielens(tmp_path / "o", ratings_dir=ml, posters_dir=empty, progress=False)
    with pytest.raises(DataError, match="nothing is left"):
        build_movielens(tmp_path / "o", ratings_dir=ml, posters_dir=posters, k=50, progress=False)
    out = build_movielens(tmp_path / "o", ratings_dir=ml, **kw)
    with pytest.raises(DataError, match="overwrite"):
        build_movielens(out, ratings_dir=ml, **kw)
    build_movielens(out, ratings_dir=ml, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_movie_text():
    assert movie_text("American President, The (1995)", "Comedy|Romance")[1:] == (
        "The American President",
        1995,
        ["Comedy", "Romance"],
    )
    assert movie_text("Stranger Things (2016-)", "Drama")[2] == 2016


def test_real_movielens_posters(tmp_path):
    """Stats measured on ml-latest-small + ml-posters (see datasets/movielens-posters.md)."""
    root = data_root()
    if root is None:
        pytest.skip("set ALIGNREC_DATA=/path/to/data (with ml-latest-small/ and ml-posters/posters/)")
    ml, posters = root / "ml-latest-small", root / "ml-posters" / "posters"
    if not (ml / "ratings.csv").exists() or not posters.is_dir():
        pytest.skip(f"{ml} or {posters} is missing")
    out = build_movielens(tmp_path / "ml", ratings_dir=ml, posters_dir=posters, progress=False)
    ds = load_mmrec(out)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (601, 1934, 41067)
    assert (s["train"], s["valid"], s["test"]) == (33059, 3858, 4150)
    card = json.loads((out / "dataset.json").read_text())
    assert card["stats"]["positives"] == 48580 and card["stats"]["positives_with_poster"] == 45840
    assert card["source_sha256"]["ratings.csv"] == ("aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646")
    assert ds.item_text(0) == "Toy Story (1995) — Adventure, Animation, Children, Comedy, Fantasy"
    assert ds.image_path(0) == (posters / "1.jpg").resolve()
    assert check_images(ds, max_items=50) == 50
