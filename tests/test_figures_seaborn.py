"""The seaborn figures (cytotrial.pl) on small planted tables.

Every figure is drawn once (module fixtures) while a spy records the axes seaborn makes: each
panel must be one of them (the heatmap's panels are seaborn heatmaps). Figures are checked by what
they draw against the planted data (lines, points, bars, marks per panel), by their arm and
response colours, by the visits' clinical order (the trial here has C1D1, C1D15, C10D1: not the
alphabet's order), by their shape (at least as wide as tall, nothing outside the figure) and by
the files written (PNG and PDF, the same bytes twice).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as plt_image
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex

from cytotrial import pl as plots
from cytotrial import tl as stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import (
    ANALYSIS,
    ARM_A,
    ARM_B,
    FEATURES,
    LABELS,
    MARROW,
    RATIOS,
    RESPONDERS,
    patients_table,
    planted_trial,
)

COLOURS = {ARM_A: "#C8102E", ARM_B: "#1F77B4"}
TEXT = {"labels": LABELS, "ratios": RATIOS}
# clinical order differs from the alphabet's (which puts C10D1 first and C1D15 last)
RENAMED = {"C1D8": ("C1D15", 1, 15), "C2D1": ("C10D1", 10, 1)}
VISITS = ["C1D1", "C1D15", "C10D1"]
EARLY = "C1D15"
KEY = ["cd8", "cd4_treg"]


def _trial():
    adata = planted_trial()
    obs = adata.obs.copy()
    for old, (new, cycle, day) in RENAMED.items():
        mask = obs["visit"] == old
        obs.loc[mask, "visit"], obs.loc[mask, "cycle"], obs.loc[mask, "day"] = new, cycle, day
    # batches acquired in visit order (the baseline visits first)
    obs["batch"] = obs["visit"].map({"SCREEN": "B1", "C1D1": "B1", "C1D15": "B2", "C10D1": "B3"})
    adata.obs = obs
    return adata


def _patients() -> pd.DataFrame:
    table = patients_table()
    table["pfs_months"] = 2.0 + np.arange(len(table)) % 7  # varied, all events
    return table


def _sheet(adata) -> pd.DataFrame:
    columns = ["sample_id", "patient_id", "arm", "visit", "cycle", "day", "compartment"]
    return adata.obs[columns + ["panel", "batch", "fcs"]].reset_index(drop=True)


def _qc(adata) -> pd.DataFrame:
    """The sample QC table: 100,000 events, the counts of the gates, one sample flagged."""
    qc = adata.obs[["sample_id", "patient_id", "arm", "visit", "compartment", "panel", "batch"]]
    qc = qc.reset_index(drop=True).assign(status="ok", events_in=100000)
    for population in ("lymphocytes", "singlets", "live"):
        qc[f"n_{population}"] = adata[:, population].X.ravel()
    qc.loc[qc["sample_id"] == "P05_blood_C1D8", "status"] = "flagged"  # ids keep the old name
    return qc


# missing samples: one dropout at progression, one missed visit (as the statistics list them)
MISSING = pd.DataFrame(
    {
        "compartment": ["blood", "blood"],
        "visit": ["C10D1", "C10D1"],
        "arm": [ARM_A, ARM_B],
        "patient_id": ["P21", "P22"],
        "reason": ["dropout at progression", "missed sample"],
        "sample_id": ["", ""],
        "message": ["", ""],
    }
)


@pytest.fixture(scope="module")
def trial():
    return _trial()


@pytest.fixture(scope="module")
def tables(trial):
    return stats.compute_tables(
        trial, analysis=ANALYSIS, tables=["summary", "log2fc", "arm_comparison", "mmrm"]
    )


@pytest.fixture(scope="module")
def drawn(trial, tables):
    """Every figure, drawn while a spy records the axes seaborn made."""
    import seaborn as sns
    import seaborn.objects as so

    made: list = []
    heatmaps: list = []
    with pytest.MonkeyPatch.context() as patch:
        plot, heatmap = so.Plot.plot, sns.heatmap

        def spy_plot(self, *args, **kwargs):
            plotter = plot(self, *args, **kwargs)
            made.extend(sub["ax"] for sub in plotter._subplots)
            return plotter

        def spy_heatmap(*args, **kwargs):
            heatmaps.append(kwargs["ax"])
            return heatmap(*args, **kwargs)

        patch.setattr(so.Plot, "plot", spy_plot)
        patch.setattr(sns, "heatmap", spy_heatmap)
        figures = _draw_all(trial, tables)
    return figures, made, heatmaps


def _draw_all(trial, tables) -> dict:
    options = dict(arm_colors=COLOURS, reference_arm=ARM_B, populations=FEATURES, **TEXT)
    log2fc = tables["log2fc"]
    patients = _patients()
    survival = stats.survival_data(log2fc, patients, response_visit=EARLY)
    status = plots.availability_status(_sheet(trial), _qc(trial), MISSING)
    chain = plots.gate_chain(trial, "live")
    return {
        "trajectories": plots.plot_trajectories(tables["summary"], **options),
        "patient_lines": plots.plot_patient_lines(log2fc, **options),
        "effect_heatmap": plots.plot_effect_heatmap(
            tables["arm_comparison"], primary=tables["mmrm"], visits=VISITS, **TEXT
        ),
        "km_pfs": plots.plot_kaplan_meier(
            survival, population="cd8", compartment="blood", arm_colors=COLOURS, **TEXT
        ),
        "absolute_values": plots.plot_values(
            stats.measure_table(trial, analysis=ANALYSIS), **options
        ),
        "spider": plots.plot_spider(log2fc, patients, features=KEY, arms=list(COLOURS), **TEXT),
        "waterfall": plots.plot_waterfall(
            log2fc, patients, response_visit=EARLY, features=KEY, arms=list(COLOURS), **TEXT
        ),
        "sample_availability": plots.plot_sample_availability(
            status, _sheet(trial), arms=list(COLOURS)
        ),
        "qc_overview": plots.plot_qc_overview(
            plots.acquisition_table(_qc(trial), chain, labels=LABELS),
            plots.drift_table(trial, ["cd8", "cd4"]),
            arms=list(COLOURS),
            arm_colors=COLOURS,
            labels=LABELS,
        ),
    }


def _block(fig, heading: str):
    found = [sub for sub in fig.subfigs if sub.get_suptitle().split("  ")[0] == heading]
    assert len(found) == 1, [sub.get_suptitle() for sub in fig.subfigs]
    return found[0]


def _panel(target, *lines: str):
    """The axes whose title's lines start with ``lines``."""
    found = [ax for ax in target.axes if ax.get_title().split("\n")[: len(lines)] == list(lines)]
    assert len(found) == 1, [ax.get_title() for ax in target.axes]
    return found[0]


