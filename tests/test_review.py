"""The gating review: a page per sample, its own gates drawn, FlowJo's axes, drawn only when changed.

Simulated drifting blood files are gated as the workflow gates them (adaptive gates move from file
to file), their gate positions written as the gating batch writes them; the review's pages are
then drawn from those tables: each page must show the gates where the positions table put them
for that sample (not the template's), on axes ticked in decades of the raw scale at their
transformed positions; a page whose inputs did not change is not drawn again, and a changed
position redraws that sample alone.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from flowkit import transforms
from lxml import etree
from matplotlib.colors import to_hex
from matplotlib.patches import Polygon

from cytotrial.config import check_config
from cytotrial.errors import ConfigError
from cytotrial.gating import gate_samples, load_panel_gating, read_gate_positions
from cytotrial.pl import ReviewCanvas, ReviewHeader, draw_sample_review, review_panels
from cytotrial.pl._decades import (
    axis_scale,
    data_limits,
    decade_label,
    draw_ticks,
    tick_labels,
    tick_texts,
)
from cytotrial.preflight._figures import figure_problems, figure_warnings
from cytotrial.rules import (
    REVIEW_PAGE_COLUMNS,
    review_selection,
    run_gating_review,
    run_review_pages,
)
from cytotrial.sim import simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
PANELS = CONFIG["panels"]
ACQUISITION = check_config(copy.deepcopy(CONFIG))["qc"]["acquisition"]
READING = {"unreadable_compensation": "exclude", "acquisition": ACQUISITION}
SUPERSCRIPT = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def _raw(label: str) -> float:
    """The raw value a decade label names (``10³`` -> 1000, ``-10²`` -> -100, ``0`` -> 0)."""
    if label == "0":
        return 0.0
    sign = -1.0 if label.startswith("-") else 1.0
    return sign * 10.0 ** int(label.lstrip("-")[2:].translate(SUPERSCRIPT))


# ---------------------------------------------------------------------------------------------
# axes


@pytest.mark.parametrize(
    ("transform", "limits", "expected"),
    [
        (
            transforms.LogicleTransform(262144, 0.5, 4.5, 0),
            (-0.05, 1.0),
            ["0", "10³", "10⁴", "10⁵"],
        ),
        (transforms.LogTransform(262144, 4.5), (0.0, 1.0), ["10¹", "10²", "10³", "10⁴", "10⁵"]),
        (transforms.AsinhTransform(262144, 4.0, 0.0), (0.0, 1.0), ["0", "10³", "10⁴", "10⁵"]),
    ],
    ids=["logicle", "log", "asinh"],
)
def test_decade_ticks_sit_at_the_transformed_positions_of_raw_decades(transform, limits, expected):
    scale = axis_scale("CD3 (FITC-A)", transform, limits)
    labels = [text for _, text in scale.ticks]
    assert set(expected) <= set(labels)
    positions = np.array([position for position, _ in scale.ticks])
    raw = np.array([_raw(text) for text in labels])
    assert np.allclose(positions, transform.apply(raw), rtol=0, atol=1e-12)
    assert (
        np.all(np.diff(positions) > 0)
        and limits[0] <= positions.min() <= positions.max() <= limits[1]
    )
    # minor ticks at 2-9 x a decade, on the axis, never on a labelled tick
    assert scale.minor and all(limits[0] <= m <= limits[1] for m in scale.minor)
    assert not set(np.round(scale.minor, 9)) & set(np.round(positions, 9))


def test_decade_labels_are_flowjos():
    assert [decade_label(v) for v in (0, 100, 1000, 1e5, -1000)] == [
        "0", "10²", "10³", "10⁵", "-10³",
    ]  # fmt: skip


def test_a_zoomed_logicle_axis_shows_only_the_decades_in_view():
    logicle = transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    low, high = logicle.apply(np.array([-200.0, 5000.0]))
    labels = [text for _, text in axis_scale("x", logicle, (low, high)).ticks]
    assert "10³" in labels and "10⁴" not in labels and "10⁵" not in labels


def test_linear_scatter_axes_are_in_thousands():
    scale = axis_scale("FSC-A", None, (0.0, 250_000.0))
    labels = [text for _, text in scale.ticks]
    assert "0" in labels and "100K" in labels and "200K" in labels
    assert all(position == _k(text) for position, text in scale.ticks)


@pytest.mark.parametrize(
    ("transform", "limits"),
    [
        (transforms.LogicleTransform(262144, 0.5, 4.5, 0), (0.1, 1.0)),
        (None, (0.0, 250_000.0)),
    ],
    ids=["decades", "thousands"],
)
def test_axis_labels_sit_beside_their_tick_labels_without_touching_them(transform, limits):
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cytotrial.pl._layout import theme

    with mpl.rc_context(theme()):
        fig = Figure(figsize=(4, 3))
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0.3, 0.3, 0.6, 0.6))
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
        for which in "xy":
            axis_scale(f"CD3 (FITC-A) {which}", transform, limits).apply(ax, which)
        canvas.draw()
        renderer = canvas.get_renderer()
        for axis, side in ((ax.xaxis, "y"), (ax.yaxis, "x")):
            label = axis.label.get_window_extent(renderer)
            drawn = tick_labels(ax, "x" if side == "y" else "y")
            ticks = [t.get_window_extent(renderer) for t in drawn if t.get_text()]
            assert ticks and not any(label.overlaps(t) for t in ticks)
            # close beside them: within 12 points of the nearest tick label (72 points an inch)
            if side == "y":
                gap = min(t.y0 for t in ticks) - label.y1
            else:
                gap = min(t.x0 for t in ticks) - label.x1
            assert 0 < gap < 12 * fig.dpi / 72


def _unit_axes():
    """An Agg canvas (4 x 3 in, 200 dpi) and its one axes, 0 to 1 on both axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), dpi=200)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.3, 0.3, 0.6, 0.6))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return canvas, ax


