"""Reliability, round two (issue 16): validation at the door, readers that cannot be fooled,
provenance, no lost results, no warning noise.

Each case feeds one bad input to one entry point and checks that

* the kit raises its own error type (through the command's door checks and handler);
* ``main`` prints exactly one line on stderr, starting ``alignrec-lite: error:``, and
  exits with status 2 (no traceback, no numpy/torch warning around it);
* the message names the file, flag or key and says how to fix it (``Fix:``);
* nothing on disk changed: the case's folder is the same, hidden files included.

``python tests/test_reliability_round2.py`` prints the table in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from reliability_cases import SMOKE, Case, Cases, Cli, free_memory, run_cli, snapshot
from reliability_cases import Ctx as BaseCtx

from alignrec_lite.cli import build_parser, check_args
from alignrec_lite.errors import AlignRecError, CheckpointError, ConfigError, DataError


# ---------------------------------------------------------------------- machinery
class Ctx(BaseCtx):
    """A case's own folder, copies of the smoke data and of a finished run trained on it."""

    def __init__(self, tmp: Path, root: Path) -> None:
        super().__init__(tmp, root / "run")
        self.root = root

    def own_run(self) -> tuple[Path, Path]:
        """A copy of the run *and* of its data, the run pointing at the copy: ``(data, run)``."""
        data = self.smoke("data")
        run = self.run()
        for name in ("metrics.json", "config.json"):
            rec = json.loads((run / name).read_text())
            rec["dataset_path"] = str(data.resolve())
            (run / name).write_text(json.dumps(rec))
        return data, run


CASES = Cases()
case = CASES.case


def run_case(c: Case, ctx: Ctx) -> str:
    """Run one case, check everything, return the message the user sees."""
    action = c.build(ctx)
    before = snapshot(ctx.tmp)
    if isinstance(action, Cli):
        if c.error is not None:
            args = build_parser().parse_args(action.argv)
            with pytest.raises(AlignRecError) as info, free_memory(action.free_memory):
                check_args(args)
                args.func(args)
            assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
        with free_memory(action.free_memory):
            rc, _, text = run_cli(action.argv)
        assert rc == 2, text
        lines = text.strip().splitlines()
        assert len(lines) == 1, text  # one line: no usage block, no warning, no traceback
        assert lines[0].startswith("alignrec-lite"), text
        message = lines[0]
    else:
        with pytest.raises(AlignRecError) as info:
            action()
        assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
        assert "\n" not in message
    assert "Fix: " in message and len(message.split("Fix: ", 1)[1]) > 5, message
    for part in c.where:
        assert part in message, f"{part!r} not in {message!r}"
    assert snapshot(ctx.tmp) == before, "the failed call wrote or changed files"
    return message


def _mkfifo(path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _rewrite_mapping(path: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    edit(df)
    df.to_csv(path, sep="\t", index=False, lineterminator="\n")


def _relabel_one_row(folder: Path) -> None:
    """Swap one user's valid and test row: still a valid file, but other data."""
    inter = folder / "toy.inter"
    df = pd.read_csv(inter, sep="\t")
    u = int(df["userID"].iloc[0])
    v = df.index[(df["userID"] == u) & (df["x_label"] == 1)][0]
    t = df.index[(df["userID"] == u) & (df["x_label"] == 2)][0]
    df.loc[v, "x_label"], df.loc[t, "x_label"] = 2, 1
    df.to_csv(inter, sep="\t", index=False, lineterminator="\n")


# ---------------------------------------------------------------------- output paths, checked before any work
@case(
    "train_out_parent_is_file",
    "train --out",
    "the run folder's parent is a file (was a mkdir traceback)",
    ConfigError,
    "--out",
    "notes.txt",
    "is a file",
)
def _(ctx):
    (ctx.tmp / "notes.txt").write_text("x\n")
    return Cli(
        [
            "train",
            str(SMOKE),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=1",
            "--out",
            str(ctx.tmp / "notes.txt" / "run"),
        ]
    )


@case(
    "recommend_out_parent_is_file",
    "recommend --out",
    "the export's parent is a file (was os.replace traceback)",
    ConfigError,
    "--out",
    "notes.txt",
)
def _(ctx):
    (ctx.tmp / "notes.txt").write_text("x\n")
    return Cli(["recommend", str(ctx.run()), "--out", str(ctx.tmp / "notes.txt" / "top.csv"), "--quiet"])


@case(
    "longtail_out_is_folder",
    "longtail --out",
    "--out is an existing folder (was a traceback after the work)",
    ConfigError,
    "--out",
    "buckets.csv",
)
def _(ctx):
    (ctx.tmp / "buckets.csv").mkdir()
    return Cli(["longtail", str(ctx.run()), "--out", str(ctx.tmp / "buckets.csv")])


@case(
    "coldstart_out_is_folder",
    "coldstart --out",
    "--out is an existing folder (was a traceback after the whole experiment)",
    ConfigError,
    "--out",
    "table.csv",
)
def _(ctx):
    (ctx.tmp / "table.csv").mkdir()
    return Cli(["coldstart", str(SMOKE), "--out", str(ctx.tmp / "table.csv"), "--quiet", "--set", "epochs=1"])


@case(
    "coldstart_out_suffix",
    "coldstart --out",
    "--out table.txt (checked only after the experiment)",
    ConfigError,
    "--out",
    ".csv",
)
def _(ctx):
    return Cli(["coldstart", str(SMOKE), "--out", str(ctx.tmp / "table.txt"), "--quiet", "--set", "epochs=1"])


@case("search_out_is_file", "search --out", "--out names an existing file", ConfigError, "--out", "notes.txt")
def _(ctx):
    (ctx.tmp / "notes.txt").write_text("x\n")
    return Cli(
        [
            "search",
            str(SMOKE),
            "--model",
            "bpr",
            "--grid",
            "learning_rate=0.01",
            "--out",
            str(ctx.tmp / "notes.txt"),
            "--quiet",
        ]
    )


@case(
    "build_out_exists",
    "data build toy --out",
    "an existing folder without --overwrite",
    ConfigError,
    "--out",
    "--overwrite",
)
def _(ctx):
    (ctx.tmp / "toy").mkdir()
    (ctx.tmp / "toy" / "keep.txt").write_text("mine\n")
    return Cli(["data", "build", "toy", "--size", "smoke", "--out", str(ctx.tmp / "toy"), "--quiet"])


@case(
    "import_registry_is_folder",
    "data import --registry",
    "--registry names a folder (was a traceback)",
    ConfigError,
    "--registry",
    "folder",
)
def _(ctx):
    (ctx.tmp / "reg.json").mkdir()
    return Cli(["data", "import", str(SMOKE), "--registry", str(ctx.tmp / "reg.json")])


# ---------------------------------------------------------------------- readers
@case(
    "mapping_is_folder",
    "load_mmrec",
    "a folder where i_id_mapping.csv should be (was a traceback)",
    DataError,
    "i_id_mapping.csv",
    "folder",
)
def _(ctx):
    data = ctx.smoke()
    (data / "i_id_mapping.csv").unlink()
    (data / "i_id_mapping.csv").mkdir()
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "items_is_folder",
    "load_mmrec",
    "a folder where items.csv should be (was a traceback)",
    DataError,
    "items.csv",
    "folder",
)
def _(ctx):
    data = ctx.smoke()
    (data / "items.csv").unlink()
    (data / "items.csv").mkdir()
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "mapping_dangling_symlink",
    "load_mmrec",
    'a dangling symlink for i_id_mapping.csv (was loaded as "absent": internal IDs in the export)',
    DataError,
    "i_id_mapping.csv",
    "dangling",
)
def _(ctx):
    data = ctx.smoke()
    (data / "i_id_mapping.csv").unlink()
    (data / "i_id_mapping.csv").symlink_to(ctx.tmp / "gone.csv")
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "feature_dangling_symlink",
    "load_mmrec",
    "a dangling symlink for image_feat.npy (AlignRec quietly trained on text only)",
    DataError,
    "image_feat.npy",
    "dangling",
)
def _(ctx):
    data = ctx.smoke()
    (data / "image_feat.npy").unlink()
    (data / "image_feat.npy").symlink_to(ctx.tmp / "gone.npy")
    return Cli(["train", str(data), "--model", "alignrec", "--quiet", "--set", "epochs=1"])


