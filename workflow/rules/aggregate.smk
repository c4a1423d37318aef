# Aggregation: every batch's counts and MFIs -> the per-sample QC table, then the samples x
# populations AnnData and its tidy tables. Each batch table is checked against its manifest first.
from cytotrial.config import population_model
from cytotrial.rules import report_entry

# What both rules need to count the populations of the gated samples.
POPULATION_PARAMS = dict(
    arms=list(config["arms"]),
    strategies=config["strategies"],
    model=population_model(config),
    ratios=config["ratios"],
    frequencies=config["frequencies"]["of"],
    absolute_reference=config["absolute"]["reference"],
    mfi_markers=config["mfi"]["markers"],
    mfi_min_events=config["mfi"]["min_events"],
    min_events=config["qc"]["min_events"],
)


rule qc_table:
    """Write the per-sample QC table: status (ok, flagged, excluded), reason, events, the count of
    every reported population, flags and the sha256 of each FCS file. A job of its own, so the
    table that says why samples were excluded is kept even when none could be gated.
    """
    input:
        counts=lambda w: gated_batches("counts"),
        mfi=lambda w: gated_batches("mfi"),
        qc=lambda w: gated_batches("qc"),
        manifests=lambda w: gated_batches("manifest"),
        gates=lambda w: gated_batches("gates"),
        sheet=config["samples"],
    output:
        qc=report(
            "results/qc/samples.tsv",
            caption="../report/qc_samples.rst",
            **report_entry("results/qc/samples.tsv"),
        ),
    log:
        "logs/qc_table.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        **POPULATION_PARAMS,
    script:
        "../scripts/qc_table.py"


rule aggregate:
    """Gather the counts and MFIs of every batch into populations.h5ad (samples x reported
    populations, with frequencies, cells per µL, ratios, MFIs and provenance) and its tidy tables
    (populations, ratios, MFIs) and where each adaptive gate went in each sample, with its outliers
    (gate QC); stop with one line when no sample could be gated.
    """
    input:
        counts=lambda w: gated_batches("counts"),
        mfi=lambda w: gated_batches("mfi"),
        qc=lambda w: gated_batches("qc"),
        manifests=lambda w: gated_batches("manifest"),
        gates=lambda w: gated_batches("gates"),
        sheet=config["samples"],
        samples_qc="results/qc/samples.tsv",
    output:
        h5ad="results/counts/populations.h5ad",
        tsv=report(
            "results/counts/populations.tsv",
            caption="../report/populations.rst",
            **report_entry("results/counts/populations.tsv"),
        ),
        ratios=report(
            "results/counts/ratios.tsv",
            caption="../report/ratios.rst",
            **report_entry("results/counts/ratios.tsv"),
        ),
        mfi=report(
            "results/counts/mfi.tsv",
            caption="../report/mfi.rst",
            **report_entry("results/counts/mfi.tsv"),
        ),
        gate_positions=report(
            "results/gating/gate_positions.tsv",
            caption="../report/gate_positions_table.rst",
            **report_entry("results/gating/gate_positions.tsv"),
        ),
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        "../envs/cytotrial.yaml"
    params:
        **POPULATION_PARAMS,
    script:
        "../scripts/aggregate.py"
