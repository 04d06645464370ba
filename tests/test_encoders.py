"""Encoders and feature extraction: towers, MiniLM recipe, cache + manifest + resume, mixing guard."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from alignrec_lite import encoders as enc
from alignrec_lite.errors import ConfigError, DataError, DownloadError
from alignrec_lite.io import sha256_file

SMOKE = Path(__file__).resolve().parents[1] / "datasets" / "smoke-shop"


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    """A copy of the smoke shop without its bundled (toy-attribute) features."""
    dst = tmp_path / "shop"
    shutil.copytree(SMOKE, dst)
    for f in ("image_feat.npy", "text_feat.npy", "features.json"):
        (dst / f).unlink(missing_ok=True)
    return dst


@pytest.fixture(scope="module")
def minilm() -> enc.MiniLMText:
    return enc.MiniLMText()


# ---------------------------------------------------------------- specs and towers
def test_parse_spec() -> None:
    assert enc.parse_spec("tiny-cnn", "image") == enc.EncoderSpec("tiny-cnn")
    s = enc.parse_spec("openclip:ViT-B-32@openai", "text")
    assert (s.kind, s.arch, s.pretrained, s.text) == ("openclip", "ViT-B-32", "openai", "openclip:ViT-B-32@openai")
    with pytest.raises(ConfigError, match="unknown text encoder"):
        enc.parse_spec("tiny-cnn", "text")
    with pytest.raises(ConfigError, match="unknown image encoder"):
        enc.parse_spec("resnet", "image")
    with pytest.raises(ConfigError, match="empty architecture"):
        enc.parse_spec("openclip:", "image")


def test_tiny_towers_are_seeded_and_shaped() -> None:
    x = torch.randn(3, 3, 64, 64)
    a, b, c = (enc.TinyCNN(32, seed=s).eval() for s in (1, 1, 2))
    with torch.no_grad():
        assert a(x).shape == (3, 32)
        assert torch.equal(a(x), b(x))
        assert not torch.allclose(a(x), c(x))
    vit = enc.build_tower("tiny-vit", "image", dim=16)
    with torch.no_grad():
        assert vit(x).shape == (3, 16)


def test_minilm_matches_sentence_transformers(minilm: enc.MiniLMText) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["a red striped mug", "Toy Story (1995) — Adventure, Animation", "", "blue hat"]
    ours = enc.encode_texts(minilm, texts, batch_size=3)
    st = SentenceTransformer(str(enc.minilm_path()), device="cpu")
    ref = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_open_clip_random_towers_share_one_model() -> None:
    img, txt = enc.build_towers("openclip:ViT-S-32", "openclip:ViT-S-32")
    assert img.visual is txt.clip.visual  # one model, two towers
    with torch.no_grad():
        assert img(torch.randn(2, 3, 224, 224)).shape == (2, img.dim)
        assert txt(txt.tokenize(["a mug", "a hat"])).shape == (2, txt.dim)
    text_params = {id(p) for p in txt.trainable_parameters()}
    assert not text_params & {id(p) for p in img.parameters()}
    assert img.describe()["weights"] == "random (torch seed 0)"


def test_pretrained_errors() -> None:
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        enc.build_tower("openclip:ViT-Q-99", "image")
    with pytest.raises(ConfigError, match="no pretrained weights 'nope'"):
        enc.build_tower("openclip:ViT-B-32@nope", "image")
    try:
        enc.build_tower("openclip:RN50@openai", "image")
    except DownloadError as exc:  # offline (tests set HF_HUB_OFFLINE=1): the expected path
        assert "Fix:" in str(exc) and "weights" in str(exc)
    else:  # pragma: no cover - only on a machine that has the weights cached
        pytest.skip("RN50@openai weights are cached here; the error path cannot be exercised")


# ---------------------------------------------------------------- extraction
def test_extract_writes_files_and_manifest(shop: Path, minilm: enc.MiniLMText) -> None:
    man = enc.extract_features(shop, enc.TinyCNN(16), minilm, batch_size=32, chunk_size=50, progress=False)
    img, txt = np.load(shop / "image_feat.npy"), np.load(shop / "text_feat.npy")
    assert img.shape == (120, 16) and txt.shape == (120, 384) and img.dtype == np.float32
    assert man["image"]["sha256"] == sha256_file(shop / "image_feat.npy")
    assert man["text"]["encoder"] == "minilm" and man["text"]["dim"] == 384
    assert man["image"]["missing_images"] == 0 and man["image"]["rows"] == "itemID"
    assert enc.read_manifest(shop) == man  # round trip through features.json
    assert enc.check_manifest(shop) == {"image": True, "text": True}
    assert not (shop / ".cache" / "features").exists() or not any((shop / ".cache" / "features").iterdir())
    # row i is itemID i: re-encode item 7 alone
    one = enc.encode_texts(minilm, [enc.load_mmrec(shop).item_text(7)])
    np.testing.assert_allclose(txt[7], one[0], atol=1e-5)
    # the loader accepts the files
    ds = enc.load_mmrec(shop)
    assert set(ds.features) == {"image", "text"}
    # a second run with the same encoder is a no-op
    created = man["image"]["created"]
    again = enc.extract_features(shop, enc.TinyCNN(16), None, progress=False)
    assert again["image"]["created"] == created
    # a corrupted file is detected
    np.save(shop / "image_feat.npy", img + 1)
    assert enc.check_manifest(shop)["image"] is False


def test_refuses_to_mix_encoders(shop: Path) -> None:
    enc.extract_features(shop, "tiny-cnn", None, progress=False)
    with pytest.raises(DataError, match="refusing to mix") as info:
        enc.extract_features(shop, enc.TinyCNN(128, seed=5), None, progress=False)
    assert "--overwrite" in str(info.value)
    man = enc.extract_features(shop, enc.TinyCNN(128, seed=5), None, progress=False, overwrite=True)
    assert man["image"]["seed"] == 5


def test_refuses_unknown_existing_features(tmp_path: Path) -> None:
    dst = tmp_path / "shop"
    shutil.copytree(SMOKE, dst)  # bundled toy-attribute features + their manifest
    with pytest.raises(DataError, match="toy-attributes"):
        enc.extract_features(dst, "tiny-cnn", None, progress=False)
    (dst / "features.json").unlink()
    with pytest.raises(DataError, match="does not say which encoder"):
        enc.extract_features(dst, "tiny-cnn", None, progress=False)


class _Crash(RuntimeError):
    pass


class _FlakyCNN(enc.TinyCNN):
    """A TinyCNN that dies after ``fail_after`` forward calls (a simulated interruption)."""

    def __init__(self, fail_after: int | None) -> None:
        super().__init__(16, seed=3)
        self.calls, self.fail_after = 0, fail_after

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise _Crash("interrupted")
        return super().forward(pixels)


def test_resume_after_interruption_gives_identical_files(shop: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    shutil.copytree(shop, fresh)
    enc.extract_features(fresh, _FlakyCNN(None), None, batch_size=20, chunk_size=40, progress=False)

    with pytest.raises(_Crash):  # 3 chunks of 40 items, 2 batches each: dies inside chunk 2
        enc.extract_features(shop, _FlakyCNN(3), None, batch_size=20, chunk_size=40, progress=False)
    assert not (shop / "image_feat.npy").exists()
    shards = list((shop / ".cache" / "features").glob("image-*/0*.npy"))
    assert len([s for s in shards if ".missing" not in s.name]) == 1

    tower = _FlakyCNN(None)
    man = enc.extract_features(shop, tower, None, batch_size=20, chunk_size=40, progress=False)
    assert tower.calls == 4  # only chunks 1 and 2 were encoded again
    assert man["image"]["items_encoded_this_run"] == 80
    assert sha256_file(shop / "image_feat.npy") == sha256_file(fresh / "image_feat.npy")


def test_missing_image_gets_mean_vector(shop: Path) -> None:
    (shop / "images" / "5.png").unlink()
    (shop / "images" / "9.png").write_bytes(b"not a png")
    man = enc.extract_features(shop, enc.TinyCNN(8), None, progress=False)
    x = np.load(shop / "image_feat.npy")
    assert man["image"]["missing_images"] == 2 and man["image"]["missing_image_items"] == [5, 9]
    others = np.delete(x, [5, 9], axis=0)
    np.testing.assert_allclose(x[5], others.mean(0), atol=1e-6)
    np.testing.assert_allclose(x[9], x[5])


def test_extract_errors(shop: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to extract"):
        enc.extract_features(shop, None, None, progress=False)
    (shop / "items.csv").unlink()
    with pytest.raises(DataError, match="no items.csv"):
        enc.extract_features(shop, "tiny-cnn", None, progress=False)


def test_cli_features(shop: Path, capsys: pytest.CaptureFixture) -> None:
    from alignrec_lite.cli import main

    assert main(["features", str(shop), "--image-encoder", "tiny-cnn", "--text-encoder", "none", "--quiet"]) == 0
    assert "image_feat.npy" in capsys.readouterr().out
    assert main(["features", str(shop), "--image-encoder", "resnet", "--quiet"]) == 2
    assert "unknown image encoder" in capsys.readouterr().err


def test_load_image_treats_decompression_bombs_as_missing(tmp_path, monkeypatch):
    """An image over PIL's pixel limit (DecompressionBombError, not an OSError) is a missing image, not a crash."""
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64), "red").save(path)
    assert enc.load_image(path).size == (64, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4,096 pixels > 2 x 100: PIL raises
    assert enc.load_image(path) is None
    assert enc.load_image(tmp_path / "absent.png") is None
