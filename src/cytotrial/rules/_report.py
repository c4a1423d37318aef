"""The HTML report: where each result sits in `snakemake --report`, and the pages it shows inline.

Snakemake lists a report's categories alphabetically and, within one, its entries by their first
label; so categories carry their place in the reading order ("1. Overview") and entries a ``#``
label. Snakemake shows an ``.html`` result inside the report (a ``.tsv`` only as a download), so
the key tables also get a small HTML page of their own, written here from the TSVs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ._report_html import (
    figure_html,
    overview_page,
    primary_page,
    qc_samples_page,
    response_page,
    summary_page,
)
from ._tables import writing

__all__ = [
    "REPORT_CATEGORIES",
    "REPORT_OVERVIEW",
    "REPORT_TABLES",
    "figure_page",
    "report_entry",
    "run_report_figures",
    "run_report_overview",
    "run_report_tables",
]

#: The report's pages of key tables: name -> file (written by :func:`run_report_tables`).
REPORT_TABLES = {
    name: f"results/report/tables/{name}.html"
    for name in ("qc_samples", "summary", "primary", "response")
}
#: The run overview page (written by :func:`run_report_overview`).
REPORT_OVERVIEW = "results/report/overview.html"


def figure_page(name: str) -> str:
    """The report's page of the figure ``results/figures/<name>.png``.

    Snakemake shows a bare image centred in the window, which cuts off the top of a figure taller
    than the window; on a page of its own (:func:`run_report_figures`) it scrolls from its top.
    """
    return f"results/report/figures/{name}.html"


#: Categories in reading order (shown numbered: Snakemake sorts them by name).
REPORT_CATEGORIES = [
    "Overview",
    "Quality control",
    "Counts",
    "Change from baseline",
    "Arm comparison",
    "Clinical outcome",
    "Gating cross-check",
]

# Every result of the report in reading order within its category: path -> (category, what it is).
_ENTRIES: dict[str, tuple[str, str]] = {
    REPORT_OVERVIEW: ("Overview", "Run overview: samples, patients, configuration, versions"),
    REPORT_TABLES["qc_samples"]: ("Quality control", "Samples ok, flagged and excluded"),
    figure_page("qc_overview"): ("Quality control", "Acquisition and drift across batches"),
    figure_page("sample_availability"): ("Quality control", "Visits of each patient"),
    figure_page("gating_review"): ("Quality control", "Gating review: flagged samples' pages"),
    "results/review/{panel}.pdf": ("Quality control", "Gating review of panel {panel}, by sample"),
    figure_page("gate_positions"): ("Quality control", "Adaptive gate positions by batch"),
    "results/stats/availability.tsv": ("Quality control", "Patients sampled and missing per visit"),
    "results/stats/missing_samples.tsv": ("Quality control", "Samples missing, and why"),
    "results/qc/samples.tsv": ("Quality control", "Sample QC, every column"),
    "results/gating/gate_positions.tsv": ("Quality control", "Adaptive gate positions per sample"),
    "results/counts/populations.tsv": ("Counts", "Events and frequencies per sample"),
    "results/counts/ratios.tsv": ("Counts", "Ratios of populations per sample"),
    "results/counts/mfi.tsv": ("Counts", "Median intensities per sample"),
    REPORT_TABLES["summary"]: ("Change from baseline", "Summary by arm and visit"),
    figure_page("absolute_values"): ("Change from baseline", "Values per visit by arm"),
    figure_page("trajectories"): ("Change from baseline", "Mean change by arm"),
    figure_page("patient_lines"): ("Change from baseline", "Each patient's change"),
    "results/stats/summary.tsv": ("Change from baseline", "Summary, every column"),
    "results/stats/change_from_baseline.tsv": ("Change from baseline", "Within-arm change"),
    "results/stats/log2fc.tsv": ("Change from baseline", "Change of every patient and visit"),
    "results/stats/missing_baseline.tsv": ("Change from baseline", "Values without a baseline"),
    REPORT_TABLES["primary"]: ("Arm comparison", "Primary statistics: MMRM arm difference"),
    figure_page("effect_heatmap"): ("Arm comparison", "Arm effects at a glance"),
    "results/stats/mmrm.tsv": ("Arm comparison", "MMRM, every contrast"),
    "results/stats/arm_comparison.tsv": ("Arm comparison", "Rank test of arms per visit"),
    REPORT_TABLES["response"]: ("Clinical outcome", "Response rate and early change"),
    figure_page("waterfall"): ("Clinical outcome", "Early change by patient (waterfall)"),
    figure_page("spider"): ("Clinical outcome", "Change by best response (spider)"),
    figure_page("km_pfs"): ("Clinical outcome", "Progression-free survival by change"),
    figure_page("km_os"): ("Clinical outcome", "Overall survival by change"),
    "results/stats/response.tsv": ("Clinical outcome", "Response, every column"),
    "results/stats/responders.tsv": ("Clinical outcome", "Responders against non-responders"),
    "results/stats/cox.tsv": ("Clinical outcome", "Cox models of survival"),
    "results/stats/km.tsv": ("Clinical outcome", "Kaplan-Meier summaries"),
    "results/stats/survival_missing.tsv": ("Clinical outcome", "Patients left out of survival"),
    figure_page("umap_population"): ("Gating cross-check", "UMAP by gate and cluster"),
    figure_page("umap_density_difference"): ("Gating cross-check", "Arms' difference by visit"),
    figure_page("cluster_markers"): ("Gating cross-check", "Markers of each cluster"),
    "results/qc/cluster_vs_gate.tsv": ("Gating cross-check", "Clusters against gates"),
}


def _pattern_of(path: str) -> tuple[str | None, dict[str, str]]:
    """The entry pattern (``results/review/{panel}.pdf``) a concrete path fills, and its fields."""
    import re

    for pattern in _ENTRIES:
        if "{" not in pattern:
            continue
        parts = re.split(r"\{(\w+)\}", pattern)
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        match = re.fullmatch(regex, path)
        if match:
            return pattern, match.groupdict()
    return None, {}


def report_entry(path: str) -> dict:
    """Where ``path`` sits in the report: keyword arguments of Snakemake's ``report()`` flag.

    Parameters
    ----------
    path
        The result's path as the rule writes it (e.g. ``results/stats/summary.tsv``).

    Returns
    -------
    dict
        ``category`` (numbered in reading order) and ``labels``: ``#`` (its place in the
        category), ``result`` (what it is) and ``file`` (its name). Every label but the first
        differs between the entries of a category, so Snakemake never turns one into a toggle.

    Raises
    ------
    KeyError
        ``path`` has no place in the report yet (add it to the entries of this module).
    """
    if path not in _ENTRIES:
        pattern, fields = _pattern_of(path)
        if pattern is None:
            raise KeyError(f"{path} has no place in the report: add it to cytotrial.rules._report")
        entry = report_entry(pattern)  # a panel's result: its pattern's place, named by the panel
        labels = {k: str(v).format(**fields) for k, v in entry["labels"].items()}
        return {**entry, "labels": labels}
    category, what = _ENTRIES[path]
    place = [p for p, (c, _) in _ENTRIES.items() if c == category].index(path) + 1
    number = REPORT_CATEGORIES.index(category) + 1
    return {
        "category": f"{number}. {category}",
        "labels": {"#": f"{place:02d}", "result": what, "file": Path(path).name},
    }


def run_report_tables(
    *,
    qc: str | Path,
    summary: str | Path,
    mmrm: str | Path,
    response: str | Path,
    outputs: Mapping[str, str | Path],
    arms: Sequence[str],
    labels: Mapping[str, str],
    ratios: Mapping[str, Sequence[str]],
    alpha: float,
    correction: str,
) -> list[Path]:
    """Write the report's HTML pages of the key tables.

    Parameters
    ----------
    qc, summary, mmrm, response
        ``results/qc/samples.tsv`` and the statistics tables of those names.
    outputs
        Page name (``qc_samples``, ``summary``, ``primary``, ``response``) -> where it goes.
    arms
        The config's arms, in order.
    labels
        Population -> label (the config's ``populations:``).
    ratios
        The config's ``ratios:``.
    alpha, correction
        ``analysis.alpha`` and ``analysis.primary.correction``.

    Returns
    -------
    list of Path
        The pages written.
    """
    names = {"labels": labels, "ratios": ratios}
    pages = {
        "qc_samples": qc_samples_page(_read(qc)),
        "summary": summary_page(_read(summary), arms=arms, **names),
        "primary": primary_page(_read(mmrm), alpha=alpha, correction=correction, **names),
        "response": response_page(_read(response), **names),
    }
    for name, text in pages.items():
        _write(text, outputs[name])
    return [Path(outputs[name]) for name in pages]


def run_report_overview(
    *,
    qc: str | Path,
    sheet: str | Path,
    h5ad: str | Path,
    out: str | Path,
    arms: Sequence[str],
) -> Path:
    """Write the report's run overview page.

    Parameters
    ----------
    qc
        ``results/qc/samples.tsv``.
    sheet
        The sample sheet (the visits' cycle and day give their clinical order).
    h5ad
        ``populations.h5ad``: its ``uns['provenance']`` gives digests, versions and the config.
    out
        Where the page goes.
    arms
        The config's arms, in order.
    """
    import anndata

    provenance = anndata.read_h5ad(h5ad).uns.get("provenance", {})
    page = overview_page(_read(qc), _read(sheet), provenance, arms=arms)
    _write(page, out)
    return Path(out)


def run_report_figures(
    *, figures: Mapping[str, str | Path], outputs: Mapping[str, str | Path]
) -> list[Path]:
    """Write the report's page of each figure (:func:`figure_page`), titled as the report lists it.

    Parameters
    ----------
    figures
        Figure name -> its PNG file.
    outputs
        Figure name -> where its page goes.

    Returns
    -------
    list of Path
        The pages written.
    """
    written = []
    for name, png in figures.items():
        title = _ENTRIES.get(figure_page(name), ("", name))[1]
        _write(figure_html(Path(png).read_bytes(), title=title, source=str(png)), outputs[name])
        written.append(Path(outputs[name]))
    return written


def _read(path: str | Path) -> pd.DataFrame:
    """A tidy table as written (empty cells and ``NA`` missing, every other text kept)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["", "NA", "NaN", "nan"])


def _write(text: str, path: str | Path) -> None:
    with writing(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