def _ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


# --------------------------------------------------------------------------------------------
# every figure
# --------------------------------------------------------------------------------------------
FIGURES = [
    "trajectories", "patient_lines", "effect_heatmap", "km_pfs", "absolute_values", "spider",
    "waterfall", "sample_availability", "qc_overview",
]  # fmt: skip


@pytest.mark.parametrize("name", FIGURES)
def test_every_panel_is_drawn_by_seaborn(drawn, name):
    figures, made, heatmaps = drawn
    fig = figures[name]
    if name == "effect_heatmap":
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert panels and all(any(ax is h for h in heatmaps) for ax in panels)
        assert all(type(ax.collections[0]).__name__ == "QuadMesh" for ax in panels)
    else:
        assert fig.axes and all(any(ax is m for m in made) for ax in fig.axes), name


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_landscape_and_nothing_is_cut_off(drawn, name):
    fig = drawn[0][name]
    width, height = fig.get_size_inches()
    assert width >= height, (name, width, height)
    assert width <= 30 and height <= 20  # readable at a screen's width, not a poster
    fig.draw_without_rendering()
    box = fig.get_tightbbox()  # inches: everything drawn, titles and legends included
    tolerance = 0.02
    assert box.x0 >= -tolerance and box.y0 >= -tolerance, (name, box)
    assert box.x1 <= width + tolerance and box.y1 <= height + tolerance, (name, box)
    for ax in fig.axes:
        title = ax.title.get_window_extent()
        assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1, (name, ax.get_title())
        assert title.y1 <= fig.bbox.y1, (name, ax.get_title())


