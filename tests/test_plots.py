"""Figures (cytotrial.pl) and report captions, on the planted trial of conftest.py.

Figures are checked by what they draw (line data, colours, tick order, cell marks, the features'
labels) against values computed here from the simulated trial, and by the files written (PNG/PDF,
same bytes twice). The figures of the workflow are drawn from the statistics tables as written to TSV: they
must draw what the freshly computed tables draw. Captions must exist for every table and figure
and render as reStructuredText.
"""

from __future__ import annotations

import ast
import io
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from cytotrial import pl as plots
from cytotrial import tl as stats
from cytotrial.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ANALYSIS, ARM_A, ARM_B, FEATURES, LABELS, MARROW, MFI, RATIOS, planted_trial

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "workflow" / "report"
FIGURE_TABLES = ["log2fc", "summary", "arm_comparison"]
COLOURS = {ARM_A: "#C8102E", ARM_B: "#1F77B4"}
TEXT = {"labels": LABELS, "ratios": RATIOS}  # the config's population labels and ratios


@pytest.fixture(scope="module")
def trial():
    return planted_trial()


@pytest.fixture(scope="module")
def tables(trial):
    return stats.compute_tables(trial, analysis=ANALYSIS, tables=FIGURE_TABLES)


@pytest.fixture(scope="module")
def stats_dir(trial, tmp_path_factory):
    """The figures' tables as the statistics step writes them (results/stats/<name>.tsv)."""
    folder = tmp_path_factory.mktemp("stats")
    trial.write_h5ad(folder / "populations.h5ad")
    stats.write_stats(
        folder / "populations.h5ad",
        outputs={name: folder / f"{name}.tsv" for name in FIGURE_TABLES},
        analysis=ANALYSIS,
    )
    return folder


def _axis(fig, title_start: str):
    found = [ax for ax in fig.axes if ax.get_title().startswith(title_start)]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def _block(fig, heading: str):
    """The block (subfigure) of a compartment, by its heading."""
    found = [sub for sub in fig.subfigs if sub.get_suptitle().split("  ")[0] == heading]
    assert len(found) == 1, [sub.get_suptitle() for sub in fig.subfigs]
    return found[0]


def _panel(fig, compartment: str, label: str):
    """The panel of a feature (its label: the title's first line) in a compartment's block."""
    found = [ax for ax in _block(fig, compartment).axes if ax.get_title().split("\n")[0] == label]
    assert len(found) == 1, [ax.get_title() for ax in _block(fig, compartment).axes]
    return found[0]


