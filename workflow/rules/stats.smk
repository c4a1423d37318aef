# Statistics: change from baseline, arm comparison, MMRM, outcome link (response, responders,
# survival) and sample availability.
from cytotrial.rules import report_entry

STAT_TABLES = [
    "log2fc",
    "missing_baseline",
    "summary",
    "change_from_baseline",
    "arm_comparison",
    "mmrm",
    "response",
    "cox",
    "km",
    "survival_missing",
    "responders",
    "availability",
    "missing_samples",
]


rule stats:
    """Change from baseline of every analysed feature (populations, ratios, MFIs) from each
    compartment's baseline, arm comparison, the MMRM (primary longitudinal model), summaries and
    the outcome link (response, responders within and across arms, Cox and Kaplan-Meier of the
    early change), and the samples expected, taken and missing per visit, as tidy tables.
    """
    input:
        h5ad="results/counts/populations.h5ad",
        patients=[PATIENTS] if PATIENTS else [],
        sheet=config["samples"],
        qc="results/qc/samples.tsv",
    output:
        **{
            name: report(
                f"results/stats/{name}.tsv",
                caption=f"../report/{name}.rst",
                **report_entry(f"results/stats/{name}.tsv"),
            )
            for name in STAT_TABLES
        },
    log:
        "logs/stats.log",
    benchmark:
        "benchmarks/stats.tsv"
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=list(config["arms"]),
        frequencies_of=config["frequencies"]["of"],
    script:
        "../scripts/stats.py"
