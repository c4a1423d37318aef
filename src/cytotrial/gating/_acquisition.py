"""Acquisition QC: the stretches of a file whose flow rate or signal departs from the rest are removed.

A file is cut, in acquisition order, into bins of an equal number of events (``bin_events``, more
for large files so there are at most ``max_bins``). Each bin gets

* its **flow rate**: events per unit of ``Time`` (after ``$TIMESTEP``), from the times of its
  first event and of the next bin's first event; a burst makes a bin short, a slowing flow or a
  pause makes it long;
* its **signal**: for every channel but ``Time``, the fraction of the bin's events above the file's
  25th, 50th, 75th and 90th percentile of that channel. A shift of the signal moves events across
  these fixed thresholds: the fraction above the file's median is the sign test of the bin's median
  against the file's, and the other levels follow a dim and a bright population. Raw detector
  values are used, neither compensated nor transformed: a fraction above a threshold is the same
  under any increasing transformation, and a shift of one fluorochrome shows in its own detector
  without compensation, so no pass over all events is spent on either;
* its longest interval between two events (a **gap**: no events for a stretch).

Each statistic is compared with the same statistic of the other bins on a robust scale, as
PeacoQC and flowAI do: the median across bins and the MAD, never below the spread pure sampling
gives (a Poisson flow's for the log rate, a binomial's for a fraction), so a few bins cannot
understate it. The typical flow rate is the one the file had for most of its *time* (bins weighted
by the time they span): a burst packs many events, hence many bins, into little time. A bin
departs when its distance from the median is at least ``rate_z`` (``signal_z``) robust standard
deviations *and* at least ``rate_min_change`` (a relative change of the flow rate) or
``signal_min_change`` (a fraction of the bin's events). Both are also tested on windows of 2, 3
and 4 neighbouring bins (the mean of their statistics, each first held within one bin's threshold
of the median so that one bin cannot carry a window; the threshold one robust standard deviation
higher, for the many more tests): a sustained shift too small for one bin stands out by the
square root of the width more. Every bin of a departing window departs.

Runs of departing bins decide what is removed, as PeacoQC's consecutive-bins rule does: a run
shorter than ``min_run`` bins is kept unless it departs by at least twice the threshold, and fewer
than ``min_run`` kept bins between two removed runs go with them. The ends of each removed
stretch are then placed at the events where the anomaly starts and stops: around each end of the
run's core (its bins that depart on their own), within a bin either side, the split that
maximises the summed log-likelihood ratio of the core's acquisition against the file's: its flow
rate (exponential intervals between events) and its departing signal statistics (events above
the thresholds).

A gap in ``Time`` longer than ``gap_factor`` typical intervals is counted in the note; it holds no
events and removes at most the events beside it: the slowing or burst around a clog or bubble is
what the flow rate finds. A file without a usable ``Time`` channel (none, not finite, not advancing or not
in acquisition order) or with fewer than eight bins is not checked: every event is kept and the
note says why. Deterministic; the signal reads at most 500 events per bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..io import FCSData

__all__ = [
    "ACQUISITION_BIN_COLUMNS",
    "REMOVED_STRETCH_COLUMNS",
    "AcquisitionQC",
    "acquisition_qc",
    "removed_stretches",
    "time_channel",
]

#: Columns of a gating batch's table of the stretches acquisition QC removed
#: (``batch_<id>.acquisition.tsv``): one row per removed ``[lo, hi)`` range of ``time_channel``
#: (empty: open at the file's start or end) and, on each row of a sample, the events a Time gate
#: of its ranges counts differently from what QC removed (``misplaced``). What the gate export
#: needs of the events, so that it does not read them again.
REMOVED_STRETCH_COLUMNS = ["sample_id", "time_channel", "lo", "hi", "misplaced"]

#: Columns of :attr:`AcquisitionQC.bins`: one row per time bin.
ACQUISITION_BIN_COLUMNS = [
    "bin",
    "first_event",
    "n_events",
    "time_start",
    "time_stop",
    "rate",
    "rate_z",
    "max_interval",
    "signal_z",
    "signal_stat",
    "departs",
    "events_removed",
    "reason",
]

_MIN_BINS = 8  # fewer bins give no robust median and MAD across bins
_STAT_EVENTS = 500  # events per bin read for the signal statistics, at most...
_STAT_TOTAL = 65_536  # ...and about this many in all (large files: fewer per bin, 125 at least)
_LEVELS = (0.25, 0.5, 0.75, 0.9)  # the file's percentiles the signal is counted above
_LEVEL_ARRAY = 1.0 - np.array(_LEVELS)  # the fraction of events above each
_MAD_SD = 1.4826  # MAD -> standard deviation of a normal distribution
_EXTREME = 2.0  # a run shorter than min_run is removed from this multiple of the threshold
_MIN_TICKS = 10  # a bin must span this many steps of the Time channel to give a flow rate
_P_CLIP = 0.01  # fractions are kept inside [0.01, 0.99] in the log-likelihood ratios
_WIDTHS = (2, 3, 4)  # windows of neighbouring bins a sustained departure is also tested over
_WINDOW_EXTRA = 1.0  # windows are many more tests: their z threshold is one higher


@dataclass(frozen=True)
class AcquisitionQC:
    """The acquisition QC of one file.

    Attributes
    ----------
    keep
        Boolean per event: ``False`` for the events removed.
    bins
        One row per time bin (:data:`ACQUISITION_BIN_COLUMNS`): first event and number of events,
        time span, flow rate (events per unit of ``Time``) and its robust z, the longest interval
        between events, the largest robust z of the signal statistics and which one
        (``channel>pNN``: the fraction above the file's NNth percentile), whether the bin departs
        from the file, how many of its events were removed and why. Empty when not checked.
    status
        ``"checked"``, ``"no_time"`` (no usable ``Time`` channel) or ``"too_few_events"``.
    time_channel
        The ``Time`` channel found (``""``: none).
    reasons
        What removed events, most events first: ``"flow rate"``, ``"signal <channel>"``.
    gaps
        Intervals between events longer than ``gap_factor`` times the typical one.
    note
        One sentence for the QC table's notes (``""``: checked, nothing removed, no gap).
    columns
        The columns of ``bins`` as arrays (``bins`` is built from them when first asked for).
    """

    keep: np.ndarray
    status: str
    time_channel: str
    reasons: tuple[str, ...]
    gaps: int
    note: str
    columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @cached_property
    def bins(self) -> pd.DataFrame:
        """The per-bin statistics as a table (built when asked for; ``columns`` holds them)."""
        return pd.DataFrame(
            {name: self.columns.get(name, []) for name in ACQUISITION_BIN_COLUMNS},
            columns=ACQUISITION_BIN_COLUMNS,
        )

    @property
    def n_events(self) -> int:
        """Events of the file."""
        return int(self.keep.size)

    @property
    def n_removed(self) -> int:
        """Events removed."""
        return int(self.keep.size - np.count_nonzero(self.keep))

    @property
    def fraction_removed(self) -> float:
        """Fraction of the file's events removed (0 for an empty file)."""
        return self.n_removed / self.n_events if self.n_events else 0.0


class _Rate(NamedTuple):
    value: np.ndarray  # events per unit of Time, per bin
    centre: float  # median log rate
    limit: float  # distance of the log rate from the centre at which a bin departs
    z: np.ndarray
    score: np.ndarray  # distance / limit, of the bin or a window of bins holding it
    own: np.ndarray  # distance / limit of the bin alone


class _Signal(NamedTuple):
    columns: list[int]
    thresholds: np.ndarray  # levels x channels
    fractions: np.ndarray  # bins x channels x levels
    centre: np.ndarray  # channels x levels
    limit: np.ndarray  # channels x levels
    z: np.ndarray  # per bin: the largest robust z
    stat: np.ndarray  # per bin: which statistic
    score: np.ndarray  # per bin: the largest distance / limit, of the bin or a window holding it
    own: np.ndarray  # per bin: the largest distance / limit of the bin alone


def time_channel(data: FCSData) -> int | None:
    """Column of the ``Time`` channel: ``$PnN`` ``Time`` in any case, else one starting ``Time``."""
    names = [str(c).strip().casefold() for c in data.channels]
    for candidates in (
        [i for i, name in enumerate(names) if name == "time"],
        [i for i, name in enumerate(names) if name.startswith("time")],
    ):
        if candidates:
            return candidates[0]
    return None


def _unchecked(n: int, status: str, channel: str, note: str) -> AcquisitionQC:
    return AcquisitionQC(np.ones(n, dtype=bool), status, channel, (), 0, note)


def _time_problem(times: np.ndarray, steps: np.ndarray) -> str:
    """Why a Time channel cannot date the events ("" when it can)."""
    if times.size < 2:
        return "has fewer than two events"
    smallest = float(steps.min())  # NaN when a value is not finite; one pass for a good file
    if math.isfinite(smallest) and smallest >= 0 and math.isfinite(times[0]):
        return "" if times[-1] > times[0] else "does not advance"
    if not np.isfinite(times).all():
        return "holds values that are not finite"
    if times[-1] <= times[0]:
        return "does not advance"
    backwards = int(np.count_nonzero(steps < 0))
    return f"goes back {backwards} times (events not in acquisition order)"


def _median_rows(values: np.ndarray) -> np.ndarray:
    """The median of each row (as ``np.median(values, axis=1)``, without its overhead)."""
    n = values.shape[1]
    middle = [(n - 1) // 2, n // 2]
    ordered = np.partition(values, middle, axis=1)
    return 0.5 * (ordered[:, middle[0]] + ordered[:, middle[1]])


def _robust(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD-based standard deviation along the first axis (bins)."""
    rows = np.ascontiguousarray(values.reshape(values.shape[0], -1).T)
    centre = _median_rows(rows)
    scale = _MAD_SD * _median_rows(np.abs(rows - centre[:, None]))
    return centre.reshape(values.shape[1:]), scale.reshape(values.shape[1:])


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half the total weight lies."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _bin_edges(n: int, settings: Mapping[str, Any]) -> np.ndarray:
    """First event of each bin, then ``n``.

    Bins of at least ``bin_events`` events, at most ``max_bins`` of them, all of one size but the
    last, which takes the remainder.
    """
    size = max(int(settings["bin_events"]), math.ceil(n / int(settings["max_bins"])))
    edges = np.arange(n // size + 1, dtype=np.int64) * size
    edges[-1] = n
    return edges


def _rate(
    times: np.ndarray, steps: np.ndarray, edges: np.ndarray, settings: Mapping[str, Any]
) -> _Rate | None:
    """The flow rate of every bin; None when Time is too coarse to give one."""
    ends = np.append(edges[1:-1], edges[-1] - 1)  # the last bin ends at its own last event
    spans = times[ends] - times[edges[:-1]]
    intervals = (ends - edges[:-1]).astype(np.float64)
    # the Time channel's resolution: its smallest step (from a sample of steps in a large file)
    sampled = steps[:: max(1, steps.size // 65536)]
    tick = float(sampled[sampled > 0].min(initial=np.inf))
    if (spans <= 0).any() or np.median(spans) < _MIN_TICKS * tick:
        return None
    log_rate = np.log(intervals / spans)
    # the flow the file had for most of its time: a burst packs many events, hence bins, into
    # little time, so bins are weighted by the time they span
    centre = _weighted_median(log_rate, spans)
    scale = _MAD_SD * _weighted_median(np.abs(log_rate - centre), spans)
    floor = 1.0 / math.sqrt(float(np.median(intervals)))  # a Poisson flow's spread
    scale = max(scale, floor)
    z = (log_rate - centre) / scale
    change = math.log1p(float(settings["rate_min_change"]))
    limit = max(float(settings["rate_z"]) * scale, change)
    own = np.abs(log_rate - centre) / limit
    windows = _window_scores(
        log_rate, np.array(centre), np.array(limit), floor, float(settings["rate_z"]), change
    )
    return _Rate(np.exp(log_rate), float(centre), limit, z, np.maximum(own, windows), own)


def _signal(
    events: np.ndarray, edges: np.ndarray, data: FCSData, index: int, settings: Mapping[str, Any]
) -> _Signal | None:
    """The signal statistics of every bin; None when the file has no channel but Time."""
    columns = [j for j in range(events.shape[1]) if j != index]
    if not columns:
        return None
    n_bins, size = edges.size - 1, int(edges[1])
    m = min(size, _STAT_EVENTS, max(_STAT_EVENTS // 4, _STAT_TOTAL // n_bins))
    # m events spread over each bin (a view: bins are of one size), copied once as float32,
    # bins x channels x events so that each count runs along contiguous memory
    view = events[: n_bins * size].reshape(n_bins, size, -1)[:, :: size // m][:, :m]
    sample = np.empty((n_bins, events.shape[1], m), dtype=np.float32)  # every channel: no gather
    np.copyto(sample, view.transpose(0, 2, 1), casting="same_kind")
    stride = min(m, max(1, n_bins * m // 4096))  # about 4,096 events for the thresholds
    pooled = np.moveaxis(sample[:, columns, ::stride], 1, 0).reshape(len(columns), -1)
    ranks = [round(q * (pooled.shape[1] - 1)) for q in _LEVELS]
    thresholds = np.partition(pooled, ranks, axis=1)[:, ranks].T  # levels x channels
    every = np.full((len(_LEVELS), events.shape[1]), np.inf, dtype=np.float32)
    every[:, columns] = thresholds  # Time's are never crossed
    counts = [(sample > t[:, None]).view(np.uint8).sum(axis=2, dtype=np.int32) for t in every]
    fractions = np.stack(counts, axis=2)[:, columns] / m
    centre, scale = _robust(fractions)
    # a bin's fraction varies at least as a binomial's does (events in random order), and the
    # MAD of a few bins can fall below that
    floor = np.sqrt(_LEVEL_ARRAY * (1 - _LEVEL_ARRAY) / m)
    scale = np.maximum(scale, floor)
    distance = np.abs(fractions - centre)
    z = np.divide(distance, scale, out=np.zeros_like(distance), where=scale > 0)
    limit = np.maximum(float(settings["signal_z"]) * scale, float(settings["signal_min_change"]))
    single = (distance / limit).reshape(n_bins, -1)
    own = single.max(axis=1)
    windows = _window_scores(
        fractions,
        centre,
        limit,
        floor,
        float(settings["signal_z"]),
        float(settings["signal_min_change"]),
    )
    best = single.argmax(axis=1)
    labels = np.array(
        [f"{data.channels[j]}>p{round(100 * q)}" for j in columns for q in _LEVELS], dtype=object
    )
    return _Signal(
        columns,
        thresholds,
        fractions,
        centre,
        limit,
        z.reshape(n_bins, -1)[np.arange(n_bins), best],
        labels[best],
        np.maximum(own, windows),
        own,
    )


def _window_scores(
    values: np.ndarray,
    centre: np.ndarray,
    limit: np.ndarray,
    floor: np.ndarray | float,
    z: float,
    change: float,
) -> np.ndarray:
    """Per bin: the largest score of a window of ``_WIDTHS`` neighbouring bins holding it.

    A window's statistic is the mean of its bins', each first brought within one bin's ``limit``
    of the centre (so one departing bin does not make its neighbours depart); its robust scale is
    the MAD of the windows' means, never below ``floor`` (one bin's sampling spread) over the
    square root of the width.
    """
    n = values.shape[0]
    floor = np.broadcast_to(floor, np.shape(centre)).reshape(-1)
    limit = np.broadcast_to(limit, np.shape(centre)).reshape(-1)
    flat, centre = values.reshape(n, -1), np.reshape(centre, -1)
    flat = np.clip(flat, centre - limit, centre + limit)
    cumulative = np.concatenate((np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)))
    best = np.zeros(n)
    for width in (w for w in _WIDTHS if w <= n):
        means = (cumulative[width:] - cumulative[:-width]) / width
        scale = np.maximum(_robust(means)[1], floor / math.sqrt(width))
        limit = np.maximum((z + _WINDOW_EXTRA) * scale, change)
        score = (np.abs(means - centre) / limit).max(axis=1)
        for offset in range(width):  # every bin of the window
            best[offset : offset + score.size] = np.maximum(
                best[offset : offset + score.size], score
            )
    return best


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True."""
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[::2].tolist(), change[1::2].tolist()))


