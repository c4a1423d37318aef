"""A spillover matrix file given in config (``gating.compensation``) against the panels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._strategies import located, one_line

if TYPE_CHECKING:
    from ..gating import PanelGating

__all__ = ["compensation_findings"]

_MAX_CONDITION = 1e12  # beyond this a matrix is singular for practical purposes
_SHOWN = 5  # bad cells named in a line, at most


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def _groups(panels: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Normalised channel name -> its marker (the config's ``panels:``)."""
    owner: dict[str, str] = {}
    for marker, names in panels.items():
        names = [names] if isinstance(names, str) else list(names or [])
        for name in [marker, *names]:
            owner.setdefault(_norm(name), str(marker))
    return owner


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read(path: Path, label: str) -> tuple[pd.DataFrame | None, list[str]]:
    """The matrix as text cells with detector names as columns (and as index when given).

    The header is read as it is written (pandas would rename a repeated name).
    """
    sep = "\t" if path.suffix.lower() in {".tsv", ".txt"} else ","
    try:
        cells = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return None, [f"{label}: the spillover matrix file is empty; export it again"]
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        kind = "tab" if sep == "\t" else "comma"
        return None, [
            f"{label}: not a readable {kind}-separated matrix ({one_line(error)}); header = "
            "detector names, one row per detector"
        ]
    cells = cells.apply(lambda column: column.str.strip())
    names, rows = list(cells.iloc[0]), cells.iloc[1:].reset_index(drop=True)
    index = None
    if rows.shape[1] > 1 and not any(_is_number(v) for v in rows.iloc[:, 0]):  # names first
        index, names, rows = list(rows.iloc[:, 0]), names[1:], rows.iloc[:, 1:]
    if rows.shape[0] != rows.shape[1]:
        return None, [
            f"{label}: a spillover matrix must be square (detectors x detectors), not "
            f"{rows.shape[0]}x{rows.shape[1]}"
        ]
    table = pd.DataFrame(rows.to_numpy(), columns=names, index=index)
    return table, []


def _values(table: pd.DataFrame, label: str) -> tuple[np.ndarray | None, list[str]]:
    """The matrix as numbers, or one line naming its cells that are not numbers."""
    values = np.full(table.shape, np.nan)
    bad = []
    for i in range(table.shape[0]):
        for j, column in enumerate(table.columns):
            text = str(table.iat[i, j]).strip()
            try:
                values[i, j] = float(text)
            except ValueError:
                bad.append(
                    f"row {i + 2} column {column!r}: {'empty' if not text else 'not a number'}"
                )
                continue
            if not np.isfinite(values[i, j]):
                bad.append(f"row {i + 2} column {column!r}: not finite")
    if bad:
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        return None, [
            f"{label}: spillover matrix cells must be numbers ({'; '.join(bad[:_SHOWN])}{more})"
        ]
    return values, []


def _matrix_problems(table: pd.DataFrame, values: np.ndarray, label: str) -> list[str]:
    """Names, diagonal and invertibility of a numeric square matrix."""
    problems = []
    names = list(table.columns)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"{label}: detector(s) {', '.join(repeated)} appear more than once")
    if not isinstance(table.index, pd.RangeIndex) and list(table.index) != names:
        problems.append(
            f"{label}: the row names ({', '.join(table.index)}) are not the column names in the "
            "same order; a spillover matrix has one row and one column per detector"
        )
    diagonal = np.diag(values)
    off = [names[i] for i in np.flatnonzero(np.abs(diagonal - 1.0) > 1e-6)]
    if off:
        problems.append(
            f"{label}: the diagonal must be 1 (each detector's own signal), not at "
            f"{', '.join(off)}; give the spillover matrix as fractions, not percentages or its "
            "inverse"
        )
    condition = np.linalg.cond(values)
    if not np.isfinite(condition) or condition > _MAX_CONDITION:
        problems.append(f"{label}: the spillover matrix is singular; it cannot compensate")
    return problems


def _compensated(gating: PanelGating) -> list[str]:
    """Channels the panel's gates read compensated with the file's own (or config's) matrix."""
    channels: list[str] = []
    for gate in gating.strategy.gates:
        for dim in getattr(gate.fk_gate, "dimensions", None) or []:
            if getattr(dim, "compensation_ref", None) != "FCS":
                continue
            name = str(getattr(dim, "id", None) or getattr(dim, "dimension_ref", ""))
            if name and name not in channels:
                channels.append(name)
    return channels


def _panel_problems(
    names: Iterable[str],
    panels: Mapping[str, Sequence[str]],
    gatings: Mapping[str, PanelGating],
    label: str,
) -> list[str]:
    """Detectors against the config's markers, and each panel's compensated channels."""
    owner = _groups(panels)
    problems = []
    by_marker: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        if _norm(name) in owner:
            by_marker.setdefault(owner[_norm(name)], []).append(name)
    for marker, detectors in by_marker.items():
        if len(detectors) > 1:
            problems.append(
                f"{label}: detectors {', '.join(detectors)} are all marker {marker} (config "
                "panels:); a matrix has one detector per marker"
            )
    held = {_norm(n) for n in names} | {owner[_norm(n)] for n in names if _norm(n) in owner}
    lacking: dict[str, list[str]] = {}
    for panel, gating in gatings.items():
        for channel in _compensated(gating):
            if _norm(channel) not in held and owner.get(_norm(channel)) not in held:
                lacking.setdefault(channel, []).append(panel)
    if lacking:
        said = ", ".join(f"{c} (strategies {', '.join(p)})" for c, p in lacking.items())
        problems.append(
            f"{label}: has no detector for {said}, which the gates compensate; give the matrix "
            "a row and a column for each"
        )
    return problems


def compensation_findings(
    config: Mapping, gatings: Mapping[str, PanelGating], *, base: Path
) -> list[str]:
    """Every problem of the config's spillover matrix file (none for ``fcs``).

    The file must read as a square numeric matrix with the detector names as header (and as first
    column, where given), 1 on the diagonal, invertible, one detector per marker of ``panels:``,
    and hold every channel the panels' strategies compensate (by name or through ``panels:``).
    """
    value = str(config["gating"]["compensation"])
    if value.lower() == "fcs":
        return []
    path = located(value, base)
    if not path.is_file():
        return []  # said by the config check
    label = f"config gating.compensation: {value}"
    table, problems = _read(path, label)
    if table is None:
        return problems
    values, problems = _values(table, label)
    if values is None:
        return problems
    problems = _matrix_problems(table, values, label)
    problems += _panel_problems(list(table.columns), config["panels"], gatings, label)
    if not problems:
        from ..io import read_compensation

        try:  # the reader the gating uses takes it as well
            read_compensation(path)
        except ConfigError as error:
            problems.append(f"{label}: {one_line(error)}")
    return problems
