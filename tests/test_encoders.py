"""Encoders and feature extraction: towers, MiniLM recipe, cache + manifest + resume, mixing guard."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from alignrec_lite import encoders as enc
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.errors import ConfigError, DataError, DownloadError
from alignrec_lite.files import sha256_file

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
    one = enc.encode_texts(minilm, [load_mmrec(shop).item_text(7)])
    np.testing.assert_allclose(txt[7], one[0], atol=1e-5)
    # the loader accepts the files
    ds = load_mmrec(shop)
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


def test_precision_context():
    cpu = torch.device("cpu")
    with enc.precision_context(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with enc.precision_context(cpu, "amp"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="unknown precision"):
        enc.precision_context(cpu, "fp8")


# ---------------------------------------------------------------- what the two stage-1 encoders share
@dataclass
class _ToyConfig(enc.Stage1Config):
    label = "toy"
    size: int = 2
    epochs: int = 1
    device: str = "cpu"

    def validate(self) -> None:
        self.check([(self.size >= 1, "size", "use 1 or more")])


def test_stage1_config_key_check_and_from_dict():
    assert _ToyConfig(epochs=1).key() == _ToyConfig(epochs=5, device="cuda").key() != _ToyConfig(size=3).key()
    with pytest.raises(ConfigError, match="invalid toy setting size: 0"):
        _ToyConfig(size=0).validate()
    with pytest.raises(ConfigError, match="unknown toy setting"):
        _ToyConfig.from_dict({"sise": 2})
    assert _ToyConfig.from_dict({"size": 4, "epochs": 2}) == _ToyConfig(size=4, epochs=2)


def test_decode_item_images(shop: Path) -> None:
    ds = load_mmrec(shop, load_features=False)
    tower = enc.TinyCNN(8, image_size=16)
    pixels, has = enc.decode_item_images(ds, tower.preprocess, 16)
    assert pixels.shape == (ds.n_items, 3, 16, 16) and pixels.dtype == torch.float16 and bool(has.all())
    assert torch.equal(pixels[3], tower.preprocess(enc.load_image(ds.image_path(3))).to(torch.float16))


def test_reuse_mm_features(tmp_path: Path) -> None:
    from alignrec_lite.files import save_npy

    assert enc.reuse_mm_features(tmp_path, "x", "k", 2, resume=False, overwrite=False) is None  # no mm_feat.npy
    save_npy(tmp_path / enc.MM_FILE, np.zeros((3, 2), np.float32))
    assert enc.reuse_mm_features(tmp_path, "x", "k", 2, resume=False, overwrite=True) is None
    with pytest.raises(DataError, match="made by an unknown encoder"):
        enc.reuse_mm_features(tmp_path, "x", "k", 2, resume=False, overwrite=False)
    enc.update_manifest(
        tmp_path,
        "mm",
        {
            "encoder": "x",
            "config_key": "k",
            "epochs": 2,
            "sha256": sha256_file(tmp_path / enc.MM_FILE),
            "shape": [3, 2],
            "train_seconds": 1.0,
            "final_loss": 0.5,
            "run_dir": str(tmp_path / "run"),
            "extra": 7,
        },
    )
    done = enc.reuse_mm_features(tmp_path, "x", "k", 2, resume=False, overwrite=False, extra=("extra",))
    assert done["up_to_date"] and done["extra"] == 7 and done["epochs_run"] == 2 and done["history"] == []
    assert done["run_dir"] == tmp_path / "run" and done["manifest"]["mm"]["encoder"] == "x"
    assert enc.reuse_mm_features(tmp_path, "x", "k", 3, resume=False, overwrite=False) is None  # more epochs
    assert enc.reuse_mm_features(tmp_path, "x", "k", 2, resume=True, overwrite=False) is None
    with pytest.raises(DataError, match="made by x with other settings"):
        enc.reuse_mm_features(tmp_path, "x", "other", 2, resume=False, overwrite=False)


def test_restore_training_state() -> None:
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([w], lr=0.1)
    w.sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(3)
    state = {
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [{"loss": 1.0}],
        "epoch": 4,
        "seconds": 2.5,
    }
    want_gen, want_rng = torch.rand(3, generator=gen), torch.rand(3)
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    gen2 = torch.Generator()
    assert enc.restore_training_state(state, opt2, gen2) == ([{"loss": 1.0}], 4, 2.5)
    assert torch.equal(torch.rand(3, generator=gen2), want_gen) and torch.equal(torch.rand(3), want_rng)
    assert float(opt2.state_dict()["state"][0]["step"]) == 1.0
