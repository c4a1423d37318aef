import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_gating_review

with rule_log(snakemake) as log:
    p = snakemake.params
    pages = run_gating_review(
        sheet=snakemake.input.sheet,
        tables=[snakemake.input.pages],
        panels=p.panels,
        choice=p.choice,
        per_batch=p.per_batch,
        pdfs={panel: snakemake.output[f"pdf_{panel}"] for panel in p.panels},
        flagged=snakemake.output.flagged,
        page=snakemake.output.page,
    )
    for panel in p.panels:
        log.write(f"panel {panel}: {int((pages['panel'] == panel).sum())} pages\n")
    log.write(f"flagged samples' pages: {int((pages['png'] != '').sum())}\n")
