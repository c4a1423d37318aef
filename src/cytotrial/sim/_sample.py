"""One sample's events and their labels: cell types, scatter, fluorescence, spillover, doublets.

The clean mode and the drift mode share one sampler; the drift mode (a :class:`SampleDrift`)
changes the expression tables, the spreads, gains and offsets, and the acquisition's ``Time``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._biology import _drifted_stain, _expression_model
from ._drift import _CHANNELS as _DRIFT_CHANNELS
from ._drift import Drift, SampleDrift, _acquisition_times, as_drift, draw_sample_drift
from ._effects import _RATES, typical_composition
from ._panel import (
    _DEAD_MARKER_DIMMING,
    _DEAD_SCATTER,
    _DEAD_VIABILITY,
    _SCATTER_MAX,
    _SINGLET_HEIGHT_RATIO,
    _SINGLET_RATIO_SD,
    _TIMESTEP,
    CELL_TYPES,
    _panel_model,
    _PanelModel,
    spillover_matrix,
)
from ._truth import EventTruth


@dataclass
class SimulatedSample:
    """One simulated sample: the file's events, the signal before spillover and every label.

    Attributes
    ----------
    panel
        ``"blood"`` or ``"tumor"``.
    channels, markers
        ``$PnN`` and ``$PnS`` (``""`` for scatter and time) in file order.
    events
        ``(n_events, n_channels)`` float32 as written to the file (fluorescence with spillover).
    unmixed
        Same shape: the signal before spillover (scatter and time identical to ``events``).
    spill
        The spillover matrix written as ``$SPILLOVER``.
    cell_type
        Code of each event's cell type (index into :data:`CELL_TYPES`).
    dead, doublet
        Whether each event is a dead cell / a doublet.
    anomalous
        Whether each event was acquired during the file's acquisition anomaly (drift mode);
        such events belong to no truth population.
    drift
        What the drift mode gave this file (``None``: the clean mode).
    anomaly_seconds
        ``(start, stop)`` of the anomaly's stretch of ``Time``, in seconds, or ``None``.
    """

    panel: str
    channels: list[str]
    markers: list[str]
    events: np.ndarray
    unmixed: np.ndarray
    spill: pd.DataFrame
    cell_type: np.ndarray
    dead: np.ndarray
    doublet: np.ndarray
    anomalous: np.ndarray = field(default=None)  # type: ignore[assignment]
    drift: SampleDrift | None = None
    anomaly_seconds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.anomalous is None:
            self.anomalous = np.zeros(self.cell_type.shape, dtype=bool)

    @property
    def n_events(self) -> int:
        """Number of events in the file."""
        return int(self.events.shape[0])

    def event_truth(self) -> EventTruth:
        """Every event's labels and anomaly flag (what ``truth/events/`` holds per file)."""
        return EventTruth(
            panel=self.panel,
            cell_type=self.cell_type,
            dead=self.dead,
            doublet=self.doublet,
            anomalous=self.anomalous,
        )

    def truth_membership(self, *, include_anomalous: bool = False) -> dict[str, np.ndarray]:
        """Boolean true membership of every event in each truth population of the panel.

        Parameters
        ----------
        include_anomalous
            Count events of the acquisition anomaly by their labels too (default: they belong
            to no population, as after a perfect acquisition QC).

        Returns
        -------
        dict of str to numpy.ndarray
            Population (in the order of :data:`POPULATIONS`) -> boolean array over the events.
        """
        return self.event_truth().membership(include_anomalous=include_anomalous)

    def truth_counts(self, *, include_anomalous: bool = False) -> dict[str, int]:
        """True event count of each truth population of the panel.

        Parameters
        ----------
        include_anomalous
            As for :meth:`truth_membership`.

        Returns
        -------
        dict of str to int
            Population (in the order of :data:`POPULATIONS`) -> number of events; see the
            :mod:`cytotrial.sim` docstring for what each population holds.
        """
        return self.event_truth().counts(include_anomalous=include_anomalous)


