import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_aggregate

with rule_log(snakemake) as log:
    params = snakemake.params
    adata = run_aggregate(
        counts=snakemake.input.counts,
        mfi=snakemake.input.mfi,
        qc=snakemake.input.qc,
        sheet=snakemake.input.sheet,
        arms=params.arms,
        strategies=params.strategies,
        model=params.model,
        ratios=params.ratios,
        frequencies=params.frequencies,
        absolute_reference=params.absolute_reference,
        mfi_markers=params.mfi_markers,
        mfi_min_events=params.mfi_min_events,
        min_events=params.min_events,
        config=snakemake.config,
        h5ad_out=snakemake.output.h5ad,
        tsv_out=snakemake.output.tsv,
        ratios_out=snakemake.output.ratios,
        mfi_out=snakemake.output.mfi,
        qc_out=snakemake.output.qc,
    )
    log.write(
        f"{adata.n_obs} samples x {adata.n_vars} populations, "
        f"{adata.obsm['ratios'].shape[1]} ratios, {adata.obsm['mfi_median'].shape[1]} MFIs\n"
    )
