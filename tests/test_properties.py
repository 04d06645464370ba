"""Property tests over the loaders and validators (issue 8).

Whatever bytes or values they get, the kit's readers either load them *correctly*
(checked against an independent reference reading of the format, or against what
was written) or raise the kit's own error — never another exception, never a
silent wrong load. Example counts are modest so the file runs in well under 30 s.
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alignrec_lite.config import TRAIN_DEFAULTS, parse_set_args, resolve_config
from alignrec_lite.data.mmrec import RecDataset, check_images, load_mmrec
from alignrec_lite.data.mmrec_files import (
    read_card,
    read_feature,
    read_id_mapping,
    read_inter,
    read_items_table,
    write_mmrec_files,
)
from alignrec_lite.errors import CheckpointError, ConfigError, DataError
from alignrec_lite.files import load_checkpoint_file

#: ``ALIGNREC_PROPERTY_SCALE=20 pytest tests/test_properties.py`` searches 20x longer (not in CI).
SCALE = int(os.environ.get("ALIGNREC_PROPERTY_SCALE", "1"))
FAST = settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCRATCH = Path(tempfile.mkdtemp(prefix="alignrec-properties-"))


def scratch(name: str, data: bytes) -> Path:
    """Write ``data`` to a scratch file (hypothesis examples share the folder)."""
    p = SCRATCH / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------- .inter files
REQUIRED = ("userID", "itemID", "x_label")


def reference_inter(text: str) -> list[tuple[int, int, int]] | None:
    """An independent reading of the MMRec ``.inter`` rules: the rows, or None if invalid."""
    if not text.strip() or "\x00" in text:
        return None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    header = [h.strip() for h in lines[0].split("\t")]
    if not set(REQUIRED) <= set(header) or len(set(header)) != len(header) or len(lines) < 2:
        return None
    rows = []
    for line in lines[1:]:
        fields = line.split("\t")
        if not line.strip() or len(fields) != len(header):
            return None
        rec = {h: f.strip() for h, f in zip(header, fields)}
        if not all(re.fullmatch(r"-?[0-9]{1,18}", rec[c]) for c in REQUIRED):
            return None
        u, i, x = (int(rec[c]) for c in REQUIRED)
        if u < 0 or i < 0 or x not in (0, 1, 2):
            return None
        if "timestamp" in rec and not re.fullmatch(r"-?[0-9]{1,18}(\.0*)?", rec["timestamp"]):
            return None
        if "rating" in rec:
            if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", rec["rating"]):
                return None
            if not math.isfinite(float(rec["rating"])):
                return None
        rows.append((u, i, x))
    if len({(u, i) for u, i, _ in rows}) != len(rows):
        return None
    return rows


def check_inter(data: bytes) -> None:
    path = scratch("x.inter", data)
    try:
        df = read_inter(path)
    except DataError as exc:
        assert str(path) in str(exc) and "Fix:" in str(exc)
        df = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert df is None, "non-UTF-8 bytes were loaded"
        return
    ref = reference_inter(text)
    if ref is None:
        assert df is None, f"loaded an invalid file: {text!r}"
    else:
        assert df is not None, f"rejected a valid file: {text!r}"
        assert list(df[list(REQUIRED)].itertuples(index=False, name=None)) == ref


@FAST
@given(st.binary(max_size=200))
def test_read_inter_any_bytes(data: bytes) -> None:
    check_inter(data)


@FAST
@given(st.binary(max_size=120))
def test_read_inter_valid_header_then_any_bytes(data: bytes) -> None:
    check_inter(b"userID\titemID\tx_label\n0\t0\t0\n" + data)


TOKENS = [
    "0",
    "1",
    "2",
    "3",
    "1",
    "0",
    "2",
    "-1",
    "01",
    " 2",
    "1 ",
    "1.5",
    "4.",
    "x",
    "",
    "nan",
    "1e3",
    "9" * 20,
    "٣",
    "0\x0b",
    "\x1c1",
]
SEPS = ["\t"] * 12 + [",", " ", "\x0b", "\x1c", "\u2028", "\x85", "\r"]


@st.composite
def inter_texts(draw) -> str:
    cols = list(REQUIRED) + draw(st.lists(st.sampled_from(["rating", "timestamp", "extra", "userID"]), max_size=2))
    cols = draw(st.permutations(cols))
    if draw(st.integers(0, 9)) == 0:
        cols = cols[:-1]
    header = "\t".join(cols)
    n = len(cols)
    rows = draw(st.lists(st.lists(st.sampled_from(TOKENS), min_size=n - 1, max_size=n + 1), max_size=8))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    lines = [header] + [draw(st.sampled_from(SEPS)).join(r) for r in rows]
    text = eol.join(lines) + draw(st.sampled_from([eol, "", eol + eol]))
    return draw(st.sampled_from(["", "", "\ufeff"])) + text


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inter_texts())
def test_read_inter_structured_text(text: str) -> None:
    check_inter(text.encode("utf-8"))


# ---------------------------------------------------------------------- whole folders: write, load, compare
RAW_ID = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n"), min_size=1, max_size=8)


@st.composite
def datasets(draw):
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pairs = set()
    for u in range(n_users):
        items = draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=n_items, unique=True))
        pairs.update((u, i) for i in items)
    for i in range(n_items):  # every item occurs
        if not any(p[1] == i for p in pairs):
            pairs.add((draw(st.integers(0, n_users - 1)), i))
    pairs = sorted(pairs)
    labels = [draw(st.sampled_from([0, 0, 1, 2])) for _ in pairs]
    first = {}
    for k, (u, _) in enumerate(pairs):
        first.setdefault(u, k)
    for k in first.values():  # every user has a training row
        labels[k] = 0
    users_raw = draw(st.lists(RAW_ID, min_size=n_users, max_size=n_users))
    items_raw = draw(st.lists(RAW_ID, min_size=n_items, max_size=n_items))
    feat = draw(hnp.arrays(np.float32, (n_items, draw(st.integers(1, 3))), elements=st.floats(-1e6, 1e6, width=32)))
    return pairs, labels, users_raw, items_raw, feat


@FAST
@given(datasets())
def test_written_folder_loads_back_exactly(spec) -> None:
    pairs, labels, users_raw, items_raw, feat = spec
    inter = pd.DataFrame(pairs, columns=["userID", "itemID"]).assign(x_label=labels)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            write_mmrec_files(
                tmp, name="p", inter=inter, user_raw_ids=users_raw, item_raw_ids=items_raw, features={"image": feat}
            )
        except DataError:  # the writer refuses raw IDs it cannot store faithfully
            return
        try:
            ds = load_mmrec(tmp)
        except DataError as exc:  # pragma: no cover - reported with the example
            pytest.fail(f"a folder the kit wrote does not load: {exc}")
    for name, code in (("train", 0), ("valid", 1), ("test", 2)):
        want = sorted(p for p, lab in zip(pairs, labels) if lab == code)
        assert sorted(map(tuple, ds.split(name).tolist())) == want
    assert ds.user_raw_ids.tolist() == users_raw
    assert ds.item_raw_ids.tolist() == items_raw
    np.testing.assert_array_equal(ds.features["image"], feat)


# ---------------------------------------------------------------------- feature files
@FAST
@given(st.binary(max_size=300))
def test_read_feature_any_bytes(data: bytes) -> None:
    path = scratch("f.npy", data)
    try:
        arr = read_feature(path, 2)
    except DataError:
        return
    assert arr.dtype == np.float32 and arr.ndim == 2 and arr.shape[0] == 2 and np.isfinite(arr).all()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@FAST
@given(st.binary(min_size=1, max_size=64), st.integers(0, 400))
def test_read_feature_valid_header_damaged_body(junk: bytes, cut: int) -> None:
    good = _npy_bytes(np.arange(12, dtype=np.float32).reshape(3, 4))
    path = scratch("f.npy", good[:cut] + junk)
    try:
        arr = read_feature(path, 3)
    except DataError:
        return
    assert arr.shape == (3, 4) and np.isfinite(arr).all()


DTYPES = st.sampled_from(["<f2", "<f4", ">f8", "<i1", "<u2", ">i8", "?", "<c8", "<U2", "<M8[s]"])


@FAST
@given(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)), st.integers(0, 5))
def test_read_feature_any_array(arr: np.ndarray, n_items: int) -> None:
    path = scratch("f.npy", _npy_bytes(arr))
    try:
        out = read_feature(path, n_items)
    except DataError:
        ok = (
            arr.ndim == 2
            and arr.shape == (n_items, arr.shape[1])
            and arr.shape[1] > 0
            and (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
            and np.isfinite(arr.astype(np.float32)).all()
        )
        assert not ok, f"rejected a valid feature array {arr.dtype} {arr.shape}"
        return
    np.testing.assert_array_equal(out, arr.astype(np.float32))


# ---------------------------------------------------------------------- mappings, items table, card
@FAST
@given(st.binary(max_size=200), st.integers(1, 4))
def test_read_id_mapping_any_bytes(data: bytes, n: int) -> None:
    path = scratch("i_id_mapping.csv", data)
    try:
        out = read_id_mapping(path, "itemID", n)
    except DataError:
        return
    assert len(out) == n and all(isinstance(x, str) for x in out)


@FAST
@given(st.lists(st.tuples(RAW_ID, st.sampled_from(["0", "1", "2", "3", "-1", "x", "1.0", " 2"])), max_size=5))
def test_read_id_mapping_rows(rows) -> None:
    text = "item\titemID\n" + "".join(f"{raw}\t{i}\n" for raw, i in rows)
    path = scratch("i_id_mapping.csv", text.encode("utf-8"))
    n = len(rows)
    try:
        out = read_id_mapping(path, "itemID", n)
    except DataError:
        return
    # loaded: every row's raw ID is where its itemID says
    assert sorted(int(i) for _, i in rows) == list(range(n))
    for raw, i in rows:
        assert out[int(i)] == raw


@FAST
@given(st.binary(max_size=200), st.integers(1, 4))
def test_read_items_table_any_bytes(data: bytes, n: int) -> None:
    path = scratch("items.csv", data)
    try:
        df = read_items_table(path, n)
    except DataError:
        return
    assert df.index.tolist() == list(range(n))


@FAST
@given(st.lists(st.sampled_from(["0", "1", "2", "1.5", "-1", "x", "", "1e0", " 1", "inf"]), min_size=1, max_size=4))
def test_read_items_table_ids(ids: list[str]) -> None:
    text = "itemID,text\n" + "".join(f"{i},t{k}\n" for k, i in enumerate(ids))
    path = scratch("items.csv", text.encode())
    try:
        df = read_items_table(path, len(ids))
    except DataError:
        return
    assert sorted(int(i) for i in ids) == list(range(len(ids)))
    assert [df.at[int(i), "text"] for i in ids] == [f"t{k}" for k in range(len(ids))]


@FAST
@given(st.binary(max_size=100))
def test_read_card_any_bytes(data: bytes) -> None:
    folder = SCRATCH / "card"
    folder.mkdir(exist_ok=True)
    (folder / "dataset.json").write_bytes(data)
    try:
        card = read_card(folder)
    except DataError:
        return
    assert isinstance(card, dict)


# ---------------------------------------------------------------------- images
@FAST
@given(st.binary(max_size=200))
def test_check_images_any_bytes(data: bytes) -> None:
    folder = SCRATCH / "img"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "0.png").write_bytes(data)
    ds = RecDataset(
        name="i",
        n_users=1,
        n_items=1,
        train=np.zeros((1, 2), np.int64),
        valid=np.zeros((0, 2), np.int64),
        test=np.zeros((0, 2), np.int64),
        path=folder,
        items=pd.DataFrame({"image": ["images/0.png"]}),
    )
    try:
        assert check_images(ds) == 1
    except DataError as exc:
        assert "0.png" in str(exc)


# ---------------------------------------------------------------------- settings
KEYS = st.sampled_from(sorted(TRAIN_DEFAULTS) + ["embedding_size", "n_layers", "reg_weight", "nope", ""])
VALUES = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["1", "0", "-1", "1e3", "0.5", "nan", "inf", "true", "recall@20", "cpu", "2.0", " 7 "]),
)


@settings(max_examples=150 * SCALE, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_resolve_config_any_strings(overrides: dict[str, str]) -> None:
    try:
        cfg = resolve_config("lightgcn", overrides)
    except ConfigError as exc:
        assert exc.row is not None and exc.fix
        return
    defaults = {**TRAIN_DEFAULTS, "embedding_size": 64, "n_layers": 2, "reg_weight": 1e-4}
    for key, default in defaults.items():
        assert type(cfg[key]) is type(default), (key, cfg[key])
        if isinstance(cfg[key], float):
            assert math.isfinite(cfg[key])
    assert cfg["epochs"] > 0 and cfg["batch_size"] > 0 and 0 <= cfg["seed"] < 2**63


@settings(max_examples=100 * SCALE, deadline=None)
@given(
    st.dictionaries(
        KEYS,
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 10**20),
            st.floats(allow_nan=True, allow_infinity=True),
            st.lists(st.integers(), max_size=2),
        ),
        max_size=3,
    )
)
def test_resolve_config_any_python_values(overrides) -> None:
    """Notebook parameters arrive as Python values, not strings."""
    try:
        cfg = resolve_config("lightgcn", overrides)
    except ConfigError:
        return
    for key, default in TRAIN_DEFAULTS.items():
        assert type(cfg[key]) is type(default), (key, cfg[key])


@FAST
@given(st.lists(st.text(max_size=10), max_size=4))
def test_parse_set_args_any_strings(items: list[str]) -> None:
    try:
        out = parse_set_args(items)
    except ConfigError:
        assert any("=" not in s or not s.partition("=")[0].strip() for s in items)
        return
    assert all(isinstance(k, str) and k and k == k.strip() for k in out)


# ---------------------------------------------------------------------- checkpoints
def _checkpoint_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"user_emb.weight": torch.arange(64, dtype=torch.float32).reshape(8, 8), "step": 3}, buf)
    return buf.getvalue()


GOOD_CKPT = _checkpoint_bytes()


@FAST
@given(st.binary(max_size=300))
def test_checkpoint_any_bytes(data: bytes) -> None:
    try:
        load_checkpoint_file(scratch("c.pt", data))
    except CheckpointError:
        pass


@FAST
@given(st.integers(0, len(GOOD_CKPT) - 1))
def test_checkpoint_truncated_anywhere(cut: int) -> None:
    with pytest.raises(CheckpointError):
        load_checkpoint_file(scratch("c.pt", GOOD_CKPT[:cut]))


@settings(max_examples=80 * SCALE, deadline=None)
@given(st.integers(0, len(GOOD_CKPT) - 1), st.integers(1, 255))
def test_checkpoint_flipped_byte_is_never_a_silent_wrong_load(pos: int, flip: int) -> None:
    data = bytearray(GOOD_CKPT)
    data[pos] ^= flip
    try:
        out = load_checkpoint_file(scratch("c.pt", bytes(data)))
    except CheckpointError:
        return
    # loaded: then it must be exactly what was saved (the flip hit padding or unused header bytes)
    assert torch.equal(out["user_emb.weight"], torch.arange(64, dtype=torch.float32).reshape(8, 8))
    assert out["step"] == 3


def test_good_checkpoint_loads() -> None:
    out = load_checkpoint_file(scratch("c.pt", GOOD_CKPT))
    assert out["step"] == 3 and zipfile.is_zipfile(io.BytesIO(GOOD_CKPT))
