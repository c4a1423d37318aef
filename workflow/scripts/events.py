import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_event_crosscheck

with rule_log(snakemake) as log:
    found = run_event_crosscheck(
        snakemake.input.h5ad,
        sheet=snakemake.input.sheet,
        strategies=snakemake.params.strategies,
        panels=snakemake.params.panels,
        compensation=snakemake.params.compensation,
        options=snakemake.params.events,
        arm_colors=snakemake.params.arms,
        populations=snakemake.params.populations,
        within=snakemake.params.within or None,
        reading=snakemake.params.reading,
        h5ad_out=snakemake.output.h5ad,
        table_out=snakemake.output.table,
        figures={name: snakemake.output[name] for name in snakemake.params.figures},
    )
    log.write(
        f"{found['events']} events of {found['samples']} samples ({found['skipped']} unreadable), "
        f"{found['markers']} markers, {found['clusters']} Leiden clusters; adjusted Rand index "
        f"of clusters vs gates: {found['adjusted_rand_index']:.3f}; events in a cluster mostly "
        f"of their own gated population: {found['purity']:.3f}\n"
    )
