"""Real-world variation of a multi-site trial: instruments, reagent lots, runs and anomalies.

The drift mode's sizes are a :class:`Drift`; what one file got is a :class:`SampleDrift` (and its
:class:`Anomaly`, if any). Every gain is log-uniform: a gain of size ``s`` lies in
``[1 / (1 + s), 1 + s]``. A run is one site's acquisition of one batch on one of its
instruments. A file's scatter gains are its run's (sites set scatter voltages per session;
daily setup standardises fluorescence detectors, not scatter); a fluorescence channel's gain is
the product of its instrument's detector gain, its batch's reagent lot and its run's daily
gain. The files of one run share their shifts, as batch effects do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._panel import _EVENT_RATE, _TIMESTEP, PANELS

#: Kinds of acquisition anomaly, drawn with equal probability.
ANOMALY_KINDS: tuple[str, ...] = ("burst", "gap", "clog", "shift")

_SCATTER = ("FSC-A", "SSC-A")  # scatter detectors with a gain of their own (FSC-H follows FSC-A)
_FLUORESCENCE = tuple(channel for channel, marker in PANELS["tumor"] if marker)  # both panels
_CHANNELS = _SCATTER + _FLUORESCENCE
_BURST_RATE = (2.0, 4.0)  # event rate factor during a burst
_GAP_RATE = (0.02, 0.1)  # ... during a gap (the flow nearly stops)
_CLOG_RATE = (0.3, 0.6)  # ... during a clog
_CLOG_SIGNAL = (0.55, 0.75)  # every channel's signal factor during a clog
_SHIFT_FLUORESCENCE = (1, 3)  # fluorescence channels a shift moves with the scatter
_SHIFT_SIGNAL = ((0.6, 0.75), (1.35, 1.7))  # their factor: dimmer or brighter
_ANOMALY_START = (0.05, 0.95)  # the stretch lies within this part of the acquisition


@dataclass(frozen=True)
class Drift:
    """Sizes of the real-world variation of the drift mode (defaults: a multi-site phase 3 trial).

    Attributes
    ----------
    scatter_gain
        Per run: gain of FSC (FSC-A and FSC-H together) and of SSC-A, each within
        ``[1/(1+x), 1+x]``. With the default 0.30 a run like FSC 0.86 with SSC 1.14 (side
        scatter relative to forward scatter x 1.33) is at about the 90th percentile.
    detector_gain
        Per instrument: gain of each fluorescence detector (on the unmixed stain).
    reagent_gain
        Per reagent lot (one per acquisition batch): each marker's stain brightness.
    run_gain
        Per run: each fluorescence channel's daily gain, on top of the above.
    offset
        Per run: each marker's background, added to the unmixed signal, uniform within
        ``±offset`` (signal units; 1,000 is at 0.45 of the demo's logicle scale).
    spread
        Per run: the CV (log-scale spread) of every population in each channel, times a factor
        within ``[1/(1+x), 1+x]``.
    dead_debris_range
        Each sample's dead-cell and debris rates are drawn up to this multiple of the clean
        mode's upper bounds (default 2: blood dead 2-20%, debris 4-24%; tumor dead 8-40%,
        debris 10-50%).
    anomaly_fraction
        Fraction of files with an acquisition anomaly over a stretch of ``Time``.
    anomaly_duration
        ``(shortest, longest)`` stretch, as a fraction of the file's acquisition time.
    instruments_per_site
        Cytometers at each site; each run is acquired on one of them, drawn at random.
    continuous
        Continuous, overlapping expression (CD25 with Tregs as its bright tail, CD127 low and
        continuous, CD56 dim and bright NK cells, Ki67, HLA-DR and CD38 continuous) and wider
        lymphocyte scatter; ``False`` keeps the clean mode's expression.
    """

    scatter_gain: float = 0.30
    detector_gain: float = 0.10
    reagent_gain: float = 0.30
    run_gain: float = 0.10
    offset: float = 50.0
    spread: float = 0.15
    dead_debris_range: float = 2.0
    anomaly_fraction: float = 0.15
    anomaly_duration: tuple[float, float] = (0.05, 0.15)
    instruments_per_site: int = 2
    continuous: bool = True

    def __post_init__(self) -> None:
        for name in ("scatter_gain", "detector_gain", "reagent_gain", "run_gain", "spread"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        _check_number("offset", self.offset, 0.0, 1000.0)
        _check_number("dead_debris_range", self.dead_debris_range, 1.0, 3.0)
        _check_number("anomaly_fraction", self.anomaly_fraction, 0.0, 1.0)
        duration = self.anomaly_duration
        if (
            not isinstance(duration, (tuple, list))
            or len(duration) != 2
            or not all(_is_number(d) for d in duration)
            or not 0.0 < duration[0] <= duration[1] <= 0.5
        ):
            raise ConfigError(
                f"drift.anomaly_duration must be [shortest, longest] with 0 < shortest <= "
                f"longest <= 0.5 (fractions of the acquisition time), not {duration!r}"
            )
        object.__setattr__(self, "anomaly_duration", (float(duration[0]), float(duration[1])))
        count = self.instruments_per_site
        if (
            isinstance(count, bool)
            or not isinstance(count, (int, np.integer))
            or not 1 <= count <= 9
        ):
            raise ConfigError(f"drift.instruments_per_site must be an integer 1-9, not {count!r}")
        if not isinstance(self.continuous, (bool, np.bool_)):
            raise ConfigError(f"drift.continuous must be true or false, not {self.continuous!r}")


@dataclass(frozen=True)
class Anomaly:
    """An acquisition anomaly over one stretch of a file's ``Time``.

    Attributes
    ----------
    kind
        ``burst`` (flow rate up), ``gap`` (the flow nearly stops), ``clog`` (rate down and every
        channel dimmer) or ``shift`` (the scatter and a few fluorescence channels dimmer or
        brighter).
    start, duration
        Where the stretch starts and how long it lasts, as fractions of the acquisition time.
    rate
        Event rate during the stretch, relative to the rest of the file.
    shift
        Channel (``$PnN``; ``FSC-A`` also moves ``FSC-H``) -> factor on the signal of the events
        acquired during the stretch (applied to the unmixed signal, so ``$SPILLOVER`` holds).
    """

    kind: str
    start: float
    duration: float
    rate: float = 1.0
    shift: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (
            _is_number(self.start)
            and _is_number(self.duration)
            and self.start >= 0.0
            and self.duration > 0.0
            and self.start + self.duration <= 1.0
        ):
            raise ConfigError(
                f"anomaly start {self.start!r} and duration {self.duration!r} must lie within "
                "the acquisition (fractions: 0 <= start, 0 < duration, start + duration <= 1)"
            )
        if not (_is_number(self.rate) and self.rate > 0):
            raise ConfigError(f"anomaly rate must be a positive factor, not {self.rate!r}")
        _check_factors("anomaly shift", self.shift)


@dataclass(frozen=True)
class SampleDrift:
    """What one file got from the drift mode: its gains, offsets, spreads and anomaly.

    Attributes
    ----------
    gain
        Channel (``$PnN``) -> factor: ``FSC-A`` (also ``FSC-H``) and ``SSC-A`` scale the scatter,
        a fluorescence channel scales its marker's stain (reagent, detector and run together)
        before spillover mixing. Missing channels: 1.
    offset
        Fluorescence channel -> value added to the unmixed signal of every event. Missing: 0.
    spread
        Channel -> factor on the log-scale spread of every population in it. Missing: 1.
    anomaly
        The file's acquisition anomaly, or ``None``.
    continuous
        Whether the cells have the drift mode's continuous expression (see :class:`Drift`).
    """

    gain: Mapping[str, float] = field(default_factory=dict)
    offset: Mapping[str, float] = field(default_factory=dict)
    spread: Mapping[str, float] = field(default_factory=dict)
    anomaly: Anomaly | None = None
    continuous: bool = True

    def __post_init__(self) -> None:
        _check_factors("gain", self.gain)
        _check_factors("spread", self.spread)
        for channel, value in self.offset.items():
            if not _is_number(value):
                raise ConfigError(f"offset of {channel} must be a number, not {value!r}")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
    )


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if not (_is_number(value) and low <= value <= high):
        raise ConfigError(f"drift.{name} must be a number from {low:g} to {high:g}, not {value!r}")


def _check_factors(label: str, factors: Mapping[str, float]) -> None:
    for channel, value in factors.items():
        if not (_is_number(value) and value > 0):
            raise ConfigError(f"{label} of {channel} must be a positive factor, not {value!r}")


def as_drift(value: Drift | Mapping[str, Any] | bool | str | None) -> Drift | None:
    """The drift sizes ``value`` asks for: ``None`` in the clean mode.

    Parameters
    ----------
    value
        ``None``, ``False`` or ``"clean"``: the clean mode. ``True`` or ``"drift"``: the default
        :class:`Drift`. A mapping: those sizes, the others at their defaults (as in the config's
        ``demo.drift``). A :class:`Drift`: itself.

    Raises
    ------
    ConfigError
        An unknown size or a bad value (one line naming it).
    """
    if value is None or value is False or value == "clean":
        return None
    if value is True or value == "drift":
        return Drift()
    if isinstance(value, Drift):
        return value
    if isinstance(value, Mapping):
        known = [f.name for f in fields(Drift)]
        unknown = sorted(set(map(str, value)) - set(known))
        if unknown:
            raise ConfigError(f"drift: unknown size {unknown[0]!r}; sizes: {', '.join(known)}")
        return Drift(**{str(k): tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise ConfigError(f"drift must be true, false, 'clean' or a mapping of sizes, not {value!r}")


# --- drawing --------------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, size: float, n: int) -> np.ndarray:
    """``n`` factors log-uniform within ``[1/(1+size), 1+size]``."""
    half = np.log1p(size)
    return np.exp(rng.uniform(-half, half, n))


def _instrument(rng: np.random.Generator, drift: Drift) -> dict[str, float]:
    """One cytometer's gain of each fluorescence detector."""
    detectors = _log_uniform(rng, drift.detector_gain, len(_FLUORESCENCE))
    return dict(zip(_FLUORESCENCE, detectors.tolist()))


