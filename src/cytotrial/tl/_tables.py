"""Entry points of the statistics: every table of one ``populations.h5ad``, in memory or as TSV.

A feature is a population, a ratio or an MFI ``<population>:<marker>``; every table names it in
its ``population`` column (with its ``measure``). Tables (each one tidy TSV, rows sorted, floats
written with 6 significant digits):

``log2fc``
    One row per patient, compartment, feature and visit with a baseline: value, baseline value,
    log2 fold change, ``qc_flags`` of both samples.
``missing_baseline``
    Patients (per compartment) without a baseline sample, and samples without a value of a
    feature, and why.
``summary``
    Per arm, compartment, feature and visit: value median and IQR, mean log2 fold change with
    its t-interval.
``change_from_baseline``
    Within each arm, Wilcoxon signed-rank test of each visit against baseline, with the
    Hodges-Lehmann estimate (median of Walsh averages) and its exact distribution-free interval.
``arm_comparison``
    Between arms, Mann-Whitney test of the log2 fold change at each visit, with the Hodges-Lehmann
    shift (arm minus reference arm) and its exact distribution-free interval.
``mmrm``
    The primary longitudinal model, per feature, compartment and measure: an MMRM of the log2
    change from baseline at every post-baseline visit (unstructured covariance; fallbacks
    heterogeneous Toeplitz, heterogeneous compound symmetry, compound symmetry; REML,
    Satterthwaite degrees of freedom), with the arm difference and each arm's adjusted mean
    change at each visit (:func:`mmrm_models`).
``response``
    Objective response rate per arm (Clopper-Pearson interval) and the early change in responders
    versus non-responders (Mann-Whitney, Hodges-Lehmann shift).
``cox``, ``km``, ``survival_missing``
    PFS and OS against the early change (log2 fold change at the response visit): Cox models with
    arm and the early change, Kaplan-Meier medians by the median split within each arm, and every
    patient left out with the reason (:func:`survival_tables`).
``responders``
    The early change in responders versus non-responders within each arm and stratified by arm
    (:func:`responder_analysis`); no pooled rows.
``availability``, ``missing_samples``
    Per compartment, visit and arm the patients expected, sampled, excluded and missing (dropout
    at progression or missed sample), and the samples behind the missing counts
    (:func:`sample_availability`, :func:`missing_samples`).

The tables from ``response`` on need the patients table (without it: a header only).

Declared multiplicity (:mod:`._families`): every table with p-values has a ``family`` column
naming the family its ``q_value`` belongs to, and q is computed within that family only. The
primary family ``primary:<compartment>`` is the MMRM arm difference at each on-treatment visit
of the ``analysis.primary`` features, corrected by ``analysis.primary.correction`` (Holm by
default); other tests are in secondary families (``secondary:<table>[:<compartment>]``,
Benjamini-Hochberg); within-arm changes, adjusted means, model covariates and Kaplan-Meier
splits are estimates with intervals (``estimate``, no q-value).
A row with a p-value but no interval says why in ``note``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError
from ._analysis import _validated, visit_order
from ._availability import (
    _AVAILABILITY_COLUMNS,
    _LISTING_COLUMNS,
    missing_samples,
    sample_availability,
)
from ._compare import arm_comparison, summary_table, within_arm_changes
from ._families import mmrm_families, secondary_families, with_family_columns
from ._measures import _measure_table, log2_fold_changes, missing_baselines
from ._mmrm import mmrm_models
from ._responders import _RESPONDER_COLUMNS, responder_analysis
from ._response import _RESPONSE_COLUMNS, read_patients, response_table
from ._survival import (
    _COX_COLUMNS,
    _KM_COLUMNS,
    _MISSING_COLUMNS,
    SURVIVAL_TABLES,
    survival_tables,
)

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["STAT_TABLES", "compute_tables", "write_stats", "write_tsv"]

#: Names of the tables :func:`write_stats` can write (file name = name + ``.tsv``).
STAT_TABLES: tuple[str, ...] = (
    "log2fc",
    "missing_baseline",
    "summary",
    "change_from_baseline",
    "arm_comparison",
    "mmrm",
    "response",
    "cox",
    "km",
    "survival_missing",
    "responders",
    "availability",
    "missing_samples",
)

# The tables that need the patients table: their columns, for the header-only table without it.
_OUTCOME_COLUMNS: dict[str, list[str]] = {
    "response": _RESPONSE_COLUMNS,
    "cox": with_family_columns(_COX_COLUMNS),
    "km": with_family_columns(_KM_COLUMNS, p_column="logrank_p"),
    "survival_missing": _MISSING_COLUMNS,
    "responders": with_family_columns(_RESPONDER_COLUMNS),
    "availability": _AVAILABILITY_COLUMNS,
    "missing_samples": _LISTING_COLUMNS,
}

_FLOAT_FORMAT = "%.6g"


def compute_tables(
    adata: AnnData,
    *,
    analysis: Mapping[str, Any] | None = None,
    patients: pd.DataFrame | None = None,
    tables: Sequence[str] | None = None,
    arms: Sequence[str] | None = None,
    frequencies_of: Sequence[str] | None = None,
    samples: pd.DataFrame | None = None,
    qc: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """All statistics tables of one ``populations.h5ad``, in memory.

    Parameters
    ----------
    adata
        ``populations.h5ad`` as an :class:`anndata.AnnData`.
    analysis
        The ``analysis:`` config section (see :func:`resolve_analysis`).
    patients
        Output of :func:`read_patients`, or None (then ``response`` and the tables after it in
        :data:`STAT_TABLES` have a header only).
    tables
        Names from :data:`STAT_TABLES` to compute (default all); the MMRM and the exact rank
        tests are the slow part, so leave ``mmrm`` and ``change_from_baseline`` out when they
        are not needed.
    arms
        The config's arms in order: the default reference arm is the last; response rates, the
        ``responders``, ``km`` and ``availability`` rows follow this order (other arms after it,
        sorted).
    frequencies_of
        The config's ``frequencies.of`` (the default features, see :func:`analysis_plan`).
    samples
        The sample sheet (:func:`cytotrial.io.read_sample_sheet`: every sample, also those not
        gated) for ``availability`` and ``missing_samples``; None: the samples of ``adata``.
    qc
        The QC table (``results/qc/samples.tsv``: ``sample_id``, ``status``, ``message``) telling
        the samples excluded at gating; None: every sample of ``samples`` counts as sampled.

    Returns
    -------
    dict
        Table name -> DataFrame.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad ``analysis`` values, sample metadata or patients table (one-line message).
    """
    wanted = list(STAT_TABLES if tables is None else tables)
    unknown = [t for t in wanted if t not in STAT_TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {STAT_TABLES}")
    cfg, obs = _validated(adata, analysis, arms=arms, frequencies_of=frequencies_of)
    visits = visit_order(obs)
    values = _measure_table(adata, obs, cfg)
    fc = log2_fold_changes(values, baseline_visit=cfg["baseline_visit"])
    context = dict(values=values, fc=fc, visits=visits, patients=patients, arms=arms)
    survival = [name for name in wanted if name in SURVIVAL_TABLES]
    out = _survival(cfg, survival, **context) if survival and patients is not None else {}
    out = {name: _families(name, table, cfg) for name, table in out.items()}
    sheet = dict(samples=obs if samples is None else samples, qc=qc)
    for name in wanted:
        if name not in out:
            out[name] = _one_table(name, cfg, **context, **sheet)
    return {name: out[name] for name in wanted}


def _arm_order(arms: Sequence[str] | None, *tables: pd.DataFrame) -> list[str] | None:
    """The config's arms in order, then any other arm of ``tables`` sorted (None: all sorted)."""
    if arms is None:
        return None
    present = set().union(*(set(t["arm"]) for t in tables))
    return list(arms) + sorted(present - set(arms))