def _titles(fig, compartment: str) -> list[str]:
    """First line of each panel title of a compartment's block, in order."""
    return [ax.get_title().split("\n")[0] for ax in _block(fig, compartment).axes]


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
        tables["summary"],
        arm_colors={ARM_A: "#C8102E", ARM_B: "#1F77B4"},
        reference_arm=ARM_B,
        populations=FEATURES,
        **TEXT,
    )
    ax = _panel(fig, "blood", "CD8+ T cells")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["C1D1", "C1D8", "C2D1"]
    assert ax.get_title() == "CD8+ T cells\ncells/µL"  # the unit of the compartment's measure
    assert "log2 fold change" in _panel(fig, "blood", "CD4+ T cells").get_ylabel()
    assert (
        _panel(fig, "tumor", "CD8+ T cells").get_title().endswith("fraction of parent population")
    )
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert to_hex(lines[f"mean:{ARM_A}"].get_color()) == "#c8102e"
    assert to_hex(lines[f"mean:{ARM_B}"].get_color()) == "#1f77b4"
    expected = [0.0] + [
        _log2_ratios(trial, "cd8", "blood", ARM_A, v, "per_ul").mean() for v in ("C1D8", "C2D1")
    ]
    np.testing.assert_allclose(lines[f"mean:{ARM_A}"].get_ydata(), expected, atol=1e-9)
    assert lines[f"mean:{ARM_A}"].get_ydata()[1] > 2.0  # the planted rise is visible
    # arms side by side at each visit, in clinical order
    assert np.all(np.diff(lines[f"mean:{ARM_A}"].get_xdata()) > 0)
    assert lines[f"mean:{ARM_A}"].get_xdata()[0] < lines[f"mean:{ARM_B}"].get_xdata()[0]
    # one block per compartment present, one panel per feature (labelled from the config)
    assert [sub.get_suptitle() for sub in fig.subfigs] == ["blood", MARROW, "tumor"]
    names = ["CD4+ T cells", "CD8+ T cells", "cd4 / treg", "Ki67 MFI of CD8+ T cells"]
    for compartment in ("blood", MARROW, "tumor"):
        assert _titles(fig, compartment) == names
    # the ratio and the MFI are drawn with their own measure; the MFI has no bone marrow data
    assert _panel(fig, "tumor", "cd4 / treg").get_title().endswith("ratio of counts")
    mfi = _panel(fig, "blood", "Ki67 MFI of CD8+ T cells")
    assert mfi.get_title().endswith("median fluorescence intensity")
    mean = next(line for line in mfi.lines if line.get_gid() == f"mean:{ARM_A}")
    np.testing.assert_allclose(mean.get_ydata(), [0.0, 1.5, 0.0], atol=1e-9)  # planted
    assert [t.get_text() for t in _panel(fig, MARROW, "Ki67 MFI of CD8+ T cells").texts] == [
        "no data"
    ]


def test_trajectories_follow_cycle_and_day_not_the_alphabet(trial):
    adata = trial.copy()
    obs = adata.obs.copy()
    for old, (new, cycle, day) in {"C1D8": ("C1D15", 1, 15), "C2D1": ("C10D1", 10, 1)}.items():
        mask = obs["visit"] == old
        obs.loc[mask, "visit"], obs.loc[mask, "cycle"], obs.loc[mask, "day"] = new, cycle, day
    adata.obs = obs
    out = stats.compute_tables(adata, analysis=ANALYSIS, tables=["summary", "log2fc"])
    for fig in (
        plots.plot_trajectories(out["summary"], **TEXT),
        plots.plot_patient_lines(out["log2fc"], **TEXT),
    ):
        ax = _panel(fig, "blood", "CD8+ T cells")
        assert [t.get_text() for t in ax.get_xticklabels()] == ["C1D1", "C1D15", "C10D1"]


def _patient_segments(ax, colour: str) -> int:
    """Number of faint per-patient lines of one colour (seaborn draws them as one collection)."""
    from matplotlib.collections import LineCollection

    count = 0
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            colours = [to_hex(c) for c in collection.get_colors()]
            count += sum(c == colour for c in colours)
    return count


def test_patient_lines_draw_every_patient_and_the_arm_median(trial, tables):
    fig = plots.plot_patient_lines(
        tables["log2fc"], reference_arm=ARM_B, arm_colors=COLOURS, **TEXT
    )
    ax = _panel(fig, "tumor", "CD8+ T cells")
    assert _patient_segments(ax, COLOURS[ARM_A].lower()) == 10
    assert _patient_segments(ax, COLOURS[ARM_B].lower()) == 10
    median = next(line for line in ax.lines if line.get_gid() == f"median:{ARM_A}")
    expected = np.median(_log2_ratios(trial, "cd8", "tumor", ARM_A, "C2D1", "freq_parent"))
    np.testing.assert_allclose(median.get_ydata(), [0.0, expected], atol=1e-9)
    blood = _panel(fig, "blood", "CD8+ T cells")
    # P03 has no blood baseline: 9 patients of the combination arm are drawn
    assert _patient_segments(blood, COLOURS[ARM_A].lower()) == 9


