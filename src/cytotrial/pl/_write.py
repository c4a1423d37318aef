"""The workflow's figures of patients and of sample quality: read their inputs, draw, write.

:func:`write_patient_figures` draws the absolute values per visit and arm, the spider plots and
the waterfall of the early change; :func:`write_qc_figures` the sample availability and the QC
overview. Each writes ``<name>.png`` and ``<name>.pdf`` for the names given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError
from ._availability import availability_status, plot_sample_availability
from ._figures import read_stat_tables
from ._qc import acquisition_table, drift_table, gate_chain, plot_qc_overview
from ._response import plot_spider, plot_waterfall
from ._style import save_figure
from ._values import plot_values

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure

__all__ = [
    "PATIENT_FIGURES",
    "QC_FIGURES",
    "key_features",
    "write_patient_figures",
    "write_qc_figures",
]

#: Figures of :func:`write_patient_figures`.
PATIENT_FIGURES: tuple[str, ...] = ("absolute_values", "spider", "waterfall")
#: Figures of :func:`write_qc_figures`.
QC_FIGURES: tuple[str, ...] = ("sample_availability", "qc_overview")
#: At most this many key features per figure (the spider, waterfall and drift charts).
KEY_FEATURES = 6


def key_features(plan: Mapping[str, Any], *, limit: int = KEY_FEATURES) -> list[str]:
    """The features the spider plots, waterfall and drift charts show.

    The declared primary family's (``analysis.primary.populations``), else every analysed
    feature; in the analysed order, at most ``limit``.

    Parameters
    ----------
    plan
        :func:`cytotrial.tl.analysis_plan` (``populations`` resolved, ``primary``).
    """
    analysed = list(plan["populations"])
    primary = list((plan.get("primary") or {}).get("populations") or [])
    chosen = [f for f in analysed if f in primary] or analysed
    return chosen[:limit]


def _read_tsv(path: str | Path, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """A tidy table as written (text kept, empty cells empty), checked for ``columns``."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{path}: cannot be read as the {name} table ({first})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(
            f"{path}: not a {name} table (no column {', '.join(missing)}); re-run the workflow"
        )
    return table


def _save(figures: Mapping[str, Figure], outputs: Mapping[str, str | Path]) -> dict[str, Path]:
    written: dict[str, Path] = {}
    for name, fig in figures.items():
        png, pdf = save_figure(fig, outputs[name])
        written[f"{name}.png"], written[f"{name}.pdf"] = png, pdf
    return written


def _plan(adata: AnnData, analysis, arms, frequencies_of) -> dict[str, Any]:
    from ..tl import analysis_plan

    return analysis_plan(
        adata, analysis=analysis, arms=list(arms or {}), frequencies_of=frequencies_of
    )


def write_patient_figures(
    *,
    h5ad: str | Path,
    log2fc: str | Path,
    patients: str | Path | None,
    outputs: Mapping[str, str | Path],
    analysis: Mapping[str, Any] | None = None,
    arms: Mapping[str, str] | None = None,
    frequencies_of: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Draw and write the figures of :data:`PATIENT_FIGURES` named in ``outputs``.

    Parameters
    ----------
    h5ad
        ``results/counts/populations.h5ad`` (the values, and the analysis resolved on it).
    log2fc
        ``results/stats/log2fc.tsv``.
    patients
        The patients table (best response); None: the spider and waterfall are placeholders.
    outputs
        Figure name -> path (suffix replaced by ``.png`` and ``.pdf``).
    analysis, arms, frequencies_of, labels, ratios
        The config's ``analysis:``, ``arms:`` (arm -> colour, in order), ``frequencies.of``,
        population labels and ``ratios:``.

    Returns
    -------
    dict
        ``"<name>.png"`` / ``"<name>.pdf"`` -> path written.
    """
    import anndata

    from ..tl import measure_table, read_patients

    unknown = [name for name in outputs if name not in PATIENT_FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {PATIENT_FIGURES}")
    adata = anndata.read_h5ad(h5ad)
    plan = _plan(adata, analysis, arms, frequencies_of)
    order = list(arms or {})
    text = {"labels": labels, "ratios": ratios}
    figures: dict[str, Figure] = {}
    if "absolute_values" in outputs:
        values = measure_table(adata, analysis=analysis, arms=order, frequencies_of=frequencies_of)
        figures["absolute_values"] = plot_values(
            values,
            arm_colors=arms,
            populations=plan["populations"],
            reference_arm=plan["reference_arm"],
            **text,
        )
    changes = read_stat_tables({"log2fc": log2fc}, ["log2fc"])["log2fc"]
    table = read_patients(patients) if patients else None
    features = key_features(plan)
    if "spider" in outputs:
        figures["spider"] = plot_spider(changes, table, features=features, arms=order, **text)
    if "waterfall" in outputs:
        figures["waterfall"] = plot_waterfall(
            changes,
            table,
            response_visit=plan["response_visit"],
            features=features,
            arms=order,
            **text,
        )
    return _save(figures, outputs)


def write_qc_figures(
    *,
    sheet: str | Path,
    qc: str | Path,
    missing: str | Path,
    h5ad: str | Path,
    outputs: Mapping[str, str | Path],
    analysis: Mapping[str, Any] | None = None,
    arms: Mapping[str, str] | None = None,
    frequencies_of: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Draw and write the figures of :data:`QC_FIGURES` named in ``outputs``.

    Parameters
    ----------
    sheet
        The sample sheet.
    qc
        ``results/qc/samples.tsv``.
    missing
        ``results/stats/missing_samples.tsv``.
    h5ad
        ``results/counts/populations.h5ad`` (the gates' parents and each population's fraction).
    outputs, analysis, arms, frequencies_of, labels
        As in :func:`write_patient_figures`; the drift charts show the key populations
        (:func:`key_features` that are populations, else the analysed populations) and the
        acquisition panels the gates down to the first ``frequencies_of`` reference.
    """
    import anndata

    from ..io import read_sample_sheet

    unknown = [name for name in outputs if name not in QC_FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {QC_FIGURES}")
    order = list(arms or {})
    samples = read_sample_sheet(sheet, check_files=False)
    quality = _read_tsv(qc, "sample QC", ["sample_id", "compartment", "batch", "status"])
    figures: dict[str, Figure] = {}
    if "sample_availability" in outputs:
        absent = _read_tsv(
            missing, "missing samples", ["compartment", "visit", "arm", "patient_id", "reason"]
        )
        status = availability_status(samples, quality, absent)
        figures["sample_availability"] = plot_sample_availability(
            status, samples[["compartment", "visit", "cycle", "day"]], arms=order
        )
    if "qc_overview" in outputs:
        adata = anndata.read_h5ad(h5ad)
        plan = _plan(adata, analysis, arms, frequencies_of)
        keys = [f for f in key_features(plan) if f in adata.var_names]
        keys = keys or [f for f in plan["populations"] if f in adata.var_names][:KEY_FEATURES]
        chain = gate_chain(adata, frequencies_of[0]) if frequencies_of else []
        figures["qc_overview"] = plot_qc_overview(
            acquisition_table(quality, chain, labels=labels),
            drift_table(adata, keys),
            arms=order,
            arm_colors=arms,
            labels=labels,
        )
    return _save(figures, outputs)
