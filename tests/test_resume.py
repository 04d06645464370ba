"""Interrupted work resumes and a killed writer leaves the previous version intact (issue 8).

* ``python -m alignrec_lite train`` on the smoke toy data is killed with SIGKILL in the
  middle of the run (after it wrote a checkpoint), continued with ``--resume``, and
  must end with exactly the metrics (and the per-epoch history) of an uninterrupted
  run with the same settings.
* The same holds in-process for every model the kit has: a run interrupted at an
  epoch and resumed equals the uninterrupted one (model-specific randomness such as
  edge dropping or dropout included).
* A process killed while writing a file, a checkpoint or a whole dataset folder
  through :mod:`alignrec_lite.files` leaves the previous version intact and loadable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.toy import load_toy, toy_path
from alignrec_lite.files import load_checkpoint_file
from alignrec_lite.models import MODELS
from alignrec_lite.train import train

SMOKE = toy_path("smoke")
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
TRAIN = [
    sys.executable,
    "-m",
    "alignrec_lite",
    "train",
    str(SMOKE),
    "--model",
    "lightgcn",
    "--quiet",
    "--set",
    "epochs=20",
    "--set",
    "batch_size=256",
    "--set",
    "device=cpu",
    "--set",
    "stopping_step=100",
]
#: run-record fields that legitimately differ between two runs (timings, memory)
VOLATILE = {"seconds_per_epoch", "eval_seconds", "peak_rss_mb", "versions"}


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def _epochs_done(run: Path) -> int:
    try:
        return int(load_checkpoint_file(run / "last.pt")["state"]["epoch"])
    except Exception:
        return 0


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = subprocess.Popen(
        TRAIN + ["--out", str(full)], env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    victim = subprocess.Popen(
        TRAIN + ["--out", str(killed)], env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _epochs_done(killed) < 3 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = _epochs_done(killed)
    assert 3 <= done < 20 and not (killed / "metrics.json").exists(), done

    resumed = subprocess.run(
        TRAIN + ["--out", str(killed), "--resume"], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["epochs_run"] == b["epochs_run"] == 20
    assert len(b["history"]) == 20
    assert comparable(a) == comparable(b)
    assert a["test"]["recall@20"] > 0  # a real run, not an empty record
    wa = load_checkpoint_file(full / "best.pt")
    wb = load_checkpoint_file(killed / "best.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


MODEL_SETTINGS = {"epochs": 4, "batch_size": 512, "device": "cpu", "stopping_step": 100}


class Interrupt(Exception):
    """Stands in for a crash in the middle of an epoch."""


@pytest.mark.parametrize("model", list(MODELS))
def test_interrupted_run_resumes_identically(model: str, tmp_path: Path) -> None:
    ds = load_toy("smoke")
    _, full = train(ds, model, MODEL_SETTINGS, out=tmp_path / "full", progress=False)

    def crash(epoch, net, record):
        if epoch == 2:  # epochs 0 and 1 are checkpointed; epoch 2 is lost
            raise Interrupt

    with pytest.raises(Interrupt):
        train(ds, model, MODEL_SETTINGS, out=tmp_path / "cut", progress=False, callbacks=[crash])
    assert load_checkpoint_file(tmp_path / "cut" / "last.pt")["state"]["epoch"] == 2
    _, resumed = train(ds, model, MODEL_SETTINGS, out=tmp_path / "cut", resume=True, progress=False)
    assert comparable(full) == comparable(resumed)


# ---------------------------------------------------------------------- killed writers
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from alignrec_lite.files import atomic_dir, atomic_path, atomic_write

    mode, target = sys.argv[1], Path(sys.argv[2])

    def stall():
        print("writing", flush=True)
        time.sleep(120)

    if mode == "file":
        with atomic_write(target) as fh:
            fh.write("userID\\titemID\\tx_label\\n" + "0\\t0\\t9\\n" * 10000)
            fh.flush()
            stall()
    elif mode == "checkpoint":
        import torch
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"PK half a checkpoint")
                fh.flush()
            stall()
    elif mode == "folder":
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "toy.inter").write_text("userID\\titemID\\tx_label\\n")
            stall()
""")


def _kill_while_writing(mode: str, target: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, mode, str(target)],
        env=ENV,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "writing", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_killed_file_writer_leaves_previous_version(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    shutil.copytree(SMOKE, folder)
    before = (folder / "toy.inter").read_bytes()
    _kill_while_writing("file", folder / "toy.inter", tmp_path)
    assert (folder / "toy.inter").read_bytes() == before
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and all(p.startswith(".toy.inter.") for p in leftovers)  # hidden, ignored by the loader
    ds = load_mmrec(folder)
    assert ds.n_users == 150 and len(ds.train) == 1505


def test_killed_checkpoint_writer_leaves_previous_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.pt"
    torch.save({"w": torch.arange(5.0)}, ckpt)
    _kill_while_writing("checkpoint", ckpt, tmp_path)
    assert torch.equal(load_checkpoint_file(ckpt)["w"], torch.arange(5.0))


def test_killed_folder_builder_leaves_previous_folder(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    shutil.copytree(SMOKE, folder)
    _kill_while_writing("folder", folder, tmp_path)
    ds = load_mmrec(folder)
    assert ds.n_items == 120 and ds.features["image"].shape == (120, 18)
    assert np.isfinite(ds.features["text"]).all()