def test_effect_heatmap_marks_exactly_the_significant_cells(trial):
    got = stats.compute_tables(trial, analysis=ANALYSIS, tables=["arm_comparison", "mmrm"])
    comparison, mmrm = got["arm_comparison"], got["mmrm"]
    visits = ["SCREEN", "C1D1", "C1D8", "C2D1"]
    fig = plots.plot_effect_heatmap(comparison, alpha=0.05, primary=mmrm, visits=visits, **TEXT)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    # stars only where the PRIMARY family (MMRM arm difference) has q < alpha
    primary = mmrm[mmrm["family"].str.startswith("primary:")]
    significant = primary[primary["q_value"] < 0.05]
    assert 0 < len(significant) < len(comparison)
    assert sum(t.endswith("*") for t in texts) == len(significant)
    assert "primary family" in fig.get_suptitle()
    # without the primary family: nothing is starred (arm_comparison q-values are secondary)
    bare = plots.plot_effect_heatmap(comparison, alpha=0.05, visits=visits, **TEXT)
    assert not any(t.get_text().endswith("*") for ax in bare.axes for t in ax.texts)
    blood = _axis(fig, "blood")
    assert [t.get_text() for t in blood.get_xticklabels()] == ["C1D8", "C2D1"]
    row = comparison[
        (comparison["population"] == "cd8")
        & (comparison["compartment"] == "blood")
        & (comparison["visit"] == "C1D8")
    ].iloc[0]
    label = f"{row['estimate']:+.2f}".replace("-", "−") + "*"
    assert label in [t.get_text() for t in blood.texts]
    mesh = blood.collections[0]  # the seaborn heatmap
    assert type(mesh).__name__ == "QuadMesh"
    assert mesh.norm.vcenter == 0.0 and mesh.norm.vmin == -mesh.norm.vmax
    # one row per feature, labelled from the config; the populations' measure in the title
    rows = ["CD4+ T cells", "CD8+ T cells", "cd4 / treg", "Ki67 MFI of CD8+ T cells"]
    assert [t.get_text() for t in blood.get_yticklabels()] == rows
    assert blood.get_title() == f"blood\n(cells/µL)\n{ARM_A} − {ARM_B}"
    marrow = _axis(fig, f"{MARROW}\n(fraction of parent population)")
    assert [t.get_text() for t in marrow.get_xticklabels()] == ["C2D1"]


