"""The figures of what treatment did, drawn from the statistics tables and written as PNG and PDF.

The figures read the tables the statistics step wrote (``results/stats/<name>.tsv``, see
:func:`cytotrial.tl.write_stats`); nothing is computed here. :func:`read_stat_tables` parses them
with the dtypes the statistics code gives them, :func:`draw_figures` draws, :func:`write_figures`
does both and saves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError
from ..tl import resolve_analysis
from ._heatmap import plot_effect_heatmap
from ._lines import plot_patient_lines, plot_trajectories
from ._style import _visit_order, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FIGURES",
    "FIGURE_TABLES",
    "draw_figures",
    "read_stat_tables",
    "write_figures",
]

#: Names of the figures :func:`write_figures` can write (files ``<name>.png`` and ``<name>.pdf``).
FIGURES: tuple[str, ...] = ("trajectories", "patient_lines", "effect_heatmap")

#: The statistics tables each figure is drawn from (the heatmap takes its visit order from
#: ``summary``).
FIGURE_TABLES: dict[str, tuple[str, ...]] = {
    "trajectories": ("summary",),
    "patient_lines": ("log2fc",),
    "effect_heatmap": ("arm_comparison", "summary"),
}

#: Tables a figure uses when they are there: the heatmap stars the cells whose MMRM arm
#: difference is significant in the primary family (no ``mmrm`` table: no stars).
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {"effect_heatmap": ("mmrm",)}

_TEXT, _INT, _FLOAT = "object", "int64", "float64"

# Column dtypes of the tables the figures read, as the statistics code makes them
# (cytotrial.tl.log2_fold_changes, summary_table, arm_comparison).
_TABLE_DTYPES: dict[str, dict[str, str]] = {
    "log2fc": {
        "patient_id": _TEXT,
        "arm": _TEXT,
        "compartment": _TEXT,
        "population": _TEXT,
        "measure": _TEXT,
        "visit": _TEXT,
        "cycle": _INT,
        "day": _INT,
        "sample_id": _TEXT,
        "baseline_sample_id": _TEXT,
        "value": _FLOAT,
        "baseline_value": _FLOAT,
        "log2_value": _FLOAT,
        "baseline_log2_value": _FLOAT,
        "log2fc": _FLOAT,
        "qc_flags": _TEXT,
        "baseline_qc_flags": _TEXT,
    },
    "summary": {
        "population": _TEXT,
        "compartment": _TEXT,
        "arm": _TEXT,
        "visit": _TEXT,
        "cycle": _INT,
        "day": _INT,
        "measure": _TEXT,
        "unit": _TEXT,
        "n_patients": _INT,
        "median": _FLOAT,
        "q1": _FLOAT,
        "q3": _FLOAT,
        "n_log2fc": _INT,
        "mean_log2fc": _FLOAT,
        "ci_low": _FLOAT,
        "ci_high": _FLOAT,
    },
    "arm_comparison": {
        "population": _TEXT,
        "compartment": _TEXT,
        "visit": _TEXT,
        "measure": _TEXT,
        "arm": _TEXT,
        "reference_arm": _TEXT,
        "n_arm": _INT,
        "n_reference": _INT,
        "median_log2fc_arm": _FLOAT,
        "median_log2fc_reference": _FLOAT,
        "estimate": _FLOAT,
        "ci_low": _FLOAT,
        "ci_high": _FLOAT,
        "p_value": _FLOAT,
        "q_value": _FLOAT,
    },
    # the heatmap stars the cells whose MMRM arm difference is significant in the primary family
    "mmrm": {
        "population": _TEXT,
        "compartment": _TEXT,
        "measure": _TEXT,
        "visit": _TEXT,
        "contrast": _TEXT,
        "estimate": _FLOAT,
        "p_value": _FLOAT,
        "q_value": _FLOAT,
        "family": _TEXT,
    },
}


def _read_table(name: str, path: Path) -> pd.DataFrame:
    """One statistics table as :func:`cytotrial.tl.write_tsv` wrote it (``NA`` = missing number)."""
    dtypes = _TABLE_DTYPES[name]
    try:
        header = pd.read_csv(path, sep="\t", nrows=0).columns
        missing = [c for c in dtypes if c not in header]
        if missing:
            raise ConfigError(
                f"{path}: not a {name} table (no column {', '.join(missing)}); re-run the "
                "statistics"
            )
        # Text stays as written (an arm or visit called "NA" is a name); only numbers have NA.
        return pd.read_csv(
            path,
            sep="\t",
            dtype={c: (str if t == _TEXT else t) for c, t in dtypes.items()},
            keep_default_na=False,
            na_values={c: ["NA"] for c, t in dtypes.items() if t == _FLOAT},
        )
    except (OSError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path}: cannot be read as the {name} table ({first}); re-run the statistics"
        ) from None


def read_stat_tables(
    source: str | Path | Mapping[str, str | Path],
    names: Sequence[str] = ("log2fc", "summary", "arm_comparison"),
) -> dict[str, pd.DataFrame]:
    """Read the statistics tables the figures are drawn from, with their dtypes.

    Parameters
    ----------
    source
        The folder the statistics were written to (``results/stats``, holding ``<name>.tsv``), or
        table name -> TSV path.
    names
        Tables to read: ``log2fc``, ``summary`` and/or ``arm_comparison``.

    Returns
    -------
    dict
        Table name -> DataFrame, equal to what :func:`cytotrial.tl.compute_tables` returned
        but for the 6 significant digits the TSV files keep.

    Raises
    ------
    ConfigError
        A table cannot be read or lacks a column (one-line message).
    """
    unknown = [name for name in names if name not in _TABLE_DTYPES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {tuple(_TABLE_DTYPES)}")
    if isinstance(source, Mapping):
        absent = [name for name in names if name not in source]
        if absent:
            raise ValueError(f"no path given for table(s) {absent}")
        paths = {name: Path(source[name]) for name in names}
    else:
        paths = {name: Path(source) / f"{name}.tsv" for name in names}
    return {name: _read_table(name, path) for name, path in paths.items()}


def _reference_arm(cfg: Mapping[str, Any], arm_colors: Mapping[str, str] | None) -> str | None:
    """The configured reference arm, else the last arm of the config's ``arms:``."""
    if cfg["reference_arm"]:
        return cfg["reference_arm"]
    return list(arm_colors)[-1] if arm_colors else None


