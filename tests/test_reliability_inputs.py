"""Bad input never gives a wrong answer or a traceback (issue 8).

Each case below feeds one kind of bad input to one entry point of the kit — a dataset
folder, an ``.inter`` file, a mapping, ``items.csv``, a feature file, an image, a
setting, a command-line argument, a checkpoint, a run folder, an export path — and
checks that

* the kit raises its *own* error type (``DataError``, ``ConfigError``, ``CheckpointError``);
* the message names the file and line, or the key, and says how to fix it;
* on the command line the same error is one line on stderr and exit status 2;
* nothing is written: the case's folder is byte-for-byte unchanged afterwards (no
  partial output, no leftover temporary file).

``python tests/test_reliability_inputs.py`` prints the table of every case with the
exact message the user sees (that table is in docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_cases import SMOKE, Case, Cases, Cli, run_cli, snapshot
from reliability_cases import Ctx as BaseCtx

from alignrec_lite.cli import build_parser, main
from alignrec_lite.config import parse_set_args, resolve_config
from alignrec_lite.data.mmrec import load_mmrec
from alignrec_lite.data.mmrec_files import read_card
from alignrec_lite.data.toy import load_toy
from alignrec_lite.errors import AlignRecError, CheckpointError, ConfigError, DataError
from alignrec_lite.utils import get_device

HEADER = "userID\titemID\tx_label"


# ---------------------------------------------------------------------- machinery
class Ctx(BaseCtx):
    """What a case may use: its own folder, a copy of the smoke data, a finished run."""

    def inter(self, body: str | bytes, *, header: str = HEADER, name: str = "ds") -> Path:
        """A folder holding one ``x.inter`` made of ``header`` + ``body``."""
        folder = self.tmp / name
        folder.mkdir()
        data = body if isinstance(body, bytes) else (header + "\n" + body).encode("utf-8")
        (folder / "x.inter").write_bytes(data)
        return folder


def good_rows(n_users: int = 4, n_items: int = 5) -> list[str]:
    """Valid rows: every user has items 0..n-1, the last two as valid and test."""
    lab = {n_items - 2: 1, n_items - 1: 2}
    return [f"{u}\t{i}\t{lab.get(i, 0)}" for u in range(n_users) for i in range(n_items)]


def body(rows: list[str]) -> str:
    return "\n".join(rows) + "\n"


CASES = Cases()
case = CASES.case


def _png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares ``width x height`` pixels."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------- dataset folders
@case("folder_missing", "load_mmrec", "the dataset folder does not exist", DataError, "no-such-folder", "Fix:")
def _(ctx):
    return lambda: load_mmrec(ctx.tmp / "no-such-folder")


@case("folder_is_file", "load_mmrec", "a file given where a folder is expected", DataError, "a-file.inter")
def _(ctx):
    (ctx.tmp / "a-file.inter").write_text(HEADER + "\n")
    return lambda: load_mmrec(ctx.tmp / "a-file.inter")


@case("no_inter_file", "load_mmrec", "folder without a .inter file", DataError, "empty-folder", ".inter")
def _(ctx):
    (ctx.tmp / "empty-folder").mkdir()
    return lambda: load_mmrec(ctx.tmp / "empty-folder")


@case("two_inter_files", "load_mmrec", "two .inter files in one folder", DataError, "a.inter, b.inter")
def _(ctx):
    folder = ctx.inter(body(good_rows()))
    shutil.copy(folder / "x.inter", folder / "a.inter")
    (folder / "x.inter").rename(folder / "b.inter")
    return lambda: load_mmrec(folder)


# ---------------------------------------------------------------------- .inter files
@case("inter_empty", "load_mmrec", ".inter file of 0 bytes (failed download)", DataError, "x.inter", "empty")
def _(ctx):
    folder = ctx.inter(b"")
    return lambda: load_mmrec(folder)


@case("inter_not_utf8", "load_mmrec", "Latin-1 bytes in a raw ID column", DataError, "x.inter", "line 3", "UTF-8")
def _(ctx):
    data = (HEADER + "\n0\t0\t0\n").encode() + b"1\t1\t0\xe9\n"
    folder = ctx.inter(data)
    return lambda: load_mmrec(folder)


@case("inter_nul_bytes", "load_mmrec", "binary/corrupt file (NUL bytes)", DataError, "x.inter", "line 2", "NUL")
def _(ctx):
    folder = ctx.inter((HEADER + "\n0\t0\x00\t0\n").encode())
    return lambda: load_mmrec(folder)


@case(
    "inter_comma_separated",
    "load_mmrec",
    "comma-separated instead of tab-separated",
    DataError,
    "x.inter",
    "line 1",
    "tabs",
)
def _(ctx):
    rows = [r.replace("\t", ",") for r in good_rows()]
    folder = ctx.inter(body(rows), header=HEADER.replace("\t", ","))
    return lambda: load_mmrec(folder)


@case("inter_missing_column", "load_mmrec", "header without x_label", DataError, "x.inter", "line 1", "x_label")
def _(ctx):
    rows = [r.rsplit("\t", 1)[0] for r in good_rows()]
    folder = ctx.inter(body(rows), header="userID\titemID")
    return lambda: load_mmrec(folder)


@case("inter_duplicate_column", "load_mmrec", "a column named twice in the header", DataError, "x.inter", "line 1")
def _(ctx):
    rows = [r + "\t0" for r in good_rows()]
    folder = ctx.inter(body(rows), header=HEADER + "\titemID")
    return lambda: load_mmrec(folder)


@case(
    "inter_truncated",
    "load_mmrec",
    "last row cut in the middle (interrupted download)",
    DataError,
    "x.inter",
    "line 21",
    "fields",
)
def _(ctx):
    folder = ctx.inter(body(good_rows())[:-3])
    return lambda: load_mmrec(folder)


@case("inter_blank_line", "load_mmrec", "a blank line between rows", DataError, "x.inter", "line 4", "empty line")
def _(ctx):
    rows = good_rows()
    rows.insert(2, "")
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case(
    "inter_text_id",
    "load_mmrec",
    "raw (string) user ID instead of a 0-based integer",
    DataError,
    "x.inter",
    "line 3",
    "userID",
)
def _(ctx):
    rows = good_rows()
    rows[1] = "A3F2\t1\t0"
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case("inter_float_id", "load_mmrec", "fractional itemID", DataError, "x.inter", "line 4", "itemID")
def _(ctx):
    rows = good_rows()
    rows[2] = "0\t2.5\t0"
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case("inter_negative_id", "load_mmrec", "negative itemID", DataError, "x.inter", "line 2", "negative")
def _(ctx):
    rows = good_rows()
    rows[0] = "0\t-1\t0"
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case("inter_bad_x_label", "load_mmrec", "x_label outside 0/1/2", DataError, "x.inter", "line 5", "x_label")
def _(ctx):
    rows = good_rows()
    rows[3] = "0\t3\t3"
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case("inter_bad_rating", "load_mmrec", "non-numeric rating", DataError, "x.inter", "line 2", "rating")
def _(ctx):
    rows = [r.rsplit("\t", 1)[0] + "\t5\t" + r.rsplit("\t", 1)[1] for r in good_rows()]
    rows[0] = "0\t0\tfive\t0"
    folder = ctx.inter(body(rows), header="userID\titemID\trating\tx_label")
    return lambda: load_mmrec(folder)


@case("inter_duplicate_pair", "load_mmrec", "the same (user, item) twice", DataError, "x.inter", "line 7", "line 2")
def _(ctx):
    rows = good_rows()
    rows.insert(5, "0\t0\t0")
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case("inter_header_only", "load_mmrec", "header but no rows", DataError, "x.inter", "no interactions")
def _(ctx):
    folder = ctx.inter(HEADER.encode() + b"\n")
    return lambda: load_mmrec(folder)


@case(
    "inter_gap_in_ids",
    "load_mmrec",
    "itemIDs not contiguous (raw IDs not re-indexed)",
    DataError,
    "x.inter",
    "contiguous",
)
def _(ctx):
    rows = [r.replace("\t4\t", "\t40\t") for r in good_rows()]
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case(
    "inter_huge_id",
    "load_mmrec",
    "an 18-digit userID (would need petabytes of flags)",
    DataError,
    "x.inter",
    "line 22",
    "implausibly large",
)
def _(ctx):
    folder = ctx.inter(body(good_rows() + ["999999999999999999\t0\t0"]))
    return lambda: load_mmrec(folder)


@case("inter_cold_user", "load_mmrec", "a user with no training row", DataError, "x.inter", "line 2", "training")
def _(ctx):
    rows = [r for r in good_rows() if not (r.startswith("0\t") and r.endswith("\t0"))]
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


@case(
    "inter_line_separator",
    "load_mmrec",
    "a vertical-tab/\\x1c inside a row (was silently mis-parsed)",
    DataError,
    "x.inter",
    "line 2",
    "fields",
)
def _(ctx):
    rows = good_rows()
    rows[0] = "7\t7\t\x1c0\t0\t0"
    folder = ctx.inter(body(rows))
    return lambda: load_mmrec(folder)


# ---------------------------------------------------------------------- ID mappings
@case(
    "mapping_wrong_header",
    "load_mmrec",
    "i_id_mapping.csv without an itemID column",
    DataError,
    "i_id_mapping.csv",
    "line 1",
    "itemID",
)
def _(ctx):
    folder = ctx.smoke()
    text = (folder / "i_id_mapping.csv").read_text().replace("\titemID", "\tid", 1)
    (folder / "i_id_mapping.csv").write_text(text)
    return lambda: load_mmrec(folder)


@case(
    "mapping_row_count",
    "load_mmrec",
    "u_id_mapping.csv with a user missing",
    DataError,
    "u_id_mapping.csv",
    "150 userIDs",
)
def _(ctx):
    folder = ctx.smoke()
    lines = (folder / "u_id_mapping.csv").read_text().splitlines()
    (folder / "u_id_mapping.csv").write_text("\n".join(lines[:-1]) + "\n")
    return lambda: load_mmrec(folder)


@case(
    "mapping_text_id",
    "load_mmrec",
    "a non-integer itemID in i_id_mapping.csv",
    DataError,
    "i_id_mapping.csv",
    "line 3",
    "not an integer",
)
def _(ctx):
    folder = ctx.smoke()
    lines = (folder / "i_id_mapping.csv").read_text().splitlines()
    lines[2] = "item-0002\tone"
    (folder / "i_id_mapping.csv").write_text("\n".join(lines) + "\n")
    return lambda: load_mmrec(folder)


@case(
    "mapping_not_utf8",
    "load_mmrec",
    "i_id_mapping.csv in another encoding",
    DataError,
    "i_id_mapping.csv",
    "UnicodeDecodeError",
)
def _(ctx):
    folder = ctx.smoke()
    data = (folder / "i_id_mapping.csv").read_bytes().replace(b"item-0002", b"item-\xe9\xff")
    (folder / "i_id_mapping.csv").write_bytes(data)
    return lambda: load_mmrec(folder)


# ---------------------------------------------------------------------- items.csv
@case("items_no_itemID", "load_mmrec", "items.csv without an itemID column", DataError, "items.csv", "line 1")
def _(ctx):
    folder = ctx.smoke()
    text = (folder / "items.csv").read_text().replace("itemID,", "id,", 1)
    (folder / "items.csv").write_text(text)
    return lambda: load_mmrec(folder)


@case("items_missing_rows", "load_mmrec", "items.csv with rows missing (stale copy)", DataError, "items.csv", "0..119")
def _(ctx):
    folder = ctx.smoke()
    lines = (folder / "items.csv").read_text().splitlines()
    (folder / "items.csv").write_text("\n".join(lines[:-5]) + "\n")
    return lambda: load_mmrec(folder)


@case(
    "items_fractional_id",
    "load_mmrec",
    "itemID 1.5 in items.csv (was silently read as 1)",
    DataError,
    "items.csv",
    "line 3",
    "'1.5'",
)
def _(ctx):
    folder = ctx.smoke()
    lines = (folder / "items.csv").read_text().splitlines()
    lines[2] = "1.5" + lines[2][1:]
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    return lambda: load_mmrec(folder)


@case("items_unparseable", "load_mmrec", "items.csv with an unterminated quote", DataError, "items.csv", "ParserError")
def _(ctx):
    folder = ctx.smoke()
    lines = (folder / "items.csv").read_text().splitlines()
    lines[-1] = lines[-1].replace(",", ',"', 1)  # an opening quote that is never closed
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    return lambda: load_mmrec(folder)


@case("card_not_object", "read_card", "dataset.json holding a list", DataError, "dataset.json", "object")
def _(ctx):
    folder = ctx.smoke()
    (folder / "dataset.json").write_text("[1, 2]\n")
    return lambda: read_card(folder)


# ---------------------------------------------------------------------- feature files
def _feature_case(ctx, write: Callable[[Path], None]):
    folder = ctx.smoke()
    write(folder / "image_feat.npy")
    return lambda: load_mmrec(folder)


@case(
    "feature_object_array",
    "load_mmrec",
    "image_feat.npy holding Python objects (pickle)",
    DataError,
    "image_feat.npy",
    "pickle",
)
def _(ctx):
    return _feature_case(ctx, lambda p: np.save(p, np.array([[1, "a"]] * 120, dtype=object), allow_pickle=True))


@case(
    "feature_truncated",
    "load_mmrec",
    "image_feat.npy cut short (interrupted copy)",
    DataError,
    "image_feat.npy",
    "shorter than its header",
)
def _(ctx):
    return _feature_case(ctx, lambda p: p.write_bytes(p.read_bytes()[:-100]))


@case(
    "feature_hostile_header",
    "load_mmrec",
    ".npy header claiming 10^15 floats (was MemoryError)",
    DataError,
    "image_feat.npy",
    "shorter than its header",
)
def _(ctx):
    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**6)})
            fh.write(b"\0" * 64)

    return _feature_case(ctx, write)


@case(
    "feature_damaged_header",
    "load_mmrec",
    ".npy whose header text is garbled (was SyntaxError/TokenError)",
    DataError,
    "image_feat.npy",
    "damaged header",
)
def _(ctx):
    def write(p: Path) -> None:
        data = bytearray(p.read_bytes())
        data[100:110] = b"\x00" * 9 + b"("
        p.write_bytes(bytes(data))

    return _feature_case(ctx, write)


@case(
    "feature_wrong_rows",
    "load_mmrec",
    "features of another dataset (row count != n_items)",
    DataError,
    "image_feat.npy",
    "120 items",
)
def _(ctx):
    return _feature_case(ctx, lambda p: np.save(p, np.zeros((100, 8), np.float32)))


@case("feature_1d", "load_mmrec", "a 1-D feature array", DataError, "image_feat.npy", "2-D")
def _(ctx):
    return _feature_case(ctx, lambda p: np.save(p, np.zeros(120, np.float32)))


@case("feature_nan", "load_mmrec", "a NaN row (item whose image failed)", DataError, "image_feat.npy", "itemID 7")
def _(ctx):
    def write(p: Path) -> None:
        x = np.ones((120, 4), np.float32)
        x[7, 2] = np.nan
        np.save(p, x)

    return _feature_case(ctx, write)


@case("feature_npz", "load_mmrec", "an .npz archive renamed .npy", DataError, "image_feat.npy", "np.savez")
def _(ctx):
    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, x=np.zeros((120, 4)))

    return _feature_case(ctx, write)


@case("feature_text_file", "load_mmrec", "a CSV saved as .npy", DataError, "image_feat.npy", ".npy signature")
def _(ctx):
    return _feature_case(ctx, lambda p: p.write_text("0.1,0.2\n0.3,0.4\n"))


@case("feature_strings", "load_mmrec", "an array of strings", DataError, "image_feat.npy", "dtype")
def _(ctx):
    return _feature_case(ctx, lambda p: np.save(p, np.full((120, 3), "x")))


@case(
    "feature_not_present",
    "RecDataset.feature",
    "asking for a feature the folder does not have",
    DataError,
    "mm_feat.npy",
    "available",
)
def _(ctx):
    ds = load_toy("smoke")
    return lambda: ds.feature("mm")


# ---------------------------------------------------------------------- images
def _image_case(ctx, item: int, write: Callable[[Path], None] | None):
    folder = ctx.smoke()
    path = folder / "images" / f"{item}.png"
    if write is None:
        path.unlink()
    else:
        write(path)
    return Cli(["data", "check", str(folder)])


@case("image_truncated", "data check", "an image cut short", DataError, f"images{Path('/')}5.png", "itemID 5")
def _(ctx):
    return _image_case(ctx, 5, lambda p: p.write_bytes(p.read_bytes()[:60]))


@case(
    "image_missing",
    "data check",
    "an image file listed in items.csv is missing",
    DataError,
    f"images{Path('/')}9.png",
    "FileNotFoundError",
)
def _(ctx):
    return _image_case(ctx, 9, None)


@case(
    "image_not_image",
    "data check",
    "an HTML error page saved as .png",
    DataError,
    f"images{Path('/')}3.png",
    "itemID 3",
)
def _(ctx):
    return _image_case(ctx, 3, lambda p: p.write_text("<html>404 Not Found</html>"))


@case(
    "image_bomb",
    "data check",
    "a decompression bomb (100,000 x 100,000 px header)",
    DataError,
    f"images{Path('/')}2.png",
    "DecompressionBomb",
)
def _(ctx):
    return _image_case(ctx, 2, lambda p: p.write_bytes(_png(100_000, 100_000)))


# ---------------------------------------------------------------------- settings (--set, config, notebooks)
def _train_cli(ctx, *extra: str, model: str = "bpr", out: bool = True) -> Cli:
    argv = ["train", str(SMOKE), "--model", model, "--quiet", *extra]
    if out:
        argv += ["--out", str(ctx.tmp / "new-run")]
    return Cli(argv)


@case("set_unknown_key", "train --set", "a misspelt setting", ConfigError, "'learnig_rate'", "learning_rate")
def _(ctx):
    return _train_cli(ctx, "--set", "learnig_rate=0.01")


@case("set_not_int", "train --set", "epochs=ten", ConfigError, "epochs", "--set epochs=")
def _(ctx):
    return _train_cli(ctx, "--set", "epochs=ten")


@case("set_fraction_int", "train --set", "epochs=2.5", ConfigError, "epochs")
def _(ctx):
    return _train_cli(ctx, "--set", "epochs=2.5")


@case("set_negative", "train --set", "batch_size=-8", ConfigError, "batch_size", "> 0")
def _(ctx):
    return _train_cli(ctx, "--set", "batch_size=-8")


@case("set_nan", "train --set", "learning_rate=nan", ConfigError, "learning_rate")
def _(ctx):
    return _train_cli(ctx, "--set", "learning_rate=nan")


@case("set_no_equals", "train --set", "--set epochs (no value)", ConfigError, "--set", "key=value")
def _(ctx):
    return _train_cli(ctx, "--set", "epochs")


@case("set_bad_metric", "train --set", "valid_metric=auc@20", ConfigError, "valid_metric", "recall@20")
def _(ctx):
    return _train_cli(ctx, "--set", "valid_metric=auc@20")


@case("set_bad_bool", "train --set", "mask_valid_at_test=maybe", ConfigError, "mask_valid_at_test", "bool", "=false")
def _(ctx):
    return _train_cli(ctx, "--set", "mask_valid_at_test=maybe")


@case("set_bad_device", "train --set", "device=tpu", ConfigError, "device", "cpu")
def _(ctx):
    return _train_cli(ctx, "--set", "device=tpu")


@case("set_negative_seed", "train --set", "seed=-1 (was a NumPy ValueError)", ConfigError, "seed", "seed=")
def _(ctx):
    return _train_cli(ctx, "--set", "seed=-1")


@case("cuda_without_gpu", "train --set", "device=cuda on a machine without a GPU", ConfigError, "device", "cpu")
def _(ctx):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return _train_cli(ctx, "--set", "device=cuda", "--set", "epochs=1")


@case(
    "override_wrong_type",
    "resolve_config",
    "notebook parameter epochs=None (was a TypeError)",
    ConfigError,
    "epochs",
    "integer",
)
def _(ctx):
    return lambda: resolve_config("lightgcn", {"epochs": None})


@case(
    "override_nan_number", "resolve_config", "notebook parameter weight_decay=float('nan')", ConfigError, "weight_decay"
)
def _(ctx):
    return lambda: resolve_config("lightgcn", {"weight_decay": float("nan")})


@case("parse_set_empty_key", "parse_set_args", "--set =5", ConfigError, "--set")
def _(ctx):
    return lambda: parse_set_args(["=5"])


@case("unknown_model", "train --model", "--model lightgnc", ConfigError, "model", "lightgcn")
def _(ctx):
    return _train_cli(ctx, model="lightgnc")


@case("unknown_toy_size", "load_toy", "load_toy('big')", ConfigError, "size", "smoke")
def _(ctx):
    return lambda: load_toy("big")


@case("unknown_device_api", "get_device", "get_device('gpu0')", ConfigError, "device")
def _(ctx):
    return lambda: get_device("gpu0")


# ---------------------------------------------------------------------- command-line arguments, run folders
@case("cli_resume_without_out", "train --resume", "--resume without --out", ConfigError, "--resume", "--out")
def _(ctx):
    return _train_cli(ctx, "--resume", out=False)


@case(
    "cli_out_holds_run",
    "train --out",
    "--out of a finished run, without --resume/--overwrite",
    ConfigError,
    "--out",
    "--resume",
)
def _(ctx):
    return Cli(["train", str(SMOKE), "--model", "bpr", "--quiet", "--out", str(ctx.run())])


@case(
    "cli_out_is_file",
    "train --out",
    "--out names an existing file (was FileExistsError)",
    ConfigError,
    "notes.txt",
    "--out",
)
def _(ctx):
    (ctx.tmp / "notes.txt").write_text("my notes\n")
    return Cli(["train", str(SMOKE), "--model", "bpr", "--quiet", "--out", str(ctx.tmp / "notes.txt")])


@case("cli_data_missing", "train DIR", "train on a folder that does not exist", DataError, "no-such-data")
def _(ctx):
    return Cli(["train", str(ctx.tmp / "no-such-data"), "--model", "bpr", "--quiet"])


@case("cli_k_zero", "recommend --k", "--k 0", ConfigError, "--k")
def _(ctx):
    return Cli(["recommend", str(ctx.run()), "--k", "0", "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "cli_batch_users_zero",
    "recommend --batch-users",
    "--batch-users 0 (was ValueError from range())",
    ConfigError,
    "--batch-users",
)
def _(ctx):
    return Cli(["recommend", str(ctx.run()), "--batch-users", "0", "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "cli_batch_users_negative",
    "recommend --batch-users",
    "--batch-users -5 (silently exported nothing)",
    ConfigError,
    "--batch-users",
)
def _(ctx):
    return Cli(["recommend", str(ctx.run()), "--batch-users", "-5", "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case("cli_export_suffix", "recommend --out", "--out top.txt (unknown format)", ConfigError, "--out", ".csv")
def _(ctx):
    return Cli(["recommend", str(ctx.run()), "--out", str(ctx.tmp / "top.txt"), "--quiet"])


@case(
    "cli_export_is_folder",
    "recommend --out",
    "--out names an existing folder (was IsADirectoryError)",
    ConfigError,
    "exports.csv",
    "--out",
)
def _(ctx):
    (ctx.tmp / "exports.csv").mkdir()
    return Cli(["recommend", str(ctx.run()), "--out", str(ctx.tmp / "exports.csv"), "--quiet"])


@case("cli_k_not_int", "recommend --k", "--k ten (argparse)", None, "--k", "invalid int value")
def _(ctx):
    return Cli(["recommend", str(ctx.tmp), "--k", "ten", "--out", str(ctx.tmp / "top.csv")])


@case(
    "run_not_finished", "recommend RUN", "a run folder without metrics.json", CheckpointError, "metrics.json", "--out"
)
def _(ctx):
    (ctx.tmp / "half-run").mkdir()
    return Cli(["recommend", str(ctx.tmp / "half-run"), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "run_metrics_damaged", "recommend RUN", "metrics.json cut short", CheckpointError, "metrics.json", "JSONDecodeError"
)
def _(ctx):
    run = ctx.run()
    (run / "metrics.json").write_bytes((run / "metrics.json").read_bytes()[:200])
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "run_metrics_not_object",
    "recommend RUN",
    "metrics.json holding a list (was TypeError)",
    CheckpointError,
    "metrics.json",
    "damaged",
)
def _(ctx):
    run = ctx.run()
    (run / "metrics.json").write_text("[]\n")
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "run_dataset_gone",
    "recommend RUN",
    "the dataset the run was trained on was moved",
    CheckpointError,
    "metrics.json",
    "dataset_path",
)
def _(ctx):
    run = ctx.run()
    rec = json.loads((run / "metrics.json").read_text())
    rec["dataset_path"] = str(ctx.tmp / "moved-away")
    (run / "metrics.json").write_text(json.dumps(rec))
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case("run_best_missing", "recommend RUN", "best.pt deleted", CheckpointError, "best.pt", "not found")
def _(ctx):
    run = ctx.run()
    (run / "best.pt").unlink()
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case("run_best_corrupt", "recommend RUN", "best.pt overwritten with garbage", CheckpointError, "best.pt", "damaged")
def _(ctx):
    run = ctx.run()
    (run / "best.pt").write_bytes(b"not a checkpoint" * 10)
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "run_best_other_dataset",
    "recommend RUN",
    "best.pt of another dataset (shape mismatch)",
    CheckpointError,
    "best.pt",
    "size mismatch",
)
def _(ctx):
    run = ctx.run()
    torch.save({"user_emb.weight": torch.zeros(3, 64), "item_emb.weight": torch.zeros(4, 64)}, run / "best.pt")
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


@case(
    "run_best_not_weights",
    "recommend RUN",
    "best.pt holding a list (was TypeError)",
    CheckpointError,
    "best.pt",
    "dict",
)
def _(ctx):
    run = ctx.run()
    torch.save([1, 2, 3], run / "best.pt")
    return Cli(["recommend", str(run), "--out", str(ctx.tmp / "top.csv"), "--quiet"])


# ---------------------------------------------------------------------- checkpoints (train --resume)
def _resume(ctx, run: Path, *extra: str, data: Path = SMOKE, model: str = "bpr") -> Cli:
    return Cli(
        ["train", str(data), "--model", model, "--quiet", "--set", "epochs=3", "--out", str(run), "--resume", *extra]
    )


@case("resume_nothing", "train --resume", "--resume on an empty folder", CheckpointError, "last.pt")
def _(ctx):
    (ctx.tmp / "empty-run").mkdir()
    return _resume(ctx, ctx.tmp / "empty-run")


@case(
    "resume_corrupt", "train --resume", "last.pt overwritten with random bytes", CheckpointError, "last.pt", "damaged"
)
def _(ctx):
    run = ctx.run()
    (run / "last.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    return _resume(ctx, run)


@case(
    "resume_truncated",
    "train --resume",
    "last.pt cut in half (disk full / copy interrupted)",
    CheckpointError,
    "last.pt",
    "damaged",
)
def _(ctx):
    run = ctx.run()
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    return _resume(ctx, run)


@case("resume_wrong_model", "train --resume", "resuming a bpr run as lightgcn", CheckpointError, "last.pt", "model")
def _(ctx):
    return _resume(ctx, ctx.run(), model="lightgcn")


@case(
    "resume_changed_setting",
    "train --resume",
    "resuming with another embedding_size",
    CheckpointError,
    "last.pt",
    "embedding_size",
)
def _(ctx):
    return _resume(ctx, ctx.run(), "--set", "embedding_size=32")


@case(
    "resume_other_dataset",
    "train --resume",
    "resuming on another dataset (was RuntimeError)",
    CheckpointError,
    "last.pt",
    "another dataset",
)
def _(ctx):
    other = ctx.inter(body(good_rows(6, 5)))
    return _resume(ctx, ctx.run(), data=other)


@case(
    "resume_not_checkpoint",
    "train --resume",
    "last.pt that is a torch file but not a kit checkpoint (was AttributeError)",
    CheckpointError,
    "last.pt",
    "not a training checkpoint",
)
def _(ctx):
    run = ctx.run()
    torch.save({"weights": torch.zeros(2)}, run / "last.pt")
    return _resume(ctx, run)


# ---------------------------------------------------------------------- running the cases
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-epoch BPR run on a copy of the smoke data (copied again by each case)."""
    root = tmp_path_factory.mktemp("finished")
    data = root / "shop"
    shutil.copytree(SMOKE, data)
    rc = main(
        [
            "train",
            str(data),
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
    assert rc == 0
    return root / "run"


def run_case(c: Case, ctx: Ctx) -> str:
    """Run one case, check everything, return the message the user sees."""
    action = c.build(ctx)
    before = snapshot(ctx.tmp)
    if isinstance(action, Cli):
        if c.error is not None:
            args = build_parser().parse_args(action.argv)
            with pytest.raises(AlignRecError) as info:
                args.func(args)
            assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
        rc, _, text = run_cli(action.argv)
        text = text.strip()
        assert rc == 2, text
        last = text.splitlines()[-1]
        if c.error is not None:
            assert len(text.splitlines()) <= 2, text
            assert text.startswith("alignrec-lite: error: "), text
        message = last
    else:
        with pytest.raises(AlignRecError) as info:
            action()
        assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
        assert "\n" not in message
    if c.error is not None:
        assert "Fix: " in message, message
        assert len(message.split("Fix: ", 1)[1]) > 5, message
    for part in c.where:
        assert part in message, f"{part!r} not in {message!r}"
    assert snapshot(ctx.tmp) == before, "the failed call wrote or changed files"
    return message


def _tmp_subfolder(tmp_path: Path) -> Path:
    folder = tmp_path / "case"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, finished_run: Path) -> None:
    run_case(c, Ctx(_tmp_subfolder(tmp_path), finished_run))


def test_enough_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 30
    assert len({c.entry.split()[0] for c in CASES}) >= 8


def test_good_inputs_still_load(tmp_path: Path) -> None:
    """The checks are not so strict that good files fail: CRLF, BOM, spaces, optional columns."""
    rows = good_rows()
    text = "\ufeff" + HEADER + "\r\n" + "\r\n".join(r.replace("\t", " \t", 1) for r in rows) + "\r\n"
    folder = tmp_path / "ok"
    folder.mkdir()
    (folder / "x.inter").write_text(text, encoding="utf-8", newline="")
    ds = load_mmrec(folder)
    assert (ds.n_users, ds.n_items) == (4, 5)
    assert len(ds.train) == 12 and len(ds.valid) == 4 and len(ds.test) == 4
    assert ds.train[:3].tolist() == [[0, 0], [0, 1], [0, 2]]


def test_docs_table_lists_every_case() -> None:
    """docs/RELIABILITY.md shows every case (regenerate it with `python tests/test_reliability_inputs.py`)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"test_bad_input[{c.id}]" not in doc]
    assert not missing, f"not in docs/RELIABILITY.md: {missing}"


# ---------------------------------------------------------------------- the table for docs/RELIABILITY.md
def _table() -> str:  # pragma: no cover - documentation helper
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        run_root = root / "finished"
        run_root.mkdir()
        shutil.copytree(SMOKE, run_root / "shop")
        with contextlib.redirect_stdout(io.StringIO()):
            main(
                [
                    "train",
                    str(run_root / "shop"),
                    "--model",
                    "bpr",
                    "--set",
                    "epochs=1",
                    "--out",
                    str(run_root / "run"),
                    "--quiet",
                ]
            )
        lines = ["| # | entry point | bad input | what the user sees | test |", "|---|---|---|---|---|"]
        for n, c in enumerate(CASES, 1):
            tmp = root / c.id
            tmp.mkdir()
            try:
                msg = run_case(c, Ctx(tmp, run_root / "run"))
            except BaseException as exc:
                msg = f"(not run here: {type(exc).__name__}: {exc})"
            msg = msg.replace(str(tmp), "…").replace(str(root), "…").replace(str(SMOKE), "datasets/smoke-shop")
            msg = msg.replace("|", "\\|")
            lines.append(f"| {n} | `{c.entry}` | {c.what} | `` {msg} `` | `test_bad_input[{c.id}]` |")
        return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_table())