@case("feature_symlink_loop", "load_mmrec", "text_feat.npy a symlink to itself", DataError, "text_feat.npy", "loops")
def _(ctx):
    data = ctx.smoke()
    (data / "text_feat.npy").unlink()
    (data / "text_feat.npy").symlink_to(data / "text_feat.npy")
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "feature_fifo",
    "load_mmrec",
    "a FIFO where image_feat.npy should be (blocked forever)",
    DataError,
    "image_feat.npy",
    "FIFO",
)
def _(ctx):
    data = ctx.smoke()
    _mkfifo(data / "image_feat.npy")
    return Cli(["data", "check", str(data), "--no-images"])


@case("inter_fifo", "load_mmrec", "a FIFO as the .inter file", DataError, "toy.inter", "FIFO")
def _(ctx):
    data = ctx.smoke()
    _mkfifo(data / "toy.inter")
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "mapping_device", "load_mmrec", "u_id_mapping.csv a symlink to /dev/zero", DataError, "u_id_mapping.csv", "device"
)
def _(ctx):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    data = ctx.smoke()
    (data / "u_id_mapping.csv").unlink()
    (data / "u_id_mapping.csv").symlink_to("/dev/zero")
    return Cli(["data", "check", str(data), "--no-images"])


@case("image_fifo", "data check", "a FIFO as an item image (PIL blocked)", DataError, "images", "FIFO")
def _(ctx):
    data = ctx.smoke()
    rel = pd.read_csv(data / "items.csv")["image"].iloc[3]
    _mkfifo(data / rel)
    return Cli(["data", "check", str(data)])


@case(
    "mapping_unreadable",
    "load_mmrec",
    "i_id_mapping.csv without read permission",
    DataError,
    "i_id_mapping.csv",
    "permission",
)
def _(ctx):
    if os.geteuid() == 0:
        pytest.skip("root reads every file: permissions cannot be tested as root")
    data = ctx.smoke()
    (data / "i_id_mapping.csv").chmod(0)
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "mapping_duplicate_raw_id",
    "load_mmrec",
    "two itemIDs sharing one raw ID (both labelled alike in the export)",
    DataError,
    "i_id_mapping.csv",
    "line 3",
    "item-0001",
)
def _(ctx):
    data = ctx.smoke()

    def dup(df):
        df.iloc[1, 0] = df.iloc[0, 0]

    _rewrite_mapping(data / "i_id_mapping.csv", dup)
    return Cli(["data", "check", str(data), "--no-images"])


@case(
    "registry_entry_wrong_shape",
    "resolve_dataset",
    "a registry entry that is a list (was TypeError)",
    DataError,
    "reg.json",
    "baby",
)
def _(ctx):
    from alignrec_lite.data.catalog import resolve_dataset

    (ctx.tmp / "reg.json").write_text(json.dumps({"datasets": {"baby": [1, 2]}}))
    return lambda: resolve_dataset("baby", registry=ctx.tmp / "reg.json")


@case(
    "valid_empty",
    "train",
    'a dataset with no valid rows (trained with "best epoch 0" on zeros)',
    DataError,
    "valid",
    "x_label 1",
)
def _(ctx):
    data = ctx.smoke()
    df = pd.read_csv(data / "toy.inter", sep="\t")
    df.loc[df["x_label"] == 1, "x_label"] = 0
    df.to_csv(data / "toy.inter", sep="\t", index=False, lineterminator="\n")
    return Cli(["train", str(data), "--model", "bpr", "--quiet", "--set", "epochs=1", "--out", str(ctx.tmp / "r")])


@case(
    "test_empty",
    "train",
    "a dataset with no test rows (reported test recall 0.0000 as measured)",
    DataError,
    "test",
    "x_label 2",
)
def _(ctx):
    data = ctx.smoke()
    df = pd.read_csv(data / "toy.inter", sep="\t")
    df = df[df["x_label"] != 2]
    df.to_csv(data / "toy.inter", sep="\t", index=False, lineterminator="\n")
    return Cli(["train", str(data), "--model", "bpr", "--quiet", "--set", "epochs=1"])


