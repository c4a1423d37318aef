# Gating: each job gates a batch of FCS files (start-up is paid once per batch, not per file).


rule gate:
    """Gate the FCS files of one batch with their panel's strategy, after acquisition QC has
    removed the events of anomalous stretches of Time (`qc.acquisition`): the event count of every
    reported population with its parent's, the median intensities of `mfi.markers`, and a QC row
    per sample (a file that cannot be read, lacks a marker or loses more than
    `qc.acquisition.exclude_above` of its events is excluded with its reason), with the sha256 of
    each file; where each adaptive gate went in each sample (`strategies.<panel>.adaptive`); the
    stretches of Time acquisition QC removed (what the gate export needs of the events); then a
    manifest of the tables (rows, sha256), written last.
    """
    input:
        batch=batch_file,
        fcs=batch_fcs,
        strategies=batch_strategy_files,
        compensation=compensation_files(),
    output:
        counts="results/gating/batch_{batch}.counts.tsv",
        mfi="results/gating/batch_{batch}.mfi.tsv",
        qc="results/gating/batch_{batch}.qc.tsv",
        gates="results/gating/batch_{batch}.gates.tsv",
        acquisition="results/gating/batch_{batch}.acquisition.tsv",
        manifest="results/gating/batch_{batch}.manifest.tsv",
    log:
        "logs/gate/batch_{batch}.log",
    benchmark:
        "benchmarks/gate/batch_{batch}.tsv"
    wildcard_constraints:
        batch=r"[^/]+_(?:all|[01]+)",
    conda:
        "../envs/cytotrial.yaml"
    params:
        strategies=batch_strategies,
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
        unreadable_compensation=config["gating"]["unreadable_compensation"],
        populations=config["populations"],
        mfi=config["mfi"],
        acquisition=config["qc"]["acquisition"],
    script:
        "../scripts/gate.py"