def test_compartments_are_blocks_with_the_features_in_the_same_places(drawn):
    fig = drawn[0]["trajectories"]
    assert [sub.get_suptitle() for sub in fig.subfigs] == ["blood", MARROW, "tumor"]
    names = ["CD4+ T cells", "CD8+ T cells", "cd4 / treg", "Ki67 MFI of CD8+ T cells"]
    for sub in fig.subfigs:
        assert [ax.get_title().split("\n")[0] for ax in sub.axes] == names
        assert [ax.get_subplotspec().colspan.start for ax in sub.axes] == [0, 1, 2, 3]
    blood = _panel(_block(fig, "blood"), "CD8+ T cells")
    assert _ticks(blood) == VISITS
    assert _ticks(_panel(_block(fig, MARROW), "CD8+ T cells")) == ["SCREEN", "C10D1"]


def test_arm_colours_and_order_come_from_the_config(drawn, tables):
    figures = drawn[0]
    for name in ("trajectories", "patient_lines", "absolute_values", "qc_overview"):
        legend = figures[name].legends[0]
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts[:2] == [ARM_A, ARM_B], name
        colours = [to_hex(h.get_color()) for h in legend.legend_handles[:2]]
        assert colours == ["#c8102e", "#1f77b4"], name
    # the config's order: listed the other way round, drawn the other way round
    swapped = {ARM_B: "#000000", ARM_A: "#00ff00"}
    fig = plots.plot_trajectories(
        tables["summary"], arm_colors=swapped, populations=["cd8"], compartments=["tumor"]
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [ARM_B, ARM_A]
    lines = {line.get_gid(): to_hex(line.get_color()) for line in fig.axes[0].lines}
    assert lines[f"mean:{ARM_A}"] == "#00ff00" and lines[f"mean:{ARM_B}"] == "#000000"


# --------------------------------------------------------------------------------------------
# absolute values
# --------------------------------------------------------------------------------------------
def test_absolute_values_draw_every_sample_with_its_arm_median(drawn, trial):
    fig = drawn[0]["absolute_values"]
    values = stats.measure_table(trial, analysis=ANALYSIS)
    cd8 = values[(values["population"] == "cd8") & (values["compartment"] == "blood")]
    ax = _panel(_block(fig, "blood"), "CD8+ T cells", "cells/µL")
    assert _ticks(ax) == VISITS
    dots = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    points = np.vstack([c.get_offsets() for c in dots])
    assert len(points) == len(cd8) == 59  # 20 patients x 3 visits, P03 without its baseline
    # blood spans a decade (CD8 rises 4-fold and more): a log scale, labelled in values
    assert _block(fig, "blood").get_suptitle() == "blood  (log scale)"
    assert _block(fig, MARROW).get_suptitle() == MARROW
    assert [t.get_text() for t in ax.get_yticklabels()] == ["50", "100", "200", "500"]
    np.testing.assert_allclose(np.sort(points[:, 1]), np.sort(np.log10(cd8["value"])), rtol=1e-9)
    # each point in its arm's colour, beside its visit: the arm listed first in the config left
    arm_of = {to_hex(colour): arm for arm, colour in COLOURS.items()}
    arms = [arm_of[to_hex(c)] for dot in dots for c in dot.get_edgecolors()]
    visit = np.round(points[:, 0]).astype(int)
    side = np.sign(points[:, 0] - visit)
    assert [VISITS[v] for v in visit].count("C1D1") == 19
    for arm, expected in ((ARM_A, -1), (ARM_B, 1)):
        own = np.asarray(arms) == arm
        assert own.sum() == (cd8["arm"] == arm).sum() and np.all(side[own] == expected), arm
    # the median dash of each arm and visit is the median of its samples (not of their logs)
    dashes = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    segments = [seg for c in dashes for seg in c.get_segments() if len(seg) == 2]
    flat = [seg for seg in segments if seg[0][1] == seg[1][1]]
    levels = sorted(round(10 ** float(seg[0][1]), 6) for seg in flat)
    medians = cd8.groupby(["visit", "arm"])["value"].median().round(6)
    assert levels == sorted(medians)


# --------------------------------------------------------------------------------------------
# spider and waterfall
# --------------------------------------------------------------------------------------------
def _response_colour(patient: str) -> str:
    table = _patients().set_index("patient_id")["best_response"]
    return plots._layout.RESPONSE_COLOURS[table[patient]].lower()


def test_spider_draws_each_patient_in_the_colour_of_best_response(drawn, tables):
    fig = drawn[0]["spider"]
    blood = _block(fig, "blood")
    assert [ax.get_title() for ax in blood.axes] == [
        f"CD8+ T cells\n{ARM_A} (n=9)", f"CD8+ T cells\n{ARM_B} (n=10)",
        f"cd4 / treg\n{ARM_A} (n=9)", f"cd4 / treg\n{ARM_B} (n=10)",
    ]  # fmt: skip
    ax = blood.axes[0]
    assert _ticks(ax) == VISITS
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    log2fc = tables["log2fc"]
    own = log2fc[
        (log2fc["population"] == "cd8")
        & (log2fc["compartment"] == "blood")
        & (log2fc["arm"] == ARM_A)
    ]
    assert len(lines.get_segments()) == own["patient_id"].nunique() == 9
    expected = sorted(_response_colour(p) for p in set(own["patient_id"]))
    assert sorted(to_hex(c) for c in lines.get_colors()) == expected
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points.get_offsets()) == len(own)
    # the arms of a feature share one y scale
    assert blood.axes[0].get_ylim() == blood.axes[1].get_ylim()
    placeholder = plots.plot_spider(log2fc, None, features=KEY)
    assert "no patients table" in placeholder.axes[0].texts[0].get_text()


