"""The ``gate`` rule: gate a batch of samples and write its tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..config import population_model
from ..gating import GatedBatch, compensation_matrix, gate_samples, load_panel_gating
from ._checksums import verify_checksums
from ._tables import write_manifest, write_tsv

__all__ = ["run_gate_batch"]


def run_gate_batch(
    samples: Sequence[Mapping],
    *,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    unreadable_compensation: str = "exclude",
    populations: Mapping[str, Mapping] | None = None,
    mfi: Mapping | None = None,
    acquisition: Mapping | None = None,
    counts_out: str | Path,
    qc_out: str | Path,
    mfi_out: str | Path,
    gates_out: str | Path | None = None,
    acquisition_out: str | Path | None = None,
    manifest_out: str | Path | None = None,
    checksum_cache: str | Path | None = None,
) -> GatedBatch:
    """Gate a batch of samples and write its counts, QC and MFI tables.

    Parameters
    ----------
    samples
        Dicts with ``sample_id``, ``panel``, ``fcs`` and (optional) the ``sha256`` of the file
        when the batch was formed: a file that changed since is an error.
    strategies
        The config's ``strategies:`` entries (at least those of the panels of the batch).
    panels
        The config's marker -> channel names mapping.
    compensation
        ``"fcs"`` or the path of a spillover matrix file.
    unreadable_compensation
        The config's ``gating.unreadable_compensation``: ``"exclude"`` or ``"uncompensated"``.
    populations
        The config's top-level ``populations:`` (labels, Boolean definitions, parent overrides);
        ``None``: none.
    mfi
        The config's resolved ``mfi:`` section (``markers``, ``min_events``); ``None``: no MFIs.
    acquisition
        The config's resolved ``qc.acquisition`` (anomalous stretches of ``Time`` removed before
        gating); ``None``: every event is gated.
    counts_out, qc_out, mfi_out
        Where the batch's tables go (``batch_<id>.counts.tsv``, ``.qc.tsv``, ``.mfi.tsv``); the
        QC table gains each file's ``sha256``.
    gates_out
        Where the batch's adaptive gate positions go (``batch_<id>.gates.tsv``); ``None``: not
        written.
    acquisition_out
        Where the stretches of Time acquisition QC removed go (``batch_<id>.acquisition.tsv``,
        what the gate export needs of the events); ``None``: not written.
    manifest_out
        Where the manifest of the tables (rows, sha256) goes, written last; ``None``: none.
    checksum_cache
        The FCS checksum cache (see :func:`file_checksums`); ``None``: every file is hashed.
    """
    from concurrent.futures import ThreadPoolExecutor

    samples = list(samples)
    table = pd.DataFrame(list(samples), columns=["sample_id", "panel", "fcs"])
    model = population_model({"populations": populations or {}, "strategies": strategies})
    mfi = mfi or {"markers": {}, "min_events": 0}
    # The files are hashed by a thread running ahead of the gating, in the order the gating reads
    # them (by sample id): a file not hashed before the run is read from disk once, and the
    # gating finds it in the page cache. A file that changed since its batch was formed stops the
    # job before any table is written.
    ordered = sorted(samples, key=lambda row: str(row["sample_id"]))
    with ThreadPoolExecutor(max_workers=1) as hasher:
        hashing = hasher.submit(verify_checksums, ordered, cache=checksum_cache, jobs=1)
        gatings = {
            panel: load_panel_gating(
                panel, strategies[panel], model=model, mfi_markers=mfi["markers"], panels=panels
            )
            for panel in sorted(set(table["panel"]))
        }
        result = gate_samples(
            table,
            gatings,
            panels=panels,
            compensation=compensation_matrix(compensation),
            unreadable_compensation=unreadable_compensation,
            mfi_min_events=int(mfi["min_events"]),
            acquisition=acquisition,
        )
        sha256 = hashing.result()
    result = result._replace(qc=result.qc.assign(sha256=result.qc["sample_id"].map(sha256)))
    write_tsv(result.counts, counts_out)
    write_tsv(result.qc, qc_out)
    write_tsv(result.mfi, mfi_out)
    if gates_out is not None:
        write_tsv(result.gates, gates_out)
    if acquisition_out is not None:
        write_tsv(result.acquisition, acquisition_out)
    if manifest_out is not None:
        optional = [path for path in (gates_out, acquisition_out) if path is not None]
        write_manifest([counts_out, mfi_out, qc_out, *optional], manifest_out)
    return result
