"""Compensation of one data set: fast (inverse matrix, with an error bound) and exact (FlowKit's).

The fast path is one matrix product that reads the events once and writes, per raw channel the
strategy reads, an exact copy, and per detector of each matrix its values compensated with the
inverse spillover matrix. Those differ from ``numpy.linalg.solve`` by rounding only; a bound per
channel (from the matrix condition number and the largest detector values) marks the events whose
decision that rounding could change. The exact path is FlowKit's: ``solve`` on the same matrix,
rows in the same order, so identical to the last bit. A spectral (OLS) matrix, a matrix whose
condition number exceeds 1e6 or data with non-finite values are compensated exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MissingMarkerError, StrategyError

if TYPE_CHECKING:
    from ..io import FCSData
    from ._dims import ChannelIndex

__all__ = ["Compensation", "Compensations"]

_COMP_ERROR = 1e-11  # relative bound on |inverse product - solve|, times the condition number
_MAX_CONDITION = 1e6  # beyond this a spillover matrix is applied exactly (solve) to every event


@dataclass
class Compensation:
    """One spillover matrix located in the file's columns."""

    ref: str
    columns: np.ndarray  # file columns of the detectors, in the matrix's order
    matrix: np.ndarray
    inverse: np.ndarray | None
    spectral: bool
    position: dict[int, int]
    condition: float


