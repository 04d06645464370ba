"""The command line's shape: one module per noun, shared argument groups, dataset names, train's new flags."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from alignrec_lite import cli
from alignrec_lite.cli import common, main
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.toy import toy_path
from alignrec_lite.errors import ConfigError

SMOKE = toy_path("smoke")

#: the flags each command must have (the shared groups where they mean something)
SHARED = {
    "data build toy": {"--seed", "--overwrite", "--quiet"},
    "data build movielens": {"--seed", "--overwrite", "--quiet"},
    "data build amazon": {"--seed", "--overwrite", "--quiet", "--timeout", "--retries"},
    "data download movielens-small": {"--seed", "--overwrite", "--quiet", "--timeout", "--retries"},
    "data download posters": {"--quiet", "--timeout", "--retries"},
    "train": {"--seed", "--device", "--preset", "--set", "--overwrite", "--quiet"},
    "search": {"--seed", "--device", "--preset", "--set", "--quiet"},
    "coldstart": {"--seed", "--device", "--preset", "--set", "--quiet"},
    "features": {"--seed", "--device", "--overwrite", "--quiet"},
    "pretrain-ica": {"--seed", "--device", "--overwrite", "--quiet"},
    "evaluate-features": {"--seed", "--quiet"},
    "recommend": {"--quiet"},
    "new-user": {"--seed"},
    "timing": {"--seed"},
}
#: the commands that read a dataset: each takes any name the catalogue knows
DATASET_COMMANDS = {"data check", "train", "search", "coldstart", "features", "pretrain-ica", "evaluate-features"}


def _walk(parser: argparse.ArgumentParser, path: list[str]):
    sub = getattr(parser, "subcommands", None)  # cli.common.add_subcommands
    for name, child in (sub.choices if sub is not None else {}).items():
        yield from _walk(child, [*path, name])
    if path:
        yield " ".join(path), parser


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    return dict(_walk(cli.build_parser(), []))


# ------------------------------------------------------------------ the parser's shape
def test_every_command_module_registers_its_commands(parsers):
    top = {name for name in parsers if " " not in name}
    assert top == {
        "data",
        "train",
        "search",
        "evaluate",
        "features",
        "pretrain-ica",
        "evaluate-features",
        "longtail",
        "coldstart",
        "recommend",
        "new-user",
        "new-item",
        "timing",
        "tour",
    }
    assert [m.__name__.rsplit(".", 1)[1] for m in cli.COMMAND_MODULES] == [
        "data",
        "train",
        "features",
        "analyse",
        "serve",
        "tour",
    ]
    for name, parser in parsers.items():
        if parser.get_default("func") is not None and name != "data download":
            assert "example:" in (parser.epilog or "") or "examples:" in (parser.epilog or ""), name


@pytest.mark.parametrize("cmd", sorted(SHARED))
def test_shared_argument_groups(parsers, cmd):
    assert SHARED[cmd] <= _flags(parsers[cmd]), SHARED[cmd] - _flags(parsers[cmd])


def test_shared_flags_mean_the_same_everywhere(parsers):
    for cmd, parser in parsers.items():
        for action in parser._actions:
            if "--seed" in action.option_strings:
                assert action.type is int, cmd
            if "--quiet" in action.option_strings or "--overwrite" in action.option_strings:
                assert isinstance(action, argparse._StoreTrueAction), cmd
        positionals = {a.dest: a for a in parser._actions if not a.option_strings}
        if cmd in DATASET_COMMANDS:
            assert positionals["dir"].metavar == "DATASET", cmd


# ------------------------------------------------------------------ dataset names
def test_dataset_names_resolve_in_every_command(capsys, tmp_path, monkeypatch):
    rc, out, err = _run(["data", "check", "toy-smoke", "--no-images"], capsys)
    assert rc == 0 and f"ok: {SMOKE}" in out, err
    rc, _, err = _run(["data", "check", "no-such-dataset"], capsys)
    assert rc == 2 and "neither a folder nor a registered dataset" in err and "toy" in err
    # a name registered with `data import` works wherever a dataset is read
    monkeypatch.setenv("ALIGNREC_CACHE", str(tmp_path / "cache"))
    shutil.copytree(SMOKE, tmp_path / "shop")
    rc, out, err = _run(["data", "import", str(tmp_path / "shop"), "--name", "mini"], capsys)
    assert rc == 0 and "registered 'mini'" in out, err
    rc, out, err = _run(["data", "check", "mini", "--no-images"], capsys)
    assert rc == 0 and f"ok: {tmp_path / 'shop'}" in out, err
    rc, out, err = _run(["evaluate-features", "mini", "--source", "image", "--quiet"], capsys)
    assert rc == 0 and "image" in out, err


def test_dataset_folder_resolves_names(tmp_path):
    ns = argparse.Namespace(dir="toy-smoke", quiet=True)
    assert common.dataset_folder(ns) == SMOKE
    ns.dir = str(tmp_path)
    assert common.dataset_folder(ns) == tmp_path


# ------------------------------------------------------------------ train: --seed, --device, --preset
def test_training_overrides_merge_flags_and_refuse_duplicates():
    ns = argparse.Namespace(set=["epochs=2"], seed=7, device="cpu")
    assert common.training_overrides(ns) == {"epochs": "2", "seed": 7, "device": "cpu"}
    assert common.training_overrides(ns, flags=("device",)) == {"epochs": "2", "device": "cpu"}
    ns = argparse.Namespace(set=["seed=3"], seed=7, device=None)
    with pytest.raises(ConfigError, match="given twice"):
        common.training_overrides(ns)
    assert common.preset_kw(argparse.Namespace(preset=None)) == {}
    assert common.preset_kw(argparse.Namespace(preset="none")) == {"preset": "none"}


def test_train_seed_device_preset_reach_the_run_record(capsys, tmp_path):
    run = tmp_path / "run"
    rc, out, err = _run(
        [
            "train",
            "toy-smoke",
            "--model",
            "bpr",
            "--set",
            "epochs=1",
            "--seed",
            "5",
            "--device",
            "cpu",
            "--preset",
            "none",
            "--out",
            str(run),
            "--quiet",
        ],
        capsys,
    )
    assert rc == 0, err
    record = json.loads((run / "metrics.json").read_text())
    assert record["config"]["seed"] == 5 and record["config"]["device"] == "cpu"
    assert record["preset"] is None
    rc, _, err = _run(["train", "toy-smoke", "--model", "bpr", "--seed", "5", "--set", "seed=6", "--quiet"], capsys)
    assert rc == 2 and "given twice" in err
    rc, _, err = _run(["train", "toy-smoke", "--model", "bpr", "--preset", "no-such-preset", "--quiet"], capsys)
    assert rc == 2 and "preset" in err
    # evaluate reads the run again and finds the recorded test metrics
    rc, out, err = _run(["evaluate", str(run), "--split", "both"], capsys)
    assert rc == 0, err
    test_line = next(line for line in out.splitlines() if line.strip().startswith("test"))
    assert f"recall@20 {record['test']['recall@20']:.4f}" in test_line


# ------------------------------------------------------------------ tour
def test_tour_is_a_subcommand_and_the_module_entry_delegates(monkeypatch, capsys, tmp_path):
    import alignrec_lite.tour as tour

    calls = []
    monkeypatch.setattr(tour, "run_tour", lambda *a, **kw: calls.append((a, kw)) or {})
    assert (
        cli.main(["tour", "--dataset", "toy-smoke", "--no-notebooks", "--epochs", "3", "--build-dir", str(tmp_path)])
        == 0
    )
    assert tour.main(["--no-notebooks", "--epochs", "4", "--build-dir", str(tmp_path)]) == 0
    assert [c[0][0] for c in calls] == ["toy-smoke", "toy"]
    assert [c[1] for c in calls] == [{"notebooks": False, "epochs": 3}, {"notebooks": False, "epochs": 4}]
    rc, _, err = _run(["tour", "--epochs", "0"], capsys)
    assert rc == 2 and "--epochs" in err


def test_write_table_wants_csv(tmp_path):
    import pandas as pd

    with pytest.raises(ConfigError, match="csv"):
        common.write_table(pd.DataFrame({"a": [1]}), str(tmp_path / "t.txt"))
    common.write_table(pd.DataFrame({"a": [1]}), str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a", "1"]
    common.write_table(pd.DataFrame({"a": [1]}), None)  # no --out: nothing written


def test_module_entry_points(tmp_path):
    import subprocess
    import sys

    for module in ("alignrec_lite", "alignrec_lite.cli"):
        r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "tour" in r.stdout, r.stderr
    assert Path(cli.__file__).parent.name == "cli"


# ------------------------------------------------------------------ whole journeys
def test_cli_build_check_train_recommend(tmp_path, capsys):
    data = tmp_path / "toy"
    assert main(["data", "build", "toy", "--out", str(data), "--size", "smoke", "--quiet"]) == 0
    assert main(["data", "check", str(data)]) == 0
    assert "users" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", str(data), "--model", "lightgcn", "--set", "epochs=3", "--out", str(run), "--quiet"]) == 0
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["model"] == "lightgcn" and rec["epochs_run"] == 3 and 0 <= rec["test"]["recall@20"] <= 1
    assert (run / "best.pt").exists() and (run / "config.json").exists()
    out = tmp_path / "top.csv"
    assert main(["recommend", str(run), "--k", "5", "--out", str(out), "--quiet"]) == 0
    top = pd.read_csv(out)
    ds = load_mmrec(data)
    assert len(top) == 5 * ds.n_users and set(top["rank"]) == {1, 2, 3, 4, 5}
    train_pairs = {tuple(p) for p in ds.train.tolist()}
    assert not any((u, i) in train_pairs for u, i in zip(top["userID"], top["itemID"]))
    assert top["item"].iloc[0] == ds.item_raw_ids[top["itemID"].iloc[0]]


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alignrec-lite: error:") and "Fix:" in err and len(err.splitlines()) == 1
    assert main(["train", str(toy_path("smoke")), "--model", "lightgcn", "--set", "epochs=x"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_cli_longtail_new_user_timing_coldstart(tmp_path, capsys):
    from alignrec_lite.cli import main
    from alignrec_lite.data.toy import toy_path

    shop = str(toy_path("smoke"))
    run = tmp_path / "run"
    assert main(["train", shop, "--model", "bpr", "--set", "epochs=2", "--out", str(run), "--quiet"]) == 0
    assert main(["longtail", str(run), "--buckets", "4", "--out", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    assert "q4" in out and "gini@20" in out and "popularity" in out
    assert len(pd.read_csv(tmp_path / "b.csv")) == 2 * 4
    assert main(["new-user", str(run), "--items", "item-0001", "item-0002", "--k", "3"]) == 0
    assert "item-0001" not in capsys.readouterr().out.split("score", 1)[1]
    assert main(["new-user", str(run), "--items", "nope"]) == 2
    assert "not in the dataset" in capsys.readouterr().err
    assert main(["timing", str(run), "--n-single", "3"]) == 0
    assert "single_user_ms" in capsys.readouterr().out
    assert (
        main(
            [
                "coldstart",
                shop,
                "--kind",
                "users",
                "--models",
                "bpr",
                "--set",
                "epochs=1",
                "--quiet",
                "--out",
                str(tmp_path / "u.csv"),
            ]
        )
        == 0
    )
    assert "popularity" in capsys.readouterr().out
    assert set(pd.read_csv(tmp_path / "u.csv")["given"]) == {0, 1, 2, 3, 5}
    assert main(["coldstart", shop, "--kind", "items", "--models", "bpr", "--set", "epochs=1", "--quiet"]) == 0
    assert "content kNN" in capsys.readouterr().out
