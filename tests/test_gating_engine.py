"""The fast gating engine gives FlowKit's counts exactly; channel maps and missing channels.

The reference is ``flowkit.Session`` on the same file and strategy (``flowkit_session_counts``).
Files are small (20,000 simulated events, the 200,000-event FlowJo diamond file, the 13,367-event
GatingML suite file) so that FlowKit's slow path stays quick; the 1,000,000-event comparison is
the job of ``benchmark_gating`` (``cytotrial bench``).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from lxml import etree

from cytotrial.errors import MissingMarkerError
from cytotrial.gating import (
    COUNT_TABLE_COLUMNS,
    benchmark_gating,
    count_events,
    flowkit_session_counts,
    gate_events,
    transformed_events,
)
from cytotrial.gating._engine import Engine
from cytotrial.gating._transforms import raw_threshold
from cytotrial.io import load_strategy, read_fcs
from cytotrial.sim import simulate_sample, write_fcs

GML = "http://www.isac-net.org/std/Gating-ML/v2.0/"


@pytest.fixture(scope="module")
def blood_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "blood.fcs"
    return write_fcs(simulate_sample(panel="blood", n_events=20_000, seed=101), path)


@pytest.fixture(scope="module")
def tumor_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "tumor.fcs"
    return write_fcs(simulate_sample(panel="tumor", n_events=20_000, seed=202), path)


@pytest.fixture(scope="module")
def blood_strategy(project_root):
    return load_strategy(project_root / "resources" / "gating" / "blood.xml")


def _assert_same_as_flowkit(data, path, strategy, **kwargs):
    ours = count_events(data, strategy, **kwargs)
    reference = flowkit_session_counts(path, strategy)
    assert list(ours.columns) == COUNT_TABLE_COLUMNS
    mismatch = ours.compare(reference)
    assert mismatch.empty, f"{strategy.path.name} on {path.name}:\n{mismatch}"
    return ours


def test_default_blood_strategy_equals_flowkit(blood_file, blood_strategy):
    ours = _assert_same_as_flowkit(read_fcs(blood_file), blood_file, blood_strategy)
    counts = ours.set_index("gate_path")
    assert counts.loc["lymphocytes", "parent_count"] == 20_000
    assert counts.loc["lymphocytes/singlets/live/cd3/cd4/treg", "count"] > 0
    assert counts.loc["lymphocytes/singlets/live/cd3/cd8/cd8_ki67", "count"] > 0


def test_default_tumor_strategy_equals_flowkit(tumor_file, project_root):
    strategy = load_strategy(project_root / "resources" / "gating" / "tumor.xml")
    ours = _assert_same_as_flowkit(read_fcs(tumor_file), tumor_file, strategy)
    assert "lymphocytes/singlets/live/leukocytes" in set(ours["gate_path"])


@pytest.mark.parametrize(
    "workspace", ["simple_diamond_example_quad_gate.wsp", "test_data_diamond_biex_rect.wsp"]
)
def test_flowjo_diamond_equals_flowkit(external_data, workspace):
    folder = external_data / "flowjo-workspaces" / "simple_diamond_example"
    strategy = load_strategy(folder / workspace)
    path = folder / "test_data_diamond_01.fcs"
    _assert_same_as_flowkit(read_fcs(path), path, strategy)


def test_flowjo_log_logicle_axes_and_outside_gates_equal_flowkit(external_data, tmp_path):
    """The diamond workspace re-scaled: FlowJo logicle on one axis, FlowJo log on the other.

    Plus the same rectangle with eventsInside="0" (events outside) and a polygon on those axes.
    """
    folder = external_data / "flowjo-workspaces" / "simple_diamond_example"
    text = (folder / "test_data_diamond_biex_rect.wsp").read_text()
    biex_a = text[
        text.index("<transforms:biex") : text.index("</transforms:biex>")
        + len("</transforms:biex>")
    ]
    rest = text.index("<transforms:biex", text.index(biex_a) + len(biex_a))
    biex_b = text[rest : text.index("</transforms:biex>", rest) + len("</transforms:biex>")]
    logicle = (
        '<transforms:logicle transforms:length="256" transforms:T="262144" transforms:W="0.5" transforms:M="4.5" '
        'transforms:A="0"><data-type:parameter data-type:name="channel_A" /></transforms:logicle>'
    )
    log = '<transforms:log transforms:offset="1" transforms:decades="5.4"><data-type:parameter data-type:name="channel_B" /></transforms:log>'
    text = text.replace(biex_a, logicle).replace(biex_b, log)
    tree = etree.fromstring(text.encode())
    sample = next(el for el in tree.iter("SampleNode"))
    upper = next(el for el in sample.iter("Population") if el.get("name") == "upper_right")
    outside = copy.deepcopy(upper)
    outside.set("name", "outside")
    outside.find("Gate")[0].set("eventsInside", "0")
    sample.find("Subpopulations").append(outside)
    polygon = copy.deepcopy(upper)
    polygon.set("name", "polygon")
    gate = polygon.find("Gate")
    ns = gate[0].nsmap
    gating, datatype = ns["gating"], ns["data-type"]
    poly = etree.SubElement(gate, f"{{{gating}}}PolygonGate", nsmap=ns)
    for name in ("channel_A", "channel_B"):
        dim = etree.SubElement(poly, f"{{{gating}}}dimension")
        etree.SubElement(dim, f"{{{datatype}}}fcs-dimension").set(f"{{{datatype}}}name", name)
    for vx, vy in (
        (30000, 30000),
        (150000, 60000),
        (120000, 200000),
        (20000, 120000),
    ):  # raw values
        vertex = etree.SubElement(poly, f"{{{gating}}}vertex")
        for value in (vx, vy):
            etree.SubElement(vertex, f"{{{gating}}}coordinate").set(
                f"{{{datatype}}}value", str(value)
            )
    gate.remove(gate[0])
    sample.find("Subpopulations").append(polygon)
    path = tmp_path / "rescaled.wsp"
    path.write_bytes(etree.tostring(tree))
    strategy = load_strategy(path)
    kinds = {type(x).__name__ for x in strategy.gating_strategy.transformations.values()}
    assert kinds == {"LogicleTransform", "WSPLogTransform"}
    assert sorted(g.path for g in strategy.gates) == ["outside", "polygon", "upper_right"]
    fcs = folder / "test_data_diamond_01.fcs"
    ours = _assert_same_as_flowkit(read_fcs(fcs), fcs, strategy).set_index("gate_path")["count"]
    assert ours["outside"] == 200_000 - ours["upper_right"]
    assert 0 < ours["polygon"] < 200_000


@pytest.mark.parametrize(
    "gml",
    [
        "gml_all_gates.xml",
        "gml_ellipsoid3d_gate.xml",
        "gml_matrix_poly4_gate.xml",
        "gml_parent_quadrant_rect_gate.xml",
        "gml_matrix_transform_logicle_rect1_gate.xml",
    ],
)
def test_gatingml_files_equal_flowkit(external_data, gml):
    suite = external_data / "gatingml2-compliance"
    path = suite / "data1.fcs"
    _assert_same_as_flowkit(read_fcs(path), path, load_strategy(suite / "gml" / gml))


def test_memberships_nest_and_count(blood_file, blood_strategy):
    data = read_fcs(blood_file)
    memberships = gate_events(data, blood_strategy)
    table = count_events(data, blood_strategy).set_index("gate_path")
    assert list(memberships) == blood_strategy.paths
    for gate in blood_strategy.gates:
        member = memberships[gate.path]
        assert member.dtype == bool and member.shape == (data.n_events,)
        assert table.loc[gate.path, "count"] == member.sum()
        if gate.parent_path is not None:
            parent = memberships[gate.parent_path]
            assert not np.any(member & ~parent), gate.path
            assert table.loc[gate.path, "parent_count"] == parent.sum()


# --- thresholds and polygon edges through events: the guard bands and grid edge cells ----------

_TRANSFORMS = {
    "logicle": '<transforms:logicle transforms:T="262144" transforms:W="0.5" transforms:M="4.5" transforms:A="0"/>',
    "hyperlog": '<transforms:hyperlog transforms:T="262144" transforms:W="0.5" transforms:M="4.5" transforms:A="0"/>',
    "asinh": '<transforms:fasinh transforms:T="262144" transforms:M="4.5" transforms:A="0"/>',
    "linear": '<transforms:flin transforms:T="262144" transforms:A="1000"/>',
    "log": '<transforms:flog transforms:T="262144" transforms:M="4.5"/>',
}


def _dimension(channel, comp, xform, low=None, high=None):
    attrs = f'gating:compensation-ref="{comp}"'
    if xform:
        attrs += f' gating:transformation-ref="{xform}"'
    if low is not None:
        attrs += f' gating:min="{float(low)!r}"'
    if high is not None:
        attrs += f' gating:max="{float(high)!r}"'
    return f'<gating:dimension {attrs}><data-type:fcs-dimension data-type:name="{channel}"/></gating:dimension>'


def _document(body: str) -> str:
    transforms = "".join(
        f'<transforms:transformation transforms:id="{name}">{xml}</transforms:transformation>'
        for name, xml in _TRANSFORMS.items()
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><gating:Gating-ML xmlns:gating="{GML}gating" '
        f'xmlns:transforms="{GML}transformations" xmlns:data-type="{GML}datatypes">{transforms}{body}</gating:Gating-ML>'
    )


def _tricky_strategy(data, tmp_path):
    """Rectangles, quadrants and polygons whose boundaries pass exactly through events."""
    rng = np.random.default_rng(7)
    x_channel, y_channel = (
        "PerCP-Cy5-5-A",
        "APC-H7-A",
    )  # CD4 and CD8: both populated and spilled into
    body = []
    pool = np.arange(data.n_events)
    for name in [*_TRANSFORMS, "none"]:
        xform = None if name == "none" else name
        for comp in ("FCS", "uncompensated"):
            tag = f"{name}_{comp[:3]}"
            # values as FlowKit would compute them, taken from a probe strategy on the same axes
            probe = _document(
                f'<gating:RectangleGate gating:id="p">{_dimension(x_channel, comp, xform, low=-1e300)}'
                f"{_dimension(y_channel, comp, xform, low=-1e300)}</gating:RectangleGate>"
            )
            probe_path = tmp_path / f"probe_{tag}.xml"
            probe_path.write_text(probe)
            values = transformed_events(data, load_strategy(probe_path), [x_channel, y_channel])
            finite = np.flatnonzero(np.isfinite(values).all(axis=1))
            picks = values[rng.choice(finite if finite.size else pool, 8, replace=False)]
            xs, ys = np.sort(picks[:, 0]), np.sort(picks[:, 1])
            body.append(
                f'<gating:RectangleGate gating:id="rect_{tag}">{_dimension(x_channel, comp, xform, low=xs[1], high=xs[6])}'
                f"{_dimension(y_channel, comp, xform, low=ys[2])}</gating:RectangleGate>"
            )
            body.append(
                f'<gating:RectangleGate gating:id="range_{tag}" gating:parent_id="rect_{tag}">'
                f"{_dimension(y_channel, comp, xform, high=ys[5])}</gating:RectangleGate>"
            )
            xref = f' gating:transformation-ref="{xform}"' if xform else ""
            dividers = (
                f'<gating:divider gating:id="dx_{tag}" gating:compensation-ref="{comp}"{xref}>'
                f'<data-type:fcs-dimension data-type:name="{x_channel}"/><gating:value>{float(xs[3])!r}</gating:value></gating:divider>'
                f'<gating:divider gating:id="dy_{tag}" gating:compensation-ref="{comp}"{xref}>'
                f'<data-type:fcs-dimension data-type:name="{y_channel}"/><gating:value>{float(ys[4])!r}</gating:value></gating:divider>'
            )
            quadrants = "".join(
                f'<gating:Quadrant gating:id="{q}_{tag}"><gating:position gating:divider_ref="dx_{tag}" gating:location="{float(lx)!r}"/>'
                f'<gating:position gating:divider_ref="dy_{tag}" gating:location="{float(ly)!r}"/></gating:Quadrant>'
                for q, lx, ly in (
                    ("pp", xs[7] + 1, ys[7] + 1),
                    ("np", xs[0] - 1, ys[7] + 1),
                    ("nn", xs[0] - 1, ys[0] - 1),
                    ("pn", xs[7] + 1, ys[0] - 1),
                )
            )
            body.append(
                f'<gating:QuadrantGate gating:id="quad_{tag}">{dividers}{quadrants}</gating:QuadrantGate>'
            )
            # polygon vertices on events: its edges go through those events
            corners = picks[[0, 1, 2, 3, 4]]
            order = np.argsort(
                np.arctan2(
                    corners[:, 1] - corners[:, 1].mean(), corners[:, 0] - corners[:, 0].mean()
                )
            )
            vertices = "".join(
                f'<gating:vertex><gating:coordinate data-type:value="{float(vx)!r}"/><gating:coordinate data-type:value="{float(vy)!r}"/></gating:vertex>'
                for vx, vy in corners[order]
            )
            body.append(
                f'<gating:PolygonGate gating:id="poly_{tag}">{_dimension(x_channel, comp, xform)}'
                f"{_dimension(y_channel, comp, xform)}{vertices}</gating:PolygonGate>"
            )
            # a wide polygon (events on both sides of most edges), inverted vertex order
            lo, hi = values[finite].min(axis=0), values[finite].max(axis=0)
            mid = 0.5 * (lo + hi)
            wide = [(lo[0], mid[1]), (mid[0], hi[1]), (hi[0], mid[1]), (mid[0], picks[5, 1])]
            vertices = "".join(
                f'<gating:vertex><gating:coordinate data-type:value="{float(vx)!r}"/><gating:coordinate data-type:value="{float(vy)!r}"/></gating:vertex>'
                for vx, vy in wide[::-1]
            )
            body.append(
                f'<gating:PolygonGate gating:id="wide_{tag}">{_dimension(x_channel, comp, xform)}'
                f"{_dimension(y_channel, comp, xform)}{vertices}</gating:PolygonGate>"
            )
    path = tmp_path / "tricky.xml"
    path.write_text(_document("".join(body)))
    return load_strategy(path)


def test_boundaries_through_events_equal_flowkit(blood_file, tmp_path):
    data = read_fcs(blood_file)
    strategy = _tricky_strategy(data, tmp_path)
    ours = _assert_same_as_flowkit(data, blood_file, strategy)
    counts = ours.set_index("gate_path")["count"]
    # the boundaries are populated: these gates are neither empty nor everything
    assert (counts > 0).sum() >= 30
    assert (counts < data.n_events).all()


def test_raw_scatter_polygons_on_many_events_equal_flowkit(external_data, tmp_path):
    """Polygons on raw linear axes over 200,000 events (the grid path), vertices on events."""
    path = (
        external_data / "flowjo-workspaces" / "simple_diamond_example" / "test_data_diamond_01.fcs"
    )
    data = read_fcs(path)
    rng = np.random.default_rng(3)
    points = data.events[rng.choice(data.n_events, 6, replace=False)]
    lo, hi = data.events.min(axis=0), data.events.max(axis=0)
    shapes = {
        "on_events": points[np.argsort(np.arctan2(*(points - points.mean(axis=0)).T[::-1]))],
        "diamond_half": np.array([[lo[0], lo[1]], [hi[0], lo[1]], [0.5 * (lo[0] + hi[0]), hi[1]]]),
        "bow_tie": np.array(
            [[lo[0], lo[1]], [hi[0], hi[1]], [hi[0], lo[1]], [lo[0], hi[1]]]
        ),  # self-crossing
    }
    body = ""
    for name, vertices in shapes.items():
        body += (
            f'<gating:PolygonGate gating:id="{name}">{_dimension("channel_A", "uncompensated", None)}'
            f"{_dimension('channel_B', 'uncompensated', None)}"
            + "".join(
                f'<gating:vertex><gating:coordinate data-type:value="{float(x)!r}"/>'
                f'<gating:coordinate data-type:value="{float(y)!r}"/></gating:vertex>'
                for x, y in vertices
            )
            + "</gating:PolygonGate>"
        )
    strategy_path = tmp_path / "polygons.xml"
    strategy_path.write_text(_document(body))
    ours = _assert_same_as_flowkit(data, path, load_strategy(strategy_path)).set_index("gate_path")[
        "count"
    ]
    assert ((ours > 0) & (ours < data.n_events)).all()


def test_non_finite_values_gated_as_flowkit(blood_strategy, tmp_path):
    """NaN and infinite values (FlowUtils' logicle maps them to -1) take FlowKit's decision."""
    sample = simulate_sample(panel="blood", n_events=6000, seed=5)
    events = sample.events.copy()
    column = {c: i for i, c in enumerate(sample.channels)}
    events[10:30, column["BV510-A"]] = np.nan
    events[30:50, column["FITC-A"]] = np.inf
    events[50:60, column["APC-H7-A"]] = -np.inf
    events[60:70, column["SSC-A"]] = np.inf
    path = write_fcs(dataclasses.replace(sample, events=events), tmp_path / "odd.fcs")
    data = read_fcs(path)
    assert not np.isfinite(data.events).all()
    _assert_same_as_flowkit(data, path, blood_strategy)


def _strategy_from(gating_strategy, tmp_path):
    """A Strategy around a GatingStrategy built with FlowKit's API (formats without a file of ours)."""
    from cytotrial.io import Strategy
    from cytotrial.io._strategy import _gates_of

    return Strategy(
        path=tmp_path / "built.xml",
        kind="gatingml",
        sha256="",
        gating_strategy=gating_strategy,
        gates=_gates_of(gating_strategy),
    )


def test_spectral_and_ill_conditioned_matrices_equal_flowkit(blood_file, tmp_path):
    import flowkit as fk

    data = read_fcs(blood_file)
    detectors = [c for c in data.channels if c not in ("FSC-A", "FSC-H", "SSC-A", "Time")]
    n = len(detectors)  # every fluorescence detector of the simulated panel
    rng = np.random.default_rng(11)
    spectral = np.hstack([np.eye(n - 1), np.zeros((n - 1, 1))]) + rng.uniform(0, 0.05, (n - 1, n))
    nearly_singular = np.eye(n)
    nearly_singular[:, 1] = nearly_singular[:, 0] + 1e-8 * rng.uniform(
        0.5, 1.0, n
    )  # condition > 1e6
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spectral", fk.SpectralMatrix(spectral, detectors, detectors[: n - 1]))
    gs.add_comp_matrix("shaky", fk.Matrix(nearly_singular, detectors, detectors))
    gs.add_transform("logicle", fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0))
    for ref in ("spectral", "shaky"):
        gs.add_gate(
            fk.gates.RectangleGate(
                f"{ref}_cd3", [fk.Dimension("FITC-A", ref, "logicle", range_min=0.42)]
            ),
            ("root",),
        )
        vertices = [[0.3, 0.3], [0.9, 0.35], [0.8, 0.9], [0.35, 0.7]]
        dims = [
            fk.Dimension("PerCP-Cy5-5-A", ref, "logicle"),
            fk.Dimension("APC-H7-A", ref, "logicle"),
        ]
        gs.add_gate(fk.gates.PolygonGate(f"{ref}_t", dims, vertices), ("root", f"{ref}_cd3"))
    strategy = _strategy_from(gs, tmp_path)
    engine = Engine(data, strategy, None)
    assert engine.compensations.by_ref["spectral"].spectral
    assert engine.compensations.by_ref["shaky"].condition > 1e6
    ours = _assert_same_as_flowkit(data, blood_file, strategy)
    assert (ours["count"] > 0).all()