def _draw(
    name: str,
    tables: Mapping[str, pd.DataFrame],
    cfg: Mapping[str, Any],
    style: Mapping[str, Any],
) -> Figure:
    """Figure ``name`` of :data:`FIGURES` from its tables, the ``analysis`` config and the style.

    ``style`` holds ``arm_colors``, ``labels`` and ``ratios`` (see :func:`draw_figures`).
    """
    order = cfg["populations"] or None  # empty: the features in the tables' order
    text = dict(labels=style["labels"], ratios=style["ratios"], populations=order)
    reference = _reference_arm(cfg, style["arm_colors"])
    if name == "trajectories":
        return plot_trajectories(
            tables["summary"],
            arm_colors=style["arm_colors"],
            reference_arm=reference,
            alpha=cfg["alpha"],
            **text,
        )
    if name == "patient_lines":
        return plot_patient_lines(
            tables["log2fc"], arm_colors=style["arm_colors"], reference_arm=reference, **text
        )
    return plot_effect_heatmap(
        tables["arm_comparison"],
        alpha=cfg["alpha"],
        visits=_visit_order(tables["summary"]),
        primary=tables.get("mmrm"),
        **text,
    )


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {FIGURES}")


def _tables_for(names: Sequence[str]) -> list[str]:
    """The tables the figures ``names`` need, each once."""
    return list(dict.fromkeys(table for name in names for table in FIGURE_TABLES[name]))


def draw_figures(
    tables: Mapping[str, pd.DataFrame],
    *,
    names: Sequence[str] = FIGURES,
    analysis: Mapping[str, Any] | None = None,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Figure]:
    """Draw figures of :data:`FIGURES` from the statistics tables.

    One block of panels per compartment of the tables, one panel per analysed feature
    (``analysis.populations`` in order; empty: every feature of the tables), drawn with seaborn.

    Parameters
    ----------
    tables
        Table name -> DataFrame, the tables of :data:`FIGURE_TABLES` the figures need (from
        :func:`read_stat_tables` or :func:`cytotrial.tl.compute_tables`).
    names
        Figures to draw.
    analysis
        The ``analysis:`` config section (features, reference arm, alpha); reference arm ``""``:
        the last arm of ``arm_colors``.
    arm_colors
        The config's ``arms:`` (arm -> colour, in the config's order).
    labels
        Population -> label (the config's population model), for titles and row labels.
    ratios
        The config's ``ratios:`` (name -> numerator, denominator), labelled ``"cd8 / treg"``.

    Returns
    -------
    dict
        Figure name -> :class:`matplotlib.figure.Figure`.
    """
    _check_names(names)
    absent = [table for table in _tables_for(names) if table not in tables]
    if absent:
        raise ValueError(f"table(s) {absent} needed for figures {list(names)}")
    cfg = resolve_analysis(analysis)
    style = dict(arm_colors=arm_colors, labels=labels, ratios=ratios)
    return {name: _draw(name, tables, cfg, style) for name in names}


def write_figures(
    tables: str | Path | Mapping[str, str | Path],
    *,
    outdir: str | Path | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    analysis: Mapping[str, Any] | None = None,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Read the statistics tables and write the figures as PNG and PDF.

    Parameters
    ----------
    tables
        ``results/stats`` (the folder of ``<name>.tsv``), or table name -> TSV path with the
        tables of :data:`FIGURE_TABLES` the figures need.
    outdir
        Write every figure of :data:`FIGURES` as ``<outdir>/<name>.png`` and ``.pdf``.
    outputs
        Instead of ``outdir``: figure name -> path (its ``.png``/``.pdf`` suffix is replaced),
        writing only those figures.
    analysis, arm_colors, labels, ratios
        As in :func:`draw_figures`.

    Returns
    -------
    dict
        ``"<name>.png"`` and ``"<name>.pdf"`` -> path written.

    Raises
    ------
    ConfigError
        Bad config, or a table that cannot be read (one-line message).
    """
    if (outdir is None) == (outputs is None):
        raise ValueError("give exactly one of outdir or outputs")
    targets = (
        {name: Path(outdir) / name for name in FIGURES}
        if outputs is None
        else {name: Path(path) for name, path in outputs.items()}
    )
    _check_names(list(targets))
    cfg = resolve_analysis(analysis)
    frames = read_stat_tables(tables, _tables_for(list(targets)))
    for name in {opt for target in targets for opt in OPTIONAL_TABLES.get(target, ())}:
        given = tables.get(name) if isinstance(tables, Mapping) else Path(tables) / f"{name}.tsv"
        if given is not None and Path(given).is_file():
            frames[name] = read_stat_tables({name: given}, [name])[name]
    style = dict(arm_colors=arm_colors, labels=labels, ratios=ratios)
    written: dict[str, Path] = {}
    for name, target in targets.items():
        png, pdf = save_figure(_draw(name, frames, cfg, style), target)
        written[f"{name}.png"] = png
        written[f"{name}.pdf"] = pdf
    return written
