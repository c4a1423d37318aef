import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.pl import write_gate_positions

with rule_log(snakemake) as log:
    png, pdf = write_gate_positions(
        snakemake.input.table, snakemake.output.png, markers=snakemake.params.panels
    )
    log.write(f"wrote {png.name} and {pdf.name}\n")
