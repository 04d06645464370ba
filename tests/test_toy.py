"""Tests of the generated toy shop (alignrec_lite.data.toy) and its bundled copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alignrec_lite.data import toy, toy_features
from alignrec_lite.data.mmrec import check_images, load_mmrec
from alignrec_lite.errors import ConfigError, DataError
from alignrec_lite.utils import tokenize


@pytest.fixture(scope="module")
def ds():
    return toy.load_toy("default")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    out = {}
    for size in ("default", "smoke"):
        out[size] = toy.build_toy(root / size, size=size, seed=0, progress=False)
    return out


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("size", ["default", "smoke"])
def test_regenerating_matches_bundled_copy(rebuilt, size):
    bundled, fresh = toy.toy_path(size), rebuilt[size]
    for name in ("toy.inter", "items.csv", "u_id_mapping.csv", "i_id_mapping.csv"):
        assert (fresh / name).read_bytes() == (bundled / name).read_bytes(), name
    items = pd.read_csv(bundled / "items.csv")
    for rel in items["image"]:
        assert np.array_equal(_pixels(fresh / rel), _pixels(bundled / rel)), rel
    # the bundled feature files are exactly what write_attribute_features produces
    feats = toy_features.attribute_features(bundled)
    for modality in ("image", "text"):
        saved = np.load(bundled / f"{modality}_feat.npy", allow_pickle=False)
        np.testing.assert_array_equal(saved, feats[modality])


def test_other_seed_gives_other_data():
    a, items_a, _ = toy.generate_toy(size="smoke", seed=0)
    b, items_b, _ = toy.generate_toy(size="smoke", seed=1)
    assert not items_a["text"].equals(items_b["text"])
    again, _, _ = toy.generate_toy(size="smoke", seed=0)
    pd.testing.assert_frame_equal(a, again)


@pytest.mark.parametrize("size", ["default", "smoke"])
def test_bundled_folder_is_valid_mmrec(size):
    d = toy.load_toy(size)
    assert check_images(d) == d.n_items
    n_total = np.bincount(np.concatenate([d.train, d.valid, d.test])[:, 0], minlength=d.n_users)
    assert n_total.min() >= 5
    # MMRec split rule per user
    for u in range(d.n_users):
        n = n_total[u]
        vt = 2 if n < 10 else int(0.2 * n)
        assert d.user_degree("valid")[u] == (1 if n < 10 else vt // 2)
        assert d.user_degree("test")[u] == vt - (1 if n < 10 else vt // 2)
    assert d.features["image"].shape == (d.n_items, 18)
    assert d.features["text"].dtype == np.float32
    lo, hi = (300, 500) if size == "default" else (80, 160)
    assert lo <= d.n_items <= hi
    assert d.n_users == toy.SIZES[size].n_users


def test_timestamps_increase_per_user():
    inter = pd.read_csv(toy.toy_path("smoke") / "toy.inter", sep="\t")
    assert (inter.groupby("userID")["timestamp"].diff().dropna() > 0).all()
    assert set(inter["rating"].unique()) <= {1, 2, 3, 4, 5}


def test_long_tail(ds):
    counts = np.sort(np.bincount(np.concatenate([ds.train, ds.valid, ds.test])[:, 1]))[::-1]
    top = counts[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.3  # uniform popularity would give 0.1
    assert counts[0] > 10 * np.median(counts)


def _same_value_lift(ds, column):
    """P(two items of one user share the value) / P(two random interactions share it)."""
    allx = np.concatenate([ds.train, ds.valid, ds.test])
    codes = ds.items[column].astype("category").cat.codes.to_numpy()[allx[:, 1]]
    within = []
    for u in range(ds.n_users):
        c = np.bincount(codes[allx[:, 0] == u])
        n = c.sum()
        within.append((c * (c - 1)).sum() / (n * (n - 1)))
    p = np.bincount(codes) / len(codes)
    return float(np.mean(within) / (p**2).sum())


def test_content_predicts_taste(ds):
    assert _same_value_lift(ds, "category") > 1.5
    assert _same_value_lift(ds, "colour") > 1.4
    assert _same_value_lift(ds, "brand") > 1.15  # brand is only in the text
    # a content-only scorer ranks held-out test items well above chance
    feat = ds.features["image"]  # (n_items, 18)
    tr = ds.interaction_matrix("train")
    profile = np.asarray(tr @ feat) / np.maximum(tr.sum(axis=1), 1)  # (n_users, 18)
    scores = profile @ feat.T  # (n_users, n_items)
    aucs = []
    for u, i in ds.test:
        neg = np.flatnonzero(np.asarray(tr[u].todense()).ravel() == 0)
        aucs.append((scores[u, i] > scores[u, neg]).mean())
    assert np.mean(aucs) > 0.65


def test_image_and_text_carry_different_facts(ds):
    items = ds.items
    tokens = items["text"].map(lambda t: set(tokenize(t)))
    brand_ok = [b.lower() in t for b, t in zip(items["brand"], tokens)]
    assert all(brand_ok)  # brand always in the text
    pat_named = [bool(set(toy.PATTERN_WORDS[p]) & t) for p, t in zip(items["pattern"], tokens)]
    col_named = [bool(set(toy.COLOUR_WORDS[c]) & t) for c, t in zip(items["colour"], tokens)]
    cat_named = [bool(set(toy.CATEGORY_WORDS[c]) & t) for c, t in zip(items["category"], tokens)]
    assert all(cat_named)
    assert pat_named == items["text_has_pattern"].astype(bool).tolist()
    assert col_named == items["text_has_colour"].astype(bool).tolist()
    assert 0.25 < 1 - np.mean(pat_named) < 0.55  # pattern only in the image for ~40 %
    assert 0.1 < 1 - np.mean(col_named) < 0.3
    # synonyms: every colour is named with more than one word across the shop
    for colour, words in toy.COLOUR_WORDS.items():
        used = set().union(*tokens[items["colour"] == colour]) & set(words)
        assert len(used) >= 2, colour
    # the pattern is visible in the image, also where the text omits it
    hidden = items[~items["text_has_pattern"].astype(bool)]
    for item, row in hidden.iterrows():
        px = _pixels(ds.image_path(item)).reshape(-1, 3)
        n_pattern_px = (px == np.array(toy._pattern_rgb(toy.COLOUR_RGB[row["colour"]]))).all(1).sum()
        assert (n_pattern_px > 20) == (row["pattern"] != "solid"), item


def test_attribute_features_match_attributes(ds):
    feats = toy_features.attribute_features(ds)
    img = feats["image"]
    cat = np.argmax(img[:, : len(toy.CATEGORIES)], axis=1)
    assert [toy.CATEGORIES[c] for c in cat] == ds.items["category"].tolist()
    col = np.argmax(img[:, 6:14], axis=1)
    assert [toy.COLOURS[c] for c in col] == ds.items["colour"].tolist()
    np.testing.assert_allclose(np.linalg.norm(feats["text"], axis=1), 1.0, rtol=1e-5)
    assert feats["text"].shape[1] == len(toy.text_vocabulary())


def test_write_attribute_features(tmp_path):
    out = toy.build_toy(tmp_path / "shop", size="smoke", seed=3, progress=False)
    assert not (out / "image_feat.npy").exists()  # build_toy writes no features
    paths = toy_features.write_attribute_features(out)
    assert paths["image"].exists() and (out / "features.json").exists()
    d = load_mmrec(out)
    assert set(d.features) == {"image", "text"}
    assert d.feature("auto")[0].shape[0] == d.n_items


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="size"):
        toy.toy_path("huge")
    with pytest.raises(ConfigError):
        toy.build_toy(tmp_path / "x", size="huge")
    out = toy.build_toy(tmp_path / "shop", size="smoke", progress=False)
    with pytest.raises(DataError, match="overwrite"):
        toy.build_toy(out, size="smoke", progress=False)
    toy.build_toy(out, size="smoke", seed=5, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]  # no temporary leftovers
    with pytest.raises(DataError, match="items.csv"):
        (out / "items.csv").unlink()
        toy_features.attribute_features(out)
