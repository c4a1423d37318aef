"""Kaplan-Meier figures of the primary early change, one per survival endpoint (PFS, OS).

The feature drawn is fixed by the config, not by the results: the first compartment (sorted by
name) in which an analysed feature has an early change (log2 fold change at the response visit),
and in it the first feature of the declared primary family (``analysis.primary.populations``),
else of ``analysis.populations`` (resolved, see :func:`cytotrial.tl.analysis_plan`), that has one. Without a patients table, or without any early
change, each figure is a placeholder saying so, so the workflow's outputs stay the same.
"""

import sys
from pathlib import Path

_KM_TEXT = ["population", "compartment", "endpoint", "arm", "group"]


def primary_feature(log2fc, populations, response_visit):
    """(feature, compartment) of the primary early change, or None when there is none."""
    early = log2fc[log2fc["visit"] == response_visit]
    for compartment in sorted(set(early["compartment"])):
        present = set(early.loc[early["compartment"] == compartment, "population"])
        chosen = [feature for feature in populations if feature in present]
        if chosen:
            return chosen[0], compartment
    return None


def placeholder(text):
    """A figure saying why there are no curves."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 2.0))
    ax = fig.subplots()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="0.4")
    ax.set_axis_off()
    return fig


def read_km(path):
    """The ``km`` table as written (text stays text; ``NA`` is a missing number)."""
    import pandas as pd

    header = pd.read_csv(path, sep="\t", nrows=0).columns
    return pd.read_csv(
        path,
        sep="\t",
        dtype=dict.fromkeys(_KM_TEXT, str),
        keep_default_na=False,
        na_values={c: ["NA"] for c in header if c not in _KM_TEXT},
    )


def km_figures(sm, log):
    """Figure per endpoint (``km_<endpoint>_png`` outputs) and what it shows."""
    import anndata

    from cytotrial import pl, tl

    endpoints = [name[3 : -len("_png")] for name, _ in sm.output.items() if name.endswith("_png")]
    if not sm.input.patients:
        return {endpoint: placeholder("no patients table") for endpoint in endpoints}
    plan = tl.analysis_plan(
        anndata.read_h5ad(sm.input.h5ad),
        analysis=sm.params.analysis,
        arms=list(sm.params.arms),
        frequencies_of=sm.params.frequencies_of,
    )
    visit = plan["response_visit"]
    log2fc = pl.read_stat_tables({"log2fc": sm.input.log2fc}, ["log2fc"])["log2fc"]
    declared = ((sm.params.analysis or {}).get("primary") or {}).get("populations") or []
    analysed = list(plan["populations"])
    order = [f for f in declared if f in analysed] + [f for f in analysed if f not in declared]
    chosen = primary_feature(log2fc, order, visit)
    if chosen is None:
        log.write(f"no early change at {visit or 'a response visit'}\n")
        return {e: placeholder(f"no early change at {visit}") for e in endpoints}
    feature, compartment = chosen
    log.write(f"early change of {feature} in {compartment} at {visit}\n")
    data = tl.survival_data(log2fc, tl.read_patients(sm.input.patients[0]), response_visit=visit)
    style = dict(labels=sm.params.labels, ratios=sm.params.ratios, alpha=plan["alpha"])
    return {
        endpoint: pl.plot_kaplan_meier(
            data,
            population=feature,
            compartment=compartment,
            endpoint=endpoint,
            km=read_km(sm.input.km),
            arm_colors=sm.params.arms,
            arms=list(sm.params.arms),
            **style,
        )
        for endpoint in endpoints
    }


if "snakemake" in globals():  # run by Snakemake (the functions above can be imported alone)
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    from _log import rule_log

    from cytotrial.pl import save_figure

    with rule_log(snakemake) as log:
        for endpoint, fig in km_figures(snakemake, log).items():
            save_figure(fig, getattr(snakemake.output, f"km_{endpoint}_png"))
            log.write(f"wrote km_{endpoint}.png and .pdf\n")
