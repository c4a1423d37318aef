# Gating: each job gates a batch of FCS files (start-up is paid once per batch, not per file).


rule gate:
    input:
        fcs=batch_fcs,
        strategies=batch_strategy_files,
        compensation=compensation_files(),
    output:
        counts="results/gating/batch_{batch}.counts.tsv",
        qc="results/gating/batch_{batch}.qc.tsv",
    log:
        "logs/gate/batch_{batch}.log",
    benchmark:
        "benchmarks/gate/batch_{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        "../envs/cytotrial.yaml"
    params:
        samples=batch_rows,
        strategies=batch_strategies,
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
    script:
        "../scripts/gate.py"
