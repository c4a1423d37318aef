import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.tl import write_stats

with rule_log(snakemake) as log:
    outputs = dict(snakemake.output.items())
    written = write_stats(
        snakemake.input.h5ad,
        outputs=outputs,
        analysis=snakemake.params.analysis,
        arms=snakemake.params.arms,
        frequencies_of=snakemake.params.frequencies_of,
        patients_path=snakemake.input.patients[0] if snakemake.input.patients else None,
        samples_path=snakemake.input.sheet,
        qc_path=snakemake.input.qc,
    )
    log.write(f"wrote {len(written)} tables\n")
