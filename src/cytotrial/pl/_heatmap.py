"""The arm effect heatmap: arm minus reference arm, by feature (population, ratio, MFI) and visit.

Each panel is a :func:`seaborn.heatmap` of one compartment and arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..tl import measure_unit
from ._layout import figure_title
from ._style import _panel_layout, feature_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import QuadMesh

__all__ = ["plot_effect_heatmap"]


def _no_comparison() -> Figure:
    """The heatmap's stand-in when there is nothing to compare."""
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


def _colour_limit(arm_comparison: pd.DataFrame) -> float:
    """Largest absolute finite estimate (1 when there is none): the shared colour scale's end."""
    finite = arm_comparison["estimate"].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    limit = float(np.max(np.abs(finite))) if len(finite) else 1.0
    return limit if limit > 0 else 1.0


def _primary_stars(arm_comparison: pd.DataFrame, primary: pd.DataFrame | None) -> pd.DataFrame:
    """``arm_comparison`` with ``q_value`` the PRIMARY family's q of the same cell (else NaN).

    A cell is matched to the MMRM row of the same feature, compartment, visit and contrast
    ``<arm> - <reference_arm>`` whose ``family`` starts with ``primary:``; every other cell
    (secondary or estimate) gets no q-value, so it is not starred.
    """
    out = arm_comparison.copy()
    out["q_value"] = np.nan
    if primary is None or primary.empty or "family" not in primary.columns:
        return out
    rows = primary[primary["family"].astype(str).str.startswith("primary:")]
    q = {
        (r.population, r.compartment, r.visit, r.contrast): float(r.q_value)
        for r in rows.itertuples(index=False)
    }
    keys = zip(
        out["population"], out["compartment"], out["visit"], out["arm"], out["reference_arm"]
    )
    out["q_value"] = [q.get((p, c, v, f"{a} - {ref}"), np.nan) for p, c, v, a, ref in keys]
    return out