@pytest.mark.parametrize("direction", ["out", "in", "inout"])
def test_ticks_drawn_as_a_few_artists_sit_where_matplotlibs_own_ticks_do(direction):
    """Tick marks and labels alike to matplotlib's tick objects, to the pixel, in the theme."""
    import matplotlib as mpl

    from cytotrial.pl._layout import theme

    ticks = [(0.1, "0"), (0.45, "50K"), (0.8, "100K")]
    extents = {}
    with mpl.rc_context({**theme(), "xtick.direction": direction, "ytick.direction": direction}):
        for how in ("matplotlib", "ours"):
            canvas, ax = _unit_axes()
            for which in "xy":
                if how == "ours":
                    draw_ticks(ax, which, ticks + [(1.5, "out of view")], minor=[0.2, 2.0])
                else:
                    axis = ax.xaxis if which == "x" else ax.yaxis
                    axis.set_ticks([t for t, _ in ticks], [text for _, text in ticks])
            canvas.draw()
            renderer = canvas.get_renderer()
            if how == "ours":
                found = {w: tick_labels(ax, w) for w in "xy"}
                marks = [c.get_segments() for c in ax.collections]
            else:
                found = {"x": ax.get_xticklabels(), "y": ax.get_yticklabels()}
            extents[how] = {
                w: [(t.get_text(), t.get_window_extent(renderer).extents) for t in found[w]]
                for w in "xy"
            }
            image = np.asarray(canvas.buffer_rgba())[..., :3].mean(axis=2)
            extents[how]["ink"] = image < 128
    for which in "xy":  # same labels, same boxes within a pixel, the one out of view left out
        ours, theirs = extents["ours"][which], extents["matplotlib"][which]
        assert [t for t, _ in ours] == [t for t, _ in theirs] == [t for _, t in ticks]
        assert all(np.abs(a - b).max() <= 1.0 for (_, a), (_, b) in zip(ours, theirs))
    # the tick marks: the same dark pixels but for the two minor ticks in view
    differ = extents["ours"]["ink"] != extents["matplotlib"]["ink"]
    assert differ.mean() < 0.002, differ.mean()
    assert len(marks) == 4 and all(len(segments) in (1, 3) for segments in marks)


@pytest.mark.parametrize("direction", ["out", "in"])
def test_a_power_of_ten_is_its_base_and_a_raised_exponent_where_one_label_would_be(direction):
    """``10⁴`` as ``10`` and a smaller ``4`` beside its top, read back whole.

    On the x axis the base is centred on the tick; on the y axis the label ends where a plain
    label ends, on its tick's line.
    """
    import matplotlib as mpl

    from cytotrial.pl._layout import theme

    ticks = [(0.1, "-10²"), (0.45, "0"), (0.8, "10⁴")]
    with mpl.rc_context({**theme(), "xtick.direction": direction, "ytick.direction": direction}):
        canvas, ax = _unit_axes()
        for which in "xy":
            draw_ticks(ax, which, ticks)
        canvas.draw()
        renderer = canvas.get_renderer()
    for which in "xy":
        assert tick_texts(ax, which) == [text for _, text in ticks]
        bases = {t.get_text(): t.get_window_extent(renderer) for t in tick_labels(ax, which)}
        exponents = [t for t in ax.texts if t.get_gid() == f"{which}tickexponent"]
        assert sorted(t.get_text() for t in exponents) == ["2", "4"]
        for exponent in exponents:
            box = exponent.get_window_extent(renderer)
            base = bases["-10" if exponent.get_text() == "2" else "10"]
            assert abs(box.x0 - base.x1) <= 1.0  # right after the base
            assert box.height < 0.85 * base.height  # smaller
            assert abs(box.y1 - base.y1) <= 2.0 and box.y0 > base.y0 + 0.25 * base.height  # raised
    tick = ax.transData.transform([(0.8, 0.8)])[0]
    ten = next(t for t in tick_labels(ax, "x") if t.get_text() == "10")
    centre = ten.get_window_extent(renderer)
    assert abs(centre.x0 + centre.width / 2 - tick[0]) <= 1.0
    plain = next(t for t in tick_labels(ax, "y") if t.get_text() == "0").get_window_extent(renderer)
    for exponent in (t for t in ax.texts if t.get_gid() == "ytickexponent"):
        assert abs(exponent.get_window_extent(renderer).x1 - plain.x1) <= 1.0
    ten = next(t for t in tick_labels(ax, "y") if t.get_text() == "10").get_window_extent(renderer)
    assert ten.y0 < tick[1] < ten.y1


