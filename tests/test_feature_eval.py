"""Intermediate metrics: mask-modality, the one-call table and its CLI (the scorers: test_scorers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from alignrec_lite import feature_eval as fe
from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.data.toy import load_toy, toy_path
from alignrec_lite.errors import ConfigError, DataError
from alignrec_lite.evaluate import evaluate
from alignrec_lite.scorers import zero_shot_scores


def _tiny() -> RecDataset:
    train = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [2, 0]])
    test = np.array([[0, 2], [1, 3], [2, 1]])
    return RecDataset("tiny", 3, 4, train, np.zeros((0, 2), dtype=np.int64), test)


FEAT = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [-1.0, 0.3]], dtype=np.float32)


def test_masking() -> None:
    items = fe.masked_items(10, 0.5, seed=1)
    assert len(items) == 5 and np.array_equal(items, fe.masked_items(10, 0.5, seed=1))
    assert len(fe.masked_items(10, 0.0)) == 0
    with pytest.raises(ConfigError):
        fe.masked_items(10, 1.5)
    feats = {"image": np.ones((4, 2)), "text": np.ones((4, 3)), "mm": np.ones((4, 2))}
    out = fe.mask_features(feats, "image", np.array([1, 3]), masked_mm=np.full((4, 2), 7.0))
    assert out["image"][[1, 3]].sum() == 0 and out["image"][[0, 2]].sum() == 4
    assert np.array_equal(out["text"], feats["text"]) and out["mm"][1, 0] == 7.0 and out["mm"][0, 0] == 1.0
    assert feats["image"].sum() == 8  # the input is not modified
    assert "mm" not in fe.mask_features(feats, "text", np.array([0]))
    cat = fe.source_matrix(feats, "image+text")
    assert cat.shape == (4, 5) and np.allclose(np.linalg.norm(cat, axis=1), 1.0)
    assert fe.source_matrix(feats, "audio") is None


def test_evaluate_features_on_toy() -> None:
    ds = load_toy("smoke")
    res = fe.evaluate_features(ds, ks=(20,))
    rows = {r["source"]: r for r in res["rows"]}
    assert set(rows) == {"popularity", "image", "text", "image+text"}
    assert res["masked_items"] == ds.n_items // 2
    direct = evaluate(zero_shot_scores(ds, ds.features["text"]), ds, "test", ks=(20,))
    assert rows["text"]["zeroshot/recall@20"] == direct["recall@20"]
    assert "mask_image/itemcf/recall@20" in rows["image+text"] and "mask_text/zeroshot/recall@20" in rows["text"]
    assert "mask_text/zeroshot/recall@20" not in rows["image"]
    # masking half of the images hurts the image-only feature on the toy shop (images carry category+colour)
    assert rows["image"]["mask_image/zeroshot/recall@20"] < rows["image"]["zeroshot/recall@20"]
    for r in res["rows"][1:]:
        assert 0 <= r["zeroshot/recall@20"] <= 1 and 0 <= r["align_user_item"] <= 4
    text = fe.format_table(res)
    assert "image+text" in text and "popularity" in text


def test_mm_source_uses_masked_files(tmp_path: Path) -> None:
    from alignrec_lite.files import save_npy

    dst = tmp_path / "shop"
    shutil.copytree(toy_path("smoke"), dst)
    rng = np.random.default_rng(0)
    ds = load_toy("smoke")
    mm = np.concatenate([ds.features["image"], ds.features["text"]], axis=1)
    save_npy(dst / "mm_feat.npy", mm)
    res = fe.evaluate_features(dst, sources=["mm"], ks=(20,), reference=False, geometry=False)
    assert "mask_image/zeroshot/recall@20" not in res["rows"][0]  # no masked counterpart: not evaluated
    save_npy(dst / "mm_feat_mask_image.npy", rng.normal(size=mm.shape).astype(np.float32))
    res = fe.evaluate_features(dst, sources=["mm"], ks=(20,), reference=False, geometry=False)
    assert "mask_image/zeroshot/recall@20" in res["rows"][0]
    with pytest.raises(DataError, match="not available"):
        fe.evaluate_features(dst, sources=["audio"])


def test_cli_evaluate_features(capsys: pytest.CaptureFixture) -> None:
    from alignrec_lite.cli import main

    assert main(["evaluate-features", str(toy_path("smoke")), "--source", "image", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "zero-shot" in out
    assert main(["evaluate-features", str(toy_path("smoke")), "--source", "mm", "--quiet"]) == 2
