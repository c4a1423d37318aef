import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_report_overview

with rule_log(snakemake) as log:
    page = run_report_overview(
        **dict(snakemake.input.items()),
        out=snakemake.output.overview,
        arms=snakemake.params.arms,
    )
    log.write(f"wrote {page}\n")