def _saved_page(fig, path: Path) -> tuple[bytes, str]:
    import pypdfium2
    from matplotlib.backends.backend_pdf import PdfPages

    from cytotrial.pl import save_review_page

    with PdfPages(path) as document:
        save_review_page(document, fig)
    document = pypdfium2.PdfDocument(str(path))
    try:
        text = document[0].get_textpage().get_text_range()
    finally:
        document.close()
    return path.read_bytes(), text


@pytest.mark.parametrize("marker", ["CD3 · µ", "TCRγδ"])
def test_a_page_is_written_in_a_standard_pdf_font_unless_a_character_is_not_in_it(marker, tmp_path):
    """Helvetica, not embedded, for text of its character set; else DejaVu Sans, embedded.

    Either way a PDF reader finds every character of the page's text.
    """
    import logging

    import matplotlib as mpl
    from matplotlib.figure import Figure

    from cytotrial.pl._review import REVIEW_FONTS

    with mpl.rc_context(REVIEW_FONTS):
        fig = Figure(figsize=(4, 3))
        ax = fig.add_axes((0.3, 0.3, 0.6, 0.6))
        ax.set_xlabel(f"{marker} (FITC-A)")
        draw_ticks(ax, "x", [(0.2, "0"), (0.6, "10³"), (0.9, "10⁴")])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("matplotlib").addHandler(handler)
    try:
        data, text = _saved_page(fig, tmp_path / "page.pdf")
    finally:
        logging.getLogger("matplotlib").removeHandler(handler)
    standard = marker.isascii() or marker == "CD3 · µ"
    assert (b"/BaseFont /Helvetica" in data) == standard
    assert (b"DejaVu" in data) != standard
    assert (b"/Type3" in data) != standard  # glyphs embedded only when needed
    assert f"{marker} (FITC-A)" in text
    assert "103" in text.replace(" ", "") and "104" in text.replace(" ", "")
    assert not [r for r in records if r.levelno >= logging.WARNING], records


def _k(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("K") else float(text)


def test_axes_are_zoomed_to_the_data_and_keep_the_gate_in_view():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.3, 0.02, 5000), [0.0, 1.0]])  # two stray events
    low, high = data_limits(values)
    assert 0.2 < low < 0.25 and 0.35 < high < 0.4  # the events, not the transform's 0-1
    low, high = data_limits(values, extra=np.array([0.42]))
    assert high > 0.42  # a gate just beside the data shows
    assert data_limits(values, extra=np.array([50.0]))[1] < 1  # one far away does not squash it


# ---------------------------------------------------------------------------------------------
# a gated trial


def _blood_gating():
    spec = copy.deepcopy(CONFIG["strategies"]["blood"])
    spec["strategy"] = str(ROOT / spec["strategy"])
    return load_panel_gating("blood", spec, panels=PANELS), spec


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """Three drifting blood files and an unreadable one, gated as one gating batch."""
    out = tmp_path_factory.mktemp("review")
    files = {}
    for seed in (0, 1, 2):
        sample = simulate_sample(n_events=6000, drift=True, seed=seed)
        files[f"S{seed}"] = write_fcs(sample, out / "fcs" / f"S{seed}.fcs")
    files["BAD"] = out / "fcs" / "BAD.fcs"
    files["BAD"].write_bytes(b"not an FCS file")
    gating, spec = _blood_gating()
    table = pd.DataFrame(
        [{"sample_id": s, "panel": "blood", "fcs": str(p)} for s, p in files.items()]
    )
    result = gate_samples(table, {"blood": gating}, panels=PANELS, acquisition=ACQUISITION)
    gates = out / "batch_all.gates.tsv"
    result.gates.to_csv(gates, sep="\t", index=False, lineterminator="\n")
    batch = out / "batch_all.tsv"
    table["sha256"] = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in table["fcs"]]
    table.to_csv(batch, sep="\t", index=False)
    qc = result.qc[["sample_id", "status", "message"]].assign(
        panel="blood", batch=["B01", "B01", "B02", "B02"], qc_flags=result.qc["flags"]
    )
    qc.loc[qc["sample_id"] == "S1", ["status", "qc_flags"]] = ["flagged", "adaptive_fallback:cd3"]
    qc_path = out / "samples.tsv"
    qc.to_csv(qc_path, sep="\t", index=False)
    return {
        "out": out, "files": files, "gating": gating, "spec": spec, "gates": gates,
        "batch": batch, "qc": qc_path, "positions": read_gate_positions([gates]),
    }  # fmt: skip


def _page(trial, sample_id: str):
    positions = trial["positions"]
    header = ReviewHeader(sample_id, "blood", "B01", "ok")
    figures = draw_sample_review(
        str(trial["files"][sample_id]),
        trial["gating"],
        header,
        positions=positions[positions["sample_id"] == sample_id],
        panels=PANELS,
        reading=READING,
    )
    assert len(figures) == 1
    return figures[0]


def _panel(fig, gate: str):
    found = [ax for ax in fig.axes if ax.get_title(loc="left").startswith(f"{gate} ")]
    assert len(found) == 1, [ax.get_title(loc="left") for ax in fig.axes]
    return found[0]


def _gate_lines(ax) -> list[float]:
    """The x of each vertical gate line drawn as placed (solid; the template is dashed grey)."""
    return sorted(
        float(line.get_xdata()[0])
        for line in ax.lines
        if line.get_linestyle() == "-"
        and to_hex(line.get_color()) in ("#000000", "#d55e00")
        and line.get_xdata()[0] == line.get_xdata()[-1]
    )


