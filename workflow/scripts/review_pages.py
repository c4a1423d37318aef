import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_review_pages

with rule_log(snakemake) as log:
    p = snakemake.params
    run = run_review_pages(
        batches=list(snakemake.input.batches),
        gates=list(snakemake.input.gates),
        qc=snakemake.input.qc,
        strategies=p.strategies,
        panels=p.panels,
        compensation=p.compensation,
        reading=p.reading,
        choice=p.choice,
        per_batch=p.per_batch,
        threads=snakemake.threads,
        out=snakemake.output.pages,
    )
    per_page = run.seconds / len(run.drawn) if run.drawn else 0.0
    log.write(
        f"drew {len(run.drawn)} pages ({per_page:.2f} s of drawing each, {snakemake.threads} "
        f"processes), kept {len(run.kept)} unchanged pages\n"
    )
    for sample_id in run.drawn:
        log.write(f"drew {sample_id}\n")