# --- channel names -------------------------------------------------------------------------


def _renamed(data, renames):
    spill = data.spill.rename(index=renames, columns=renames)
    return dataclasses.replace(
        data, channels=[renames.get(c, c) for c in data.channels], spill=spill
    )


def test_channel_map_renaming(blood_file, blood_strategy):
    data = read_fcs(blood_file)
    expected = count_events(data, blood_strategy)
    renames = {c: f"Comp-{c}" for c in data.channels if c not in ("Time",)}
    renames["FSC-A"] = "FSC-Area"
    renamed = _renamed(data, renames)
    channel_map = {dim: renames.get(dim, dim) for dim in blood_strategy.dimensions()}
    assert count_events(renamed, blood_strategy, channel_map=channel_map).equals(expected)
    # without the map every renamed channel is reported, in one line
    with pytest.raises(MissingMarkerError) as info:
        count_events(renamed, blood_strategy)
    message = str(info.value)
    assert "\n" not in message and blood_file.name in message
    for channel in blood_strategy.dimensions():
        assert channel in message


def test_dimension_found_by_marker_label(blood_file, blood_strategy):
    """As in FlowKit, a dimension name that is a channel's $PnS label finds that channel."""
    data = read_fcs(blood_file)
    expected = count_events(data, blood_strategy)
    markers = dict(zip(data.channels, data.markers))
    renames = {c: f"X{i}" for i, c in enumerate(data.channels) if markers[c]}  # PnN unusable
    renamed = _renamed(data, renames)
    channel_map = {dim: markers[dim] for dim in blood_strategy.dimensions() if markers.get(dim)}
    assert count_events(renamed, blood_strategy, channel_map=channel_map).equals(expected)