@case(
    "feature_float64_huge",
    "load_mmrec",
    'a float64 feature holding 1e300 (a RuntimeWarning, then "NaN or inf")',
    DataError,
    "image_feat.npy",
    "float32",
)
def _(ctx):
    data = ctx.smoke()
    arr = np.load(data / "image_feat.npy").astype(np.float64)
    arr[4, 2] = 1e300
    np.save(data / "image_feat.npy", arr)
    return Cli(["data", "check", str(data), "--no-images"])


# ---------------------------------------------------------------------- numbers at the door
@case(
    "features_batch_size_negative",
    "features --batch-size",
    "-1 (replaced good features with NaN images)",
    ConfigError,
    "--batch-size",
)
def _(ctx):
    data = ctx.smoke()
    return Cli(["features", str(data), "--batch-size", "-1", "--quiet"])


@case("features_batch_size_zero", "features --batch-size", "0 (was a traceback)", ConfigError, "--batch-size")
def _(ctx):
    return Cli(["features", str(ctx.smoke()), "--batch-size", "0", "--quiet"])


@case("longtail_k_zero", "longtail --k", "0 (was a traceback)", ConfigError, "--k")
def _(ctx):
    return Cli(["longtail", str(ctx.run()), "--k", "0"])


@case("timing_batch_users_zero", "timing --batch-users", "0 (was a traceback)", ConfigError, "--batch-users")
def _(ctx):
    return Cli(["timing", str(ctx.run()), "--batch-users", "0"])


@case("timing_n_single_zero", "timing --n-single", "0 (printed NaN)", ConfigError, "--n-single")
def _(ctx):
    return Cli(["timing", str(ctx.run()), "--n-single", "0"])


@case(
    "shrink_nan",
    "evaluate-features --shrink",
    "nan (a wrong item-CF score with exit 0)",
    ConfigError,
    "--shrink",
    "finite",
)
def _(ctx):
    return Cli(["evaluate-features", str(SMOKE), "--shrink", "nan", "--quiet"])


@case("coldstart_share_one", "coldstart --share", "1.0 (nothing left to train on)", ConfigError, "--share")
def _(ctx):
    return Cli(["coldstart", str(SMOKE), "--share", "1", "--quiet"])


@case("ica_lr_inf", "pretrain-ica --lr", "inf", ConfigError, "--lr")
def _(ctx):
    return Cli(["pretrain-ica", str(ctx.smoke()), "--lr", "inf", "--quiet"])


@case("download_timeout_negative", "data download --timeout", "-1", ConfigError, "--timeout")
def _(ctx):
    return Cli(["data", "download", "movielens-small", "--offline", "--timeout", "-1", "--cache", str(ctx.tmp)])


@case(
    "cli_text_for_number",
    "recommend --k",
    "--k ten: argparse's usage block is now one line",
    None,
    "--k",
    "invalid int value",
    "--help",
)
def _(ctx):
    return Cli(["recommend", str(ctx.run()), "--k", "ten", "--out", str(ctx.tmp / "top.csv")])


@case("set_n_layers_huge", "train --set", "n_layers=1000000 (grew past 17 GB)", ConfigError, "n_layers", "64")
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "lightgcn", "--quiet", "--set", "n_layers=1000000"])


@case(
    "set_embedding_size_huge",
    "train --set",
    "embedding_size=1e12 (an allocator traceback)",
    ConfigError,
    "embedding_size",
)
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "bpr", "--quiet", "--set", "embedding_size=1e12"])


@case(
    "set_n_layers_negative",
    "train --set",
    "n_layers=-1 (refused, but the message blamed the learning rate)",
    ConfigError,
    "n_layers",
)
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "lightgcn", "--quiet", "--set", "n_layers=-1"])


@case("set_reg_weight_negative", "train --set", "reg_weight=-1 (was accepted)", ConfigError, "reg_weight")
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "bpr", "--quiet", "--set", "reg_weight=-1"])


@case("search_grid_huge", "search --grid", "embedding_size=1e9 in one grid point", ConfigError, "embedding_size")
def _(ctx):
    return Cli(
        [
            "search",
            str(SMOKE),
            "--model",
            "bpr",
            "--grid",
            "embedding_size=8,1e9",
            "--out",
            str(ctx.tmp / "s"),
            "--quiet",
        ]
    )


# ---------------------------------------------------------------------- provenance
@case(
    "recommend_data_changed",
    "recommend RUN",
    "the mapping rebuilt at the same path (served old weights against new IDs)",
    CheckpointError,
    "i_id_mapping.csv",
    "retrain",
)
def _(ctx):
    data, run = ctx.own_run()

    def shuffle(df):
        df.iloc[:, 0] = df.iloc[::-1, 0].to_numpy()

    _rewrite_mapping(data / "i_id_mapping.csv", shuffle)
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "longtail_data_changed",
    "longtail RUN",
    "the .inter file re-split after training",
    CheckpointError,
    ".inter",
    "data changed",
)
def _(ctx):
    data, run = ctx.own_run()
    _relabel_one_row(data)
    return Cli(["longtail", str(run)])


@case("timing_data_changed", "timing RUN", "a feature file added after training", CheckpointError, "mm_feat.npy")
def _(ctx):
    data, run = ctx.own_run()
    np.save(data / "mm_feat.npy", np.ones((120, 4), dtype=np.float32))
    return Cli(["timing", str(run)])


@case(
    "new_user_data_changed",
    "new-user RUN",
    "image features re-extracted after training",
    CheckpointError,
    "image_feat.npy",
)
def _(ctx):
    data, run = ctx.own_run()
    arr = np.load(data / "image_feat.npy")
    np.save(data / "image_feat.npy", arr[::-1].copy())
    return Cli(["new-user", str(run), "--items", "item-0001"])


@case(
    "resume_changed_reg_weight",
    "train --resume",
    "reg_weight changed (continued as if used from epoch 1)",
    CheckpointError,
    "last.pt",
    "reg_weight",
)
def _(ctx):
    return Cli(
        [
            "train",
            str(SMOKE),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--set",
            "embedding_size=64",
            "--set",
            "reg_weight=0.5",
            "--out",
            str(ctx.run()),
            "--resume",
        ]
    )


@case(
    "resume_changed_valid_metric",
    "train --resume",
    "valid_metric changed (best epoch chosen across two metrics)",
    CheckpointError,
    "last.pt",
    "valid_metric",
)
def _(ctx):
    return Cli(
        [
            "train",
            str(SMOKE),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--set",
            "embedding_size=64",
            "--set",
            "valid_metric=ndcg@20",
            "--out",
            str(ctx.run()),
            "--resume",
        ]
    )