class Compensations:
    """The spillover matrices of one data set, located once, and the values they compensate.

    After :meth:`prepare`, ``raw[column]`` holds the raw values of a channel (contiguous) and
    ``approx[(ref, column)]`` the fast compensated values of a detector with the bound of their
    error against FlowKit's (``0.0`` where they are exact).
    """

    def __init__(
        self,
        data: FCSData,
        events: np.ndarray,
        channels: ChannelIndex,
        matrices: Mapping[str, Any],
        file: str,
    ) -> None:
        self.data = data
        self.events = events
        self.n = int(events.shape[0])
        self.channels = channels
        self.matrices = matrices  # FlowKit Matrix / SpectralMatrix objects by id
        self.file = file
        self.by_ref: dict[str, Compensation | None] = {}
        self.needs: dict[str, set[int]] = {}
        self.raw: dict[int, np.ndarray] = {}
        self.approx: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        self._exact: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._prepared = False

    # ----------------------------------------------------------------------------- matrices
    def get(self, ref: str, missing: list[str] | None = None) -> Compensation | None:
        """The matrix ``ref`` (``"FCS"``: the file's own) located in the file's columns.

        ``None`` where the file has no spillover (``"FCS"``), or where a detector is missing and
        ``missing`` collects its name; without ``missing`` a missing detector raises.
        """
        if ref in self.by_ref:
            return self.by_ref[ref]
        spectral = False
        if ref == "FCS":
            located = self._file_matrix()
            if located is None:
                self.by_ref[ref] = None  # GatingML 2.0: no spillover in the file -> uncompensated
                return None
            columns, matrix = located
        else:
            fk_matrix = self.matrices[ref]
            spectral = type(fk_matrix).__name__ == "SpectralMatrix"
            columns = self._detector_columns(ref, list(fk_matrix.detectors), missing)
            if columns is None:
                self.by_ref[ref] = None
                return None
            matrix = np.asarray(fk_matrix.matrix, dtype=np.float64)
        inverse = None
        condition = 1.0
        if not spectral:
            inverse, condition = self._invert(ref, matrix)
        position = {int(c): i for i, c in enumerate(columns)}
        if spectral:
            n_true = matrix.shape[0]
            position = {int(c): i for i, c in enumerate(columns[:n_true])}
        compensation = Compensation(ref, columns, matrix, inverse, spectral, position, condition)
        self.by_ref[ref] = compensation
        return compensation

    def _file_matrix(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The file's spillover matrix in file channel order (as FlowKit orders it), or ``None``."""
        spill = getattr(self.data, "spill", None)
        if spill is None:
            return None
        names = [str(c) for c in spill.columns]
        located = [(self.channels.lookup(name), name) for name in names]
        lost = [name for column, name in located if column is None]
        if lost:
            raise MissingMarkerError(  # names taken from a keyword's value: counted, not quoted
                f"{self.file}: the spillover matrix names {len(lost)} of its {len(names)} "
                "detectors after no channel of the file; give a matrix over the file's detector "
                "channels"
            )
        order = sorted(
            range(len(names)), key=lambda i: located[i][0]
        )  # FlowKit: file channel order
        ordered = [names[i] for i in order]
        matrix = spill.loc[ordered, ordered].to_numpy(dtype=np.float64)
        columns = np.array([located[i][0] for i in order], dtype=np.int64)
        return columns, matrix

    def _detector_columns(
        self, ref: str, detectors: list[str], missing: list[str] | None
    ) -> np.ndarray | None:
        columns_list = []
        for name in detectors:
            column = self.channels.lookup(name)
            if column is None:
                if missing is not None:
                    if name not in missing:
                        missing.append(name)
                    return None
                raise MissingMarkerError(
                    f"{self.file}: lacks detector channel {name} of spillover matrix {ref!r}"
                )
            columns_list.append(column)
        return np.array(columns_list, dtype=np.int64)

    def _invert(self, ref: str, matrix: np.ndarray) -> tuple[np.ndarray, float]:
        try:
            inverse = np.linalg.inv(matrix)
            condition = float(np.linalg.cond(matrix))
        except np.linalg.LinAlgError:
            raise StrategyError(
                f"{self.file}: spillover matrix {ref!r} is singular; it cannot compensate"
            ) from None
        if not math.isfinite(condition):
            raise StrategyError(
                f"{self.file}: spillover matrix {ref!r} is singular; it cannot compensate"
            )
        return inverse, condition

    def need(self, ref: str, column: int) -> None:
        """Mark the detector ``column`` of matrix ``ref`` as read by a gate."""
        self.needs.setdefault(ref, set()).add(column)

    # ----------------------------------------------------------------------------- fast path
    def prepare(self, raw_columns: Iterable[int]) -> None:
        """Contiguous fast columns in one pass over the events: raw channels and compensated ones.

        A single matrix product reads the events once and writes, per needed raw channel, an exact
        copy (unit weight; checked finite) and, per detector of each needed matrix, its
        compensated values from the inverse matrix with an error bound against ``solve``.
        """
        if self._prepared:
            return
        self._prepared = True
        raw_columns = sorted(raw_columns)
        blocks: list[tuple[str | None, list[int], np.ndarray]] = []  # (ref, outputs, weights)
        p = self.events.shape[1]
        if raw_columns:
            unit = np.zeros((p, len(raw_columns)))
            unit[raw_columns, np.arange(len(raw_columns))] = 1.0
            blocks.append((None, raw_columns, unit))
        for ref in sorted(self.needs):
            comp = self.by_ref[ref]
            if comp.spectral:
                self._spectral_all(comp)
                continue
            weights = np.zeros((p, len(comp.columns)))
            weights[comp.columns] = comp.inverse
            blocks.append((ref, [int(c) for c in comp.columns], weights))
        if not blocks:
            return
        weights = np.concatenate([w for _, _, w in blocks], axis=1)
        used = np.flatnonzero(np.any(weights != 0, axis=1))
        lo, hi = int(used.min()), int(used.max()) + 1
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are caught below
            # (outputs, events), each row contiguous
            out = weights[lo:hi].T @ self.events[:, lo:hi].T
            sums = out.sum(axis=1)
        offset = 0
        for ref, columns, _ in blocks:
            part = out[offset : offset + len(columns)]
            finite = np.isfinite(sums[offset : offset + len(columns)])
            offset += len(columns)
            if ref is None:
                for j, column in enumerate(columns):
                    self.raw[column] = (
                        part[j] if finite[j] else np.ascontiguousarray(self.events[:, column])
                    )
            else:
                self._store_compensated(self.by_ref[ref], columns, part, finite)

    def _store_compensated(
        self, comp: Compensation, columns: list[int], part: np.ndarray, finite: np.ndarray
    ) -> None:
        """Keep one matrix's fast values with their bound, or its exact values where needed."""
        if not finite.all() or comp.condition > _MAX_CONDITION:
            exact = self.exact_rows(comp, np.arange(self.n))
            for j, column in enumerate(columns):
                self.approx[(comp.ref, column)] = (exact[:, j].copy(), 0.0)
            return
        # Largest |detector value| from the compensated values: d = x S exactly for the true x,
        # and x differs from these by far less than their size (the factor 2 covers it).
        peak_out = np.maximum(part.max(axis=1), -part.min(axis=1))
        peaks = 2.0 * (peak_out @ np.abs(comp.matrix))
        scale = _COMP_ERROR * max(1.0, comp.condition)
        bounds = scale * (peaks @ np.abs(comp.inverse))
        for j, column in enumerate(columns):
            self.approx[(comp.ref, column)] = (part[j], float(bounds[j]))

    def _spectral_all(self, comp: Compensation) -> None:
        """A spectral (OLS) matrix: FlowKit's own unmixing of every event (no fast path)."""
        from flowutils.compensate import compensate_spectral_ols

        full = compensate_spectral_ols(self.events, comp.matrix, [int(c) for c in comp.columns])
        for column in comp.position:
            self.approx[(comp.ref, column)] = (np.ascontiguousarray(full[:, column]), 0.0)

    # ----------------------------------------------------------------------------- exact path
    def exact_rows(self, comp: Compensation, rows: np.ndarray) -> np.ndarray:
        """FlowKit's compensation (``numpy.linalg.solve``, same matrix and order) for ``rows``."""
        if comp.ref not in self._exact:
            self._exact[comp.ref] = (
                np.empty((self.n, len(comp.columns))),
                np.zeros(self.n, dtype=bool),
            )
        store, done = self._exact[comp.ref]
        todo = rows[~done[rows]]
        if todo.size:
            store[todo] = self.solve_rows(comp, todo)
            done[todo] = True
        return store[rows]

    def solve_rows(self, comp: Compensation, rows: np.ndarray) -> np.ndarray:
        """FlowKit's compensation of ``rows`` by a (square) matrix, not kept: ``(rows, detectors)``."""
        block = self.events[np.ix_(rows, comp.columns)]
        if rows.size == 1:  # one right-hand side takes another LAPACK path; keep FlowKit's
            return np.linalg.solve(comp.matrix.T, np.vstack([block, block]).T).T[:1]
        return np.linalg.solve(comp.matrix.T, block.T).T
