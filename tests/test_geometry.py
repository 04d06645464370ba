"""Alignment / uniformity measurements: closed forms, known limits, tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignrec_lite import geometry as geo
from alignrec_lite.data.toy import load_toy


def test_alignment_closed_form() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert geo.alignment(x, y) == pytest.approx((2.0 + 0.0) / 2)  # squared distances 2 and 0
    assert geo.alignment(x, y, alpha=1.0) == pytest.approx(math.sqrt(2) / 2)
    assert geo.alignment(3 * x, 0.5 * y) == pytest.approx(1.0)  # inputs are normalised first


def test_alignment_limits() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16))
    assert geo.alignment(x, x) == pytest.approx(0.0, abs=1e-6)  # identical pairs
    assert geo.alignment(x, -x) == pytest.approx(4.0, abs=1e-5)  # antipodal pairs: 2**alpha
    big = rng.normal(size=(4000, 512))
    other = rng.normal(size=(4000, 512))
    assert geo.alignment(big, other) == pytest.approx(2.0, abs=0.02)  # unrelated pairs: 2 - 2cos, cos ~ 0


def test_uniformity_closed_form() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])  # squared distances 4, 2, 2
    expected = math.log((math.exp(-2 * 4) + 2 * math.exp(-2 * 2)) / 3)
    assert geo.uniformity(x) == pytest.approx(expected, rel=1e-6)
    assert geo.uniformity(x, t=1.0) == pytest.approx(math.log((math.exp(-4) + 2 * math.exp(-2)) / 3), rel=1e-6)


def test_uniformity_limits() -> None:
    assert geo.uniformity(np.ones((10, 4))) == 0.0  # all points equal
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 512))  # uniform on S^511 after normalisation
    u = geo.uniformity(z, max_points=None)
    assert u == pytest.approx(-4.0, abs=0.05)  # -2t, up to +8/d
    assert u >= -4.0 * 3000 / 2999 - 1e-9  # the lower bound -2t n/(n-1)
    small = rng.normal(size=(7, 3))
    assert -4.0 * 7 / 6 <= geo.uniformity(small) <= 0.0


def test_uniformity_subsample_is_seeded() -> None:
    z = np.random.default_rng(2).normal(size=(500, 8))
    a = geo.uniformity(z, max_points=100, seed=3)
    assert a == geo.uniformity(z, max_points=100, seed=3)
    assert a == pytest.approx(geo.uniformity(z, max_points=None), abs=0.15)


def test_align_uniform_pairs() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    res = geo.align_uniform(x, y, pairs=np.array([[0, 1], [1, 0], [0, 2]]))
    assert res["align"] == pytest.approx((0.0 + 0.0 + 4.0) / 3)
    assert res["uniform"] == pytest.approx(0.5 * (res["uniform_x"] + res["uniform_y"]))
    with pytest.raises(ValueError, match="same shape"):
        geo.alignment(x, y)


def test_feature_geometry_on_toy() -> None:
    ds = load_toy("smoke")
    good = geo.feature_geometry(ds, ds.features["image"])
    rnd = geo.feature_geometry(ds, np.random.default_rng(0).normal(size=ds.features["image"].shape))
    for res in (good, rnd):
        assert 0.0 <= res["align_user_item"] <= 4.0 and -4.1 <= res["uniform_items"] <= 0.0
    assert good["align_user_item"] < rnd["align_user_item"]  # attribute features put future items near past ones


class _Model(torch.nn.Module):
    def __init__(self, reps: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.reps = reps

    def representations(self) -> dict[str, torch.Tensor]:
        return self.reps


def test_tracker_uses_representations() -> None:
    ds = load_toy("smoke")
    g = torch.Generator().manual_seed(0)
    item_id = torch.randn(ds.n_items, 8, generator=g)
    reps = {
        "item_id": item_id,
        "item_content": item_id.clone(),
        "user": torch.randn(ds.n_users, 8, generator=g),
        "item": torch.randn(ds.n_items, 8, generator=g),
        "user_id": torch.randn(ds.n_users, 4, generator=g),
        "user_content": torch.randn(ds.n_users, 6, generator=g),
    }
    tracker = geo.AlignUniformTracker(ds)
    record: dict = {}
    values = tracker(0, _Model(reps), record)
    assert values["item_content~item_id/align"] == pytest.approx(0.0, abs=1e-6)
    assert "user~item/align" in values and "user~item/uniform_item" in values
    assert not any(k.startswith("user_content~user_id") for k in values)  # different dims: skipped
    assert record["geometry"] == values
    assert list(tracker.frame().index) == [0]
    assert tracker.series("item_content~item_id/align") == ([0], [values["item_content~item_id/align"]])


def test_tracker_in_training_falls_back_to_forward() -> None:
    from alignrec_lite.train import train

    ds = load_toy("smoke")
    tracker = geo.AlignUniformTracker(ds, max_points=256)
    _, record = train(ds, "bpr", {"epochs": 2, "device": "cpu"}, progress=False, callbacks=[tracker])
    assert [h["epoch"] for h in tracker.history] == [0, 1]
    assert set(tracker.keys) == {"user~item/align", "user~item/uniform_user", "user~item/uniform_item"}
    assert all(0.0 <= h["user~item/align"] <= 4.0 for h in tracker.history)


class _Branchy(torch.nn.Module):
    """Like AlignRec: representations() without the final vectors, a switched-off branch as None."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.u, self.i = torch.randn(n_users, 4, generator=g), torch.randn(n_items, 4, generator=g)

    def representations(self) -> dict:
        return {"user_id": self.u, "item_id": self.i, "user_content": None, "item_content": None}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return 2 * self.u, 2 * self.i


def test_tracker_adds_final_vectors_from_forward() -> None:
    ds = load_toy("smoke")
    model = _Branchy(ds.n_users, ds.n_items)
    reps = geo.model_representations(model)
    assert set(reps) == {"user_id", "item_id", "user", "item"}
    values = geo.AlignUniformTracker(ds)(0, model)
    assert set(values) == {"user~item/align", "user~item/uniform_user", "user~item/uniform_item"}


def test_tracker_with_alignrec_records_cca_and_uia_pairs() -> None:
    from alignrec_lite.train import train

    ds = load_toy("smoke")
    tracker = geo.AlignUniformTracker(ds, max_points=256)
    _, record = train(ds, "alignrec", {"epochs": 1, "device": "cpu"}, progress=False, callbacks=[tracker])
    keys = set(tracker.keys)
    assert {"item_content~item_id/align", "user_content~user_id/align", "user~item/align"} <= keys
    assert record["history"][0]["geometry"] == {k: v for k, v in tracker.history[0].items() if k != "epoch"}