def test_waterfall_sorts_the_early_change_and_the_planted_responders_lead(drawn, tables):
    fig = drawn[0]["waterfall"]
    (sub,) = fig.subfigs  # only blood is sampled at the response visit
    assert sub.get_suptitle() == f"blood: early change at {EARLY}"
    ax = _panel(sub, "CD8+ T cells", f"{ARM_A} (n=9)")
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 9 and heights == sorted(heights, reverse=True)
    log2fc = tables["log2fc"]
    early = log2fc[
        (log2fc["population"] == "cd8")
        & (log2fc["compartment"] == "blood")
        & (log2fc["visit"] == EARLY)
        & (log2fc["arm"] == ARM_A)
    ].set_index("patient_id")["log2fc"]
    patients = _ticks(ax)
    np.testing.assert_allclose(heights, early[patients].to_numpy(), rtol=1e-12)
    # the combination arm's responders rise one more log2 unit: they lead, in responders' colours
    assert set(patients[:4]) == {p for p in RESPONDERS if p in early.index}
    for patient, bar in zip(patients, ax.patches):
        assert to_hex(bar.get_facecolor()) == _response_colour(patient)
    none = plots.plot_waterfall(log2fc, _patients(), response_visit="C9D9", features=KEY)
    assert none.axes[0].texts[0].get_text() == "no early change at C9D9"


# --------------------------------------------------------------------------------------------
# sample availability
# --------------------------------------------------------------------------------------------
def test_availability_status_of_every_scheduled_visit(trial):
    status = plots.availability_status(_sheet(trial), _qc(trial), MISSING)
    assert len(status) == trial.n_obs + len(MISSING)
    counts = status["status"].value_counts().to_dict()
    assert counts == {
        "analysed": trial.n_obs - 1,
        "analysed, flagged": 1,
        "after progression": 1,
        "missed": 1,
    }
    qc = _qc(trial)
    qc.loc[qc["sample_id"] == "P01_tumor_C1D1", "status"] = "excluded"
    again = plots.availability_status(_sheet(trial), qc, MISSING).set_index(
        ["patient_id", "compartment", "visit"]
    )
    assert again.loc[("P01", "tumor", "C1D1"), "status"] == "excluded at QC"