def _departing_runs(score: np.ndarray, min_run: int) -> np.ndarray:
    """Bins to remove: departing runs long or strong enough; short kept stretches between them."""
    removed = np.zeros(score.size, dtype=bool)
    for start, stop in _runs(score >= 1):
        if stop - start >= min_run or score[start:stop].max() >= _EXTREME:
            removed[start:stop] = True
    for start, stop in _runs(~removed):
        if start > 0 and stop < score.size and stop - start < min_run:
            removed[start:stop] = True
    return removed


def _log_ratios(
    first: int,
    stop: int,
    run: slice,
    steps: np.ndarray,
    events: np.ndarray,
    rate: _Rate | None,
    signal: _Signal | None,
) -> np.ndarray:
    """Per event of ``[first, stop)``: log-likelihood of the run's acquisition over the file's."""
    ratios = np.zeros(stop - first)
    # a statistic takes part when the run's mean departs by the threshold of one bin divided by
    # the square root of its bins: the same standard of evidence for the mean as for one bin
    evidence = 1.0 / math.sqrt(run.stop - run.start)
    if rate is not None:
        normal, anomalous = math.exp(rate.centre), float(np.median(rate.value[run]))
        if abs(math.log(anomalous / normal)) >= evidence * rate.limit:
            ratios += math.log(anomalous / normal) - (anomalous - normal) * steps[first:stop]
    if signal is not None:
        normal_p = np.clip(signal.centre, _P_CLIP, 1 - _P_CLIP)
        mean = signal.fractions[run].mean(axis=0)
        anomalous_p = np.clip(mean, _P_CLIP, 1 - _P_CLIP)
        channel, level = np.nonzero(np.abs(mean - signal.centre) >= evidence * signal.limit)
        if channel.size:
            p0, p1 = normal_p[channel, level], anomalous_p[channel, level]
            values = events[first:stop][:, np.asarray(signal.columns)[channel]]
            above = values > signal.thresholds[level, channel]
            below = np.log((1 - p1) / (1 - p0))
            ratios += above @ (np.log(p1 / p0) - below) + below.sum()
    return ratios