def _as_generator(seed: int | np.random.SeedSequence | np.random.Generator) -> np.random.Generator:
    """The sample's generator: ``seed`` itself, or a new SFC64 generator seeded with it."""
    if isinstance(seed, np.random.Generator):
        return seed
    # SFC64: the fastest of numpy's generators for the millions of normals a file needs
    return np.random.Generator(np.random.SFC64(seed))


def simulate_sample(
    *,
    panel: str = "blood",
    n_events: int = 20_000,
    composition: Mapping[str, float] | None = None,
    dead_rate: float | None = None,
    doublet_rate: float | None = None,
    gains: Mapping[str, float] | None = None,
    drift: Drift | SampleDrift | Mapping | bool | str | None = None,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> SimulatedSample:
    """Simulate the events of one sample, fully vectorized.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"`` (channels of :data:`PANELS`).
    n_events
        Number of events.
    composition
        Probability of each cell type of :data:`CELL_TYPES` (missing types: 0; normalised).
        Default: :func:`typical_composition`.
    dead_rate, doublet_rate
        Probability that a cell is dead / a doublet. Default: the typical rates of the panel.
    gains
        Intensity factor per channel (acquisition batch shift): fluorescence by detector
        ``$PnN``, ``"FSC-A"`` scales FSC-A and FSC-H, ``"SSC-A"`` scales SSC-A. Default: 1.
    drift
        ``None`` (or ``False``, ``"clean"``): the clean mode. A :class:`SampleDrift`: exactly
        these gains, offsets, spreads and anomaly. A :class:`Drift` (or ``True``, or a mapping
        of sizes): this file's drift is drawn from the seed, as for a file of a random
        instrument, reagent lot and run (see :mod:`cytotrial.sim`).
    seed
        Seed, SeedSequence or Generator of this sample's random stream.

    Returns
    -------
    SimulatedSample
        The events as written to the file, the unmixed signal and every event's labels.

    Raises
    ------
    ConfigError
        For an unknown panel, cell type or drift size, a non-positive ``n_events``, a rate
        outside [0, 1) or a drift channel the panel lacks.
    """
    model = _panel_model(panel)
    if n_events < 1:
        raise ConfigError(f"n_events must be a positive number of events, not {n_events}")
    dead_rate, doublet_rate = _rates(panel, dead_rate, doublet_rate)
    p = _probabilities(typical_composition(panel) if composition is None else composition)
    gains = dict(gains or {})
    if not isinstance(drift, SampleDrift):
        drift = as_drift(drift)
    rng = _as_generator(seed)
    if isinstance(drift, Drift):
        drift = draw_sample_drift(rng, drift)
    if drift is not None:
        _check_drift_channels(drift)

    # Events are generated grouped by cell type (exact multinomial counts), so per-type
    # parameters broadcast instead of being gathered per event, then shuffled into
    # acquisition order.
    counts = rng.multinomial(n_events, p / p.sum())
    cell_type = np.repeat(np.arange(len(CELL_TYPES), dtype=np.int8), counts)
    is_cell = cell_type != 0
    dead = is_cell & (rng.random(n_events, dtype=np.float32) < dead_rate)
    doublet = is_cell & (rng.random(n_events, dtype=np.float32) < doublet_rate)

    blocks = _blocks(counts)
    if drift is None:
        scatter = _scatter(model, rng, blocks, dead)
        fluorescence = _fluorescence(model, rng, blocks, cell_type, dead)
    else:
        scatter, fluorescence = _drifted_signal(panel, model, rng, blocks, cell_type, dead, drift)
    _add_doublet_partners(model, rng, cell_type, doublet, *scatter, fluorescence)

    order = rng.permutation(n_events)
    events, unmixed, anomalous, stretch = _acquire(
        model, rng, order, scatter, fluorescence, gains, drift
    )
    return SimulatedSample(
        panel=panel,
        channels=list(model.channels),
        markers=list(model.markers),
        events=events.T,
        unmixed=unmixed.T,
        spill=spillover_matrix(panel),
        cell_type=cell_type[order],
        dead=dead[order],
        doublet=doublet[order],
        anomalous=anomalous,
        drift=drift,
        anomaly_seconds=None
        if stretch is None
        else (stretch[0] * _TIMESTEP, stretch[1] * _TIMESTEP),
    )


def _rates(panel: str, dead_rate: float | None, doublet_rate: float | None) -> tuple[float, float]:
    """The dead and doublet rates, the panel's typical ones where not given, checked."""
    rates = _RATES[panel]
    dead_rate = float(np.mean(rates["dead"])) if dead_rate is None else float(dead_rate)
    doublet_rate = float(np.mean(rates["doublet"])) if doublet_rate is None else float(doublet_rate)
    for label, rate in (("dead_rate", dead_rate), ("doublet_rate", doublet_rate)):
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"{label} must be a probability in [0, 1), not {rate}")
    return dead_rate, doublet_rate


