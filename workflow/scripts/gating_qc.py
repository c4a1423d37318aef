import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_gating_qc

with rule_log(snakemake) as log:
    drawn = run_gating_qc(
        snakemake.input.h5ad,
        sheet=snakemake.input.sheet,
        strategies=snakemake.params.strategies,
        panels=snakemake.params.panels,
        compensation=snakemake.params.compensation,
        per_batch=snakemake.params.per_batch,
        reading=snakemake.params.reading,
        out_png=snakemake.output.png,
        out_pdf=snakemake.output.pdf,
    )
    log.write(f"drew the gates of {len(drawn)} samples: {', '.join(drawn)}\n")
