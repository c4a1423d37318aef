import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_aggregate

with rule_log(snakemake) as log:
    adata = run_aggregate(
        counts=snakemake.input.counts,
        mfi=snakemake.input.mfi,
        qc=snakemake.input.qc,
        manifests=snakemake.input.manifests,
        samples_qc=snakemake.input.samples_qc,
        sheet=snakemake.input.sheet,
        config=snakemake.config,
        h5ad_out=snakemake.output.h5ad,
        tsv_out=snakemake.output.tsv,
        ratios_out=snakemake.output.ratios,
        mfi_out=snakemake.output.mfi,
        gates=snakemake.input.gates,
        gates_out=snakemake.output.gate_positions,
        **dict(snakemake.params.items()),
    )
    log.write(
        f"{adata.n_obs} samples x {adata.n_vars} populations, "
        f"{adata.obsm['ratios'].shape[1]} ratios, {adata.obsm['mfi_median'].shape[1]} MFIs\n"
    )
