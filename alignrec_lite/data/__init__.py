"""Datasets in MMRec's format: loading, validation, building and splitting."""

from .mmrec import RecDataset, load_mmrec, write_mmrec_files
from .split import kcore, mmrec_split, reindex

__all__ = ["RecDataset", "load_mmrec", "write_mmrec_files", "kcore", "mmrec_split", "reindex"]