def test_availability_draws_a_mark_per_scheduled_visit(drawn, trial):
    fig = drawn[0]["sample_availability"]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{a}\n{c}" for a in (ARM_A, ARM_B) for c in ("blood", MARROW, "tumor")]
    blood = _panel(fig, ARM_A, "blood")
    assert _ticks(blood) == VISITS
    patients = [t.get_text() for t in blood.get_yticklabels()]
    assert sorted(patients) == [f"P{i:02d}" for i in range(1, 11)] + ["P21"]
    # the arm's other compartments share its lanes: the same ticks, named once, at the left
    for compartment in (MARROW, "tumor"):
        beside = _panel(fig, ARM_A, compartment)
        assert list(beside.get_yticks()) == list(blood.get_yticks())
        assert not any(t.get_visible() for t in beside.get_yticklabels())
    assert all(t.get_visible() for t in blood.get_yticklabels())
    assert blood.get_position().x0 < _panel(fig, ARM_A, "tumor").get_position().x0
    marks = sum(len(c.get_offsets()) for c in blood.collections if isinstance(c, PathCollection))
    assert marks == 10 * 3 - 1 + 1  # P03 has no blood baseline; P21 only its dropout
    # one lane per patient, drawn under the visits' marks
    (lanes,) = [c for c in blood.collections if isinstance(c, LineCollection)]
    assert len(lanes.get_segments()) == len(patients)
    dots = [c for c in blood.collections if isinstance(c, PathCollection)]
    assert all(lanes.get_zorder() < c.get_zorder() for c in dots)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        f"analysed ({trial.n_obs - 1})", "analysed, flagged (1)", "missed (1)",
        "after progression (1)",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# QC overview
# --------------------------------------------------------------------------------------------
def test_gate_chain_and_acquisition_percentages(trial):
    chain = plots.gate_chain(trial, "live")
    assert chain == [("lymphocytes", ""), ("singlets", "lymphocytes"), ("live", "singlets")]
    assert plots.gate_chain(trial, "absent") == []
    table = plots.acquisition_table(_qc(trial), chain, labels=LABELS)
    metrics = list(dict.fromkeys(table["metric"]))
    assert metrics == [
        "events acquired", "Lymphocytes, % of events", "Single cells, % of Lymphocytes",
        "Live cells, % of Single cells",
    ]  # fmt: skip
    live = table[table["metric"] == metrics[3]]["value"]
    np.testing.assert_allclose(live, 100 * 50000 / 55000)  # the planted counts
    assert len(table) == 4 * trial.n_obs


def test_batch_drift_flags_the_batch_median_outside_two_robust_sd():
    rng = np.random.default_rng(3)
    rows = []
    shifts = {f"B{i}": 0.0 for i in range(1, 8)} | {"B5": 0.08}  # one batch drifted
    for batch, shift in shifts.items():
        for value in 0.30 + shift + rng.normal(0, 0.004, 12):
            rows.append(dict(compartment="blood", population="cd8", batch=batch, value=value))
    drift = plots.batch_drift(pd.DataFrame(rows))
    assert list(drift["batch"]) == sorted(shifts)
    assert list(drift.loc[drift["outside"], "batch"]) == ["B5"]
    medians = pd.DataFrame(rows).groupby("batch")["value"].median()
    centre = np.median(medians)
    assert drift["centre"].iloc[0] == pytest.approx(centre)
    assert drift["sd"].iloc[0] == pytest.approx(1.4826 * np.median(np.abs(medians - centre)))
    # two batches: no band, nothing outside
    two = plots.batch_drift(pd.DataFrame(rows[:24]))
    assert two["sd"].isna().all() and not two["outside"].any()