def _one_table(
    name: str,
    cfg: Mapping[str, Any],
    *,
    values: pd.DataFrame,
    fc: pd.DataFrame,
    visits: Sequence[str],
    patients: pd.DataFrame | None,
    arms: Sequence[str] | None,
    samples: pd.DataFrame,
    qc: pd.DataFrame | None,
) -> pd.DataFrame:
    """Table ``name`` of :data:`STAT_TABLES` from the long tables and the resolved plan."""
    baseline, alpha = cfg["baseline_visit"], cfg["alpha"]
    if name == "log2fc":
        return fc
    if name == "missing_baseline":
        return missing_baselines(values, baseline_visit=baseline)
    if name == "summary":
        return summary_table(values, fc, alpha=alpha)
    if name == "change_from_baseline":
        return within_arm_changes(fc, baseline_visit=baseline, alpha=alpha)
    if name == "arm_comparison":
        return arm_comparison(
            fc, reference_arm=cfg["reference_arm"], baseline_visit=baseline, alpha=alpha
        )
    if name == "mmrm":
        table = mmrm_models(
            fc,
            reference_arm=cfg["reference_arm"],
            baseline_visit=baseline,
            visits=visits,
            alpha=alpha,
        )
        return _families(name, table, cfg)
    if patients is None:  # the outcome tables
        return pd.DataFrame(columns=_OUTCOME_COLUMNS[name])
    if name in ("availability", "missing_samples"):
        tabulate = sample_availability if name == "availability" else missing_samples
        return tabulate(samples, patients, qc=qc, cycle_days=cfg["cycle_days"], arms=arms)
    response_visit = _checked_response_visit(cfg, visits)
    if name == "responders":
        table = responder_analysis(
            fc, patients, response_visit=response_visit, alpha=alpha, arms=arms
        )
        return _families(name, table, cfg)
    return response_table(  # name == "response"
        fc,
        patients,
        response_visit=response_visit,
        alpha=alpha,
        arms=_arm_order(arms, fc, patients),
    )


