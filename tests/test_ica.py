"""MMEnc and ICA pre-training: CLIP loss by hand, fusion, training reduces the loss, checkpoints, resume."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from alignrec_lite import ica
from alignrec_lite.encoders import TinyCNN, read_manifest
from alignrec_lite.errors import CheckpointError, ConfigError, DataError
from alignrec_lite.files import sha256_file
from alignrec_lite.losses import clip_loss

SMOKE = Path(__file__).resolve().parents[1] / "datasets" / "smoke-shop"
FAST = dict(epochs=3, batch_size=32, tower_dim=32, embed_dim=32)


def _copy(dst: Path) -> Path:
    shutil.copytree(SMOKE, dst)
    for f in ("image_feat.npy", "text_feat.npy", "features.json"):
        (dst / f).unlink(missing_ok=True)
    return dst


def test_clip_loss_by_hand() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = 2 * img @ txt.T = [[2, 1.2], [0, 1.6]]
    rows = -math.log(math.exp(2) / (math.exp(2) + math.exp(1.2))) - math.log(math.exp(1.6) / (1 + math.exp(1.6)))
    cols = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))
    expected = 0.5 * (rows / 2 + cols / 2)
    assert float(clip_loss(img, txt, 2.0)) == pytest.approx(expected, rel=1e-6)
    assert float(clip_loss(3 * img, txt, 2.0)) == pytest.approx(expected, rel=1e-6)  # inputs are normalised


def _model(fusion: str) -> ica.MMEnc:
    from alignrec_lite.encoders import TinyViT

    torch.manual_seed(0)
    img, txt = TinyCNN(16), TinyViT(8, layers=1)  # any two towers: only their dims matter here
    txt.modality = "text"
    return ica.MMEnc(img, txt, embed_dim=8, fusion=fusion)


@pytest.mark.parametrize("fusion,width", [("mean", 8), ("concat", 16), ("mlp", 8)])
def test_fusion(fusion: str, width: int) -> None:
    m = _model(fusion)
    zi = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    zt = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    out = m.fuse(zi, zt)
    assert out.shape == (5, width) and m.out_dim == width
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    if fusion == "mlp":  # the residual MLP starts at zero: same as the mean fusion
        assert torch.allclose(out, torch.nn.functional.normalize(zi + zt, dim=1), atol=1e-6)


def test_ica_loss_terms() -> None:
    m = _model("mlp")
    zi = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    zt = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    only_clip = m.ica_loss(zi, zt, mask_weight=0.0)
    assert float(only_clip["loss"].detach()) == pytest.approx(float(clip_loss(zi, zt, 1 / 0.07)), rel=1e-5)
    terms = m.ica_loss(zi, zt, mask_weight=0.5, mask_prob=1.0, generator=torch.Generator().manual_seed(0))
    assert float(terms["mask_pred"].detach()) > 0 and float(terms["mask_fuse"].detach()) > 0
    terms["loss"].backward()
    assert m.logit_scale.grad is not None and m.pred_image[0].weight.grad is not None
    assert m.fuser[0].weight.grad is not None or m.fuser[-1].weight.grad is not None


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        ica.ICAConfig(fusion="sum").validate()
    with pytest.raises(ConfigError, match="batch_size"):
        ica.ICAConfig(batch_size=1).validate()
    with pytest.raises(ConfigError, match="unknown ICA setting"):
        ica.ICAConfig.from_dict({"epochz": 3})
    assert ica.ICAConfig(epochs=1).key() == ica.ICAConfig(epochs=9).key()  # epochs do not define the encoder
    assert ica.ICAConfig(fusion="mlp").key() != ica.ICAConfig().key()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = _copy(tmp_path_factory.mktemp("ica") / "shop")
    result = ica.pretrain_ica(folder, ica.ICAConfig(**FAST), progress=False)
    return folder, result


def test_pretrain_reduces_loss_and_aligns(trained: tuple[Path, dict]) -> None:
    _, result = trained
    losses = [h["loss"] for h in result["history"]]
    clips = [h["clip"] for h in result["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0] and clips[-1] < clips[0]
    before, after = result["geometry_before"], result["geometry_after"]
    # CLIP loss over all items (eval mode, temperature 0.07) falls: image and text moved together
    assert after["clip_loss_all_items"] < before["clip_loss_all_items"]
    assert after["align_image_text"] < before["align_image_text"]


def test_pretrain_writes_features_and_manifest(trained: tuple[Path, dict]) -> None:
    folder, result = trained
    mm = np.load(folder / "mm_feat.npy")
    assert mm.shape == (120, 32) and np.allclose(np.linalg.norm(mm, axis=1), 1.0, atol=1e-5)
    entry = read_manifest(folder)["mm"]
    assert entry["sha256"] == sha256_file(folder / "mm_feat.npy") and entry["encoder"] == "mmenc-ica"
    assert entry["text_tower"]["encoder"] == "minilm" and entry["fusion"] == "mean"
    for m, f in ica.MASKED_FILES.items():
        assert entry["masked_files"][m]["sha256"] == sha256_file(folder / f)
        assert not np.allclose(np.load(folder / f), mm)
    from alignrec_lite.data.mmrec import load_mmrec

    assert load_mmrec(folder).features["mm"].shape == (120, 32)  # the loader picks it up
    # the checkpoint is loadable with weights_only and rebuilds the same features
    model, cfg = ica.load_mmenc(result["run_dir"])
    content = ica.ItemContent(load_mmrec(folder, load_features=False), model)
    np.testing.assert_allclose(ica.encode_items(model, content)["mm"], mm, atol=1e-5)
    # the same command again is a no-op
    again = ica.pretrain_ica(folder, ica.ICAConfig(**FAST), progress=False)
    assert again.get("up_to_date") is True


def test_guards(trained: tuple[Path, dict], tmp_path: Path) -> None:
    folder, result = trained
    with pytest.raises(DataError, match="other settings"):
        ica.pretrain_ica(folder, ica.ICAConfig(**{**FAST, "fusion": "concat"}), progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume|no ICA checkpoint"):
        ica.pretrain_ica(
            folder, ica.ICAConfig(**FAST), out=tmp_path / "empty", resume=True, progress=False, overwrite=True
        )
    with pytest.raises(CheckpointError, match="other settings"):
        ica.pretrain_ica(
            folder,
            ica.ICAConfig(**{**FAST, "lr": 0.5}),
            out=result["run_dir"],
            resume=True,
            overwrite=True,
            progress=False,
        )
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load the checkpoint"):
        ica.load_checkpoint(tmp_path / "bad.pt")


def test_resume_matches_uninterrupted_run(trained: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = trained  # FAST = 3 epochs without interruption
    b = _copy(tmp_path / "b")
    ica.pretrain_ica(b, ica.ICAConfig(**{**FAST, "epochs": 1}), out=tmp_path / "run", progress=False)
    res = ica.pretrain_ica(b, ica.ICAConfig(**FAST), out=tmp_path / "run", resume=True, progress=False)
    assert res["epochs_run"] == 3
    np.testing.assert_allclose(np.load(folder / "mm_feat.npy"), np.load(b / "mm_feat.npy"), atol=1e-6)


def test_a_new_item_is_encoded_as_stage1_encoded_the_catalogue(trained: tuple[Path, dict], tmp_path: Path) -> None:
    from alignrec_lite import serve
    from alignrec_lite.data.mmrec import load_mmrec

    folder, _ = trained
    ds = load_mmrec(folder)
    masked = {m: np.load(folder / f) for m, f in ica.MASKED_FILES.items()}
    for i in (0, 57, 119):  # picture + text: the stored row; one of them: the stored masked view
        both = serve.encode_new_item(ds, "mm", image=ds.image_path(i), text=ds.item_text(i))
        np.testing.assert_allclose(both[0], ds.features["mm"][i], atol=1e-5)
        np.testing.assert_allclose(
            serve.encode_new_item(ds, "mm", text=ds.item_text(i))[0], masked["image"][i], atol=1e-5
        )
        only_image = serve.encode_new_item(ds, "mm", image=ds.image_path(i), text="  ")  # blank text = no text
        np.testing.assert_allclose(only_image[0], masked["text"][i], atol=1e-5)
    with pytest.raises(ConfigError, match="needs the new item's image or text"):
        serve.encode_new_item(ds, "mm")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot be read"):
        serve.encode_new_item(ds, "mm", image=tmp_path / "bad.jpg")
    # features that the checkpoint does not reproduce (a retrained encoder, say) are refused
    serve.newitems._STAGE1_ENCODERS.clear()
    ds.features["mm"] = ds.features["mm"][::-1].copy()
    with pytest.raises(DataError, match="does not reproduce"):
        serve.encode_new_item(ds, "mm", text="a red mug")
    # a copy without its run/ and a recorded run folder that is gone: the checkpoint is named
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("run"))
    manifest = json.loads((copy / "features.json").read_text())
    manifest["mm"]["run_dir"] = str(tmp_path / "gone")
    (copy / "features.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="checkpoint is missing") as err:
        serve.encode_new_item(load_mmrec(copy), "mm", text="a red mug")
    assert "last.pt" in str(err.value)


def test_cli_new_item_scores_a_new_item_through_alignrec(
    trained: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from alignrec_lite import serve
    from alignrec_lite.cli import main
    from alignrec_lite.runs import load_run

    folder, _ = trained
    run = tmp_path / "run"
    argv = ["train", str(folder), "--model", "alignrec", "--set", "epochs=1", "--out", str(run), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    net, _, ds = load_run(run)
    assert net.feature_source == "mm"
    assert main(["new-item", str(run), "--image", str(ds.image_path(5)), "--text", ds.item_text(5), "--k", "4"]) == 0
    out = capsys.readouterr().out
    ref = serve.score_new_item(net, ds, feature=ds.features["mm"][5], k=4)  # the stored row of the same item
    assert "users:" in out and "similar items:" in out
    users = out.split("similar items:")[0].splitlines()[2:]
    assert [int(line.split()[0]) for line in users if line.strip()] == ref["users"]["userID"].tolist()
    assert main(["new-item", str(run), "--k", "4"]) == 2
    assert "nothing to score" in capsys.readouterr().err


def test_cli_pretrain_ica(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from alignrec_lite.cli import main

    folder = _copy(tmp_path / "shop")
    assert (
        main(
            [
                "pretrain-ica",
                str(folder),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--embed-dim",
                "16",
                "--precision",
                "amp",
                "--quiet",
            ]
        )
        == 0
    )  # bfloat16 autocast on a CPU
    assert "mm_feat.npy" in capsys.readouterr().out
    assert main(["pretrain-ica", str(folder), "--pretrained", "openai", "--quiet"]) == 2
    assert "--pretrained needs --arch" in capsys.readouterr().err


@pytest.mark.slow
def test_open_clip_towers_train_under_amp() -> None:
    """The scaled-up path (open_clip towers, mixed precision) on a CPU with a handful of items."""
    from alignrec_lite.encoders import precision_context

    cfg = ica.ICAConfig(
        image_encoder="openclip:ViT-S-32",
        text_encoder="openclip:ViT-S-32",
        embed_dim=384,
        freeze_text=True,
        precision="amp",
    )
    model = ica.build_mmenc(cfg)
    assert torch.equal(model.image_proj.weight, torch.eye(384))  # identity start keeps the CLIP space
    assert not model.text_proj.weight.requires_grad  # frozen tower of width embed_dim: LiT
    assert not any(p.requires_grad for n, p in model.text_tower.clip.named_parameters() if not n.startswith("visual."))
    assert all(p.requires_grad for p in model.image_tower.parameters())
    dev = torch.device("cpu")
    with precision_context(dev, "amp"):
        f_img = model.image_tower(torch.randn(4, 3, 224, 224))
        f_txt = model.text_tower(model.text_tower.tokenize(["a", "b c", "d e f", "g"]))
    assert f_img.dtype == torch.bfloat16
    terms = model.ica_loss(
        model.project_image(f_img), model.project_text(f_txt), mask_prob=1.0, generator=torch.Generator().manual_seed(0)
    )
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"].detach())
    assert model.image_tower.visual.conv1.weight.grad is not None
