"""Figures (cytotrial.plots) and report captions, on the planted trial of test_stats.py.

Figures are checked by what they draw (line data, colours, tick order, cell marks) against
values computed here from the simulated trial, and by the files written (PNG/PDF, same bytes
twice). Captions must exist for every table and figure and render as reStructuredText.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from cytotrial import pl as plots
from cytotrial import tl as stats

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the planted trial lives in test_stats.py
from conftest import ANALYSIS, ARM_A, ARM_B, planted_trial

REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"


@pytest.fixture(scope="module")
def trial():
    return planted_trial()


@pytest.fixture(scope="module")
def tables(trial):
    return stats.compute_tables(
        trial, analysis=ANALYSIS, tables=["log2fc", "summary", "arm_comparison"]
    )


def _axis(fig, title_start: str):
    found = [ax for ax in fig.axes if ax.get_title().startswith(title_start)]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def _log2_ratios(
    trial, population: str, compartment: str, arm: str, visit: str, layer: str
) -> np.ndarray:
    """Each patient's log2(value at visit / value at C1D1), straight from the AnnData layer."""
    j = list(trial.var_names).index(population)
    values = trial.layers[layer][:, j]
    obs = trial.obs
    out = []
    for patient in sorted(set(obs.loc[obs["arm"] == arm, "patient_id"])):
        here = f"{patient}_{compartment}_{visit}"
        base = f"{patient}_{compartment}_C1D1"
        if here in obs.index and base in obs.index:
            out.append(math.log2(values[obs.index.get_loc(here)] / values[obs.index.get_loc(base)]))
    return np.asarray(out)


def test_trajectories_draw_arm_means_in_fixed_colours_and_clinical_order(trial, tables):
    fig = plots.plot_trajectories(
        tables["summary"], arm_colors={ARM_A: "#C8102E", ARM_B: "#1F77B4"}, reference_arm=ARM_B
    )
    ax = _axis(fig, "CD8+ T cells · blood")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["C1D1", "C1D8", "C2D1"]
    assert "cells/µL" in ax.get_ylabel() and "log2 fold change" in ax.get_ylabel()
    assert "fraction of parent gate" in _axis(fig, "CD8+ T cells · tumor").get_ylabel()
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert to_hex(lines[f"mean:{ARM_A}"].get_color()) == "#c8102e"
    assert to_hex(lines[f"mean:{ARM_B}"].get_color()) == "#1f77b4"
    expected = [0.0] + [
        _log2_ratios(trial, "cd8", "blood", ARM_A, v, "per_ul").mean() for v in ("C1D8", "C2D1")
    ]
    np.testing.assert_allclose(lines[f"mean:{ARM_A}"].get_ydata(), expected, atol=1e-9)
    assert lines[f"mean:{ARM_A}"].get_ydata()[1] > 2.0  # the planted rise is visible
    # one panel per population and compartment, blood left of tumor
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == [
        "CD4+ T cells · blood",
        "CD4+ T cells · tumor",
        "CD8+ T cells · blood",
        "CD8+ T cells · tumor",
    ]


def test_trajectories_follow_cycle_and_day_not_the_alphabet(trial):
    adata = trial.copy()
    obs = adata.obs.copy()
    for old, (new, cycle, day) in {"C1D8": ("C1D15", 1, 15), "C2D1": ("C10D1", 10, 1)}.items():
        mask = obs["visit"] == old
        obs.loc[mask, "visit"], obs.loc[mask, "cycle"], obs.loc[mask, "day"] = new, cycle, day
    adata.obs = obs
    out = stats.compute_tables(adata, analysis=ANALYSIS, tables=["summary", "log2fc"])
    for fig in (plots.plot_trajectories(out["summary"]), plots.plot_patient_lines(out["log2fc"])):
        ax = _axis(fig, "CD8+ T cells · blood")
        assert [t.get_text() for t in ax.get_xticklabels()] == ["C1D1", "C1D15", "C10D1"]


def test_patient_lines_draw_every_patient_and_the_arm_median(trial, tables):
    fig = plots.plot_patient_lines(tables["log2fc"], reference_arm=ARM_B)
    ax = _axis(fig, "CD8+ T cells · tumor")
    gids = [line.get_gid() or "" for line in ax.lines]
    assert sum(g.startswith(f"patient:{ARM_A}:") for g in gids) == 10
    assert sum(g.startswith(f"patient:{ARM_B}:") for g in gids) == 10
    median = next(line for line in ax.lines if line.get_gid() == f"median:{ARM_A}")
    expected = np.median(_log2_ratios(trial, "cd8", "tumor", ARM_A, "C2D1", "freq_parent"))
    np.testing.assert_allclose(median.get_ydata(), [0.0, expected], atol=1e-9)
    blood = _axis(fig, "CD8+ T cells · blood")
    # P03 has no blood baseline: 9 patients of the combination arm are drawn
    assert sum((line.get_gid() or "").startswith(f"patient:{ARM_A}:") for line in blood.lines) == 9