def test_missing_channels_error(blood_file, blood_strategy):
    data = read_fcs(blood_file)
    keep = [i for i, c in enumerate(data.channels) if c not in ("PE-A", "BV421-A")]
    reduced = dataclasses.replace(
        data,
        events=data.events[:, keep],
        channels=[data.channels[i] for i in keep],
        markers=[data.markers[i] for i in keep],
        spill=data.spill.drop(index=["PE-A", "BV421-A"], columns=["PE-A", "BV421-A"]),
    )
    with pytest.raises(MissingMarkerError) as info:
        gate_events(reduced, blood_strategy)
    message = str(info.value)
    assert "\n" not in message
    assert blood_file.name in message and "PE-A" in message and "BV421-A" in message


# --- values as FlowKit computes them --------------------------------------------------------


def test_transformed_events_equal_flowkit_values(blood_file, blood_strategy):
    import flowkit as fk

    data = read_fcs(blood_file)
    sample = fk.Sample(str(blood_file), sample_id="s")
    gs = copy.deepcopy(blood_strategy.gating_strategy)
    for gate in blood_strategy.gates:
        fk_gate = gs.get_gate(gate.name)
        reference = gs._preprocess_sample_events(sample, fk_gate)  # what FlowKit gates on
        ours = transformed_events(data, blood_strategy, list(gate.fk_gate.dimensions))
        assert np.array_equal(ours, reference.to_numpy()), gate.path
    subset = np.zeros(data.n_events, dtype=bool)
    subset[::7] = True
    part = transformed_events(data, blood_strategy, ["FITC-A", "SSC-A"], events=subset)
    full = transformed_events(data, blood_strategy, ["FITC-A", "SSC-A"])
    assert np.array_equal(part, full[subset])


