"""The Multiway encoder: shapes, expert routing, masking, visual tokens, training, resume, CLI, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from alignrec_lite import multiway as mw
from alignrec_lite.encoders import read_manifest
from alignrec_lite.errors import CheckpointError, ConfigError, DataError
from alignrec_lite.files import sha256_file

SMOKE = Path(__file__).resolve().parents[1] / "datasets" / "smoke-shop"
TINY = dict(dim=32, layers=2, heads=2, codebook_size=32, kmeans_iters=5, batch_size=32, warmup_steps=2)
FAST = dict(TINY, epochs=3, lr=3e-3)


def _copy(dst: Path) -> Path:
    shutil.copytree(SMOKE, dst, ignore=shutil.ignore_patterns(".cache"))
    for f in ("image_feat.npy", "text_feat.npy", "features.json", "mm_feat.npy"):
        (dst / f).unlink(missing_ok=True)
    return dst


def _model(**kw) -> mw.MultiwayEncoder:
    return mw.build_multiway(mw.MultiwayConfig(**{**TINY, **kw}), vocab_size=50)


def test_shapes_and_attention() -> None:
    model = _model().eval()
    pix = torch.randn(3, 3, 64, 64)
    tok = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [10, 11, 12, 13]])  # (B, L) with padding
    pair = model(pix, tok, return_attention=True)
    assert pair["hidden"].shape == (3, 1 + 64 + 4, 32) and pair["cls"].shape == (3, 32)
    assert len(pair["attention"]) == 2 and pair["attention"][0].shape == (3, 2, 69, 69)
    att = pair["attention"][-1]
    assert torch.allclose(att.sum(-1), torch.ones(3, 2, 69), atol=1e-5)
    assert float(att[1, :, :, -2:].detach().abs().max()) == 0.0  # padding is never attended to
    assert model(pix, None)["hidden"].shape == (3, 65, 32)  # image alone
    assert model(None, tok)["hidden"].shape == (3, 1 + 4, 32)  # title alone
    # padding does not change an item's vector
    alone = model(pix[1:2], tok[1:2, :2])["cls"]
    assert torch.allclose(alone, pair["cls"][1:2], atol=1e-5)
    with pytest.raises(ConfigError, match="image, a title or both"):
        model(None, None)


def test_experts_are_routed_by_modality() -> None:
    model = _model(vl_layers=1)
    bottom, top = model.blocks
    assert set(bottom.ffn) == {"vision", "language"} and set(top.ffn) == {"vision", "language", "vl"}
    pix, tok = torch.randn(2, 3, 64, 64), torch.tensor([[5, 6], [7, 8]])

    def grads(p, t) -> dict[str, bool]:
        model.zero_grad()
        model(p, t)["hidden"].sum().backward()
        return {
            f"{i}.{n}": any(q.grad is not None and q.grad.abs().sum() > 0 for q in f.parameters())
            for i, b in enumerate(model.blocks)
            for n, f in b.ffn.items()
        }

    # an image-text pair: modality experts below, the vision-language expert on top
    assert grads(pix, tok) == {
        "0.vision": True,
        "0.language": True,
        "1.vision": False,
        "1.language": False,
        "1.vl": True,
    }
    # an image alone never touches the language or VL experts
    assert grads(pix, None) == {
        "0.vision": True,
        "0.language": False,
        "1.vision": True,
        "1.language": False,
        "1.vl": False,
    }
    g = grads(None, tok)  # the title alone: [CLS] is a vision token, the words use the language expert
    assert g["0.language"] and g["1.language"] and not g["1.vl"]


def test_block_mask_ratio_and_blocks() -> None:
    rng = np.random.default_rng(0)
    masks = np.stack([mw.block_mask(8, 0.4, rng) for _ in range(300)])  # (300, 64)
    counts = masks.sum(1)
    assert counts.min() >= 26 and counts.max() <= 28  # round(0.4 * 64) = 26, small overshoot only
    grid = masks.reshape(-1, 8, 8)
    # block-wise: a masked patch has more masked 4-neighbours than under a random mask of the same size
    neigh = (grid[:, 1:, :] & grid[:, :-1, :]).sum() + (grid[:, :, 1:] & grid[:, :, :-1]).sum()
    rand = np.stack([rng.permutation(64) < c for c in counts]).reshape(-1, 8, 8)
    neigh_rand = (rand[:, 1:, :] & rand[:, :-1, :]).sum() + (rand[:, :, 1:] & rand[:, :, :-1]).sum()
    assert neigh > 1.5 * neigh_rand


@pytest.mark.parametrize("ratio", [0.15, 0.5])
def test_text_mask_ratio(ratio: float) -> None:
    tok = torch.tensor([[5] * 10, [5] * 4 + [0] * 6, [5] + [0] * 9])
    m = mw.text_mask(tok, ratio, torch.Generator().manual_seed(0))
    assert m.sum(1).tolist() == [int(np.ceil(ratio * n)) for n in (10, 4, 1)]
    assert not m[tok == 0].any()  # padding is never masked


def test_visual_tokenizer_recovers_clusters() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 12, generator=gen) * 5
    labels = torch.arange(400) % 4
    patches = centres[labels] + 0.1 * torch.randn(400, 12, generator=gen)
    vt = mw.PatchTokenizer(4, 12).fit(patches, seed=0)
    codes = vt(patches)
    # one code per cluster, and different clusters get different codes
    assert all(len(set(codes[labels == c].tolist())) == 1 for c in range(4))
    assert len(set(codes.tolist())) == 4
    assert codes.shape == (400,) and vt(patches.reshape(4, 100, 12)).shape == (4, 100)


@pytest.mark.parametrize("kind", ["words", "minilm"])
def test_title_tokenizer(kind: str) -> None:
    texts = ["Velo red vase", "Velo red cap", "Brisa mug"]
    tt = mw.TitleTokenizer(texts, kind=kind, min_count=2, max_len=3)
    assert tt.vocab[:3] == mw.SPECIALS and "red" in tt.vocab and "mug" not in tt.vocab  # seen once: [UNK]
    ids = tt(["Red vase", "", "Brisa mug mug mug"])
    assert ids.shape == (3, 3) and ids[0, 0] == tt.index["red"]
    assert ids[1].tolist() == [mw.UNK, mw.PAD, mw.PAD]  # an empty title still has one token
    assert (ids[2] != mw.PAD).sum() == 3  # cut at max_len


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="patch_size"):
        mw.MultiwayConfig(patch_size=7).validate()
    with pytest.raises(ConfigError, match="tokenizer"):
        mw.MultiwayConfig(tokenizer="bpe").validate()
    with pytest.raises(ConfigError, match="image_mask_ratio"):
        mw.MultiwayConfig(image_mask_ratio=1.0).validate()
    with pytest.raises(ConfigError, match="unknown multiway setting"):
        mw.MultiwayConfig.from_dict({"depth": 3})
    assert mw.MultiwayConfig(epochs=1).key() == mw.MultiwayConfig(epochs=5).key()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = _copy(tmp_path_factory.mktemp("mw") / "shop")
    return folder, mw.pretrain_multiway(folder, mw.MultiwayConfig(**FAST), progress=False)


def test_training_reduces_the_masked_loss(trained: tuple[Path, dict]) -> None:
    _, result = trained
    hist = result["history"]
    assert len(hist) == 3
    assert hist[-1]["loss"] < hist[0]["loss"] - 0.3
    assert hist[-1]["pair"] < hist[0]["pair"] and hist[-1]["text"] < hist[0]["text"]
    assert hist[-1]["mim_acc"] > 2 / 32  # better than guessing one of 32 visual tokens


def test_writes_features_masked_views_and_manifest(trained: tuple[Path, dict]) -> None:
    folder, result = trained
    mm = np.load(folder / "mm_feat.npy")
    assert mm.shape == (120, 32) and np.allclose(np.linalg.norm(mm, axis=1), 1.0, atol=1e-5)
    entry = read_manifest(folder)["mm"]
    assert entry["encoder"] == "multiway-mmm" and entry["sha256"] == sha256_file(folder / "mm_feat.npy")
    assert entry["pretrained"] is True and entry["epochs"] == 3
    for m, f in mw.MASKED_FILES.items():
        view = np.load(folder / f)
        assert entry["masked_files"][m]["sha256"] == sha256_file(folder / f)
        assert view.shape == mm.shape and not np.allclose(view, mm)
    # the checkpoint rebuilds the same features
    from alignrec_lite.data.mmrec import load_mmrec

    model, cfg, vocab = mw.load_multiway(result["run_dir"])
    content = mw.MultiwayContent(load_mmrec(folder, load_features=False), cfg, vocab=vocab)
    np.testing.assert_allclose(mw.encode_items(model, content)["mm"], mm, atol=1e-5)
    assert mw.pretrain_multiway(folder, mw.MultiwayConfig(**FAST), progress=False).get("up_to_date") is True
    # the attention read-out for the notebook figure
    maps = mw.title_patch_attention(model, content, [0, 1])
    assert maps[0]["attention"].shape == (8, 8) and 0 < maps[0]["attention"].sum() <= 1 + 1e-5
    assert maps[1]["title"] == content.texts[1] and maps[1]["token"] in content.texts[1].lower()
    import matplotlib

    matplotlib.use("Agg")  # this test module only (STYLE §2.2)
    import matplotlib.pyplot as plt

    from alignrec_lite.plots import plot_patch_attention

    ax = plot_patch_attention(maps)
    assert len(ax.images) == 4 and ax.get_title()  # image + attention map per item
    plt.close(ax.figure)


def test_a_new_item_is_encoded_as_the_catalogue_was(trained: tuple[Path, dict]) -> None:
    from alignrec_lite import serve
    from alignrec_lite.data.mmrec import load_mmrec

    folder, result = trained  # the checkpoint is where features.json's run_dir says (.cache/multiway/...)
    ds = load_mmrec(folder)
    masked = {m: np.load(folder / f) for m, f in mw.MASKED_FILES.items()}
    for i in (0, 64, 119):  # picture + title: the stored row; one of them: the stored masked view
        both = serve.encode_new_item(ds, "mm", image=ds.image_path(i), text=ds.item_text(i))
        np.testing.assert_allclose(both[0], ds.features["mm"][i], atol=1e-5)
        no_image = serve.encode_new_item(ds, "mm", text=ds.item_text(i))
        np.testing.assert_allclose(no_image[0], masked["image"][i], atol=1e-5)
        np.testing.assert_allclose(
            serve.encode_new_item(ds, "mm", image=ds.image_path(i))[0], masked["text"][i], atol=1e-5
        )
    with pytest.raises(ConfigError, match="image or a text"):
        mw.encode_new_item(*mw.load_multiway(result["run_dir"]))


def test_deterministic_by_seed(trained: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = trained
    again = _copy(tmp_path / "again")
    mw.pretrain_multiway(again, mw.MultiwayConfig(**FAST), progress=False)
    np.testing.assert_array_equal(np.load(again / "mm_feat.npy"), np.load(folder / "mm_feat.npy"))
    other = _copy(tmp_path / "other")
    mw.pretrain_multiway(other, mw.MultiwayConfig(**{**FAST, "epochs": 1, "seed": 1}), progress=False)
    first = _copy(tmp_path / "first")
    mw.pretrain_multiway(first, mw.MultiwayConfig(**{**FAST, "epochs": 1}), progress=False)
    assert not np.allclose(np.load(other / "mm_feat.npy"), np.load(first / "mm_feat.npy"))


def test_resume_equals_uninterrupted(trained: tuple[Path, dict], tmp_path: Path) -> None:
    folder, result = trained
    b = _copy(tmp_path / "b")
    mw.pretrain_multiway(b, mw.MultiwayConfig(**{**FAST, "epochs": 1}), out=tmp_path / "run", progress=False)
    res = mw.pretrain_multiway(
        b, mw.MultiwayConfig(**FAST), out=tmp_path / "run", resume=True, overwrite=True, progress=False
    )
    assert res["epochs_run"] == 3
    assert [h["loss"] for h in res["history"]] == pytest.approx([h["loss"] for h in result["history"]], abs=1e-6)
    np.testing.assert_allclose(np.load(b / "mm_feat.npy"), np.load(folder / "mm_feat.npy"), atol=1e-6)


def test_guards(trained: tuple[Path, dict], tmp_path: Path) -> None:
    folder, result = trained
    with pytest.raises(DataError, match="other settings"):
        mw.pretrain_multiway(folder, mw.MultiwayConfig(**{**FAST, "layers": 1}), progress=False)
    with pytest.raises(CheckpointError, match="no Multiway checkpoint"):
        mw.pretrain_multiway(
            folder, mw.MultiwayConfig(**FAST), out=tmp_path / "empty", resume=True, overwrite=True, progress=False
        )
    with pytest.raises(CheckpointError, match="other settings"):
        mw.pretrain_multiway(
            folder,
            mw.MultiwayConfig(**{**FAST, "lr": 0.5}),
            out=result["run_dir"],
            resume=True,
            overwrite=True,
            progress=False,
        )
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load the checkpoint"):
        mw.load_checkpoint(tmp_path / "bad.pt")
    noimg = _copy(tmp_path / "noimg")
    shutil.rmtree(noimg / "images")
    with pytest.raises(DataError, match="no item image could be read"):
        mw.pretrain_multiway(noimg, mw.MultiwayConfig(**FAST), progress=False)


def test_cli_multiway_and_no_pretrain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from alignrec_lite.cli import main

    folder = _copy(tmp_path / "shop")
    assert (
        main(
            [
                "pretrain-ica",
                str(folder),
                "--encoder",
                "multiway",
                "--no-pretrain",
                "--embed-dim",
                "32",
                "--layers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert "random init, no pre-training" in capsys.readouterr().out
    entry = read_manifest(folder)["mm"]
    assert entry["encoder"] == "multiway-mmm" and entry["pretrained"] is False and entry["epochs"] == 0
    assert entry["shape"] == [120, 32]
    for f in ("mm_feat.npy", *mw.MASKED_FILES.values()):
        assert (folder / f).exists()
    assert main(["pretrain-ica", str(folder), "--encoder", "multiway", "--arch", "ViT-B-32", "--quiet"]) == 2
    assert "--arch belongs to the two-tower encoder" in capsys.readouterr().err
    assert main(["pretrain-ica", str(folder), "--no-pretrain", "--quiet"]) == 2
    assert "add --encoder multiway" in capsys.readouterr().err


def test_each_stage1_loader_refuses_the_other_encoders_checkpoint(tmp_path):
    """The two stage-1 encoders share their checkpoint format; each loader accepts only its own kind."""
    import torch

    from alignrec_lite import ica, multiway
    from alignrec_lite.encoders import save_stage1_checkpoint
    from alignrec_lite.errors import CheckpointError

    w = torch.nn.Linear(2, 2)
    opt, gen = torch.optim.Adam(w.parameters()), torch.Generator().manual_seed(0)
    for kind, ok, other in [
        ("mmenc-ica", ica.load_checkpoint, multiway.load_checkpoint),
        (multiway.ENCODER_NAME, multiway.load_checkpoint, ica.load_checkpoint),
    ]:
        run = tmp_path / kind
        run.mkdir()
        save_stage1_checkpoint(run, kind, {"epoch": 1, "model": w.state_dict()}, opt, gen, [], 1.0)
        assert ok(run)["epoch"] == 1
        with pytest.raises(CheckpointError, match="not a"):
            other(run)
    with pytest.raises(CheckpointError, match="no ICA checkpoint"):
        ica.load_checkpoint(tmp_path / "missing")
