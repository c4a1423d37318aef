# Aggregation: every batch's counts and MFIs -> samples x populations AnnData, tidy tables and QC.
from cytotrial.config import population_model


rule aggregate:
    """Gather the counts and MFIs of every batch into populations.h5ad (samples x reported
    populations, with frequencies, cells per µL, ratios, MFIs and provenance), its tidy tables
    (populations, ratios, MFIs) and the per-sample QC table.
    """
    input:
        counts=lambda w: gated_batches("counts"),
        mfi=lambda w: gated_batches("mfi"),
        qc=lambda w: gated_batches("qc"),
        sheet=config["samples"],
    output:
        h5ad="results/counts/populations.h5ad",
        tsv=report(
            "results/counts/populations.tsv",
            caption="../report/populations.rst",
            category="Counts",
        ),
        ratios=report(
            "results/counts/ratios.tsv",
            caption="../report/ratios.rst",
            category="Counts",
        ),
        mfi=report(
            "results/counts/mfi.tsv",
            caption="../report/mfi.rst",
            category="Counts",
        ),
        qc=report(
            "results/qc/samples.tsv",
            caption="../report/qc_samples.rst",
            category="Quality control",
        ),
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        "../envs/cytotrial.yaml"
    params:
        arms=list(config["arms"]),
        strategies=config["strategies"],
        model=population_model(config),
        ratios=config["ratios"],
        frequencies=config["frequencies"]["of"],
        absolute_reference=config["absolute"]["reference"],
        mfi_markers=config["mfi"]["markers"],
        mfi_min_events=config["mfi"]["min_events"],
        min_events=config["qc"]["min_events"],
    script:
        "../scripts/aggregate.py"
