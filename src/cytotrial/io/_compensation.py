"""Spillover matrices supplied as files (instead of each FCS file's own ``$SPILLOVER``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ConfigError

__all__ = ["read_compensation"]


def read_compensation(path: str | Path) -> pd.DataFrame:
    """A spillover matrix from a CSV/TSV file: header = detector names, one row per detector.

    A first column of detector names (as FlowJo and FlowKit export) is accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config gating.compensation: matrix file {path} not found")
    sep = "\t" if path.suffix.lower() in {".tsv", ".txt"} else ","
    table = pd.read_csv(path, sep=sep)
    if table.shape[1] == table.shape[0] + 1:
        table = table.set_index(table.columns[0])
    if table.shape[0] != table.shape[1]:
        raise ConfigError(
            f"{path}: a spillover matrix must be square (detectors x detectors), not {table.shape[0]}x{table.shape[1]}"
        )
    try:
        values = table.to_numpy(dtype=float)
    except ValueError:
        raise ConfigError(f"{path}: spillover matrix has non-numeric values") from None
    names = [str(c).strip() for c in table.columns]
    return pd.DataFrame(values, index=names, columns=names)
