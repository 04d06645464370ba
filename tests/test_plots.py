"""Plot functions: ax in, the same Axes out, a new figure only when ax is None, never plt.show()."""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import missing_annotations, public_functions

from alignrec_lite import longtail, plots
from alignrec_lite.plots import style

RNG = np.random.default_rng(0)
PLOT_FUNCS = [getattr(plots, n) for n in plots.__all__ if n.startswith("plot_")]

CALLS = {
    "plot_vectors_2d": lambda ax: plots.plot_vectors_2d(RNG.normal(size=(3, 2)), ["a", "b", "c"], ax=ax),
    "plot_norm_vs_popularity": lambda ax: plots.plot_norm_vs_popularity(RNG.random(50), RNG.integers(0, 30, 50), ax=ax),
    "plot_image_grid": lambda ax: plots.plot_image_grid(
        [[RNG.integers(0, 255, (64, 64, 3)), None], [RNG.integers(0, 255, (32, 48, 3))]],
        captions=[["q", ""], ["n"]],
        row_labels=["r0", "r1"],
        ax=ax,
    ),
    "plot_bars": lambda ax: plots.plot_bars(
        {"A": {"x": 0.2, "y": 0.5}, "B": {"x": 0.3, "y": 0.1}}, chance={"x": 0.1}, ax=ax
    ),
    "plot_similarity_matrix": lambda ax: plots.plot_similarity_matrix(
        RNG.random((4, 4)), row_labels=list("abcd"), col_labels=list("efgh"), ax=ax
    ),
    "plot_sweep": lambda ax: plots.plot_sweep(
        [{"t": 0.1, "r": 0.2}, {"t": 1.0, "r": 0.1}], "t", ["r"], logx=True, ax=ax
    ),
    "plot_memory_scaling": lambda ax: plots.plot_memory_scaling(
        [64, 128], {"saved": [1e6, 4e6]}, {"fit": ([64, 1e5], [1e6, 1e11])}, ax=ax
    ),
    "plot_circle": lambda ax: plots.plot_circle(torch.randn(100, 2), labels=np.arange(100) % 3, ax=ax),
    "plot_align_uniform_plane": lambda ax: plots.plot_align_uniform_plane(
        {"clip": [{"align": 1.0, "uniform": -1.0}, {"align": 0.5, "uniform": -1.5}]}, ax=ax
    ),
    "plot_history": lambda ax: plots.plot_history([{"epoch": 0, "a": 1.0}, {"epoch": 1, "a": 0.5}], ["a"], ax=ax),
    "plot_pair_distances": lambda ax: plots.plot_pair_distances(
        RNG.normal(size=(50, 4)), RNG.normal(size=(50, 4)), ax=ax
    ),
    "plot_embedding_map": lambda ax: plots.plot_embedding_map(
        RNG.normal(size=(60, 2)), RNG.integers(0, 500, 60), log=True, ax=ax
    ),
    "plot_joint_map": lambda ax: plots.plot_joint_map(RNG.normal(size=(40, 2)), RNG.normal(size=(40, 2)), ax=ax),
    "plot_patch_attention": lambda ax: plots.plot_patch_attention(
        [
            {
                "image": RNG.uniform(size=(16, 16, 3)),
                "attention": RNG.uniform(size=(2, 2)),
                "token": "mug",
                "title": "a red mug with dots",
            }
            for _ in range(2)
        ],
        ax=ax,
    ),
}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_every_plot_function_is_covered_and_keyword_only_ax():
    names = {f.__name__ for f in PLOT_FUNCS}
    assert names - {"plot_sphere"} == set(CALLS)
    for f in PLOT_FUNCS:
        p = inspect.signature(f).parameters
        assert "ax" in p and p["ax"].kind is inspect.Parameter.KEYWORD_ONLY and p["ax"].default is None, f.__name__


@pytest.mark.parametrize("name", sorted(CALLS))
def test_draws_into_given_axes(name):
    fig, ax = plt.subplots()
    n_figs = len(plt.get_fignums())
    out = CALLS[name](ax)
    assert out is ax
    assert len(plt.get_fignums()) == n_figs  # no new figure when ax is given
    assert ax.get_title()  # every figure has a title


@pytest.mark.parametrize("name", sorted(CALLS))
def test_creates_small_figure_when_ax_is_none(name):
    before = len(plt.get_fignums())
    out = CALLS[name](None)
    assert len(plt.get_fignums()) == before + 1
    w, h = out.figure.get_size_inches()
    assert w <= 12 and h <= 5


