# The report's own pages: the key tables as HTML (Snakemake shows an HTML result inside the report,
# a TSV only as a download), an overview of the run, and each figure on a page of its own (where a
# tall figure scrolls from its top). Where every result sits in the report, and in which order, is
# cytotrial.rules.report_entry.
from cytotrial.rules import REPORT_OVERVIEW, REPORT_TABLES, figure_page, report_entry

# The figures of the report (plots.smk): every one built by default.
REPORT_FIGURES = [
    *FIGURES,
    *KM_FIGURES,
    *PATIENT_FIGURES,
    *QC_FIGURES,
    *EVENT_FIGURES,
]
# Built by default, so that `snakemake --report` finds them.
REPORT_PAGES = [
    *REPORT_TABLES.values(),
    REPORT_OVERVIEW,
    *(figure_page(name) for name in REPORT_FIGURES),
]


localrules:
    report_tables,
    report_overview,
    report_figures,


rule report_tables:
    """Render the key tables as pages of the report: sample QC (problems first), the summary by
    arm and visit (arms side by side), the primary statistics (the MMRM's primary family) and the
    response (rate per arm, early change of responders).
    """
    input:
        qc="results/qc/samples.tsv",
        summary="results/stats/summary.tsv",
        mmrm="results/stats/mmrm.tsv",
        response="results/stats/response.tsv",
    output:
        **{
            name: report(path, caption=f"../report/{name}.rst", **report_entry(path))
            for name, path in REPORT_TABLES.items()
        },
    log:
        "logs/report_tables.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        arms=list(config["arms"]),
        labels=POPULATION_LABELS,
        ratios=config["ratios"],
        alpha=config["analysis"]["alpha"],
        correction=config["analysis"]["primary"]["correction"],
    script:
        "../scripts/report_tables.py"


rule report_overview:
    """Write the run overview page of the report: samples ok, flagged and excluded (with the
    reasons), patients per arm and visit, the inputs' sha256, package versions and the whole
    configuration (from the provenance of populations.h5ad).
    """
    input:
        qc="results/qc/samples.tsv",
        sheet=config["samples"],
        h5ad="results/counts/populations.h5ad",
    output:
        overview=report(
            REPORT_OVERVIEW,
            caption="../report/overview.rst",
            **report_entry(REPORT_OVERVIEW),
        ),
    log:
        "logs/report_overview.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        arms=list(config["arms"]),
    script:
        "../scripts/report_overview.py"


rule report_figures:
    """Put each figure on a page of its own in the report, at the window's width and full size on
    a click, so that a figure taller than the window scrolls from its top (Snakemake centres a bare
    image, which cuts off the top of a tall one).
    """
    input:
        **{name: f"results/figures/{name}.png" for name in REPORT_FIGURES},
    output:
        **{
            name: report(
                figure_page(name),
                caption=f"../report/{name}.rst",
                **report_entry(figure_page(name)),
            )
            for name in REPORT_FIGURES
        },
    log:
        "logs/report_figures.log",
    conda:
        "../envs/cytotrial.yaml"
    script:
        "../scripts/report_figures.py"