@case(
    "resume_changed_mask_valid",
    "train --resume",
    "mask_valid_at_test changed",
    CheckpointError,
    "last.pt",
    "mask_valid_at_test",
)
def _(ctx):
    return Cli(
        [
            "train",
            str(SMOKE),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--set",
            "embedding_size=64",
            "--set",
            "mask_valid_at_test=true",
            "--out",
            str(ctx.run()),
            "--resume",
        ]
    )


@case(
    "resume_data_changed",
    "train --resume",
    "the data changed under a run (same sizes)",
    CheckpointError,
    "last.pt",
    "data changed",
    ".inter",
)
def _(ctx):
    data, run = ctx.own_run()
    _relabel_one_row(data)
    return Cli(
        [
            "train",
            str(data),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--set",
            "embedding_size=64",
            "--out",
            str(run),
            "--resume",
        ]
    )


@case(
    "search_out_other_dataset",
    "search --out",
    "--out reused with another dataset's trials (reported its numbers)",
    CheckpointError,
    "000.json",
    "--out",
)
def _(ctx):
    trials = ctx.tmp / "s" / "trials"
    trials.mkdir(parents=True)
    rec = {
        "trial": 0,
        "model": "bpr",
        "dataset": "baby",
        "params": {"learning_rate": 0.01},
        "base_overrides": {},
        "valid": {"recall@20": 0.9},
        "test": {"recall@20": 0.9},
        "best_epoch": 1,
        "seconds": 1.0,
    }
    (trials / "000.json").write_text(json.dumps(rec))
    return Cli(
        ["search", str(SMOKE), "--model", "bpr", "--grid", "learning_rate=0.01", "--out", str(ctx.tmp / "s"), "--quiet"]
    )


@case(
    "search_trial_corrupt",
    "search --out",
    "a trial record holding a list (was a traceback)",
    CheckpointError,
    "000.json",
    "delete",
)
def _(ctx):
    trials = ctx.tmp / "s" / "trials"
    trials.mkdir(parents=True)
    (trials / "000.json").write_text("[]\n")
    return Cli(
        ["search", str(SMOKE), "--model", "bpr", "--grid", "learning_rate=0.01", "--out", str(ctx.tmp / "s"), "--quiet"]
    )


# ---------------------------------------------------------------------- no lost results
@case(
    "train_out_locked",
    "train --out",
    "a second writer to the same --out (both reported success)",
    CheckpointError,
    ".run.lock",
    "pid",
)
def _(ctx):
    run = ctx.run()
    (ctx.tmp / ".run.lock").write_text(f"{os.getppid()} {__import__('socket').gethostname()}\n")
    return Cli(
        ["train", str(SMOKE), "--model", "bpr", "--quiet", "--set", "epochs=1", "--out", str(run), "--overwrite"]
    )


@case(
    "recommend_nan_weights",
    "recommend RUN",
    "a best.pt whose weights are NaN (wrote an empty CSV)",
    CheckpointError,
    "best.pt",
    "NaN",
)
def _(ctx):
    run = ctx.run()
    w = torch.load(run / "best.pt", weights_only=True)
    torch.save(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in w.items()}, run / "best.pt"
    )
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "recommend_raw_pickle",
    "recommend RUN",
    "a raw-pickle best.pt (torch printed warnings before the error)",
    CheckpointError,
    "best.pt",
)
def _(ctx):
    run = ctx.run()
    w = torch.load(run / "best.pt", weights_only=True)
    torch.save(w, run / "best.pt", _use_new_zipfile_serialization=False)
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:-40])
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case("resume_and_overwrite", "train", "--resume together with --overwrite", ConfigError, "--overwrite")
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "bpr", "--quiet", "--out", str(ctx.run()), "--resume", "--overwrite"])


# ---------------------------------------------------------------------- the Python API
def _net_and_data(ctx):
    from alignrec_lite.runs import load_run

    net, _, ds = load_run(ctx.root / "run")
    return net, ds


@case("api_evaluate_train_split", "evaluate", "split='train' (returned 0.0)", ConfigError, "split", "valid")
def _(ctx):
    from alignrec_lite.evaluate import evaluate

    net, ds = _net_and_data(ctx)
    return lambda: evaluate(net.full_sort_scores, ds, split="train")


@case("api_evaluate_ks_zero", "evaluate", "ks=(0,) (was IndexError)", ConfigError, "ks")
def _(ctx):
    from alignrec_lite.evaluate import evaluate

    net, ds = _net_and_data(ctx)
    return lambda: evaluate(net.full_sort_scores, ds, ks=(0,))


@case("api_evaluate_batch_users_zero", "evaluate", "batch_users=0 (was ValueError)", ConfigError, "batch_users")
def _(ctx):
    from alignrec_lite.evaluate import evaluate

    net, ds = _net_and_data(ctx)
    return lambda: evaluate(net.full_sort_scores, ds, batch_users=0)


@case(
    "api_export_user_negative",
    "export_topk",
    "users=[-1] (wrote the last user's list labelled -1)",
    ConfigError,
    "users",
    "-1",
)
def _(ctx):
    from alignrec_lite.serve import export_topk

    net, ds = _net_and_data(ctx)
    return lambda: export_topk(net, ds, ctx.tmp / "top.csv", users=[-1], progress=False)


@case("api_export_k_fraction", "export_topk", "k=2.5 (was TypeError)", ConfigError, "k", "whole number")
def _(ctx):
    from alignrec_lite.serve import export_topk

    net, ds = _net_and_data(ctx)
    return lambda: export_topk(net, ds, ctx.tmp / "top.csv", k=2.5, progress=False)


@case("api_train_not_a_dataset", "train", "a folder path instead of a RecDataset", ConfigError, "dataset", "load_mmrec")
def _(ctx):
    from alignrec_lite.train import train

    return lambda: train(str(SMOKE), "bpr", {"epochs": 1}, progress=False)


@case("api_serving_n_single_zero", "measure_serving", "n_single=0 (NaN latency)", ConfigError, "--n-single")
def _(ctx):
    from alignrec_lite.serve import measure_serving

    net, ds = _net_and_data(ctx)
    return lambda: measure_serving(net, ds, n_single=0)