def test_sphere_uses_3d_axes():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    assert plots.plot_sphere(RNG.normal(size=(30, 3)), labels=np.arange(30) % 2, ax=ax) is ax
    assert plots.plot_sphere(RNG.normal(size=(30, 3))).name == "3d"


@pytest.mark.parametrize("module", ["attention", "charts", "embeddings", "evaluation", "history", "maps", "style"])
def test_no_plt_show_in_source(module):
    import importlib

    src = inspect.getsource(importlib.import_module(f"alignrec_lite.plots.{module}"))
    assert "plt.show" not in src.replace('"plt.show()"', "").replace("``plt.show()``", "")


def test_circle_rejects_wrong_dimension():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plots.plot_circle(RNG.normal(size=(10, 3)))


def test_subsample_is_fixed_and_bounded():
    a = style.subsample(1000, 100, seed=0)
    assert len(a) == 100 and np.array_equal(a, style.subsample(1000, 100, seed=0))
    assert len(style.subsample(50, 100, seed=0)) == 50
    ax = plots.plot_embedding_map(RNG.normal(size=(500, 2)), max_points=100)
    assert len(ax.collections[0].get_offsets()) == 100


def test_category_colours_are_okabe_ito():
    colours, values = plots.category_colours(["b", "a", "b"])
    assert values == ["a", "b"] and list(colours) == [plots.OKABE_ITO[1], plots.OKABE_ITO[0], plots.OKABE_ITO[1]]


def test_project_2d_pca_recovers_main_axes():
    x = np.zeros((50, 5), dtype=np.float32)
    x[:, 0] = np.linspace(-10, 10, 50)
    x[:, 3] = np.linspace(-1, 1, 50) ** 2
    y = plots.project_2d(x, "pca")
    assert y.shape == (50, 2)
    assert abs(np.corrcoef(y[:, 0], x[:, 0])[0, 1]) > 0.99


def test_project_2d_unknown_method():
    from alignrec_lite.errors import ConfigError

    with pytest.raises(ConfigError):
        plots.project_2d(np.zeros((5, 3)), "tsne")


@pytest.mark.slow
def test_project_2d_umap_separates_clusters():
    x = np.concatenate([RNG.normal(0, 0.1, (60, 8)) + 3, RNG.normal(0, 0.1, (60, 8)) - 3]).astype(np.float32)
    y = plots.project_2d(x, "umap", metric="euclidean")
    gap = np.linalg.norm(y[:60].mean(0) - y[60:].mean(0))
    spread = max(y[:60].std(0).max(), y[60:].std(0).max())
    assert gap > 3 * spread


def test_public_plot_functions_are_typed():
    from alignrec_lite.plots import evaluation

    funcs = PLOT_FUNCS + [getattr(evaluation, n) for n in evaluation.__all__ if n.startswith("plot_")]
    for f in funcs:
        ann = f.__annotations__
        assert ann.get("return") == "Axes" and ann.get("ax") == "Axes | None", f.__name__
        assert set(inspect.signature(f).parameters) <= set(ann), f.__name__  # every argument has a type


@pytest.mark.parametrize("module", ["attention", "charts", "embeddings", "evaluation", "history", "maps", "style"])
def test_every_public_plotting_function_is_fully_typed(module):
    """Not only the plot_* functions: every public function of each plots module (helpers such as
    project_2d, item_montage, label_axes) types each parameter and its return, and the types resolve."""
    import importlib

    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection

    mod = importlib.import_module(f"alignrec_lite.plots.{module}")
    funcs = public_functions(mod)
    assert funcs, module
    for f in funcs:
        # the modules import these two for type checkers only
        assert missing_annotations(f, Axes=Axes, PathCollection=PathCollection) == [], f.__name__
    exported = {getattr(plots, n) for n in plots.__all__ if callable(getattr(plots, n))}
    assert {f for f in exported if getattr(f, "__module__", "") == mod.__name__} <= set(funcs)


def test_label_axes_sets_labels_title_legend_and_ticks():
    _, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    assert style.label_axes(ax, "T", xlabel="x", ylabel="y", legend=True, ticks=False) is ax
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "x", "y")
    assert ax.get_legend() is not None and not len(ax.get_xticks()) and not len(ax.get_yticks())
    _, bare = plt.subplots()
    style.label_axes(bare, "only a title")
    assert bare.get_legend() is None and bare.get_xlabel() == "" and len(bare.get_xticks())


