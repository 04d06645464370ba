"""The dataset catalogue (alignrec_lite.data.catalog): names and folders resolved, datasets opened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alignrec_lite.data import open_dataset, open_stage1, resolve_dataset, working_copy
from alignrec_lite.data.catalog import MOVIELENS_FOLDER, import_mmrec, read_registry
from alignrec_lite.data.stage1_copies import (
    STAGE1_FOLDER,
    STAGE1_MANIFEST,
    STAGE1_RAW_ENCODERS,
    stage1_folder,
    stage1_settings,
)
from alignrec_lite.data.toy import toy_path
from alignrec_lite.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory) -> Path:
    """A dataset folder outside the kit: the SMOKE toy's interactions and items, no features."""
    return working_copy(toy_path("smoke"), tmp_path_factory.mktemp("plain") / "shop")


def test_toy_names_are_the_bundled_folders():
    assert resolve_dataset("toy") == toy_path("default")
    assert resolve_dataset("toy-smoke") == toy_path("smoke")
    full, small = open_dataset("toy"), open_dataset("toy", smoke=True)
    assert small.n_items == 120 and full.n_items > small.n_items
    assert set(small.features) == {"image", "text"}  # the bundled attribute features, nothing extracted
    assert open_dataset("toy-smoke").n_items == 120
    assert not open_dataset("toy-smoke", features=None).features


def test_a_plain_folder_is_returned_as_given(plain_folder, tmp_path, monkeypatch):
    assert resolve_dataset(plain_folder) == plain_folder
    assert resolve_dataset(str(plain_folder)) == plain_folder
    ds = open_dataset(plain_folder, features=None)
    assert ds.path == plain_folder and ds.n_items == 120 and not ds.features
    monkeypatch.chdir(tmp_path)  # an existing path wins over a built-in name, as the command line always did
    (tmp_path / "toy").mkdir()
    assert resolve_dataset("toy") == Path("toy")


def test_auto_features_are_extracted_once_when_missing(plain_folder, tmp_path):
    folder = working_copy(plain_folder, tmp_path / "shop")
    ds = open_dataset(folder, smoke=True, progress=False)  # SMOKE defaults: tiny-cnn images, no text
    assert set(ds.features) == {"image"} and ds.features["image"].shape[0] == ds.n_items
    manifest = json.loads((folder / "features.json").read_text())
    assert manifest["image"]["encoder"].startswith("tiny-cnn")
    assert set(open_dataset(folder, progress=False).features) == {"image"}  # cached: not extracted again
    with pytest.raises(ConfigError, match="features"):
        open_dataset(folder, features="clip")


def test_registered_names_resolve(plain_folder, tmp_path):
    reg = tmp_path / "datasets.json"
    entry = import_mmrec(plain_folder, name="my-shop", registry=reg)
    assert entry["path"] == str(plain_folder.resolve())
    assert resolve_dataset("my-shop", registry=reg) == plain_folder.resolve()
    assert open_dataset("my-shop", registry=reg, features=None).n_items == 120
    with pytest.raises(DataError, match="built-in"):
        import_mmrec(plain_folder, name="movielens", registry=reg)
    assert set(read_registry(reg)) == {"my-shop"}


def test_unknown_names_list_the_choices(tmp_path):
    reg = tmp_path / "datasets.json"
    with pytest.raises(DataError, match="neither a folder nor a registered dataset") as info:
        resolve_dataset("amazon-baby", registry=reg)
    assert "toy, toy-smoke, movielens" in str(info.value) and "data import" in str(info.value)
    with pytest.raises(DataError, match="neither a folder"):
        open_dataset("amazon-baby", registry=reg)


