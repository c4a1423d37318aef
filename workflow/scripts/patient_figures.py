import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.pl import write_patient_figures

with rule_log(snakemake) as log:
    written = write_patient_figures(
        h5ad=snakemake.input.h5ad,
        log2fc=snakemake.input.log2fc,
        patients=snakemake.input.patients[0] if snakemake.input.patients else None,
        outputs={n[: -len("_png")]: p for n, p in snakemake.output.items() if n.endswith("_png")},
        analysis=snakemake.params.analysis,
        arms=snakemake.params.arms,
        frequencies_of=snakemake.params.frequencies_of,
        labels=snakemake.params.labels,
        ratios=snakemake.params.ratios,
    )
    log.write(f"wrote {len(written)} files\n")