@case("api_long_tail_k_zero", "long_tail_report", "k=0", ConfigError, "ks")
def _(ctx):
    from alignrec_lite.longtail import long_tail_report

    net, ds = _net_and_data(ctx)
    return lambda: long_tail_report({"m": net.full_sort_scores}, ds, k=0)


@case("api_itemknn_shrink_nan", "knn_similarity", "shrink=nan", ConfigError, "shrink", "finite")
def _(ctx):
    from alignrec_lite.scorers import knn_similarity

    return lambda: knn_similarity(np.ones((5, 3), dtype=np.float32), 2, shrink=float("nan"))


@case("api_extract_features_batch_negative", "extract_features", "batch_size=-1", ConfigError, "--batch-size")
def _(ctx):
    from alignrec_lite.encoders import extract_features

    data = ctx.smoke()
    return lambda: extract_features(data, "tiny-cnn", None, batch_size=-1, progress=False)


# ---------------------------------------------------------------------- memory estimates at the door (round two, gaps)
TINY = 1 << 20  # a machine with 1 MiB free: every estimate must refuse, before any work


@case(
    "features_memory",
    "features",
    "not enough memory for a batch of images and the feature matrix (ran until the allocator failed)",
    ConfigError,
    "needs about",
    "MiB",
    "free (psutil)",
)
def _(ctx):
    shop = ctx.smoke()
    cmd = ["features", str(shop), "--image-encoder", "tiny-cnn", "--text-encoder", "none", "--overwrite", "--quiet"]
    return Cli(cmd, free_memory=TINY)


@case(
    "evaluate_features_memory",
    "evaluate-features",
    "not enough memory for the item-kNN and scoring blocks (ran until the allocator failed)",
    ConfigError,
    "evaluating 3 feature source(s)",
    "MiB",
    "free",
)
def _(ctx):
    return Cli(["evaluate-features", str(ctx.smoke()), "--quiet"], free_memory=TINY)


@case(
    "pretrain_ica_memory",
    "pretrain-ica",
    "not enough memory for the items' pixels and a training batch (ran until the allocator failed)",
    ConfigError,
    "needs about",
    "MiB",
    "free (psutil)",
)
def _(ctx):
    return Cli(["pretrain-ica", str(ctx.smoke()), "--epochs", "1", "--quiet"], free_memory=TINY)


@case(
    "pretrain_multiway_memory",
    "pretrain-ica --encoder multiway",
    "not enough memory for the items' pixels, the codebook fit and a batch (ran until the allocator failed)",
    ConfigError,
    "needs about",
    "MiB",
    "free (psutil)",
)
def _(ctx):
    return Cli(
        ["pretrain-ica", str(ctx.smoke()), "--encoder", "multiway", "--epochs", "1", "--quiet"], free_memory=TINY
    )


@case(
    "api_evaluate_features_memory",
    "evaluate_features",
    "not enough memory (the Python API checks the same estimate)",
    ConfigError,
    "evaluating 1 feature source(s)",
    "free",
)
def _(ctx):
    from alignrec_lite.feature_eval import evaluate_features

    shop = ctx.smoke()

    def call():
        with free_memory(TINY):
            evaluate_features(shop, sources=["image"])

    return call


# ---------------------------------------------------------------------- the Python API, round two gaps
@case(
    "api_train_out_locked",
    "train(out=...)",
    "a second Python training into a folder another process is writing (the two interleaved their checkpoints)",
    CheckpointError,
    ".run.lock",
    "pid",
)
def _(ctx):
    import socket

    from alignrec_lite.data.mmrec import load_mmrec
    from alignrec_lite.train import train

    (ctx.tmp / ".run.lock").write_text(f"{os.getppid()} {socket.gethostname()}\n")  # a live process
    ds = load_mmrec(SMOKE)
    return lambda: train(ds, "bpr", {"epochs": 1}, out=ctx.tmp / "run", progress=False)


def _item_vectors(ctx):
    net, ds = _net_and_data(ctx)
    from alignrec_lite.serve import final_vectors

    return net, ds, final_vectors(net)[1]


@case("api_fold_in_steps_zero", "fold_in_users", "steps=0 (returned zero vectors)", ConfigError, "steps", "50")
def _(ctx):
    from alignrec_lite.serve import fold_in_users

    _, _, items = _item_vectors(ctx)
    return lambda: fold_in_users(items, [np.array([0, 1])], "gradient", steps=0)


@case("api_fold_in_lr_nan", "fold_in_users", "lr=nan (torch's ValueError)", ConfigError, "lr", "finite")
def _(ctx):
    from alignrec_lite.serve import fold_in_users

    _, _, items = _item_vectors(ctx)
    return lambda: fold_in_users(items, [np.array([0, 1])], "gradient", lr=float("nan"))


@case(
    "api_fold_in_item_out_of_range",
    "fold_in_users",
    "an itemID past the catalogue (IndexError)",
    ConfigError,
    "given[0]",
    "itemIDs are 0..",
)
def _(ctx):
    from alignrec_lite.serve import fold_in_users

    _, ds, items = _item_vectors(ctx)
    return lambda: fold_in_users(items, [np.array([0, ds.n_items])], "mean")


@case(
    "api_fold_in_item_fraction",
    "fold_in_users",
    "itemID 1.5 (silently read as item 1)",
    ConfigError,
    "given[0]",
    "integer",
)
def _(ctx):
    from alignrec_lite.serve import fold_in_users

    _, _, items = _item_vectors(ctx)
    return lambda: fold_in_users(items, [np.array([0.0, 1.5])], "mean")


@case(
    "api_score_new_users_item_negative",
    "score_new_users",
    "itemID -1 in given (masked the last item instead)",
    ConfigError,
    "given[0]",
    "-1",
)
def _(ctx):
    import torch as _torch

    from alignrec_lite.serve import score_new_users

    _, ds, items = _item_vectors(ctx)
    users = _torch.zeros(1, items.shape[1])
    return lambda: score_new_users(users, items, [np.array([-1])], ds.item_popularity("train"))


