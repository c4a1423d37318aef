"""FCS paths as the workflow declares them and as the outputs record them.

Inputs are paths relative to the working directory, even for files outside it (``../data/...``),
so Snakemake's records hold no path of the analyst's machine; outputs record each file relative to
the sample sheet, so they hold none either and stay valid wherever the trial folder goes. Moving
the project folder keeps the inputs' paths when the data moves with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["fcs_for_workdir", "fcs_relative_to_sheet", "resolve_sheet_fcs", "sheet_fcs"]


def sheet_fcs(sheet: str | Path) -> dict[str, str]:
    """``sample_id`` -> the ``fcs`` value as a (checked) sample sheet gives it, in sheet order.

    Cells are read as the sheet reader reads them: text, surrounding spaces dropped.
    """
    table = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    table.columns = [str(column).strip() for column in table.columns]
    return dict(zip(table["sample_id"].str.strip(), table["fcs"].str.strip()))


def fcs_relative_to_sheet(value: str, sheet: str | Path) -> str:
    """An FCS path of a sheet as the outputs record it: relative to the sheet's folder.

    A relative path is kept as the sheet gives it; an absolute one is expressed relative to the
    sheet's folder.
    """
    if not Path(value).is_absolute():
        return value
    return os.path.relpath(value, os.path.abspath(Path(sheet).parent))


def resolve_sheet_fcs(value: str, sheet: str | Path) -> Path:
    """Where an FCS path of a sheet (or of an output) points: absolute, or under the sheet's folder."""
    path = Path(value)
    return path if path.is_absolute() else Path(sheet).parent / path


def fcs_for_workdir(value: str, sheet: str | Path, *, workdir: str | Path | None = None) -> str:
    """An FCS path of a sheet as a workflow input: always relative to the working directory.

    A file outside the working directory is reached with ``..`` from the working directory's real
    location, so neither the inputs Snakemake records nor anything derived from them holds a path
    of the analyst's machine.

    Parameters
    ----------
    value
        The sheet's ``fcs`` value.
    sheet
        The sheet's path, as the config gives it.
    workdir
        The working directory (the current one by default).
    """
    path = resolve_sheet_fcs(value, sheet)
    if not path.is_absolute():
        return str(path)
    base = Path(os.path.abspath(workdir or os.getcwd()))
    # the folder may be reached through a symbolic link: compare its real path too (not the file's)
    real_base = base.resolve()
    real_path = path.parent.resolve() / path.name
    for candidate, root in ((path, base), (real_path, real_base)):
        if candidate.is_relative_to(root):
            return str(candidate.relative_to(root))
    # ".." is resolved by the file system from the real folder, so go up from the real one
    try:
        return os.path.relpath(real_path, real_base)
    except ValueError:  # another drive (Windows): no relative path exists
        return str(path)
