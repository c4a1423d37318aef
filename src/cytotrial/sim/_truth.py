"""The simulator's truth populations: their gate paths, their cell types and their true counts.

These are the simulator's own: the canonical populations of the demo, each at its gate path in
the demo gating strategies ``resources/gating/blood.xml`` and ``tumor.xml`` (``gating:id`` of the
gates from the top of the tree down), plus the demo's Boolean populations (``cd8_activated`` =
``cd8_hladr and cd8_cd38``, ``cd4_conv`` = ``cd4 and not treg``), which the demo config defines
over those gates. A population's true count is the number of events whose labels satisfy every
criterion on that path (for a Boolean population: its expression over the gate populations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SampleSheetError
from ._panel import _CD8, _LYMPHOID, CELL_TYPES, _panel_model

_CD8_PATH = ("lymphocytes", "singlets", "live", "cd3", "cd8")
_TUMOR_CD8_PATH = ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd8")

#: Gate path of each gate population in the demo strategies, parents before children.
_GATE_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "blood": {
        "lymphocytes": ("lymphocytes",),
        "singlets": ("lymphocytes", "singlets"),
        "live": ("lymphocytes", "singlets", "live"),
        "cd3": ("lymphocytes", "singlets", "live", "cd3"),
        "cd4": ("lymphocytes", "singlets", "live", "cd3", "cd4"),
        "cd8": _CD8_PATH,
        "treg": ("lymphocytes", "singlets", "live", "cd3", "cd4", "treg"),
        "nk": ("lymphocytes", "singlets", "live", "cd3_neg", "nk"),
        "cd8_ki67": (*_CD8_PATH, "cd8_ki67"),
        "cd8_hladr": (*_CD8_PATH, "cd8_hladr"),
        "cd8_cd38": (*_CD8_PATH, "cd8_cd38"),
    },
    "tumor": {
        "lymphocytes": ("lymphocytes",),
        "singlets": ("lymphocytes", "singlets"),
        "live": ("lymphocytes", "singlets", "live"),
        "leukocytes": ("lymphocytes", "singlets", "live", "leukocytes"),
        "cd3": ("lymphocytes", "singlets", "live", "leukocytes", "cd3"),
        "cd4": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd4"),
        "cd8": _TUMOR_CD8_PATH,
        "treg": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd4", "treg"),
        "nk": ("lymphocytes", "singlets", "live", "leukocytes", "cd3_neg", "nk"),
        "cd8_ki67": (*_TUMOR_CD8_PATH, "cd8_ki67"),
        "cd8_hladr": (*_TUMOR_CD8_PATH, "cd8_hladr"),
        "cd8_cd38": (*_TUMOR_CD8_PATH, "cd8_cd38"),
    },
}

#: Boolean populations of the demo (both panels): expression over gate populations, parent.
_BOOLEANS: dict[str, tuple[str, str]] = {
    "cd8_activated": ("cd8_hladr and cd8_cd38", "cd8"),
    "cd4_conv": ("cd4 and not treg", "cd4"),
}

#: Truth populations per panel, parents before children: the gates, then the Booleans.
POPULATIONS: dict[str, tuple[str, ...]] = {
    panel: (*paths, *_BOOLEANS) for panel, paths in _GATE_PATHS.items()
}

#: Parent of each population (None: top level, parent = all events), as the workflow reports it:
#: the nearest gate above it on its gate path that is itself a truth population (``nk``: live,
#: tumor: leukocytes; the ``cd3_neg`` gate is not a population), for a Boolean population the
#: deepest population above all its positive operands.
_PARENT: dict[str, dict[str, str | None]] = {
    panel: {
        **{p: next((g for g in path[-2::-1] if g in paths), None) for p, path in paths.items()},
        **{p: parent for p, (_, parent) in _BOOLEANS.items()},
    }
    for panel, paths in _GATE_PATHS.items()
}

_ACTIVATED = ("cd8_act_ki67neg", "cd8_act_ki67pos")

#: Cell types making up each population (among live singlets of lymphocyte scatter).
_POPULATION_TYPES: dict[str, tuple[str, ...]] = {
    "leukocytes": _LYMPHOID,
    "cd3": ("cd4_conv", "treg", *_CD8, "t_other"),
    "cd4": ("cd4_conv", "treg"),
    "cd8": _CD8,
    "treg": ("treg",),
    "nk": ("nk",),
    "cd8_ki67": ("cd8_ki67pos", "cd8_act_ki67pos"),
    "cd8_hladr": (*_ACTIVATED, "cd8_hladr_only"),
    "cd8_cd38": (*_ACTIVATED, "cd8_cd38_only"),
    "cd8_activated": _ACTIVATED,
    "cd4_conv": ("cd4_conv",),
}


def _truth_membership(
    panel: str, cell_type: np.ndarray, dead: np.ndarray, doublet: np.ndarray
) -> dict[str, np.ndarray]:
    """Boolean true membership of every event in each truth population of the panel."""
    lymph = _panel_model(panel).lymph_scatter[cell_type]
    singlets = lymph & ~doublet
    live = singlets & ~dead
    membership = {"lymphocytes": lymph, "singlets": singlets, "live": live}
    for population in POPULATIONS[panel][3:]:
        codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
        membership[population] = live & np.isin(cell_type, codes)
    return membership


def _truth_counts(
    panel: str, cell_type: np.ndarray, dead: np.ndarray, doublet: np.ndarray
) -> dict[str, int]:
    """True event count of each truth population of the panel."""
    n_types = len(CELL_TYPES)
    # one bincount over (type, dead, doublet) gives every population as a sum of cells
    table = np.bincount(
        cell_type.astype(np.int64) * 4 + dead * 2 + doublet, minlength=n_types * 4
    ).reshape(n_types, 4)
    all_events = table.sum(axis=1)
    live_singlets = table[:, 0]
    lymph = _panel_model(panel).lymph_scatter
    counts = {
        "lymphocytes": int(all_events[lymph].sum()),
        "singlets": int(table[lymph][:, [0, 2]].sum()),
        "live": int(live_singlets[lymph].sum()),
    }
    for population in POPULATIONS[panel][3:]:
        codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
        counts[population] = int(live_singlets[codes].sum())
    return counts


# --- per-event truth ------------------------------------------------------------------------

# one byte per event: bits 0-3 the cell type's code, bit 4 dead, bit 5 doublet, bit 6 anomalous
_DEAD_BIT, _DOUBLET_BIT, _ANOMALOUS_BIT = 16, 32, 64
assert len(CELL_TYPES) <= 16


@dataclass(frozen=True)
class EventTruth:
    """Every event's labels in one simulated file, in the file's event order.

    Attributes
    ----------
    panel
        ``"blood"`` or ``"tumor"``.
    cell_type
        Code of each event's cell type (index into :data:`CELL_TYPES`).
    dead, doublet
        Whether each event is a dead cell / a doublet.
    anomalous
        Whether each event was acquired during the file's acquisition anomaly (a stretch of
        ``Time`` with an abnormal flow rate or signal).
    """

    panel: str
    cell_type: np.ndarray
    dead: np.ndarray
    doublet: np.ndarray
    anomalous: np.ndarray

    @property
    def n_events(self) -> int:
        """Number of events in the file."""
        return int(self.cell_type.size)

    def membership(self, *, include_anomalous: bool = False) -> dict[str, np.ndarray]:
        """Boolean true membership of every event in each truth population of the panel.

        Parameters
        ----------
        include_anomalous
            Give anomalous events their labels' populations too (default: they belong to none,
            as after a perfect acquisition QC; the truth tables count them so).

        Returns
        -------
        dict of str to numpy.ndarray
            Population (in the order of :data:`POPULATIONS`) -> boolean array over the events.
        """
        membership = _truth_membership(self.panel, self.cell_type, self.dead, self.doublet)
        if include_anomalous or not self.anomalous.any():
            return membership
        normal = ~self.anomalous
        return {population: mask & normal for population, mask in membership.items()}

    def counts(self, *, include_anomalous: bool = False) -> dict[str, int]:
        """True event count of each truth population (anomalous events as in :meth:`membership`).

        Returns
        -------
        dict of str to int
            Population (in the order of :data:`POPULATIONS`) -> number of events.
        """
        keep = slice(None) if include_anomalous else ~self.anomalous
        return _truth_counts(self.panel, self.cell_type[keep], self.dead[keep], self.doublet[keep])

    def packed(self) -> np.ndarray:
        """One uint8 per event: bits 0-3 cell type code, 4 dead, 5 doublet, 6 anomalous."""
        code = self.cell_type.astype(np.uint8)
        code |= self.dead.astype(np.uint8) * np.uint8(_DEAD_BIT)
        code |= self.doublet.astype(np.uint8) * np.uint8(_DOUBLET_BIT)
        code |= self.anomalous.astype(np.uint8) * np.uint8(_ANOMALOUS_BIT)
        return code

    @classmethod
    def unpack(cls, panel: str, code: np.ndarray) -> EventTruth:
        """The inverse of :meth:`packed`."""
        code = np.asarray(code, dtype=np.uint8)
        return cls(
            panel=panel,
            cell_type=(code & 15).astype(np.int8),
            dead=(code & _DEAD_BIT) > 0,
            doublet=(code & _DOUBLET_BIT) > 0,
            anomalous=(code & _ANOMALOUS_BIT) > 0,
        )


def truth_events(trial: str | Path, sample_id: str) -> EventTruth:
    """Every event's truth of one file of a trial written by :func:`simulate_trial`.

    Parameters
    ----------
    trial
        The folder :func:`simulate_trial` wrote (with ``samples.tsv`` and ``truth/events/``).
    sample_id
        The sample, as in ``samples.tsv``.

    Returns
    -------
    EventTruth
        Labels and anomaly flag of each event, in the order of the file's events.

    Raises
    ------
    SampleSheetError
        The sample is not in the trial's sheet, or its event truth is missing.
    """
    sheet_path = Path(trial) / "samples.tsv"
    path = Path(trial) / "truth" / "events" / f"{sample_id}.npy"
    try:
        sheet = pd.read_csv(sheet_path, sep="\t", usecols=["sample_id", "panel"], dtype=str)
        panel = sheet.loc[sheet["sample_id"] == sample_id, "panel"]
        if panel.empty:
            raise SampleSheetError(f"{sheet_path}: no sample {sample_id!r}")
        code = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise SampleSheetError(
            f"{error.filename}: missing; is {trial} a trial written by simulate_trial?"
        ) from None
    return EventTruth.unpack(str(panel.iloc[0]), code)
