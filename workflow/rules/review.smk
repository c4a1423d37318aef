# The gating review: a page per sample (its gates as placed for it, on its parent's events), drawn
# only where a page changed (one job for every batch), then assembled into a PDF per panel.
from cytotrial.rules import REVIEW_PDF, figure_page, report_entry, review_report_entry

# The samples drawn: figures.gating_review (all, flagged or a list of ids) and per_batch more.
REVIEW_CHOICE = config["figures"]["gating_review"]
REVIEW_PER_BATCH = config["figures"]["gating_review_per_batch"]
REVIEW_PAGE = figure_page("gating_review")
# Built by default (rule all): each panel's PDF, the flagged samples' PNGs, the report's page.
REVIEW_OUTPUTS = [
    *(REVIEW_PDF.format(panel=panel) for panel in config["strategies"]),
    "results/review/flagged",
    REVIEW_PAGE,
]


localrules:
    gating_review,


rule review_pages:
    """Draw the review page of each chosen sample whose page is not drawn yet, for every gating
    batch in one job: the gates in strategy order, each on its parent's events as gated
    (compensated, transformed, after acquisition QC) on FlowJo-style axes, where it was placed
    for the sample, with the percentage of its parent; the sample, panel, batch, status and flags
    in the heading. A page is kept under results/gating/review/pages/ by the fingerprint of what
    it shows, so an unchanged sample is neither read nor drawn again; the output lists the pages.
    """
    input:
        batches=lambda w: [BATCH_FILE.format(batch=b) for b in sorted(batches())],
        fcs=sample_fcs_files,
        strategies=[spec["strategy"] for spec in config["strategies"].values()],
        compensation=compensation_files(),
        gates=lambda w: gated_batches("gates"),
        qc="results/qc/samples.tsv",
    output:
        pages="results/gating/review/pages.tsv",
    log:
        "logs/review_pages.log",
    benchmark:
        "benchmarks/review_pages.tsv"
    conda:
        "../envs/cytotrial.yaml"
    threads: 4
    params:
        strategies=config["strategies"],
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
        reading=GATING_READING,
        choice=REVIEW_CHOICE,
        per_batch=REVIEW_PER_BATCH,
    script:
        "../scripts/review_pages.py"


rule gating_review:
    """Assemble the gating review: a PDF per panel with a page per drawn sample in sample sheet
    order, the pages of flagged samples as PNG files, and the report's page showing them.
    """
    input:
        sheet=config["samples"],
        pages="results/gating/review/pages.tsv",
    output:
        **{
            f"pdf_{panel}": report(
                REVIEW_PDF.format(panel=panel),
                caption="../report/gating_review_pdf.rst",
                **review_report_entry(panel),
            )
            for panel in config["strategies"]
        },
        flagged=directory("results/review/flagged"),
        page=report(
            REVIEW_PAGE,
            caption="../report/gating_review.rst",
            **report_entry(REVIEW_PAGE),
        ),
    log:
        "logs/gating_review.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        panels=list(config["strategies"]),
        choice=REVIEW_CHOICE,
        per_batch=REVIEW_PER_BATCH,
    script:
        "../scripts/gating_review.py"
