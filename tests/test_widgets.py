"""The ipywidgets explorers (alignrec_lite.widgets)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from helpers import random_fixed_model

from alignrec_lite import serve

matplotlib.use("Agg")  # this module draws in the test process; notebook kernels keep their inline backend


def test_widgets_import_lazily_and_explore():
    import subprocess
    import sys

    code = "import sys, alignrec_lite.widgets; print('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    from alignrec_lite.widgets import geometry_explorer

    rng = np.random.default_rng(0)
    results = {
        "clip": {0.1: rng.normal(size=(30, 3)), 1.0: rng.normal(size=(30, 3))},
        "align + uniform": {2.0: rng.normal(size=(30, 3))},
    }
    w = geometry_explorer(results, np.arange(30) % 3, stats={"clip": {0.1: {"align": 0.1, "uniform": -2.0}}})
    dropdown, slider = w.controls
    assert list(slider.options) == [0.1, 1.0]
    dropdown.value = "align + uniform"
    assert list(slider.options) == [2.0]
    with pytest.raises(ValueError):
        geometry_explorer({})


# ------------------------------------------------------------------ the user explorer
@pytest.fixture(scope="module")
def model(smoke):
    return random_fixed_model(smoke)


def test_user_panel_and_explorer(smoke, model):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignrec_lite.scorers import popularity_scores
    from alignrec_lite.widgets.explorer import precompute_lists, user_explorer, user_panel

    users = np.array([0, 3, 7])
    lists = precompute_lists(smoke, {"fixed": model, "pop": popularity_scores(smoke)}, users, k=5)
    assert lists["fixed"].shape == (3, 5)
    ref = serve.topk_frame(model, smoke, k=5, users=users)
    assert lists["fixed"].ravel().tolist() == ref["itemID"].tolist()
    axes = user_panel(smoke, 3, {n: v[1] for n, v in lists.items()}, history=4)
    assert len(axes) == 3 and "user" in axes[0].get_title(loc="left") and "pop" in axes[2].get_title(loc="left")
    test_items = set(smoke.test[smoke.test[:, 0] == 3, 1].tolist())
    n_hits = len(test_items & set(lists["pop"][1].tolist()))
    assert axes[2].get_title(loc="left").startswith(f"pop: {n_hits} of 5")
    plt.close("all")
    box = user_explorer(smoke, {"fixed": model}, users=users, k=5)
    out = box.children[1]
    assert len(out.outputs) == 1  # the first user's panel, set directly (no captured display messages)
    box.controls[0].value = 7  # moving the slider redraws without recomputing
    assert len(out.outputs) == 1 and box.lists["fixed"].shape == (3, 5)
    assert not plt.get_fignums()  # every panel figure was closed after it was stored
    assert len(user_explorer(smoke, {"fixed": model}, users=users, k=5, draw=False).children[1].outputs) == 0
    plt.close("all")
