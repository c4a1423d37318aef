"""Before a file is gated: its own spillover usable, its events finite where the gating reads them.

Two things would otherwise give numbers that look right and are not:

* **A spillover keyword that cannot be used** (``$SPILLOVER``/``$SPILL``/``SPILL`` present but not
  a matrix, or naming detectors the file lacks). GatingML 2.0 gates a file *without* spillover
  uncompensated; a file whose spillover is there but unreadable is not such a file, and gating it
  uncompensated changes every compensated population. Such a sample is excluded with its reason,
  unless the config says ``gating.unreadable_compensation: uncompensated``: then it is gated
  uncompensated and flagged ``uncompensated``. Only where the file's own spillover would be used
  (``gating.compensation: fcs`` and a gate compensated with ``FCS``, or MFIs, which are taken
  from compensated values).
* **Non-finite values** (NaN, +inf, -inf). FlowKit keeps such events and FlowUtils' logicle maps
  them to -1, a real-looking negative value that lands them in negative gates. Here an event
  holding a non-finite value in a channel the gating reads (a gate's dimension, a detector of a
  spillover matrix it applies, an MFI channel) is left out of gating: it is in no population and
  not in the events gated (``events_in``, the top population's parent count). The counts per
  channel are in the notes (from reading), the events left out in a note of their own, and the
  sample is flagged ``non_finite:<channel>`` for every channel holding one. A channel the gating
  reads that holds no finite value at all excludes the sample, as does a file with no event left.

Channels are named as the strategy or ``panels:`` name them, others by keyword (``$P7N``): no
value of the file's TEXT is quoted (:func:`cytotrial.io.shown_channel_names`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FCSReadError
from ._mfi import marker_channels

if TYPE_CHECKING:
    from ..io import FCSData
    from ._populations import PanelGating

__all__ = ["UNREADABLE_COMPENSATION", "check_file_spill", "leave_out_non_finite"]

#: What ``gating.unreadable_compensation`` may say: exclude the sample, or gate it uncompensated.
UNREADABLE_COMPENSATION = ("exclude", "uncompensated")


def _uses_file_spill(gating: PanelGating) -> bool:
    """Whether gating this panel applies the file's own spillover (a gate's ``FCS``, or MFIs)."""
    if gating.mfi:
        return True
    for gate in gating.strategy.gates:
        for dim in getattr(gate.fk_gate, "dimensions", None) or []:
            if getattr(dim, "compensation_ref", None) == "FCS":
                return True
    return False


def check_file_spill(data: FCSData, gating: PanelGating, *, policy: str) -> None:
    """Exclude a file whose own spillover the gating needs but cannot use, or gate it uncompensated.

    Parameters
    ----------
    data
        The file as read (its ``spill`` and ``spill_problem``); with ``policy`` ``uncompensated``
        its ``spill`` is dropped, a note added and ``flags`` gets ``uncompensated``.
    gating
        The panel's gating (does it apply the file's spillover?).
    policy
        ``gating.unreadable_compensation``: ``exclude`` or ``uncompensated``.

    Raises
    ------
    FCSReadError
        With ``policy`` ``exclude``: one line naming the file, the keyword and the problem.
    ValueError
        ``policy`` is not one of :data:`UNREADABLE_COMPENSATION` (a caller's bug; the config
        schema allows only these).
    """
    if policy not in UNREADABLE_COMPENSATION:
        raise ValueError(f"unreadable_compensation must be one of {UNREADABLE_COMPENSATION}")
    problem = data.spill_problem
    if problem is None or not _uses_file_spill(gating):
        return
    if policy == "exclude":
        raise FCSReadError(
            f"{Path(data.path).name}: {problem}, so its events cannot be compensated; correct the "
            "file, give config gating.compensation a matrix, or set "
            "gating.unreadable_compensation: uncompensated to gate it uncompensated (flagged)"
        )
    data.spill = None
    data.notes.append(
        "Gated uncompensated: the file's spillover cannot be used "
        "(config gating.unreadable_compensation: uncompensated)."
    )
    data.flags.append("uncompensated")


def _read_columns(
    data: FCSData,
    gating: PanelGating,
    channel_map: Mapping[str, str],
    panels: Mapping[str, Sequence[str]] | None,
) -> list[int]:
    """File columns the gating reads: gate dimensions, matrix detectors, MFI channels."""
    channels = list(data.channels)
    names = set(channel_map.values())
    if gating.mfi:
        names |= set(marker_channels(data, gating.mfi, panels=panels).values())
    spill = data.spill
    if spill is not None and _uses_file_spill(gating):
        names |= {str(name) for name in spill.columns}
    return sorted(channels.index(name) for name in names if name in channels)


def _non_finite_columns(events: np.ndarray) -> dict[int, np.ndarray]:
    """Column -> mask of its non-finite values, for every column holding one."""
    with np.errstate(over="ignore", invalid="ignore"):
        suspects = np.flatnonzero(~np.isfinite(events.sum(axis=0)))
    found = {}
    for column in suspects:
        mask = ~np.isfinite(events[:, column])
        if mask.any():
            found[int(column)] = mask
    return found


def leave_out_non_finite(
    data: FCSData,
    gating: PanelGating,
    channel_map: Mapping[str, str],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Flag non-finite values and leave out of ``data.events`` the events the gating would read them.

    Raises
    ------
    FCSReadError
        A channel the gating reads holds no finite value, or no event is finite where it reads.
    MissingMarkerError
        The file lacks a channel for an MFI marker (as gating itself would say).
    """
    from ..io import shown_channel_names

    bad = _non_finite_columns(data.events)
    if not bad:
        return
    needed = [*gating.strategy.dimensions(), *(marker for _, marker in gating.mfi)]
    channels = shown_channel_names(data.channels, panels=panels, needed=needed)
    data.flags.extend(f"non_finite:{channels[column]}" for column in bad)
    read = [column for column in _read_columns(data, gating, channel_map, panels) if column in bad]
    if not read:
        return
    file = Path(data.path).name
    for column in read:
        if bad[column].all():
            raise FCSReadError(
                f"{file}: channel {channels[column]} holds no finite value (every event NaN or "
                "infinite) and the gating reads it; export the file again or leave it out"
            )
    left_out = np.logical_or.reduce([bad[column] for column in read])
    n = int(np.count_nonzero(left_out))
    if n == data.n_events:
        raise FCSReadError(
            f"{file}: no event has finite values in every channel the gating reads "
            f"({', '.join(channels[c] for c in read)}); export the file again or leave it out"
        )
    data.events = data.events[~left_out]
    data.notes.append(
        f"{n} event(s) with non-finite values in {', '.join(channels[c] for c in read)}, "
        "which the gating reads, were left out of gating."
    )
