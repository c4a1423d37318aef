"""What every figure shares: arm colours, feature labels, orders and saving.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global state, no
display needed), drawn with seaborn (see ``_layout``). Visits are in clinical order (cycle, then
day); arms have the colours of the config's ``arms:`` (a colour-blind palette for any other).
Features (populations, ratios, MFIs) are labelled from the config's population labels and ratios
(:func:`feature_label`); nothing here knows a population, arm or compartment by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from ..tl import measure_unit

__all__ = [
    "arm_palette",
    "feature_label",
    "feature_labels",
    "fold_change_label",
    "save_figure",
]

# Okabe-Ito colour-blind palette, for arms without a fixed colour
_PALETTE = ["#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#0072B2", "#F0E442", "#000000"]
_PDF_METADATA = {"CreationDate": None, "ModDate": None}


def arm_palette(arms: Sequence[str], arm_colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """Colour per arm: fixed colours first, then a colour-blind palette in sorted arm order.

    Parameters
    ----------
    arms
        Arm names to colour.
    arm_colors
        Fixed colours (the config's ``arms:``, arm -> colour); None: the palette for every arm.
    """
    fixed = dict(arm_colors or {})
    used = {to_hex(c).lower() for c in fixed.values()}
    spare = iter([c for c in _PALETTE if c.lower() not in used] + _PALETTE)
    colours = {}
    for arm in sorted(set(arms)):
        colours[arm] = to_hex(fixed[arm]) if arm in fixed else next(spare)
    return colours


def feature_label(
    feature: str,
    *,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Readable name of a feature (a population, ratio or MFI ``<population>:<marker>``).

    Parameters
    ----------
    feature
        The feature's name, as in the statistics tables' ``population`` column.
    labels
        Name -> label (the config's population labels); a feature listed here takes its label.
    ratios
        Ratio name -> (numerator, denominator) (the config's ``ratios:``).

    Returns
    -------
    str
        ``labels[feature]``; for a ratio ``"<numerator> / <denominator>"`` (``cd8 / treg``); for
        an MFI ``"<marker> MFI of <population label>"`` (``Ki67 MFI of CD8+ T cells``); else the
        name itself.
    """
    labels, ratios = labels or {}, ratios or {}
    if feature in labels:
        return str(labels[feature])
    if feature in ratios:
        numerator, denominator = ratios[feature]
        return f"{numerator} / {denominator}"
    population, colon, marker = feature.partition(":")
    if colon:
        return f"{marker} MFI of {labels.get(population, population)}"
    return feature


def feature_labels(
    features: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """Feature -> :func:`feature_label` of each of ``features``."""
    return {f: feature_label(f, labels=labels, ratios=ratios) for f in features}


def fold_change_label(measure: str, *, wrap: bool = False) -> str:
    """Axis label of a log2 fold change from baseline of ``measure``, with its unit."""
    sep = "\n" if wrap else " "
    return f"log2 fold change from baseline{sep}({measure_unit(measure)})"


def _order(values: pd.Series, preferred: Sequence[str] | None) -> list[str]:
    """The values present, in ``preferred`` order and only those (None: in order of appearance)."""
    present = list(dict.fromkeys(values))
    if preferred is None:
        return present
    return [p for p in preferred if p in present]


def _visit_order(table: pd.DataFrame) -> list[str]:
    """Visit labels of a table with ``visit``, ``cycle`` and ``day`` columns, in clinical order."""
    pairs = table[["visit", "cycle", "day"]].drop_duplicates()
    return pairs.sort_values(["cycle", "day", "visit"])["visit"].tolist()


def _arms_order(
    arms: Sequence[str], reference_arm: str | None, preferred: Sequence[str] | None = None
) -> list[str]:
    """Arms in ``preferred`` order (the config's, others sorted after), the reference arm last."""
    present = set(arms)
    ordered = [a for a in (preferred or []) if a in present]
    ordered += sorted(present - set(ordered))
    if reference_arm in ordered:
        ordered.remove(reference_arm)
        ordered.append(reference_arm)
    return ordered


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
    # Lay the figure out once, as the PNG is drawn, and keep that layout: both files share it, and
    # saving again gives the same bytes (each constrained-layout pass starts from the last one's
    # positions). Each draw of a large figure costs seconds: two draws, not three.
    fig.set_dpi(dpi)  # laid out as the PNG draws its text
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")
    fig.savefig(pdf, metadata=_PDF_METADATA)
    return png, pdf


def _save_tight(fig: Figure, png: str | Path, pdf: str | Path) -> None:
    """Write ``fig`` to ``png`` and ``pdf`` cropped to its content (the event-level figures)."""
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
