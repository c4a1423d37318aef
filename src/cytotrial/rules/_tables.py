"""Reading and writing the workflow's intermediate tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, lineterminator="\n")


def read_tsvs(paths: Sequence[str | Path], columns: Sequence[str]) -> pd.DataFrame:
    frames = [
        pd.read_csv(p, sep="\t", dtype={"sample_id": str}, keep_default_na=False) for p in paths
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