def _split(ratios: np.ndarray, boundary: int, *, anomaly_after: bool) -> int:
    """Where in a window the anomaly starts (``anomaly_after``) or stops; ties keep ``boundary``."""
    if anomaly_after:  # evidence of the events from the split to the window's end
        gain = np.concatenate((np.cumsum(ratios[::-1])[::-1], [0.0]))
    else:  # evidence of the events from the window's start to the split
        gain = np.concatenate(([0.0], np.cumsum(ratios)))
    best = int(np.argmax(gain))
    return best if gain[best] > gain[boundary] + 1e-9 else boundary


def _removed_events(
    removed: np.ndarray,
    own: np.ndarray,
    edges: np.ndarray,
    steps: np.ndarray,
    events: np.ndarray,
    rate: _Rate | None,
    signal: _Signal | None,
) -> np.ndarray:
    """The keep-mask: each removed run of bins, its ends placed at the event where it starts/stops.

    The run's core (from its first to its last bin departing on its own; the whole run if none
    does) gives the anomalous acquisition. Each end is searched from one bin into the core to one
    bin beyond the run, so the bins a run holds only through a departing pair are kept when their
    events are normal.
    """
    keep = np.ones(int(edges[-1]), dtype=bool)
    n_bins = removed.size
    for start, stop in _runs(removed):
        alone = np.flatnonzero(own[start:stop] >= 1)
        first_core, stop_core = (
            (start + int(alone[0]), start + int(alone[-1]) + 1) if alone.size else (start, stop)
        )
        core = slice(first_core, stop_core)
        lo, hi = int(edges[max(start - 1, 0)]), int(edges[first_core + 1])
        ratios = _log_ratios(lo, hi, core, steps, events, rate, signal)
        first = lo + _split(ratios, int(edges[start]) - lo, anomaly_after=True)
        lo, hi = int(edges[stop_core - 1]), int(edges[min(stop + 1, n_bins)])
        ratios = _log_ratios(lo, hi, core, steps, events, rate, signal)
        last = lo + _split(ratios, int(edges[stop]) - lo, anomaly_after=False)
        keep[first:last] = False
    return keep


