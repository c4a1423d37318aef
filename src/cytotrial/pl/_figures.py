"""Figures of what treatment did: trajectories, per-patient lines and the arm-effect heatmap.

Every figure is a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no
display needed) and written as PNG and PDF by :func:`save_figure`. Visits are in clinical order
(cycle, then day); arms have fixed colours (``arm_colors`` in the config, a colour-blind palette
for the others).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..tl._stats import MEASURE_UNITS, compute_tables, resolve_analysis, visit_order

__all__ = [
    "DEFAULT_ARM_COLORS",
    "FIGURES",
    "POPULATION_LABELS",
    "arm_palette",
    "fold_change_label",
    "plot_effect_heatmap",
    "plot_patient_lines",
    "plot_trajectories",
    "population_label",
    "save_figure",
    "write_figures",
]

#: Fixed arm colours of the model trial (config ``arm_colors`` overrides or extends).
DEFAULT_ARM_COLORS: dict[str, str] = {"BEMPEG+NIVO": "#C8102E", "NIVO": "#1F77B4"}

#: Names of the figures :func:`write_figures` can write (files ``<name>.png`` and ``<name>.pdf``).
FIGURES: tuple[str, ...] = ("trajectories", "patient_lines", "effect_heatmap")

#: Readable names of the canonical populations.
POPULATION_LABELS: dict[str, str] = {
    "lymphocytes": "Lymphocytes",
    "singlets": "Single cells",
    "live": "Live cells",
    "leukocytes": "CD45+ leukocytes",
    "cd3": "CD3+ T cells",
    "cd4": "CD4+ T cells",
    "cd8": "CD8+ T cells",
    "treg": "Treg (CD4+CD25+CD127low)",
    "nk": "NK cells (CD3−CD56+)",
    "cd8_ki67": "Ki67+ of CD8+ T cells",
}

# Okabe-Ito colour-blind palette, for arms without a fixed colour
_PALETTE = ["#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#0072B2", "#F0E442", "#000000"]
_PANEL_W, _PANEL_H = 3.6, 2.4
_PDF_METADATA = {"CreationDate": None, "ModDate": None}


def arm_palette(arms: Sequence[str], arm_colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """Colour per arm: fixed colours first, then a colour-blind palette in sorted arm order.

    Parameters
    ----------
    arms
        Arm names to colour.
    arm_colors
        Fixed colours (config ``arm_colors``); default :data:`DEFAULT_ARM_COLORS`.
    """
    fixed = dict(DEFAULT_ARM_COLORS if arm_colors is None else arm_colors)
    used = {to_hex(c).lower() for c in fixed.values()}
    spare = iter([c for c in _PALETTE if c.lower() not in used] + _PALETTE)
    colours = {}
    for arm in sorted(set(arms)):
        colours[arm] = to_hex(fixed[arm]) if arm in fixed else next(spare)
    return colours


def population_label(population: str) -> str:
    """Readable name of a population (the name itself when not canonical)."""
    return POPULATION_LABELS.get(population, population)


def fold_change_label(measure: str, *, wrap: bool = False) -> str:
    """Axis label of a log2 fold change from baseline of ``measure``, with its unit."""
    unit = MEASURE_UNITS.get(measure, measure)
    sep = "\n" if wrap else " "
    return f"log2 fold change{sep}from baseline ({unit})"


def _order(values: pd.Series, preferred: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(values))
    if preferred is None:
        return present
    return [p for p in preferred if p in present] + [p for p in present if p not in preferred]


def _visit_order(table: pd.DataFrame) -> list[str]:
    pairs = table[["visit", "cycle", "day"]].drop_duplicates()
    return pairs.sort_values(["cycle", "day", "visit"])["visit"].tolist()


def _arms_order(arms: Sequence[str], reference_arm: str | None) -> list[str]:
    """Treatment arms first, the reference arm (comparator) last."""
    ordered = sorted(set(arms))
    if reference_arm in ordered:
        ordered.remove(reference_arm)
        ordered.append(reference_arm)
    return ordered


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(_PANEL_W * n_cols + 0.6, _PANEL_H * n_rows + 0.9), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.axhline(0.0, color="0.6", lw=0.8, ls="--", zorder=0)
    ax.tick_params(labelsize=8)


def _no_data(ax: Any) -> None:
    """Mark a panel that has nothing to draw."""
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    ax.set_xticks([])


def _legend(
    fig: Figure, colours: Mapping[str, str], arms: Sequence[str], *, extra: Sequence[Any] = ()
) -> None:
    handles = [Line2D([], [], color=colours[a], marker="o", lw=2, label=a) for a in arms]
    fig.legend(
        handles=handles + list(extra),
        loc="outside lower center",
        ncol=len(handles) + len(extra),
        frameon=False,
        fontsize=9,
    )


def _panel_layout(
    table: pd.DataFrame, populations: Sequence[str] | None, compartments: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    pops = _order(table["population"], populations)
    comps = _order(
        table["compartment"],
        compartments if compartments is not None else sorted(set(table["compartment"])),
    )
    return pops, comps


def plot_trajectories(
    summary: pd.DataFrame,
    *,
    arm_colors: Mapping[str, str] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    reference_arm: str | None = None,
    alpha: float = 0.05,
) -> Figure:
    """Mean log2 fold change from baseline with its interval by visit, one line per arm.

    One panel per population (rows) and compartment (columns, e.g. blood beside tumor).

    Parameters
    ----------
    summary
        The ``summary`` table (:func:`cytotrial.stats.summary_table`).
    arm_colors
        Fixed arm colours (see :func:`arm_palette`).
    populations, compartments
        Panel order (default: as in the table; compartments sorted).
    reference_arm
        Drawn last in the legend.
    alpha
        Only for the legend text: the intervals are the table's ``1 - alpha`` t-intervals.
    """
    pops, comps = _panel_layout(summary, populations, compartments)
    arms = _arms_order(summary["arm"], reference_arm)
    colours = arm_palette(arms, arm_colors)
    fig, axes = _grid(len(pops), len(comps))
    offsets = {a: (i - (len(arms) - 1) / 2) * 0.08 for i, a in enumerate(arms)}
    for r, population in enumerate(pops):
        for c, compartment in enumerate(comps):
            ax = axes[r, c]
            cell = summary[
                (summary["population"] == population) & (summary["compartment"] == compartment)
            ]
            cell = cell[cell["n_log2fc"] > 0]
            _style(ax)
            ax.set_title(f"{population_label(population)} · {compartment}", fontsize=9)
            if cell.empty:
                _no_data(ax)
                continue
            visits = _visit_order(cell)
            pos = {v: i for i, v in enumerate(visits)}
            for arm in arms:
                sub = cell[cell["arm"] == arm]
                if sub.empty:
                    continue
                sub = sub.assign(_x=sub["visit"].map(pos)).sort_values("_x")
                x = sub["_x"].to_numpy(dtype=float) + offsets[arm]
                y = sub["mean_log2fc"].to_numpy(dtype=float)
                low = sub["ci_low"].to_numpy(dtype=float)
                high = sub["ci_high"].to_numpy(dtype=float)
                err = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
                bars = ax.errorbar(
                    x,
                    y,
                    yerr=err,
                    color=colours[arm],
                    marker="o",
                    ms=4,
                    lw=1.6,
                    capsize=2.5,
                    label=arm,
                )
                bars.lines[0].set_gid(f"mean:{arm}")
            ax.set_xticks(range(len(visits)), visits)
            ax.set_xlim(-0.4, len(visits) - 0.6)
            ax.set_xlabel("visit", fontsize=8)
            ax.set_ylabel(fold_change_label(cell["measure"].iloc[0], wrap=True), fontsize=8)
    _legend(fig, colours, arms)
    level = round(100 * (1 - alpha))
    fig.suptitle(
        f"Change from baseline: mean log2 fold change with {level}% t-interval", fontsize=10
    )
    return fig


def plot_patient_lines(
    log2fc: pd.DataFrame,
    *,
    arm_colors: Mapping[str, str] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    reference_arm: str | None = None,
) -> Figure:
    """Each patient's log2 fold change from baseline (faint lines) with the arm median on top.

    Parameters
    ----------
    log2fc
        The ``log2fc`` table (:func:`cytotrial.stats.log2_fold_changes`).
    arm_colors, populations, compartments, reference_arm
        As in :func:`plot_trajectories`.
    """
    pops, comps = _panel_layout(log2fc, populations, compartments)
    arms = _arms_order(log2fc["arm"], reference_arm)
    colours = arm_palette(arms, arm_colors)
    fig, axes = _grid(len(pops), len(comps))
    for r, population in enumerate(pops):
        for c, compartment in enumerate(comps):
            ax = axes[r, c]
            cell = log2fc[
                (log2fc["population"] == population) & (log2fc["compartment"] == compartment)
            ]
            _style(ax)
            ax.set_title(f"{population_label(population)} · {compartment}", fontsize=9)
            if cell.empty:
                _no_data(ax)
                continue
            visits = _visit_order(cell)
            pos = {v: i for i, v in enumerate(visits)}
            for arm in arms:
                sub = cell[cell["arm"] == arm]
                for patient, lines in sub.groupby("patient_id", sort=True):
                    lines = lines.assign(_x=lines["visit"].map(pos)).sort_values("_x")
                    ax.plot(
                        lines["_x"],
                        lines["log2fc"],
                        color=colours[arm],
                        alpha=0.25,
                        lw=0.8,
                        gid=f"patient:{arm}:{patient}",
                    )
                if sub.empty:
                    continue
                med = sub.groupby("visit")["log2fc"].median()
                xs = [v for v in visits if v in med.index]
                ax.plot(
                    [pos[v] for v in xs],
                    [med[v] for v in xs],
                    color=colours[arm],
                    lw=2.4,
                    marker="o",
                    ms=4.5,
                    gid=f"median:{arm}",
                )
            ax.set_xticks(range(len(visits)), visits)
            ax.set_xlim(-0.3, len(visits) - 0.7)
            ax.set_xlabel("visit", fontsize=8)
            ax.set_ylabel(fold_change_label(cell["measure"].iloc[0], wrap=True), fontsize=8)
    faint = Line2D([], [], color="0.4", alpha=0.35, lw=0.8, label="one patient")
    _legend(fig, colours, arms, extra=[faint])
    fig.suptitle("Change from baseline per patient (faint) and arm median (bold)", fontsize=10)
    return fig


def plot_effect_heatmap(
    arm_comparison: pd.DataFrame,
    *,
    alpha: float = 0.05,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    visits: Sequence[str] | None = None,
) -> Figure:
    """Arm effect (difference in log2 fold change, arm minus reference) by population and visit.

    One panel per compartment (columns) and treatment arm (rows); cells show the Hodges-Lehmann
    shift, ``*`` marks q < ``alpha``; a shared colour scale centred on 0.

    Parameters
    ----------
    arm_comparison
        The ``arm_comparison`` table (:func:`cytotrial.stats.arm_comparison`).
    alpha
        q-value threshold of the ``*``.
    populations, compartments
        Row and panel order.
    visits
        Visit labels in clinical order (default: order of appearance, which the table keeps).
    """
    if arm_comparison.empty:
        fig = Figure(figsize=(5, 2.5), layout="constrained")
        ax = fig.subplots()
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "no arm comparison (one arm, or no on-treatment visit)",
            ha="center",
            va="center",
        )
        return fig
    pops, comps = _panel_layout(arm_comparison, populations, compartments)
    arms = sorted(set(arm_comparison["arm"]))
    finite = arm_comparison["estimate"].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    limit = float(np.max(np.abs(finite))) if len(finite) else 1.0
    limit = limit if limit > 0 else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    per_compartment = arm_comparison.groupby("compartment")["visit"].nunique()
    widths = [max(1.5, float(per_compartment.get(c, 1))) for c in comps]
    fig = Figure(
        figsize=(0.95 * sum(widths) + 2.4 + 1.2, 0.42 * len(pops) * len(arms) + 1.8),
        layout="constrained",
    )
    # panel widths follow the number of visits, so cells have the same size in every panel
    axes = np.asarray(
        fig.subplots(len(arms), len(comps), squeeze=False, width_ratios=widths, sharey=True)
    )
    image = None
    for r, arm in enumerate(arms):
        for c, compartment in enumerate(comps):
            ax = axes[r, c]
            cell = arm_comparison[
                (arm_comparison["arm"] == arm) & (arm_comparison["compartment"] == compartment)
            ]
            order = (
                list(dict.fromkeys(cell["visit"]))
                if visits is None
                else [v for v in visits if v in set(cell["visit"])]
            )
            est = np.full((len(pops), len(order)), np.nan)
            q = np.full_like(est, np.nan)
            for _, row in cell.iterrows():
                if row["population"] in pops:
                    i, j = pops.index(row["population"]), order.index(row["visit"])
                    est[i, j], q[i, j] = row["estimate"], row["q_value"]
            image = ax.imshow(np.ma.masked_invalid(est), cmap="RdBu_r", norm=norm, aspect="auto")
            ax.set_facecolor("0.88")
            for i in range(len(pops)):
                for j in range(len(order)):
                    if not np.isfinite(est[i, j]):
                        ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="0.4")
                        continue
                    star = "*" if np.isfinite(q[i, j]) and q[i, j] < alpha else ""
                    dark = abs(est[i, j]) > 0.6 * limit
                    ax.text(
                        j,
                        i,
                        f"{est[i, j]:+.2f}".replace("-", "−") + star,
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if dark else "black",
                    )
            ax.set_xticks(range(len(order)), order, fontsize=8)
            ax.set_yticks(range(len(pops)), [population_label(p) for p in pops], fontsize=8)
            ax.set_xlabel("visit", fontsize=8)
            reference = cell["reference_arm"].iloc[0] if not cell.empty else ""
            measure = cell["measure"].iloc[0] if not cell.empty else ""
            unit = MEASURE_UNITS.get(measure, measure)
            ax.set_title(f"{compartment} ({unit})\n{arm} − {reference}", fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9)
        bar.set_label(
            "difference in log2 fold change from baseline\n(arm − reference, Hodges-Lehmann)",
            fontsize=8,
        )
        bar.ax.tick_params(labelsize=8)
    fig.suptitle(f"Arm effect by visit  (* q < {alpha:g}, Benjamini-Hochberg)", fontsize=10)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``fig`` as PNG and PDF: ``path`` with its suffix replaced by ``.png`` and ``.pdf``.

    The PDF carries no creation date, so the same figure gives the same bytes.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    fig.savefig(pdf, metadata=_PDF_METADATA)
    return png, pdf


def write_figures(
    adata_path: str | Path,
    *,
    outdir: str | Path | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    analysis: Mapping[str, Any] | None = None,
    arm_colors: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Read ``populations.h5ad`` and write the figures as PNG and PDF.

    Parameters
    ----------
    adata_path
        ``results/counts/populations.h5ad``.
    outdir
        Write every figure of :data:`FIGURES` as ``<outdir>/<name>.png`` and ``.pdf``.
    outputs
        Instead of ``outdir``: figure name -> path (its ``.png``/``.pdf`` suffix is replaced),
        writing only those figures.
    analysis
        The ``analysis:`` config section.
    arm_colors
        The config ``arm_colors``.

    Returns
    -------
    dict
        ``"<name>.png"`` and ``"<name>.pdf"`` -> path written.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad config or sample metadata (one-line message).
    """
    import anndata

    from ..tl._stats import _read_adata

    if (outdir is None) == (outputs is None):
        raise ValueError("give exactly one of outdir or outputs")
    targets = (
        {name: Path(outdir) / name for name in FIGURES}
        if outputs is None
        else {name: Path(path) for name, path in outputs.items()}
    )
    unknown = [name for name in targets if name not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {FIGURES}")
    cfg = resolve_analysis(analysis)
    adata = _read_adata(adata_path, anndata)
    tables = compute_tables(adata, analysis=cfg, tables=["log2fc", "summary", "arm_comparison"])
    options = dict(populations=cfg["populations"])
    written: dict[str, Path] = {}
    for name, target in targets.items():
        if name == "trajectories":
            fig = plot_trajectories(
                tables["summary"],
                arm_colors=arm_colors,
                reference_arm=cfg["reference_arm"],
                alpha=cfg["alpha"],
                **options,
            )
        elif name == "patient_lines":
            fig = plot_patient_lines(
                tables["log2fc"],
                arm_colors=arm_colors,
                reference_arm=cfg["reference_arm"],
                **options,
            )
        else:
            fig = plot_effect_heatmap(
                tables["arm_comparison"],
                alpha=cfg["alpha"],
                visits=visit_order(adata.obs),
                **options,
            )
        png, pdf = save_figure(fig, target)
        written[f"{name}.png"] = png
        written[f"{name}.pdf"] = pdf
    return written
