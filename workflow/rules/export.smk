# Gate export: the gates each sample was gated with, as a FlowJo 10 workspace per panel and a
# GatingML 2.0 file per sample, to review or adjust in FlowJo, Cytobank or FlowKit.
import re

# The config's populations as the export reads them (Boolean definitions and parents; a new
# label re-exports nothing).
EXPORT_POPULATIONS = {
    name: {key: value for key, value in (spec or {}).items() if key != "label"}
    for name, spec in config["populations"].items()
}


# Sample id -> FCS file (relative to the working directory) of every sample of a panel.
export_panel_fcs = lambda wildcards: {
    sid: fcs_inputs()[sid]
    for sid in sorted(samples().query("panel == @wildcards.panel")["sample_id"])
}


rule export_gates:
    """Export the gates each gated (ok or flagged) sample of a panel was gated with: the panel's
    strategy where adaptive gates placed it for the sample, acquisition QC's removed stretches as
    gates on Time, the compensation applied and the config's Boolean populations. A FlowJo 10
    workspace with one sample node per FCS file (paths relative to the workspace) and a GatingML
    2.0 file per sample; FlowJo and FlowKit gating the files with them count what the workflow
    counted. Each file's TEXT alone is read (channels, spillover); what acquisition QC removed is
    the gating's record of it. The log names any gate an export cannot hold and any file whose
    counts they cannot reproduce.
    """
    input:
        qc="results/qc/samples.tsv",
        gates=lambda w: gated_batches("gates"),
        removed=lambda w: gated_batches("acquisition"),
        fcs=lambda w: list(export_panel_fcs(w).values()),
        strategy=lambda w: config["strategies"][w.panel]["strategy"],
        compensation=compensation_files(),
    output:
        workspace="results/gates/{panel}.wsp",
        gatingml=directory("results/gates/{panel}"),
    log:
        "logs/export_gates/{panel}.log",
    benchmark:
        "benchmarks/export_gates/{panel}.tsv"
    wildcard_constraints:
        panel="|".join(re.escape(panel) for panel in config["strategies"]),
    conda:
        "../envs/cytotrial.yaml"
    params:
        panel=lambda w: w.panel,
        spec=lambda w: config["strategies"][w.panel],
        fcs=export_panel_fcs,
        panels=config["panels"],
        populations=EXPORT_POPULATIONS,
        compensation=config["gating"]["compensation"],
        unreadable_compensation=config["gating"]["unreadable_compensation"],
        acquisition=config["qc"]["acquisition"],
    script:
        "../scripts/export_gates.py"
