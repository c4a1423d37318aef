# Figures: trajectories, per-patient lines, effect heatmap (drawn from the statistics tables),
# gate positions (gate QC) and the event-level cross-check (drawn from the FCS files; the gating
# review, a page per sample, is review.smk).
from cytotrial.config import population_model
from cytotrial.rules import report_entry

# Figures drawn from the statistics tables.
STAT_FIGURES = ["trajectories", "patient_lines", "effect_heatmap"]
# Every figure built by default besides the Kaplan-Meier ones.
FIGURES = [*STAT_FIGURES, "gate_positions"]
# Kaplan-Meier figures of the primary early change, one per survival endpoint.
KM_FIGURES = ["km_pfs", "km_os"]
# Each patient's values and changes (absolute values per visit, spider plots, waterfall of the
# early change) and the samples' availability and quality (swimmer, QC overview with batch drift).
PATIENT_FIGURES = ["absolute_values", "spider", "waterfall"]
QC_FIGURES = ["sample_availability", "qc_overview"]
# The event-level cross-check's figures (cytotrial.pl.CROSSCHECK_FIGURES): the embedding by gated
# population and Leiden cluster, the arms' density difference within visits, cluster markers.
EVENT_FIGURES = ["umap_population", "umap_density_difference", "cluster_markers"]
# How the gating reads each file (the figures and the cross-check draw the events it counted).
GATING_READING = {
    "unreadable_compensation": config["gating"]["unreadable_compensation"],
    "acquisition": config["qc"]["acquisition"],
}
# Each reported population's label (the config's `populations:`; else its name).
POPULATION_LABELS = {
    name: spec["label"] for name, spec in population_model(config).items()
}


localrules:
    figures,
    km_figures,
    patient_figures,
    qc_figures,
    gate_positions,


rule figures:
    """Draw what treatment did from the statistics tables: arm trajectories, per-patient lines and
    the arm effect heatmap (PNG and PDF), one block per compartment and one panel per analysed
    feature, labelled from the config.
    """
    input:
        log2fc="results/stats/log2fc.tsv",
        summary="results/stats/summary.tsv",
        arm_comparison="results/stats/arm_comparison.tsv",
        mmrm="results/stats/mmrm.tsv",
    output:
        **{
            f"{name}_{ext}": f"results/figures/{name}.{ext}"
            for name in STAT_FIGURES
            for ext in ("png", "pdf")
        },
    log:
        "logs/figures.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=config["arms"],
        labels=POPULATION_LABELS,
        ratios=config["ratios"],
    script:
        "../scripts/figures.py"


rule km_figures:
    """Draw Kaplan-Meier curves of progression-free and overall survival by the median split of
    the primary early change (the first feature of the declared primary family, else the first
    analysed one, in the first compartment with an early change), per arm (PNG and PDF); a
    placeholder without a patients table.
    """
    input:
        h5ad="results/counts/populations.h5ad",
        log2fc="results/stats/log2fc.tsv",
        km="results/stats/km.tsv",
        patients=[PATIENTS] if PATIENTS else [],
    output:
        **{
            f"{name}_{ext}": f"results/figures/{name}.{ext}"
            for name in KM_FIGURES
            for ext in ("png", "pdf")
        },
    log:
        "logs/km_figures.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=config["arms"],
        frequencies_of=config["frequencies"]["of"],
        labels=POPULATION_LABELS,
        ratios=config["ratios"],
    script:
        "../scripts/survival.py"


rule patient_figures:
    """Draw each patient's values and changes: absolute values per visit and arm (quartiles,
    median, samples), spider plots of the change by best response and a waterfall of the early
    change at the response visit (PNG and PDF); spider and waterfall are placeholders without a
    patients table.
    """
    input:
        h5ad="results/counts/populations.h5ad",
        log2fc="results/stats/log2fc.tsv",
        patients=[PATIENTS] if PATIENTS else [],
    output:
        **{
            f"{name}_{ext}": f"results/figures/{name}.{ext}"
            for name in PATIENT_FIGURES
            for ext in ("png", "pdf")
        },
    log:
        "logs/patient_figures.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=config["arms"],
        frequencies_of=config["frequencies"]["of"],
        labels=POPULATION_LABELS,
        ratios=config["ratios"],
    script:
        "../scripts/patient_figures.py"


rule qc_figures:
    """Draw the samples' availability (each patient's scheduled visits: analysed, flagged,
    excluded, missed or after progression) and the QC overview (events and gates by batch, and
    drift of the key populations across batches, Levey-Jennings style) (PNG and PDF).
    """
    input:
        sheet=config["samples"],
        qc="results/qc/samples.tsv",
        missing="results/stats/missing_samples.tsv",
        h5ad="results/counts/populations.h5ad",
    output:
        **{
            f"{name}_{ext}": f"results/figures/{name}.{ext}"
            for name in QC_FIGURES
            for ext in ("png", "pdf")
        },
    log:
        "logs/qc_figures.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=config["arms"],
        frequencies_of=config["frequencies"]["of"],
        labels=POPULATION_LABELS,
    script:
        "../scripts/qc_figures.py"


rule gate_positions:
    """Draw where each adaptive gate went in every sample, by batch (and site) in acquisition
    order, with the template's position, the range allowed, fallbacks and outliers (gate QC):
    a block per panel, a facet per boundary named by gate, marker and channel.
    """
    input:
        table="results/gating/gate_positions.tsv",
    output:
        png="results/figures/gate_positions.png",
        pdf="results/figures/gate_positions.pdf",
    log:
        "logs/gate_positions.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        panels=config["panels"],
    script:
        "../scripts/gate_positions.py"


rule events:
    """Cross-check the gates without them: a capped, seeded draw of the events of the first
    reference population (frequencies.of) of the gated samples (at most events.max_samples of
    them, spread over compartments, visits and arms), read one file at a time; embedded with UMAP
    and clustered with Leiden; how well clusters and gates agree (each event labelled with the
    deepest of events.labels holding it); the embedding by gated population and cluster, the arms'
    density difference within each visit and each cluster's markers. Reads no analysis setting.
    """
    input:
        h5ad="results/counts/populations.h5ad",
        sheet=config["samples"],
        fcs=lambda w: sample_fcs_files(),
        strategies=[spec["strategy"] for spec in config["strategies"].values()],
        compensation=compensation_files(),
    output:
        **{name: f"results/figures/{name}.png" for name in EVENT_FIGURES},
        **{f"{name}_pdf": f"results/figures/{name}.pdf" for name in EVENT_FIGURES},
        h5ad="results/events/events.h5ad",
        table=report(
            "results/qc/cluster_vs_gate.tsv",
            caption="../report/cluster_vs_gate.rst",
            **report_entry("results/qc/cluster_vs_gate.tsv"),
        ),
    log:
        "logs/events.log",
    benchmark:
        "benchmarks/events.tsv"
    conda:
        "../envs/cytotrial.yaml"
    params:
        strategies=config["strategies"],
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
        events=config["events"],
        reading=GATING_READING,
        arms=config["arms"],
        populations=config["populations"],
        within=(config["frequencies"]["of"] or [""])[0],
        figures=EVENT_FIGURES,
    script:
        "../scripts/events.py"
