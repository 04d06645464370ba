"""Smaller copies of a dataset (alignrec_lite.data.subset): a share of the users, a few items."""

from __future__ import annotations

import numpy as np
import pytest

from alignrec_lite.data import subsample_users, working_copy
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.toy import toy_path
from alignrec_lite.errors import ConfigError, DataError


def test_subsample_users_reindexes_everything(smoke):
    sub = subsample_users(smoke, 0.5, seed=1)
    assert sub.n_users == 75 and sub.n_items <= smoke.n_items
    for split in ("train", "valid", "test"):
        a = sub.split(split)
        assert a[:, 0].max() < sub.n_users and a[:, 1].max() < sub.n_items
    assert len(np.unique(np.concatenate([sub.train, sub.valid, sub.test])[:, 1])) == sub.n_items
    assert sub.features["image"].shape == (sub.n_items, smoke.features["image"].shape[1])
    # the rows are the same interactions, under new IDs: check through raw IDs and features
    u_raw, i_raw = sub.raw_user_id(sub.train[:, 0]), sub.raw_item_id(sub.train[:, 1])
    orig = {(str(smoke.raw_user_id(u)), str(smoke.raw_item_id(i))) for u, i in smoke.train}
    assert all((str(u), str(i)) in orig for u, i in zip(u_raw, i_raw))
    j = int(sub.train[0, 1])
    orig_j = int(np.flatnonzero(smoke.item_raw_ids == sub.item_raw_ids[j])[0])
    np.testing.assert_array_equal(sub.features["image"][j], smoke.features["image"][orig_j])
    assert sub.item_text(j) == smoke.item_text(orig_j)
    assert subsample_users(smoke, 1.0).n_users == smoke.n_users
    with pytest.raises(ConfigError):
        subsample_users(smoke, 0.0)


def test_working_copy_subsamples_and_stays_valid(tmp_path):
    src = load_mmrec(toy_path("smoke"), load_features=False)
    out = working_copy(toy_path("smoke"), tmp_path / "copy", max_items=40)
    ds = load_mmrec(out)
    assert ds.n_items == 40 and not ds.features  # features are not copied
    assert ds.image_path(0).is_absolute() and ds.image_path(0).exists()
    counts = np.bincount(np.concatenate([src.train, src.valid, src.test])[:, 1], minlength=src.n_items)
    kept = set(ds.item_raw_ids.tolist())
    top = set(src.item_raw_ids[np.argsort(-counts, kind="stable")[:40]].tolist())
    assert kept == top
    full = working_copy(toy_path("smoke"), tmp_path / "full")
    assert load_mmrec(full).stats()["interactions"] == src.stats()["interactions"]
    with pytest.raises(DataError):
        working_copy(toy_path("smoke"), tmp_path / "x", max_items=1)
