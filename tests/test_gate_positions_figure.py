"""The adaptive gate positions figure (cytotrial.pl.plot_gate_positions) on a planted table.

Two panels with the demo's number of boundaries (15 each), samples in three batches at two sites,
positions kept from the template and outliers planted: the figure is checked for its blocks and
facets, what each facet draws (against the table), its legend, size and that nothing is cut off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytotrial import pl

BATCHES = {"B01": "S1", "B02": "S2", "B03": "S1"}  # batch -> site
MARKERS = {"CD3": ["FITC-A", "CD3 FITC"], "CD25": ["PE-A"]}
# 15 boundaries per panel, the first two as the demo names them; the rest named g<k>
FIRST = [("cd3", "FITC-A", "min", 0.42), ("treg", "PE-A", "min", 0.43)]
PANELS = {
    "blood": FIRST + [(f"g{k}", f"CH{k}-A", "max", 0.4) for k in range(13)],
    "tumor": FIRST + [(f"h{k}", f"CH{k}-A", "max", 0.4) for k in range(13)],
}
SAMPLES = {"blood": 12, "tumor": 6}  # per batch


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows, order = [], 0
    for batch, site in BATCHES.items():
        for panel, n in SAMPLES.items():
            for i in range(n):
                order += 1
                for gate, channel, bound, template in PANELS[panel]:
                    rows.append(
                        {"sample_id": f"{panel}_{batch}_{i}", "panel": panel, "batch": batch,
                         "site": site, "acquisition_order": order, "gate": gate,
                         "gate_path": f"a/{gate}", "dimension": channel, "bound": bound,
                         "template": template, "position": template + rng.normal(0, 0.01),
                         "lo": 0.3, "hi": 0.55, "status": "adapted", "outlier": False}
                    )  # fmt: skip
    table = pd.DataFrame(rows)
    treg = (table["panel"] == "blood") & (table["gate"] == "treg")
    kept = treg & table["sample_id"].isin(["blood_B02_0", "blood_B02_1"])
    table.loc[kept, ["status", "position"]] = ["fallback", 0.43]
    far = treg & (table["sample_id"] == "blood_B03_4")
    table.loc[far, ["position", "outlier"]] = [0.53, True]
    return table


@pytest.fixture(scope="module")
def drawn():
    """The figure, drawn while a spy records the axes seaborn drew points on."""
    import seaborn as sns

    seaborn_axes: list = []
    with pytest.MonkeyPatch.context() as patch:
        scatterplot = sns.scatterplot

        def spy(*args, **kwargs):
            seaborn_axes.append(kwargs["ax"])
            return scatterplot(*args, **kwargs)

        patch.setattr(sns, "scatterplot", spy)
        fig = pl.plot_gate_positions(_table(), markers=MARKERS)
    return fig, seaborn_axes


def _facet(block, title: str):
    found = [ax for ax in block.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in block.axes]
    return found[0]


def test_a_block_per_panel_and_a_facet_per_boundary_named_by_marker(drawn):
    fig, _ = drawn
    headings = [sub.get_suptitle() for sub in fig.subfigs]
    assert headings == [
        "blood: 36 samples · 15 adaptive boundaries · 2 positions kept from the template · "
        "1 outlier",
        "tumor: 18 samples · 15 adaptive boundaries · 0 positions kept from the template · "
        "0 outliers",
    ]
    for sub, (panel, boundaries) in zip(fig.subfigs, PANELS.items(), strict=True):
        titles = [ax.get_title() for ax in sub.axes]
        assert len(titles) == len(boundaries), panel
        assert titles[:2] == ["cd3 · CD3 FITC-A (min)", "treg · CD25 PE-A (min)"]
        assert titles[2] == "g0 · CH0-A (max)" if panel == "blood" else "h0 · CH0-A (max)"
        # the same number of columns in every block; the acquisition axis labelled at the foot
        columns = {ax.get_subplotspec().get_gridspec().ncols for ax in sub.axes}
        assert columns == {5}
        labelled = [ax for ax in sub.axes if ax.get_xlabel() == "acquisition order"]
        assert len(labelled) == 5


def test_each_facet_draws_the_table(drawn):
    fig, seaborn_axes = drawn
    table = _table()
    rows = table[(table["panel"] == "blood") & (table["gate"] == "treg")]
    ax = _facet(fig.subfigs[0], "treg · CD25 PE-A (min)")
    found = [c for c in ax.collections if c.get_gid() is None]  # seaborn's points
    points = np.concatenate([c.get_offsets() for c in found])
    adapted = rows[rows["status"] == "adapted"]
    assert sorted(map(tuple, points)) == sorted(
        zip(adapted["acquisition_order"].astype(float), adapted["position"])
    )
    kept = np.concatenate(
        [c.get_offsets() for c in ax.collections if c.get_gid() == "template_kept"]
    )
    fallback = rows[rows["status"] == "fallback"]
    assert sorted(kept[:, 0]) == sorted(fallback["acquisition_order"].astype(float))
    (ring,) = [c for c in ax.collections if c.get_gid() == "outlier"]
    assert ring.get_offsets().tolist() == [
        [float(rows.loc[rows["outlier"], "acquisition_order"].iloc[0]), 0.53]
    ]
    (template,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert set(template.get_ydata()) == {0.43}
    (band,) = [p for p in ax.patches if p.get_gid() == "allowed_range"]
    y0, y1 = band.get_extents().y0, band.get_extents().y1
    bottom, top = ax.transData.transform([(0, 0.3), (0, 0.55)])[:, 1]
    assert (y0, y1) == pytest.approx((bottom, top), abs=1.0)
    low, high = ax.get_ylim()
    assert low < 0.3 and high > 0.55  # the range's edges are seen
    # every facet's points drawn by seaborn; no outlier ring or hollow mark in the tumor panel
    assert all(any(ax is s for s in seaborn_axes) for ax in fig.axes)
    assert not [c for ax in fig.subfigs[1].axes for c in ax.collections if c.get_gid()]


def test_the_legend_names_every_batch_site_and_mark(drawn):
    fig, _ = drawn
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts() if t.get_text()]
    assert set(BATCHES) | set(BATCHES.values()) <= set(labels)
    for mark in (
        "position found",
        "template kept",
        "outlier",
        "template position",
        "allowed range",
    ):
        assert mark in labels, mark


def test_landscape_at_most_2400_px_and_nothing_cut_off(drawn, tmp_path):
    fig, _ = drawn
    png, pdf = pl.save_figure(fig, tmp_path / "gate_positions")
    from matplotlib import image

    height, width = image.imread(png).shape[:2]
    assert height <= width <= 2400, (width, height)
    _inside(fig)
    pixels = image.imread(png)[..., :3]
    for edge in (pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]):
        assert (edge > 0.9).all()  # a blank margin on every side
    assert pdf.stat().st_size > 10_000


def _inside(fig) -> None:
    """Every text, legend and axes of ``fig`` lies inside it (headings and titles included)."""
    fig.draw_without_rendering()
    box = fig.bbox
    texts = [*fig.texts, *(t for sub in fig.subfigs for t in sub.texts), *fig.legends]
    texts += [*fig.axes, *(ax.title for ax in fig.axes)]
    assert len(texts) >= 2 + len(fig.subfigs) + 2 * len(fig.axes)
    for artist in texts:
        extent = artist.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, artist
        assert box.y0 <= extent.y0 and extent.y1 <= box.y1, artist


def test_few_boundaries_keep_the_legend_and_headings_inside():
    small = _table()
    small = small[small["gate"] == "cd3"]
    fig = pl.plot_gate_positions(small, markers=MARKERS)
    assert [len(sub.axes) for sub in fig.subfigs] == [1, 1]
    _inside(fig)
    alone = pl.plot_gate_positions(small[small["panel"] == "blood"].drop(columns="site"))
    assert [ax.get_title() for ax in alone.axes] == ["cd3 · FITC-A (min)"]  # no marker named
    _inside(alone)
    (legend,) = alone.legends
    assert "site:" not in [t.get_text() for t in legend.get_texts()]  # one site: no markers


def test_written_twice_the_same_bytes_and_no_adaptive_gate_says_so(tmp_path):
    small = _table()
    small = small[small["gate"].isin(["cd3", "treg"])]
    first = pl.write_gate_positions(small, tmp_path / "a", markers=MARKERS)
    table = tmp_path / "positions.tsv"
    small.to_csv(table, sep="\t", index=False)
    second = pl.write_gate_positions(table, tmp_path / "b", markers=MARKERS)
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.suffix
    fig = pl.plot_gate_positions(_table().iloc[:0])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["no adaptive gates declared (strategies.<panel>.adaptive)"]
