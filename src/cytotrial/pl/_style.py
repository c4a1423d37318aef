"""What every figure shares: arm colours, population labels, panel layout and saving.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global state, no
display needed). Visits are in clinical order (cycle, then day); arms have fixed colours
(``arm_colors`` in the config, a colour-blind palette for the others).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..tl import MEASURE_UNITS

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

__all__ = [
    "DEFAULT_ARM_COLORS",
    "POPULATION_LABELS",
    "arm_palette",
    "fold_change_label",
    "population_label",
    "save_figure",
]

#: Fixed arm colours of the model trial (config ``arm_colors`` overrides or extends).
DEFAULT_ARM_COLORS: dict[str, str] = {"BEMPEG+NIVO": "#C8102E", "NIVO": "#1F77B4"}

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
    """Visit labels of a table with ``visit``, ``cycle`` and ``day`` columns, in clinical order."""
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


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.axhline(0.0, color="0.6", lw=0.8, ls="--", zorder=0)
    ax.tick_params(labelsize=8)


def _no_data(ax: Axes) -> None:
    """Mark a panel that has nothing to draw."""
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    ax.set_xticks([])


def _legend(
    fig: Figure, colours: Mapping[str, str], arms: Sequence[str], *, extra: Sequence[Artist] = ()
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


def _save_tight(fig: Figure, png: str | Path, pdf: str | Path) -> None:
    """Write ``fig`` to ``png`` and ``pdf`` cropped to its content (the event-level figures)."""
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
