import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_qc_table

with rule_log(snakemake) as log:
    params = dict(snakemake.params.items())
    table = run_qc_table(
        counts=snakemake.input.counts,
        mfi=snakemake.input.mfi,
        qc=snakemake.input.qc,
        manifests=snakemake.input.manifests,
        gates=snakemake.input.gates,
        sheet=snakemake.input.sheet,
        qc_out=snakemake.output.qc,
        **params,
    )
    status = table["status"].value_counts()
    log.write(", ".join(f"{n} {name}" for name, n in status.items()) + "\n")