def test_qc_overview_blocks_and_levey_jennings_charts(drawn):
    fig = drawn[0]["qc_overview"]
    headings = [sub.get_suptitle() for sub in fig.subfigs]
    assert headings[0] == "Acquisition by batch"
    assert headings[1:] == [
        f"{c}: key populations across batches (Levey-Jennings)" for c in ("blood", MARROW, "tumor")
    ]
    acquisition = fig.subfigs[0]
    assert acquisition.axes[0].get_title() == "events acquired"
    assert _ticks(acquisition.axes[0]) == ["B1", "B2", "B3"]  # acquisition order
    blood = _panel(fig.subfigs[1], "CD8+ T cells")
    assert _ticks(blood) == ["B1", "B2", "B3"]
    # three batches: a band (grey patch) and the centre line
    assert any(type(p).__name__ == "Polygon" for p in blood.patches)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def test_key_features_are_the_primary_family_in_analysed_order():
    plan = {"populations": ["cd4", "cd8", "treg", "nk"], "primary": {"populations": ["nk", "cd8"]}}
    assert plots.key_features(plan) == ["cd8", "nk"]
    assert plots.key_features({**plan, "primary": {"populations": []}}, limit=3) == [
        "cd4",
        "cd8",
        "treg",
    ]


def test_workflow_figures_are_written_as_png_and_pdf(tmp_path, trial):
    folder = tmp_path / "in"
    folder.mkdir()
    trial.write_h5ad(folder / "populations.h5ad")
    stats.write_stats(
        folder / "populations.h5ad", outputs={"log2fc": folder / "log2fc.tsv"}, analysis=ANALYSIS
    )
    _patients().to_csv(folder / "patients.tsv", sep="\t", index=False)
    _sheet(trial).to_csv(folder / "samples.tsv", sep="\t", index=False)
    _qc(trial).to_csv(folder / "qc.tsv", sep="\t", index=False)
    MISSING.to_csv(folder / "missing.tsv", sep="\t", index=False)
    config = dict(analysis={**ANALYSIS, "primary": {"populations": KEY}}, arms=COLOURS)
    written = plots.write_patient_figures(
        h5ad=folder / "populations.h5ad",
        log2fc=folder / "log2fc.tsv",
        patients=folder / "patients.tsv",
        outputs={name: tmp_path / "out" / f"{name}.png" for name in plots.PATIENT_FIGURES},
        frequencies_of=["live"],
        **config,
        **TEXT,
    )
    qc_options = dict(
        sheet=folder / "samples.tsv",
        qc=folder / "qc.tsv",
        missing=folder / "missing.tsv",
        h5ad=folder / "populations.h5ad",
        frequencies_of=["live"],
        labels=LABELS,
        **config,
    )
    first = plots.write_qc_figures(
        outputs={name: tmp_path / "out" / name for name in plots.QC_FIGURES}, **qc_options
    )
    written |= first
    names = [*plots.PATIENT_FIGURES, *plots.QC_FIGURES]
    assert sorted(written) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "pdf"))
    for name, path in written.items():
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF"), name
        assert len(data) > 10_000, name
        if name.endswith(".png"):  # nothing cut off: a blank margin on every side of the image
            pixels = plt_image.imread(path)[..., :3]
            edges = [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]
            assert all((edge > 0.9).all() for edge in edges), name
    second = plots.write_qc_figures(
        outputs={name: tmp_path / "again" / name for name in plots.QC_FIGURES}, **qc_options
    )
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
    # without a patients table: placeholders, still PNG and PDF
    bare = plots.write_patient_figures(
        h5ad=folder / "populations.h5ad",
        log2fc=folder / "log2fc.tsv",
        patients=None,
        outputs={"spider": tmp_path / "bare" / "spider"},
        **config,
    )
    assert sorted(bare) == ["spider.pdf", "spider.png"]


def test_unreadable_tables_are_one_line_errors(tmp_path, trial):
    from cytotrial.errors import ConfigError

    (tmp_path / "qc.tsv").write_text("sample_id\tstatus\ns1\tok\n", encoding="utf-8")
    _sheet(trial).to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    with pytest.raises(ConfigError, match=r"qc.tsv: not a sample QC table \(no column") as error:
        plots.write_qc_figures(
            sheet=tmp_path / "samples.tsv",
            qc=tmp_path / "qc.tsv",
            missing=tmp_path / "missing.tsv",
            h5ad=tmp_path / "none.h5ad",
            outputs={"sample_availability": tmp_path / "a"},
        )
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown figure"):
        plots.write_qc_figures(
            sheet=tmp_path / "samples.tsv",
            qc=tmp_path / "qc.tsv",
            missing=tmp_path / "missing.tsv",
            h5ad=tmp_path / "none.h5ad",
            outputs={"volcano": tmp_path / "v"},
        )


