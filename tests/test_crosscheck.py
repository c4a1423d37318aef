"""The event-level cross-check: which samples and events it draws, its graph, clusters and figures.

Draws are checked against their contract (caps, balance over strata, a sample's draw its own,
the same twice), the neighbour graph against scanpy's, clusters against planted ones, the arms'
density difference against planted arms (an arm with more samples or more events per sample does
not weigh more), cluster markers against NumPy; the figures by what seaborn drew, their shape and
their files. The workflow's rule is run once on a small simulated trial: an analysis-only edit
re-runs nothing, an edit of its own settings re-runs it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from cytotrial import pl as plots
from cytotrial import tl as stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ARM_A, ARM_B, planned_jobs, run_snakemake

ROOT = Path(__file__).resolve().parents[1]
PANELS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["panels"]
COLOURS = {ARM_A: "#C8102E", ARM_B: "#1F77B4"}
# clinical order differs from the alphabet's (which puts C10D1 first and C1D15 last)
VISITS = [("C1D1", 1, 1), ("C1D15", 1, 15), ("C10D1", 10, 1)]


# --------------------------------------------------------------------------------------------
# which events: labels, samples, quotas, draws
# --------------------------------------------------------------------------------------------
def test_event_labels_are_the_deepest_population_holding_each_event():
    # events: 0 live only, 1 cd4, 2 treg (in cd4), 3 cd8, 4 activated cd8 (a Boolean under cd8)
    members = {
        "live": [1, 1, 1, 1, 1],
        "cd3": [0, 1, 1, 1, 1],
        "cd4": [0, 1, 1, 0, 0],
        "treg": [0, 0, 1, 0, 0],
        "cd8": [0, 0, 0, 1, 1],
        "cd8_act": [0, 0, 0, 0, 1],
    }
    masks = {name: np.asarray(m, dtype=bool) for name, m in members.items()}
    parents = {
        "live": "",
        "cd3": "live",
        "cd4": "cd3",
        "treg": "cd4",
        "cd8": "cd3",
        "cd8_act": "cd8",
    }
    labels = ["cd3", "cd4", "treg", "cd8", "cd8_act", "absent"]
    got = stats.event_labels(masks, parents, 5, labels=labels)
    assert list(got) == ["other", "cd4", "treg", "cd8", "cd8_act"]
    assert list(stats.event_labels(masks, parents, 5)) == ["live", "cd4", "treg", "cd8", "cd8_act"]
    assert list(stats.event_labels(masks, parents, 5, labels=["cd3"])) == ["other"] + ["cd3"] * 4


def _sheet(n_per_stratum: int) -> pd.DataFrame:
    rows = []
    for compartment in ("blood", "tumor"):
        for visit, cycle, day in VISITS:
            for arm in (ARM_A, ARM_B):
                for i in range(n_per_stratum):
                    rows.append(
                        {
                            "sample_id": f"{arm[:2]}{i:02d}_{visit}_{compartment}",
                            "arm": arm,
                            "visit": visit,
                            "cycle": cycle,
                            "day": day,
                            "compartment": compartment,
                        }
                    )
    return pd.DataFrame(rows)


def test_samples_beyond_the_cap_are_spread_over_compartments_visits_and_arms():
    sheet = _sheet(10)  # 12 strata of 10 samples
    chosen = stats.crosscheck_samples(sheet, max_samples=36, seed=0)
    assert len(chosen) == 36 and chosen["sample_id"].is_unique
    per_stratum = chosen.groupby(["compartment", "visit", "arm"]).size()
    assert len(per_stratum) == 12 and set(per_stratum) == {3}
    assert list(chosen["sample_id"]) == sorted(chosen["sample_id"])
    # the choice depends on the ids and the seed only: not on the sheet's row order
    shuffled = sheet.sample(frac=1.0, random_state=3)
    again = stats.crosscheck_samples(shuffled, max_samples=36, seed=0)
    assert list(again["sample_id"]) == list(chosen["sample_id"])
    other = stats.crosscheck_samples(sheet, max_samples=36, seed=1)
    assert set(other["sample_id"]) != set(chosen["sample_id"])
    # at most the cap: every sample when there are fewer
    assert len(stats.crosscheck_samples(sheet, max_samples=500, seed=0)) == len(sheet)
    odd = stats.crosscheck_samples(sheet, max_samples=25, seed=0)
    sizes = odd.groupby(["compartment", "visit", "arm"]).size()
    assert len(odd) == 25 and sizes.max() - sizes.min() <= 1


def test_event_quotas_stay_within_the_caps_and_even():
    quotas = stats.event_quotas(7, per_sample=300, max_events=1000)
    assert quotas.sum() == 1000 and quotas.max() - quotas.min() <= 1 and quotas.max() <= 300
    assert list(stats.event_quotas(3, per_sample=300, max_events=10_000)) == [300, 300, 300]
    thin = stats.event_quotas(400, per_sample=300, max_events=100)  # more samples than events
    assert thin.sum() == 100 and set(thin) == {0, 1}
    assert stats.event_quotas(0, per_sample=300, max_events=100).size == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three simulated blood files and one that is not FCS; the panel's gating."""
    from cytotrial.gating import load_panel_gating
    from cytotrial.sim import simulate_sample, write_fcs

    folder = tmp_path_factory.mktemp("fcs")
    paths = {
        f"s{i}": write_fcs(
            simulate_sample(panel="blood", n_events=3000 + 500 * i, seed=i), folder / f"s{i}.fcs"
        )
        for i in range(3)
    }
    (folder / "bad.fcs").write_bytes(b"not an FCS file")
    paths["bad"] = folder / "bad.fcs"
    names = ["lymphocytes", "singlets", "live", "cd3", "cd4", "treg", "cd8"]
    spec = {
        "strategy": str(ROOT / "resources/gating/blood.xml"),
        "populations": {name: name for name in names},
    }
    gatings = {"blood": load_panel_gating("blood", spec)}
    samples = pd.DataFrame(
        {
            "sample_id": list(paths),
            "panel": "blood",
            "fcs": [str(p) for p in paths.values()],
            "arm": [ARM_A, ARM_B, ARM_A, ARM_B],
            "visit": "C1D1",
            "cycle": 1,
            "day": 1,
            "compartment": "blood",
        }
    )
    return samples, gatings