def _lot(rng: np.random.Generator, drift: Drift) -> dict[str, float]:
    """One reagent lot's brightness of each marker (by its channel)."""
    return dict(
        zip(_FLUORESCENCE, _log_uniform(rng, drift.reagent_gain, len(_FLUORESCENCE)).tolist())
    )


@dataclass(frozen=True)
class _Run:
    """One site's acquisition of one batch: the instrument used and the run's own shifts."""

    instrument: int
    gain: dict[str, float]
    offset: dict[str, float]
    spread: dict[str, float]


def _run(rng: np.random.Generator, drift: Drift) -> _Run:
    """One run: its instrument, scatter settings, daily fluorescence gains, offsets, spreads."""
    instrument = int(rng.integers(0, drift.instruments_per_site))
    scatter = _log_uniform(rng, drift.scatter_gain, len(_SCATTER))
    fluorescence = _log_uniform(rng, drift.run_gain, len(_FLUORESCENCE))
    offset = rng.uniform(-drift.offset, drift.offset, len(_FLUORESCENCE))
    spread = _log_uniform(rng, drift.spread, len(_CHANNELS))
    return _Run(
        instrument=instrument,
        gain=dict(zip(_CHANNELS, [*scatter.tolist(), *fluorescence.tolist()])),
        offset=dict(zip(_FLUORESCENCE, offset.tolist())),
        spread=dict(zip(_CHANNELS, spread.tolist())),
    )