def _position(trial, sample_id: str, gate: str, dimension: str) -> float:
    table = trial["positions"]
    row = table[(table["sample_id"] == sample_id) & (table["gate"] == gate)]
    return float(row.loc[row["dimension"] == dimension, "position"].iloc[0])


def _assert_laid_out(fig) -> None:
    """The heading above every panel; no two panels' titles, labels and ticks overlap.

    Every panel lies on the page.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    heading = min(t.get_window_extent(renderer).y0 for t in fig.texts)
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    page = fig.bbox
    for i, box in enumerate(boxes):
        assert box.y1 < heading
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
        assert not any(box.overlaps(other) for other in boxes[i + 1 :])


def test_each_page_draws_the_samples_own_thresholds(trial):
    template = 0.42
    drawn = {}
    for sample_id in ("S0", "S1", "S2"):
        ax = _panel(_page(trial, sample_id), "cd3")  # cd3 and cd3_neg share the CD3 panel
        expected = sorted(
            _position(trial, sample_id, gate, "FITC-A") for gate in ("cd3", "cd3_neg")
        )
        assert _gate_lines(ax) == expected
        drawn[sample_id] = expected
    assert len({tuple(v) for v in drawn.values()}) == 3  # the samples' gates differ
    assert any(template not in v for v in drawn.values())  # and are not the template's


def test_a_followed_scatter_gate_is_drawn_where_the_samples_peak_moved_it(trial):
    gate = next(g for g in trial["gating"].strategy.gates if g.name == "lymphocytes")
    template = np.asarray(gate.fk_gate.vertices, dtype=float)
    anchor = np.array(trial["spec"]["adaptive"]["lymphocytes"]["anchor"], dtype=float)
    for sample_id in ("S0", "S2"):
        peak = np.array([_position(trial, sample_id, "lymphocytes", d) for d in ("FSC-A", "SSC-A")])
        expected = template * (peak / anchor)  # move: scale
        ax = _panel(_page(trial, sample_id), "lymphocytes")
        drawn = [p for p in ax.patches if isinstance(p, Polygon) and p.get_linestyle() == "-"]
        assert len(drawn) == 1
        assert np.allclose(drawn[0].get_xy()[: len(expected)], expected, rtol=1e-12)
        assert not np.allclose(expected, template)


def test_the_page_shows_every_gate_with_its_percent_of_parent_and_the_heading(trial):
    fig = _page(trial, "S0")
    panels = review_panels(trial["gating"].strategy)
    assert len(fig.axes) == len(panels) == 10  # cd3/cd3_neg and cd4/cd8 share a panel
    drawn = {g.path for p in panels for g in p.gates}
    assert drawn == {g.path for g in trial["gating"].strategy.gates}
    title = _panel(fig, "cd3").get_title(loc="left")
    assert re.fullmatch(r"cd3 \d+\.\d% {2}· {2}cd3_neg \d+\.\d%\nof live \([\d,]+ events\)", title)
    texts = [t.get_text() for t in fig.texts]
    assert texts[0] == "S0  ·  panel blood  ·  batch B01  ·  ok"
    _assert_laid_out(fig)
    # logicle axes in decades, scatter in thousands
    labels = tick_texts(_panel(fig, "cd3"), "x")
    assert "10³" in labels
    assert any(t.get_text().endswith("K") for t in tick_labels(_panel(fig, "lymphocytes"), "x"))


def test_a_flowjo_sample_group_draws_each_samples_own_tree(trial, tmp_path):
    """The trial's gates exported as a workspace, S2's CD3 threshold dragged as in FlowJo."""
    from cytotrial.gating import export_panel_gates
    from test_flowjo_roundtrip import GROUP, flowkit_quiet, move_rectangle_min, sample_node

    files = {sid: trial["files"][sid] for sid in ("S0", "S1", "S2")}
    wsp = tmp_path / "gates" / "blood.wsp"
    export_panel_gates(
        trial["gating"], files, trial["positions"], workspace=wsp,
        gatingml_dir=tmp_path / "gates" / "blood", panels=PANELS, acquisition=ACQUISITION,
    )  # fmt: skip
    document = etree.parse(str(wsp))
    move_rectangle_min(sample_node(document.getroot(), "S2"), "cd3", "Comp-FITC-A", 2.0)
    document.write(str(wsp), xml_declaration=True, encoding="UTF-8")
    spec = {"strategy": str(wsp), "sample_group": GROUP, "populations": {"cd3": "cd3"}}
    with flowkit_quiet():
        gating = load_panel_gating("blood", spec, panels=PANELS)
        drawn = {}
        for sid in ("S0", "S2"):
            own = gating.for_file(files[sid]).strategy
            expected = sorted(
                float(d.min if g.name == "cd3" else d.max)
                for g in own.gates
                if g.name in ("cd3", "cd3_neg")
                for d in g.fk_gate.dimensions
            )
            header = ReviewHeader(sid, "blood", "B01", "ok")
            (fig,) = draw_sample_review(
                str(files[sid]), gating, header, panels=PANELS, reading=READING
            )
            drawn[sid] = _gate_lines(_panel(fig, "cd3"))
            assert drawn[sid] == expected
    assert drawn["S0"] != drawn["S2"]


def test_every_gate_kind_of_the_gatingml_suite_is_drawn_on_pages_of_16(external_data):
    suite = external_data / "gatingml2-compliance"
    gating = load_panel_gating("x", {"strategy": str(suite / "gml/gml_all_gates.xml")})
    header = ReviewHeader("data1", "x", "-", "ok")
    figures = draw_sample_review(str(suite / "data1.fcs"), gating, header)
    panels = review_panels(gating.strategy)
    assert [len(fig.axes) for fig in figures] == [16, len(panels) - 16]
    for fig in figures:
        _assert_laid_out(fig)
    # the quadrant gate's four quadrants share a panel, its dividers drawn where the gate has them
    ax = _panel(figures[1], "FL2P-FL4P")
    quadrant = next(g for g in gating.strategy.gates if g.kind == "quadrant").fk_gate
    dividers = sorted(float(v) for d in quadrant.dimensions[:1] for v in d.values)
    assert _gate_lines(ax) == dividers
    kinds = {type(p).__name__ for fig in figures for ax in fig.axes for p in ax.patches}
    assert {"Ellipse", "Polygon", "Rectangle"} <= kinds
    drawn = {g.kind for p in panels for g in p.gates}
    assert drawn == {"rectangle", "polygon", "ellipsoid", "quadrant"}  # Booleans have no axes


def _pdf_bytes(figures) -> bytes:
    import io

    from matplotlib.backends.backend_pdf import PdfPages

    out = io.BytesIO()
    with PdfPages(out, metadata={"CreationDate": None, "ModDate": None}) as document:
        for fig in figures:
            document.savefig(fig)
    return out.getvalue()


def test_pages_drawn_on_a_reused_canvas_are_the_bytes_of_pages_on_new_figures(trial, external_data):
    """A page drawn on a reused figure is the page a new figure gives, to the byte.

    One canvas draws page after page of different samples, layouts and flags; nothing of the page
    before is left (events, gates, ticks, titles, red spines of a flagged gate, heading lines).
    """
    positions = trial["positions"]
    suite = external_data / "gatingml2-compliance"
    suite_gating = load_panel_gating("x", {"strategy": str(suite / "gml/gml_all_gates.xml")})
    many = tuple(f"mfi_too_few_events:gate{i}:CD{i}" for i in range(30))  # a longer heading
    drawings = [
        (trial["gating"], "S1", ReviewHeader("S1", "blood", "B01", "flagged", ("adaptive_fallback:cd3",))),
        (trial["gating"], "S0", ReviewHeader("S0", "blood", "B01", "ok")),
        (suite_gating, "data1", ReviewHeader("data1", "x", "-", "ok")),  # two pages: 16 + rest
        (trial["gating"], "S2", ReviewHeader("S2", "blood", "B02", "flagged", many)),
        (trial["gating"], "S0", ReviewHeader("S0", "blood", "B01", "flagged", ("adaptive_fallback:cd8",))),
        (suite_gating, "data1", ReviewHeader("data1", "x", "-", "flagged", ("x",))),
        (trial["gating"], "S1", ReviewHeader("S1", "blood", "B01", "ok")),
    ]  # fmt: skip

    def draw(gating, sample, header, canvas):
        if sample == "data1":
            return draw_sample_review(str(suite / "data1.fcs"), gating, header, canvas=canvas)
        return draw_sample_review(
            str(trial["files"][sample]), gating, header,
            positions=positions[positions["sample_id"] == sample], panels=PANELS,
            reading=READING, canvas=canvas,
        )  # fmt: skip

    canvas = ReviewCanvas()
    reused = []
    for gating, sample, header in drawings:
        figures = draw(gating, sample, header, canvas)
        reused.append((len(figures), _pdf_bytes(figures)))
    assert [n for n, _ in reused] == [1, 1, 2, 1, 1, 2, 1]
    assert len({id(f) for f, _, _ in canvas._figures.values()}) < sum(n for n, _ in reused)
    for (gating, sample, header), (_, pdf) in zip(drawings, reused):
        assert pdf == _pdf_bytes(draw(gating, sample, header, None)), header


# ---------------------------------------------------------------------------------------------
# drawn once, then only where a page changed


def _run(
    trial, pages: Path, out: Path, *, gates=None, qc=None, choice="all", threads=1, batches=None
):
    return run_review_pages(
        batches=batches or [trial["batch"]],
        gates=gates if isinstance(gates, list) else [gates or trial["gates"]],
        qc=qc or trial["qc"],
        strategies={"blood": trial["spec"]},
        panels=PANELS,
        compensation="fcs",
        reading=READING,
        choice=choice,
        per_batch=0,
        threads=threads,
        out=out,
        pages=pages,
    )


def _files(pages: Path) -> dict[str, int]:
    """The cached pages (not the remembered tables of pages) and their modification times."""
    return {
        str(p.relative_to(pages)): p.stat().st_mtime_ns
        for p in pages.rglob("*")
        if p.is_file() and ".tables" not in p.parts
    }


def test_pages_are_drawn_once_and_again_only_for_the_sample_a_gate_moved(trial, tmp_path):
    pages = tmp_path / "pages"
    first = _run(trial, pages, tmp_path / "run1.tsv", threads=2)
    assert sorted(first.drawn) == ["BAD", "S0", "S1", "S2"] and first.kept == []
    table = pd.read_csv(tmp_path / "run1.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == REVIEW_PAGE_COLUMNS
    assert table.loc[table["sample_id"] == "S1", "png"].str.endswith(".png").all()  # flagged
    assert (table.loc[table["sample_id"] != "S1", "png"] == "").all()
    before = _files(pages)
    assert len(before) == 5  # four PDFs, one PNG

    again = _run(trial, pages, tmp_path / "run2.tsv")
    assert again.drawn == [] and sorted(again.kept) == ["BAD", "S0", "S1", "S2"]
    assert _files(pages) == before  # not even rewritten

    # one sample's CD3 threshold moves (as a new window would move it): that page alone
    moved = read_gate_positions([trial["gates"]])  # every float as the gating wrote it
    row = (moved["sample_id"] == "S2") & (moved["gate"] == "cd3")
    moved.loc[row, "position"] = moved.loc[row, "position"] + 0.01
    gates = tmp_path / "moved.gates.tsv"
    moved.to_csv(gates, sep="\t", index=False, lineterminator="\n")
    third = _run(trial, pages, tmp_path / "run3.tsv", gates=gates)
    assert third.drawn == ["S2"]
    after = _files(pages)
    unchanged = {k: v for k, v in before.items() if not k.startswith("S2/")}
    assert {k: after[k] for k in unchanged} == unchanged
    assert [k for k in after if k.startswith("S2/")] != [k for k in before if k.startswith("S2/")]
    assert len([k for k in after if k.startswith("S2/")]) == 1  # the old page is gone

    # a flag raised on another sample redraws that one
    qc = pd.read_csv(trial["qc"], sep="\t", keep_default_na=False, dtype=str)
    qc.loc[qc["sample_id"] == "S0", "qc_flags"] = "gate_outlier:live"
    qc_path = tmp_path / "samples.tsv"
    qc.to_csv(qc_path, sep="\t", index=False)
    assert _run(trial, pages, tmp_path / "run4.tsv", gates=gates, qc=qc_path).drawn == ["S0"]


def test_a_batch_whose_inputs_did_not_change_writes_its_table_without_loading_a_strategy(
    trial, tmp_path, monkeypatch
):
    """Another batch's gating rewrote the QC table: this batch's job writes its last table."""
    import cytotrial.gating

    pages, out = tmp_path / "pages", tmp_path / "batch.tsv"
    first = _run(trial, pages, out)
    table = out.read_bytes()
    loads = []
    real = cytotrial.gating.load_panel_gating
    monkeypatch.setattr(
        cytotrial.gating, "load_panel_gating", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    # the QC table written again, another batch's sample changed: the same table, nothing loaded
    qc = pd.read_csv(trial["qc"], sep="\t", keep_default_na=False, dtype=str)
    other = pd.concat([qc, qc.iloc[[0]].assign(sample_id="ELSEWHERE", batch="B09")])
    qc_path = tmp_path / "samples.tsv"
    other.to_csv(qc_path, sep="\t", index=False)
    again = _run(trial, pages, out, qc=qc_path)
    assert loads == [] and again.drawn == [] and sorted(again.kept) == sorted(first.drawn)
    assert out.read_bytes() == table
    # a flag raised on one of its samples: planned again, that page drawn
    other.loc[other["sample_id"] == "S0", "qc_flags"] = "gate_outlier:live"
    other.to_csv(qc_path, sep="\t", index=False)
    assert _run(trial, pages, out, qc=qc_path).drawn == ["S0"] and loads == [1]
    # a cached page removed: planned again and drawn again
    (pdf,) = (pages / "S2").glob("*.pdf")
    pdf.unlink()
    assert _run(trial, pages, out, qc=qc_path).drawn == ["S2"] and loads == [1, 1]
    # the gate positions change: planned again
    moved = read_gate_positions([trial["gates"]])
    row = (moved["sample_id"] == "S1") & (moved["gate"] == "cd3")
    moved.loc[row, "position"] = moved.loc[row, "position"] + 0.01
    gates = tmp_path / "moved.gates.tsv"
    moved.to_csv(gates, sep="\t", index=False, lineterminator="\n")
    assert _run(trial, pages, out, gates=gates, qc=qc_path).drawn == ["S1"]
    assert loads == [1, 1, 1]


def _split(trial, folder: Path) -> tuple[list[Path], list[Path]]:
    """The trial's batch as two batches (S0 and S1; S2 and BAD), each with its gate positions."""
    folder.mkdir()
    members = pd.read_csv(trial["batch"], sep="\t", dtype=str)
    positions = read_gate_positions([trial["gates"]])
    batches, gates = [], []
    for name, ids in (("batch_one", ["S0", "S1"]), ("batch_two", ["S2", "BAD"])):
        members[members["sample_id"].isin(ids)].to_csv(
            folder / f"{name}.tsv", sep="\t", index=False
        )
        positions[positions["sample_id"].isin(ids)].to_csv(
            folder / f"{name}.gates.tsv", sep="\t", index=False, lineterminator="\n"
        )
        batches.append(folder / f"{name}.tsv")
        gates.append(folder / f"{name}.gates.tsv")
    return batches, gates


