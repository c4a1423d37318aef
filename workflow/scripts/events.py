import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_event_crosscheck

with rule_log(snakemake) as log:
    ari = run_event_crosscheck(
        snakemake.input.h5ad,
        sheet=snakemake.input.sheet,
        strategies=snakemake.params.strategies,
        panels=snakemake.params.panels,
        compensation=snakemake.params.compensation,
        options=snakemake.params.events,
        arm_colors=snakemake.params.arms,
        populations=snakemake.params.populations,
        within=snakemake.params.within or None,
        labels=snakemake.params.labels,
        reading=snakemake.params.reading,
        h5ad_out=snakemake.output.h5ad,
        table_out=snakemake.output.table,
        out_png=[snakemake.output.umap_population_png, snakemake.output.umap_arm_png],
        out_pdf=[snakemake.output.umap_population_pdf, snakemake.output.umap_arm_pdf],
    )
    log.write(f"adjusted Rand index of Leiden clusters vs gates: {ari:.3f}\n")