def acquisition_qc(data: FCSData, settings: Mapping[str, Any]) -> AcquisitionQC:
    """Find the stretches of a file whose flow rate or signal departs from the rest of it.

    Parameters
    ----------
    data
        A file as :func:`cytotrial.io.read_fcs` reads it (``Time`` already scaled by ``$TIMESTEP``).
    settings
        The config's resolved ``qc.acquisition`` section (``bin_events``, ``max_bins``, ``rate_z``,
        ``rate_min_change``, ``signal_z``, ``signal_min_change``, ``min_run``, ``gap_factor``;
        ``enabled``, ``max_removed`` and ``exclude_above`` are the caller's).

    Returns
    -------
    AcquisitionQC
        The events to keep, per-bin statistics and a summary. A file without a usable ``Time``
        channel or with fewer than eight bins keeps every event, with a note saying why.
    """
    events = np.asarray(data.events)
    n = int(events.shape[0])
    index = time_channel(data)
    if index is None:
        return _unchecked(n, "no_time", "", "acquisition_no_time: no Time channel, not checked.")
    name = data.channels[index]
    times = np.ascontiguousarray(events[:, index], dtype=np.float64)
    # the interval after each event (the last event's: the typical one, filled in by _check)
    steps = np.empty_like(times)
    np.subtract(times[1:], times[:-1], out=steps[:-1])
    steps[-1] = np.nan
    problem = _time_problem(times, steps[:-1])
    if problem:
        note = f"acquisition_no_time: the {name} channel {problem}, not checked."
        return _unchecked(n, "no_time", name, note)
    edges = _bin_edges(n, settings)
    if edges.size - 1 < _MIN_BINS:
        note = (
            f"acquisition_too_few_events: {n} events make fewer than {_MIN_BINS} time bins of "
            f"{settings['bin_events']}, not checked."
        )
        return _unchecked(n, "too_few_events", name, note)
    return _check(data, events, times, steps, index, edges, settings)