def _probabilities(composition: Mapping[str, float]) -> np.ndarray:
    """Non-negative weight of each cell type of :data:`CELL_TYPES`, in that order, checked."""
    unknown = set(composition) - set(CELL_TYPES)
    if unknown:
        raise ConfigError(f"unknown cell type(s) {sorted(unknown)}: use those of CELL_TYPES")
    p = np.array([max(float(composition.get(t, 0.0)), 0.0) for t in CELL_TYPES])
    if p.sum() <= 0:
        raise ConfigError("composition must give a positive probability to some cell type")
    return p


def _acquire(
    model: _PanelModel,
    rng: np.random.Generator,
    order: np.ndarray,
    scatter: tuple[np.ndarray, np.ndarray, np.ndarray],
    fluorescence: np.ndarray,
    gains: Mapping[str, float],
    drift: SampleDrift | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float] | None]:
    """The file's rows in acquisition ``order``: observed and unmixed, channel-major.

    Applies the batch gains (and the drift's scatter gains), draws the Time channel (with the
    drift's anomaly: its events' signal shifted before mixing), mixes the fluorescence with the
    spillover matrix and clips scatter to the detector's range. Also returns which events are
    anomalous and the anomaly's stretch (Time units).
    """
    n_events = order.size
    events = np.empty((len(model.channels), n_events), dtype=np.float32)
    unmixed = np.empty_like(events)
    anomaly = None if drift is None else drift.anomaly
    # accumulated in float64, then stored (a float32 ``out=`` would read the uninitialised row)
    time, anomalous, stretch = _acquisition_times(rng, n_events, anomaly)
    shift = {} if anomaly is None else dict(anomaly.shift)
    rows = model.fluorescence_rows
    np.take(fluorescence, order, axis=1, out=unmixed[rows], mode="clip")
    unmixed[rows] *= np.array([[gains.get(c, 1.0)] for c in model.fluorescence], dtype=np.float32)
    for j, channel in enumerate(model.fluorescence):
        if channel in shift:  # the anomaly moves the stain and background alike
            unmixed[rows.start + j, anomalous] *= np.float32(shift[channel])
    _mix(unmixed[rows], model.spill, out=events[rows])
    fsc_a, fsc_h, ssc_a = scatter
    for channel, values, detector in (
        ("FSC-A", fsc_a, "FSC-A"),
        ("FSC-H", fsc_h, "FSC-A"),
        ("SSC-A", ssc_a, "SSC-A"),
    ):
        gain = gains.get(detector, 1.0)
        if drift is not None:
            gain *= drift.gain.get(detector, 1.0)
        row = unmixed[model.channels.index(channel)]
        np.take(values, order, out=row, mode="clip")
        row *= np.float32(gain)
        if detector in shift:
            row[anomalous] *= np.float32(shift[detector])
        # float32 bounds keep the whole clip in float32 (no cast step; 262143 is exact in float32)
        np.clip(row, np.float32(0.0), np.float32(_SCATTER_MAX), out=row)
    unmixed[model.channels.index("Time")] = time
    scatter_rows = [i for i in range(len(model.channels)) if not model.markers[i]]
    events[scatter_rows] = unmixed[scatter_rows]
    return events, unmixed, anomalous, stretch