def test_one_engine_across_calls_gives_each_calls_own_values(blood_file, blood_strategy):
    """The review keeps one engine per sample: what it caches never changes a value."""
    data = read_fcs(blood_file)
    engine = Engine(data, blood_strategy, None)
    rng = np.random.default_rng(5)
    for names in (["FITC-A", "SSC-A"], ["PE-A", "FITC-A"], ["FITC-A"]):
        subset = rng.random(data.n_events) < 0.3
        shared = transformed_events(data, blood_strategy, names, events=subset, engine=engine)
        own = transformed_events(data, blood_strategy, names, events=subset)
        assert np.array_equal(shared, own), names
    other = read_fcs(blood_file)
    other.events = other.events[:100]
    with pytest.raises(ValueError, match="another data set"):
        transformed_events(other, blood_strategy, ["FITC-A"], engine=engine)


def test_drawn_values_from_the_gating_engine_are_within_tolerance_of_flowkit(
    blood_file, blood_strategy
):
    """The review draws from the engine that gated the file, through a table of each transform."""
    import flowkit as fk

    from cytotrial.gating import _values

    data = read_fcs(blood_file)
    assert data.n_events >= _values._TABLE_FROM  # the table, not the exact transform, is used
    engine = Engine(data, blood_strategy, None)
    engine.run()
    sample = fk.Sample(str(blood_file), sample_id="s")
    gs = copy.deepcopy(blood_strategy.gating_strategy)
    tabled = 0
    for gate in blood_strategy.gates:
        dims = list(getattr(gate.fk_gate, "dimensions", None) or [])
        if not dims:
            continue
        reference = gs._preprocess_sample_events(sample, gs.get_gate(gate.name)).to_numpy()
        drawn = transformed_events(data, blood_strategy, dims, engine=engine, exact=False)
        assert drawn.shape == reference.shape
        assert np.max(np.abs(drawn - reference)) <= _values.PLOT_TOLERANCE, gate.path
        tabled += sum(
            type(blood_strategy.gating_strategy.transformations.get(d.transformation_ref)).__name__
            == "LogicleTransform"
            for d in dims
        )
    assert tabled  # logicle axes were among them