def test_subsampled_events_are_labelled_with_the_populations_below_within(files):
    samples, gatings = files
    one = samples.iloc[:1]
    options = dict(per_sample=500, seed=0, within="live")
    events = stats.subsample_events(one, gatings, **options)
    assert events.n_obs == 500
    assert set(events.obs["population"]) == {"cd3", "cd4", "treg", "cd8", "other"}
    only = stats.subsample_events(one, gatings, labels=["cd8", "nk"], **options)
    assert set(only.obs["population"]) == {"cd8", "other"}
    # the same events: labels do not change the draw
    assert list(only.obs_names) == list(events.obs_names)


def test_the_draw_is_capped_per_sample_and_in_all_and_each_sample_draws_its_own(files):
    samples, gatings = files
    options = dict(seed=0, within="live")
    events = stats.subsample_events(samples, gatings, per_sample=400, max_events=900, **options)
    per_sample = events.obs["sample_id"].value_counts()
    # 900 shared by the 4 samples; the unreadable file's share is not drawn elsewhere
    assert events.n_obs == 675 and set(per_sample) == {225}
    assert events.uns["skipped_samples"] == ["bad"]
    assert {"arm", "visit", "cycle", "day", "compartment"} <= set(events.obs.columns)
    # markers by the channels' names (no panels:), the viability dye left out; with panels:, as
    # they name them. Never a file's own $PnS label (here CD3, CD4...: not shown either way).
    assert events.var_names.tolist()[:3] == ["FITC-A", "PerCP-Cy5-5-A", "APC-H7-A"]
    named = stats.subsample_events(
        samples, gatings, per_sample=400, max_events=900, panels=PANELS, **options
    )
    assert named.var_names.tolist()[:3] == ["CD3", "CD4", "CD8"]
    np.testing.assert_array_equal(named.X, events.X)
    # a sample's draw is its own: the same events whether or not the others are read
    alone = stats.subsample_events(samples.iloc[[1]], gatings, per_sample=225, **options)
    together = events[events.obs["sample_id"] == "s1"]
    assert list(alone.obs_names) == list(together.obs_names)
    np.testing.assert_array_equal(alone.X, together.X)
    # the same inputs give the same draw; another seed, another one
    again = stats.subsample_events(samples, gatings, per_sample=400, max_events=900, **options)
    assert list(again.obs_names) == list(events.obs_names)
    other = stats.subsample_events(
        samples, gatings, per_sample=400, max_events=900, seed=1, within="live"
    )
    assert list(other.obs_names) != list(events.obs_names)
    with pytest.raises(ValueError, match="no sample could be read"):
        stats.subsample_events(samples.iloc[[3]], gatings, per_sample=10, **options)