def _check(
    data: FCSData,
    events: np.ndarray,
    times: np.ndarray,
    steps: np.ndarray,
    index: int,
    edges: np.ndarray,
    settings: Mapping[str, Any],
) -> AcquisitionQC:
    """The QC of a file whose Time channel is usable and whose bins are enough to judge."""
    n_bins, name = edges.size - 1, data.channels[index]
    rate = _rate(times, steps[:-1], edges, settings)
    steps[-1] = math.exp(-rate.centre) if rate is not None else 0.0
    signal = _signal(events, edges, data, index, settings)
    rate_score = rate.score if rate is not None else np.zeros(n_bins)
    signal_score = signal.score if signal is not None else np.zeros(n_bins)
    score = np.maximum(rate_score, signal_score)
    rate_own = rate.own if rate is not None else np.zeros(n_bins)
    own = np.maximum(rate_own, signal.own) if signal is not None else rate_own
    departs = _departing_runs(score, int(settings["min_run"]))
    keep = _removed_events(departs, own, edges, steps, events, rate, signal)
    nan = np.full(n_bins, np.nan)
    stat = signal.stat if signal is not None else np.full(n_bins, "", dtype=object)
    cause = np.where(
        rate_score >= signal_score, "flow rate", ["signal " + str(s).split(">")[0] for s in stat]
    )
    bins = {
        "bin": np.arange(n_bins),
        "first_event": edges[:-1],
        "n_events": np.diff(edges),
        "time_start": times[edges[:-1]],
        "time_stop": times[np.append(edges[1:-1], edges[-1] - 1)],
        "rate": rate.value if rate is not None else nan,
        "rate_z": rate.z if rate is not None else nan,
        "max_interval": np.maximum.reduceat(steps, edges[:-1]),
        "signal_z": signal.z if signal is not None else nan,
        "signal_stat": stat,
        "departs": departs,
        "events_removed": (
            np.add.reduceat(~keep, edges[:-1]).astype(np.int64)
            if departs.any()
            else np.zeros(n_bins, dtype=np.int64)
        ),
        "reason": np.full(n_bins, "", dtype=object),
    }
    for start, stop in _runs(bins["events_removed"] > 0):  # a stretch's main cause
        bins["reason"][start:stop] = cause[start + int(np.argmax(score[start:stop]))]
    notes = [] if rate is not None else [f"the {name} channel is too coarse for the flow rate"]
    gaps = 0
    if rate is not None:
        typical = math.exp(-rate.centre)
        gaps = int(np.count_nonzero(steps > float(settings["gap_factor"]) * typical))
        if gaps:
            longest = float(steps.max()) / typical
            notes.append(
                f"gaps in {name}: {gaps} (the longest {longest:.0f} times the typical interval)"
            )
    return _summary(keep, bins, name, gaps, notes)


