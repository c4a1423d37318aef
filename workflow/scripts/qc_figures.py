import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.pl import write_qc_figures

with rule_log(snakemake) as log:
    written = write_qc_figures(
        sheet=snakemake.input.sheet,
        qc=snakemake.input.qc,
        missing=snakemake.input.missing,
        h5ad=snakemake.input.h5ad,
        outputs={n[: -len("_png")]: p for n, p in snakemake.output.items() if n.endswith("_png")},
        analysis=snakemake.params.analysis,
        arms=snakemake.params.arms,
        frequencies_of=snakemake.params.frequencies_of,
        labels=snakemake.params.labels,
    )
    log.write(f"wrote {len(written)} files\n")