@pytest.mark.parametrize("kind", ["logicle", "hyperlog"])
def test_a_tabled_transform_is_within_tolerance_everywhere_and_exact_beyond_its_table(kind):
    import flowkit as fk

    from cytotrial.gating._transforms import apply_transform
    from cytotrial.gating._values import PLOT_TOLERANCE, tabled_transform

    if kind == "logicle":
        xform = fk.transforms.LogicleTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0)
    else:
        xform = fk.transforms.HyperlogTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0)
    rng = np.random.default_rng(3)
    raw = np.concatenate(
        [
            rng.normal(0, 300, 20_000),  # the linear region about zero
            10 ** rng.uniform(1, 5.4, 20_000),  # every decade up to the top of the scale
            -(10 ** rng.uniform(1, 3.5, 2_000)),
            [1e9, -1e9, np.nan, np.inf, -np.inf],  # beyond the table: the exact transform
        ]
    )
    drawn, exact = tabled_transform(xform, raw), apply_transform(xform, raw)
    both = np.isfinite(exact)
    assert np.max(np.abs(drawn[both] - exact[both])) <= PLOT_TOLERANCE
    assert np.array_equal(np.isnan(drawn), np.isnan(exact))
    assert np.array_equal(drawn[-5:], exact[-5:], equal_nan=True)