def _summary(
    keep: np.ndarray, bins: dict[str, np.ndarray], name: str, gaps: int, notes: list[str]
) -> AcquisitionQC:
    weights: dict[str, int] = {}
    for i in np.flatnonzero(bins["events_removed"]):
        weights[bins["reason"][i]] = weights.get(bins["reason"][i], 0) + int(
            bins["events_removed"][i]
        )
    reasons = tuple(sorted(weights, key=lambda r: -weights[r]))  # stable: first seen first
    removed = int(keep.size - np.count_nonzero(keep))
    if removed:
        stretch = int(np.count_nonzero(bins["events_removed"] > 0))
        notes.insert(
            0,
            f"acquisition QC removed {removed} of {keep.size} events ({removed / keep.size:.3f}) "
            f"in {stretch} of {len(bins['bin'])} time bins: {', '.join(reasons)}",
        )
    note = f"{'; '.join(notes)}." if notes else ""
    return AcquisitionQC(keep, "checked", name, reasons, gaps, note, bins)


def removed_stretches(
    times: np.ndarray, keep: np.ndarray
) -> tuple[list[tuple[float | None, float | None]], int]:
    """The removed runs of events as ``[lo, hi)`` ranges of Time, and the events they misplace.

    ``times``: the file's Time values in acquisition order; ``keep``: what acquisition QC kept.
    A range is open (``None``) at the start or end of the file. Misplaced events are those a Time
    gate of the ranges counts differently from ``keep`` (a run that ends between events of the
    same Time).
    """
    removed = ~keep
    edges = np.flatnonzero(np.diff(np.concatenate(([0], removed.astype(np.int8), [0]))))
    ranges: list[tuple[float | None, float | None]] = []
    for start, stop in zip(edges[::2], edges[1::2]):
        low = None if start == 0 else float(times[start])
        high = None if stop == times.size else float(times[stop])
        ranges.append((low, high))
    by_time = np.zeros(times.size, dtype=bool)
    for low, high in ranges:
        inside = np.ones(times.size, dtype=bool)
        if low is not None:
            inside &= times >= low
        if high is not None:
            inside &= times < high
        by_time |= inside
    return ranges, int(np.count_nonzero(by_time != removed))