def test_saved_figures_keep_their_longest_labels_inside(tmp_path, tables):
    long = {**LABELS, "cd4": "CD25 MFI of Treg (CD4+CD25+CD127low)"}
    fig = plots.plot_effect_heatmap(tables["arm_comparison"], visits=VISITS, labels=long)
    png, _ = plots.save_figure(fig, tmp_path / "heatmap")
    pixels = plt_image.imread(png)[..., :3]
    for edge in (pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]):
        assert (edge > 0.9).all()


@pytest.mark.parametrize("limits", [(2.0, 4.5), (2.35, 2.6), (3.1, 3.2), (2.01, 2.02)])
def test_a_log_axis_has_labelled_ticks_however_narrow(limits):
    """Absolute values on a log scale: at least two labelled ticks, each at its value's log10."""
    from matplotlib.figure import Figure

    from cytotrial.pl._values import _log_ticks

    ax = Figure().subplots()
    ax.set_ylim(*limits)
    _log_ticks(ax)
    ticks = ax.get_yticks()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) >= 2
    assert all(limits[0] <= t <= limits[1] for t in ticks)
    np.testing.assert_allclose([np.log10(float(s)) for s in labels], ticks, atol=1e-3)


@pytest.mark.parametrize("ids", ["strings", "numbers"])
def test_lines_by_draws_the_lines_of_seaborn_lines_grouped_to_the_byte(tmp_path, ids):
    """The many-lines mark (spider, patient lines, availability) is seaborn's Lines with group=.

    Rows of a patient interleaved with others' and out of visit order, a missing value, several
    facets and colours: the PNG and the line collections are those of ``so.Lines(group=...)``.
    """
    import seaborn.objects as so
    from matplotlib.figure import Figure

    from cytotrial.pl._layout import LINE_CODES, lines_by, with_line_codes

    rng = np.random.default_rng(5)
    n = 60
    patient = [f"P{i:03d}" for i in rng.permutation(n)] if ids == "strings" else rng.permutation(n)
    frame = pd.DataFrame(
        {
            "patient_id": np.repeat(patient, 4),
            "visit": np.tile([2.0, 0.0, 3.0, 1.0], n),
            "y": rng.normal(size=4 * n),
            "arm": np.repeat(rng.choice(["A", "B", "C"], n), 4),
            "facet": np.repeat(rng.choice(["f1", "f2", "f3", "f4"], n), 4),
        }
    ).sample(frac=1.0, random_state=1, ignore_index=True)  # rows interleaved
    frame.loc[7, "y"] = np.nan

    def draw(mark, **variables):
        fig = Figure(figsize=(6, 4))
        plot = so.Plot(frame, x="visit", y="y", color="arm").add(mark, legend=False, **variables)
        plot.facet(col="facet", wrap=2).on(fig).plot()
        fig.savefig(tmp_path / "out.png", dpi=60)
        collections = [
            ([segment.tolist() for segment in c.get_segments()], to_hex(c.get_colors()[0]))
            for ax in fig.axes
            for c in ax.collections
        ]
        return (tmp_path / "out.png").read_bytes(), collections

    frame = with_line_codes(frame, "patient_id")
    grouped = draw(so.Lines(alpha=0.5, linewidth=1.0), group="patient_id")
    coded = draw(lines_by(alpha=0.5, linewidth=1.0), line=LINE_CODES)
    assert coded[1] == grouped[1]
    assert coded[0] == grouped[0]
    # one line per patient and facet, each in visit order
    lines = [segment for segments, _ in coded[1] for segment in segments]
    assert len(lines) == frame.dropna().groupby(["facet", "patient_id"]).ngroups
    assert all(np.all(np.diff(np.asarray(line)[:, 0]) > 0) for line in lines)