def test_one_job_draws_every_batch_and_keeps_the_table_of_a_batch_that_did_not_change(
    trial, tmp_path, monkeypatch
):
    """Two batches in one job, their pages drawn by one pool.

    A change in one batch draws its page alone; the other batch's table is remembered without
    loading its strategy.
    """
    import cytotrial.gating

    batches, gates = _split(trial, tmp_path / "batches")
    pages, out = tmp_path / "pages", tmp_path / "pages.tsv"
    first = _run(trial, pages, out, batches=batches, gates=gates, threads=2)
    assert sorted(first.drawn) == ["BAD", "S0", "S1", "S2"] and first.kept == []
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    order = list(pd.read_csv(trial["qc"], sep="\t", dtype=str)["sample_id"])
    one, two = [[s for s in order if s in ids] for ids in (("S0", "S1"), ("S2", "BAD"))]
    assert list(table["sample_id"]) == one + two  # batch by batch, each in the QC table's order
    assert list(table.columns) == REVIEW_PAGE_COLUMNS
    # the same pages as the batches drawn as one
    whole = _run(trial, tmp_path / "whole", tmp_path / "whole.tsv")
    assert sorted(whole.drawn) == sorted(first.drawn)
    for sample_id in first.drawn:
        (a,) = (pages / sample_id).glob("*.pdf")
        (b,) = (tmp_path / "whole" / sample_id).glob("*.pdf")
        assert a.name == b.name and a.read_bytes() == b.read_bytes()

    loads = []
    real = cytotrial.gating.load_panel_gating
    monkeypatch.setattr(
        cytotrial.gating, "load_panel_gating", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    # batch two's S2 moves: its page alone is drawn, batch one's table is remembered
    moved = read_gate_positions([gates[1]])
    row = (moved["sample_id"] == "S2") & (moved["gate"] == "cd3")
    moved.loc[row, "position"] = moved.loc[row, "position"] + 0.01
    moved.to_csv(gates[1], sep="\t", index=False, lineterminator="\n")
    again = _run(trial, pages, out, batches=batches, gates=gates, threads=2)
    assert again.drawn == ["S2"] and sorted(again.kept) == ["BAD", "S0", "S1"]
    assert loads == [1]  # batch two's strategy; batch one's is not loaded
    # nothing changed: nothing loaded, nothing drawn, the same table
    before = out.read_bytes()
    assert _run(trial, pages, out, batches=batches, gates=gates).drawn == [] and loads == [1]
    assert out.read_bytes() == before
    with pytest.raises(ValueError, match="one gate positions table per batch"):
        _run(trial, pages, out, batches=batches, gates=gates[:1])


def test_a_page_drawn_twice_is_the_same_bytes(trial, tmp_path):
    for name in ("a", "b"):
        _run(trial, tmp_path / name, tmp_path / f"{name}.tsv", choice=["S1"])
    first, second = (sorted((tmp_path / name / "S1").iterdir()) for name in ("a", "b"))
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 2  # PDF, PNG
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))