def _blocks(counts: np.ndarray) -> list[tuple[int, int, int]]:
    """(cell type code, start, stop) of each non-empty run of the type-sorted events."""
    stops = np.cumsum(counts)
    return [(t, int(stops[t] - counts[t]), int(stops[t])) for t in np.flatnonzero(counts)]


def _scatter(
    model: _PanelModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    dead: np.ndarray,
    *,
    table: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FSC-A, FSC-H and SSC-A of the type-sorted events: log-normal per type, dead cells shifted.

    ``table`` replaces the panel's per-type scatter (FSC-A median, sd, SSC-A median, sd).
    """
    n = dead.size
    z = rng.standard_normal((3, n), dtype=np.float32)
    fsc_a, ssc_a = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    for t, start, stop in blocks:
        fsc_median, fsc_sd, ssc_median, ssc_sd = (model.scatter if table is None else table)[t]
        z0, z1 = z[0, start:stop], z[1, start:stop]
        fsc_a[start:stop] = fsc_median * np.exp(fsc_sd * z0)
        # larger cells scatter more to the side too: correlate FSC and SSC within a population
        ssc_a[start:stop] = ssc_median * np.exp(ssc_sd * (0.5 * z0 + 0.866 * z1))
    fsc_a[dead] *= _DEAD_SCATTER[0]
    ssc_a[dead] *= _DEAD_SCATTER[1]
    fsc_h = fsc_a * (_SINGLET_HEIGHT_RATIO * np.exp(_SINGLET_RATIO_SD * z[2]))
    return fsc_a, fsc_h, ssc_a


def _fluorescence(
    model: _PanelModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    cell_type: np.ndarray,
    dead: np.ndarray,
) -> np.ndarray:
    """Unmixed fluorescence, channel-major ``(n_channels, n_events)``.

    Computed in place on a few ``(n_channels, n_events)`` buffers: drawing normals and passing
    over these arrays is most of a file's time.
    """
    signal = np.zeros((len(model.fluorescence), cell_type.size), dtype=np.float32)
    for t, start, stop in blocks:
        expressed = np.flatnonzero(model.fraction_positive[:, t])
        if expressed.size == 0:
            continue
        size = stop - start
        values = rng.standard_normal((expressed.size, size), dtype=np.float32)
        values *= model.log_sd[expressed, t, None]
        np.exp(values, out=values)
        values *= model.median[expressed, t, None]
        for row, channel in enumerate(expressed):
            fraction = model.fraction_positive[channel, t]
            if fraction < 1.0:  # a subset of the type carries the marker
                values[row] *= rng.random(size, dtype=np.float32) < fraction
        signal[expressed, start:stop] = values
    _stain_dead_cells(model, rng, signal, dead, _DEAD_VIABILITY)
    _add_background(model, rng, signal, cell_type)
    return signal


def _stain_dead_cells(
    model: _PanelModel,
    rng: np.random.Generator,
    signal: np.ndarray,
    dead: np.ndarray,
    viability: tuple[float, float],
) -> None:
    """Dead cells: bright viability dye (median, log10 sd), dimmer antibody staining."""
    # x 1 is exact for live cells
    signal *= np.where(dead, np.float32(_DEAD_MARKER_DIMMING), np.float32(1.0))
    n_dead = int(np.count_nonzero(dead))
    signal[model.viability, dead] = viability[0] * np.exp(
        np.float32(viability[1] * np.log(10.0)) * rng.standard_normal(n_dead, dtype=np.float32)
    )


def _add_background(
    model: _PanelModel, rng: np.random.Generator, signal: np.ndarray, cell_type: np.ndarray
) -> None:
    """Add autofluorescence and noise (electronic, and spreading of spilled photons) in place."""
    m, n = signal.shape
    # autofluorescence: one brightness per event, shared by all detectors
    brightness = np.exp(np.float32(0.35) * rng.standard_normal(n, dtype=np.float32))
    brightness *= model.autofluorescence_scale[cell_type]
    # noise: electronic, plus spreading from photons of other fluorochromes spilling in
    spread = _mix(signal, model.spill_off_diagonal)
    spread += model.noise_var
    np.sqrt(spread, out=spread)
    noise = rng.standard_normal((m, n), dtype=np.float32)
    noise *= spread
    np.multiply(model.autofluorescence_base, brightness, out=spread)
    signal += spread
    signal += noise


def _drifted_signal(
    panel: str,
    model: _PanelModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    cell_type: np.ndarray,
    dead: np.ndarray,
    drift: SampleDrift,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Scatter and unmixed fluorescence of the drift mode (scatter gains come at acquisition).

    Populations' spreads are scaled per channel, each marker's stain (and the dead cells' dye)
    by its gain before the background is added, then the run's offsets are added.
    """
    expression = _expression_model(panel, drift.continuous)
    table = expression.scatter.copy()
    table[:, 1] *= np.float32(drift.spread.get("FSC-A", 1.0))
    table[:, 3] *= np.float32(drift.spread.get("SSC-A", 1.0))
    scatter = _scatter(model, rng, blocks, dead, table=table)

    def per_channel(values: Mapping[str, float], default: float) -> np.ndarray:
        return np.array([values.get(c, default) for c in model.fluorescence], dtype=np.float32)

    spread = per_channel(drift.spread, 1.0)
    signal = _drifted_stain(expression, rng, blocks, cell_type.size, spread)
    viability = expression.dead_viability
    viability = (viability[0], viability[1] * float(spread[model.viability]))
    _stain_dead_cells(model, rng, signal, dead, viability)
    signal *= per_channel(drift.gain, 1.0)[:, None]
    _add_background(model, rng, signal, cell_type)
    signal += per_channel(drift.offset, 0.0)[:, None]
    return scatter, signal


def _check_drift_channels(drift: SampleDrift) -> None:
    """A one-line ConfigError for a drift channel that no panel has."""
    known = set(_DRIFT_CHANNELS)
    anomaly = {} if drift.anomaly is None else drift.anomaly.shift
    named = {"gain": drift.gain, "offset": drift.offset, "spread": drift.spread}
    for label, values in {**named, "anomaly shift": anomaly}.items():
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"drift {label}: {unknown[0]!r} is not a scatter detector (FSC-A, SSC-A) or a "
                "fluorescence channel of the panels"
            )


