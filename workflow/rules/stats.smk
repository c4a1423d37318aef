# Statistics: change from baseline, arm comparison, mixed models, outcome link.
STAT_TABLES = [
    "log2fc",
    "missing_baseline",
    "summary",
    "change_from_baseline",
    "arm_comparison",
    "mixed_model",
    "response",
]


rule stats:
    """Change from baseline of every analysed feature (populations, ratios, MFIs) from each
    compartment's baseline, arm comparison, mixed models, summaries and the outcome link, as tidy
    tables (each q-value names its family).
    """
    input:
        h5ad="results/counts/populations.h5ad",
        patients=[PATIENTS] if PATIENTS else [],
    output:
        **{
            name: report(
                f"results/stats/{name}.tsv",
                caption=f"../report/{name}.rst",
                category="Statistics",
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