# --------------------------------------------------------------------------------------------
# graph, embedding, clusters
# --------------------------------------------------------------------------------------------
def _blobs(n_per_blob: int = 400, seed: int = 0) -> ad.AnnData:
    """Three separated clouds of 4 markers, each its own gated population."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 6, 0], [0, 6, 0, 6]], dtype=float)
    X = np.concatenate([c + rng.normal(size=(n_per_blob, 4)) for c in centres])
    population = np.repeat(["a", "b", "c"], n_per_blob)
    obs = pd.DataFrame({"population": pd.Categorical(population)})
    obs.index = [f"e{i}" for i in range(len(obs))]
    return ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=list("PQRS")))


def test_the_neighbour_graph_is_the_one_scanpy_makes():
    import scanpy as sc

    ours, theirs = _blobs(200), _blobs(200)
    stats.umap_graph(ours, n_neighbors=15)
    sc.pp.neighbors(theirs, n_neighbors=15, use_rep="X", transformer="sklearn")
    for key in ("connectivities", "distances"):
        difference = abs(ours.obsp[key] - theirs.obsp[key])
        assert difference.max() < 1e-4, key
        assert ours.obsp[key].nnz == theirs.obsp[key].nnz
    assert ours.uns["neighbors"]["params"]["n_neighbors"] == 15


def test_clusters_find_planted_populations_and_are_the_same_twice():
    first = stats.cluster_events(_blobs(), resolution=0.3, seed=0, n_epochs=50)
    ari, table = stats.cluster_gate_agreement(first)
    assert ari > 0.95
    assert table.groupby("cluster")["fraction_of_cluster"].max().min() > 0.95
    assert first.obsm["X_umap"].shape == (1200, 2)
    np.testing.assert_array_equal(first.layers["gated_scale"], _blobs().X)  # as gated, kept
    second = stats.cluster_events(_blobs(), resolution=0.3, seed=0, n_epochs=50)
    np.testing.assert_array_equal(first.obsm["X_umap"], second.obsm["X_umap"])
    assert list(first.obs["leiden"]) == list(second.obs["leiden"])
    # the clusters and the stored graph do not depend on the embedding's epochs (UMAP prunes
    # the graph it is given)
    shorter = stats.cluster_events(_blobs(), resolution=0.3, seed=0, n_epochs=10)
    assert list(shorter.obs["leiden"]) == list(first.obs["leiden"])
    graph = ad.AnnData(X=first.X.copy())
    stats.umap_graph(graph)
    assert abs(first.obsp["connectivities"] - graph.obsp["connectivities"]).max() == 0


_EMBED_IN_A_FRESH_PROCESS = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_crosscheck import _blobs
from cytotrial import tl
start = time.perf_counter()
events = tl.cluster_events(_blobs(100), resolution=0.3, seed=0, n_epochs=20)
np.save(sys.argv[2], events.obsm["X_umap"])
"""


