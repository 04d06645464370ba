"""Serving: streamed top-K export, fold-in of new users, new items from content, timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FixedModel, missing_annotations, public_functions, random_fixed_model
from memory_stages import check_stage

from alignrec_lite import serve
from alignrec_lite.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def model(smoke):
    return random_fixed_model(smoke)


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_streams_the_same_rows_as_topk_frame(smoke, model, tmp_path, suffix):
    ref = serve.topk_frame(model, smoke, k=7)
    out = serve.export_topk(model, smoke, tmp_path / f"top{suffix}", k=7, batch_users=16, progress=False)
    got = serve.read_topk(out)
    assert len(got) == smoke.n_users * 7 == len(ref)
    assert got["userID"].tolist() == ref["userID"].tolist() and got["itemID"].tolist() == ref["itemID"].tolist()
    np.testing.assert_allclose(got["score"], ref["score"], rtol=1e-6)
    assert got["item"].tolist() == [str(x) for x in smoke.raw_item_id(got["itemID"].to_numpy())]
    # training items are never recommended
    train = {tuple(p) for p in smoke.train.tolist()}
    assert not any((u, i) in train for u, i in zip(got["userID"], got["itemID"]))
    # scores decrease along each list
    assert (got.groupby("userID")["score"].diff().dropna() <= 1e-6).all()
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_topk_rejects_what_is_not_an_export(tmp_path):
    with pytest.raises(DataError, match="no such"):
        serve.read_topk(tmp_path / "missing.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a top-K export"):
        serve.read_topk(tmp_path / "x.csv")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="unsupported"):
        serve.read_topk(tmp_path / "x.txt")


def test_export_rejects_bad_output_and_leaves_nothing(smoke, model, tmp_path):
    with pytest.raises(ConfigError):
        serve.export_topk(model, smoke, tmp_path / "top.txt", progress=False)

    class Boom(FixedModel):
        def full_sort_scores(self, users):
            if int(users[0]) > 0:
                raise RuntimeError("disk full")
            return super().full_sort_scores(users)

    bad = Boom(smoke, model.u.detach(), model.i.detach())
    with pytest.raises(RuntimeError):
        serve.export_topk(bad, smoke, tmp_path / "x.csv", batch_users=8, progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ new users
def test_fold_in_mean_by_hand():
    items = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    u = serve.fold_in_users(items, [np.array([0, 1]), np.array([2]), np.zeros(0, np.int64)], "mean")
    torch.testing.assert_close(u, torch.tensor([[0.5, 1.0], [4.0, 4.0], [0.0, 0.0]]))
    with pytest.raises(ConfigError):
        serve.fold_in_users(items, [np.array([0])], "magic")


def test_fold_in_gradient_learns_the_given_items():
    rng = np.random.default_rng(0)
    items = torch.from_numpy(rng.normal(size=(50, 8)).astype(np.float32))
    given = [np.array([3, 7, 11]), np.zeros(0, np.int64)]
    u = serve.fold_in_users(items, given, "gradient", steps=100, lr=0.05, seed=0)
    s = (u[0] @ items.T).numpy()
    # the given items rank far above the average item, and no-history users stay at zero
    assert s[[3, 7, 11]].mean() > s.mean() + 2 * s.std() * 0.5
    assert torch.all(u[1] == 0)
    with torch.no_grad():  # works inside no_grad (as the evaluation loops call it)
        u2 = serve.fold_in_users(items, given, "gradient", steps=100, lr=0.05, seed=0)
    torch.testing.assert_close(u, u2)


def test_score_new_users_masks_given_and_uses_popularity():
    items = torch.eye(3)
    s = serve.score_new_users(
        torch.tensor([[1.0, 2.0, 3.0], [0, 0, 0]]), items, [np.array([2]), np.zeros(0, np.int64)], np.array([5, 1, 3])
    )
    assert s[0].tolist() == [1.0, 2.0, -np.inf]
    assert s[1].tolist() == [5.0, 1.0, 3.0]


def test_recommend_new_user_raw_ids(smoke, model):
    raw = [str(x) for x in smoke.raw_item_id(np.array([3, 8, 20]))]
    rec = serve.recommend_new_user(model, smoke, raw, k=10)
    assert list(rec.columns) == ["rank", "itemID", "item", "score"] and len(rec) == 10
    assert not {3, 8, 20} & set(rec["itemID"])
    mean = model.i.detach()[[3, 8, 20]].mean(0)
    expected = (model.i.detach() @ mean).numpy()
    expected[[3, 8, 20]] = -np.inf
    assert rec["itemID"].tolist() == np.argsort(-expected, kind="stable")[:10].tolist()
    # no items -> the popularity ranking
    pop = serve.recommend_new_user(model, smoke, [], k=5)
    assert pop["itemID"].tolist() == np.argsort(-smoke.item_popularity(), kind="stable")[:5].tolist()
    with pytest.raises(DataError, match="not in the dataset"):
        serve.recommend_new_user(model, smoke, ["no-such-item"])
    with pytest.raises(ConfigError):
        serve.recommend_new_user(model, smoke, raw, k=0)


# ------------------------------------------------------------------ new items
def test_new_item_vectors_and_score_new_item(smoke, model):
    feat = smoke.feature("image")[0]
    v = serve.new_item_vectors(model, feat[5])
    torch.testing.assert_close(v, torch.from_numpy(feat[5:6]) @ model.w.detach())
    out = serve.score_new_item(model, smoke, feature=feat[5], k=4)
    scores = (model.u.detach() @ v[0]).numpy()
    assert out["users"]["userID"].tolist() == np.argsort(-scores)[:4].tolist()
    assert len(out["similar_items"]) == 4 and out["similar_items"]["cosine"].is_monotonic_decreasing
    no_content = FixedModel(smoke, model.u.detach(), model.i.detach())
    assert model.has_content_path and not no_content.has_content_path
    with pytest.raises(ConfigError, match="no content path"):
        serve.new_item_vectors(no_content, feat[5])
    with pytest.raises(ConfigError, match="nothing to score"):
        serve.score_new_item(model, smoke)


# ------------------------------------------------------------------ timing
def test_measure_serving(smoke, model):
    t = serve.measure_serving(model, smoke, n_single=5, repeats=1)
    assert t["n_users"] == smoke.n_users and t["n_items"] == smoke.n_items
    assert t["all_users_seconds"] > 0 and t["single_user_ms"] > 0
    assert t["per_user_ms_batched"] == pytest.approx(1000 * t["all_users_seconds"] / smoke.n_users)


# ------------------------------------------------------------------ new items from raw content
def _copy_with_features(tmp_path, image_encoder, text_encoder):
    import shutil

    from alignrec_lite import encoders
    from alignrec_lite.data.mmrec import load_mmrec
    from alignrec_lite.data.toy import toy_path

    folder = tmp_path / "shop"
    shutil.copytree(toy_path("smoke"), folder)
    encoders.extract_features(folder, image_encoder, text_encoder, progress=False, overwrite=True)
    return load_mmrec(folder)


def test_encode_new_item_image_reproduces_the_feature_row(tmp_path):
    ds = _copy_with_features(tmp_path, "tiny-cnn", None)
    feat, src = ds.feature("image")
    row = serve.encode_new_item(ds, src, image=ds.image_path(7))
    np.testing.assert_allclose(row[0], feat[7], atol=1e-5)
    with pytest.raises(ConfigError, match="no image"):
        serve.encode_new_item(ds, "image", text="a red mug")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot be read"):
        serve.encode_new_item(ds, "image", image=tmp_path / "bad.jpg")
    with pytest.raises(DataError, match="no entry for the mm feature"):  # no stage 1 ran on this folder
        serve.encode_new_item(ds, "mm", image=ds.image_path(7))
    with pytest.raises(ConfigError, match="cannot encode"):
        serve.encode_new_item(ds, "mm+image", image=ds.image_path(7))


def test_encode_new_item_refuses_hand_made_features(smoke):
    with pytest.raises(ConfigError, match="not an encoder"):
        serve.encode_new_item(smoke, "image", image=smoke.image_path(0))


@pytest.mark.slow
def test_score_new_item_from_image_and_text(tmp_path):
    from alignrec_lite.models import get_model_class

    ds = _copy_with_features(tmp_path, "tiny-cnn", "minilm")
    feat, src = ds.feature("image+text")
    row = serve.encode_new_item(ds, src, image=ds.image_path(3), text=ds.item_text(3))
    np.testing.assert_allclose(row[0], feat[3], atol=1e-5)
    torch.manual_seed(0)
    model = get_model_class("alignrec")(ds, {"embedding_size": 8, "feature_source": "image+text"})
    out = serve.score_new_item(model, ds, image=ds.image_path(3), text=ds.item_text(3), k=5)
    ref = serve.score_new_item(model, ds, feature=feat[3], k=5)
    assert out["users"]["userID"].tolist() == ref["users"]["userID"].tolist()


# ---------------------------------------------------------------- bounded memory (tests/memory_stages.py)
def test_export_memory_is_bounded(tmp_path):
    check_stage("export", "ci", tmp_path)


@pytest.mark.slow
def test_export_memory_is_bounded_full_size(tmp_path):
    check_stage("export", "full", tmp_path)


# ---------------------------------------------------------------- types
@pytest.mark.parametrize("module", ["export", "newitems", "timing"])
def test_public_serving_functions_are_typed(module):
    """Every parameter and the return of each public function has a type that resolves; a model is a
    ``Recommender``. (``serve.foldin`` is not checked here yet.)"""
    import importlib

    mod = importlib.import_module(f"alignrec_lite.serve.{module}")
    funcs = public_functions(mod)
    assert funcs, module
    for f in funcs:
        assert missing_annotations(f) == [], f.__name__
        assert f.__annotations__.get("model", "Recommender") == "Recommender", f.__name__