def test_get_axes_reuses_the_given_axes_or_makes_one():
    _, ax = plt.subplots()
    assert style.get_axes(ax) is ax
    new = style.get_axes(None, figsize=(2.0, 1.0))
    assert new is not ax and tuple(new.figure.get_size_inches()) == (2.0, 1.0)
    assert style.okabe_ito(9) == style.OKABE_ITO[1]


# ------------------------------------------------------------------ the evaluation figures (plots.evaluation)
def test_evaluation_plots_draw_into_the_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignrec_lite import plots
    from alignrec_lite.data.toy import load_toy

    pop = np.array([50, 20, 9, 5, 3, 3, 2, 1, 0, 0])
    b = longtail.popularity_buckets(pop)
    buckets = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"] * 2,
            "bucket": ["tail", "head"] * 4,
            "recall@20": [0.1, 0.5, 0.2, 0.4, 0.12, 0.52, 0.18, 0.41],
            "seed": [0] * 4 + [1] * 4,
        }
    )
    overall = pd.DataFrame(
        {
            "model": ["a", "b"],
            "coverage@20": [0.2, 0.6],
            "aplt@20": [0.0, 0.3],
            "gini@20": [0.9, 0.5],
            "recall@20": [0.3, 0.28],
        }
    )
    items = pd.DataFrame({"method": ["x", "y", "x", "y"], "recall@20": [0.3, 0.1, 0.35, 0.12]})
    users = pd.DataFrame(
        {
            "method": ["m · mean"] * 3 + ["popularity"] * 3,
            "given": [0, 1, 2] * 2,
            "recall@20": [0.1, 0.2, 0.3, 0.1, 0.1, 0.1],
        }
    )
    history = [{"epoch": e, "loss": 1.0 / (e + 1), "loss_bpr": 0.5 / (e + 1), "loss_cca": 0.01} for e in range(4)]
    shop = load_toy("smoke")
    fig, axes = plt.subplots(3, 3)
    calls = [
        lambda ax: plots.plot_popularity_curve(pop, b.item_bucket, b.labels, ax=ax),
        lambda ax: plots.plot_bucket_metrics(buckets, ax=ax),
        lambda ax: plots.plot_beyond_accuracy(overall, ax=ax),
        lambda ax: plots.plot_cold_items(items, ax=ax),
        lambda ax: plots.plot_cold_user_curve(users, ax=ax),
        lambda ax: plots.plot_loss_terms(history, ax=ax),
        lambda ax: plots.plot_model_bars(overall, "recall@20", ax=ax, highlight="b"),
        lambda ax: plots.plot_scaling([100, 200, 400], [0.1, 0.2, 0.41], ax=ax, extrapolate_to=10_000),
        lambda ax: plots.plot_items(shop, [0, 5, -1], hits=[True, False, False], ax=ax, title="history"),
    ]
    for ax, call in zip(axes.ravel(), calls):
        assert call(ax) is ax
        assert ax.get_title() or ax.get_title(loc="left")
    assert len(plt.get_fignums()) == 1  # nothing drew a figure of its own
    # bars show the mean over seeds
    heights = sorted(round(p.get_height(), 4) for p in axes[0, 1].patches)
    assert heights == [0.11, 0.19, 0.405, 0.51]
    plt.close("all")
    ax = plots.plot_cold_items(items)  # no ax: a new figure
    assert ax.figure is not None
    plt.close("all")


def test_fit_power_law_and_montage():
    from alignrec_lite.data.toy import load_toy
    from alignrec_lite.plots import fit_power_law, item_montage

    a, b = fit_power_law([10, 20, 40], [3 * 10**1.5, 3 * 20**1.5, 3 * 40**1.5])
    assert a == pytest.approx(3.0) and b == pytest.approx(1.5)
    m = item_montage(load_toy("smoke"), [0, 1, -1], size=32, hits=[True, False, False])
    assert m.shape == (34, 3 * 34, 3) and m.dtype == np.uint8
    assert tuple(m[1, 1]) == (0, 158, 115)  # the hit is framed in green
    assert tuple(m[10, 2 * 34 + 10]) == (200, 200, 200)  # an empty tile is grey
