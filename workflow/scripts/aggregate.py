import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_aggregate

with rule_log(snakemake) as log:
    adata = run_aggregate(
        counts=snakemake.input.counts,
        qc=snakemake.input.qc,
        sheet=snakemake.input.sheet,
        arms=snakemake.params.arms,
        strategies=snakemake.params.strategies,
        min_events=snakemake.params.min_events,
        config=snakemake.config,
        h5ad_out=snakemake.output.h5ad,
        tsv_out=snakemake.output.tsv,
        qc_out=snakemake.output.qc,
    )
    log.write(f"{adata.n_obs} samples x {adata.n_vars} populations\n")