def test_effect_heatmap_marks_exactly_the_significant_cells(tables):
    comparison = tables["arm_comparison"]
    fig = plots.plot_effect_heatmap(comparison, alpha=0.05, visits=["C1D1", "C1D8", "C2D1"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    significant = comparison[comparison["q_value"] < 0.05]
    assert 0 < len(significant) < len(comparison)
    assert sum(t.endswith("*") for t in texts) == len(significant)
    blood = _axis(fig, "blood")
    assert [t.get_text() for t in blood.get_xticklabels()] == ["C1D8", "C2D1"]
    row = comparison[
        (comparison["population"] == "cd8")
        & (comparison["compartment"] == "blood")
        & (comparison["visit"] == "C1D8")
    ].iloc[0]
    label = f"{row['estimate']:+.2f}".replace("-", "−") + "*"
    assert label in [t.get_text() for t in blood.texts]
    image = blood.get_images()[0]
    assert image.norm.vcenter == 0.0 and image.norm.vmin == -image.norm.vmax


def test_arm_palette_keeps_fixed_colours_and_separates_the_rest():
    colours = plots.arm_palette(
        ["NIVO", "IPI+NIVO", "BEMPEG+NIVO", "PLACEBO"],
        {"BEMPEG+NIVO": "#C8102E", "NIVO": "#1F77B4"},
    )
    assert colours["BEMPEG+NIVO"] == "#c8102e" and colours["NIVO"] == "#1f77b4"
    assert len(set(colours.values())) == 4
    assert plots.arm_palette(["PLACEBO", "IPI+NIVO"], {}) == plots.arm_palette(
        ["IPI+NIVO", "PLACEBO"], {}
    )


def test_write_figures_writes_png_and_pdf_deterministically(tmp_path, trial):
    path = tmp_path / "populations.h5ad"
    trial.write_h5ad(path)
    first = plots.write_figures(
        path,
        outdir=tmp_path / "a",
        analysis=ANALYSIS,
        arm_colors={ARM_A: "#C8102E", ARM_B: "#1F77B4"},
    )
    assert sorted(first) == sorted(
        f"{name}.{ext}" for name in plots.FIGURES for ext in ("png", "pdf")
    )
    second = plots.write_figures(
        path,
        outdir=tmp_path / "b",
        analysis=ANALYSIS,
        arm_colors={ARM_A: "#C8102E", ARM_B: "#1F77B4"},
    )
    for name, file in first.items():
        data = file.read_bytes()
        assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF")
        assert len(data) > 10_000
        assert data == second[name].read_bytes(), name
    # named outputs: the suffix given is replaced by .png and .pdf
    only = plots.write_figures(
        path, outputs={"effect_heatmap": tmp_path / "c" / "heat.png"}, analysis=ANALYSIS
    )
    assert sorted(p.name for p in only.values()) == ["heat.pdf", "heat.png"]


CAPTIONS = [
    "workflow", "log2fc", "summary", "change_from_baseline", "arm_comparison", "mixed_model",
    "response", "missing_baseline", "trajectories", "patient_lines", "effect_heatmap",
]  # fmt: skip


@pytest.mark.parametrize("name", CAPTIONS)
def test_captions_render_as_restructuredtext(name):
    from docutils.core import publish_doctree

    text = (REPORT / f"{name}.rst").read_text(encoding="utf-8")
    assert "{{" not in text and "{%" not in text  # no template syntax to break the report
    warnings = io.StringIO()
    tree = publish_doctree(
        text, settings_overrides={"warning_stream": warnings, "report_level": 1, "halt_level": 5}
    )
    assert warnings.getvalue() == ""
    assert len(tree.astext().split()) > 40


@pytest.mark.parametrize(
    "name", ["summary", "change_from_baseline", "arm_comparison", "mixed_model", "response"]
)
def test_table_captions_explain_the_estimate_columns(name):
    text = (REPORT / f"{name}.rst").read_text(encoding="utf-8")
    for column in ("ci_low", "ci_high"):
        assert f"``{column}``" in text or column in text
    if name != "summary":
        assert "q_value" in text and "Benjamini-Hochberg" in text