def _anomaly(rng: np.random.Generator, drift: Drift) -> Anomaly | None:
    """A file's anomaly: present with probability ``anomaly_fraction``; kind, stretch, size."""
    present, kind_draw, duration_draw, start_draw, size_draw = rng.random(5)
    if present >= drift.anomaly_fraction:
        return None
    kind = ANOMALY_KINDS[int(kind_draw * len(ANOMALY_KINDS))]
    low, high = drift.anomaly_duration
    duration = low + duration_draw * (high - low)
    first, last = _ANOMALY_START
    start = first + start_draw * (last - duration - first)
    rate, shift = 1.0, {}
    if kind == "burst":
        rate = _BURST_RATE[0] + size_draw * (_BURST_RATE[1] - _BURST_RATE[0])
    elif kind == "gap":
        rate = _GAP_RATE[0] + size_draw * (_GAP_RATE[1] - _GAP_RATE[0])
    elif kind == "clog":
        rate = _CLOG_RATE[0] + size_draw * (_CLOG_RATE[1] - _CLOG_RATE[0])
        factor = _CLOG_SIGNAL[0] + size_draw * (_CLOG_SIGNAL[1] - _CLOG_SIGNAL[0])
        jitter = _log_uniform(rng, 0.05, len(_CHANNELS))
        shift = {c: float(factor * j) for c, j in zip(_CHANNELS, jitter)}
    else:
        # the scatter (a disturbed stream or laser) and a few fluorescence channels with it
        n = int(rng.integers(_SHIFT_FLUORESCENCE[0], _SHIFT_FLUORESCENCE[1] + 1))
        picked = np.sort(rng.choice(len(_FLUORESCENCE), size=n, replace=False))
        channels = [*_SCATTER, *(_FLUORESCENCE[c] for c in picked)]
        factors = rng.uniform(*_SHIFT_SIGNAL[int(rng.integers(0, 2))], len(channels))
        shift = {c: float(f) for c, f in zip(channels, factors)}
    return Anomaly(
        kind=kind, start=float(start), duration=float(duration), rate=float(rate), shift=shift
    )