def _cell_grid(
    cell: pd.DataFrame, pops: Sequence[str], order: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Estimates and q-values of one panel as features x visits arrays (NaN where missing)."""
    est = np.full((len(pops), len(order)), np.nan)
    q = np.full_like(est, np.nan)
    for _, row in cell.iterrows():
        if row["population"] in pops:
            i, j = pops.index(row["population"]), order.index(row["visit"])
            est[i, j], q[i, j] = row["estimate"], row["q_value"]
    return est, q


def _cell_text(est: np.ndarray, q: np.ndarray, *, alpha: float) -> np.ndarray:
    """Each cell's estimate (``*`` when q < ``alpha``); ``""`` where there is none."""
    text = np.full(est.shape, "", dtype=object)
    for i, j in zip(*np.nonzero(np.isfinite(est))):
        star = "*" if np.isfinite(q[i, j]) and q[i, j] < alpha else ""
        text[i, j] = f"{est[i, j]:+.2f}".replace("-", "\u2212") + star
    return text


def _draw_panel(
    ax: Axes,
    cell: pd.DataFrame,
    *,
    arm: str,
    compartment: str,
    pops: Sequence[str],
    names: Sequence[str] | None,
    visits: Sequence[str] | None,
    norm: TwoSlopeNorm,
    alpha: float,
) -> QuadMesh | None:
    """One panel: the effects of ``arm`` in ``compartment``, features x visits (seaborn heatmap).

    ``names`` labels the rows (None: no row labels, for panels right of the first).
    """
    import seaborn as sns

    order = (
        list(dict.fromkeys(cell["visit"]))
        if visits is None
        else [v for v in visits if v in set(cell["visit"])]
    )
    est, q = _cell_grid(cell, pops, order)
    if not order:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no comparison", ha="center", va="center", color="0.5")
        return None
    grid = pd.DataFrame(est, index=list(names or pops), columns=order)
    with sns.axes_style("white"):
        sns.heatmap(
            grid,
            mask=~np.isfinite(est),
            annot=_cell_text(est, q, alpha=alpha),
            fmt="",
            annot_kws={"fontsize": 8},
            cmap="RdBu_r",
            norm=norm,
            cbar=False,
            linewidths=0.6,
            linecolor="white",
            xticklabels=True,
            yticklabels=names is not None,
            ax=ax,
        )
    ax.set_facecolor("0.9")
    for i, j in zip(*np.nonzero(~np.isfinite(est))):  # a dash where there is no estimate
        ax.text(j + 0.5, i + 0.5, "\u2013", ha="center", va="center", fontsize=8, color="0.4")
    ax.tick_params(labelsize=8, length=0)
    ax.set_xlabel("visit", fontsize=8)
    ax.set_ylabel("")
    reference = cell["reference_arm"].iloc[0] if not cell.empty else ""
    # the populations' measure of the compartment (ratios and MFIs say what they are in their label)
    units = dict.fromkeys(measure_unit(m) for m in cell["measure"] if m not in ("ratio", "mfi"))
    where = f"{compartment}\n({', '.join(units)})" if units else compartment
    ax.set_title(f"{where}\n{arm} \u2212 {reference}", fontsize=9)
    return ax.collections[0]


def _colour_bar(fig: Figure, image: QuadMesh, axes: list[Axes]) -> None:
    """The shared colour scale, right of the panels."""
    bar = fig.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label(
        "difference in log2 fold change from baseline\n(arm \u2212 reference, Hodges-Lehmann)",
        fontsize=8,
    )
    bar.ax.tick_params(labelsize=8)


def plot_effect_heatmap(
    arm_comparison: pd.DataFrame,
    *,
    alpha: float = 0.05,
    primary: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    visits: Sequence[str] | None = None,
) -> Figure:
    """Arm effect (difference in log2 fold change, arm minus reference) by feature and visit.

    One panel per compartment (columns) and treatment arm (rows); one row of cells per feature;
    cells show the Hodges-Lehmann shift; ``*`` marks only the cells whose MMRM arm difference is
    significant in the declared PRIMARY family (q < ``alpha`` there); a shared colour scale
    centred on 0.

    Parameters
    ----------
    arm_comparison
        The ``arm_comparison`` table (:func:`cytotrial.tl.arm_comparison`).
    alpha
        q-value threshold of the ``*``.
    primary
        The ``mmrm`` table with its ``family`` column (see :func:`cytotrial.tl.compute_tables`):
        its ``primary:<compartment>`` rows give the stars. None: no cell is starred (the
        arm-comparison q-values are secondary).
    labels, ratios
        The config's population labels and ratios: row labels (see :func:`feature_label`).
    populations, compartments
        The features (rows) and compartments (panels) drawn, in this order; default: every one
        of the table.
    visits
        Visit labels in clinical order (default: order of appearance, which the table keeps).
    """
    if arm_comparison.empty:
        return _no_comparison()
    pops, comps = _panel_layout(arm_comparison, populations, compartments)
    arm_comparison = _primary_stars(arm_comparison, primary)
    names = [feature_label(p, labels=labels, ratios=ratios) for p in pops]
    arms = sorted(set(arm_comparison["arm"]))
    limit = _colour_limit(arm_comparison)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    per_compartment = arm_comparison.groupby("compartment")["visit"].nunique()
    widths = [max(2.4, float(per_compartment.get(c, 1))) for c in comps]  # room for the title
    fig = Figure(
        figsize=(0.95 * sum(widths) + 2.4 + 1.2, 0.42 * len(pops) * len(arms) + 1.8),
        layout="constrained",
    )
    # panel widths follow the number of visits, so cells have the same size in every panel
    axes = np.asarray(fig.subplots(len(arms), len(comps), squeeze=False, width_ratios=widths))
    image = None
    for r, arm in enumerate(arms):
        for c, compartment in enumerate(comps):
            cell = arm_comparison[
                (arm_comparison["arm"] == arm) & (arm_comparison["compartment"] == compartment)
            ]
            drawn = _draw_panel(
                axes[r, c],
                cell,
                arm=arm,
                compartment=compartment,
                pops=pops,
                names=names if c == 0 else None,
                visits=visits,
                norm=norm,
                alpha=alpha,
            )
            image = drawn if drawn is not None else image
    if image is not None:
        _colour_bar(fig, image, list(axes.ravel()))
    figure_title(
        fig,
        f"Arm effect by visit  (* q < {alpha:g} in the primary family, MMRM arm difference; "
        "other cells not starred)",
        size=10,
    )
    return fig