def test_umap_compiles_its_layout_once_and_embeds_the_same_from_the_cache(tmp_path):
    """UMAP's layout, compiled in a first process, is loaded from numba's cache in the next."""
    import os
    import subprocess

    cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    here = str(Path(__file__).resolve().parent)
    for name in ("first", "second"):
        subprocess.run(
            [sys.executable, "-c", _EMBED_IN_A_FRESH_PROCESS, here, str(tmp_path / name)],
            env=env,
            check=True,
        )
        if name == "first":  # the compiled layout functions were written to the cache
            written = {p.name for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")}
            # (umap caches a few small helpers itself; its layout epoch is ours to cache)
            epoch = "layouts._optimize_layout_euclidean_single_epoch"
            assert any(n.startswith(epoch) and n.endswith(".nbc") for n in written), written
            stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.nbc")}
    # the second process loaded them: nothing compiled, nothing written again
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.nbc")} == stamps
    first, second = np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy")
    np.testing.assert_array_equal(first, second)
    ours = stats.cluster_events(_blobs(100), resolution=0.3, seed=0, n_epochs=20)
    np.testing.assert_array_equal(ours.obsm["X_umap"], first)


# --------------------------------------------------------------------------------------------
# what the figures draw: density difference, cluster markers
# --------------------------------------------------------------------------------------------
def _embedded(rows: list[tuple[str, str, str, float, int]], seed: int = 0) -> ad.AnnData:
    """Events of (sample, arm, visit, x centre, n): each sample's events around its x centre."""
    rng = np.random.default_rng(seed)
    cycle_day = {visit: (cycle, day) for visit, cycle, day in VISITS}
    obs, coords = [], []
    for sample, arm, visit, x, n in rows:
        cycle, day = cycle_day[visit]
        obs += [dict(sample_id=sample, arm=arm, visit=visit, cycle=cycle, day=day)] * n
        coords.append(np.column_stack([x + rng.normal(0, 0.3, n), rng.normal(0, 0.3, n)]))
    frame = pd.DataFrame(obs).assign(compartment="blood", population="p", leiden="0")
    frame.index = [f"e{i}" for i in range(len(frame))]
    events = ad.AnnData(X=np.zeros((len(frame), 1), dtype=np.float32), obs=frame)
    # two corners fix the embedding's extent: -5..5 on both axes
    events.obsm["X_umap"] = np.concatenate(coords)
    events.obsm["X_umap"][:2] = [[-5, -5], [5, 5]]
    return events


def _side_totals(panel) -> tuple[float, float]:
    """The difference summed over the left and the right half of the grid."""
    half = panel.difference.shape[1] // 2
    return float(panel.difference[:, :half].sum()), float(panel.difference[:, half:].sum())


def test_density_difference_compares_arms_within_each_visit_in_clinical_order():
    rows = [
        ("a1", ARM_A, "C10D1", -2.0, 200),  # the arm on the left at C10D1, on the right before
        ("b1", ARM_B, "C10D1", 2.0, 200),
        ("a2", ARM_A, "C1D15", 2.0, 200),
        ("b2", ARM_B, "C1D15", -2.0, 200),
        ("a3", ARM_A, "C1D1", 2.0, 200),
    ]
    extent, panels = stats.arm_density_differences(_embedded(rows), arms=[ARM_A, ARM_B])
    assert extent[0] < -5 < 5 < extent[1]
    assert [p.visit for p in panels] == ["C1D1", "C1D15", "C10D1"]
    assert {(p.arm, p.reference) for p in panels} == {(ARM_A, ARM_B)}  # the last arm listed
    baseline, early, late = panels
    assert baseline.difference is None and (baseline.n_arm, baseline.n_reference) == (1, 0)
    left, right = _side_totals(late)
    assert left > 40 and right < -40  # percent of a sample's events
    left, right = _side_totals(early)
    assert left < -40 and right > 40
    assert late.occupied.sum() > 0
    # the reference is the last arm of the config's order
    _, swapped = stats.arm_density_differences(_embedded(rows), arms=[ARM_B, ARM_A])
    assert (swapped[-1].arm, swapped[-1].reference) == (ARM_B, ARM_A)
    np.testing.assert_allclose(swapped[-1].difference, -late.difference)


def test_an_arm_with_more_samples_or_events_does_not_weigh_more():
    # the same distribution in both arms: three samples and one, of 100 and 900 events
    rows = [
        ("a1", ARM_A, "C1D1", -2.0, 100),
        ("a2", ARM_A, "C1D1", 2.0, 100),
        ("a3", ARM_A, "C1D1", -2.0, 900),
        ("a4", ARM_A, "C1D1", 2.0, 900),
        ("b1", ARM_B, "C1D1", -2.0, 50),
        ("b2", ARM_B, "C1D1", 2.0, 50),
    ]
    _, (panel,) = stats.arm_density_differences(_embedded(rows), arms=[ARM_A, ARM_B])
    assert (panel.n_arm, panel.n_reference) == (4, 2)
    left, right = _side_totals(panel)
    assert abs(left) < 3 and abs(right) < 3  # pooled events would give 20 and more


def test_one_arm_has_nothing_to_compare_and_says_so():
    rows = [("a1", ARM_A, "C1D1", -2.0, 100), ("a2", ARM_A, "C1D15", 2.0, 100)]
    events = _embedded(rows)
    extent, panels = stats.arm_density_differences(events, arms=list(COLOURS))
    assert panels == [] and len(extent) == 4
    fig = plots.plot_density_difference(extent, panels, arm_colors=COLOURS)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no events to compare"]


def test_cluster_markers_are_medians_of_the_scaled_values():
    events = _blobs(50)
    events.obs["leiden"] = pd.Categorical(np.repeat(["1", "0", "2"], 50))
    population = np.asarray(events.obs["population"]).astype(object)
    population[:10] = "b"  # cluster 1: 40 a, 10 b
    events.obs["population"] = pd.Categorical(population)
    medians, summary = stats.cluster_markers(events)
    assert list(medians.index) == ["0", "1", "2"] and list(medians.columns) == list("PQRS")
    np.testing.assert_allclose(medians.loc["1"], np.median(events.X[:50], axis=0), rtol=1e-6)
    first = summary.set_index("cluster").loc["1"]
    assert first["events"] == 50 and first["population"] == "a" and first["fraction"] == 0.8


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _clustered_trial() -> ad.AnnData:
    """Two compartments, three visits, two arms: blobs, one arm richer in one of them."""
    rng = np.random.default_rng(5)
    frames, values = [], []
    centres = np.array([[0, 0, 0], [5, 0, 5], [0, 5, 0]], dtype=float)
    for compartment in ("blood", "tumor"):
        for visit, cycle, day in VISITS:
            for arm in (ARM_A, ARM_B):
                for p in range(3):
                    weights = (
                        [0.6, 0.3, 0.1] if arm == ARM_B or visit == "C1D1" else [0.3, 0.3, 0.4]
                    )
                    kind = rng.choice(3, size=60, p=weights)
                    values.append(centres[kind] + rng.normal(0, 0.5, (60, 3)))
                    frames.append(
                        pd.DataFrame(
                            {
                                "sample_id": f"{compartment}_{arm}_{visit}_{p}",
                                "arm": arm,
                                "visit": visit,
                                "cycle": cycle,
                                "day": day,
                                "compartment": compartment,
                                "population": np.array(["cd4", "cd8", "other"])[kind],
                            }
                        )
                    )
    obs = pd.concat(frames, ignore_index=True).astype(str).astype("category")
    obs.index = [f"e{i}" for i in range(len(obs))]
    events = ad.AnnData(
        X=np.concatenate(values).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=["M1", "M2", "M3"]),
    )
    return stats.cluster_events(events, resolution=0.3, seed=0, n_epochs=30)


