"""Datasets in MMRec's format: the catalogue (names and folders), loading, validation, building and splitting."""

from .catalog import open_dataset, resolve_dataset
from .mmrec import RecDataset, format_stats, load_mmrec
from .mmrec_files import write_mmrec_files
from .split import kcore, mmrec_split, reindex
from .stage1_copies import STAGE1_FEATURES, open_stage1, stage1_settings
from .subset import subsample_users, working_copy

__all__ = [
    "STAGE1_FEATURES",
    "RecDataset",
    "format_stats",
    "kcore",
    "load_mmrec",
    "mmrec_split",
    "open_dataset",
    "open_stage1",
    "reindex",
    "resolve_dataset",
    "stage1_settings",
    "subsample_users",
    "working_copy",
    "write_mmrec_files",
]