def _mix(x: np.ndarray, matrix: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``(x.T @ matrix).T`` for channel-major ``x``, summed in a fixed order without BLAS.

    The matrices are small and sparse; this is faster than a threaded BLAS call on a shared
    machine and gives the same bits whatever the thread settings. ``out`` must not overlap ``x``.
    """
    out = np.empty_like(x) if out is None else out
    term = np.empty_like(x[0])
    for j in range(matrix.shape[1]):
        sources = np.flatnonzero(matrix[:, j])
        if sources.size == 0:
            out[j] = 0.0
            continue
        np.multiply(x[sources[0]], matrix[sources[0], j], out=out[j])
        for k in sources[1:]:
            np.multiply(x[k], matrix[k, j], out=term)
            out[j] += term
    return out


def _add_doublet_partners(
    model: _PanelModel,
    rng: np.random.Generator,
    cell_type: np.ndarray,
    doublet: np.ndarray,
    fsc_a: np.ndarray,
    fsc_h: np.ndarray,
    ssc_a: np.ndarray,
    fluorescence: np.ndarray,
) -> None:
    """Give each doublet part of a partner cell's light (lymphocytes pair with lymphocytes)."""
    lymph = model.lymph_scatter[cell_type]
    cells = np.flatnonzero(cell_type != 0)
    for group, pool in ((doublet & lymph, np.flatnonzero(lymph)), (doublet & ~lymph, cells)):
        index = np.flatnonzero(group)
        if index.size == 0 or pool.size == 0:
            continue
        partner = pool[rng.integers(0, pool.size, index.size)]
        overlap = rng.uniform(0.5, 1.0, index.size).astype(np.float32)
        fsc_h[index] = np.maximum(fsc_h[index], overlap * fsc_h[partner]) * (1 + 0.1 * overlap)
        fsc_a[index] += overlap * fsc_a[partner]
        ssc_a[index] += overlap * ssc_a[partner]
        fluorescence[:, index] += overlap * fluorescence[:, partner]