@pytest.fixture(scope="module")
def drawn():
    """The three figures, drawn while a spy records the axes seaborn drew on."""
    import seaborn as sns

    events = _clustered_trial()
    made: list = []
    labels = {"cd8": "CD8+ T cells", "cd4": "CD4+ T cells"}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("scatterplot", "heatmap", "barplot"):
            original = getattr(sns, name)

            def spy(*args, _original=original, **kwargs):
                made.append(kwargs["ax"])
                return _original(*args, **kwargs)

            patch.setattr(sns, name, spy)
        extent, panels = stats.arm_density_differences(events, arms=list(COLOURS))
        medians, summary = stats.cluster_markers(events)
        figures = {
            "umap_population": plots.plot_umap_population(
                events, labels=labels, populations=["cd8", "cd4"], ari=0.5
            ),
            "umap_density_difference": plots.plot_density_difference(
                extent, panels, arm_colors=COLOURS, events=events, labels=labels
            ),
            "cluster_markers": plots.plot_cluster_markers(medians, summary, labels=labels),
        }
    return events, figures, made


@pytest.mark.parametrize("name", plots.CROSSCHECK_FIGURES)
def test_every_panel_is_drawn_by_seaborn_landscape_and_nothing_is_cut_off(drawn, name):
    _, figures, made = drawn
    fig = figures[name]
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert panels and all(any(ax is m for m in made) for ax in panels), name
    width, height = fig.get_size_inches()
    assert width >= height and width <= 30 and height <= 20, (name, width, height)
    fig.draw_without_rendering()
    box = fig.get_tightbbox()
    assert box.x0 >= -0.02 and box.y0 >= -0.02, (name, box)
    assert box.x1 <= width + 0.02 and box.y1 <= height + 0.02, (name, box)