def _primary_populations(cfg: Mapping[str, Any]) -> list[str]:
    """``analysis.primary.populations`` (empty: every analysed feature); each must be analysed."""
    chosen = list(cfg["primary"]["populations"]) or list(cfg["populations"])
    unknown = [p for p in chosen if p not in cfg["populations"]]
    if unknown:
        raise ConfigError(
            f"analysis.primary.populations: {', '.join(unknown)} not analysed "
            f"(analysis.populations: {', '.join(cfg['populations'])}); list analysed features"
        )
    return chosen


def _families(name: str, table: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Table ``name`` with its ``family`` and within-family ``q_value`` (see :mod:`._families`)."""
    if name == "mmrm":
        return mmrm_families(
            table,
            reference_arm=cfg["reference_arm"],
            primary_populations=_primary_populations(cfg),
            correction=cfg["primary"]["correction"],
        )
    if name == "responders":
        return secondary_families(name, table)
    if name == "cox":  # the early change is the question; the arm term is a covariate
        return secondary_families(name, table, estimate=table["term"] != "log2fc")
    if name == "km":  # a descriptive split; the Cox model's early-change term is the test
        estimate = pd.Series(True, index=table.index)
        return secondary_families(name, table, estimate=estimate, p_column="logrank_p")
    return table


def _checked_response_visit(cfg: Mapping[str, Any], visits: Sequence[str]) -> str:
    """The resolved ``analysis.response_visit``; a ConfigError when there is none or no sample."""
    if not cfg["response_visit"]:
        raise ConfigError(
            "analysis.response_visit: no visit follows the baseline visits "
            f"({', '.join(sorted(set(cfg['baseline_visit'].values())))}); set it to an "
            "on-treatment visit"
        )
    if cfg["response_visit"] not in visits:
        raise ConfigError(
            f"analysis.response_visit {cfg['response_visit']!r} is no sample's visit "
            f"(visits: {', '.join(visits)}); set it to an on-treatment visit"
        )
    return cfg["response_visit"]


def _survival(
    cfg: Mapping[str, Any],
    names: Sequence[str],
    *,
    values: pd.DataFrame,
    fc: pd.DataFrame,
    visits: Sequence[str],
    patients: pd.DataFrame,
    arms: Sequence[str] | None,
) -> dict[str, pd.DataFrame]:
    """The tables ``names`` of :data:`SURVIVAL_TABLES`, computed together."""
    return survival_tables(
        fc,
        patients,
        response_visit=_checked_response_visit(cfg, visits),
        reference_arm=cfg["reference_arm"],
        alpha=cfg["alpha"],
        arms=arms,
        values=values,
        tables=names,
    )


def write_tsv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy table: tab-separated, header, ``NA`` for missing, 6 significant digits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(
        path, sep="\t", index=False, na_rep="NA", float_format=_FLOAT_FORMAT, lineterminator="\n"
    )
    return path


def write_stats(
    adata_path: str | Path,
    *,
    outdir: str | Path | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    analysis: Mapping[str, Any] | None = None,
    patients_path: str | Path | None = None,
    arms: Sequence[str] | None = None,
    frequencies_of: Sequence[str] | None = None,
    samples_path: str | Path | None = None,
    qc_path: str | Path | None = None,
) -> dict[str, Path]:
    """Read ``populations.h5ad`` and write the statistics tables as TSV.

    Parameters
    ----------
    adata_path
        ``results/counts/populations.h5ad``.
    outdir
        Write every table of :data:`STAT_TABLES` as ``<outdir>/<name>.tsv``.
    outputs
        Instead of ``outdir``: table name -> file path, writing only those tables (e.g. the
        named outputs of a Snakemake rule).
    analysis
        The ``analysis:`` config section.
    patients_path
        ``patients.tsv`` (clinical outcome) or None; without it ``response.tsv`` has a header
        only.
    arms, frequencies_of
        The config's ``arms`` (in order) and ``frequencies.of`` (see :func:`compute_tables`).
    samples_path
        The sample sheet (``samples.tsv``), for ``availability`` and ``missing_samples``; None:
        the samples of ``populations.h5ad``.
    qc_path
        The QC table ``results/qc/samples.tsv`` (samples excluded at gating), or None.

    Returns
    -------
    dict
        Table name -> path written.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad config, sample metadata or patients table (one-line message).
    """
    if (outdir is None) == (outputs is None):
        raise ValueError("give exactly one of outdir or outputs")
    targets = (
        {name: Path(outdir) / f"{name}.tsv" for name in STAT_TABLES}
        if outputs is None
        else {name: Path(path) for name, path in outputs.items()}
    )
    adata = _read_adata(adata_path)
    patients = read_patients(patients_path) if patients_path else None
    tables = compute_tables(
        adata,
        analysis=analysis,
        patients=patients,
        tables=list(targets),
        arms=arms,
        frequencies_of=frequencies_of,
        samples=_read_sheet(samples_path, arms) if samples_path else None,
        qc=_read_qc(qc_path) if qc_path else None,
    )
    return {name: write_tsv(tables[name], path) for name, path in targets.items()}


def _read_adata(path: str | Path) -> AnnData:
    """``populations.h5ad`` as an AnnData; a ConfigError if it cannot be read."""
    import anndata

    path = Path(path)
    try:
        return anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path}: cannot be read as an AnnData .h5ad file ({first}); re-run the aggregation"
        ) from None


def _read_sheet(path: str | Path, arms: Sequence[str] | None) -> pd.DataFrame:
    """The checked sample sheet; its FCS files are not needed here (nor checked)."""
    from ..io import read_sample_sheet

    return read_sample_sheet(path, arms=arms, check_files=False)


def _read_qc(path: str | Path) -> pd.DataFrame:
    """``results/qc/samples.tsv`` as text; a ConfigError if it cannot be read or lacks a column."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path}: cannot be read as the QC table ({first}); re-run the aggregation"
        ) from None
    missing = [c for c in ("sample_id", "status") if c not in table.columns]
    if missing:
        raise ConfigError(
            f"{path}: not a QC table (no column {', '.join(missing)}); re-run the aggregation"
        )
    return table
