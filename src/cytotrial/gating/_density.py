"""Binned, smoothed densities of a gate's parent events, and the positions adaptive gates read off them.

Everything here works on histograms in the gate's own (transformed) units, with NumPy only:

* :func:`profile` smooths a 1-D histogram with a Gaussian kernel (a binned kernel density
  estimate; bandwidth by Silverman's rule of thumb on the binned values unless given);
* :func:`valley` is the density minimum between two modes inside a search window (openCyto's
  ``mindensity``, flowDensity's ``deGate``);
* :func:`reference_threshold` is a tail or a quantile of a reference (negative) population, its
  unseen side mirrored from the side away from the threshold (openCyto's ``tailgate`` and
  ``quantileGate`` made robust to the positive population's overlap);
* :func:`peak_2d` is the density peak of a 2-D histogram inside a search box (a scatter gate that
  follows its cloud).

Each returns a position, or ``None`` with a short reason (one mode, too few events, ...): the
caller then keeps the template's position and flags the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Profile",
    "gaussian_kernel",
    "peak_2d",
    "profile",
    "reference_threshold",
    "smooth",
    "valley",
]

#: A valley must be at most this fraction of the lower of its two flanking modes.
VALLEY_DEPTH = 0.8
#: A mode beside a valley must hold at least this fraction of the events on the grid (and
#: ``min_mode_events`` events).
MIN_MODE_FRACTION = 0.003
#: Valleys whose densities differ by less than this fraction of the highest mode are as low.
TIE = 0.002
#: The default bandwidth is Silverman's rule of thumb times this (openCyto's ``mindensity``
#: smooths likewise, twice R's default).
ADJUST = 2.0
#: A 2-D peak must be this many times the mean density of the occupied cells of its search box.
PEAK_CONTRAST = 2.0
_NORMAL_LOWER_TAIL = 0.15865525393145707  # P(Z < -1): the mirrored quantile giving one sd


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised Gaussian kernel of ``sigma`` bins, truncated at four sigma (odd length)."""
    sigma = max(float(sigma), 1e-3)
    half = max(1, math.ceil(4.0 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def smooth(counts: np.ndarray, sigma: float) -> np.ndarray:
    """Counts smoothed along every axis by a Gaussian of ``sigma`` bins (zero outside the grid).

    1-D: a direct convolution; 2-D: SciPy's separable filter (no BLAS threads).
    """
    out = np.asarray(counts, dtype=np.float64)
    if out.ndim != 1:
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(out, max(float(sigma), 1e-3), mode="constant", truncate=4.0)
    kernel = gaussian_kernel(sigma)
    if kernel.size > out.size:  # keep the result on the grid ("same" needs the longer input)
        cut = (kernel.size - out.size) // 2 + (1 - out.size % 2)
        kernel = kernel[cut : kernel.size - cut]
    return np.convolve(out, kernel, mode="same")


@dataclass(frozen=True)
class Profile:
    """A 1-D binned density on a uniform grid of the gate's units.

    Attributes
    ----------
    lo, step
        The grid's first edge and bin width.
    counts
        Events per bin.
    density
        ``counts`` smoothed with a Gaussian of ``bandwidth`` (same units as ``counts``).
    below, above
        Events below the grid's first and above its last edge.
    bandwidth
        The kernel's standard deviation, in the gate's units.
    """

    lo: float
    step: float
    counts: np.ndarray
    density: np.ndarray
    below: float
    above: float
    bandwidth: float

    @property
    def centers(self) -> np.ndarray:
        """Bin centres."""
        return self.lo + self.step * (np.arange(self.counts.size) + 0.5)

    @property
    def n(self) -> float:
        """Every event, on the grid or beyond it."""
        return float(self.counts.sum() + self.below + self.above)

    def index(self, value: float) -> int:
        """The bin holding ``value`` (clipped to the grid)."""
        return int(min(max(math.floor((value - self.lo) / self.step), 0), self.counts.size - 1))

    def position(self, i: float) -> float:
        """The gate-unit position of the (fractional) bin index ``i``'s centre."""
        return self.lo + self.step * (i + 0.5)

    def count_below(self, value: float) -> float:
        """Events below ``value`` (linear within its bin)."""
        cumulative = self.below + np.concatenate(([0.0], np.cumsum(self.counts)))
        edges = self.lo + self.step * np.arange(self.counts.size + 1)
        if value >= edges[-1]:
            return float(cumulative[-1])
        return float(np.interp(value, edges, cumulative)) if value >= edges[0] else 0.0

    def at_count(self, k: float) -> float:
        """Where the cumulative count from below (events below the grid first) reaches ``k``."""
        cumulative = self.below + np.concatenate(([0.0], np.cumsum(self.counts)))
        edges = self.lo + self.step * np.arange(self.counts.size + 1)
        return float(np.interp(k, cumulative, edges))


def _bandwidth(counts: np.ndarray, centers: np.ndarray, step: float) -> float:
    """Silverman's rule of thumb (R's ``bw.nrd0``) on binned values times :data:`ADJUST`.

    At least two bins.
    """
    n = float(counts.sum())
    if n < 2:
        return 2.0 * step
    mean = float(np.dot(counts, centers) / n)
    sd = math.sqrt(max(float(np.dot(counts, (centers - mean) ** 2) / n), 0.0))
    cumulative = np.cumsum(counts)
    q1, q3 = np.interp([0.25 * n, 0.75 * n], cumulative, centers)
    spread = min(sd, (q3 - q1) / 1.34) or sd or step
    return max(0.9 * spread * n**-0.2, 2.0 * step)


def profile(
    counts: np.ndarray,
    lo: float,
    step: float,
    *,
    below: float = 0.0,
    above: float = 0.0,
    bandwidth: float | None = None,
) -> Profile:
    """A smoothed density from a histogram on a uniform grid (bandwidth in the grid's units)."""
    counts = np.asarray(counts, dtype=np.float64)
    centers = lo + step * (np.arange(counts.size) + 0.5)
    h = _bandwidth(counts, centers, step) if bandwidth is None else max(float(bandwidth), 1e-12)
    density = smooth(counts, h / step)
    return Profile(lo, step, counts, density, float(below), float(above), h)


def _refine(density: np.ndarray, i: int) -> float:
    """The fractional index of an extremum at ``i``: the vertex of the parabola through 3 bins."""
    if i <= 0 or i >= density.size - 1:
        return float(i)
    a, b, c = density[i - 1], density[i], density[i + 1]
    curvature = a - 2.0 * b + c
    if curvature == 0:
        return float(i)
    return float(i + np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))


def _local_minima(density: np.ndarray, start: int, stop: int) -> list[int]:
    """Indices in ``[start, stop)`` of local minima (a flat run counts once, at its middle).

    A flat run may begin or end outside ``[start, stop)``: its middle is clipped into it.
    """
    found = []
    i = max(start, 1)
    while i > 1 and density[i - 1] == density[i]:
        i -= 1  # a flat run reaching back beyond start
    last = min(stop, density.size - 1)
    while i < last:
        j = i
        while j + 1 < density.size - 1 and density[j + 1] == density[i]:
            j += 1  # a flat run i..j
        if density[i - 1] > density[i] and density[j + 1] > density[j]:
            found.append(min(max((i + j) // 2, start), stop - 1))
        i = j + 1
    return found


def valley(
    prof: Profile,
    window: tuple[float, float],
    *,
    prefer: float | None = None,
    min_mode_events: float = 20.0,
) -> tuple[float | None, str]:
    """The density minimum between two modes inside ``window``: ``(position, "")`` or ``(None, why)``.

    A candidate is a local minimum of the smoothed density inside the window with a mode on each
    side (anywhere on the grid) at least ``1 / VALLEY_DEPTH`` times as dense, each side holding
    at least ``min_mode_events`` and ``MIN_MODE_FRACTION`` of the events. The lowest candidate
    wins; candidates within :data:`TIE` of the lowest density count as equally low, and of those
    the one nearest ``prefer`` (the template's position; default the window's middle) wins.
    """
    density = prof.density
    start, stop = prof.index(window[0]), prof.index(window[1]) + 1
    minima = _local_minima(density, start, stop)
    if not minima:
        return None, "no density minimum inside the window (one mode)"
    total = float(prof.counts.sum())
    need = max(min_mode_events, MIN_MODE_FRACTION * total)
    cumulative = np.cumsum(prof.counts)
    target = 0.5 * (window[0] + window[1]) if prefer is None else float(prefer)
    candidates: list[tuple[float, int]] = []
    for i in minima:
        left_peak, right_peak = density[:i].max(), density[i + 1 :].max()
        if density[i] > VALLEY_DEPTH * min(left_peak, right_peak):
            continue
        left_mass = cumulative[i] - 0.5 * prof.counts[i]
        if left_mass < need or total - left_mass < need:
            continue
        candidates.append((float(density[i]), i))
    if not candidates:
        return None, "no valley between two modes inside the window"
    tie = TIE * float(density.max())
    lowest = min(d for d, _ in candidates)
    positions = [
        _on_floor(prof, i, tie, target, window) for d, i in candidates if d <= lowest + tie
    ]
    return min(positions, key=lambda p: (abs(p - target), p)), ""


def _on_floor(
    prof: Profile, i: int, tie: float, target: float, window: tuple[float, float]
) -> float:
    """The valley's position: its bottom, or the point of its floor nearest ``target``.

    The floor is where the density stays within ``tie`` of the minimum: an empty gap between
    populations, where any threshold gives the same events.
    """
    density = prof.density
    floor = density[i] + tie
    lo = hi = i
    while lo > 0 and density[lo - 1] <= floor:
        lo -= 1
    while hi < density.size - 1 and density[hi + 1] <= floor:
        hi += 1
    if hi - lo < 2:
        return float(np.clip(prof.position(_refine(density, i)), *window))
    edge_lo = max(prof.position(lo), window[0])
    edge_hi = min(prof.position(hi), window[1])
    return float(np.clip(target, edge_lo, edge_hi))


def _mode(prof: Profile, lo: float, hi: float) -> float | None:
    """The fractional index of the densest bin within ``[lo, hi]`` that is a local maximum."""
    start, stop = prof.index(lo), prof.index(hi) + 1
    if stop <= start:
        return None
    segment = prof.density[start:stop]
    i = start + int(np.argmax(segment))
    d = prof.density
    if d[i] <= 0 or (i > 0 and d[i - 1] > d[i]) or (i < d.size - 1 and d[i + 1] > d[i]):
        return None  # the densest bin lies on the range's edge, rising beyond it
    return _refine(d, i)


def reference_threshold(
    prof: Profile,
    window: tuple[float, float],
    reference_range: tuple[float, float],
    *,
    side: str,
    quantile: float | None = None,
    sds: float | None = None,
    min_events: float = 20.0,
) -> tuple[float | None, str]:
    """A threshold beyond a reference population: a tail (``sds``) or a quantile of it.

    The reference population's mode is the density peak inside ``reference_range``. Its side away
    from the threshold (``side="below"``: the population lies below the threshold, so its lower
    half) is mirrored to estimate the other, which the positive population may overlap: with
    ``sds``, the threshold is ``mode + sds x sigma`` (sigma: the mirrored 15.9% quantile's
    distance from the mode); with ``quantile``, the mirrored ``quantile`` of the population.
    ``side="above"`` mirrors the upper half and places the threshold below the population.
    """
    index = _mode(prof, *reference_range)
    if index is None:
        return None, "no reference population peak inside its range"
    mode = prof.position(index)
    below_mode = prof.count_below(mode)
    n_half = below_mode if side == "below" else prof.n - below_mode
    if n_half < min_events:
        return None, f"too few events in the reference population ({n_half:.0f})"
    tail = _NORMAL_LOWER_TAIL if sds is not None else 1.0 - float(quantile)
    k = 2.0 * n_half * tail  # events of the mirrored half beyond the wanted distance
    far = prof.at_count(k) if side == "below" else prof.at_count(prof.n - k)
    distance = abs(mode - far)
    if sds is not None:
        distance *= float(sds)
    threshold = mode + distance if side == "below" else mode - distance
    if not window[0] <= threshold <= window[1]:
        return None, f"threshold {threshold:.4g} outside the window"
    return threshold, ""


def peak_2d(
    counts: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    *,
    sigma_bins: float = 2.0,
    min_events: float = 200.0,
) -> tuple[tuple[float, float] | None, str]:
    """The density peak of a 2-D histogram: ``((x, y), "")`` or ``(None, why)``.

    The peak must stand out (at least :data:`PEAK_CONTRAST` times the mean smoothed density of
    the occupied cells) and lie inside the box, not on its edge (the population would then lie
    beyond the search box).
    """
    total = float(counts.sum())
    if total < min_events:
        return None, f"too few events in the search box ({total:.0f})"
    density = smooth(counts, sigma_bins)
    flat = int(np.argmax(density))
    i, j = np.unravel_index(flat, density.shape)
    occupied = density[counts > 0]
    if density[i, j] < PEAK_CONTRAST * float(occupied.mean()):
        return None, "no clear density peak in the search box"
    edge = max(1, round(sigma_bins))
    if not (edge <= i < density.shape[0] - edge and edge <= j < density.shape[1] - edge):
        return None, "the density peak lies on the edge of the search box"
    fi = _refine(density[:, j], int(i))
    fj = _refine(density[i, :], int(j))
    x = float(np.interp(fi + 0.5, np.arange(x_edges.size), x_edges))
    y = float(np.interp(fj + 0.5, np.arange(y_edges.size), y_edges))
    return (x, y), ""
