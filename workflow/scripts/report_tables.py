import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import run_report_tables

with rule_log(snakemake) as log:
    written = run_report_tables(
        **dict(snakemake.input.items()),
        outputs=dict(snakemake.output.items()),
        **dict(snakemake.params.items()),
    )
    log.write(f"wrote {len(written)} pages\n")