def test_movielens_needs_the_real_data(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNREC_DATA", raising=False)
    with pytest.raises(DataError, match="ALIGNREC_DATA"):
        resolve_dataset("movielens", cache=tmp_path)
    with pytest.raises(DataError, match="MovieLens folder not found"):
        resolve_dataset("movielens", data_root=tmp_path, cache=tmp_path)
    assert not (tmp_path / MOVIELENS_FOLDER).exists()


@pytest.mark.realdata
def test_movielens_is_built_once_into_the_cache(real_data, tmp_path):
    folder = resolve_dataset("movielens", data_root=real_data, cache=tmp_path, progress=False)
    assert folder == tmp_path / MOVIELENS_FOLDER and (folder / "dataset.json").is_file()
    stamp = (folder / "dataset.json").stat().st_mtime_ns
    ds = open_dataset("movielens", data_root=real_data, cache=tmp_path, features=None, progress=False)
    assert ds.path == folder and (ds.n_users, ds.n_items) == (601, 1934) and not ds.features
    assert (folder / "dataset.json").stat().st_mtime_ns == stamp  # reused, not rebuilt


# ----------------------------------------------------------------- stage-1 features (open_stage1)
def _same_split(a, b) -> bool:
    return all((a.interaction_matrix(s) != b.interaction_matrix(s)).nnz == 0 for s in ("train", "valid", "test"))


def test_oracle_is_the_toy_shops_bundled_attributes(plain_folder, tmp_path):
    ds = open_stage1("toy", "oracle", smoke=True, cache=tmp_path)
    assert ds.path == toy_path("smoke") and ds.feature("auto")[1] == "image+text"  # returned as shipped
    assert not (tmp_path / STAGE1_FOLDER).exists()  # nothing computed, nothing copied
    with pytest.raises(DataError, match="no oracle attribute features"):
        open_stage1(plain_folder, "oracle", cache=tmp_path)
    with pytest.raises(ConfigError, match="unknown stage-1 feature"):
        open_stage1("toy", "beit3", smoke=True, cache=tmp_path)
    with pytest.raises(ConfigError, match="unknown ica setting"):
        open_stage1("toy", "ica", smoke=True, cache=tmp_path, settings={"epoch": 1})


@pytest.mark.parametrize("kind", ["concat", "ica", "multiway"])
def test_stage1_features_are_computed_once_into_the_cache(kind, tmp_path):
    src = toy_path("smoke")
    before = sorted(p.name for p in src.iterdir())
    small = {"ica": {"epochs": 1}, "multiway": {"epochs": 1, "layers": 1}}.get(kind, {})
    ds = open_stage1("toy", kind, smoke=True, seed=3, cache=tmp_path, settings=small, progress=False, device="cpu")
    assert sorted(p.name for p in src.iterdir()) == before  # the bundled folder is never written into
    assert ds.path.is_relative_to(tmp_path / STAGE1_FOLDER) and ds.path.name.startswith(kind + "-")
    feat, source = ds.feature("auto")
    assert source == ("image+text" if kind == "concat" else "mm") and feat.shape[0] == ds.n_items == 120
    assert _same_split(ds, open_dataset("toy", smoke=True))  # same users, items and split: only content differs
    man = json.loads((ds.path / STAGE1_MANIFEST).read_text())
    assert man["stage1"] == kind and man["settings"] == {
        **stage1_settings(kind, smoke=True, seed=3, device="cpu"),
        **small,
    }
    assert man["source"] == str(src.resolve())
    features = json.loads((ds.path / "features.json").read_text())
    assert ("mm" in features) == (kind != "concat")  # the encoder's own manifest entry
    # the raw tables VBPR and FREEDOM read are the towers' outputs, never the toy shop's oracle attributes
    assert (features["image"]["encoder"], features["text"]["encoder"]) == STAGE1_RAW_ENCODERS
    assert not np.array_equal(ds.features["text"], open_dataset("toy", smoke=True).features["text"])
    stamp = (ds.path / STAGE1_MANIFEST).stat().st_mtime_ns
    again = open_stage1("toy", kind, smoke=True, seed=3, cache=tmp_path, settings=small, progress=False)
    assert again.path == ds.path and (ds.path / STAGE1_MANIFEST).stat().st_mtime_ns == stamp  # reused
    assert np.array_equal(again.feature("auto")[0], feat)
    other = stage1_folder(src, kind, {**man["settings"], "seed": 4}, cache=tmp_path)
    assert other != ds.path and other.parent == ds.path.parent  # keyed by the settings, within the source's folder


def test_a_second_caller_waits_for_a_copy_being_computed_and_a_half_built_one_is_rebuilt(tmp_path):
    import threading
    import time

    from alignrec_lite.files import out_lock

    settings = stage1_settings("concat", smoke=True, seed=5, device="cpu")
    dest = stage1_folder(toy_path("smoke"), "concat", settings, cache=tmp_path)
    dest.mkdir(parents=True)
    (dest / "image_feat.npy").write_bytes(b"half written")  # a killed build: no stage1.json
    got = {}

    def second_caller():
        got["ds"] = open_stage1("toy", "concat", smoke=True, seed=5, cache=tmp_path, progress=False, device="cpu")

    with out_lock(dest, "stage1"):  # another writer holds the copy
        caller = threading.Thread(target=second_caller)
        caller.start()
        time.sleep(1.0)
        assert caller.is_alive() and "ds" not in got  # it waits: no error, no write into the folder
        assert (dest / "image_feat.npy").read_bytes() == b"half written"
    caller.join(120)
    ds = got["ds"]
    assert ds.path == dest and (dest / STAGE1_MANIFEST).exists()  # rebuilt whole once the lock was free
    assert ds.features["image"].shape == (ds.n_items, 128)