@case(
    "api_recommend_new_user_steps_negative",
    "recommend_new_user",
    "method='gradient', steps=-5 (zero vector: an arbitrary ranking)",
    ConfigError,
    "steps",
)
def _(ctx):
    from alignrec_lite.serve import recommend_new_user

    net, ds = _net_and_data(ctx)
    return lambda: recommend_new_user(net, ds, [ds.item_raw_ids[0]], method="gradient", steps=-5)


@case(
    "api_recommend_new_user_unknown_option",
    "recommend_new_user",
    "a misspelt fold-in option step=5 (TypeError)",
    ConfigError,
    "step",
    "steps",
)
def _(ctx):
    from alignrec_lite.serve import recommend_new_user

    net, ds = _net_and_data(ctx)
    return lambda: recommend_new_user(net, ds, [ds.item_raw_ids[0]], method="gradient", step=5)


@case(
    "api_recommend_new_user_itemid_text",
    "recommend_new_user",
    "raw_ids=False with the text 'x3' among the itemIDs (ValueError)",
    ConfigError,
    "items",
    "integer",
)
def _(ctx):
    from alignrec_lite.serve import recommend_new_user

    net, ds = _net_and_data(ctx)
    return lambda: recommend_new_user(net, ds, [0, "x3"], raw_ids=False)


# ---------------------------------------------------------------------- running the cases
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished one-epoch BPR run on a copy of the smoke data: ``root/shop`` and ``root/run``."""
    root = tmp_path_factory.mktemp("round2")
    shutil.copytree(SMOKE, root / "shop")
    rc, _, err = run_cli(
        [
            "train",
            str(root / "shop"),
            "--model",
            "bpr",
            "--set",
            "epochs=1",
            "--set",
            "embedding_size=64",
            "--out",
            str(root / "run"),
            "--quiet",
        ]
    )
    assert rc == 0, err
    return root


@pytest.fixture()
def no_hang():
    """A reader that blocks (a FIFO) fails the test instead of hanging it."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(*_):
        raise TimeoutError("the command blocked")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_refused_cleanly(c: Case, tmp_path: Path, finished: Path, no_hang) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    run_case(c, Ctx(folder, finished))


def test_cases_cover_every_cause() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 50


def test_docs_table_lists_every_case() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"test_refused_cleanly[{c.id}]" not in doc]
    assert not missing, f"not in docs/RELIABILITY.md: {missing}"


# ---------------------------------------------------------------------- the good paths still work
def test_good_run_records_fingerprint_and_serves(finished: Path, tmp_path: Path) -> None:
    rec = json.loads((finished / "run" / "metrics.json").read_text())
    assert set(rec["data_fingerprint"]) >= {"interactions", "item_ids", "user_ids", "image_features"}
    assert {"reg_weight", "valid_metric", "mask_valid_at_test", "seed"} <= set(rec["config"])  # the full config
    rc, out, err = run_cli(
        ["recommend", str(finished / "run"), "--k", "5", "--out", str(tmp_path / "t.csv"), "--quiet"]
    )
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "t.csv")
    assert len(df) == 5 * 150 and df["item"].str.startswith("item-").all()


def test_resume_may_extend_epochs(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished / "run", run)
    rc, _, err = run_cli(
        [
            "train",
            str(finished / "shop"),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--set",
            "embedding_size=64",
            "--set",
            "device=cpu",
            "--out",
            str(run),
            "--resume",
        ]
    )
    assert rc == 0, err
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2


def test_stale_lock_of_dead_process_is_taken_over(finished: Path, tmp_path: Path) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    (tmp_path / ".run.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    rc, _, err = run_cli(
        ["train", str(finished / "shop"), "--model", "bpr", "--quiet", "--set", "epochs=1", "--out", str(run)]
    )
    assert rc == 0, err
    assert (run / "metrics.json").exists() and not (tmp_path / ".run.lock").exists()