def test_figures_draw_the_analysed_features_in_their_order(tables):
    analysis = {**ANALYSIS, "populations": [MFI, "cd8"], "reference_arm": ""}
    figures = plots.draw_figures(tables, analysis=analysis, arm_colors=COLOURS, **TEXT)
    rows = ["Ki67 MFI of CD8+ T cells", "CD8+ T cells"]
    for compartment in ("blood", MARROW, "tumor"):
        assert _titles(figures["trajectories"], compartment) == rows
    heatmap = _axis(figures["effect_heatmap"], "blood")
    assert [t.get_text() for t in heatmap.get_yticklabels()] == rows
    # reference arm "": the last arm of the config's arms, drawn last in the legend
    legend = figures["trajectories"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [ARM_A, ARM_B]
    swapped = {ARM_B: COLOURS[ARM_B], ARM_A: COLOURS[ARM_A]}
    figure = plots.draw_figures(
        tables, names=["trajectories"], analysis=analysis, arm_colors=swapped, **TEXT
    )["trajectories"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [ARM_B, ARM_A]


def test_feature_labels_come_from_the_config():
    assert plots.feature_label("cd8", labels=LABELS) == "CD8+ T cells"
    assert plots.feature_label("cd4_treg", labels=LABELS, ratios=RATIOS) == "cd4 / treg"
    assert plots.feature_label(MFI, labels=LABELS) == "Ki67 MFI of CD8+ T cells"
    assert plots.feature_label("cd8") == "cd8" and plots.feature_label(MFI) == "Ki67 MFI of cd8"
    # a label given for any feature wins
    assert plots.feature_label("cd4_treg", labels={"cd4_treg": "CD4:Treg"}, ratios=RATIOS) == (
        "CD4:Treg"
    )
    assert plots.feature_labels(["cd8", MFI], labels=LABELS) == {
        "cd8": "CD8+ T cells",
        MFI: "Ki67 MFI of CD8+ T cells",
    }


def test_statistics_and_figures_know_no_population_arm_or_compartment_by_name():
    # names are the user's: no population, arm or compartment is written into the code
    names = re.compile(r"\b(blood|tumou?r|marrow|cd\d+\w*|treg|nk|bempeg|nivo)\b", re.IGNORECASE)
    modules = sorted((ROOT / "src/cytotrial/pl").glob("*.py")) + [
        ROOT / "src/cytotrial/tl" / f"_{name}.py"
        for name in ("analysis", "measures", "compare", "mmrm", "response", "tables", "rank")
        + ("mmrm_fit", "mmrm_cov", "families", "crosscheck", "crosscheck_maps")
    ]
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if text and id(node) not in docstrings:
                assert not names.search(node.value), (path.name, node.value)
    assert not {"POPULATION_LABELS", "DEFAULT_ARM_COLORS", "population_label"} & set(plots.__all__)
    assert "EVENT_LABELS" not in stats.__all__


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


def test_write_figures_writes_png_and_pdf_deterministically(tmp_path, stats_dir):
    first = plots.write_figures(
        stats_dir, outdir=tmp_path / "a", analysis=ANALYSIS, arm_colors=COLOURS, **TEXT
    )
    assert sorted(first) == sorted(
        f"{name}.{ext}" for name in plots.FIGURES for ext in ("png", "pdf")
    )
    second = plots.write_figures(
        {name: stats_dir / f"{name}.tsv" for name in FIGURE_TABLES},
        outdir=tmp_path / "b",
        analysis=ANALYSIS,
        arm_colors=COLOURS,
        **TEXT,
    )
    for name, file in first.items():
        data = file.read_bytes()
        assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF")
        assert len(data) > 10_000
        assert data == second[name].read_bytes(), name
    # named outputs: the suffix given is replaced by .png and .pdf; only the tables needed are read
    only = plots.write_figures(
        {"arm_comparison": stats_dir / "arm_comparison.tsv", "summary": stats_dir / "summary.tsv"},
        outputs={"effect_heatmap": tmp_path / "c" / "heat.png"},
        analysis=ANALYSIS,
    )
    assert sorted(p.name for p in only.values()) == ["heat.pdf", "heat.png"]


def test_tables_read_back_with_the_dtypes_the_statistics_write(tables, stats_dir):
    read = plots.read_stat_tables(stats_dir)
    assert sorted(read) == sorted(FIGURE_TABLES)
    for name, fresh in tables.items():
        back = read[name]
        assert list(back.columns) == list(fresh.columns), name
        assert back.dtypes.equals(fresh.dtypes), (name, back.dtypes[back.dtypes != fresh.dtypes])
        numbers = fresh.select_dtypes("float").columns
        pd.testing.assert_frame_equal(back.drop(columns=numbers), fresh.drop(columns=numbers))
        # the TSV keeps 6 significant digits
        np.testing.assert_allclose(back[numbers], fresh[numbers], rtol=5e-6, atol=1e-12)


def _drawn(fig) -> list[dict]:
    """What a figure draws, panel by panel: titles, labels, lines, texts, images."""
    panels = []
    for ax in fig.axes:
        panels.append(
            {
                "title": ax.get_title(),
                "labels": (ax.get_xlabel(), ax.get_ylabel()),
                "xticks": [t.get_text() for t in ax.get_xticklabels()],
                "yticks": [t.get_text() for t in ax.get_yticklabels()],
                "lines": [
                    (line.get_gid(), to_hex(line.get_color()), line.get_xdata(), line.get_ydata())
                    for line in ax.lines
                ],
                "texts": [(t.get_text(), t.get_color()) for t in ax.texts],
                "images": [image.get_array() for image in ax.get_images()]
                + [c.get_array() for c in ax.collections if type(c).__name__ == "QuadMesh"],
            }
        )
    return panels


def _assert_same_drawing(from_files, fresh, name: str) -> None:
    got, expected = _drawn(from_files), _drawn(fresh)
    assert len(got) == len(expected), name
    assert from_files.get_suptitle() == fresh.get_suptitle()
    for a, b in zip(got, expected):
        for key in ("title", "labels", "xticks", "yticks", "texts"):
            assert a[key] == b[key], (name, a["title"], key)
        assert [line[:2] for line in a["lines"]] == [line[:2] for line in b["lines"]]
        for line_a, line_b in zip(a["lines"], b["lines"]):
            for x, y in zip(line_a[2:], line_b[2:]):
                np.testing.assert_allclose(
                    np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=5e-6, atol=1e-9
                )
        assert len(a["images"]) == len(b["images"])
        for x, y in zip(a["images"], b["images"]):
            np.testing.assert_array_equal(np.ma.getmaskarray(x), np.ma.getmaskarray(y))
            np.testing.assert_allclose(x.filled(0.0), y.filled(0.0), rtol=5e-6, atol=1e-9)


def test_figures_from_the_written_tables_draw_what_fresh_tables_draw(tables, stats_dir):
    options = {"analysis": ANALYSIS, "arm_colors": COLOURS, **TEXT}
    from_files = plots.draw_figures(plots.read_stat_tables(stats_dir), **options)
    fresh = plots.draw_figures(tables, **options)
    assert list(from_files) == list(plots.FIGURES)
    for name in plots.FIGURES:
        _assert_same_drawing(from_files[name], fresh[name], name)
    # Stars come only from the declared primary family (the mmrm table's ``primary:`` rows, see
    # test_effect_heatmap_marks_exactly_the_significant_cells); draw_figures does not pass that
    # table to the heatmap yet, so both drawings have none (compared above).


def test_unreadable_tables_are_one_line_config_errors(tmp_path, stats_dir):
    (tmp_path / "summary.tsv").write_text("population\tarm\ncd8\tNIVO\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"summary.tsv: not a summary table \(no column"):
        plots.read_stat_tables(tmp_path, ["summary"])
    with pytest.raises(ConfigError, match="cannot be read as the log2fc table"):
        plots.read_stat_tables(tmp_path, ["log2fc"])  # no such file
    broken = (stats_dir / "summary.tsv").read_text(encoding="utf-8").replace("\t1\t", "\tone\t")
    (tmp_path / "summary.tsv").write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be read as the summary table") as error:
        plots.read_stat_tables(tmp_path, ["summary"])
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown figure"):
        plots.write_figures(stats_dir, outputs={"volcano": tmp_path / "v.png"})


def test_plots_are_in_pl_and_computing_in_tl():
    assert {"plot_umap_population", "draw_sample_review"} <= set(plots.__all__)
    assert not {"plot_umap_population", "draw_sample_review"} & set(stats.__all__)
    assert {"subsample_events", "cluster_events", "cluster_gate_agreement"} <= set(stats.__all__)


CAPTIONS = [
    "workflow", "log2fc", "summary", "change_from_baseline", "arm_comparison", "mmrm",
    "response", "missing_baseline", "trajectories", "patient_lines", "effect_heatmap",
    "absolute_values", "spider", "waterfall", "sample_availability", "qc_overview",
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
    "name", ["summary", "change_from_baseline", "arm_comparison", "mmrm", "response"]
)
def test_table_captions_explain_the_estimate_columns(name):
    text = (REPORT / f"{name}.rst").read_text(encoding="utf-8")
    for column in ("ci_low", "ci_high"):
        assert f"``{column}``" in text or column in text
    if name != "summary":
        assert "q_value" in text and "Benjamini-Hochberg" in text
