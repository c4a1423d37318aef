# Aggregation: every batch's counts -> samples x populations AnnData, tidy table and QC.


rule aggregate:
    """Gather the counts of every batch into populations.h5ad (samples x populations, with
    frequencies, cells per µL and provenance), its tidy table and the per-sample QC table.
    """
    input:
        counts=lambda w: gated_batches("counts"),
        qc=lambda w: gated_batches("qc"),
        sheet=config["samples"],
    output:
        h5ad="results/counts/populations.h5ad",
        tsv=report(
            "results/counts/populations.tsv",
            caption="../report/populations.rst",
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
        strategies=config["strategies"],
        min_events=config["qc"]["min_events"],
        arms=list(config["arms"]),
    script:
        "../scripts/aggregate.py"