def test_overwrite_interrupted_keeps_the_old_run(finished: Path, tmp_path: Path, monkeypatch) -> None:
    """--overwrite builds beside the old run: an interruption leaves the old run whole and serving."""
    import alignrec_lite.train as train_mod

    run = tmp_path / "run"
    shutil.copytree(finished / "run", run)
    before = snapshot(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_checkpoint", boom)
    rc, _, err = run_cli(
        [
            "train",
            str(finished / "shop"),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--out",
            str(run),
            "--overwrite",
        ]
    )
    assert rc == 130, err
    assert snapshot(tmp_path) == before  # old run untouched, no staging folder, no lock left
    monkeypatch.undo()
    rc, _, err = run_cli(
        [
            "train",
            str(finished / "shop"),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=2",
            "--out",
            str(run),
            "--overwrite",
        ]
    )
    assert rc == 0, err
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_killed_overwrite_swap_is_repaired(tmp_path: Path) -> None:
    """A kill between the two renames of the swap: the next command on the folder restores the old run."""
    from alignrec_lite.files import out_lock

    old = tmp_path / ".run.old-12345"
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    (tmp_path / ".run.new-12345").mkdir()
    with out_lock(tmp_path / "run"):
        pass
    assert (tmp_path / "run" / "metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_memory_estimate_refuses_with_free_memory(monkeypatch, tmp_path: Path) -> None:
    import alignrec_lite.checks.memory as memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda: 1 << 20)  # a machine with 1 MiB free
    rc, _, err = run_cli(
        [
            "train",
            str(SMOKE),
            "--model",
            "lightgcn",
            "--quiet",
            "--set",
            "embedding_size=4096",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert ("GiB" in err or "MiB" in err) and "free" in err and "Fix:" in err
    assert not (tmp_path / "r").exists()


def test_every_numeric_flag_has_a_range() -> None:
    """No numeric flag escapes the door table (a new flag must get its range)."""
    from alignrec_lite.cli import NUMERIC_FLAGS

    missing = []
    for cmd, parser in _all_parsers():
        specs = {**NUMERIC_FLAGS["*"], **NUMERIC_FLAGS.get(cmd, {})}
        for action in parser._actions:
            if action.type in (int, float) and action.dest not in specs:
                missing.append(f"{cmd} --{action.dest}")
    assert not missing, missing


def _all_parsers():
    import argparse

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
        if path:
            yield " ".join(path), parser

    return list(walk(build_parser(), []))


# ---------------------------------------------------------------------- a full disk
@pytest.fixture()
def small_tmpfs(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the disk-full cases run as root only")
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        import gc

        gc.collect()  # a failed torch.save may hold its (unlinked) file open until collected
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_export_is_one_line_and_leaves_nothing(finished: Path, small_tmpfs: Path) -> None:
    (small_tmpfs / "filler").write_bytes(b"\0" * (60 << 10))
    rc, _, err = run_cli(["recommend", str(finished / "run"), "--out", str(small_tmpfs / "top.csv"), "--quiet"])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "disk is full" in err and "Fix:" in err
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


def test_disk_full_overwrite_keeps_the_old_run(finished: Path, small_tmpfs: Path) -> None:
    run = small_tmpfs / "run"
    run.mkdir()
    for name in ("metrics.json", "config.json"):
        shutil.copy(finished / "run" / name, run / name)
    (run / "best.pt").write_bytes(b"old weights")
    before = snapshot(small_tmpfs)
    rc, _, err = run_cli(
        [
            "train",
            str(finished / "shop"),
            "--model",
            "bpr",
            "--quiet",
            "--set",
            "epochs=1",
            "--set",
            "embedding_size=256",
            "--out",
            str(run),
            "--overwrite",
        ]
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "disk is full" in err
    assert snapshot(small_tmpfs) == before


# ---------------------------------------------------------------------- the table for docs/RELIABILITY.md
def _table() -> str:  # pragma: no cover - documentation helper
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        fin = root / "finished"
        fin.mkdir()
        shutil.copytree(SMOKE, fin / "shop")
        run_cli(
            [
                "train",
                str(fin / "shop"),
                "--model",
                "bpr",
                "--set",
                "epochs=1",
                "--set",
                "embedding_size=64",
                "--out",
                str(fin / "run"),
                "--quiet",
            ]
        )
        lines = ["| # | entry point | bad input | what the user sees | test |", "|---|---|---|---|---|"]
        ok = 0
        for n, c in enumerate(CASES, 1):
            tmp = root / c.id
            tmp.mkdir()
            try:
                msg = run_case(c, Ctx(tmp, fin))
                ok += 1
            except BaseException as exc:
                msg = f"(not run here: {type(exc).__name__}: {exc})"
            msg = msg.replace(str(tmp), "…").replace(str(root), "…").replace(str(SMOKE), "datasets/smoke-shop")
            msg = msg.replace("|", "\\|")
            lines.append(f"| {n} | `{c.entry}` | {c.what} | `` {msg} `` | `test_refused_cleanly[{c.id}]` |")
        lines.append("")
        lines.append(f"{len(CASES)} cases tried, {ok} refused cleanly here.")
        return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_table())


@pytest.mark.parametrize(
    "command",
    [
        ["features", "--image-encoder", "none"],
        ["pretrain-ica", "--epochs", "1"],
        ["pretrain-ica", "--encoder", "multiway", "--epochs", "1"],
    ],
)
def test_second_writer_of_a_datasets_features_fails_at_once(command, tmp_path: Path) -> None:
    """features / pretrain-ica write into the dataset folder: a live writer's lock refuses a second one."""
    import socket

    shop = tmp_path / "shop"
    shutil.copytree(SMOKE, shop)
    (tmp_path / ".shop.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # this process is alive
    before = snapshot(tmp_path)
    rc, _, err = run_cli([command[0], str(shop), *command[1:], "--quiet"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "another process" in err, err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------- round two, the named gaps
def _entries(folder: Path) -> dict[str, tuple[int, int, int]]:
    """:func:`snapshot` without the folders' mtimes (a staging folder made and removed inside changes them)."""
    return {k: (v if v[1] != -1 else (v[0], -1, 0)) for k, v in snapshot(folder).items()}


def _mm_files(folder: Path) -> dict[str, bytes]:
    from alignrec_lite.encoders import MANIFEST, MASKED_FILES, MM_FILE

    return {n: (folder / n).read_bytes() for n in (MM_FILE, *MASKED_FILES.values(), MANIFEST)}


def _assert_mm_consistent(folder: Path) -> None:
    """mm_feat.npy and both masked views hash to what features.json records; no commit left half-done."""
    from alignrec_lite.encoders import check_manifest, read_manifest
    from alignrec_lite.files import sha256_file

    assert check_manifest(folder).get("mm") is True
    entry = read_manifest(folder)["mm"]
    for rec in entry["masked_files"].values():
        assert sha256_file(folder / rec["file"]) == rec["sha256"], rec["file"]
    assert not list(folder.glob(".mm-new-*")) and not (folder / ".mm-commit.json").exists()


PRETRAIN = {
    "mmenc": ["--epochs", "1"],
    "multiway": ["--encoder", "multiway", "--epochs", "1"],
}


@pytest.mark.parametrize("encoder", sorted(PRETRAIN))
def test_pretrain_overwrite_failure_keeps_old_mm_files(encoder: str, tmp_path: Path, monkeypatch) -> None:
    """--overwrite writes the new mm files beside the old ones: a failure after the first one keeps all
    the old files, consistent with their manifest, and the old run (was: a new mm_feat.npy beside old
    masked views and an old manifest)."""
    import alignrec_lite.encoders.stage1 as stage1

    shop = tmp_path / "shop"
    shutil.copytree(SMOKE, shop)
    rc, _, err = run_cli(["pretrain-ica", str(shop), *PRETRAIN[encoder], "--quiet"])
    assert rc == 0, err
    _assert_mm_consistent(shop)
    before, tree = _mm_files(shop), _entries(tmp_path)
    real, calls = stage1.save_npy, []

    def fail_after_first(path, array):
        calls.append(path)
        if len(calls) > 1:
            raise KeyboardInterrupt  # as a kill after the first new file
        real(path, array)

    monkeypatch.setattr(stage1, "save_npy", fail_after_first)
    rc, _, err = run_cli(["pretrain-ica", str(shop), *PRETRAIN[encoder], "--overwrite", "--quiet"])
    assert rc == 130, err
    assert len(calls) == 2
    assert _mm_files(shop) == before
    _assert_mm_consistent(shop)
    assert _entries(tmp_path) == tree  # the old run whole too (every file's size and mtime); no staging, no lock


@pytest.mark.parametrize("encoder", sorted(PRETRAIN))
def test_pretrain_commit_killed_midway_is_finished_next_time(encoder: str, tmp_path: Path, monkeypatch) -> None:
    """A kill between the renames of the commit: the next stage-1 command finishes it, so the files
    end consistent (all new), never a mix."""
    shop = tmp_path / "shop"
    shutil.copytree(SMOKE, shop)
    assert run_cli(["pretrain-ica", str(shop), *PRETRAIN[encoder], "--quiet"])[0] == 0
    old = _mm_files(shop)
    real, moved = os.replace, []

    def kill_after_one_file(src, dst, *a, **k):
        if Path(src).parent.name.startswith(".mm-new-") and Path(dst).parent == shop:  # a rename of the commit
            if moved:
                raise KeyboardInterrupt  # the kill: one new file in place, the others not yet
            moved.append(dst)
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", kill_after_one_file)
    two_epochs = [("2" if a == "1" else a) for a in PRETRAIN[encoder]]  # same settings key, other vectors
    args = ["pretrain-ica", str(shop), *two_epochs, "--overwrite", "--quiet"]
    assert run_cli(args)[0] == 130
    monkeypatch.undo()
    assert (shop / ".mm-commit.json").exists() and len(moved) == 1
    mixed = _mm_files(shop)
    assert mixed != old and any(mixed[n] == old[n] for n in old)  # the mix that the commit record repairs
    rc, out, err = run_cli(["pretrain-ica", str(shop), *two_epochs, "--quiet"])
    assert rc == 0, err
    assert "up to date" in out or "epoch(s)" in out, out
    _assert_mm_consistent(shop)
    final = _mm_files(shop)
    assert all(final[n] != old[n] for n in old)  # the new files won, every one
    assert json.loads(final["features.json"])["mm"]["epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def _build_toy(out: Path, *extra: str) -> tuple[int, str]:
    rc, _, err = run_cli(["data", "build", "toy", "--out", str(out), "--size", "smoke", "--quiet", *extra])
    return rc, err


@pytest.fixture(scope="module")
def built_toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "toy"
    rc, err = _build_toy(out)
    assert rc == 0, err
    return out


def test_build_overwrite_failure_keeps_the_old_folder(built_toy: Path, tmp_path: Path, monkeypatch) -> None:
    """A failure while the new folder is written: the old one is untouched, no staging folder or lock left."""
    import alignrec_lite.data.toy as toy

    out = tmp_path / "toy"
    shutil.copytree(built_toy, out)
    before = snapshot(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(toy, "write_mmrec_files", boom)
    rc, err = _build_toy(out, "--overwrite")
    assert rc == 130, err
    assert snapshot(tmp_path) == before


def test_build_overwrite_swap_has_no_gap(built_toy: Path, tmp_path: Path, monkeypatch) -> None:
    """A kill during the swap cannot leave the folder missing: on Linux the old and new folders are
    exchanged in one step (was: renamed away, then the new one renamed in — a kill between the two
    left no folder at --out)."""
    out = tmp_path / "toy"
    shutil.copytree(built_toy, out)
    (out / "old-marker").write_text("old")
    real = os.replace

    def kill_when_the_new_folder_moves(src, dst, *a, **k):
        if Path(dst) == out and Path(src).name.startswith(".toy."):
            raise KeyboardInterrupt  # the second rename of a two-step swap
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", kill_when_the_new_folder_moves)
    rc, err = _build_toy(out, "--overwrite")
    monkeypatch.undo()
    if sys.platform != "linux":
        pytest.skip("the one-step exchange is Linux only; elsewhere the next command repairs (see below)")
    assert rc == 0, err
    assert out.is_dir() and not (out / "old-marker").exists()  # the whole new folder, at once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
    assert run_cli(["data", "check", str(out), "--no-images"])[0] == 0


def test_build_swap_killed_without_exchange_is_repaired(built_toy: Path, tmp_path: Path, monkeypatch) -> None:
    """Where the one-step exchange is not available, a kill between the two renames leaves
    .toy.old-PID, and the next build on that folder puts it back before anything else."""
    import alignrec_lite.files as files

    out = tmp_path / "toy"
    shutil.copytree(built_toy, out)
    (out / "old-marker").write_text("old")
    real, renames = os.replace, []

    def kill_between(src, dst, *a, **k):
        renames.append((Path(src).name, Path(dst).name))
        if Path(dst) == out and len(renames) > 1 and Path(src).name.startswith(".toy.new-"):
            raise KeyboardInterrupt
        return real(src, dst, *a, **k)

    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    monkeypatch.setattr(os, "replace", kill_between)
    assert _build_toy(out, "--overwrite")[0] == 130
    monkeypatch.undo()
    assert not out.exists() and list(tmp_path.glob(".toy.old-*"))  # the kill's leftover
    rc, err = _build_toy(out)  # refused (the folder exists again) -- but only after the repair
    assert rc == 2 and "already exists" in err, err
    assert (out / "old-marker").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_two_python_trainings_cannot_interleave(tmp_path: Path) -> None:
    """train(out=...) holds the run folder's lock, as the CLI does; inside the CLI it is re-entered."""
    import threading

    from alignrec_lite.data.mmrec import load_mmrec
    from alignrec_lite.files import out_lock
    from alignrec_lite.train import train

    ds = load_mmrec(SMOKE)
    run = tmp_path / "run"
    with out_lock(run):  # this thread holds it (as the CLI does): train re-enters
        train(ds, "bpr", {"epochs": 1}, out=run, progress=False)
    assert (run / "metrics.json").exists() and not (tmp_path / ".run.lock").exists()
    errors: list[BaseException] = []
    with out_lock(run):  # another thread of this process is writing: the second training refuses

        def second():
            try:
                train(ds, "bpr", {"epochs": 1}, out=run, progress=False)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], CheckpointError), errors
    assert f"pid {os.getpid()}" in str(errors[0])


def test_memory_estimates_are_honest(tmp_path: Path) -> None:
    """evaluate-features on 4,000 users x 12,000 items in a subprocess: the estimate checked at the door
    covers what the command allocated after the check, and is not more than 3 times it."""
    from memory_estimates import measure, synthetic

    data = synthetic(tmp_path / "syn", n_users=4000, n_items=12000)
    m = measure(["evaluate-features", str(data), "--source", "image+text", "--quiet"])
    assert m["rc"] == 0
    assert m["used"] <= m["needed"] <= 3 * m["used"], m