def _combine(
    instrument: Mapping[str, float],
    lot: Mapping[str, float],
    run: _Run,
    anomaly: Anomaly | None,
    *,
    continuous: bool,
) -> SampleDrift:
    """A file's drift from its instrument, reagent lot, run and anomaly."""
    gain = {c: instrument.get(c, 1.0) * lot.get(c, 1.0) * run.gain[c] for c in _CHANNELS}
    return SampleDrift(
        gain=gain,
        offset=dict(run.offset),
        spread=dict(run.spread),
        anomaly=anomaly,
        continuous=bool(continuous),
    )


def draw_sample_drift(rng: np.random.Generator, drift: Drift) -> SampleDrift:
    """One file's drift: a random instrument, reagent lot, run and (maybe) anomaly of ``drift``."""
    instrument, lot, run = _instrument(rng, drift), _lot(rng, drift), _run(rng, drift)
    return _combine(instrument, lot, run, _anomaly(rng, drift), continuous=drift.continuous)


@dataclass(frozen=True)
class _TrialDrift:
    """Each sheet row's instrument name, its serial number (``$CYTSN``) and drift."""

    instruments: list[str]
    serials: list[str]
    drifts: list[SampleDrift]


def _trial_drift(
    rng: np.random.Generator, drift: Drift, sites: list[int], batches: list[str]
) -> _TrialDrift:
    """Instruments per site, a reagent lot per batch, a run per (site, batch), then each file.

    Drawn in a fixed order (sites, batches and runs sorted, then files in sheet order), so the
    same design gives the same drift.
    """
    instruments = {
        (site, k): _instrument(rng, drift)
        for site in sorted(set(sites))
        for k in range(drift.instruments_per_site)
    }
    lots = {batch: _lot(rng, drift) for batch in sorted(set(batches))}
    runs = {key: _run(rng, drift) for key in sorted(set(zip(sites, batches)))}
    names, serials, drifts = [], [], []
    for site, batch in zip(sites, batches):
        run = runs[site, batch]
        names.append(instrument_name(site, run.instrument))
        serials.append(f"H64781{site + 1}{run.instrument + 1}")
        drifts.append(
            _combine(
                instruments[site, run.instrument],
                lots[batch],
                run,
                _anomaly(rng, drift),
                continuous=drift.continuous,
            )
        )
    return _TrialDrift(instruments=names, serials=serials, drifts=drifts)


def site_name(site: int) -> str:
    """The sheet's code of site number ``site`` (0-based): ``S1``, ``S2``, ..."""
    return f"S{site + 1}"


def instrument_name(site: int, instrument: int) -> str:
    """The sheet's code of a site's cytometer: ``S1-A``, ``S1-B``, ..."""
    return f"{site_name(site)}-{'ABCDEFGHI'[instrument]}"


# --- time -----------------------------------------------------------------------------------


def _acquisition_times(
    rng: np.random.Generator, n_events: int, anomaly: Anomaly | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """Each event's ``Time``, whether it came during the anomaly, and the stretch (Time units).

    Events arrive as a Poisson stream of the nominal rate; during the anomaly's stretch the
    flow runs ``anomaly.rate`` times as fast, so the stretch takes ``duration`` of the file's
    expected acquisition time whatever its rate.
    """
    rate = _EVENT_RATE * _TIMESTEP  # events per unit of Time
    steady = np.cumsum(rng.exponential(1.0 / rate, n_events))  # the clock of a steady flow
    if anomaly is None:
        return steady, np.zeros(n_events, dtype=bool), None
    k = anomaly.rate
    total = n_events / (rate * (1.0 + (k - 1.0) * anomaly.duration))
    t0 = anomaly.start * total
    t1 = t0 + anomaly.duration * total
    u1 = t0 + k * (t1 - t0)  # the steady clock at the stretch's end
    during = (steady >= t0) & (steady < u1)
    time = np.where(steady < t0, steady, np.where(during, t0 + (steady - t0) / k, steady - u1 + t1))
    return time, during, (t0, t1)
