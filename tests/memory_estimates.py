"""How honest are the memory estimates at the door? Each command in a subprocess: estimate vs measured peak.

``train``, ``features``, ``evaluate-features`` and ``pretrain-ica`` (both encoders) estimate what
their settings will allocate and refuse before any work when it cannot fit
(:func:`alignrec_lite.checks.check_memory`). This script runs each command on a real dataset in
its own **subprocess** and sets the estimate against what the command really allocated after the
check: the child's peak resident memory (``VmHWM``, its own high-water mark) minus its resident
memory at the moment of the check (recorded with the estimate in
:data:`alignrec_lite.checks.ESTIMATES`).

    python tests/memory_estimates.py DATASET_DIR [WORK_DIR [ONLY]]

``DATASET_DIR`` is an MMRec folder with ``items.csv`` and images (e.g. the MovieLens folder of
``alignrec-lite data build movielens``); it is copied to ``WORK_DIR`` (default: a temporary
folder) because the commands write feature files into it; ``ONLY`` keeps the commands whose
name holds it (e.g. ``pretrain-ica``; those after ``features`` need its feature files). The figures are in
docs/RELIABILITY.md §9; ``tests/test_reliability_round2.py::test_memory_estimates_are_honest``
runs the same comparison on the SMOKE shop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20

CHILD = textwrap.dedent("""
    import json, sys
    from alignrec_lite import checks
    from alignrec_lite.cli import main

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    rc = main(sys.argv[1:])
    print("@@" + json.dumps({"rc": rc, "hwm": status("VmHWM"), "estimates": checks.ESTIMATES}))
""")


def measure(argv: list[str]) -> dict:
    """Run ``alignrec-lite argv`` in a subprocess: ``{"rc", "hwm", "estimates", "needed", "rss", "used"}``.

    ``needed`` is the largest estimate the command checked, ``rss`` the resident memory at that
    check and ``used`` = peak - ``rss``: what the command allocated after its check.
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env, cwd=REPO)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("@@")), None)
    if line is None:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    out = json.loads(line[2:])
    est = max(out["estimates"], key=lambda e: e["needed"]) if out["estimates"] else None
    out["needed"] = est["needed"] if est else float("nan")
    out["rss"] = est["rss"] if est else 0
    out["used"] = out["hwm"] - out["rss"]
    return out


def stages(data: Path) -> list[tuple[str, list[str]]]:
    """The commands compared (in this order: the later ones read the features the first one writes)."""
    d = str(data)
    return [
        ("features (tiny-cnn + minilm, batch 64)", ["features", d, "--device", "cpu", "--quiet"]),
        (
            "features --overwrite (batch 512)",
            ["features", d, "--device", "cpu", "--batch-size", "512", "--overwrite", "--quiet"],
        ),
        (
            "evaluate-features (image, text, image+text)",
            ["evaluate-features", d, "--source", "image", "--source", "text", "--source", "image+text", "--quiet"],
        ),
        (
            "evaluate-features --batch-users 4096",
            ["evaluate-features", d, "--source", "image+text", "--batch-users", "4096", "--quiet"],
        ),
        (
            "pretrain-ica (tiny-cnn trained, minilm frozen, batch 128)",
            ["pretrain-ica", d, "--epochs", "1", "--device", "cpu", "--quiet"],
        ),
        (
            "pretrain-ica --batch-size 1024",
            ["pretrain-ica", d, "--epochs", "1", "--batch-size", "1024", "--device", "cpu", "--overwrite", "--quiet"],
        ),
        (
            "pretrain-ica --encoder multiway (batch 32)",
            ["pretrain-ica", d, "--encoder", "multiway", "--epochs", "1", "--device", "cpu", "--overwrite", "--quiet"],
        ),
        (
            "pretrain-ica --encoder multiway --batch-size 256",
            [
                "pretrain-ica",
                d,
                "--encoder",
                "multiway",
                "--epochs",
                "1",
                "--batch-size",
                "256",
                "--device",
                "cpu",
                "--overwrite",
                "--quiet",
            ],
        ),
    ]


def synthetic(folder: Path, n_users: int = 10000, n_items: int = 40000, seed: int = 0) -> Path:
    """A catalogue large enough for ``evaluate-features``' blocks to matter: 5 rows per user
    (3 train, 1 valid, 1 test), random 128-d image and 384-d text features."""
    import numpy as np
    import pandas as pd

    from alignrec_lite.data.mmrec_files import write_mmrec_files

    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 5)
    items = rng.integers(0, n_items, size=len(users))
    items[:n_items] = np.arange(n_items)  # every item has a row
    inter = pd.DataFrame({"userID": users, "itemID": items, "x_label": np.tile([0, 0, 0, 1, 2], n_users)})
    inter = inter.drop_duplicates(["userID", "itemID"])
    folder.mkdir(parents=True)
    write_mmrec_files(
        folder,
        name="synthetic",
        inter=inter,
        features={
            "image": rng.standard_normal((n_items, 128)).astype(np.float32),
            "text": rng.standard_normal((n_items, 384)).astype(np.float32),
        },
    )
    return folder


def synthetic_stages(data: Path) -> list[tuple[str, list[str]]]:
    """``evaluate-features`` on the synthetic catalogue, at two block sizes."""
    d = str(data)
    name = "evaluate-features, 10,000 users x 40,000 items, image+text (512-d)"
    return [
        (f"{name}, --batch-users 1024", ["evaluate-features", d, "--source", "image+text", "--quiet"]),
        (
            f"{name}, --batch-users 256",
            ["evaluate-features", d, "--source", "image+text", "--batch-users", "256", "--quiet"],
        ),
    ]


def table(data: Path, work: Path, only: str = "") -> str:
    """Copy ``data`` into ``work`` and return the markdown table of every stage (whose name holds ``only``)."""
    copy = work / data.name
    shutil.copytree(data, copy, symlinks=True)
    todo = [(n, a) for n, a in stages(copy) if only in n]
    big = [(n, a) for n, a in synthetic_stages(work / "synthetic") if only in n]
    if big:
        synthetic(work / "synthetic")
    todo += big
    lines = [
        "| command | estimate | RSS at the check | peak RSS (`VmHWM`) | allocated after the check "
        "| estimate / allocated |",
        "|---|---|---|---|---|---|",
    ]
    for name, argv in todo:
        m = measure(argv)
        lines.append(
            f"| `{name}` | {m['needed'] / MB:,.0f} MB | {m['rss'] / MB:,.0f} MB | {m['hwm'] / MB:,.0f} MB "
            f"| {m['used'] / MB:,.0f} MB | {m['needed'] / max(m['used'], 1):.2f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - measurement helper
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = Path(sys.argv[1])
    if len(sys.argv) > 2:
        print(table(src, Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(table(src, Path(tmp)))
