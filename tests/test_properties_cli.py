"""Every numeric flag of every command, fed random values: exit 0 with a right result, or exit 2 with one line.

Values: negative, zero, huge, NaN, inf, fractional, text, and plain valid numbers. The
command line is run in-process (``main(argv)``). Cheap commands on a finished smoke run
(``recommend``, ``timing``, ``longtail``, ``new-user``) run for real and their output is
checked; the handlers of expensive commands (training, feature extraction, downloads,
builds) are replaced by a stub *after* the door checks, so an accepted value is one that
reached the handler unchanged. Never a traceback (issue 16).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alignrec_lite.cli as cli
from alignrec_lite.cli import NUMERIC_FLAGS, build_parser, main
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.toy import toy_path

SMOKE = toy_path("smoke")
SCALE = int(os.environ.get("ALIGNREC_PROPERTY_SCALE", "1"))
CHEAP = {"recommend", "timing", "longtail", "new-user"}

VALUES = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(
        [
            "0",
            "-1",
            "1",
            "2",
            "3",
            "20",
            "0.5",
            "2.5",
            "-0.5",
            "1e9",
            "1e12",
            "1e300",
            "-1e300",
            "nan",
            "inf",
            "-inf",
            "NaN",
            "ten",
            "",
            "0x10",
            "1_000",
            " 5",
            "1e-300",
            "99999999999999999999",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _walk(parser: argparse.ArgumentParser, path: list[str]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])
    if path:
        yield " ".join(path), parser


def numeric_flags() -> list[tuple[str, str, type]]:
    out = []
    for cmd, parser in _walk(build_parser(), []):
        for action in parser._actions:
            if action.type in (int, float) and action.option_strings:
                out.append((cmd, action.option_strings[0], action.type))
    return sorted(out)


FLAGS = numeric_flags()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("props")
    shutil.copytree(SMOKE, root / "shop")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(
            ["train", str(root / "shop"), "--model", "bpr", "--set", "epochs=1", "--out", str(root / "run"), "--quiet"]
        )
    assert rc == 0, err.getvalue()
    (root / "links.csv").write_text("movieId,imdbId,tmdbId\n1,1,1\n")
    return root


def base_argv(cmd: str, root: Path, out: Path) -> list[str]:
    run, shop = str(root / "run"), str(root / "shop")
    return {
        "recommend": ["recommend", run, "--out", str(out / "top.csv"), "--quiet"],
        "timing": ["timing", run],
        "longtail": ["longtail", run],
        "new-user": ["new-user", run, "--items", "item-0001", "item-0002"],
        "new-item": ["new-item", run, "--text", "a red mug"],
        "coldstart": ["coldstart", shop, "--quiet"],
        "train": ["train", shop, "--model", "bpr", "--quiet"],
        "evaluate": ["evaluate", run],
        "tour": ["tour", "--no-notebooks", "--build-dir", str(out / "build")],
        "search": [
            "search",
            shop,
            "--model",
            "bpr",
            "--grid",
            "learning_rate=0.01",
            "--out",
            str(out / "s"),
            "--quiet",
        ],
        "features": ["features", shop, "--quiet"],
        "pretrain-ica": ["pretrain-ica", shop, "--quiet"],
        "evaluate-features": ["evaluate-features", shop, "--quiet"],
        "data build toy": ["data", "build", "toy", "--out", str(out / "new"), "--quiet"],
        "data build movielens": [
            "data",
            "build",
            "movielens",
            "--ratings-dir",
            shop,
            "--posters-dir",
            shop,
            "--out",
            str(out / "new"),
            "--quiet",
        ],
        "data build amazon": [
            "data",
            "build",
            "amazon",
            "--release",
            "2014",
            "--category",
            "Baby",
            "--out",
            str(out / "new"),
            "--quiet",
        ],
        "data download movielens-small": ["data", "download", "movielens-small", "--offline", "--cache", str(out)],
        "data download posters": [
            "data",
            "download",
            "posters",
            "--links",
            str(root / "links.csv"),
            "--out",
            str(out / "posters"),
        ],
    }[cmd]


def _stubbed_parser(reached: list):
    real = build_parser()

    def stub(args):
        reached.append(args)
        return 0

    for cmd, parser in _walk(real, []):
        if cmd not in CHEAP and parser.get_default("func") is not None:
            parser.set_defaults(func=stub)
    return real


def _in_range(value: float, spec) -> bool:
    kind, lo, hi, lo_open, hi_open = spec
    if not math.isfinite(value):
        return False
    if kind == "int" and not float(value).is_integer():
        return False
    return (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)


def _parse(text: str, typ: type):
    try:
        return typ(text)
    except ValueError:
        return None


@pytest.mark.parametrize("cmd,flag,typ", FLAGS, ids=[f"{c}{f}" for c, f, _ in FLAGS])
def test_numeric_flag_never_tracebacks(cmd, flag, typ, world, tmp_path_factory, monkeypatch) -> None:
    reached: list = []
    monkeypatch.setattr(cli, "build_parser", lambda: _stubbed_parser(reached))
    dest = flag.lstrip("-").replace("-", "_")
    spec = {**NUMERIC_FLAGS["*"], **NUMERIC_FLAGS.get(cmd, {})}[dest]

    @settings(
        max_examples=(8 if cmd in CHEAP else 15) * SCALE,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=VALUES)
    def check(text: str) -> None:
        out = tmp_path_factory.mktemp("o")
        argv = base_argv(cmd, world, out) + [f"{flag}={text}"]
        reached.clear()
        err, std = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
        lines = err.getvalue().strip().splitlines()
        value = _parse(text, typ)
        if rc == 2:
            assert len(lines) == 1 and lines[0].startswith("alignrec-lite"), err.getvalue()
            assert "Fix:" in lines[0], lines[0]
            assert value is None or not _in_range(value, spec), f"{flag}={text!r} is valid but was refused: {lines}"
            return
        assert rc == 0, (rc, err.getvalue())
        assert value is not None and _in_range(value, spec), f"{flag}={text!r} was accepted"
        if cmd not in CHEAP:
            assert len(reached) == 1 and getattr(reached[0], dest) == value
            return
        _check_result(cmd, dest, value, std.getvalue(), out)

    check()


def _check_result(cmd: str, dest: str, value, stdout: str, out: Path) -> None:
    """The command's answer is right for the value (not merely exit 0)."""
    if cmd == "recommend":
        df = pd.read_csv(out / "top.csv")
        k = int(value) if dest == "k" else 20
        per_user = df.groupby("userID").size()
        # every user gets K items, or every item they have not seen in training when fewer are left
        ds = load_mmrec(SMOKE, load_features=False)
        unseen = ds.n_items - ds.user_degree("train")
        assert len(per_user) == 150 and per_user.max() <= k
        assert (per_user.to_numpy() == np.minimum(k, unseen)[per_user.index.to_numpy()]).all()
    elif cmd == "timing":
        t = json.loads(stdout)
        assert all(math.isfinite(v) for v in t.values() if isinstance(v, float))
        if dest == "k":
            assert t["k"] == int(value)
    elif cmd == "new-user":
        rows = [ln for ln in stdout.splitlines()[1:] if ln.strip()]
        assert 1 <= len(rows) <= (int(value) if dest == "k" else 10)
    elif cmd == "longtail":
        assert "recall@" in stdout