def test_density_panels_follow_the_visits_and_the_scale_names_the_arms(drawn):
    _, figures, _ = drawn
    fig = figures["umap_density_difference"]
    blocks = [sub.get_suptitle() for sub in fig.subfigs[:-1]]
    assert blocks == ["blood", "tumor"]
    titles = [ax.get_title().split("\n")[0] for ax in fig.subfigs[0].axes]
    assert titles == ["gated populations", "C1D1", "C1D15", "C10D1"]
    assert fig.subfigs[0].axes[1].get_title().split("\n")[1] == f"{ARM_A}: 3 vs {ARM_B}: 3 samples"
    (bar,) = fig.subfigs[-1].axes
    ticks = [t.get_text() for t in bar.get_xticklabels()]
    assert ticks[0].startswith(f"more {ARM_B}") and ticks[-1].startswith(f"more {ARM_A}")
    low, high = bar.get_xlim()
    assert low == -high  # symmetric limits
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(" (")[0] for t in legend] == ["CD4+ T cells", "CD8+ T cells", "other"]


def test_cluster_rows_are_named_by_their_population_and_grouped(drawn):
    events, figures, _ = drawn
    ax = figures["cluster_markers"].axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    _, summary = stats.cluster_markers(events)
    assert len(rows) == len(summary)
    named = [row.split(" \u00b7 ")[1].rsplit(" (", 1)[0] for row in rows]
    # grouped by population in the order given (labels first, the rest sorted, other last)
    order = ["CD4+ T cells", "CD8+ T cells", "other"]
    assert named == sorted(named, key=order.index)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["M1", "M2", "M3"]


def test_figures_are_written_as_png_and_pdf_the_same_twice(drawn, tmp_path):
    events, _, _ = drawn
    for folder in ("a", "b"):
        outputs = {name: tmp_path / folder / f"{name}.png" for name in plots.CROSSCHECK_FIGURES}
        plots.write_crosscheck_figures(events, outputs, arm_colors=COLOURS, ari=0.5)
    for name in plots.CROSSCHECK_FIGURES:
        for ext in ("png", "pdf"):
            first = (tmp_path / "a" / f"{name}.{ext}").read_bytes()
            assert first == (tmp_path / "b" / f"{name}.{ext}").read_bytes(), (name, ext)
            assert len(first) > 5_000
    with pytest.raises(ValueError, match="unknown cross-check figure"):
        plots.write_crosscheck_figures(events, {"umap_arm": tmp_path / "x.png"})


# --------------------------------------------------------------------------------------------
# the workflow's rule
# --------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_analysis_edits_never_rerun_the_cross_check(tmp_path):
    from cytotrial.sim import simulate_trial

    simulate_trial(tmp_path / "trial", patients_per_arm=1, events=2000, tumor_events=1500, seed=3)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config.pop("demo")
    config["samples"] = str(tmp_path / "trial/samples.tsv")
    config["patients"] = ""
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    path = tmp_path / "config/config.yaml"
    path.parent.mkdir()

    def write(changed: dict) -> None:
        path.write_text(yaml.safe_dump(changed, sort_keys=False))

    write(config)
    target = "results/events/events.h5ad"
    run_snakemake(tmp_path, target, "--cores", "1")
    log = (tmp_path / "logs/events.log").read_text()
    assert "adjusted Rand index" in log
    for name in plots.CROSSCHECK_FIGURES:
        assert (tmp_path / f"results/figures/{name}.png").stat().st_size > 5_000
    assert planned_jobs(tmp_path, target) == {}

    analysis = copy.deepcopy(config)  # key order kept: Snakemake compares params in order
    analysis["analysis"]["alpha"] = 0.1
    analysis["analysis"]["populations"] = ["cd8", "nk"]
    analysis["analysis"]["primary"]["populations"] = ["cd8"]
    write(analysis)
    assert planned_jobs(tmp_path, target) == {}

    # its own settings re-run it (and nothing before it)
    own = copy.deepcopy(analysis)
    own["events"]["labels"] = ["cd3", "nk"]
    write(own)
    assert planned_jobs(tmp_path, target) == {"events": 1}