def test_fast_compensation_within_bound_and_exact_rows(blood_file, blood_strategy):
    from flowutils.compensate import compensate

    data = read_fcs(blood_file)
    engine = Engine(data, blood_strategy, None)
    engine.values.prepare()
    comp = engine.compensations.by_ref["FCS"]
    # FlowKit's compensation: solve over the file's fluorescence channels, in file order
    reference = compensate(data.events, comp.matrix, list(comp.columns))
    for (_ref, column), (values, bound) in engine.compensations.approx.items():
        error = np.max(np.abs(values - reference[:, column]))
        assert error <= bound, (column, error, bound)
        assert bound < 1e-3  # the guard band stays narrow (values reach ~1e5)
    rows = np.sort(np.random.default_rng(3).choice(data.n_events, 777, replace=False))
    exact = engine.compensations.exact_rows(comp, rows)
    assert np.array_equal(exact, reference[np.ix_(rows, comp.columns)])
    single = Engine(data, blood_strategy, None).compensations.exact_rows(comp, rows[:1])
    assert np.array_equal(single, reference[np.ix_(rows[:1], comp.columns)])


@pytest.mark.parametrize("kind", ["logicle", "hyperlog"])
def test_guard_band_of_thresholds(kind):
    """Outside the band, comparing raw values with the inverse-transformed cut decides like FlowKit."""
    from flowkit import transforms

    make = transforms.LogicleTransform if kind == "logicle" else transforms.HyperlogTransform
    rng = np.random.default_rng(0)
    for params in ((262144, 0.5, 4.5, 0), (10000, 1.0, 4.0, 0.5)):
        xform = make(*params)
        for threshold in (-0.05, 0.0, 0.111, 0.2, 0.42, 0.45, 0.9, 1.0):
            x0, band = raw_threshold(xform, threshold)
            offsets = (
                np.concatenate([rng.uniform(-1e4, 1e4, 2000), rng.uniform(-50, 50, 2000)]) * band
            )
            x = x0 + offsets
            transformed = xform.apply(x.reshape(-1, 1)).reshape(-1)
            outside = np.abs(x - x0) > band
            assert outside.sum() > 3500
            assert np.array_equal((transformed >= threshold)[outside], (x >= x0)[outside]), (
                params,
                threshold,
            )


def test_benchmark_reports_identical_counts(blood_file, blood_strategy):
    result = benchmark_gating(blood_file, blood_strategy, repeats=1)
    assert result["identical_counts"] is True
    assert result["events"] == 20_000 and result["gates"] == len(blood_strategy.gates)
    for key in ("read_fcs_s", "compensate_s", "cytotrial_s", "flowkit_s"):
        assert result[key] > 0
    assert result["speedup"] == pytest.approx(result["flowkit_s"] / result["cytotrial_s"])
