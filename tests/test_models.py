"""The declared model interface (models/base.py): construction from a checked config, scores, vectors, content path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_dataset

from alignrec_lite.data.toy import load_toy
from alignrec_lite.errors import ConfigError
from alignrec_lite.models import MODELS, Recommender, build_model, get_model_class
from alignrec_lite.models.freedom import FREEDOM
from alignrec_lite.models.vbpr import VBPR


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_offers_the_declared_interface(smoke, name):
    torch.manual_seed(0)
    model = build_model(name, smoke, {"embedding_size": 8})
    assert isinstance(model, get_model_class(name)) and model.config["embedding_size"] == 8
    assert model.device == torch.device("cpu")
    users = torch.arange(5)
    user_e, item_e = model.final_vectors()
    assert not model.training and user_e.shape[0] == smoke.n_users and item_e.shape[0] == smoke.n_items
    assert torch.equal(model.scores(users), model.full_sort_scores(users))
    assert torch.equal(model.scores(users), user_e[users] @ item_e.T)
    content = name in ("vbpr", "freedom", "alignrec")
    assert model.has_content_path is content
    feat = model.content_features(smoke)[:2]
    if content:
        assert model.encode_content(feat).shape == (2, item_e.shape[1])
    else:
        with pytest.raises(ConfigError, match=f"model '{name}' has no content path"):
            model.encode_content(feat)


def test_invalidate_cache_sees_weights_edited_in_place(smoke):
    model = build_model("lightgcn", smoke, {"embedding_size": 4})
    users = torch.arange(3)
    before = model.scores(users)
    with torch.no_grad():
        model.item_emb.weight.mul_(2.0)
        model.user_emb.weight.mul_(2.0)
    assert torch.equal(model.scores(users), before)  # still the cached (propagated) vectors
    model.invalidate_cache()
    assert torch.allclose(model.scores(users), 4 * before)
    assert torch.allclose(model.final_vectors()[1], model.forward()[1])


def test_from_config_validates_what_the_constructor_ignores(smoke):
    cls = get_model_class("lightgcn")
    assert cls(smoke, {"n_layer": 5}).config["n_layers"] == cls.defaults["n_layers"]  # typo silently ignored
    with pytest.raises(ConfigError, match="unknown setting 'n_layer'.*n_layers"):
        cls.from_config(smoke, {"n_layer": 5})
    with pytest.raises(ConfigError, match="not a valid int"):
        build_model("lightgcn", smoke, {"n_layers": "two"})
    with pytest.raises(ConfigError, match="for model 'bpr', not 'lightgcn'"):
        cls.from_config(smoke, {"model": "bpr"})
    model = build_model("lightgcn", smoke, {"n_layers": "1", "model": "lightgcn"})
    assert model.config["n_layers"] == 1
    # presets: none by default, "auto" = the dataset's (the smoke toy shop is named "toy")
    assert build_model("lightgcn", smoke).config["n_layers"] == cls.defaults["n_layers"]
    assert build_model("lightgcn", smoke, preset="auto").config["n_layers"] == 3


def test_alignrec_without_content_branch_has_no_content_path(smoke):
    model = build_model("alignrec", smoke, {"embedding_size": 8, "branches": "id"})
    assert model.has_content_path is False
    with pytest.raises(ConfigError, match="content branch"):
        model.encode_content(np.zeros((1, smoke.feature("auto")[0].shape[1]), dtype=np.float32))


def test_an_instance_level_content_path_counts():
    class Plain(Recommender):
        name = "plain"

    ds = load_toy("smoke", load_features=False)
    model = Plain(ds, {})
    assert model.has_content_path is False
    model.encode_content = lambda x: x
    assert model.has_content_path is True


def test_cold_start_reads_each_models_own_content_input():
    """Cold-start and new-item scoring use the rows the content path was trained on: VBPR's raw
    [text ; image], the other models' normalised concatenation."""
    from alignrec_lite.models.base import Recommender

    ds = tiny_dataset()
    vbpr = VBPR(ds, {"embedding_size": 8})
    raw = np.concatenate([ds.features["text"], ds.features["image"]], axis=1)
    assert vbpr.content_layout == "raw-text-first" and np.array_equal(vbpr.content_features(ds), raw)
    assert Recommender.content_layout == "normalised"
    freedom = FREEDOM(ds, {"embedding_size": 8})
    assert np.array_equal(freedom.content_features(ds), ds.feature("auto")[0])