def test_a_flagged_pages_png_is_its_pdf_page_as_matplotlib_draws_it(trial, tmp_path):
    """The PNG is the PDF page rasterised.

    A4 landscape at 100 dpi, 256 colours, and alike to matplotlib's own drawing of the sample's
    page (another sample's page is not).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    _run(trial, tmp_path / "pages", tmp_path / "pages.tsv", choice=["S1"])
    (png,) = (tmp_path / "pages" / "S1").glob("*.png")
    image = Image.open(png)
    assert image.mode == "P"  # 256 colours
    assert np.abs(np.subtract(image.size, (1169, 827))).max() <= 1  # 11.69 x 8.27 in at 100 dpi

    def grey(fig) -> np.ndarray:
        fig.set_dpi(100)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return coarse(Image.fromarray(np.asarray(canvas.buffer_rgba())))

    def coarse(picture) -> np.ndarray:  # where ink is, not how each glyph is rasterised
        return np.asarray(picture.convert("L").resize((234, 165), Image.Resampling.BOX), float)

    page = coarse(image)
    positions = trial["positions"]

    def drawn(header: ReviewHeader) -> np.ndarray:
        (fig,) = draw_sample_review(
            str(trial["files"][header.sample_id]), trial["gating"], header,
            positions=positions[positions["sample_id"] == header.sample_id],
            panels=PANELS, reading=READING,
        )  # fmt: skip
        return grey(fig)

    flags = ("adaptive_fallback:cd3",)
    own = np.abs(page - drawn(ReviewHeader("S1", "blood", "B01", "flagged", flags))).mean()
    other = np.abs(page - drawn(ReviewHeader("S2", "blood", "B02", "flagged", flags))).mean()
    assert own < 4.0 and other > 2 * own, (own, other)


def test_an_excluded_sample_gets_a_page_saying_why_and_the_others_are_drawn(trial, tmp_path):
    pages = tmp_path / "pages"
    run = _run(trial, pages, tmp_path / "pages.tsv", choice=["BAD", "S0"])
    assert sorted(run.drawn) == ["BAD", "S0"]
    from pypdf import PdfReader

    text = PdfReader(next((pages / "BAD").glob("*.pdf"))).pages[0].extract_text()
    assert "excluded" in text and "Not gated" in text


def test_the_review_assembles_a_pdf_per_panel_in_sheet_order_and_the_flagged_pngs(trial, tmp_path):
    from pypdf import PdfReader

    pages = tmp_path / "pages"
    _run(trial, pages, tmp_path / "batch_all.tsv")
    order = ["S2", "BAD", "S0", "S1"]
    sheet = pd.DataFrame(
        {
            "sample_id": order, "patient_id": ["P1", "P2", "P3", "P4"], "arm": "A",
            "visit": "C1D1", "cycle": 1, "day": 1, "compartment": "blood", "panel": "blood",
            "batch": "B01", "fcs": [f"fcs/{s}.fcs" for s in order],
        }
    )  # fmt: skip
    sheet.to_csv(tmp_path / "samples_sheet.tsv", sep="\t", index=False)
    out = tmp_path / "review"
    assembled = run_gating_review(
        sheet=tmp_path / "samples_sheet.tsv",
        tables=[tmp_path / "batch_all.tsv"],
        panels=["blood", "tumor"],
        choice="all",
        per_batch=0,
        pdfs={"blood": out / "blood.pdf", "tumor": out / "tumor.pdf"},
        flagged=out / "flagged",
        page=out / "review.html",
    )
    assert list(assembled["sample_id"]) == order
    blood = PdfReader(out / "blood.pdf")
    assert len(blood.pages) == 4
    headings = [re.search(r"(\S+)\s*·\s*panel blood", p.extract_text()) for p in blood.pages]
    assert [found.group(1) for found in headings] == order
    assert "No sample of panel tumor" in PdfReader(out / "tumor.pdf").pages[0].extract_text()
    assert sorted(p.name for p in (out / "flagged").iterdir()) == ["S1.png"]
    html = (out / "review.html").read_text()
    assert html.count("<img ") == 1 and "S1" in html

    # each page is its sample's cached page, as the cached PDF's own text reads
    table = pd.read_csv(tmp_path / "batch_all.tsv", sep="\t", keep_default_na=False)
    cached = table.set_index("sample_id")["pdf"]
    for sample_id, page in zip(order, blood.pages):
        assert page.extract_text() == PdfReader(cached[sample_id]).pages[0].extract_text()
    # assembled again: the same bytes (no random document ID)
    first = (out / "blood.pdf").read_bytes()
    (out / "blood.pdf").unlink()
    run_gating_review(
        sheet=tmp_path / "samples_sheet.tsv", tables=[tmp_path / "batch_all.tsv"],
        panels=["blood", "tumor"], choice="all", per_batch=0,
        pdfs={"blood": out / "blood.pdf", "tumor": out / "tumor.pdf"},
        flagged=out / "flagged", page=out / "review.html",
    )  # fmt: skip
    assert (out / "blood.pdf").read_bytes() == first
    assert b"/ID[<" in first or b"/ID [<" in first
    assert b"CreationDate" not in first  # not dated: the same pages, whenever assembled


# ---------------------------------------------------------------------------------------------
# which samples


def _qc() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["a1", "a2", "a3", "b1", "b2", "c1"],
            "panel": ["blood"] * 5 + ["tumor"],
            "batch": ["B1", "B1", "B1", "B2", "B2", "B1"],
            "status": ["flagged", "ok", "ok", "excluded", "flagged", "ok"],
        }
    )


def test_the_samples_drawn_are_those_the_config_chooses():
    qc = _qc()
    assert review_selection(qc, "all") == list(qc["sample_id"])
    assert review_selection(qc, "flagged") == ["a1", "b2"]
    assert review_selection(qc, ["c1", "a2"]) == ["a2", "c1"]  # in the table's order
    # references: the first ok sample of each panel and batch, else a flagged one
    assert review_selection(qc, "flagged", per_batch=1) == ["a1", "a2", "b2", "c1"]
    assert review_selection(qc, [], per_batch=2) == ["a2", "a3", "b2", "c1"]
    with pytest.raises(ConfigError, match=r"^config figures.gating_review: sample 'zz' is not"):
        review_selection(qc, ["a1", "zz"])


def test_a_listed_sample_missing_from_the_sheet_is_one_line_naming_key_and_id():
    sheet = pd.DataFrame({"sample_id": ["a1", "a2"]})
    config = {"samples": "samples.tsv", "figures": {"gating_review": ["a2", "a9", "x"]}}
    problems = figure_problems(config, sheet)
    assert problems == [
        f"config figures.gating_review: sample {sid!r} is not in the sample sheet samples.tsv; "
        "list sample ids of the sheet, or use all or flagged"
        for sid in ("a9", "x")
    ]
    assert figure_problems({**config, "figures": {"gating_review": "all"}}, sheet) == []
    retired = figure_warnings({"figures": {"gating_qc_per_batch": 1}})
    assert len(retired) == 1 and "figures.gating_qc_per_batch is retired" in retired[0]


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_each_drawing_process_runs_blas_on_one_thread():
    """Two drawing processes on two cores: BLAS threads would spin on each other's core."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from threadpoolctl import threadpool_limits

    from cytotrial.rules._review import _one_blas_thread

    with threadpool_limits(limits=2):  # as Snakemake sets it for a job of two threads
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            assert set(pool.submit(_blas_threads).result()) == {2}
        with ProcessPoolExecutor(1, mp_context=context, initializer=_one_blas_thread) as pool:
            assert set(pool.submit(_blas_threads).result()) == {1}
