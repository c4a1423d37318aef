import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_report_figures

with rule_log(snakemake) as log:
    written = run_report_figures(
        figures=dict(snakemake.input.items()),
        outputs=dict(snakemake.output.items()),
    )
    log.write(f"wrote {len(written)} pages\n")
