"""The harness of the bounded-memory tests: each stage measured in a subprocess on a large synthetic catalogue.

Evaluation, kNN-graph building and top-K export work in chunks: their extra memory
is about one block of ``batch x n_items`` float32 scores, never a dense
``n_users x n_items`` or ``n_items x n_items`` matrix. The stages run in a
**subprocess**, which reports its resident memory after setting up (imports, data,
model, a warm-up on a tiny catalogue) and its peak after the stage; the test checks
the increase against the stated bound ``1.5 x block + 64 MB`` (and against half the
smallest dense matrix).

The peak is the child's ``VmHWM`` (``/proc/self/status``); ``ru_maxrss``
(``resource.getrusage``) is reported too, but it is *not* used for the check: Linux
carries the parent's high-water mark into a child started by ``subprocess`` (vfork +
exec keeps ``max(parent peak, own peak)``), so inside a large pytest process it
reported 1.6 GB for a stage that used 90 MB. Run from a small parent
(``python tests/memory_stages.py``) the two agree.

The tests (``test_*_memory_is_bounded`` in test_evaluate.py, test_graphs.py and test_serve.py,
one stage each, :func:`check_stage`):

* CI variant: 5,000 users x 20,000 items, one subprocess per stage, batch 1024
  (block 78 MB, bound 181 MB; dense users x items would be 0.4 GB, items x items 1.6 GB).
* Full variant (``@pytest.mark.slow``): 50,000 users x 100,000 items, 3
  interactions per user, one subprocess per stage, batch 1024 (block 391 MB, bound
  650 MB; dense users x items: 20 GB, items x items: 40 GB). The measured figures
  are in docs/RELIABILITY.md.

``python tests/memory_stages.py 50000 100000`` prints the figures of the full run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20

STAGE = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    import numpy as np
    import torch

    from alignrec_lite.data.mmrec import RecDataset
    from alignrec_lite.evaluate import evaluate
    from alignrec_lite.graphs import knn_graph
    from alignrec_lite.models.bpr import BPR
    from alignrec_lite.serve import export_topk

    stage, n_users, n_items, batch, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def rss_now():
        return status("VmRSS")

    def setup(n_users, n_items):
        rng = np.random.default_rng(0)
        users = np.repeat(np.arange(n_users), 3)  # 3 interactions per user: train, valid, test
        items = rng.integers(0, n_items, size=len(users))
        items[: n_items] = np.arange(n_items) if len(users) >= n_items else items[: n_items]
        pairs = np.stack([users, items], 1).astype(np.int64)
        ds = RecDataset(name="synthetic", n_users=n_users, n_items=n_items,
                        train=pairs[0::3], valid=pairs[1::3], test=pairs[2::3])
        torch.manual_seed(0)
        model = BPR(ds, {"embedding_size": 64})
        model.prepare_eval()
        return ds, model, rng.standard_normal((n_items, 64)).astype(np.float32)

    # warm-up on a tiny catalogue: loads the code pages and thread pools the stage uses, so
    # that the increase measured below is the stage's own data, not the first touch of libraries
    ds, model, feats = setup(200, 400)
    evaluate(model.full_sort_scores, ds, "test", batch_users=64)
    knn_graph(feats, k=10, chunk=64)
    export_topk(model, ds, out, k=20, batch_users=64, progress=False)

    ds, model, feats = setup(n_users, n_items)
    base = rss_now()
    t0 = time.perf_counter()
    check = {}
    for name in stage.split(","):
        if name == "evaluate":
            res = evaluate(model.full_sort_scores, ds, "test", batch_users=batch)
            check[name] = res["n_users"]
        elif name == "knn":
            g = knn_graph(feats, k=10, chunk=batch)
            check[name] = int(g.nnz)
            del g
        elif name == "export":
            export_topk(model, ds, out, k=20, batch_users=batch, progress=False)
            check[name] = sum(1 for _ in open(out)) - 1
    seconds = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    peak = status("VmHWM")  # this process's own high-water mark (see the module docstring)
    print(json.dumps({"stage": stage, "base": base, "peak": peak, "ru_maxrss": maxrss, "seconds": seconds,
                      "check": check}))
""")


def measure(stage: str, n_users: int, n_items: int, batch: int, tmp: Path) -> dict:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", STAGE, stage, str(n_users), str(n_items), str(batch), str(tmp / "topk.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stated_bound_mb(n_items: int, batch: int) -> float:
    """The stated bound on a stage's extra memory: one and a half score blocks plus 64 MB."""
    return 1.5 * batch * n_items * 4 / MB + 64


def check_stages(
    n_users: int,
    n_items: int,
    batch: int,
    bound_mb: float,
    tmp: Path,
    stages: tuple[str, ...] = ("evaluate", "knn", "export"),
) -> dict:
    """Run each entry of ``stages`` (a stage, or stages joined by commas) in its own subprocess."""
    results = {}
    expected = {"evaluate": n_users, "knn": n_items * 10, "export": n_users * 20}
    dense = min(n_users, n_items) * n_items * 4 / MB  # the smallest dense matrix it could have built
    for stage in stages:
        r = measure(stage, n_users, n_items, batch, tmp)
        extra = (r["peak"] - r["base"]) / MB
        results[stage] = {
            "extra_mb": round(extra, 1),
            "peak_mb": round(r["peak"] / MB, 1),
            "ru_maxrss_mb": round(r["ru_maxrss"] / MB, 1),
            "base_mb": round(r["base"] / MB, 1),
            "seconds": round(r["seconds"], 1),
        }
        assert r["check"] == {s: expected[s] for s in stage.split(",")}, (stage, r)
        assert extra < bound_mb, f"{stage}: {extra:.0f} MB above the set-up memory (bound {bound_mb:.0f} MB): {r}"
        assert extra < dense / 2, (stage, extra, dense)
    return results


#: (n_users, n_items) of the CI and the full (``slow``) variants
SIZES = {"ci": (5_000, 20_000), "full": (50_000, 100_000)}


def check_stage(stage: str, size: str, tmp: Path) -> dict:
    """One stage (``evaluate``, ``knn`` or ``export``) at ``size`` (``"ci"`` or ``"full"``), batch 1024, checked
    against the stated bound; the figures of the full variant are printed for docs/RELIABILITY.md."""
    n_users, n_items = SIZES[size]
    results = check_stages(
        n_users, n_items, batch=1024, bound_mb=stated_bound_mb(n_items, 1024), tmp=tmp, stages=(stage,)
    )
    if size == "full":
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":  # pragma: no cover - prints the figures for docs/RELIABILITY.md
    import tempfile

    u, i = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (50_000, 100_000)
    with tempfile.TemporaryDirectory() as d:
        print(
            json.dumps(
                {
                    "bound_mb": round(stated_bound_mb(i, 1024), 1),
                    **check_stages(u, i, batch=1024, bound_mb=10**9, tmp=Path(d)),
                },
                indent=2,
            )
        )
