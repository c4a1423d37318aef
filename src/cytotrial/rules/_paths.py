"""FCS paths as the workflow declares them and as the outputs record them.

Inputs are paths relative to the working directory (short, and unchanged when the project folder
moves); outputs record each file relative to the sample sheet, so they hold no path of the analyst's
machine and stay valid wherever the trial folder goes.
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
    """An FCS path of a sheet as a workflow input: relative to the working directory when inside it.

    A file outside the working directory keeps an absolute path (or the relative one the sheet's own
    path gives it).

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
    for candidate, root in ((path, base), (path.parent.resolve() / path.name, base.resolve())):
        if candidate.is_relative_to(root):
            return str(candidate.relative_to(root))
    return str(path)
